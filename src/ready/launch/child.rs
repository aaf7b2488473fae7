//! The program a launch started: its pid (or the one it named with
//! `MAINPID=`), control over it, its piped stdio, and the promise that it
//! is never left a zombie.

use std::ffi::c_int;
use std::os::fd::BorrowedFd;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use crate::error::Error;
use crate::process::spawn::reap_in_background;
use crate::process::{ChildExit, Process};
use crate::sys;

/// A program [`launch`](super::launch) started: its pid, control over it,
/// the last `STATUS=` text it sent, and the stdio handles the caller asked
/// for with `Stdio::piped()`.
///
/// It is never left a zombie. Dropped while the program runs, a ready
/// program keeps running and a reaper thread of this process collects it
/// when it ends (as if it had been started in the background); a program
/// held in a [`LaunchError`](super::LaunchError) is killed first, unless
/// the caller took it out with
/// [`LaunchError::into_child`](super::LaunchError::into_child) or turned
/// that off with [`kill_on_drop`](Self::kill_on_drop).
#[derive(Debug)]
pub struct ReadyChild {
    /// The program we started: our child, ours to reap.
    pub(super) launched: Process,
    /// The process it named with `MAINPID=`, if any: not our child.
    pub(super) main: Option<Process>,
    pub(super) status: Option<String>,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) stdout: Option<ChildStdout>,
    pub(super) stderr: Option<ChildStderr>,
    /// Started in a session of its own: its process group dies with it.
    pub(super) detached: bool,
    pub(super) kill_on_drop: bool,
}

impl ReadyChild {
    /// The program's process id: the one it named with `MAINPID=` (a
    /// program that forks its daemon and announces it, as systemd's
    /// `Type=notify` daemons may), else the one that was started.
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.main.as_ref().unwrap_or(&self.launched).pid()
    }

    /// The process id of the program as started, whatever `MAINPID=` said.
    #[must_use]
    pub fn launched_pid(&self) -> libc::pid_t {
        self.launched.pid()
    }

    /// The last `STATUS=` text it sent, on the socket or the token pipe.
    #[must_use]
    pub fn status_text(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The handle for writing to its stdin, if the `Command` asked for
    /// `Stdio::piped()` (as `std::process::Child::stdin`).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The handle for reading its stdout, if piped.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// The handle for reading its stderr, if piped.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.stderr.take()
    }

    /// Whether dropping this handle kills the program (with its process
    /// group, if it was detached) before it is reaped: off for a ready
    /// program, on for one held in an error.
    pub fn kill_on_drop(&mut self, on: bool) {
        self.kill_on_drop = on;
    }

    /// Sends `signal` to [`pid`](Self::pid), through its pidfd where there
    /// is one, never to a reused pid; `ESRCH` once it has ended.
    ///
    /// # Errors
    /// As for [`DaemonParent::kill`](crate::daemon::DaemonParent::kill).
    pub fn kill(&self, signal: c_int) -> Result<(), Error> {
        self.main.as_ref().unwrap_or(&self.launched).kill(signal)
    }

    /// How it ended, without blocking: `Ok(None)` while it runs. For a
    /// process named by `MAINPID=` (not this process's child), once it has
    /// ended: [`ChildExit::Unknown`].
    ///
    /// # Errors
    /// [`Error::Os`] from `waitpid` or `poll`.
    pub fn try_wait(&mut self) -> Result<Option<ChildExit>, Error> {
        match &mut self.main {
            Some(main) => {
                // The program as started may have ended long ago: reap it.
                let _ = self.launched.try_wait();
                Ok(main
                    .ended_within(std::time::Duration::ZERO)?
                    .then_some(ChildExit::Unknown))
            }
            None => self.launched.try_wait(),
        }
    }

    /// Blocks until it ends, reaps it, and says how (see
    /// [`try_wait`](Self::try_wait) for a `MAINPID=` process).
    ///
    /// # Errors
    /// [`Error::Os`] from `waitpid` or `poll`.
    pub fn wait(&mut self) -> Result<ChildExit, Error> {
        match &mut self.main {
            Some(main) => {
                while !main.ended_within(std::time::Duration::from_secs(3600))? {}
                let _ = self.launched.try_wait();
                Ok(ChildExit::Unknown)
            }
            None => self.launched.wait(),
        }
    }

    /// Waits, without blocking the runtime, until it ends; reaps it and
    /// says how (feature `tokio`): the async [`wait`](Self::wait).
    ///
    /// It waits on the pidfd where there is one (Linux 5.3+), so the end
    /// is seen at once; elsewhere (other systems, or a kernel that gave no
    /// pidfd) it looks with `waitpid(WNOHANG)` every 10 ms, so the answer
    /// comes up to 10 ms late. It installs no `SIGCHLD` handler (tokio's
    /// process module does): a library's handler would change how the
    /// whole program's children are reaped. Cancel-safe: dropped, it
    /// leaves the program as it was.
    ///
    /// # Errors
    /// As for [`wait`](Self::wait); [`Error::NoRuntime`] outside a tokio
    /// runtime.
    #[cfg(feature = "tokio")]
    pub async fn exited(&mut self) -> Result<ChildExit, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        loop {
            if let Some(exit) = self.try_wait()? {
                return Ok(exit);
            }
            let watched = self.main.as_mut().unwrap_or(&mut self.launched);
            super::waiter_async::ended_within(watched, std::time::Duration::from_secs(3600))
                .await?;
        }
    }

    /// Its pidfd (Linux 5.3+), readable once it has ended: for tokio's
    /// `AsyncFd`, mio or `poll`. `None` where the system gave none.
    #[must_use]
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.main
            .as_ref()
            .unwrap_or(&self.launched)
            .borrowed_pidfd()
    }

    /// Kills what this handle stands for: the `MAINPID=` process, and the
    /// program as started with (if detached) its process group.
    pub(super) fn kill_all(&mut self) {
        if let Some(main) = &self.main {
            let _ = main.kill(libc::SIGKILL);
        }
        if self.detached {
            // It leads its own process group; the group's id cannot be
            // given to another process while any member lives.
            let _ = sys::kill(-self.launched.pid(), libc::SIGKILL);
        }
        if !self.launched.is_reaped() {
            let _ = self.launched.kill(libc::SIGKILL);
        }
    }
}

impl Drop for ReadyChild {
    fn drop(&mut self) {
        if self.kill_on_drop {
            self.kill_all();
        }
        if !self.launched.is_reaped() {
            reap_in_background(self.launched.take());
        }
    }
}

#[cfg(tokenpipe_linux_like)]
impl std::os::fd::AsFd for ReadyChild {
    /// Borrows the pidfd.
    ///
    /// # Panics
    /// Where the kernel gave no pidfd (before 5.3, or refused by
    /// seccomp), as `DaemonParent`'s `as_fd` does; use
    /// [`ReadyChild::pidfd`] where that can happen.
    #[track_caller]
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.pidfd() {
            Some(fd) => fd,
            None => crate::process::no_pidfd("ReadyChild"),
        }
    }
}
