//! The launcher's side (`std`): start a program, offer it every readiness
//! channel at once, and wait in one `poll` for its report, its end or the
//! timeout.

mod child;
#[cfg(tokenpipe_linux_like)]
mod contain;
mod exec;
mod kept;
mod notification;
#[cfg(tokenpipe_linux_like)]
mod procfs;
mod socket;
mod waiter;
#[cfg(feature = "tokio")]
mod waiter_async;

pub use child::ReadyChild;
pub use notification::Notification;

/// Containment needs what only Linux offers here (a child subreaper and
/// pidfds, and `/proc` to find what a launch started): elsewhere a launch
/// that asks for it is refused, never run without it.
#[cfg(not(tokenpipe_linux_like))]
mod contain {
    use crate::error::Errno;
    use crate::process::Process;

    #[derive(Debug)]
    pub(super) enum Containment {}

    impl Containment {
        pub(super) fn start() -> Result<Containment, Errno> {
            Err(Errno::from_raw(libc::ENOSYS))
        }
        pub(super) fn refresh(&mut self, _: &mut Process) {
            match *self {}
        }
        pub(super) fn signal_all(&self, _: libc::c_int) -> bool {
            match *self {}
        }
        pub(super) fn take_members(&mut self) -> Vec<Process> {
            match *self {}
        }
    }

    pub(super) fn note_launched(_: libc::pid_t) {}
}

use std::ffi::{OsString, c_int};
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{NOTIFY_SOCKET_ENV, READY_FD_ENV};
use crate::error::{Errno, Error};
use crate::pipe::TokenPipe;
use crate::process::ChildExit;
use crate::sys;
use socket::NotifySocket;
use waiter::Waiter;

/// How [`launch`] waits.
///
/// ```
/// use tokenpipe::ready::LaunchOptions;
/// use std::time::Duration;
///
/// let o = LaunchOptions::new().timeout(Duration::from_secs(5)).detach(true);
/// assert!(o.kill_on_timeout && o.detach && !o.contain && o.watchdog.is_none());
/// ```
///
/// Not `Copy`: it holds the sockets given with [`listen`](Self::listen)
/// (a clone shares them).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LaunchOptions {
    /// How long the program has to report (default 30 s); it can ask for
    /// more with `EXTEND_TIMEOUT_USEC=` or
    /// [`Notifier::extend_timeout`](super::Notifier::extend_timeout).
    /// `Duration::ZERO` gives it no time at all: what it reported by the
    /// first look counts, and then it times out. `Duration::MAX` (what
    /// [`no_timeout`](Self::no_timeout) sets) never times out, as
    /// `TimeoutStartSec=0` or `infinity` in a systemd unit.
    pub timeout: Duration,
    /// Start the program in a new session (`setsid` between `fork` and
    /// `exec`) with stdin, stdout and stderr on `/dev/null`, as a daemon
    /// (default off). When the launch kills it (timeout, a failure
    /// dropped, a cancelled `launch_async`), the process group it leads is
    /// killed too, even when the program itself has exited and left a
    /// daemon it forked, but only while the program is unreaped (its
    /// group's id is then provably its own), so never a group that a
    /// stranger formed under a reused number. What leaves the group
    /// escapes: a daemon that calls `setsid` (every classic daemon does)
    /// is in a group of its own. To reach it too, turn on
    /// [`contain`](Self::contain).
    pub detach: bool,
    /// Kill (and reap) the program if it has not reported in time (default
    /// on). Off, the timeout hands the running program back to the caller.
    pub kill_on_timeout: bool,
    /// Contain everything the program starts (default off; Linux only,
    /// elsewhere the launch is refused with [`LaunchError::Contain`]).
    ///
    /// This process becomes a **child subreaper**
    /// (`PR_SET_CHILD_SUBREAPER`): an orphan among the program's
    /// descendants, such as a daemon that forked twice and called
    /// `setsid`, becomes this process's child instead of init's. That is
    /// process-wide and for good: every orphan of every descendant of this
    /// process comes to it from then on. The library reaps only the ones
    /// it holds for a launch (through their pidfds, so never a child that
    /// the host program started itself); the others stay zombies until
    /// this process reaps them or exits. The program is started in a
    /// session of its own, as with `detach` (but keeping its stdio).
    ///
    /// What the launch holds, each by a pidfd from the moment it is found
    /// (looks happen at every event of the wait and before every kill):
    /// the processes in the program's session while the program is
    /// unreaped; the children of the program and of every process held;
    /// and the orphans this process adopted from outside its own session
    /// that no launch started, while this is the only contained launch
    /// alive in the process (with two or more, such an orphan cannot be
    /// told apart and is left alone). A timeout, a failure dropped or a
    /// cancelled `launch_async` kills them all; `MAINPID=` is honoured
    /// only for one of them. What no look saw escapes: a process that
    /// forked and lost its parent between two looks while another
    /// contained launch was alive, or one that a host's own child
    /// started. Without containment, only the program (and, detached, its
    /// process group) is reached, and `MAINPID=` only for a descendant of
    /// the program still linked to it by `/proc`.
    pub contain: bool,
    /// The service watchdog (default off), as systemd's `WatchdogSec=`:
    /// the program is told the interval (`WATCHDOG_USEC`, with
    /// `WATCHDOG_PID` its own pid, which
    /// [`Notifier::watchdog_interval`](super::Notifier::watchdog_interval)
    /// reads) and, once it is ready, must send `WATCHDOG=1` at least that
    /// often. When it misses (or sends `WATCHDOG=trigger`), the main
    /// process is sent `SIGABRT`, as systemd sends it, and `SIGKILL` with
    /// everything the launch reaches if it has not ended
    /// [`watchdog_grace`](Self::watchdog_grace) later;
    /// [`ReadyChild::watchdog_expired`] then says so.
    ///
    /// The watchdog is kept while the caller waits on the
    /// [`ReadyChild`]: [`wait`](ReadyChild::wait),
    /// [`try_wait`](ReadyChild::try_wait),
    /// [`next_notification`](ReadyChild::next_notification) and their
    /// async twins act on a missed ping the moment they see it (a blocking
    /// wait wakes for it). Nothing is killed by a thread behind the
    /// caller's back, so a process is only ever signalled by the handle's
    /// owner, through its pidfd. The pings come on the notify socket:
    /// where none could be made (a `TMPDIR` too long for a socket
    /// address), the launch is refused with [`LaunchError::Exec`] rather
    /// than run with a watchdog that must fire. A program may change the
    /// interval with `WATCHDOG_USEC=`, as under systemd.
    pub watchdog: Option<Duration>,
    /// How long a program sent `SIGABRT` by the watchdog has to end before
    /// it is killed (default 5 s; systemd's `TimeoutAbortSec=`).
    pub watchdog_grace: Duration,
    /// The listening sockets to hand over (see [`listen`](Self::listen)).
    listen: Vec<std::sync::Arc<exec::Listen>>,
}

