//! The launch's own `exec`, for the options `Command` cannot express:
//! socket activation (`LISTEN_PID`) and the watchdog (`WATCHDOG_PID`) name
//! the program's own pid, known only after the fork, and the listening
//! sockets must sit at fds 3, 4, …. `Command` builds the program's
//! environment before it forks and gives a `pre_exec` closure no way to
//! change it, so with those options the last `pre_exec` closure does the
//! `execve` itself, with the environment `Command` would have passed
//! (computed here from this process's and the `Command`'s changes) plus
//! those variables.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use super::LaunchError;
use crate::end::TokenPipeEnd;
use crate::pipe::TokenPipe;
use crate::sys::ExecPlan;

/// A listening socket handed to the program by socket activation.
#[derive(Debug)]
pub(super) struct Listen {
    pub(super) fd: OwnedFd,
    pub(super) name: Box<str>,
}

/// What the program's environment gains.
pub(super) struct Additions<'a> {
    pub(super) listen: &'a [Arc<Listen>],
    /// `WATCHDOG_USEC`, in microseconds.
    pub(super) watchdog_usec: Option<u64>,
}

/// Why a name cannot be an `FDNAME`: systemd's rule (at most 255
/// characters, printable ASCII, no `:`, which separates the names in
/// `LISTEN_FDNAMES`).
pub(super) fn bad_fd_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else if name.contains(':') {
        Some("contains ':', which separates the names in LISTEN_FDNAMES")
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        Some("has a character that is not printable ASCII (a space, a control or a non-ASCII one)")
    } else {
        None
    }
}

