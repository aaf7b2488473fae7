//! The daemon hand-shake: bitcoind's `fork_daemon`, hardened, with the
//! rest of what `daemon(7)` asks of a daemon.
//!
//! The launcher calls [`fork_daemon`]. The child detaches (new session,
//! optionally a second fork, a umask, a locked pid file, `/` as working
//! directory, stdio on `/dev/null`) and reports its set-up; only then does
//! `fork_daemon` return in the launcher. The daemon initialises and reports
//! with [`ReadyNotifier::notify`]; the launcher learns the outcome from
//! [`DaemonParent::wait_ready`], and can signal and reap the daemon
//! ([`kill`](DaemonParent::kill), [`try_wait`](DaemonParent::try_wait),
//! [`wait`](DaemonParent::wait)).
//!
//! What can go wrong is handled, not left to the caller:
//! - **End of stream is never success.** bitcoind's own launcher treated a
//!   read error or end of stream as success; this port does not.
//! - **No child is lost.** On every failure during set-up the launcher
//!   gives the child a moment to exit, kills it if it has not, reaps it,
//!   and returns an error that says what happened (the failed step and its
//!   errno, or the child's exit status).
//! - **Closed stdio is harmless.** A launcher started with fds 0, 1 or 2
//!   closed gets its pipe there from the kernel; every fd this module keeps
//!   across the fork is moved to 3 or above first, so the daemon's
//!   `/dev/null` redirection cannot close it, and the launcher never blocks
//!   in `waitpid` on a daemon that is alive.
//! - **The pid can never name a stranger.** On Linux 5.3+ the launcher
//!   holds a pidfd, opened before the child can be reaped; elsewhere it
//!   signals by pid only while the child is provably unreaped.
//!
//! ```standalone_crate
//! use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
//!
//! // SAFETY: this program has no other threads.
//! match unsafe { fork_daemon(DaemonOptions::new()) }? {
//!     Forked::Parent(mut daemon) => {
//!         let ready = daemon.wait_ready()?;
//!         assert!(ready, "daemon {} failed to come up", daemon.pid());
//!         // A real launcher would now exit(0), leaving the daemon running.
//!     }
//!     Forked::Child(daemon) => {
//!         let initialised = true; // initialise the daemon here
//!         daemon.notifier.notify(initialised)?;
//!         // ... serve; this example just ends.
//!         std::process::exit(0);
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::ffi::{CStr, c_int};
use core::fmt;
use core::time::Duration;

use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};
use crate::pipe::TokenPipe;
use crate::process::Process;
use crate::sys;

pub use crate::process::ChildExit;

/// The readiness tokens, as in bitcoind: 1 ready, 0 failed.
const READY: u8 = 1;
const FAILED: u8 = 0;

/// How long a child that reported a failed set-up, or closed the pipe, has
/// to finish exiting before it is killed. It is normally gone in
/// microseconds; the grace only keeps its own exit status from being
/// overwritten by our `SIGKILL`.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// How the child detaches; build it with [`DaemonOptions::new`] and the
/// `const` methods, so options can be added without breaking anyone.
///
/// | option | default | what the child does |
/// |---|---|---|
/// | [`chdir_root`](Self::chdir_root) | on | `chdir("/")` |
/// | [`close_stdio`](Self::close_stdio) | on | stdin, stdout, stderr onto `/dev/null` |
/// | [`umask`](Self::umask) | `None` (inherited) | `umask(mask)` |
/// | [`double_fork`](Self::double_fork) | off | a second fork, so the daemon is not a session leader |
/// | [`pid_file`](Self::pid_file) | `None` | a locked pid file; a second instance fails with [`Error::AlreadyRunning`] |
///
/// `chdir_root` is on by default because `daemon(7)` asks for it: a daemon
/// that keeps its start directory keeps that file system busy. bitcoind
/// does **not** do it (it calls `fork_daemon(1, 0, ..)`, `nochdir = 1`,
/// because its data paths may be relative); `.chdir_root(false)` is
/// bitcoind's behaviour.
///
/// ```
/// use bitcoin_tokenpipe::daemon::DaemonOptions;
///
/// const BITCOIND: DaemonOptions = DaemonOptions::new().chdir_root(false);
/// assert!(!BITCOIND.chdir_root && BITCOIND.close_stdio);
/// let o = DaemonOptions::new().umask(Some(0o027)).double_fork(true).pid_file(c"app.pid");
/// assert_eq!(o.pid_file, Some(c"app.pid"));
/// assert_eq!(DaemonOptions::default(), DaemonOptions::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DaemonOptions<'a> {
    /// `chdir("/")`, so the daemon keeps no directory (or file system) busy.
    pub chdir_root: bool,
    /// Point stdin, stdout and stderr at `/dev/null`, so the daemon holds
    /// no terminal and writes to no closed one.
    pub close_stdio: bool,
    /// The file mode creation mask to set in the daemon, or `None` to keep
    /// the launcher's.
    pub umask: Option<libc::mode_t>,
    /// Fork a second time after `setsid`: the daemon is then not a session
    /// leader and can never acquire a controlling terminal. It is then not
    /// the launcher's child either; see [`DaemonParent::wait`].
    pub double_fork: bool,
    /// A pid file that the daemon creates, locks for its whole life and
    /// writes its pid into; see [`DaemonOptions::pid_file`].
    pub pid_file: Option<&'a CStr>,
}

