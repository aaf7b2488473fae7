//! The program a launch started: its pid (or the one it named with
//! `MAINPID=`), control over it, its piped stdio, and the promise that it
//! is never left a zombie.

use std::ffi::c_int;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use super::contain::Containment;
use super::kept::Kept;
use super::notification::{Heard, Notification};
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

/// The owner's side of the watchdog (see [`LaunchOptions::watchdog`]),
/// kept with the socket whose clock it reads.
///
/// [`LaunchOptions::watchdog`]: super::LaunchOptions::watchdog
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WatchdogState {
    pub(super) grace: Duration,
    /// When it fired (`SIGABRT` sent).
    pub(super) fired: Option<Instant>,
    /// Nothing more to do: it killed everything, or the program had ended.
    pub(super) done: bool,
    /// [`Notification::WatchdogExpired`] is yet to be handed out.
    pub(super) pending: bool,
}

/// What one look of a waiting caller found.
enum Look {
    Said(Notification),
    /// The program (its main process) has ended, and all it said is taken.
    Ended,
    /// Nothing yet; the watchdog must be looked at again then, if ever.
    Wait(Option<Instant>),
}

/// How long a blocking wait sleeps at most between two looks at the
/// watchdog's clock when nothing wakes it (a bound, not a cadence: the
/// wait wakes for the watchdog's due time itself).
const LONG_WAIT: Duration = Duration::from_secs(3600);

impl ReadyChild {
    /// The program's process id: the one it named with `MAINPID=` (a
    /// program that forks its daemon and announces it, as systemd's
    /// `Type=notify` daemons may), else the one that was started.
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.watched().pid()
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
    /// is one, never to a reused pid; `ESRCH` once it has ended. The
    /// signals are in [`interrupt`](crate::interrupt) (`SIGTERM`,
    /// `SIGKILL`, …): no `libc` needed.
    ///
    /// ```
    /// use tokenpipe::interrupt::SIGKILL;
    /// use tokenpipe::ready::{LaunchOptions, launch};
    /// use std::process::Command;
    ///
    /// let mut cmd = Command::new("/bin/sh");
    /// cmd.args(["-c", r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 30"#]);
    /// let mut child = launch(&mut cmd, LaunchOptions::new())?;
    /// child.kill(SIGKILL)?;
    /// assert_eq!(child.wait()?.signal(), Some(SIGKILL));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As for [`DaemonParent::kill`](crate::daemon::DaemonParent::kill).
    pub fn kill(&self, signal: c_int) -> Result<(), Error> {
        self.watched().kill(signal)
    }

    /// How it ended, without blocking: `Ok(None)` while it runs. For a
    /// process named by `MAINPID=` (not this process's child), once it has
    /// ended: [`ChildExit::Unknown`].
    ///
    /// # Errors
    /// [`Error::Os`] from `waitpid` or `poll`.
    pub fn try_wait(&mut self) -> Result<Option<ChildExit>, Error> {
        self.keep_watch();
        let exit = self.try_wait_now();
        self.note_reaped();
        exit
    }

    fn try_wait_now(&mut self) -> Result<Option<ChildExit>, Error> {
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
        loop {
            let limit = self.watch_limit(LONG_WAIT);
            let watched = self.watched_mut();
            if watched.ended_within(limit)? {
                break;
            }
        }
        // A watchdog that fired kills what is left once its target ends.
        self.keep_watch();
        let exit = match &mut self.main {
            Some(_) => self
                .try_wait_now()
                .map(|exit| exit.unwrap_or(ChildExit::Unknown)),
            None => self.launched.wait(),
        };
        self.note_reaped();
        exit
    }

    /// Acts on the watchdog if it is due; how long a wait may then sleep,
    /// at most `limit`, before it must look again.
    fn watch_limit(&mut self, limit: Duration) -> Duration {
        match self.keep_watch() {
            Some(at) => at.saturating_duration_since(Instant::now()).min(limit),
            None => limit,
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
            let limit = self.watch_limit(LONG_WAIT);
            let watched = self.watched_mut();
            super::waiter_async::ended_within(watched, limit).await?;
        }
    }

    /// The next thing the program said on its notify socket after the
    /// verdict ([`Notification`]), waiting at most `timeout` for one:
    /// `STATUS=`, `RELOADING=1`/`READY=1` cycles, `STOPPING=1`,
    /// `WATCHDOG=1`, `ERRNO=`, a new `MAINPID=` (honoured as the launch
    /// honours it, and followed by [`pid`](Self::pid) from then on), and
    /// the watchdog's expiry. In the order said; none is lost while at
    /// most 1024 wait to be taken (beyond, the oldest go).
    ///
    /// `Ok(None)`: the timeout passed, or the program (its main process)
    /// has ended and everything it said has been taken; then
    /// [`try_wait`](Self::try_wait) says how it ended. A program that was
    /// offered no socket (a `TMPDIR` too long for a socket address), or
    /// speaks only on the token pipe, which carries one report, says
    /// nothing later. Keeps the watchdog while it waits (see
    /// [`LaunchOptions::watchdog`](super::LaunchOptions::watchdog)).
    ///
    /// # Errors
    /// [`Error::Os`] from `poll` or `waitid`.
    pub fn next_notification(&mut self, timeout: Duration) -> Result<Option<Notification>, Error> {
        self.next_notification_or(timeout, &[])
    }

