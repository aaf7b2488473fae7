//! [`DaemonParent`]: the launcher's side of the hand-shake. It waits for
//! the child's set-up report, then for the daemon's readiness, and
//! controls the daemon's process (pid, pidfd, signals, exit status).

use core::ffi::c_int;
use core::time::Duration;

use super::DaemonError;
use super::report::{Report, TAG_DONE, TAG_FORKED};
use crate::end::TokenPipeEnd;
use crate::error::Error;
use crate::process::{ChildExit, Process};
use crate::sys;

/// The readiness tokens, as in bitcoind: 1 ready, 0 failed.
pub(super) const READY: u8 = 1;
const FAILED: u8 = 0;

/// How long a child that reported a failed set-up, or closed the pipe, has
/// to finish exiting before it is killed. It is normally gone in
/// microseconds; the grace only keeps its own exit status from being
/// overwritten by our `SIGKILL`.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// The launcher's view of the daemon: its readiness report, and control of
/// the process (pid, pidfd, signals, exit status).
///
/// Dropping it closes the pipe and the pidfd but never waits: a daemon
/// that is left running stays running, and one that has ended stays a
/// zombie until the launcher exits (launchers normally do, right after
/// [`wait_ready`](Self::wait_ready)) or [`wait`](Self::wait)s for it.
///
/// ```standalone_crate
/// use tokenpipe::daemon::{ChildExit, DaemonError, DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new()) }? {
///     Forked::Parent(mut daemon) => {
///         assert!(daemon.pid() > 0);
///         // The daemon dropped its notifier without a word: failure.
///         assert_eq!(daemon.wait_ready(), Err(DaemonError::DiedBeforeReady));
///         assert_eq!(daemon.wait()?, ChildExit::Exited(3));
///         // Reaped: its pid may name anyone now, so kill refuses.
///         assert!(daemon.kill(libc::SIGTERM).is_err());
///     }
///     Forked::Child(daemon) => {
///         drop(daemon);
///         std::process::exit(3);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DaemonParent {
    process: Process,
    reader: TokenPipeEnd,
}

impl DaemonParent {
    /// The launcher's side of the fork: waits for the set-up report of its
    /// child `pid` (after a double fork, the intermediate's report of the
    /// daemon's pid first, then the daemon's own), and on any failure
    /// makes sure no child is left running or unreaped.
    ///
    /// `hold` is the launcher's end of the pipe that the intermediate child
    /// of a double fork waits on, keeping the daemon's pid reserved.
    pub(super) fn await_setup(
        pid: libc::pid_t,
        reader: TokenPipeEnd,
        hold: Option<TokenPipeEnd>,
    ) -> Result<DaemonParent, DaemonError> {
        let mut child = Process::child(pid);
        let Some(hold) = hold else {
            return match Report::receive(&reader) {
                Ok(Report::Done(_)) => Ok(DaemonParent {
                    process: child,
                    reader,
                }),
                other => {
                    let grace = match other {
                        Ok(_) | Err(DaemonError::Core(Error::Eos)) => EXIT_GRACE,
                        // A stranger's byte or a failed read: the child may
                        // be alive and well, but it is not ours to leave
                        // running.
                        Err(_) => Duration::ZERO,
                    };
                    Err(setup_failure(other, child.reap_or_kill(grace)))
                }
            };
        };
        // Double fork. `child` is the intermediate: it forks the daemon,
        // reports the daemon's pid, then blocks reading `hold` without ever
        // reaping the daemon, so until we close `hold` the daemon's pid
        // cannot be reused.
        let daemon = match Report::receive(&reader) {
            Ok(Report::Forked(daemon_pid)) => Process::stranger(daemon_pid),
            other => {
                drop(hold);
                return Err(setup_failure(other, child.reap_or_kill(EXIT_GRACE)));
            }
        };
        let outcome = match Report::receive(&reader) {
            Ok(Report::Done(pid)) if pid == daemon.pid() => Ok(()),
            other => {
                // The daemon failed or died; make sure it is gone: through
                // its pidfd, which names it and nobody else whatever its pid
                // does.
                let killed = daemon.kill(libc::SIGKILL);
                if killed == Err(Error::NotAChild) && child.try_wait() == Ok(None) {
                    // No pidfd (not Linux, or Linux before 5.3). Then by
                    // pid, which is still the daemon's while its parent, our
                    // intermediate child, lives: that never reaps it, and it
                    // waits on `hold` (unless SIGCHLD is ignored there, when
                    // the kernel reaps the daemon as soon as it ends).
                    let _ = sys::kill(daemon.pid(), libc::SIGKILL);
                }
                // Not our child: how it ended went to its own parent.
                Err(setup_failure(other, None))
            }
        };
        // Let the intermediate child go, and reap it.
        drop(hold);
        child.reap_or_kill(EXIT_GRACE);
        outcome.map(|()| DaemonParent {
            process: daemon,
            reader,
        })
    }