impl<'a> DaemonOptions<'a> {
    /// The defaults: `chdir("/")`, stdio on `/dev/null`, nothing else.
    #[must_use]
    pub const fn new() -> DaemonOptions<'a> {
        DaemonOptions {
            chdir_root: true,
            close_stdio: true,
            umask: None,
            double_fork: false,
            pid_file: None,
        }
    }

    /// Whether the child does `chdir("/")` (default on; bitcoind: off).
    #[must_use]
    pub const fn chdir_root(mut self, on: bool) -> DaemonOptions<'a> {
        self.chdir_root = on;
        self
    }

    /// Whether the child points stdin, stdout and stderr at `/dev/null`
    /// (default on).
    #[must_use]
    pub const fn close_stdio(mut self, on: bool) -> DaemonOptions<'a> {
        self.close_stdio = on;
        self
    }

    /// The umask the daemon sets before it creates anything (its pid file
    /// among them); `None` (the default) keeps the launcher's.
    #[must_use]
    pub const fn umask(mut self, mask: Option<libc::mode_t>) -> DaemonOptions<'a> {
        self.umask = mask;
        self
    }

    /// Whether to fork twice (default off). The intermediate child calls
    /// `setsid`, forks the daemon, reports its pid, and keeps it unreaped
    /// (so the pid cannot be reused) until the launcher has the daemon's own
    /// set-up report; then it exits and the launcher reaps it. The launcher still
    /// learns the daemon's own pid and its readiness.
    #[must_use]
    pub const fn double_fork(mut self, on: bool) -> DaemonOptions<'a> {
        self.double_fork = on;
        self
    }

    /// Keep a pid file at `path`. A relative path is relative to the
    /// launcher's working directory at the call, whatever `chdir_root`
    /// does.
    ///
    /// The daemon itself (after the second fork, if any) opens the file
    /// without truncating it, takes an `fcntl` write lock on it, checks
    /// that `path` still names the file it locked, and only then truncates
    /// it and writes its pid and a newline, all before its set-up report.
    /// So a second instance fails at once, with [`Error::AlreadyRunning`]
    /// naming the running daemon's pid, and never truncates the running
    /// daemon's file; a stale file whose daemon is gone (nobody holds the
    /// lock) is taken over. The lock lasts as long as the daemon keeps the
    /// [`PidFile`] it is given, and ends when it exits.
    ///
    /// The check matters when the previous daemon exits just as this one
    /// starts: it removes its file, and this one's lock on the file it had
    /// already opened would exclude nobody. The daemon then opens the path
    /// again (a few times at most; then [`Error::SetupFailed`] with
    /// [`SetupStep::PidFile`] and `EAGAIN`: the path keeps changing).
    ///
    /// `fcntl` locks belong to a process and end when it closes *any* fd of
    /// the file: the daemon must not open its own pid file again. They are
    /// not inherited by children, and end at `exec`.
    #[must_use]
    pub const fn pid_file<'b>(self, path: &'b CStr) -> DaemonOptions<'b> {
        DaemonOptions {
            chdir_root: self.chdir_root,
            close_stdio: self.close_stdio,
            umask: self.umask,
            double_fork: self.double_fork,
            pid_file: Some(path),
        }
    }
}

impl Default for DaemonOptions<'_> {
    /// The same as [`DaemonOptions::new`].
    fn default() -> Self {
        DaemonOptions::new()
    }
}

/// A set-up step that failed in the child, as [`Error::SetupFailed`]
/// reports it.
///
/// ```
/// use bitcoin_tokenpipe::daemon::SetupStep;
/// assert_eq!(SetupStep::PidFile.to_string(), "the pid file");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum SetupStep {
    /// `setsid()`.
    Setsid = 1,
    /// The second `fork()` of a double fork.
    Fork = 2,
    /// Opening, locking, truncating or writing the pid file (`EAGAIN`:
    /// the file at its path kept being replaced while it was locked).
    PidFile = 3,
    /// `chdir("/")`.
    Chdir = 4,
    /// Opening `/dev/null` and putting it on fds 0, 1 and 2.
    Stdio = 5,
}

impl SetupStep {
    const ALL: [SetupStep; 5] = [
        SetupStep::Setsid,
        SetupStep::Fork,
        SetupStep::PidFile,
        SetupStep::Chdir,
        SetupStep::Stdio,
    ];

    fn from_u8(raw: u8) -> Option<SetupStep> {
        SetupStep::ALL.into_iter().find(|s| *s as u8 == raw)
    }
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetupStep::Setsid => "setsid()",
            SetupStep::Fork => "the second fork()",
            SetupStep::PidFile => "the pid file",
            SetupStep::Chdir => "chdir(\"/\")",
            SetupStep::Stdio => "pointing stdio at /dev/null",
        })
    }
}

/// Which side of the fork this is.
///
/// ```standalone_crate
/// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new()) }? {
///     Forked::Parent(mut daemon) => assert_eq!(daemon.wait_ready()?, false),
///     Forked::Child(daemon) => {
///         daemon.notifier.notify(false)?; // initialisation failed
///         std::process::exit(1);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Forked<'a> {
    /// The launcher, after the child's set-up succeeded.
    Parent(DaemonParent),
    /// The detached daemon, which must report readiness.
    Child(DaemonChild<'a>),
}