    /// [`next_notification`](Self::next_notification) that also returns
    /// `Ok(None)` as soon as one of `wake` is readable: for a supervisor
    /// that waits on something else as well, such as
    /// [`SignalInterrupt`](crate::SignalInterrupt)s' fds, to forward a
    /// signal at once (as the `launch` example does).
    ///
    /// # Errors
    /// As for `next_notification`.
    pub fn next_notification_or(
        &mut self,
        timeout: Duration,
        wake: &[BorrowedFd<'_>],
    ) -> Result<Option<Notification>, Error> {
        let until = super::waiter::deadline_after(Instant::now(), timeout);
        loop {
            let act_by = match self.look() {
                Look::Said(said) => return Ok(Some(said)),
                Look::Ended => return Ok(None),
                Look::Wait(act_by) => act_by,
            };
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let limit = act_by.map_or(until, |at| at.min(until)) - now;
            let [news, socket] = self.notify.as_ref().map_or([-1, -1], Kept::news_fds);
            let watched = self.watched().pidfd();
            // Without a pidfd, the end is looked for every 10 ms.
            let limit = if watched.is_some() {
                limit
            } else {
                limit.min(Duration::from_millis(10))
            };
            let mut fds: Vec<libc::pollfd> = [news, socket, watched.unwrap_or(-1)]
                .into_iter()
                .chain(wake.iter().map(AsRawFd::as_raw_fd))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            match crate::sys::poll_many(&mut fds, crate::wait::poll_timeout_ms(limit)) {
                Ok(_) | Err(crate::error::Errno::EINTR) => {}
                Err(e) => return Err(Error::Os(e)),
            }
            if fds[3..].iter().any(|fd| fd.revents != 0) {
                return Ok(None);
            }
        }
    }

    /// Waits, without blocking the runtime, for the next thing the program
    /// says (feature `tokio`): the async
    /// [`next_notification`](Self::next_notification), with no timeout of
    /// its own (wrap it in `tokio::time::timeout`). `Ok(None)` once the
    /// program (its main process) has ended and everything it said has been
    /// taken. Cancel-safe: a notification is taken only when it is
    /// returned. Keeps the watchdog while it waits.
    ///
    /// # Errors
    /// As for `next_notification`; [`Error::NoRuntime`] outside a tokio
    /// runtime.
    #[cfg(feature = "tokio")]
    pub async fn notified(&mut self) -> Result<Option<Notification>, Error> {
        use crate::tokio_impls::{any_readable, watch};
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let news = match &self.notify {
            Some(kept) => kept.news_fd().ok().and_then(|fd| watch(fd).ok()),
            None => None,
        };
        loop {
            let act_by = match self.look() {
                Look::Said(said) => return Ok(Some(said)),
                Look::Ended => return Ok(None),
                Look::Wait(act_by) => act_by,
            };
            let limit = act_by.map_or(LONG_WAIT, |at| at.saturating_duration_since(Instant::now()));
            let watched = self.watched();
            let pidfd = watched.borrowed_pidfd().and_then(|fd| watch(fd).ok());
            // What cannot be awaited on the reactor (the end without a
            // pidfd, the socket without the notify thread) is looked at
            // every 10 ms.
            let hears_all = match &self.notify {
                None => true, // no socket: nothing to hear
                Some(kept) => news.is_some() && kept.served_by_thread(),
            };
            let limit = if pidfd.is_some() && hears_all {
                limit
            } else {
                limit.min(Duration::from_millis(10))
            };
            let fds: Vec<_> = news.iter().chain(pidfd.iter()).collect();
            any_readable(&fds, limit).await?;
        }
    }

    /// Whether the watchdog fired: no `WATCHDOG=1` within the interval (or
    /// a `WATCHDOG=trigger`), so the main process was sent `SIGABRT` (and
    /// `SIGKILL`, with everything the launch reaches, if it had not ended
    /// after the grace period).
    #[must_use]
    pub fn watchdog_expired(&self) -> bool {
        self.notify
            .as_ref()
            .is_some_and(|kept| kept.watchdog().1.fired.is_some())
    }

    /// Whether the watchdog's expiry is yet to be handed out.
    fn expiry_pending(&self) -> bool {
        self.notify
            .as_ref()
            .is_some_and(|kept| kept.watchdog().1.pending)
    }

    /// The process whose end is the service's end: the one named by
    /// `MAINPID=` if there is one, else the one started.
    pub(super) fn watched(&self) -> &Process {
        self.main.as_deref().unwrap_or(&self.launched)
    }

    pub(super) fn watched_mut(&mut self) -> &mut Process {
        self.main.as_deref_mut().unwrap_or(&mut self.launched)
    }

    /// One look for a waiting caller: the next notification (the watchdog
    /// acted on first, so an expiry it just raised is among them), or
    /// the program's end, or when the watchdog must be looked at again.
    fn look(&mut self) -> Look {
        if let Some(said) = self.take_said() {
            return Look::Said(said);
        }
        let act_by = self.keep_watch();
        if let Some(said) = self.take_said() {
            return Look::Said(said);
        }
        if self.watched_ended() {
            return Look::Ended;
        }
        Look::Wait(act_by)
    }

    /// The next notification to hand out: the next thing said (a
    /// `MAINPID=` only if honoured), else the watchdog's expiry.
    fn take_said(&mut self) -> Option<Notification> {
        // What was said comes first: a `WATCHDOG=trigger` before the
        // expiry it caused.
        while let Some(heard) = self.notify.as_ref()?.pop() {
            match heard {
                Heard::Said(said) => {
                    if let Notification::Status(text) = &said {
                        self.status = Some(text.as_str().into());
                    }
                    return Some(said);
                }
                Heard::MainPid(held) => {
                    let pid = held.pid();
                    if self.adopt_main(pid, Some(held)) {
                        return Some(Notification::MainPid(pid));
                    }
                }
            }
        }
        if self.expiry_pending() {
            self.set_watchdog(|w| w.pending = false);
            return Some(Notification::WatchdogExpired);
        }
        None
    }

    /// `MAINPID=`: the program names another process as its main one (it
    /// forked its daemon). Honoured as systemd honours it, whoever sent
    /// it: never for pid 0 or 1, never for this process or any of its
    /// ancestors, and only for a process the launch contains (with
    /// containment, one it holds; without, a descendant of the program,
    /// by `/proc`). The process is held by a pidfd from then on (`held`,
    /// if one was taken when the message was read), so it is Linux only:
    /// anywhere else its pid could be reused under us. Whether it was
    /// honoured.
    #[cfg(tokenpipe_linux_like)]
    pub(super) fn adopt_main(&mut self, pid: libc::pid_t, held: Option<Process>) -> bool {
        use super::procfs;
        let launched = self.launched.pid();
        if pid <= 1 || procfs::is_self_or_ancestor(pid) {
            return false;
        }
        if pid == launched {
            // The program names itself: it is the main process again.
            self.main = None;
            return true;
        }
        let main = match &mut self.contain {
            Some(contained) => {
                contained.refresh(&mut self.launched);
                contained.member(pid)
            }
            None => {
                let ours = |pid| !self.launched.is_reaped() && procfs::descends_from(pid, launched);
                // Still the same process now that a pidfd holds it?
                let main = held.unwrap_or_else(|| Process::stranger(pid));
                (ours(pid) && main.pidfd().is_some() && ours(pid)).then_some(main)
            }
        };
        match main {
            Some(main) => {
                self.main = Some(Box::new(main));
                true
            }
            None => false,
        }
    }

    #[cfg(not(tokenpipe_linux_like))]
    pub(super) fn adopt_main(&mut self, _: libc::pid_t, _: Option<Process>) -> bool {
        false
    }

    /// Whether the process whose end is the service's end has ended, left
    /// unreaped where the system can look so.
    fn watched_ended(&mut self) -> bool {
        match &mut self.main {
            Some(main) => main.ended_within(Duration::ZERO).unwrap_or(true),
            None => !matches!(self.launched.peek(), Ok(None)),
        }
    }

    /// Acts on the watchdog: fires it (`SIGABRT` to the main process) when
    /// a ping is overdue, and kills everything once the aborted process has
    /// ended or the grace period has passed. When to act next, if ever.
    fn keep_watch(&mut self) -> Option<Instant> {
        let (clock, state) = self.notify.as_ref()?.watchdog();
        if state.done {
            return None;
        }
        let now = Instant::now();
        let next = match state.fired {
            None => {
                let due = clock.due()?;
                if now < due {
                    return Some(due);
                }
                if self.watched_ended() {
                    // Ended on its own: nothing to abort.
                    self.set_watchdog(|w| w.done = true);
                    return None;
                }
                let _ = self.kill(libc::SIGABRT);
                self.set_watchdog(|w| {
                    w.fired = Some(now);
                    w.pending = true;
                });
                super::waiter::deadline_after(now, state.grace)
            }
            Some(fired) => {
                let until = super::waiter::deadline_after(fired, state.grace);
                if now < until && !self.watched_ended() {
                    return Some(until);
                }
                // As systemd after a watchdog failure: the service is
                // stopped, whatever it left included.
                self.kill_all();
                self.set_watchdog(|w| w.done = true);
                return None;
            }
        };
        Some(next)
    }

    fn set_watchdog(&self, change: impl FnOnce(&mut WatchdogState)) {
        if let Some(kept) = &self.notify {
            kept.set_watchdog(change);
        }
    }

    /// Tells the notify socket once the program as started is reaped.
    fn note_reaped(&self) {
        if self.launched.is_reaped()
            && let Some(kept) = &self.notify
        {
            kept.launched_reaped();
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
        self.watched().borrowed_pidfd()
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
