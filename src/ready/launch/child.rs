//! The program a launch started: its pid (or the one it named with
//! `MAINPID=`), control over it, its piped stdio, and the promise that it
//! is never left a zombie.

use std::ffi::c_int;
use std::os::fd::BorrowedFd;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use super::contain::Containment;
use super::kept::Kept;
use crate::error::Error;
use crate::process::spawn::reap_in_background;
use crate::process::{ChildExit, Process};

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
    pub(super) main: Option<Box<Process>>,
    pub(super) status: Option<Box<str>>,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) stdout: Option<ChildStdout>,
    pub(super) stderr: Option<ChildStderr>,
    /// Started in a session of its own: its process group dies with it.
    pub(super) detached: bool,
    /// With [`contain`](super::LaunchOptions::contain): every process the
    /// launch holds beyond the program.
    pub(super) contain: Option<Box<Containment>>,
    /// The notify socket, kept while its processes may still speak.
    pub(super) notify: Option<Kept>,
    pub(super) kill_on_drop: bool,
}

impl ReadyChild {
    /// The program's process id: the one it named with `MAINPID=` (a
    /// program that forks its daemon and announces it, as systemd's
    /// `Type=notify` daemons may), else the one that was started.
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.main.as_deref().unwrap_or(&self.launched).pid()
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
        self.main.as_deref().unwrap_or(&self.launched).kill(signal)
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
                match main.try_wait() {
                    // Ours to reap (containment made it our child): how.
                    Ok(exit) => Ok(exit),
                    // Ended, its status its parent's.
                    Err(Error::NotAChild) => Ok(Some(ChildExit::Unknown)),
                    Err(e) => Err(e),
                }
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
                self.try_wait()
                    .map(|exit| exit.unwrap_or(ChildExit::Unknown))
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
            let watched = self.main.as_deref_mut().unwrap_or(&mut self.launched);
            super::waiter_async::ended_within(watched, std::time::Duration::from_secs(3600))
                .await?;
        }
    }

    /// Serves the program's notify socket until every process that spoke
    /// on it has ended or had its `BARRIER=1` served, or `within` has
    /// passed; whether they all had. For a launcher about to exit after
    /// the verdict (the socket goes with it): `systemd-notify --ready`
    /// sends `BARRIER=1` after `READY=1` and fails if the socket is gone
    /// before it is served. While this handle lives, the socket is kept
    /// and served by a thread of this process anyway; this only waits.
    /// `true` at once where nothing was heard on the socket.
    ///
    /// Not waited for: the program itself and its main process (they are
    /// the service, which runs on; a barrier they send before this returns
    /// is served), nor this process and its ancestors (`systemd-notify`
    /// sends its messages in its parent's name, and only its barrier in
    /// its own: the helper is then waited for by its own pid).
    pub fn settle(&mut self, within: std::time::Duration) -> bool {
        let service = [
            self.launched.pid(),
            self.main.as_deref().map_or(0, Process::pid),
        ];
        let lives_on = |pid: libc::pid_t| service.contains(&pid) || lives_on_above(pid);
        self.notify
            .as_ref()
            .is_none_or(|kept| kept.settle(within, &lives_on))
    }

    /// Its pidfd (Linux 5.3+), readable once it has ended: for tokio's
    /// `AsyncFd`, mio or `poll`. `None` where the system gave none.
    #[must_use]
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.main
            .as_deref()
            .unwrap_or(&self.launched)
            .borrowed_pidfd()
    }

    /// Kills what this handle stands for: the `MAINPID=` process, what
    /// the program left ([`kill_rest`](Self::kill_rest)) and the program.
    pub(super) fn kill_all(&mut self) {
        if let Some(main) = &self.main {
            let _ = main.kill(libc::SIGKILL);
        }
        self.kill_rest();
        if !self.launched.is_reaped() {
            let _ = self.launched.kill(libc::SIGKILL);
        }
    }

    /// Kills what the program started, as far as the launch reaches it:
    /// with containment, every process it holds (each through its pidfd);
    /// detached or contained, the process group the program leads, only
    /// while the program is unreaped (its group's id is then its own; once
    /// it is reaped, no group is signalled: the number may be anyone's).
    /// Whether anything was there to signal.
    pub(super) fn kill_rest(&mut self) -> bool {
        let mut any = false;
        if let Some(contained) = &mut self.contain {
            contained.refresh(&mut self.launched);
            any |= contained.signal_all(libc::SIGKILL);
        }
        if self.detached || self.contain.is_some() {
            any |= self.launched.kill_group(libc::SIGKILL).is_ok();
        }
        any
    }
}

impl Drop for ReadyChild {
    fn drop(&mut self) {
        if self.kill_on_drop {
            self.kill_all();
        }
        // The socket goes now (its path with it), releasing any barrier
        // still queued there.
        self.notify = None;
        if !self.launched.is_reaped() {
            reap_in_background(self.launched.take());
        }
        // What containment holds that is this process's child (an orphan
        // it adopted) is reaped as it ends; the rest belongs to others.
        if let Some(contained) = &mut self.contain {
            for member in contained.take_members() {
                reap_in_background(member);
            }
        }
        if let Some(main) = self.main.take() {
            reap_in_background(*main);
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

/// Whether `pid` is this process or one of its ancestors.
#[cfg(tokenpipe_linux_like)]
fn lives_on_above(pid: libc::pid_t) -> bool {
    super::procfs::is_self_or_ancestor(pid)
}

#[cfg(not(tokenpipe_linux_like))]
fn lives_on_above(pid: libc::pid_t) -> bool {
    pid == crate::sys::getpid()
}