/// What the daemon holds after its set-up: the notifier it reports with,
/// and its pid file, if it was asked to keep one.
///
/// ```standalone_crate
/// use bitcoin_tokenpipe::TokenPipe;
/// use bitcoin_tokenpipe::daemon::{DaemonChild, DaemonOptions, Forked, fork_daemon};
///
/// let dir = std::env::temp_dir().join(format!("tokenpipe-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = std::ffi::CString::new(dir.join("app.pid").into_os_string().into_encoded_bytes())?;
/// // The daemon "serves" until the launcher has looked at the pid file.
/// let (until_checked, checked) = TokenPipe::make()?.split();
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new().pid_file(&path)) }? {
///     Forked::Parent(mut daemon) => {
///         let written = std::fs::read_to_string(dir.join("app.pid"))?;
///         assert_eq!(written, format!("{}\n", daemon.pid()));
///         assert!(daemon.wait_ready()?);
///         drop(checked);
///         assert!(daemon.wait()?.success());
///         // The daemon removed its pid file on its way out.
///         assert!(!dir.join("app.pid").exists());
///         std::fs::remove_dir(&dir)?;
///     }
///     Forked::Child(DaemonChild { notifier, pid_file, .. }) => {
///         drop(checked);
///         notifier.notify(true)?;
///         let _ = until_checked.token_read(); // ... serve ...
///         drop(pid_file); // removes the file and releases the lock
///         std::process::exit(0);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "the launcher waits for notifier.notify(); dropping it reports failure"]
pub struct DaemonChild<'a> {
    /// The one-shot readiness report to the launcher.
    pub notifier: ReadyNotifier,
    /// The locked pid file, if [`DaemonOptions::pid_file`] asked for one.
    /// Keep it for the daemon's life; dropping it removes the file.
    pub pid_file: Option<PidFile<'a>>,
}

/// The launcher's view of the daemon: its readiness report, and control of
/// the process (pid, pidfd, signals, exit status).
///
/// Dropping it closes the pipe and the pidfd but never waits: a daemon
/// that is left running stays running, and one that has ended stays a
/// zombie until the launcher exits (launchers normally do, right after
/// [`wait_ready`](Self::wait_ready)) or [`wait`](Self::wait)s for it.
///
/// ```standalone_crate
/// use bitcoin_tokenpipe::Error;
/// use bitcoin_tokenpipe::daemon::{ChildExit, DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new()) }? {
///     Forked::Parent(mut daemon) => {
///         assert!(daemon.pid() > 0);
///         // The daemon dropped its notifier without a word: failure.
///         assert_eq!(daemon.wait_ready(), Err(Error::DiedBeforeReady));
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

/// The daemon's readiness report: since readiness learnt every launcher's
/// protocol, the one [`Notifier`](crate::ready::Notifier) type, here on
/// this crate's token pipe. Report with
/// [`notify`](crate::ready::Notifier::notify) (or `ready`/`failed`);
/// dropping it unsent closes the pipe, which the launcher reads as failure
/// ([`Error::DiedBeforeReady`]).
pub type ReadyNotifier = crate::ready::Notifier;

/// Forks a daemon and waits until its set-up is done: the port of
/// bitcoind's `fork_daemon`, hardened.
///
/// In the child, in this order: `setsid()`; with
/// [`double_fork`](DaemonOptions::double_fork), a second `fork()` (the
/// intermediate child reports the daemon's pid and waits, keeping it
/// unreaped, until the launcher has the daemon's set-up report, then
/// exits); `umask`; the [`pid_file`](DaemonOptions::pid_file) (open
/// without truncating, lock, check that the path still names it, truncate,
/// write); `chdir("/")`; stdio onto
/// `/dev/null`; then the set-up report (the daemon's pid, or the step that
/// failed and its errno). Only async-signal-safe calls are made until the
/// report. The daemon returns `Ok(Forked::Child(..))`.
///
/// In the launcher: returns `Ok(Forked::Parent(..))` only after the
/// report of a successful set-up. The pipe's ends are kept at fd 3 or
/// above and are close-on-exec, so a daemon that `exec`s loses its
/// notifier (the launcher sees failure) unless it hands the end over on
/// purpose ([`ReadyNotifier::into_end`], or `pass_to` with `std`).
///
/// Syscalls in the launcher: `pipe2`, `fcntl(F_DUPFD_CLOEXEC)` and `close`
/// only for an end that landed on 0–2, `fork`, `close`, `pidfd_open`
/// (Linux), `read` ×2. With `double_fork`: `pipe2` ×2, `fork`, `close`,
/// `pidfd_open` ×2 (intermediate and daemon), `read` ×4, `close`, then
/// the intermediate is reaped (`poll` on its pidfd, else `waitpid(WNOHANG)`
/// and `nanosleep` every millisecond; `waitpid`; `close`).
///
/// # Safety
/// - The process must have **no other threads** when this is called. The
///   child is a copy of the calling thread only; any lock another thread
///   held (the allocator's, stdout's) stays locked forever in the child.
///   Call it first thing in `main`. (A program that has started threads
///   should re-execute itself instead of forking.)
/// - After `fork_daemon` returns in the child, the child is an ordinary
///   single-threaded process, as safe as the program was before the call.
///
/// # Errors
/// In the launcher, after the child is reaped (or killed and reaped):
/// - [`Error::Os`] if a pipe or the fork cannot be made (`EMFILE`,
///   `EAGAIN`), before any child exists;
/// - [`Error::SetupFailed`] with the step and its errno;
/// - [`Error::AlreadyRunning`] with the pid that holds the pid file;
/// - [`Error::DiedDuringSetup`] if the child died without a report, with
///   its exit status where it was our child;
/// - [`Error::UnexpectedToken`] for a report this module never sends.
///
/// # References
/// - [POSIX `fork`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fork.html)
/// - [POSIX `setsid`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsid.html)
/// - [POSIX `fcntl` (record locks)](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [POSIX `chdir`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/chdir.html)
/// - [POSIX `dup2`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
/// - [POSIX `_exit`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/_exit.html)
/// - [Linux `pidfd_open`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
/// - [Linux `daemon(7)`](https://man7.org/linux/man-pages/man7/daemon.7.html)
///
/// See the [module example](self).
#[allow(unsafe_code)] // fork's contract becomes this function's.
pub unsafe fn fork_daemon(options: DaemonOptions<'_>) -> Result<Forked<'_>> {
    // SAFETY: our caller's contract is fork_with's; the real set-up has no
    // fault hook.
    unsafe { fork_with(options, |_, _| {}) }
}

/// A test's hook into the child's set-up, called at each [`Stage`] with
/// the pipe's write end; the real set-up's does nothing.
type Fault = fn(Stage, &TokenPipeEnd);

/// The points in the child's set-up where a test can make it die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    Setsid,
    Fork,
    PidFile,
    /// Between opening the pid file and locking it, at each try.
    PidFileLock,
    Chdir,
    Stdio,
    Report,
}

