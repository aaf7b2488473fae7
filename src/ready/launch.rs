//! The launcher's side (`std`): start a program, offer it every readiness
//! channel at once, and wait in one `poll` for its report, its death or
//! the timeout.

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{NOTIFY_SOCKET_ENV, NotifyAddr, READY_FD_ENV, TOKEN_EXTEND, TOKEN_FAILED, TOKEN_READY};
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error};
use crate::pipe::TokenPipe;
use crate::process::{ChildExit, Process};
use crate::sys::{self, UnixAddr};
use crate::wait::poll_timeout_ms;

/// How [`launch`] waits.
///
/// ```
/// use bitcoin_tokenpipe::ready::LaunchOptions;
/// use std::time::Duration;
///
/// let o = LaunchOptions::new().timeout(Duration::from_secs(5)).detach(true);
/// assert!(o.kill_on_timeout && o.detach);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LaunchOptions {
    /// How long the program has to report (default 30 s); it can ask for
    /// more with `EXTEND_TIMEOUT_USEC=` or
    /// [`Notifier::extend_timeout`](super::Notifier::extend_timeout).
    pub timeout: Duration,
    /// Start the program in a new session (`setsid` between `fork` and
    /// `exec`) with stdin, stdout and stderr on `/dev/null`, as a daemon
    /// (default off). On timeout its whole process group is killed.
    pub detach: bool,
    /// Kill (and reap) the program if it has not reported in time (default
    /// on). Off, the timeout hands the running program back to the caller.
    pub kill_on_timeout: bool,
}

impl LaunchOptions {
    /// The defaults: 30 s, not detached, killed on timeout.
    #[must_use]
    pub const fn new() -> LaunchOptions {
        LaunchOptions {
            timeout: Duration::from_secs(30),
            detach: false,
            kill_on_timeout: true,
        }
    }

    /// How long the program has to report.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> LaunchOptions {
        self.timeout = timeout;
        self
    }

    /// Whether to start it in a new session with stdio on `/dev/null`.
    #[must_use]
    pub const fn detach(mut self, on: bool) -> LaunchOptions {
        self.detach = on;
        self
    }

    /// Whether to kill it if it has not reported in time.
    #[must_use]
    pub const fn kill_on_timeout(mut self, on: bool) -> LaunchOptions {
        self.kill_on_timeout = on;
        self
    }
}

impl Default for LaunchOptions {
    fn default() -> LaunchOptions {
        LaunchOptions::new()
    }
}

/// A program [`launch`] started and that reported: its pid, control over
/// it, and the last `STATUS=` text it sent. The caller owns it: dropping
/// it neither kills nor waits for the program.
#[derive(Debug)]
pub struct ReadyChild {
    process: Process,
    status: Option<String>,
}

impl ReadyChild {
    /// The program's process id.
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.process.pid()
    }

    /// The last `STATUS=` text it sent, if any.
    #[must_use]
    pub fn status_text(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// Sends `signal`, through its pidfd where there is one, never to a
    /// reused pid; `ESRCH` once it has been reaped.
    ///
    /// # Errors
    /// As for [`DaemonParent::kill`](crate::daemon::DaemonParent::kill).
    pub fn kill(&self, signal: c_int) -> Result<(), Error> {
        self.process.kill(signal)
    }

    /// How it ended, without blocking: `Ok(None)` while it runs.
    ///
    /// # Errors
    /// [`Error::Os`] from `waitpid`.
    pub fn try_wait(&mut self) -> Result<Option<ChildExit>, Error> {
        self.process.try_wait()
    }

    /// Blocks until it ends, reaps it, and says how it ended.
    ///
    /// # Errors
    /// [`Error::Os`] from `waitpid`.
    pub fn wait(&mut self) -> Result<ChildExit, Error> {
        self.process.wait()
    }

    /// Its pidfd (Linux 5.3+), readable once it has ended: for tokio's
    /// `AsyncFd`, mio or `poll`. `None` where the system gave none.
    #[must_use]
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.process.borrowed_pidfd()
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
            None => crate::std_impls::no_pidfd("ReadyChild"),
        }
    }
}