    /// The daemon's process id (after a double fork: the daemon's own, not
    /// the intermediate child's).
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.process.pid()
    }

    /// Whether the daemon is this process's child, so that
    /// [`wait`](Self::wait) can report its exit status: true unless it was
    /// [double-forked](super::DaemonOptions::double_fork).
    #[must_use]
    pub fn is_child(&self) -> bool {
        self.process.is_child()
    }

    /// The pidfd this handle holds for the daemon, if the system gave one
    /// (Linux 5.3 and later): readable once the daemon has ended, for an
    /// event loop's `poll`. The handle keeps ownership. With `std`,
    /// `pidfd()` and `AsFd` give it as a `BorrowedFd`.
    #[must_use]
    pub fn as_raw_pidfd(&self) -> Option<c_int> {
        self.process.pidfd()
    }

    /// The daemon's pidfd as a `BorrowedFd`, for an event loop (tokio's
    /// `AsyncFd`, mio, `poll`): it becomes readable once the daemon has
    /// ended. `None` where the system gave no pidfd (not Linux, Linux before
    /// 5.3, or a seccomp filter that forbids `pidfd_open`).
    ///
    /// ```standalone_crate
    /// use tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions::new()) }? {
    ///     Forked::Parent(mut daemon) => {
    ///         if cfg!(target_os = "linux") {
    ///             assert!(daemon.pidfd().is_some());
    ///         }
    ///         assert!(daemon.wait_ready()?);
    ///         assert!(daemon.wait()?.success());
    ///     }
    ///     Forked::Child(daemon) => {
    ///         daemon.notifier.notify(true)?;
    ///         std::process::exit(0);
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    #[must_use]
    pub fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.process.borrowed_pidfd()
    }

    /// Sends `signal` to the daemon: through the pidfd where there is one
    /// (`pidfd_send_signal`), else with `kill(pid)` while the daemon is our
    /// unreaped child, so the signal can never reach a process that was
    /// given a reused pid.
    ///
    /// # Errors
    /// [`DaemonError::Core`] with: [`Error::Os`]`(ESRCH)` once
    /// [`wait`](Self::wait) or [`try_wait`](Self::try_wait) has reaped it
    /// (or, through a pidfd, once it has ended); [`Error::NotAChild`] for a
    /// double-forked daemon where there is no pidfd; [`Error::Os`] for
    /// anything else (`EINVAL` for a bad signal number, `EPERM`).
    ///
    /// # References
    /// - [Linux `pidfd_send_signal`](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
    /// - [POSIX `kill`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/kill.html)
    pub fn kill(&self, signal: c_int) -> Result<(), DaemonError> {
        Ok(self.process.kill(signal)?)
    }

    /// How the daemon ended, without blocking: `Ok(None)` while it runs.
    /// Reaps it when it has ended; asked again, gives the same answer.
    ///
    /// A double-forked daemon is not our child: its exit status goes to
    /// its own parent (init or a subreaper), so this gives `Ok(None)` while
    /// its pidfd says it runs and [`Error::NotAChild`] once it has ended,
    /// or at once where there is no pidfd.
    ///
    /// # Errors
    /// [`DaemonError::Core`] with: [`Error::NotAChild`] as above;
    /// [`Error::Os`] from `waitpid`
    /// (`ECHILD` if `SIGCHLD` is ignored, which reaps children
    /// automatically).
    ///
    /// # References
    /// - [POSIX `waitpid`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
    pub fn try_wait(&mut self) -> Result<Option<ChildExit>, DaemonError> {
        Ok(self.process.try_wait()?)
    }

    /// Blocks until the daemon ends, reaps it, and says how it ended.
    ///
    /// For a double-forked daemon this waits on its pidfd until it has
    /// ended and then returns [`Error::NotAChild`] (its exit status went to
    /// its own parent); where there is no pidfd it returns that at once.
    ///
    /// # Errors
    /// As for [`try_wait`](Self::try_wait).
    ///
    /// # References
    /// - [POSIX `waitpid`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
    pub fn wait(&mut self) -> Result<ChildExit, DaemonError> {
        Ok(self.process.wait()?)
    }

    /// Blocks until the daemon reports: `Ok(true)` for ready (token 1),
    /// `Ok(false)` for failed (token 0). The pipe is closed once an answer
    /// (or an error) has arrived. Requests for more time and status texts are skipped.
    ///
    /// # Errors
    /// [`DaemonError::DiedBeforeReady`] if the daemon exited, died or
    /// dropped its notifier first (then [`wait`](Self::wait) says how it
    /// ended); [`DaemonError::UnexpectedToken`] for any other token;
    /// [`DaemonError::Core`]`(`[`Error::Closed`]`)` if called again after
    /// an answer.
    ///
    /// # References
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    pub fn wait_ready(&mut self) -> Result<bool, DaemonError> {
        loop {
            let answer = self.reader.token_read();
            if answer == Ok(crate::ready::TOKEN_EXTEND) {
                // No deadline to push here; take the request off the pipe.
                self.take_extension()?;
                continue;
            }
            if answer == Ok(crate::ready::TOKEN_STATUS) {
                self.skip_status()?;
                continue;
            }
            return self.conclude(answer);
        }
    }

    /// Takes a status text off the pipe (its length, then its bytes, all
    /// written at once): there is nowhere to keep it without an allocator,
    /// and its bytes must not be read as tokens.
    fn skip_status(&mut self) -> Result<(), DaemonError> {
        let mut len = [0u8; 2];
        let mut left = self
            .reader
            .read_exact(&mut len)
            .map(|()| usize::from(u16::from_ne_bytes(len)));
        let mut chunk = [0u8; 64];
        while let Ok(n @ 1..) = left {
            let take = n.min(chunk.len());
            left = self
                .reader
                .read_exact(&mut chunk[..take])
                .map(|()| n - take);
        }
        match left {
            Ok(_) => Ok(()),
            // As any other answer: end of stream is a death before ready.
            Err(e) => Err(self.conclude(Err(e)).err().unwrap_or(DaemonError::Core(e))),
        }
    }

    /// Reads the microseconds after an extend-timeout token.
    fn take_extension(&mut self) -> Result<Duration, DaemonError> {
        let mut usec = [0u8; 8];
        if let Err(e) = self.reader.read_exact(&mut usec) {
            // As any other answer: the pipe is closed, end of stream is a
            // death before ready.
            return Err(self.conclude(Err(e)).err().unwrap_or(DaemonError::Core(e)));
        }
        Ok(Duration::from_micros(u64::from_ne_bytes(usec)))
    }

    /// As [`wait_ready`](Self::wait_ready), waiting at most `timeout`
    /// (see [`TokenPipeEnd::token_read_timeout`]), pushed back when the
    /// daemon asks with [`extend_timeout`](crate::ready::Notifier::extend_timeout). On
    /// [`DaemonError::Core`]`(`[`Error::TimedOut`]`)` the pipe stays open,
    /// so the caller may wait
    /// again, or [`kill`](Self::kill) the daemon.
    ///
    /// # Errors
    /// As for [`wait_ready`](Self::wait_ready), and
    /// [`DaemonError::Core`]`(`[`Error::TimedOut`]`)`.
    ///
    /// # References
    /// - [POSIX `poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    ///
    /// ```standalone_crate
    /// use tokenpipe::Error;
    /// use tokenpipe::daemon::{DaemonError, DaemonOptions, Forked, fork_daemon};
    /// use std::time::Duration;
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions::new()) }? {
    ///     Forked::Parent(mut daemon) => {
    ///         // Slow to initialise: the first wait times out, the second succeeds.
    ///         let first = daemon.wait_ready_timeout(Duration::from_millis(10));
    ///         assert_eq!(first, Err(DaemonError::Core(Error::TimedOut)));
    ///         assert!(daemon.wait_ready_timeout(Duration::from_secs(10))?);
    ///     }
    ///     Forked::Child(daemon) => {
    ///         std::thread::sleep(Duration::from_millis(200));
    ///         daemon.notifier.notify(true)?;
    ///         std::process::exit(0);
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_ready_timeout(&mut self, timeout: Duration) -> Result<bool, DaemonError> {
        // Saturating: a timeout of `Duration::MAX` means "forever", not a panic.
        let mut deadline = sys::monotonic_now()
            .map_err(Error::Os)?
            .saturating_add(timeout);
        loop {
            let now = sys::monotonic_now().map_err(Error::Os)?;
            let answer = self.reader.token_read_timeout(deadline.saturating_sub(now));
            match answer {
                Err(Error::TimedOut) => return Err(DaemonError::Core(Error::TimedOut)),
                // The daemon asked for more time (Notifier::extend_timeout).
                Ok(crate::ready::TOKEN_EXTEND) => {
                    let extra = self.take_extension()?;
                    let now = sys::monotonic_now().map_err(Error::Os)?;
                    deadline = deadline.max(now.saturating_add(extra));
                }
                Ok(crate::ready::TOKEN_STATUS) => self.skip_status()?,
                _ => return self.conclude(answer),
            }
        }
    }

    /// The answer to the readiness wait, once one has come: the pipe is
    /// closed, and end of stream means the daemon died before it was ready.
    fn conclude(&mut self, answer: Result<u8, Error>) -> Result<bool, DaemonError> {
        self.reader.close();
        match answer {
            Ok(READY) => Ok(true),
            Ok(FAILED) => Ok(false),
            Ok(other) => Err(DaemonError::UnexpectedToken(other)),
            Err(Error::Eos) => Err(DaemonError::DiedBeforeReady),
            Err(e) => Err(DaemonError::Core(e)),
        }
    }
}

/// What the launcher makes of a set-up that did not end in the report it
/// waited for: the child's own report of a failure, its death (end of
/// stream; `exit` says how it ended, where that is known), or the error
/// that reading the report gave.
fn setup_failure(received: Result<Report, DaemonError>, exit: Option<ChildExit>) -> DaemonError {
    match received {
        Ok(Report::StepFailed(step, errno)) => DaemonError::SetupFailed { step, errno },
        Ok(Report::AlreadyRunning(pid)) => DaemonError::AlreadyRunning(pid),
        // A report that does not belong here: `Forked` where no double
        // fork waits for it, `Done` before the daemon's pid or naming
        // another process.
        Ok(Report::Done(_)) => DaemonError::UnexpectedToken(TAG_DONE),
        Ok(Report::Forked(_)) => DaemonError::UnexpectedToken(TAG_FORKED),
        Err(DaemonError::Core(Error::Eos)) => DaemonError::DiedDuringSetup(exit),
        Err(e) => e,
    }
}