/// The set-up report, child to launcher. Each message goes out in one
/// `write(2)` of at most [`MESSAGE_MAX`] bytes, far below `PIPE_BUF`, so it
/// arrives whole or not at all. The readiness token that follows is one
/// byte, as in bitcoind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// `[0, pid]`: set-up done; the daemon's pid.
    Done(libc::pid_t),
    /// `[2, step, errno]`: a step failed; the child exits.
    StepFailed(SetupStep, Errno),
    /// `[3, pid]`: the pid file is locked by this pid; the child exits.
    AlreadyRunning(libc::pid_t),
    /// `[4, pid]`: from the intermediate child of a double fork, the
    /// daemon's pid. Always first: the daemon waits for it to be sent
    /// before it goes on, and its own report follows.
    Forked(libc::pid_t),
}

const MESSAGE_MAX: usize = 6;
const TAG_DONE: u8 = 0;
const TAG_STEP_FAILED: u8 = 2;
const TAG_ALREADY_RUNNING: u8 = 3;
const TAG_FORKED: u8 = 4;

impl Report {
    fn encode(self, buf: &mut [u8; MESSAGE_MAX]) -> &[u8] {
        let (tag, first, value) = match self {
            Report::Done(pid) => (TAG_DONE, None, pid),
            Report::StepFailed(step, errno) => (TAG_STEP_FAILED, Some(step as u8), errno.raw()),
            Report::AlreadyRunning(pid) => (TAG_ALREADY_RUNNING, None, pid),
            Report::Forked(pid) => (TAG_FORKED, None, pid),
        };
        buf[0] = tag;
        let mut len = 1;
        if let Some(byte) = first {
            buf[1] = byte;
            len = 2;
        }
        buf[len..len + 4].copy_from_slice(&value.to_ne_bytes());
        &buf[..len + 4]
    }

    /// Sends the report in one write. If the launcher is gone, `SIGPIPE`
    /// ends the child at the default disposition, or the write fails with
    /// `BrokenPipe` and the caller exits: nobody waits for this daemon.
    fn send(self, writer: &TokenPipeEnd) -> Result<()> {
        let mut buf = [0u8; MESSAGE_MAX];
        let bytes = self.encode(&mut buf);
        match writer.write_tokens(bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(Error::Os(Errno::EFAULT)), // cannot happen: one write ≤ PIPE_BUF
            Err(e) => Err(e),
        }
    }

    /// Reads one report: the tag, then exactly its payload, so the
    /// readiness token behind it stays in the pipe.
    fn receive(reader: &TokenPipeEnd) -> Result<Report> {
        let tag = reader.token_read()?;
        let payload = match tag {
            TAG_STEP_FAILED => 5,
            TAG_DONE | TAG_ALREADY_RUNNING | TAG_FORKED => 4,
            other => return Err(Error::UnexpectedToken(other)),
        };
        let mut buf = [0u8; MESSAGE_MAX - 1];
        reader.read_exact(&mut buf[..payload])?;
        let value =
            |at: usize| i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        Ok(match tag {
            TAG_DONE => Report::Done(value(0)),
            TAG_ALREADY_RUNNING => Report::AlreadyRunning(value(0)),
            TAG_FORKED => Report::Forked(value(0)),
            _ => match SetupStep::from_u8(buf[0]) {
                Some(step) => Report::StepFailed(step, Errno::from_raw(value(1))),
                None => return Err(Error::UnexpectedToken(TAG_STEP_FAILED)),
            },
        })
    }

    /// What a report other than "done" means to the launcher.
    fn into_error(self) -> Error {
        match self {
            Report::StepFailed(step, errno) => Error::SetupFailed { step, errno },
            Report::AlreadyRunning(pid) => Error::AlreadyRunning(pid),
            Report::Done(_) => Error::UnexpectedToken(TAG_DONE),
            Report::Forked(_) => Error::UnexpectedToken(TAG_FORKED),
        }
    }
}