impl LaunchOptions {
    /// The defaults: 30 s, not detached, killed on timeout.
    #[must_use]
    pub const fn new() -> LaunchOptions {
        LaunchOptions {
            timeout: Duration::from_secs(30),
            detach: false,
            kill_on_timeout: true,
            contain: false,
            watchdog: None,
            watchdog_grace: Duration::from_secs(5),
            listen: Vec::new(),
        }
    }

    /// How long the program has to report.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> LaunchOptions {
        self.timeout = timeout;
        self
    }

    /// No timeout: wait for a report or the program's end, however long.
    #[must_use]
    pub fn no_timeout(self) -> LaunchOptions {
        self.timeout(Duration::MAX)
    }

    /// Whether to start it in a new session with stdio on `/dev/null`.
    #[must_use]
    pub fn detach(mut self, on: bool) -> LaunchOptions {
        self.detach = on;
        self
    }

    /// Whether to kill it if it has not reported in time.
    #[must_use]
    pub fn kill_on_timeout(mut self, on: bool) -> LaunchOptions {
        self.kill_on_timeout = on;
        self
    }

    /// Whether to contain everything it starts (see
    /// [`contain`](Self::contain)).
    #[must_use]
    pub fn contain(mut self, on: bool) -> LaunchOptions {
        self.contain = on;
        self
    }

    /// Keep a service watchdog of `interval` (see
    /// [`watchdog`](Self::watchdog)). A zero interval is no watchdog, as
    /// `WatchdogSec=0`.
    #[must_use]
    pub fn watchdog(mut self, interval: Duration) -> LaunchOptions {
        self.watchdog = (!interval.is_zero()).then_some(interval);
        self
    }

    /// How long a program aborted by the watchdog has before `SIGKILL`.
    #[must_use]
    pub fn watchdog_grace(mut self, grace: Duration) -> LaunchOptions {
        self.watchdog_grace = grace;
        self
    }

    /// Hands `socket` (a bound, listening socket: a `UnixListener`, a
    /// `TcpListener` or any `OwnedFd`) to the program by socket
    /// activation, named `name` in `LISTEN_FDNAMES`, as a systemd
    /// `.socket` unit does: the sockets sit at fds 3, 4, … in the order
    /// given, with `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (the
    /// program's own pid) set, which [`ListenFds`](super::ListenFds)
    /// reads. This process keeps its copy open while the options live, so
    /// a restarted program can be handed the same socket, and no
    /// connection waiting in its backlog is lost.
    ///
    /// A name must be 1 to 255 printable ASCII characters without `:`
    /// (systemd's `FileDescriptorName=` rule), else the launch is refused
    /// with [`LaunchError::Exec`] before anything starts.
    ///
    /// With `listen` or [`watchdog`](Self::watchdog), the launch runs the
    /// program with its own `execve` (the only way to give it a variable
    /// holding its own pid): with the environment the `Command` would
    /// have passed, its arguments, and the program looked for in `PATH` as
    /// `execvp` does (a script without `#!` is not run by `/bin/sh`).
    #[must_use]
    pub fn listen(mut self, socket: impl Into<std::os::fd::OwnedFd>, name: &str) -> LaunchOptions {
        self.listen.push(std::sync::Arc::new(exec::Listen {
            fd: socket.into(),
            name: name.into(),
        }));
        self
    }
}