/// Makes `cmd` start its program through the launch's own `execve`, with
/// `additions` in its environment. Call it last, after every other change
/// to `cmd`: its closure must be the last `pre_exec` to run, and the
/// environment is read now.
pub(super) fn exec_with(
    cmd: &mut Command,
    additions: &Additions<'_>,
) -> Result<ExecReport, LaunchError> {
    let setup = |what: String| LaunchError::Exec {
        program: cmd.get_program().to_owned(),
        problem: what,
    };
    for listen in additions.listen {
        if let Some(why) = bad_fd_name(&listen.name) {
            return Err(setup(format!("the socket name {:?} {why}", listen.name)));
        }
    }
    let cleared = env_cleared(cmd).ok_or_else(|| {
        setup("cannot tell whether the Command's environment was cleared (std's Debug output changed)".into())
    })?;
    let mut env: Vec<(OsString, OsString)> = if cleared {
        Vec::new()
    } else {
        std::env::vars_os().collect()
    };
    for (key, value) in cmd.get_envs() {
        env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    // The variables the launch sets replace any of the same name; the
    // others pass as the Command has them (an inherited LISTEN_PID or
    // WATCHDOG_PID names another process, so the program ignores them).
    let mut ours: Vec<&str> = Vec::new();
    if !additions.listen.is_empty() {
        ours.extend(["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]);
    }
    if additions.watchdog_usec.is_some() {
        ours.extend(["WATCHDOG_PID", "WATCHDOG_USEC"]);
    }
    env.retain(|(k, _)| !ours.iter().any(|o| k == o));
    let mut pid_vars: Vec<&[u8]> = Vec::new();
    if !additions.listen.is_empty() {
        let names: Vec<&str> = additions.listen.iter().map(|l| &*l.name).collect();
        env.push((
            "LISTEN_FDS".into(),
            additions.listen.len().to_string().into(),
        ));
        env.push(("LISTEN_FDNAMES".into(), names.join(":").into()));
        pid_vars.push(b"LISTEN_PID");
    }
    if let Some(usec) = additions.watchdog_usec {
        env.push(("WATCHDOG_USEC".into(), usec.to_string().into()));
        pid_vars.push(b"WATCHDOG_PID");
    }
    let mut env_strings = Vec::with_capacity(env.len());
    for (key, value) in &env {
        let line = [key.as_bytes(), b"=", value.as_bytes()].concat();
        if line.contains(&0) || key.is_empty() || key.as_bytes().contains(&b'=') {
            return Err(setup(format!(
                "the environment variable {} cannot be passed (a NUL, or '=' in its name)",
                key.to_string_lossy()
            )));
        }
        env_strings.push(line);
    }
    let mut argv = Vec::new();
    for arg in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        if arg.as_bytes().contains(&0) {
            return Err(setup("an argument contains a NUL".into()));
        }
        argv.push(arg.as_bytes().to_vec());
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let candidates = candidates(cmd.get_program(), path)
        .ok_or_else(|| setup("the program's name contains a NUL or is empty".into()))?;
    let fds: Vec<_> = additions.listen.iter().map(|l| l.fd.as_raw_fd()).collect();
    let first_free = 3 + std::ffi::c_int::try_from(fds.len()).unwrap_or(std::ffi::c_int::MAX - 3);
    let (reader, writer) = TokenPipe::make().map_err(LaunchError::Setup)?.split();
    let writer = writer.at_least(first_free).map_err(LaunchError::Setup)?;
    let listen: Vec<Arc<Listen>> = additions.listen.to_vec();
    let mut plan = ExecPlan::new(
        candidates,
        argv,
        env_strings,
        &pid_vars,
        fds,
        writer.as_raw_fd(),
    );
    let exec = move || {
        // Keeps the sockets open in every copy of the closure, so their
        // numbers stay theirs until the fork.
        let _ = &listen;
        Err(io::Error::from_raw_os_error(plan.exec().raw()))
    };
    #[allow(unsafe_code)]
    // SAFETY: the closure runs between fork and exec; `ExecPlan::exec` is
    // async-signal-safe and allocates nothing, and building the error
    // from a raw errno allocates nothing either.
    unsafe {
        cmd.pre_exec(exec);
    }
    Ok(ExecReport { reader, writer })
}

/// The pipe on which the launch's own `execve` reports its failure.
pub(super) struct ExecReport {
    reader: TokenPipeEnd,
    /// Closed by the caller as soon as the program is spawned, so the read
    /// ends at its `exec` (close-on-exec) or its exit.
    pub(super) writer: TokenPipeEnd,
}

impl ExecReport {
    /// The errno of a failed exec, once the parent's write end is closed:
    /// `None` when the program was executed. Blocks until the child has
    /// executed or ended (as `Command::spawn` itself does).
    pub(super) fn failed(self) -> Option<i32> {
        drop(self.writer);
        let mut errno = [0u8; 4];
        self.reader.read_exact(&mut errno).ok()?;
        Some(i32::from_ne_bytes(errno))
    }
}

/// Whether `env_clear` was called on `cmd`: std offers no getter, but its
/// alternate `Debug` output says it on a line of its own (`clear: true,`)
/// in an `env:` section it shows whenever the environment was changed at
/// all; no string of the user's can fake either (they are printed
/// escaped, one line each). `None` if the output is not as expected.
fn env_cleared(cmd: &Command) -> Option<bool> {
    let shown = format!("{cmd:#?}");
    let mut section = false;
    for line in shown.lines().map(str::trim) {
        match line {
            "clear: true," => return Some(true),
            "clear: false," => return Some(false),
            _ if line.starts_with("env: ") => section = true,
            _ => {}
        }
    }
    // No section: the environment is untouched, so not cleared.
    (!section).then_some(false)
}

/// Where to look for `program`, as `execvp` looks: the name itself if it
/// has a `/`, else each entry of `PATH` (the program's, else `/bin` and
/// `/usr/bin`; an empty entry is the working directory).
fn candidates(program: &OsStr, path: Option<&OsStr>) -> Option<Vec<Box<std::ffi::CStr>>> {
    let name = program.as_bytes();
    if name.is_empty() {
        return None;
    }
    let to_c = |bytes: Vec<u8>| CString::new(bytes).ok().map(CString::into_boxed_c_str);
    if name.contains(&b'/') {
        return Some(vec![to_c(name.to_vec())?]);
    }
    let path = path.map_or(&b"/bin:/usr/bin"[..], OsStr::as_bytes);
    path.split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            to_c([dir, b"/", name].concat())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_colon_a_space_or_too_long_cannot_name_a_socket() {
        assert_eq!(bad_fd_name("web"), None);
        assert_eq!(bad_fd_name("a-b_c.d"), None);
        for bad in ["", "a:b", "a b", "tab\there", "é", &"x".repeat(256)] {
            assert!(bad_fd_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn the_program_is_looked_for_as_execvp_looks() {
        let c = |p: &str, path: Option<&str>| {
            candidates(OsStr::new(p), path.map(OsStr::new)).map(|v| {
                v.iter()
                    .map(|c| c.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(c("./x", Some("/a")), Some(vec!["./x".to_owned()]));
        assert_eq!(
            c("sh", Some("/a::/b")),
            Some(vec!["/a/sh".into(), "./sh".into(), "/b/sh".into()])
        );
        assert_eq!(
            c("sh", None),
            Some(vec!["/bin/sh".into(), "/usr/bin/sh".into()])
        );
        assert_eq!(c("", None), None);
    }

    #[test]
    fn a_cleared_environment_is_told_from_a_changed_one() {
        let mut cmd = Command::new("x");
        assert_eq!(env_cleared(&cmd), Some(false));
        cmd.env("A", "\n        clear: true,");
        assert_eq!(env_cleared(&cmd), Some(false));
        cmd.env_clear();
        assert_eq!(env_cleared(&cmd), Some(true));
    }
}