/// A pipe whose two ends are at fd 3 or above: a launcher started with
/// stdio closed would otherwise get them on 0–2, where the daemon's
/// `/dev/null` redirection closes them and std's `println!` writes into
/// them.
fn pipe_above_stdio() -> Result<(TokenPipeEnd, TokenPipeEnd)> {
    let (reader, writer) = TokenPipe::make()?.split();
    Ok((above_stdio(reader)?, above_stdio(writer)?))
}

fn above_stdio(end: TokenPipeEnd) -> Result<TokenPipeEnd> {
    let fd = end.into_raw_fd();
    // above_stdio closes `fd` if it fails, so nothing leaks either way.
    sys::above_stdio(fd)
        .map(TokenPipeEnd::from_owned)
        .map_err(Error::Os)
}

/// `fork_daemon` with a fault hook, called at each [`Stage`] in the child,
/// so the unit tests can kill the child at every step of its set-up.
///
/// # Safety
/// As for [`fork_daemon`]; `fault` must make only async-signal-safe calls.
#[allow(unsafe_code)]
unsafe fn fork_with(options: DaemonOptions<'_>, fault: Fault) -> Result<Forked<'_>> {
    let (reader, writer) = pipe_above_stdio()?;
    let hold = match options.double_fork {
        true => Some(pipe_above_stdio()?),
        false => None,
    };
    // SAFETY: our caller guarantees there are no other threads, and until
    // its report the child calls only async-signal-safe functions.
    let pid = unsafe { sys::fork() }.map_err(Error::Os)?;
    if pid == 0 {
        drop(reader);
        let hold = hold.map(|(hold_reader, _)| hold_reader);
        // SAFETY: our caller's contract covers the second fork too.
        let child = unsafe { child_setup(writer, hold, options, fault) };
        return Ok(Forked::Child(child));
    }
    // Close our copy of the write end: with it open, a dead child would look
    // like a silent one forever.
    drop(writer);
    let mut child = Process::child(pid);
    let Some((_, hold)) = hold else {
        return match Report::receive(&reader) {
            Ok(Report::Done(_)) => Ok(Forked::Parent(DaemonParent {
                process: child,
                reader,
            })),
            Ok(report) => {
                child.reap_or_kill(EXIT_GRACE);
                Err(report.into_error())
            }
            Err(Error::Eos) => Err(Error::DiedDuringSetup(child.reap_or_kill(EXIT_GRACE))),
            Err(e) => {
                // A stranger's byte or a failed read: the child may be alive
                // and well, but it is not ours to leave running.
                child.reap_or_kill(Duration::ZERO);
                Err(e)
            }
        };
    };
    // Double fork. `child` is the intermediate: it forks the daemon, reports
    // the daemon's pid, then blocks reading `hold` without ever reaping the
    // daemon, so until we close `hold` the daemon's pid cannot be reused.
    let daemon = match Report::receive(&reader) {
        Ok(Report::Forked(daemon_pid)) => Process::stranger(daemon_pid),
        other => {
            drop(hold);
            let exit = child.reap_or_kill(EXIT_GRACE);
            return Err(match other {
                Ok(report) => report.into_error(),
                Err(Error::Eos) => Error::DiedDuringSetup(exit),
                Err(e) => e,
            });
        }
    };
    let outcome = match Report::receive(&reader) {
        Ok(Report::Done(pid)) if pid == daemon.pid() => Ok(()),
        other => {
            // The daemon failed or died; make sure it is gone: through its
            // pidfd, which names it and nobody else whatever its pid does.
            let killed = daemon.kill(libc::SIGKILL);
            if killed == Err(Error::NotAChild) && child.try_wait() == Ok(None) {
                // No pidfd (not Linux, or Linux before 5.3). Then by pid,
                // which is still the daemon's while its parent, our
                // intermediate child, lives: that never reaps it, and it
                // waits on `hold` (unless SIGCHLD is ignored there, when the
                // kernel reaps the daemon as soon as it ends).
                let _ = sys::kill(daemon.pid(), libc::SIGKILL);
            }
            Err(match other {
                Ok(report) => report.into_error(),
                Err(Error::Eos) => Error::DiedDuringSetup(None),
                Err(e) => e,
            })
        }
    };
    // Let the intermediate child go, and reap it.
    drop(hold);
    child.reap_or_kill(EXIT_GRACE);
    outcome.map(|()| {
        Forked::Parent(DaemonParent {
            process: daemon,
            reader,
        })
    })
}

/// The child's set-up. Only async-signal-safe calls until the report; on
/// any failure it reports the step and `_exit(1)`s. Returns only in the
/// daemon, after a successful report.
///
/// # Safety
/// As for [`fork_daemon`] (it may fork again).
#[allow(unsafe_code)]
unsafe fn child_setup<'a>(
    writer: TokenPipeEnd,
    hold: Option<TokenPipeEnd>,
    options: DaemonOptions<'a>,
    fault: Fault,
) -> DaemonChild<'a> {
    let fail = |step: SetupStep, errno: Errno| -> ! {
        // If even this fails the launcher reads end of stream instead.
        let _ = Report::StepFailed(step, errno).send(&writer);
        sys::exit_now(1)
    };
    fault(Stage::Setsid, &writer);
    if let Err(e) = sys::setsid() {
        fail(SetupStep::Setsid, e);
    }
    if let Some(hold) = hold {
        fault(Stage::Fork, &writer);
        // The daemon waits on `go` until the intermediate child has sent
        // the daemon's pid, so that report is always the launcher's first.
        let (go, gone) = match pipe_above_stdio() {
            Ok(ends) => ends,
            Err(e) => fail(SetupStep::Fork, e.errno().unwrap_or(Errno::EIO)),
        };
        let intermediate = sys::getpid();
        // SAFETY: our caller's contract: this process has one thread.
        match unsafe { sys::fork() } {
            Err(e) => fail(SetupStep::Fork, e),
            Ok(0) => {
                drop((hold, gone));
                let _ = go.token_read();
                drop(go);
                if sys::getppid() != intermediate {
                    // The intermediate died before it told the launcher
                    // who we are: nobody can account for us. Leave; the
                    // launcher reads end of stream.
                    sys::exit_now(1);
                }
            }
            Ok(daemon) => {
                // The intermediate child: tell the launcher who the daemon
                // is, let the daemon go on, then wait, keeping the
                // daemon's pid reserved (it is our unreaped child), until
                // the launcher closes `hold` (or dies).
                let _ = Report::Forked(daemon).send(&writer);
                drop((go, gone, writer));
                let _ = hold.token_read();
                sys::exit_now(0);
            }
        }
    }
    if let Some(mask) = options.umask {
        sys::umask(mask);
    }
    let mut pid_file = None;
    if let Some(path) = options.pid_file {
        fault(Stage::PidFile, &writer);
        match PidFile::lock_and_write(path, || fault(Stage::PidFileLock, &writer)) {
            Ok(file) => pid_file = Some(file),
            Err(PidFileError::Held(pid)) => {
                let _ = Report::AlreadyRunning(pid).send(&writer);
                sys::exit_now(1);
            }
            Err(PidFileError::Os(e)) => fail(SetupStep::PidFile, e),
        }
    }
    // From here a failure removes the pid file it has just written.
    let fail_after_pid_file = |step: SetupStep, errno: Errno, pid_file: Option<PidFile<'a>>| -> ! {
        drop(pid_file);
        fail(step, errno)
    };
    if options.chdir_root {
        fault(Stage::Chdir, &writer);
        if let Err(e) = sys::chdir_root() {
            fail_after_pid_file(SetupStep::Chdir, e, pid_file);
        }
    }
    if options.close_stdio {
        fault(Stage::Stdio, &writer);
        if let Err(e) = sys::stdio_to_dev_null() {
            fail_after_pid_file(SetupStep::Stdio, e, pid_file);
        }
    }
    fault(Stage::Report, &writer);
    if Report::Done(sys::getpid()).send(&writer).is_err() {
        // The launcher is gone: nobody is waiting for this daemon.
        drop(pid_file);
        sys::exit_now(1);
    }
    DaemonChild {
        notifier: ReadyNotifier::from_pipe(writer),
        pid_file,
    }
}