impl Default for LaunchOptions {
    fn default() -> LaunchOptions {
        LaunchOptions::new()
    }
}

/// Why [`launch`] gives no ready program.
///
/// The variants that hold the program ([`Failed`](Self::Failed), and
/// [`TimedOut`](Self::TimedOut) when it could not be killed or was not to
/// be) kill it when dropped, unless it was taken out with
/// [`into_child`](Self::into_child); none leaves a zombie.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// The program could not be started (`Command::spawn` failed).
    Spawn {
        /// The program, as the `Command` names it.
        program: OsString,
        /// Why it could not be started.
        error: io::Error,
    },
    /// The `Command` had been given to `launch` before: its hand-off of
    /// the token pipe is spent, and it would hand the program a stale fd.
    /// Use a fresh `Command` for each launch.
    CommandReused {
        /// The program, as the `Command` names it.
        program: OsString,
    },
    /// The token pipe offered to the program could not be made.
    Setup(Error),
    /// [`contain`](LaunchOptions::contain) was asked for and cannot be had:
    /// `ENOSYS` off Linux, or the error of `PR_SET_CHILD_SUBREAPER`. Nothing
    /// was started.
    Contain(Errno),
    /// The program could not be set up to run with
    /// [`listen`](LaunchOptions::listen) or
    /// [`watchdog`](LaunchOptions::watchdog): a socket name systemd would
    /// refuse, a NUL in the environment or the arguments, or no notify
    /// socket for the watchdog's pings. Nothing was started.
    Exec {
        /// The program, as the `Command` names it.
        program: OsString,
        /// What is wrong.
        problem: String,
    },
    /// The program reported that it failed (token 0 or `ERRNO=`). It may
    /// still be running.
    Failed {
        /// The program: killed when dropped, unless taken out with
        /// [`into_child`](LaunchError::into_child).
        child: ReadyChild,
        /// The errno it reported, if it reported one.
        errno: Option<i32>,
        /// The last `STATUS=` text it sent.
        status: Option<String>,
    },
    /// The program ended before it reported, and nothing it started holds
    /// the token pipe; or the main process it named with `MAINPID=` ended.
    /// It has been reaped (or, still running when its main process ended,
    /// killed and handed to the reaper thread). What it left running that
    /// the launch reaches (its process group, detached; everything it
    /// contains, contained) was killed: a launch that failed leaves nothing
    /// behind that nobody owns.
    Exited {
        /// How it ended ([`ChildExit::Unknown`] where this process ignores
        /// `SIGCHLD` or a handler reaped it).
        exit: ChildExit,
        /// The last `STATUS=` text it sent.
        status: Option<String>,
    },
    /// No report within the timeout.
    TimedOut {
        /// How long it was given, extensions included.
        waited: Duration,
        /// The last `STATUS=` text it sent.
        status: Option<String>,
        /// What became of the program.
        after: AfterTimeout,
    },
}