/// Why [`launch`] gives no ready program.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// The program could not be started (`Command::spawn` failed).
    Spawn(io::Error),
    /// The pipe or socket offered to the program could not be made.
    Setup(Error),
    /// The program reported that it failed (token 0, `ERRNO=`, or a
    /// notification fd closed without a newline while it ran). It may
    /// still be running: the caller owns it.
    Failed {
        /// The program, still the caller's to wait for or kill.
        child: ReadyChild,
        /// The errno it reported, if it reported one.
        errno: Option<i32>,
        /// The last `STATUS=` text it sent.
        status: Option<String>,
    },
    /// The program exited (or was killed) before it reported. It has been
    /// reaped.
    Exited {
        /// How it ended.
        exit: ChildExit,
        /// The last `STATUS=` text it sent.
        status: Option<String>,
    },
    /// No report within the timeout.
    TimedOut {
        /// With `kill_on_timeout` (the default): how the killed and reaped
        /// program ended. Otherwise `None`, and `child` holds it.
        killed: Option<ChildExit>,
        /// Without `kill_on_timeout`: the program, still running.
        child: Option<ReadyChild>,
        /// How long it was given, extensions included.
        waited: Duration,
        /// The last `STATUS=` text it sent.
        status: Option<String>,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = |f: &mut fmt::Formatter<'_>, status: &Option<String>| match status {
            Some(text) => write!(f, "; its last status: {text:?}"),
            None => Ok(()),
        };
        match self {
            LaunchError::Spawn(e) => write!(f, "could not start the program: {e}"),
            LaunchError::Setup(e) => write!(f, "could not make the readiness channel: {e}"),
            LaunchError::Failed {
                child,
                errno,
                status: text,
            } => {
                write!(f, "program {} reported that it failed", child.pid())?;
                if let Some(errno) = errno {
                    write!(f, ": {}", Errno::from_raw(*errno))?;
                }
                status(f, text)
            }
            LaunchError::Exited { exit, status: text } => {
                write!(f, "the program {exit} before it reported")?;
                status(f, text)
            }
            LaunchError::TimedOut {
                killed,
                waited,
                status: text,
                ..
            } => {
                write!(f, "no report within {waited:?}")?;
                match killed {
                    Some(exit) => write!(f, "; killed it (it {exit})")?,
                    None => write!(f, "; it is still running")?,
                }
                status(f, text)
            }
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Spawn(e) => Some(e),
            LaunchError::Setup(e) => Some(e),
            _ => None,
        }
    }
}

