//! Containment (Linux): every process a launch started, found and held by
//! pidfd, so that a timeout or a failure kills all of it, however it
//! forked, and nothing else.
//!
//! This process becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`), so an
//! orphan among a launched program's descendants (a daemon that forked
//! twice and called `setsid`) becomes this process's child instead of
//! init's, and the program is started in a session of its own. A process
//! belongs to the launch when, at a look:
//!
//! - it is in the program's session, while the program is unreaped (its
//!   zombie keeps the session's id from being given to anyone else); or
//! - its parent is the program or a process already held, and that parent
//!   is still alive after the child's pidfd was taken (a parent's end
//!   re-parents its children at once, so the pair was real); or
//! - it is an orphan this process adopted (its parent is this process, it
//!   is outside this process's session, and no launch started it), and
//!   this launch is the only contained launch alive in the process: with
//!   two or more, such an orphan cannot be told apart and is left alone.
//!
//! Each one found is held by a pidfd from then on, so a later look needs no
//! ancestry to know it. What no look saw (a process that forked and lost
//! its parent between two looks, with another contained launch alive) is
//! not the launch's: the docs of `LaunchOptions::contain` say so.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::procfs::{self, Stat};
use crate::process::Process;
use crate::sys;

/// The programs every launch of this process started and has not yet
/// seen reaped: never another launch's orphan, whatever rule C says.
static LAUNCHED: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// How many contained launches are alive in this process.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Notes a program a launch started (containment or not), so that no
/// contained launch ever takes it for its own orphan.
pub(super) fn note_launched(pid: libc::pid_t) {
    let mut launched = LAUNCHED.lock().unwrap_or_else(|e| e.into_inner());
    // Forget the ones that have been reaped since: their numbers are free.
    launched.retain(|&pid| still_our_child(pid));
    launched.push(pid);
}

/// Whether `pid` is still an unreaped child of this process (a look that
/// reaps nothing). A number reused by another child of ours also says yes,
/// which only ever leaves a process alone.
fn still_our_child(pid: libc::pid_t) -> bool {
    sys::waitid(sys::WaitTarget::Pid(pid), libc::WNOHANG | libc::WNOWAIT)
        != Err(crate::error::Errno::ECHILD)
}

fn launched_by_us(pid: libc::pid_t) -> bool {
    let launched = LAUNCHED.lock().unwrap_or_else(|e| e.into_inner());
    launched.contains(&pid) && still_our_child(pid)
}

/// What one look knows of the program and of this process.
struct Look {
    program: libc::pid_t,
    /// The program is unreaped: its pid and session id are its own.
    pinned: bool,
    program_alive: bool,
    me: libc::pid_t,
    own_session: libc::pid_t,
    /// This is the only contained launch alive in the process.
    sole: bool,
}

/// One launch's contained processes, beyond the program itself.
#[derive(Debug)]
pub(super) struct Containment {
    members: Vec<Process>,
}

impl Containment {
    /// Makes this process a child subreaper (once and for good: the
    /// setting is process-wide) and counts a contained launch alive.
    pub(super) fn start() -> Result<Containment, crate::error::Errno> {
        sys::become_child_subreaper()?;
        LIVE.fetch_add(1, Ordering::SeqCst);
        Ok(Containment {
            members: Vec::new(),
        })
    }

    /// Whether `pid` is held: the program or a process found at a look.
    pub(super) fn holds(&self, launched: &Process, pid: libc::pid_t) -> bool {
        pid == launched.pid() || self.members.iter().any(|m| m.pid() == pid)
    }

    /// The held process `pid`, with a pidfd of its own for the caller.
    pub(super) fn member(&self, pid: libc::pid_t) -> Option<Process> {
        use std::os::fd::IntoRawFd;
        let held = self.members.iter().find(|m| m.pid() == pid)?;
        let fd = held.borrowed_pidfd()?.try_clone_to_owned().ok()?;
        Some(Process::stranger_from_pidfd(pid, fd.into_raw_fd()))
    }

    /// Looks for new members, and lets go of the ones that ended (reaping
    /// those that are this process's children).
    pub(super) fn refresh(&mut self, launched: &mut Process) {
        self.members
            .retain_mut(|m| matches!(m.try_wait(), Ok(None)));
        let me = sys::getpid();
        let Some(own_session) = procfs::stat(me).map(|s| s.session) else {
            return;
        };
        // While the program is unreaped (`peek` leaves it so), its session
        // and its children are its own.
        let state = launched.peek();
        let pinned = !launched.is_reaped();
        let look = Look {
            program: launched.pid(),
            pinned,
            program_alive: pinned && matches!(state, Ok(None)),
            me,
            own_session,
            sole: LIVE.load(Ordering::SeqCst) == 1,
        };
        let all = procfs::all();
        // Rule B reaches a chain one link per pass.
        for _ in 0..16 {
            let mut found = false;
            for s in &all {
                if s.pid == look.program || s.pid == me || self.holds(launched, s.pid) {
                    continue;
                }
                if self.claims(s, &look) {
                    found |= self.take(s, launched, &look);
                }
            }
            if !found {
                break;
            }
        }
    }

    /// Whether a process, as `s` shows it, belongs to the launch by the
    /// rules in the module docs.
    fn claims(&self, s: &Stat, look: &Look) -> bool {
        (look.pinned && s.session == look.program)
            || (look.program_alive && s.ppid == look.program)
            || self.members.iter().any(|m| m.pid() == s.ppid)
            || (look.sole
                && s.ppid == look.me
                && s.session != look.own_session
                && !launched_by_us(s.pid))
    }

    /// Takes a pidfd for the process `s` found, reads it again, and keeps
    /// it if it still belongs: the pidfd then names exactly the process
    /// the rules matched.
    fn take(&mut self, s: &Stat, launched: &mut Process, look: &Look) -> bool {
        let process = Process::stranger(s.pid);
        if process.pidfd().is_none() {
            return false;
        }
        let Some(again) = procfs::stat(s.pid) else {
            return false;
        };
        if !self.claims(&again, look) {
            return false;
        }
        // A parent-rule match counts only if that parent is alive now: it
        // then was the child's parent when the line was read.
        let parent_alive = if again.ppid == launched.pid() {
            matches!(launched.peek(), Ok(None))
        } else if let Some(parent) = self.members.iter_mut().find(|m| m.pid() == again.ppid) {
            matches!(parent.ended_within(core::time::Duration::ZERO), Ok(false))
        } else {
            true // the session or orphan rule, which needs no parent
        };
        if !parent_alive && again.session != launched.pid() {
            return false;
        }
        self.members.push(process);
        true
    }

    /// Sends `signal` to every member through its pidfd (a member that has
    /// ended is not signalled: the kernel says `ESRCH`).
    pub(super) fn signal_all(&self, signal: libc::c_int) -> bool {
        let mut any = false;
        for member in &self.members {
            any |= member.kill(signal).is_ok();
        }
        any
    }

    /// The members still held, for the reaper once the launch lets go.
    pub(super) fn take_members(&mut self) -> Vec<Process> {
        core::mem::take(&mut self.members)
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}