/// What [`launch`] did about a program that did not report in time.
#[derive(Debug)]
#[non_exhaustive]
pub enum AfterTimeout {
    /// It was running, and was killed (with its process group, if
    /// detached) and reaped: how it ended.
    Killed(ChildExit),
    /// It had already exited, leaving the token pipe held by something it
    /// started (it daemonized itself). Detached, its process group was
    /// killed; contained, everything the launch holds; otherwise what it
    /// left runs on.
    AlreadyExited {
        /// How it had ended.
        exit: ChildExit,
        /// Whether anything was there to kill (its process group, or a
        /// process the launch held).
        group_killed: bool,
    },
    /// [`kill_on_timeout`](LaunchOptions::kill_on_timeout) was off: it
    /// runs on, and here it is.
    Running(ReadyChild),
    /// It could not be killed, and runs on: the signal was refused
    /// (`errno`: `EPERM` for a set-user-ID program that changed user), or
    /// it had not ended 2 s after `SIGKILL` (`None`: stuck in the kernel).
    KillFailed {
        /// The program: killing it is tried again when it is dropped.
        child: ReadyChild,
        /// Why the signal was refused.
        errno: Option<Errno>,
    },
}

impl LaunchError {
    /// The program, where the error holds one that runs on ([`Failed`],
    /// [`TimedOut`] with [`AfterTimeout::Running`] or
    /// [`AfterTimeout::KillFailed`]), no longer to be killed on drop.
    ///
    /// [`Failed`]: Self::Failed
    /// [`TimedOut`]: Self::TimedOut
    #[must_use]
    pub fn into_child(self) -> Option<ReadyChild> {
        let mut child = match self {
            LaunchError::Failed { child, .. }
            | LaunchError::TimedOut {
                after: AfterTimeout::Running(child) | AfterTimeout::KillFailed { child, .. },
                ..
            } => child,
            _ => return None,
        };
        child.kill_on_drop(false);
        Some(child)
    }