/// Starts `cmd` and waits until it reports ready, reports failure, exits,
/// or runs out of time, whatever readiness protocol it speaks.
///
/// It offers every channel at once: this crate's token pipe, through
/// [`READY_FD_ENV`](super::READY_FD_ENV) (a program using
/// [`Notifier::from_env`](super::Notifier::from_env) takes it; an
/// s6-style program can be told the number, and its newline counts as
/// ready), and a private systemd notify socket in `NOTIFY_SOCKET`: a path
/// in a fresh directory only this user may enter, removed afterwards (not
/// a Linux abstract name, which any local user could send to and which
/// some senders, such as the `sd-notify` crate 0.5, cannot reach). It starts the program with
/// `Command::spawn`, so it is safe in a process with threads or an async
/// runtime, where forking to run Rust code in the child is not.
///
/// It then waits in one `poll` on the pipe, the socket and the program's
/// pidfd (Linux 5.3+: death is seen at once; elsewhere `waitpid(WNOHANG)`
/// every 10 ms). A report that arrived before the program exited wins
/// over its exit. A program that exits while the pipe's write end is still
/// held by a process it started (a program that daemonizes itself, like
/// `bitcoind -daemon`) has not died: the wait goes on for the report, end
/// of stream or the timeout. `EXTEND_TIMEOUT_USEC=` pushes the deadline;
/// `STATUS=` text is kept for the error message.
///
/// After a verdict the caller owns the program: `Ok(ReadyChild)` when it
/// is ready, [`LaunchError::Failed`] holds it when it reported failure.
/// The socket is closed then, as systemd's is not but Debian's
/// `start-stop-daemon`'s is; so that a sender following `READY=1` with
/// `BARRIER=1` (`systemd-notify` does) still gets its confirmation, a
/// verdict reached once anything has been heard on the socket waits up to
/// [`BARRIER_LINGER`] for that barrier, and ends the wait as soon as it has
/// been completed.
///
/// `launch` adds its hand-off (environment and a `pre_exec` check) to
/// `cmd`: use a fresh `Command` for each launch, as a spent one fails to
/// spawn with `EBADF` rather than hand over a stale fd.
///
/// # Errors
/// [`LaunchError`]: `Spawn`, `Setup`, `Failed`, `Exited` (within
/// milliseconds of its death, not at the timeout), `TimedOut`.
///
/// ```
/// use bitcoin_tokenpipe::ready::{LaunchError, LaunchOptions, launch};
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
    let (reader, writer) = TokenPipe::make().map_err(LaunchError::Setup)?.split();
    reader.set_nonblocking(true).map_err(LaunchError::Setup)?;
    writer
        .pass_to(cmd, READY_FD_ENV)
        .map_err(LaunchError::Setup)?;
    let socket = NotifySocket::bind().map_err(LaunchError::Setup)?;
    cmd.env(NOTIFY_SOCKET_ENV, socket.addr.to_env_value());
    if options.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let new_session = || sys::setsid().map_err(|e| io::Error::from_raw_os_error(e.raw()));
        #[allow(unsafe_code)]
        // SAFETY: the closure runs between fork and exec and makes one
        // async-signal-safe call, setsid, allocating nothing.
        unsafe {
            cmd.pre_exec(new_session);
        }
    }
    let spawned = cmd.spawn().map_err(LaunchError::Spawn)?;
    // std's Child neither kills nor waits when dropped; our Process takes
    // over the pid (and opens its pidfd now, before anyone can reap it).
    let process = Process::child(spawned.id() as libc::pid_t);
    drop(spawned);
    // Our copy of the write end must go, or a dead program would look like
    // a silent one.
    drop(writer);
    Waiter {
        process,
        reader,
        socket,
        options,
        status: None,
        heard_on_socket: false,
        pipe_closed: false,
        exited: None,
    }
    .run()
}

/// This launch's private notify socket; removed with its directory when
/// dropped.
struct NotifySocket {
    fd: TokenPipeEnd,
    addr: NotifyAddr,
    dir: std::path::PathBuf,
}

/// Tells this process's launches apart.
static LAUNCHES: AtomicU32 = AtomicU32::new(0);

impl NotifySocket {
    fn bind() -> Result<NotifySocket, Error> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::DirBuilderExt;