impl DaemonParent {
    /// The daemon's process id (after a double fork: the daemon's own, not
    /// the intermediate child's).
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.process.pid()
    }

    /// Whether the daemon is this process's child, so that
    /// [`wait`](Self::wait) can report its exit status: true unless it was
    /// [double-forked](DaemonOptions::double_fork).
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
    /// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
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
    /// [`Error::Os`]`(ESRCH)` once [`wait`](Self::wait) or
    /// [`try_wait`](Self::try_wait) has reaped it (or, through a pidfd,
    /// once it has ended); [`Error::NotAChild`] for a double-forked daemon
    /// where there is no pidfd; [`Error::Os`] for anything else (`EINVAL`
    /// for a bad signal number, `EPERM`).
    ///
    /// # References
    /// - [Linux `pidfd_send_signal`](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
    /// - [POSIX `kill`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/kill.html)
    pub fn kill(&self, signal: c_int) -> Result<()> {
        self.process.kill(signal)
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
    /// [`Error::NotAChild`] as above; [`Error::Os`] from `waitpid`
    /// (`ECHILD` if `SIGCHLD` is ignored, which reaps children
    /// automatically).
    ///
    /// # References
    /// - [POSIX `waitpid`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
    pub fn try_wait(&mut self) -> Result<Option<ChildExit>> {
        self.process.try_wait()
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
    pub fn wait(&mut self) -> Result<ChildExit> {
        self.process.wait()
    }

    /// Blocks until the daemon reports: `Ok(true)` for ready (token 1),
    /// `Ok(false)` for failed (token 0). The pipe is closed once an answer
    /// (or an error) has arrived. Requests for more time and status texts are skipped.
    ///
    /// # Errors
    /// [`Error::DiedBeforeReady`] if the daemon exited, died or dropped its
    /// notifier first (then [`wait`](Self::wait) says how it ended);
    /// [`Error::UnexpectedToken`] for any other token; [`Error::Closed`] if
    /// called again after an answer.
    ///
    /// # References
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    pub fn wait_ready(&mut self) -> Result<bool> {
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
    fn skip_status(&mut self) -> Result<()> {
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
            Err(e) => Err(self.conclude(Err(e)).err().unwrap_or(e)),
        }
    }

    /// Reads the microseconds after an extend-timeout token.
    fn take_extension(&mut self) -> Result<Duration> {
        let mut usec = [0u8; 8];
        if let Err(e) = self.reader.read_exact(&mut usec) {
            // As any other answer: the pipe is closed, end of stream is a
            // death before ready.
            return Err(self.conclude(Err(e)).err().unwrap_or(e));
        }
        Ok(Duration::from_micros(u64::from_ne_bytes(usec)))
    }

    /// As [`wait_ready`](Self::wait_ready), waiting at most `timeout`
    /// (see [`TokenPipeEnd::token_read_timeout`]), pushed back when the
    /// daemon asks with [`extend_timeout`](crate::ready::Notifier::extend_timeout). On
    /// [`Error::TimedOut`] the pipe stays open, so the caller may wait
    /// again, or [`kill`](Self::kill) the daemon.
    ///
    /// # Errors
    /// As for [`wait_ready`](Self::wait_ready), and [`Error::TimedOut`].
    ///
    /// # References
    /// - [POSIX `poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    ///
    /// ```standalone_crate
    /// use bitcoin_tokenpipe::Error;
    /// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    /// use std::time::Duration;
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions::new()) }? {
    ///     Forked::Parent(mut daemon) => {
    ///         // Slow to initialise: the first wait times out, the second succeeds.
    ///         let first = daemon.wait_ready_timeout(Duration::from_millis(10));
    ///         assert_eq!(first, Err(Error::TimedOut));
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
    pub fn wait_ready_timeout(&mut self, timeout: Duration) -> Result<bool> {
        // Saturating: a timeout of `Duration::MAX` means "forever", not a panic.
        let mut deadline = sys::monotonic_now()
            .map_err(Error::Os)?
            .saturating_add(timeout);
        loop {
            let now = sys::monotonic_now().map_err(Error::Os)?;
            let answer = self.reader.token_read_timeout(deadline.saturating_sub(now));
            match answer {
                Err(Error::TimedOut) => return Err(Error::TimedOut),
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

    fn conclude(&mut self, answer: Result<u8>) -> Result<bool> {
        self.reader.close();
        match answer {
            Ok(READY) => Ok(true),
            Ok(FAILED) => Ok(false),
            Ok(other) => Err(Error::UnexpectedToken(other)),
            Err(Error::Eos) => Err(Error::DiedBeforeReady),
            Err(e) => Err(e),
        }
    }
}

/// A pid file the daemon holds locked, written with its pid; dropping it
/// removes the file (if it is still the one this daemon wrote, and only in
/// the process that wrote it) and releases the lock.
///
/// Made by [`fork_daemon`] when [`DaemonOptions::pid_file`] asks for one;
/// see there for how the lock works. `std::process::exit` runs no
/// destructors: drop it (or call [`remove`](Self::remove)) first, or the
/// file is left behind, unlocked, and the next instance takes it over.
#[derive(Debug)]
pub struct PidFile<'a> {
    /// The locked file, at fd 3 or above.
    fd: c_int,
    /// The launcher's working directory for a relative path (so removal
    /// works after `chdir("/")`), else `AT_FDCWD`.
    dir: c_int,
    path: &'a CStr,
    /// The process that locked it; a forked copy of this struct in another
    /// process never removes the file.
    owner: libc::pid_t,
}

/// Why the daemon could not take its pid file.
enum PidFileError {
    /// Another process holds the lock: its pid (0 if it cannot be known).
    Held(libc::pid_t),
    Os(Errno),
}

impl From<Errno> for PidFileError {
    fn from(e: Errno) -> PidFileError {
        PidFileError::Os(e)
    }
}

impl<'a> PidFile<'a> {
    /// Opens without truncating, locks, checks that the path still names
    /// the file it locked (else starts over), then truncates and writes our
    /// pid. `before_lock` runs between each open and its lock (the unit
    /// tests' fault hook). Async-signal-safe: runs in the freshly forked
    /// daemon.
    fn lock_and_write(
        path: &'a CStr,
        before_lock: impl Fn(),
    ) -> core::result::Result<PidFile<'a>, PidFileError> {
        let dir = if path.to_bytes().first() == Some(&b'/') {
            libc::AT_FDCWD
        } else {
            sys::above_stdio(sys::open_cwd()?)?
        };
        // From here `file`'s drop closes what it holds; until the lock is
        // ours it must not remove anything, so `owner` names nobody.
        let mut file = PidFile {
            fd: -1,
            dir,
            path,
            owner: 0,
        };
        let mut tries = 0;
        loop {
            file.fd = sys::above_stdio(sys::open_pid_file(dir, path)?)?;
            before_lock();
            lock_or_name_holder(file.fd)?;
            // The lock is on the file we opened, which may no longer be the
            // one at `path`: the instance that held it may have removed it
            // and exited between our open and our lock, and another may have
            // made a new file there since. A lock on a removed file excludes
            // nobody, so only a lock on the file the path names counts.
            match sys::path_names_fd(dir, path, file.fd) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) if e.raw() == libc::ENOENT => {}
                Err(e) => return Err(PidFileError::Os(e)),
            }
            // Closing it releases our lock on the file that left the path.
            sys::close(core::mem::replace(&mut file.fd, -1));
            tries += 1;
            if tries == PID_FILE_TRIES {
                return Err(PidFileError::Os(Errno::EAGAIN));
            }
        }
        file.owner = sys::getpid();
        sys::truncate(file.fd)?;
        let mut digits = [0u8; 12];
        let text = decimal_line(file.owner, &mut digits);
        if sys::write(file.fd, text)? != text.len() {
            return Err(PidFileError::Os(Errno::EIO));
        }
        Ok(file)
    }

    /// Takes the pid file at `path` for this process, as
    /// [`DaemonOptions::pid_file`] does for a forked daemon: for a daemon
    /// that did not fork (one a launcher started, or that re-executed
    /// itself with [`ready::launch`](crate::ready)). Open without
    /// truncating, lock, check that the path still names the locked file
    /// (else open it again), then truncate and write this process's pid.
    /// Async-signal-safe and allocation-free.
    ///
    /// # Errors
    /// [`Error::AlreadyRunning`] with the pid that holds the lock (the file
    /// is left as it is); [`Error::SetupFailed`] with
    /// [`SetupStep::PidFile`] and the errno if it cannot be opened, locked
    /// or written, `EAGAIN` if the file at the path was replaced at every
    /// try.
    ///
    /// ```
    /// use bitcoin_tokenpipe::daemon::PidFile;
    ///
    /// let path = std::env::temp_dir().join(format!("tokenpipe-lock-{}.pid", std::process::id()));
    /// let c_path = std::ffi::CString::new(path.to_str().unwrap())?;
    /// let file = PidFile::lock(&c_path)?;
    /// assert_eq!(std::fs::read_to_string(&path)?, format!("{}\n", std::process::id()));
    /// file.remove()?;
    /// assert!(!path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(path: &'a CStr) -> Result<PidFile<'a>> {
        PidFile::lock_and_write(path, || {}).map_err(|e| match e {
            PidFileError::Held(pid) => Error::AlreadyRunning(pid),
            PidFileError::Os(errno) => Error::SetupFailed {
                step: SetupStep::PidFile,
                errno,
            },
        })
    }

    /// The path it was created at, as given in the options.
    #[must_use]
    pub fn path(&self) -> &'a CStr {
        self.path
    }

    /// Removes the file now (if it is still the one this daemon wrote) and
    /// releases the lock.
    ///
    /// # Errors
    /// [`Error::Os`] if `unlinkat` or the check before it fails; the lock
    /// is released all the same.
    pub fn remove(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let mut result = Ok(());
        if self.fd >= 0 && self.owner == sys::getpid() {
            // Someone may have deleted our file and a new instance made
            // another at the path: only remove the one we hold.
            result = match sys::path_names_fd(self.dir, self.path, self.fd) {
                Ok(true) => sys::unlink_at(self.dir, self.path).map_err(Error::Os),
                Ok(false) => Ok(()),
                Err(e) => Err(Error::Os(e)),
            };
        }
        // Closing the fd releases the lock (after the unlink, so no second
        // instance can lock the name we are about to remove).
        if self.fd >= 0 {
            sys::close(core::mem::replace(&mut self.fd, -1));
        }
        if self.dir >= 0 {
            sys::close(core::mem::replace(&mut self.dir, -1));
        }
        result
    }
}

