//! Process control, written once: a process's pid and (on Linux) its pidfd,
//! sending it signals, and learning how it ended, without ever signalling
//! or waiting for a stranger that was given a reused pid.
//!
//! [`daemon::DaemonParent`](crate::daemon::DaemonParent) and the
//! launcher's `ReadyChild` are built on it.
//!
//! A process whose `SIGCHLD` is ignored (`SIG_IGN`, inherited across
//! `exec`), or whose `SIGCHLD` handler reaps every child, never sees its
//! children's exit statuses: the kernel (or the handler) collects them
//! first, and `waitpid` then fails with `ECHILD`. That is read here as
//! "ended, status unknown" ([`ChildExit::Unknown`]), never as "still
//! running", so nothing waits forever or spins on a pidfd that stays
//! readable.

#[cfg(tokenpipe_launch)]
pub(crate) mod spawn;

use core::ffi::c_int;
use core::fmt;
use core::time::Duration;

use crate::error::{Errno, Error, Result};
use crate::sys;

/// How a process ended: the part of its wait status that says so.
///
/// ```
/// use bitcoin_tokenpipe::ChildExit;
///
/// assert!(ChildExit::Exited(0).success());
/// assert_eq!(ChildExit::Exited(3).code(), Some(3));
/// assert_eq!(ChildExit::Signaled(libc::SIGKILL).signal(), Some(libc::SIGKILL));
/// assert_eq!(ChildExit::Exited(2).to_string(), "exited with status 2");
/// assert_eq!(ChildExit::Unknown.code(), None);
/// assert!(!ChildExit::Unknown.success());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildExit {
    /// It called `exit` (or returned from `main`) with this status.
    Exited(i32),
    /// A signal with this number ended it.
    Signaled(i32),
    /// It ended, but how is not this process's to know: its exit status
    /// was collected elsewhere. This process ignores `SIGCHLD` (the
    /// kernel then reaps children itself), a `SIGCHLD` handler reaped it,
    /// or it was not this process's child (a daemon named by `MAINPID=`).
    Unknown,
}

impl ChildExit {
    /// Decodes a wait status from `waitpid`. Stopped and continued
    /// statuses are never asked for (no `WUNTRACED`), so anything that is
    /// not an exit is a death by signal.
    pub(crate) fn from_wait_status(status: c_int) -> ChildExit {
        if libc::WIFEXITED(status) {
            ChildExit::Exited(libc::WEXITSTATUS(status))
        } else {
            ChildExit::Signaled(libc::WTERMSIG(status))
        }
    }

    /// Whether it exited with status 0.
    #[must_use]
    pub const fn success(self) -> bool {
        matches!(self, ChildExit::Exited(0))
    }

    /// The exit status, if it exited.
    #[must_use]
    pub const fn code(self) -> Option<i32> {
        match self {
            ChildExit::Exited(code) => Some(code),
            ChildExit::Signaled(_) | ChildExit::Unknown => None,
        }
    }

    /// The signal that ended it, if one did.
    #[must_use]
    pub const fn signal(self) -> Option<i32> {
        match self {
            ChildExit::Signaled(sig) => Some(sig),
            ChildExit::Exited(_) | ChildExit::Unknown => None,
        }
    }
}

impl fmt::Display for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildExit::Exited(code) => write!(f, "exited with status {code}"),
            ChildExit::Signaled(sig) => write!(f, "was killed by signal {sig}"),
            ChildExit::Unknown => write!(
                f,
                "ended (its exit status was collected elsewhere: SIGCHLD ignored or reaped by a handler)"
            ),
        }
    }
}

/// Whose process it is: ours to reap, or someone else's child that we can
/// only watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// Our child, not yet reaped: its pid cannot be reused until we reap
    /// it, so signalling by pid is safe.
    Child,
    /// Our child, reaped: the pid may name anyone now. Keeps how it ended.
    Reaped(ChildExit),
    /// Not our child (a double-forked daemon belongs to init): we can
    /// signal and watch it through a pidfd, never by pid, and its exit
    /// status goes to its own parent.
    Stranger,
}

/// A process we started: its pid, its pidfd where the system has them,
/// and whether it is still ours to reap.
#[derive(Debug)]
pub(crate) struct Process {
    pid: libc::pid_t,
    /// An owned pidfd at 3 or above, or -1 where there is none.
    pidfd: c_int,
    relation: Relation,
}

/// No pidfd: the platform has none, or the kernel refused.
const NO_PIDFD: c_int = -1;

/// A pidfd for `pid`, moved above stdio, or [`NO_PIDFD`] where pidfds are
/// missing (Linux before 5.3, a seccomp filter, other systems): callers
/// fall back to the pid, which is safe for an unreaped child.
fn open_pidfd(pid: libc::pid_t) -> c_int {
    #[cfg(tokenpipe_linux_like)]
    {
        match sys::pidfd_open(pid).and_then(sys::above_stdio) {
            Ok(fd) => fd,
            Err(_) => NO_PIDFD,
        }
    }
    #[cfg(not(tokenpipe_linux_like))]
    {
        let _ = pid;
        NO_PIDFD
    }
}