        let n = LAUNCHES.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let os_error =
            |e: io::Error| Error::Os(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        // A path in a directory only this user may enter, rather than a
        // Linux abstract name: abstract names have no permissions, and some
        // senders (the sd-notify crate 0.5) connect to paths only.
        let dir = std::env::temp_dir().join(format!(
            "bitcoin-tokenpipe-launch-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(os_error)?;
        let path = dir.join("notify");
        let unix = UnixAddr::new(path.as_os_str().as_bytes(), false);
        let socket = unix
            .ok_or(Error::Os(Errno::from_raw(libc::ENAMETOOLONG)))
            .and_then(|unix| {
                let fd = TokenPipeEnd::from_owned(sys::unix_datagram_socket().map_err(Error::Os)?);
                // Belt and braces on Linux: the kernel names each sender,
                // and only this user's (or root's) processes are heard.
                #[cfg(tokenpipe_linux_like)]
                sys::pass_credentials(fd.as_raw_fd()).map_err(Error::Os)?;
                sys::bind(fd.as_raw_fd(), &unix).map_err(Error::Os)?;
                Ok(NotifySocket {
                    fd,
                    addr: NotifyAddr::from_unix(unix),
                    dir: dir.clone(),
                })
            });
        if socket.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        socket
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a wait decided.
enum Verdict {
    Ready,
    Failed(Option<i32>),
}

/// The state of one launch's wait.
struct Waiter {
    process: Process,
    reader: TokenPipeEnd,
    socket: NotifySocket,
    options: LaunchOptions,
    status: Option<String>,
    heard_on_socket: bool,
    pipe_closed: bool,
    exited: Option<ChildExit>,
}

/// How long a verdict heard on the socket waits for the `BARRIER=1` that a
/// systemd-style sender sends right after it (see [`launch`]).
pub const BARRIER_LINGER: Duration = Duration::from_millis(25);

/// How often to look for the program's death where there is no pidfd.
const DEATH_CADENCE: Duration = Duration::from_millis(10);
/// How long a closed pipe waits for the program's death before it counts
/// as a notification fd closed without a report: exit closes the fds a
/// moment before the process can be reaped.
const EXIT_GRACE: Duration = Duration::from_millis(100);

impl Waiter {
    fn run(mut self) -> Result<ReadyChild, LaunchError> {
        let start = Instant::now();
        // A timeout past what an Instant holds (`Duration::MAX`) means
        // "forever": a century stands in for it rather than a panic.
        let mut deadline = start
            .checked_add(self.options.timeout)
            .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600));
        loop {
            // Reports first: one that came before the program exited wins.
            if let Some(verdict) = self.take_reports(&mut deadline) {
                return self.conclude(verdict);
            }
            if self.exited.is_none() {
                self.exited = self.process.try_wait().ok().flatten();
            }
            if let Some(exit) = self.exited {
                // Exited with the pipe still held by something it started:
                // not dead, keep waiting. Otherwise it died first.
                if self.pipe_closed {
                    return Err(LaunchError::Exited {
                        exit,
                        status: self.status,
                    });
                }
            } else if self.pipe_closed && !self.heard_on_socket {
                // The pipe closed with no report while the program runs: a
                // notification fd closed without a newline, unless it is
                // only the program dying.
                if let Some(exit) = self.exited_within(EXIT_GRACE) {
                    return match self.take_reports(&mut deadline) {
                        Some(verdict) => self.conclude(verdict),
                        None => Err(LaunchError::Exited {
                            exit,
                            status: self.status,
                        }),
                    };
                }
                return self.conclude(Verdict::Failed(None));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timed_out(deadline - start));
            }
            self.wait_for_news(deadline - now);
        }
    }

    /// Waits until the pipe, the socket or the pidfd has news, or `limit`.
    fn wait_for_news(&self, limit: Duration) {
        let pidfd = if self.exited.is_none() {
            self.process.pidfd()
        } else {
            None
        };
        let limit = match pidfd {
            Some(_) => limit,
            // No pidfd (or it already ended): look for death on a cadence.
            None if self.exited.is_none() => limit.min(DEATH_CADENCE),
            None => limit,
        };
        let mut fds = [
            libc::pollfd {
                fd: if self.pipe_closed {
                    -1
                } else {
                    self.reader.as_raw_fd()
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.socket.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = poll_timeout_ms(limit);
        // EINTR or a failure: the loop looks again and re-checks the time.
        let _ = sys::poll_many(&mut fds, ms);
    }

    /// Reads every datagram and every pipe message waiting, in order,
    /// without blocking; returns the first verdict.
    fn take_reports(&mut self, deadline: &mut Instant) -> Option<Verdict> {
        let mut buf = [0u8; 4096];
        let me = sys::getuid();
        while let Ok(got) = sys::recv_datagram(self.socket.fd.as_raw_fd(), &mut buf) {
            if got.sender_uid.is_some_and(|uid| uid != me && uid != 0) {
                continue; // another user's process: not ours to hear
            }
            self.heard_on_socket = true;
            if let Some(verdict) = self.datagram(&buf[..got.len], deadline) {
                return Some(verdict);
            }
        }
        while !self.pipe_closed {
            match self.reader.token_read() {
                Ok(TOKEN_READY | b'\n') => return Some(Verdict::Ready),
                Ok(TOKEN_FAILED) => {
                    let errno = self.read_exact::<4>().map(i32::from_ne_bytes);
                    return Some(Verdict::Failed(errno));
                }
                Ok(TOKEN_EXTEND) => {
                    if let Some(usec) = self.read_exact::<8>() {
                        self.extend(deadline, u64::from_ne_bytes(usec));
                    }
                }
                // Anything else is not ours to understand; skip it.
                Ok(_) => {}
                Err(Error::Eos) => self.pipe_closed = true,
                Err(_) => break, // WouldBlock: nothing more now
            }
        }
        None
    }

    /// The bytes after a token; they were written in the same `write`.
    fn read_exact<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut bytes = [0u8; N];
        match self.reader.read_exact(&mut bytes) {
            Ok(()) => Some(bytes),
            Err(e) => {
                self.pipe_closed |= e == Error::Eos;
                None
            }
        }
    }

    /// One notify datagram: `KEY=VALUE` lines.
    fn datagram(&mut self, text: &[u8], deadline: &mut Instant) -> Option<Verdict> {
        let mut verdict = None;
        for line in text.split(|&b| b == b'\n') {
            if line == b"READY=1" {
                verdict = verdict.or(Some(Verdict::Ready));
            } else if let Some(errno) = line.strip_prefix(b"ERRNO=") {
                let errno = std::str::from_utf8(errno).ok().and_then(|s| s.parse().ok());
                verdict = verdict.or(Some(Verdict::Failed(errno)));
            } else if let Some(text) = line.strip_prefix(b"STATUS=") {
                self.status = Some(String::from_utf8_lossy(text).into_owned());
            } else if let Some(usec) = line.strip_prefix(b"EXTEND_TIMEOUT_USEC=")
                && let Some(usec) = std::str::from_utf8(usec).ok().and_then(|s| s.parse().ok())
            {
                self.extend(deadline, usec);
            }
        }
        verdict
    }

    /// `EXTEND_TIMEOUT_USEC`: the deadline becomes at least now + `usec`.
    fn extend(&self, deadline: &mut Instant, usec: u64) {
        let asked = Instant::now().checked_add(Duration::from_micros(usec));
        if let Some(asked) = asked {
            *deadline = (*deadline).max(asked);
        }
    }

    /// After a verdict from the socket: receive (and so complete) a
    /// barrier that follows it, for at most [`BARRIER_LINGER`].
    fn serve_barrier(&mut self) {
        let until = Instant::now() + BARRIER_LINGER;
        let mut buf = [0u8; 4096];
        loop {
            while let Ok(got) = sys::recv_datagram(self.socket.fd.as_raw_fd(), &mut buf) {
                if got.carried_fds {
                    return;
                }
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            let _ = sys::poll_readable(self.socket.fd.as_raw_fd(), poll_timeout_ms(until - now));
        }
    }

    /// Whether the program ends within `limit` (it has closed its end):
    /// on its pidfd where there is one, the moment it can be reaped.
    fn exited_within(&mut self, limit: Duration) -> Option<ChildExit> {
        if !self.process.ended_within(limit).unwrap_or(false) {
            return None;
        }
        let exit = self.process.try_wait().ok().flatten()?;
        self.exited = Some(exit);
        Some(exit)
    }

    fn conclude(mut self, verdict: Verdict) -> Result<ReadyChild, LaunchError> {
        if self.heard_on_socket {
            self.serve_barrier();
        }
        let child = ReadyChild {
            process: self.process,
            status: self.status.clone(),
        };
        match verdict {
            Verdict::Ready => Ok(child),
            Verdict::Failed(errno) => Err(LaunchError::Failed {
                child,
                errno,
                status: self.status,
            }),
        }
    }

    fn timed_out(mut self, waited: Duration) -> LaunchError {
        if !self.options.kill_on_timeout {
            return LaunchError::TimedOut {
                killed: None,
                child: Some(ReadyChild {
                    process: self.process,
                    status: self.status.clone(),
                }),
                waited,
                status: self.status,
            };
        }
        if self.options.detach && self.exited.is_none() {
            // The program leads its own process group (setsid); while it is
            // unreaped its pgid cannot be reused, so -pid names only it.
            let _ = sys::kill(-self.process.pid(), libc::SIGKILL);
        }
        let killed = match self.exited {
            Some(exit) => Some(exit),
            None => self.process.reap_or_kill(Duration::ZERO),
        };
        LaunchError::TimedOut {
            killed,
            child: None,
            waited,
            status: self.status,
        }
    }
}