impl Drop for PidFile<'_> {
    /// Removes the file and releases the lock; see [`PidFile::remove`].
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// How many times the daemon opens its pid file afresh because the path
/// no longer named the file it had just locked. Each retry means another
/// instance removed the file between our `open` and our check, a window of
/// microseconds; a path replaced that often is being fought over, and the
/// daemon gives up with `EAGAIN` rather than spin.
const PID_FILE_TRIES: u32 = 5;

/// Takes the write lock on the open pid file `fd`, or names the process
/// that holds it.
fn lock_or_name_holder(fd: c_int) -> core::result::Result<(), PidFileError> {
    let mut attempts = 0;
    loop {
        match sys::lock_whole_file(fd) {
            Ok(()) => return Ok(()),
            Err(e) if e == Errno::EAGAIN || e == Errno::EACCES => {
                attempts += 1;
                match sys::lock_holder(fd)? {
                    // Released between our two calls: try again.
                    None if attempts < 3 => continue,
                    None => return Err(PidFileError::Os(e)),
                    Some(pid) if pid > 0 => return Err(PidFileError::Held(pid)),
                    // The holder is in another pid namespace: the pid it
                    // wrote is the best we have.
                    Some(_) => return Err(PidFileError::Held(read_pid(fd))),
                }
            }
            Err(e) => return Err(PidFileError::Os(e)),
        }
    }
}

/// The pid written at the start of a pid file, or 0 if it has none.
fn read_pid(fd: c_int) -> libc::pid_t {
    let mut buf = [0u8; 12];
    let n = sys::read_at_start(fd, &mut buf).unwrap_or(0);
    let mut pid: libc::pid_t = 0;
    for &b in buf[..n].iter().take_while(|b| b.is_ascii_digit()) {
        pid = match pid
            .checked_mul(10)
            .and_then(|p| p.checked_add(libc::pid_t::from(b - b'0')))
        {
            Some(p) => p,
            None => return 0,
        };
    }
    pid
}

/// `pid` in decimal and a newline, formatted into `buf` without `core::fmt`
/// (which is not documented as async-signal-safe).
fn decimal_line(pid: libc::pid_t, buf: &mut [u8; 12]) -> &[u8] {
    let digits = crate::ready::decimal(i64::from(pid), &mut buf[..11]).len();
    buf[11] = b'\n';
    &buf[11 - digits..]
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests;