/// What became of a process that was sent a signal to end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Killed {
    /// It ended (of the signal, or before it) and, if ours, was reaped.
    Ended(ChildExit),
    /// The system refused the signal (`EPERM`: a set-user-ID program that
    /// took another user id): it runs on.
    Refused(Errno),
    /// The signal went out, but the process had not ended within the
    /// bound (stuck in an uninterruptible wait in the kernel).
    Lingering,
}

impl Process {
    /// Our own child with the pidfd its launch already holds (opened by
    /// the child itself before `exec`, so it names exactly it).
    #[cfg(tokenpipe_launch)]
    pub(crate) fn child_with_pidfd(pid: libc::pid_t, pidfd: Option<c_int>) -> Process {
        match pidfd {
            Some(pidfd) => Process {
                pid,
                pidfd,
                relation: Relation::Child,
            },
            None => Process::child(pid),
        }
    }

    /// Our own child, just forked and not yet reaped, so the pidfd (opened
    /// now, before anyone can reap it) names exactly it.
    pub(crate) fn child(pid: libc::pid_t) -> Process {
        Process {
            pid,
            pidfd: open_pidfd(pid),
            relation: Relation::Child,
        }
    }

    /// Someone else's child. The caller must know the pid still names the
    /// process it means at this moment (for a double-forked daemon: its
    /// parent, our child, has not reaped it and cannot yet).
    pub(crate) fn stranger(pid: libc::pid_t) -> Process {
        Process {
            pid,
            pidfd: open_pidfd(pid),
            relation: Relation::Stranger,
        }
    }

    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    pub(crate) fn pidfd(&self) -> Option<c_int> {
        (self.pidfd != NO_PIDFD).then_some(self.pidfd)
    }

    pub(crate) fn is_child(&self) -> bool {
        self.relation != Relation::Stranger
    }

    /// Sends `signal`: through the pidfd where there is one, else by pid
    /// while the pid is provably still our child's.
    pub(crate) fn kill(&self, signal: c_int) -> Result<()> {
        match self.relation {
            Relation::Reaped(_) => return Err(Error::Os(Errno::ESRCH)),
            Relation::Stranger if self.pidfd == NO_PIDFD => return Err(Error::NotAChild),
            _ => {}
        }
        #[cfg(tokenpipe_linux_like)]
        if self.pidfd != NO_PIDFD {
            return sys::pidfd_send_signal(self.pidfd, signal).map_err(Error::Os);
        }
        sys::kill(self.pid, signal).map_err(Error::Os)
    }