    /// The last `STATUS=` text the program sent, whatever went wrong.
    #[must_use]
    pub fn status_text(&self) -> Option<&str> {
        match self {
            LaunchError::Failed { status, .. }
            | LaunchError::Exited { status, .. }
            | LaunchError::TimedOut { status, .. } => status.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Spawn { program, error } => {
                write!(f, "could not start {}: {error}", program.to_string_lossy())?;
            }
            LaunchError::CommandReused { program } => write!(
                f,
                "the Command for {} was given to launch before; use a fresh Command for each launch",
                program.to_string_lossy()
            )?,
            LaunchError::Setup(e) => write!(f, "could not make the readiness pipe: {e}")?,
            LaunchError::Contain(e) if e.raw() == libc::ENOSYS => write!(
                f,
                "containment needs Linux (a child subreaper and pidfds); launch without it"
            )?,
            LaunchError::Contain(e) => write!(
                f,
                "could not contain the launch (PR_SET_CHILD_SUBREAPER failed: {e})"
            )?,
            LaunchError::Exec { program, problem } => {
                write!(
                    f,
                    "could not start {}: {problem}",
                    program.to_string_lossy()
                )?;
            }
            LaunchError::Failed { child, errno, .. } => {
                write!(f, "program {} reported that it failed", child.pid())?;
                if let Some(errno) = errno {
                    write!(f, ": {}", Errno::from_raw(*errno))?;
                }
            }
            LaunchError::Exited { exit, .. } => {
                write!(f, "the program {exit} before it reported")?;
            }
            LaunchError::TimedOut { waited, after, .. } => {
                write!(f, "no report within {waited:?}; ")?;
                match after {
                    AfterTimeout::Killed(exit) => write!(f, "killed it (it {exit})")?,
                    AfterTimeout::AlreadyExited {
                        exit,
                        group_killed: true,
                    } => write!(f, "the program had {exit}; killed what it left running")?,
                    AfterTimeout::AlreadyExited {
                        exit,
                        group_killed: false,
                    } => write!(
                        f,
                        "the program had {exit}; what it started still holds the readiness pipe \
                         and was left running"
                    )?,
                    AfterTimeout::Running(_) => write!(f, "it is still running")?,
                    AfterTimeout::KillFailed {
                        errno: Some(errno), ..
                    } => write!(f, "could not kill it ({errno}); it is still running")?,
                    AfterTimeout::KillFailed { errno: None, .. } => write!(
                        f,
                        "sent it SIGKILL, but it had not ended {:?} later; it is still running",
                        crate::process::KILL_BOUND
                    )?,
                }
            }
        }
        match self.status_text() {
            Some(text) => write!(f, "; its last status: {text:?}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Spawn { error, .. } => Some(error),
            LaunchError::Setup(e) => Some(e),
            _ => None,
        }
    }
}

/// Starts `cmd` and waits until it reports ready, reports failure, ends,
/// or runs out of time, whatever readiness protocol it speaks.
///
/// It offers every channel at once: this crate's token pipe, through
/// [`READY_FD_ENV`](super::READY_FD_ENV) (a program using
/// [`Notifier::from_env`](super::Notifier::from_env) takes it; an
/// s6-style program can be told the number, and its newline counts as
/// ready), and a private systemd notify socket in `NOTIFY_SOCKET`: a path
/// in a fresh directory whose name only the program is told (not a Linux
/// abstract name, which any local user can find and which some senders,
/// such as the `sd-notify` crate 0.5, cannot reach). The
/// directory is made under `TMPDIR`, else `XDG_RUNTIME_DIR`, else `/tmp`;
/// where none will take a socket (a `TMPDIR` too long for a socket
/// address), the program is offered the pipe alone and `NOTIFY_SOCKET` is
/// removed from its environment. It starts the program with
/// `Command::spawn`, so it is safe in a process with threads or an async
/// runtime, where forking to run Rust code in the child is not.
///
/// It then waits in one `poll` on the pipe, the socket and the program's
/// pidfd (Linux 5.3+: its end is seen at once; elsewhere
/// `waitpid(WNOHANG)` every 10 ms), and decides from everything it has
/// heard:
///
/// - A report wins over the program's end whenever it was sent before
///   it: the end is looked at before the channels are drained.
/// - The program has *ended* when it has exited and nothing it started
///   holds the pipe's write end. One that exits leaving the pipe held (a
///   program that daemonizes itself, like `bitcoind -daemon`) has not:
///   the wait goes on for a report or the timeout.
/// - A pipe closed without a report is not a verdict: the program may
///   still report on the socket (a program that closes the fds it
///   inherited and then runs `systemd-notify --ready` does).
/// - `EXTEND_TIMEOUT_USEC=` pushes the deadline; `STATUS=` text (on the
///   socket or the pipe) is kept for [`ReadyChild::status_text`] and the
///   errors.
/// - `MAINPID=` names the program's main process from then on
///   ([`ReadyChild::pid`], `kill`, `wait`, and whose end counts), as systemd
///   honours it, whoever sent it: never pid 0 or 1, never this process or
///   one of its ancestors, and only a process the launch contains (with
///   [`contain`](LaunchOptions::contain), one it holds; without, a
///   descendant of the program by `/proc`). Its end is the service's end:
///   [`LaunchError::Exited`] at once, and the rest is killed. Only where a
///   pidfd holds the new process (Linux 5.3+); ignored elsewhere, and
///   where the kernel gives no pidfd.
/// - The first report heard wins; a failure and a ready heard at the same
///   look, one on each channel, count as the failure (which of the two was
///   sent first cannot be known then).
/// - Who is heard on the socket: this user's processes, and the ones the
///   launch contains, whatever their user (a `Command::uid` program).
/// - A launcher that ignores `SIGCHLD`, or reaps every child in a handler,
///   still gets its verdict: the end is seen, its status is
///   [`ChildExit::Unknown`].
///
/// After a verdict the caller owns the program: `Ok(ReadyChild)` when it
/// is ready, [`LaunchError::Failed`] holds it when it reported failure.
/// Neither leaves a zombie (see [`ReadyChild`]). The program's piped stdio
/// (`Stdio::piped()` on `cmd`) stays open, in the `ReadyChild`, and so does
/// the notify socket, as systemd's does: a thread of this process receives
/// what arrives on it, so a sender following `READY=1` with `BARRIER=1`
/// (`systemd-notify` does) gets its confirmation whenever it sends it. The
/// socket and its directory go when the `ReadyChild` is dropped; a
/// launcher about to exit calls [`ReadyChild::settle`] first (and drops
/// the handle: `std::process::exit` runs no destructors).
///
/// The program is never reaped while the wait runs (Linux: its end is
/// looked at with `WNOWAIT`), so its pid, and the process group and
/// session it leads, stay its own until the launch has killed what it
/// must; each fd the launch makes is above 2, so a launcher with closed
/// stdio never hands the program its own stdout as the pipe.
///
/// On timeout the program is killed (unless
/// [`kill_on_timeout`](LaunchOptions::kill_on_timeout) is off) with what
/// the launch reaches of what it started, and reaped, within a bound on one
/// monotonic deadline that signals never restart: one that cannot be
/// killed is handed back in the error ([`AfterTimeout::KillFailed`])
/// rather than waited for.
///
/// `launch` adds its hand-off (environment and a `pre_exec` check) to
/// `cmd`: use a fresh `Command` for each launch; a spent one gives
/// [`LaunchError::CommandReused`].
///
/// # Errors
/// [`LaunchError`]: `Spawn`, `CommandReused`, `Setup`, `Failed`, `Exited`
/// (within milliseconds of its end, not at the timeout), `TimedOut`.
///
/// ```
/// use tokenpipe::ready::{LaunchError, LaunchOptions, launch};
/// use std::process::Command;
///
/// // A program that reports ready on the token pipe by hand.
/// let mut cmd = Command::new("/bin/sh");
/// cmd.args(["-c", r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; sleep 1"#]);
/// let mut child = launch(&mut cmd, LaunchOptions::new())?;
/// assert!(child.wait()?.success());
///
/// // One that exits first: an error, at once, with its exit status.
/// let mut cmd = Command::new("/bin/sh");
/// cmd.args(["-c", "exit 7"]);
/// match launch(&mut cmd, LaunchOptions::new()) {
///     Err(LaunchError::Exited { exit, .. }) => assert_eq!(exit.code(), Some(7)),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn launch(cmd: &mut Command, options: LaunchOptions) -> Result<ReadyChild, LaunchError> {
    start(cmd, options)?.run()
}

