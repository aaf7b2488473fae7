//! What `/proc` says of a process (Linux): its parent, process group and
//! session. Read to decide who belongs to a launch; never trusted alone to
//! name a process, since a pid read here may be reused a moment later: the
//! callers take a pidfd and read again before they act.

use crate::sys;

/// The fields of `/proc/PID/stat` that say where a process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    pub(super) pid: libc::pid_t,
    pub(super) ppid: libc::pid_t,
    pub(super) pgrp: libc::pid_t,
    pub(super) session: libc::pid_t,
}

/// `pid`'s stat line, parsed; `None` once it is gone (or unreadable).
pub(super) fn stat(pid: libc::pid_t) -> Option<Stat> {
    parse_stat(pid, &std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields 4 to 6 of a stat line, after the command name, which is in
/// parentheses and may hold anything, spaces and `)` too.
fn parse_stat(pid: libc::pid_t, line: &[u8]) -> Option<Stat> {
    let after_name = &line[line.iter().rposition(|&b| b == b')')? + 1..];
    let mut fields = after_name
        .split(|&b| b == b' ')
        .filter(|field| !field.is_empty());
    let _state = fields.next()?;
    let mut next =
        || -> Option<libc::pid_t> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    Some(Stat {
        pid,
        ppid: next()?,
        pgrp: next()?,
        session: next()?,
    })
}

/// Every process's stat, as far as `/proc` can be read now (a process
/// that ends during the walk is left out).
pub(super) fn all() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter_map(stat)
        .collect()
}

/// `pid`'s children, from each of its threads' `children` file (Linux
/// 3.5 with `CONFIG_PROC_CHILDREN`, as Debian's kernels have), else from a
/// walk of every process. Empty once `pid` is gone.
pub(super) fn children(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<libc::pid_t>().ok()),
            ),
            // No such file on this kernel: the long way.
            Err(_) => {
                return all()
                    .into_iter()
                    .filter(|s| s.ppid == pid)
                    .map(|s| s.pid)
                    .collect();
            }
        }
    }
    found
}

/// Whether `ancestor` is among `pid`'s ancestors (a short walk: a
/// daemon's tree is shallow).
pub(super) fn descends_from(pid: libc::pid_t, ancestor: libc::pid_t) -> bool {
    let mut pid = pid;
    for _ in 0..64 {
        let Some(parent) = stat(pid).map(|s| s.ppid) else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// Whether `pid` is this process or one of its ancestors: a process that
/// a launch must never signal, whatever its program says.
pub(super) fn is_self_or_ancestor(pid: libc::pid_t) -> bool {
    let me = sys::getpid();
    pid == me || descends_from(me, pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = b"42 (a) b) (c) S 7 8 9 0 -1 4194560";
        assert_eq!(
            parse_stat(42, line),
            Some(Stat {
                pid: 42,
                ppid: 7,
                pgrp: 8,
                session: 9
            })
        );
        assert_eq!(parse_stat(42, b"42 (cut"), None);
        assert_eq!(parse_stat(42, b"42 (x) S 7"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no getppid and no /proc")]
    fn this_process_and_its_parent_are_never_a_launchs_to_signal() {
        let me = std::process::id() as libc::pid_t;
        assert_eq!(stat(me).map(|s| s.ppid), Some(sys::getppid()));
        assert!(is_self_or_ancestor(me));
        assert!(is_self_or_ancestor(sys::getppid()));
        assert!(descends_from(me, sys::getppid()));
        assert!(!descends_from(me, i32::MAX));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(!is_self_or_ancestor(child.id() as libc::pid_t));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