    /// How it ended, if it has, without blocking.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ChildExit>> {
        match self.relation {
            Relation::Reaped(exit) => Ok(Some(exit)),
            Relation::Child => match sys::waitpid(self.pid, libc::WNOHANG) {
                Ok(None) => Ok(None),
                Ok(Some(status)) => Ok(Some(self.reaped(status))),
                // Our unreaped child, yet no child to wait for: something
                // else collected it (see the module docs).
                Err(Errno::ECHILD) => Ok(Some(self.gone())),
                Err(e) => Err(Error::Os(e)),
            },
            Relation::Stranger => {
                if self.pidfd == NO_PIDFD || self.ended_within(Duration::ZERO)? {
                    Err(Error::NotAChild)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Blocks until it ends, and says how.
    pub(crate) fn wait(&mut self) -> Result<ChildExit> {
        match self.relation {
            Relation::Reaped(exit) => Ok(exit),
            Relation::Child => match sys::waitpid(self.pid, 0) {
                Ok(Some(status)) => Ok(self.reaped(status)),
                // As in try_wait: collected elsewhere. (With SIGCHLD
                // ignored, waitpid blocks until the child ends, then says
                // this.)
                Ok(None) | Err(Errno::ECHILD) => Ok(self.gone()),
                Err(e) => Err(Error::Os(e)),
            },
            Relation::Stranger => {
                if self.pidfd != NO_PIDFD {
                    while !self.ended_within(Duration::from_secs(3600))? {}
                }
                Err(Error::NotAChild)
            }
        }
    }

    fn reaped(&mut self, status: c_int) -> ChildExit {
        let exit = ChildExit::from_wait_status(status);
        self.relation = Relation::Reaped(exit);
        exit
    }

    /// Ended, and reaped by someone else: the pid is no longer ours.
    fn gone(&mut self) -> ChildExit {
        self.relation = Relation::Reaped(ChildExit::Unknown);
        ChildExit::Unknown
    }

    /// Moves the process out, leaving a stand-in that names nobody (already
    /// reaped, no pidfd), for an owner that must give it away in `drop`.
    #[cfg(tokenpipe_launch)]
    pub(crate) fn take(&mut self) -> Process {
        core::mem::replace(
            self,
            Process {
                pid: 0,
                pidfd: NO_PIDFD,
                relation: Relation::Reaped(ChildExit::Unknown),
            },
        )
    }

    /// Whether it has been reaped (or is known to have ended elsewhere).
    #[cfg(tokenpipe_launch)]
    pub(crate) fn is_reaped(&self) -> bool {
        matches!(self.relation, Relation::Reaped(_))
    }

    /// Whether it ends within `limit`: the pidfd's readability where there
    /// is one; otherwise (our child only) `waitpid(WNOHANG)` every
    /// millisecond, which reaps it if it has ended.
    pub(crate) fn ended_within(&mut self, limit: Duration) -> Result<bool> {
        if self.pidfd != NO_PIDFD {
            let ms = crate::wait::poll_timeout_ms(limit);
            return loop {
                match sys::poll_readable(self.pidfd, ms) {
                    Ok(polled) => break Ok(polled != sys::Polled::TimedOut),
                    Err(Errno::EINTR) => {}
                    Err(e) => break Err(Error::Os(e)),
                }
            };
        }
        if self.relation == Relation::Stranger {
            return Err(Error::NotAChild);
        }
        let mut waited = 0u128;
        loop {
            if self.try_wait()?.is_some() {
                return Ok(true);
            }
            if waited >= limit.as_millis() {
                return Ok(false);
            }
            sys::sleep_ms(1);
            waited += 1;
        }
    }

    /// Sends `signal` and waits at most `within` for it to end; reaps it
    /// if it is ours. Never blocks longer than `within`: a refused signal
    /// or a process that does not end is said so, and stays the caller's.
    pub(crate) fn kill_within(&mut self, signal: c_int, within: Duration) -> Killed {
        if let Relation::Reaped(exit) = self.relation {
            return Killed::Ended(exit);
        }
        match self.kill(signal) {
            // ESRCH: it has ended already (a pidfd says so before it is
            // reaped, and a stranger may have been reaped by its parent).
            Ok(()) | Err(Error::Os(Errno::ESRCH)) => {}
            Err(Error::Os(e)) => return Killed::Refused(e),
            // A stranger without a pidfd: no safe way to signal it.
            Err(_) => return Killed::Refused(Errno::ESRCH),
        }
        match self.ended_within(within) {
            Ok(true) => match self.relation {
                Relation::Stranger => Killed::Ended(ChildExit::Unknown),
                _ => match self.try_wait() {
                    Ok(Some(exit)) => Killed::Ended(exit),
                    // A pidfd is readable a moment before the zombie can
                    // be reaped; the wait for that is bounded by the kernel.
                    _ => self.wait().map_or(Killed::Lingering, Killed::Ended),
                },
            },
            _ => Killed::Lingering,
        }
    }

    /// The clean-up after a failed start: give it `grace` to end by itself
    /// (it usually is exiting already, and its own status says more than
    /// our `SIGKILL` would), then kill it, then reap it. Never blocks in
    /// `waitpid` on a process that may still be alive: a refused kill, or
    /// one it has not died of within [`KILL_BOUND`], returns `None`.
    ///
    /// Returns how it ended, where that can be known: `None` for a
    /// stranger, or for a process that could not be killed.
    pub(crate) fn reap_or_kill(&mut self, grace: Duration) -> Option<ChildExit> {
        if let Relation::Reaped(exit) = self.relation {
            return Some(exit);
        }
        if self.ended_within(grace).unwrap_or(false)
            && self.relation != Relation::Stranger
            && let Ok(Some(exit)) = self.try_wait()
        {
            return Some(exit);
        }
        match self.kill_within(libc::SIGKILL, KILL_BOUND) {
            Killed::Ended(ChildExit::Unknown) if self.relation == Relation::Stranger => None,
            Killed::Ended(exit) => Some(exit),
            Killed::Refused(_) | Killed::Lingering => None,
        }
    }
}

/// How long a `SIGKILL`ed process is given to end before the caller is
/// told it lingers. Death by `SIGKILL` takes microseconds unless the
/// process is stuck in an uninterruptible wait in the kernel (a dead NFS
/// server): then no bound would be long enough, and the caller must not
/// hang with it.
pub(crate) const KILL_BOUND: Duration = Duration::from_secs(2);

impl Drop for Process {
    /// Closes the pidfd. Never waits: an unreaped child stays a zombie
    /// until this process exits or someone reaps it, which is the
    /// caller's call to make.
    fn drop(&mut self) {
        if self.pidfd != NO_PIDFD {
            sys::close(self.pidfd);
        }
    }
}

/// The panic of `AsFd::as_fd` on a `DaemonParent` or `ReadyChild` that
/// holds no pidfd (the trait cannot report an error, and a `BorrowedFd`
/// must name an open fd).
#[cfg(all(feature = "std", tokenpipe_linux_like))]
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn no_pidfd(owner: &str) -> ! {
    panic!(
        "AsFd::as_fd called on a {owner} without a pidfd (the kernel has no \
         pidfd_open, or it was refused); use {owner}::pidfd, which returns None"
    )
}