/// [`launch`] for tokio (feature `tokio`): the same start, the same
/// verdicts from the same decision, awaited instead of blocking a thread.
///
/// The program is started as `launch` starts it, with `Command::spawn`
/// (as `tokio::process::Command::spawn` does: the fork and the `exec`
/// happen on the calling thread, a millisecond or so); the wait for its
/// report, its end and the deadline is on the runtime's reactor and timer
/// (its token pipe, its notify socket and its pidfd; without a pidfd, a
/// look for its end every 10 ms), on a current-thread runtime as on a
/// multi-thread one.
///
/// **Cancellation**: dropping the future before it gives a verdict kills
/// the program with `SIGKILL`, hands it to this crate's reaper thread
/// (which reaps it as soon as it ends, so it is never left a zombie, as
/// with tokio's `kill_on_drop`) and removes the notify socket and its
/// directory before the drop returns. With
/// [`detach`](LaunchOptions::detach) its whole process group is killed
/// too: a launch given up on has no handle to give back, so nothing it
/// started may be left running unowned. After a verdict the future has
/// finished and the caller owns the outcome, as with `launch`.
///
/// # Errors
/// As for [`launch`]; also [`LaunchError::Setup`] with
/// [`Error::NoRuntime`] outside a tokio runtime, before anything is
/// started. A runtime without IO or time enabled makes tokio panic, as
/// its own types do: build it with `enable_all`.
///
/// ```
/// use tokenpipe::ready::{LaunchOptions, launch_async};
/// use std::process::Command;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let mut cmd = Command::new("/bin/sh");
///     cmd.args(["-c", r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exit 3"#]);
///     let mut child = launch_async(&mut cmd, LaunchOptions::new()).await?;
///     assert_eq!(child.exited().await?.code(), Some(3));
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tokio")]
pub async fn launch_async(
    cmd: &mut Command,
    options: LaunchOptions,
) -> Result<ReadyChild, LaunchError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(LaunchError::Setup(Error::NoRuntime));
    }
    start(cmd, options)?.run_async().await
}

