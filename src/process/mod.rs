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
/// use tokenpipe::ChildExit;
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
    /// It ended, but how is not this process's to know: it was not this
    /// process's child (a daemon named by `MAINPID=`, whose status goes
    /// to its own parent), or its exit status was collected elsewhere
    /// (this process ignores `SIGCHLD`, so the kernel reaps children
    /// itself; or a handler or another thread reaped it first).
    Unknown,
}

impl ChildExit {
    /// Decodes a wait status from `waitpid`. Stopped and continued
    /// statuses are never asked for (no `WUNTRACED`), so anything that is
    /// not an exit is a death by signal.
    // On Linux the crate waits with `waitid`, which says this in fields.
    #[cfg_attr(tokenpipe_linux_like, allow(dead_code))]
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
                "ended (how is not known here: it was not this process's child, or its exit status \
                 was collected elsewhere)"
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

    /// Someone else's process, held by a pidfd the caller owns and gives
    /// over (opened while the caller knew the pid named it).
    #[cfg(all(tokenpipe_launch, tokenpipe_linux_like))]
    pub(crate) fn stranger_from_pidfd(pid: libc::pid_t, pidfd: c_int) -> Process {
        Process {
            pid,
            pidfd,
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

    /// How it ended, if it has, without blocking; reaps it.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ChildExit>> {
        match self.relation {
            Relation::Reaped(exit) => Ok(Some(exit)),
            Relation::Child => self.wait_child(libc::WNOHANG),
            Relation::Stranger => {
                if self.pidfd == NO_PIDFD {
                    return Err(Error::NotAChild);
                }
                if !self.ended_within(Duration::ZERO)? {
                    return Ok(None);
                }
                // Ended. Its parent may have died first, making it ours
                // (this process may be a child subreaper): then it is ours
                // to reap, through the pidfd, which names only it.
                #[cfg(tokenpipe_linux_like)]
                if let Ok(Some(info)) =
                    sys::waitid(sys::WaitTarget::Pidfd(self.pidfd), libc::WNOHANG)
                {
                    let exit = match info {
                        sys::WaitInfo::Exited(code) => ChildExit::Exited(code),
                        sys::WaitInfo::Killed(sig) => ChildExit::Signaled(sig),
                    };
                    self.relation = Relation::Reaped(exit);
                    return Ok(Some(exit));
                }
                Err(Error::NotAChild)
            }
        }
    }

    /// Blocks until it ends, and says how.
    pub(crate) fn wait(&mut self) -> Result<ChildExit> {
        match self.relation {
            Relation::Reaped(exit) => Ok(exit),
            // With SIGCHLD ignored, the wait blocks until the child ends,
            // then finds nothing to collect: `gone`.
            Relation::Child => Ok(self.wait_child(0)?.unwrap_or_else(|| self.gone())),
            Relation::Stranger => {
                if self.pidfd != NO_PIDFD {
                    while !self.ended_within(Duration::from_secs(3600))? {}
                }
                Err(Error::NotAChild)
            }
        }
    }

    /// How it ended, if it has, without blocking and *without* reaping
    /// it where the system can look without reaping (Linux: `WNOWAIT`):
    /// an ended child stays a zombie, so its pid, and the process group
    /// and session it leads, stay its own until [`try_wait`] reaps it.
    /// Elsewhere it is reaped, as `try_wait` would.
    ///
    /// [`try_wait`]: Self::try_wait
    pub(crate) fn peek(&mut self) -> Result<Option<ChildExit>> {
        match self.relation {
            Relation::Reaped(exit) => Ok(Some(exit)),
            #[cfg(tokenpipe_linux_like)]
            Relation::Child => self.wait_child(libc::WNOHANG | libc::WNOWAIT),
            #[cfg(not(tokenpipe_linux_like))]
            Relation::Child => self.wait_child(libc::WNOHANG),
            Relation::Stranger => self.try_wait(),
        }
    }

    /// Waits for our child with `flags` through its pidfd where there is
    /// one (`waitid(P_PIDFD)`, Linux 5.4): once someone else has reaped
    /// it, that says `ECHILD` and never collects a stranger that was
    /// given its pid, as `waitpid(pid)` would if the stranger were also
    /// our child. `ECHILD` means ended and collected elsewhere (see the
    /// module docs). Without a pidfd, by pid.
    #[cfg(tokenpipe_linux_like)]
    fn wait_child(&mut self, flags: c_int) -> Result<Option<ChildExit>> {
        use sys::{WaitInfo, WaitTarget};
        let mut waited = if self.pidfd == NO_PIDFD {
            sys::waitid(WaitTarget::Pid(self.pid), flags)
        } else {
            sys::waitid(WaitTarget::Pidfd(self.pidfd), flags)
        };
        if waited == Err(Errno::EINVAL) && self.pidfd != NO_PIDFD {
            // Linux 5.3: pidfds, but no P_PIDFD yet.
            waited = sys::waitid(WaitTarget::Pid(self.pid), flags);
        }
        match waited {
            Ok(None) => Ok(None),
            Ok(Some(info)) => {
                let exit = match info {
                    WaitInfo::Exited(code) => ChildExit::Exited(code),
                    WaitInfo::Killed(sig) => ChildExit::Signaled(sig),
                };
                if flags & libc::WNOWAIT == 0 {
                    self.relation = Relation::Reaped(exit);
                }
                Ok(Some(exit))
            }
            Err(Errno::ECHILD) => Ok(Some(self.gone())),
            Err(e) => Err(Error::Os(e)),
        }
    }

    /// As above, by pid with `waitpid` (no `waitid` with `WNOWAIT` is
    /// relied on beyond Linux).
    #[cfg(not(tokenpipe_linux_like))]
    fn wait_child(&mut self, flags: c_int) -> Result<Option<ChildExit>> {
        match sys::waitpid(self.pid, flags) {
            Ok(None) => Ok(None),
            Ok(Some(status)) => {
                let exit = ChildExit::from_wait_status(status);
                self.relation = Relation::Reaped(exit);
                Ok(Some(exit))
            }
            Err(Errno::ECHILD) => Ok(Some(self.gone())),
            Err(e) => Err(Error::Os(e)),
        }
    }

    /// Sends `signal` to the process group this child leads (it was
    /// started in a session or group of its own), only while that group is
    /// provably still its own: through the pidfd where the kernel can
    /// address the group by it (Linux 6.9), else by `-pid` only while the
    /// child is unreaped, so that no stranger can hold its number as a
    /// group id. `ESRCH` once it has been reaped.
    #[cfg(tokenpipe_launch)]
    pub(crate) fn kill_group(&mut self, signal: c_int) -> Result<()> {
        if self.relation != Relation::Child {
            return Err(Error::Os(Errno::ESRCH));
        }
        #[cfg(tokenpipe_linux_like)]
        if self.pidfd != NO_PIDFD {
            match sys::pidfd_send_signal_group(self.pidfd, signal) {
                // Before Linux 6.9: by number, below.
                Err(Errno::EINVAL) => {}
                other => return other.map_err(Error::Os),
            }
        }
        // Unreaped by us; make sure nobody else reaped it either (Linux:
        // a look that leaves a zombie in place).
        #[cfg(tokenpipe_linux_like)]
        {
            self.peek()?;
            if self.relation != Relation::Child {
                return Err(Error::Os(Errno::ESRCH));
            }
        }
        sys::kill_process_group(self.pid, signal).map_err(Error::Os)
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

    /// Whether it ends within `limit`, measured on one monotonic deadline
    /// that a signal (`EINTR`) never restarts: the pidfd's readability
    /// where there is one; otherwise (our child only) a look every
    /// millisecond, which leaves it unreaped where [`peek`](Self::peek)
    /// can.
    pub(crate) fn ended_within(&mut self, limit: Duration) -> Result<bool> {
        if self.pidfd == NO_PIDFD && self.relation == Relation::Stranger {
            return Err(Error::NotAChild);
        }
        let deadline = crate::wait::Deadline::start(limit)?;
        loop {
            let left = deadline.left()?.unwrap_or(Duration::ZERO);
            if self.pidfd != NO_PIDFD {
                match sys::poll_readable(self.pidfd, crate::wait::poll_timeout_ms(left)) {
                    Ok(sys::Polled::TimedOut) => {}
                    Ok(_) => return Ok(true),
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(Error::Os(e)),
                }
            } else {
                if self.peek()?.is_some() {
                    return Ok(true);
                }
                if !left.is_zero() {
                    sys::sleep_ms(1);
                }
            }
            if left.is_zero() {
                return Ok(false);
            }
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