/// Everything up to the wait: the pipe, the socket, the hand-off and the
/// program started.
fn start(cmd: &mut Command, options: LaunchOptions) -> Result<Waiter, LaunchError> {
    let contain = if options.contain {
        Some(Box::new(
            contain::Containment::start().map_err(LaunchError::Contain)?,
        ))
    } else {
        None
    };
    let (reader, writer) = TokenPipe::make().map_err(LaunchError::Setup)?.split();
    // A launcher whose stdin or stdout is closed gets the pipe on 0 or 1:
    // the program would take the write end for its stdout. With sockets
    // to hand over at 3, 4, …, the write end goes above them too.
    let reader = reader.above_stdio().map_err(LaunchError::Setup)?;
    let first_free = 3 + c_int::try_from(options.listen.len()).unwrap_or(c_int::MAX - 3);
    let writer = writer.at_least(first_free).map_err(LaunchError::Setup)?;
    reader.set_nonblocking(true).map_err(LaunchError::Setup)?;
    writer
        .pass_to(cmd, READY_FD_ENV)
        .map_err(LaunchError::Setup)?;
    let socket = NotifySocket::bind();
    match &socket {
        Some(socket) => cmd.env(NOTIFY_SOCKET_ENV, socket.addr.to_env_value()),
        // Never a stale socket from our own environment instead.
        None => cmd.env_remove(NOTIFY_SOCKET_ENV),
    };
    if options.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    if options.detach || options.contain {
        let new_session = || sys::setsid().map_err(|e| io::Error::from_raw_os_error(e.raw()));
        #[allow(unsafe_code)]
        // SAFETY: the closure runs between fork and exec and makes one
        // async-signal-safe call, setsid, allocating nothing.
        unsafe {
            cmd.pre_exec(new_session);
        }
    }
    if options.watchdog.is_some() && socket.is_none() {
        return Err(LaunchError::Exec {
            program: cmd.get_program().to_owned(),
            problem: "the watchdog needs a notify socket for its pings, and none could be made \
                      (is TMPDIR too long for a socket address?)"
                .into(),
        });
    }
    // Held while the program is spawned: numbers 3, 4, … are taken, so
    // std's own pipe (its report of a failed exec) lands above the
    // sockets' places and the child's dup2 onto them cannot close it.
    let mut held_low = Vec::new();
    let mut exec_report = None;
    if !options.listen.is_empty() || options.watchdog.is_some() {
        for target in 3..first_free {
            if let Ok(fd) = sys::dup_at_least(reader.as_raw_fd(), target) {
                held_low.push(crate::end::TokenPipeEnd::from_owned(fd));
            }
        }
        let additions = exec::Additions {
            listen: &options.listen,
            watchdog_usec: options
                .watchdog
                .map(|w| u64::try_from(w.as_micros()).unwrap_or(u64::MAX)),
        };
        // Last: its closure execs, so it must run after every other.
        exec_report = Some(exec::exec_with(cmd, &additions)?);
    }
    let spawned = crate::process::spawn::spawn(cmd);
    drop(held_low);
    let (launched, mut spawned) = match spawned {
        Ok((mut launched, spawned)) => {
            // The launch's own execve failed, and std did not hear it (its
            // report's fd sat where a socket had to go): the same error.
            if let Some(errno) = exec_report.and_then(exec::ExecReport::failed) {
                let _ = launched.wait();
                return Err(LaunchError::Spawn {
                    program: cmd.get_program().to_owned(),
                    error: io::Error::from_raw_os_error(errno),
                });
            }
            (launched, spawned)
        }
        // pass_to's check in the child: the fd it was to hand over is gone
        // (exec itself never fails with EBADF).
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            return Err(LaunchError::CommandReused {
                program: cmd.get_program().to_owned(),
            });
        }
        Err(error) => {
            return Err(LaunchError::Spawn {
                program: cmd.get_program().to_owned(),
                error,
            });
        }
    };
    // Until a verdict hands it over, the program is killed if the wait
    // ends any other way.
    contain::note_launched(launched.pid());
    let child = ReadyChild {
        launched,
        main: None,
        status: None,
        stdin: spawned.stdin.take(),
        stdout: spawned.stdout.take(),
        stderr: spawned.stderr.take(),
        detached: options.detach,
        contain,
        notify: None,
        kill_on_drop: true,
    };
    // std's Child neither kills nor waits when dropped; `child` has taken
    // over its pid and its stdio.
    drop(spawned);
    // Our copy of the write end must go, or a dead program would look like
    // a silent one.
    drop(writer);
    Ok(Waiter::new(child, reader, socket, options))
}
