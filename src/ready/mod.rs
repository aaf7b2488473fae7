//! Readiness for every launcher: one [`Notifier`] that tells whoever
//! started the daemon "I am up" (or "I failed"), whatever that launcher
//! speaks, and (with `std`) a launcher that waits for it.
//!
//! | channel | who offers it | found by | ready | failed | status text |
//! |---|---|---|---|---|---|
//! | this crate's token pipe | `launch` (with `std`) and [`fork_daemon`](crate::daemon::fork_daemon)'s child | [`Notifier::from_env`] (`TOKENPIPE_READY_FD`) | token 1, close | token 0 and the errno, close | token 3, the length (a native-endian `u16`) and the text, in one `write`; at most 1017 bytes (509 where `PIPE_BUF` is 512) |
//! | systemd's notify socket | systemd `Type=notify`, `start-stop-daemon --notify-await`, `launch` | [`Notifier::from_env`] (`NOTIFY_SOCKET`) | `READY=1` | `ERRNO=n` | `STATUS=text`; at most 1017 bytes |
//! | a notification fd | s6 (`notification-fd`), dinit (`pipefd:N`), OpenRC (`ready=fd:N`) | [`Notifier::from_fd`] (the number comes from the daemon's configuration) | `\n`, close | close without a word | nothing (not in the protocol) |
//!
//! After "ready", the socket also hears the service's life:
//! [`stopping`](Notifier::stopping), [`reloading`](Notifier::reloading),
//! [`watchdog`](Notifier::watchdog),
//! [`watchdog_trigger`](Notifier::watchdog_trigger),
//! [`main_pid`](Notifier::main_pid) and checked
//! [`notify_kv`](Notifier::notify_kv) lines; on the pipe and the fd, which
//! carry one report, they are no-ops that return `Ok`.
//! [`Notifier::none`] does nothing at all, for a program no manager
//! started.
//!
//! The daemon's side is in the `no_std` core and never allocates:
//! [`ready`](Notifier::ready), [`failed`](Notifier::failed),
//! [`status`](Notifier::status),
//! [`extend_timeout`](Notifier::extend_timeout) and the reports above
//! build their message on the stack and are async-signal-safe; [`from_env`](Notifier::from_env) is not
//! (it reads and edits the environment). Their errors, [`ReadyError`], are
//! `Copy` and say what to fix: which byte of a status text was refused,
//! which socket address could not be reached and why, which variable named
//! an fd that cannot carry a report.
//!
//! ```no_run
//! use tokenpipe::ready::Notifier;
//!
//! // SAFETY: first thing in main, before any thread reads the environment.
//! let notifier = unsafe { Notifier::from_env() }.expect("a usable readiness channel");
//! // ... initialise ...
//! if let Some(notifier) = &notifier {
//!     notifier.status("loaded 3 wallets").ok();
//!     notifier.ready().ok();
//! }
//! ```

mod error;
mod pipe;
// What comes after "ready": stopping, reloading, the watchdog, MAINPID,
// checked KEY=VALUE lines; and the notifier that does nothing.
mod service;
// WATCHDOG_USEC and WATCHDOG_PID, read without removing anything.
#[cfg(tokenpipe_fork)]
mod watchdog;
// Socket activation: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES.
#[cfg(tokenpipe_fork)]
mod activation;
// systemd's protocol, where the platform has Unix-domain datagram sockets
// that carry fds (build.rs: `tokenpipe_unix_socket`).
#[cfg(tokenpipe_unix_socket)]
mod socket;

// The launcher spawns the program (fork and exec) and offers it the socket.
#[cfg(tokenpipe_launch)]
mod launch;

#[cfg(tokenpipe_fork)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use activation::{LISTEN_FDNAMES_MAX, LISTEN_FDS_START, ListenFds};
pub use error::{ReadyError, ValuePrefix};
#[cfg(all(tokenpipe_launch, feature = "tokio"))]
pub use launch::launch_async;
#[cfg(tokenpipe_launch)]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "std"))))]
pub use launch::{AfterTimeout, LaunchError, LaunchOptions, Notification, ReadyChild, launch};
#[cfg(tokenpipe_unix_socket)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use socket::NotifyAddr;
#[cfg(tokenpipe_fork)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use watchdog::{WATCHDOG_PID_ENV, WATCHDOG_USEC_ENV};

use core::ffi::{CStr, c_int};
use core::fmt;
use core::time::Duration;

use crate::batch::PIPE_BUF;
use crate::end::TokenPipeEnd;
use crate::handoff::{self, HandoffError};
use crate::sys;

/// The environment variable through which this crate's launcher (and
/// anyone else who wants to) hands a daemon the write end of a token pipe:
/// the fd number in decimal. [`Notifier::from_env`] looks for it first.
pub const READY_FD_ENV: &str = "TOKENPIPE_READY_FD";
const READY_FD_ENV_C: &CStr = c"TOKENPIPE_READY_FD";

/// systemd's variable: the notify socket's address.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
const NOTIFY_SOCKET_ENV_C: &CStr = c"NOTIFY_SOCKET";

/// The token pipe's messages. A reader that takes one token (bitcoind's
/// launcher, [`DaemonParent::wait_ready`](crate::daemon::DaemonParent::wait_ready))
/// sees 1 for ready and 0 for failed; this crate's launcher also reads the
/// errno after a 0 (4 bytes, native order), honours 2 (extend the timeout:
/// 8 bytes of microseconds, native order) and keeps the text of 3 (status:
/// the text's length as a `u16` in native order, then that many bytes of
/// UTF-8, at most [`PIPE_STATUS_MAX`]). Each message is one `write` of at
/// most `PIPE_BUF` bytes, so it arrives whole, never mixed with another.
pub(crate) const TOKEN_READY: u8 = 1;
pub(crate) const TOKEN_FAILED: u8 = 0;
pub(crate) const TOKEN_EXTEND: u8 = 2;
pub(crate) const TOKEN_STATUS: u8 = 3;

/// The most `status` text a message carries: the socket's 1024-byte
/// message less `STATUS=`.
pub(crate) const STATUS_MAX: usize = 1024 - b"STATUS=".len();

/// The most `status` text the token pipe carries: [`STATUS_MAX`], or less
/// where `PIPE_BUF` (less the token and the length) is smaller, since a
/// longer `write` could be split and interleaved with another report.
pub(crate) const PIPE_STATUS_MAX: usize = if STATUS_MAX < PIPE_BUF - 3 {
    STATUS_MAX
} else {
    PIPE_BUF - 3
};
// One write, whole, and a length that fits its u16.
const _: () = assert!(3 + PIPE_STATUS_MAX <= PIPE_BUF && PIPE_STATUS_MAX <= u16::MAX as usize);

/// A status on a one-shot channel after its report: `Closed` becomes `Ok`
/// (nobody reads the channel any more; the text goes nowhere, as the s6
/// fd's text always does).
fn after_report(written: crate::error::Result<()>) -> crate::error::Result<()> {
    match written {
        Err(crate::Error::Closed) => Ok(()),
        other => other,
    }
}

/// One readiness channel to whoever started this process. See the
/// [module docs](self) for the channels and what each message becomes.
///
/// The pipe and fd channels are one-shot: [`ready`](Self::ready) and
/// [`failed`](Self::failed) close them, and later reports give
/// [`ReadyError::Channel`]`(`[`Error::Closed`](crate::Error::Closed)`)`,
/// but for the service's life after them (`status`, `stopping`,
/// `reloading`, `watchdog`...), which those channels cannot carry: a
/// documented no-op, `Ok`, so the same code runs under every manager.
/// The socket channel takes any number of messages.
/// The reports ([`ready`](Self::ready), [`failed`](Self::failed),
/// [`status`](Self::status), [`extend_timeout`](Self::extend_timeout),
/// [`barrier`](Self::barrier)) take `&self`, so a notifier can sit in a
/// `static` for a signal handler, and are async-signal-safe and
/// allocation-free. [`notify`](Self::notify) and
/// [`into_end`](Self::into_end) consume it; `from_env` (it edits the
/// environment) and `pass_to` (std; it allocates) do not belong in a
/// handler.
///
/// Reports may overlap: on other threads, or in a signal handler that
/// interrupted one. On a pipe or fd, `ready` and `failed` claim the fd
/// before they write, so only the first of them is sent and the others
/// give `Closed`; a report still writing (`extend_timeout`, `status`, or
/// the one a handler interrupted) keeps the fd open, and the last one to
/// finish closes it. No report waits for another, and none ever writes to
/// the fd after it was closed, where a file opened since could have been
/// given its number.
pub struct Notifier {
    channel: Channel,
}

enum Channel {
    /// This crate's token pipe.
    Pipe(pipe::Slot),
    /// A notification fd in the s6 style: a newline, then close.
    Fd(pipe::Slot),
    /// systemd's notify socket; a fresh socket per message.
    #[cfg(tokenpipe_unix_socket)]
    Socket(NotifyAddr),
    /// No manager: every report is checked, then does nothing.
    None,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.channel {
            Channel::Pipe(slot) => f
                .debug_tuple("Notifier::Pipe")
                .field(&slot.open_fd().unwrap_or(-1))
                .finish(),
            Channel::Fd(slot) => f
                .debug_tuple("Notifier::Fd")
                .field(&slot.open_fd().unwrap_or(-1))
                .finish(),
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => f.debug_tuple("Notifier::Socket").field(addr).finish(),
            Channel::None => f.write_str("Notifier::None"),
        }
    }
}

impl Notifier {
    /// The channel this process was given, if any: the token pipe named by
    /// [`READY_FD_ENV`] (this crate's launcher), else systemd's
    /// `NOTIFY_SOCKET`. `Ok(None)` if neither is set. Every readiness
    /// variable it recognises is removed from the environment (as
    /// `sd_notify`'s `unset_environment` does), so the daemon's own
    /// children do not report for it; the pipe becomes close-on-exec.
    ///
    /// # Safety
    /// - No other thread may read or change the environment during the
    ///   call (`getenv` and `unsetenv` are not thread-safe).
    /// - The fd named by `TOKENPIPE_READY_FD` must belong to nothing else
    ///   in this process; the notifier closes it.
    ///
    /// # Errors
    /// [`ReadyError`] says what is wrong with the variable that was set;
    /// nothing is unset, closed or changed then. `TOKENPIPE_READY_FD` must
    /// name an open pipe's write end (or a FIFO open for writing) above
    /// stderr: [`ReadyError::StdioFd`] for 0, 1 or 2 (a stale variable),
    /// [`ReadyError::ReadOnly`] for a read end, and
    /// [`ReadyError::Handoff`] for the rest.
    ///
    /// ```standalone_crate
    /// use tokenpipe::ready::Notifier;
    /// // SAFETY: no other thread touches the environment in this example.
    /// unsafe {
    ///     std::env::remove_var("TOKENPIPE_READY_FD");
    ///     std::env::set_var("NOTIFY_SOCKET", "@example/notify");
    ///     let notifier = Notifier::from_env().unwrap().expect("a channel");
    ///     assert!(notifier.is_socket());
    ///     assert!(std::env::var_os("NOTIFY_SOCKET").is_none());
    ///     assert!(Notifier::from_env().unwrap().is_none());
    /// }
    /// ```
    #[allow(unsafe_code)] // Declares the environment and ownership contract.
    pub unsafe fn from_env() -> core::result::Result<Option<Notifier>, ReadyError> {
        // SAFETY: our caller keeps the environment to us for the call.
        match unsafe { handoff::env_fd(READY_FD_ENV_C) } {
            Ok(fd) => {
                // SAFETY: as above; the fd is ours alone by our caller's
                // contract.
                let end = unsafe { take_ready_fd(fd) }?;
                // SAFETY: as above.
                unsafe {
                    let _ = sys::unsetenv(READY_FD_ENV_C);
                    let _ = sys::unsetenv(NOTIFY_SOCKET_ENV_C);
                }
                return Ok(Some(Notifier::from_pipe(end)));
            }
            Err(HandoffError::NotSet) => {}
            Err(e) => return Err(ReadyError::Handoff(e)),
        }
        // SAFETY: as above.
        #[cfg(tokenpipe_unix_socket)]
        if let Some(value) = unsafe { sys::getenv(NOTIFY_SOCKET_ENV_C) } {
            let addr = NotifyAddr::parse(value)?;
            // SAFETY: as above; `value` is not used after this.
            let _ = unsafe { sys::unsetenv(NOTIFY_SOCKET_ENV_C) };
            return Ok(Some(Notifier {
                channel: Channel::Socket(addr),
            }));
        }
        Ok(None)
    }

    /// systemd's notify socket as `NOTIFY_SOCKET` names it, if it is set:
    /// the socket half of [`from_env`](Self::from_env), reading the
    /// environment and removing nothing, so it needs no `unsafe` (every way
    /// to change the environment is itself `unsafe` and promises not to
    /// race a reader). For a program that speaks only systemd's protocol,
    /// in any thread; the variable stays for its children to see.
    ///
    /// ```standalone_crate
    /// use tokenpipe::ready::Notifier;
    /// // SAFETY: no other thread touches the environment in this example.
    /// unsafe { std::env::set_var("NOTIFY_SOCKET", "@example/notify") };
    /// assert!(Notifier::socket_from_env()?.is_some_and(|n| n.is_socket()));
    /// assert!(std::env::var_os("NOTIFY_SOCKET").is_some(), "left as it was");
    /// // SAFETY: as above.
    /// unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    /// assert!(Notifier::socket_from_env()?.is_none());
    /// # Ok::<(), tokenpipe::ready::ReadyError>(())
    /// ```
    ///
    /// # Errors
    /// As `from_env` for the socket: [`ReadyError::BadNotifySocket`],
    /// [`ReadyError::PathTooLong`].
    #[cfg(all(tokenpipe_unix_socket, tokenpipe_fork))]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn socket_from_env() -> core::result::Result<Option<Notifier>, ReadyError> {
        sys::with_env(NOTIFY_SOCKET_ENV_C, |value| {
            value
                .map(|value| NotifyAddr::parse(value).map(Notifier::from_socket))
                .transpose()
        })
    }

    /// A notification fd in the s6, dinit (`pipefd:N`) and OpenRC
    /// (`ready=fd:N`) style, whose number the daemon learnt from its own
    /// configuration: [`ready`](Self::ready) writes a newline and closes
    /// it, [`failed`](Self::failed) closes it without one. Checks that the
    /// fd is open, is a pipe or a socket, and is open for writing (not a
    /// pipe's read end), and makes it close-on-exec.
    ///
    /// # Safety
    /// The fd must belong to nothing else in this process; the notifier
    /// closes it.
    ///
    /// # Errors
    /// [`ReadyError::NotOpen`], [`ReadyError::NotAPipeOrSocket`],
    /// [`ReadyError::ReadOnly`], [`ReadyError::Os`]; nothing is closed or
    /// changed then.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use tokenpipe::ready::Notifier;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// // SAFETY: into_raw_fd gave up the only other owner.
    /// let notifier = unsafe { Notifier::from_fd(writer.into_raw_fd()) }?;
    /// notifier.ready()?;
    /// assert_eq!(reader.token_read()?, b'\n');
    /// assert_eq!(reader.token_read(), Err(tokenpipe::Error::Eos));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(unsafe_code)] // Declares the ownership contract.
    pub unsafe fn from_fd(fd: c_int) -> core::result::Result<Notifier, ReadyError> {
        pipe::check_pipe_or_socket(fd)?;
        pipe::check_writable(fd, None)?;
        sys::set_cloexec(fd).map_err(ReadyError::Os)?;
        Ok(Notifier {
            channel: Channel::Fd(pipe::Slot::new(fd)),
        })
    }

    /// A notifier on the write end of this crate's token pipe (what
    /// [`fork_daemon`](crate::daemon::fork_daemon) gives its child).
    pub(crate) fn from_pipe(end: TokenPipeEnd) -> Notifier {
        Notifier {
            channel: Channel::Pipe(pipe::Slot::new(end.into_raw_fd())),
        }
    }

    /// A notifier for systemd's socket at `addr` (see [`NotifyAddr::parse`]).
    ///
    /// ```
    /// use tokenpipe::ready::{NotifyAddr, Notifier};
    /// let addr = NotifyAddr::parse(b"/run/systemd/notify")?;
    /// assert!(Notifier::from_socket(addr).is_socket());
    /// # Ok::<(), tokenpipe::ready::ReadyError>(())
    /// ```
    #[must_use]
    #[cfg(tokenpipe_unix_socket)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn from_socket(addr: NotifyAddr) -> Notifier {
        Notifier {
            channel: Channel::Socket(addr),
        }
    }

    /// Whether this notifier speaks systemd's socket protocol (which
    /// carries [`status`](Self::status) text and takes many messages).
    #[must_use]
    pub fn is_socket(&self) -> bool {
        #[cfg(tokenpipe_unix_socket)]
        return matches!(self.channel, Channel::Socket(_));
        #[cfg(not(tokenpipe_unix_socket))]
        return false;
    }

    /// Reports that the daemon is ready: token 1 on this crate's pipe, a
    /// newline on a notification fd (both then closed), `READY=1` on the
    /// socket.
    ///
    /// Syscalls: pipe or fd: `write`, `close` (plus the `SIGPIPE` mask
    /// calls of [`TokenPipeEnd::token_write_nosignal`]); socket: `socket`,
    /// `sendmsg`, `close`.
    ///
    /// # Errors
    /// [`ReadyError::Channel`] with
    /// [`Error::Closed`](crate::Error::Closed) if a one-shot channel was
    /// used already, [`Error::BrokenPipe`](crate::Error::BrokenPipe) if the
    /// launcher is gone (no `SIGPIPE` is raised),
    /// [`Error::Os`](crate::Error::Os) if a system call failed;
    /// [`ReadyError::SendFailed`], naming the address and the errno, for a
    /// socket that cannot be reached.
    pub fn ready(&self) -> Result<(), ReadyError> {
        match &self.channel {
            Channel::Pipe(slot) => Ok(slot.report(&[TOKEN_READY])?),
            Channel::Fd(slot) => Ok(slot.report(b"\n")?),
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => addr.send(&[b"READY=1"]),
            Channel::None => Ok(()),
        }
    }

    /// Reports that the daemon failed to start, with `errno` saying why:
    /// token 0 and the errno on this crate's pipe (a reader that takes one
    /// token, as bitcoind's does, sees 0: failed), `ERRNO=n` on the socket,
    /// and on a notification fd no newline, just the close. `errno` is the
    /// crate's [`Errno`](crate::Errno) or a raw number: `failed(libc::EIO)`,
    /// `failed(Errno::last())` and `failed(5)` all do.
    ///
    /// ```
    /// use tokenpipe::Errno;
    /// use tokenpipe::ready::Notifier;
    ///
    /// let none = Notifier::none(); // no manager: every report is a no-op
    /// none.failed(Errno::EACCES)?;
    /// none.failed(libc::EIO)?;
    /// none.failed(5)?;
    /// # Ok::<(), tokenpipe::ready::ReadyError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`ready`](Self::ready).
    pub fn failed(&self, errno: impl Into<crate::Errno>) -> Result<(), ReadyError> {
        let errno = errno.into().raw();
        match &self.channel {
            Channel::Pipe(slot) => {
                let e = errno.to_ne_bytes();
                Ok(slot.report(&[TOKEN_FAILED, e[0], e[1], e[2], e[3]])?)
            }
            // No word: just the close.
            Channel::Fd(slot) => Ok(slot.report(&[])?),
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => {
                let mut digits = [0u8; 12];
                addr.send(&[b"ERRNO=", decimal(i64::from(errno), &mut digits)])
            }
            Channel::None => Ok(()),
        }
    }

    /// Free text for the launcher to show: `STATUS=` on the socket (what
    /// `systemctl status` shows), token 3 with the text on this crate's
    /// pipe (its launcher keeps the last one for its error message). Does
    /// not close the pipe. A no-op on a notification fd, whose protocol
    /// has no text; the text is checked there all the same, so a daemon
    /// finds a bad one under every launcher.
    ///
    /// Syscalls: pipe: `write` (plus the `SIGPIPE` mask calls); socket:
    /// `socket`, `sendmsg`, `close`; fd: none.
    ///
    /// # Errors
    /// [`ReadyError::StatusByte`], naming the byte and its offset, for text
    /// with a line break (systemd splits a message into `KEY=VALUE` lines
    /// at `\n` and at `\r`, so either would start another line) or a NUL
    /// byte (systemd drops a message holding one, whole);
    /// [`ReadyError::StatusTooLong`] for text longer than 1017 bytes (the
    /// message, `STATUS=` included, is built in a 1024-byte stack buffer),
    /// or on the pipe where `PIPE_BUF` is 512 (not Linux) longer than 509
    /// (the message must fit in one atomic `write`); nothing is sent then.
    /// Otherwise as for [`ready`](Self::ready).
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use tokenpipe::ready::{Notifier, ReadyError};
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// // SAFETY: we hold the only other copy of the fd, and give it up.
    /// let notifier = unsafe { Notifier::from_fd(writer.into_raw_fd()) }?;
    /// assert_eq!(
    ///     notifier.status("step 1\nREADY=1"),
    ///     Err(ReadyError::StatusByte { byte: b'\n', at: 6 })
    /// );
    /// notifier.status("loading")?; // s6 has no text: nothing is written
    /// notifier.ready()?;
    /// assert_eq!(reader.token_read()?, b'\n');
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self, text: &str) -> Result<(), ReadyError> {
        match &self.channel {
            Channel::Pipe(slot) => {
                check_status(text, PIPE_STATUS_MAX)?;
                let mut message = [0u8; 3 + PIPE_STATUS_MAX];
                let len = text.len();
                message[0] = TOKEN_STATUS;
                // At most PIPE_STATUS_MAX, checked above: fits a u16.
                message[1..3].copy_from_slice(&(len as u16).to_ne_bytes());
                message[3..3 + len].copy_from_slice(text.as_bytes());
                // After the one report, nobody reads it: a no-op.
                Ok(after_report(slot.write(&message[..3 + len]))?)
            }
            Channel::Fd(slot) => {
                check_status(text, STATUS_MAX)?;
                Ok(after_report(slot.still_open())?)
            }
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => {
                check_status(text, STATUS_MAX)?;
                addr.send(&[b"STATUS=", text.as_bytes()])
            }
            Channel::None => check_status(text, STATUS_MAX),
        }
    }

    /// Asks the launcher for `extra` more time from now before it gives up
    /// (`EXTEND_TIMEOUT_USEC=` on the socket, honoured by systemd and by
    /// this crate's launcher; token 2 and the microseconds on this crate's
    /// pipe). A no-op on a notification fd.
    ///
    /// # Errors
    /// As for [`ready`](Self::ready).
    pub fn extend_timeout(&self, extra: Duration) -> Result<(), ReadyError> {
        let usec = u64::try_from(extra.as_micros()).unwrap_or(u64::MAX);
        match &self.channel {
            Channel::Pipe(slot) => {
                let u = usec.to_ne_bytes();
                Ok(slot.write(&[TOKEN_EXTEND, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7]])?)
            }
            Channel::Fd(slot) => Ok(slot.still_open()?),
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => {
                let mut digits = [0u8; 24];
                let usec = i64::try_from(usec).unwrap_or(i64::MAX);
                addr.send(&[b"EXTEND_TIMEOUT_USEC=", decimal(usec, &mut digits)])
            }
            Channel::None => Ok(()),
        }
    }

    /// Waits until the manager has processed every message sent before it
    /// (`sd_notify_barrier(3)`): a fresh pipe's write end goes with
    /// `BARRIER=1`, and the manager closes it when it gets there. Call it
    /// after [`ready`](Self::ready) in a process that is about to exit,
    /// whose `READY=1` could otherwise be dropped or credited to nobody.
    /// Immediate on a pipe or fd, which are ordered anyway.
    ///
    /// A manager that does not take part in barriers (Debian's
    /// `start-stop-daemon` closes its socket once it has `READY=1`) makes
    /// this fail; the `READY=1` sent before was delivered all the same, so
    /// treat this error as "no confirmation", not as "not ready".
    ///
    /// Syscalls: `pipe2`, `socket`, `sendmsg`, `close` ×2, `poll`, `read`
    /// (end of stream), `close`, and `clock_gettime` (a vDSO call on Linux).
    ///
    /// A pipe or fd needs no barrier and makes no system call for one, so
    /// this neither holds its fd nor fails once the channel is used up:
    /// `ready()` then `barrier()` is right on every channel.
    ///
    /// # Errors
    /// [`ReadyError::Channel`] with
    /// [`Error::TimedOut`](crate::Error::TimedOut) if the fd was not closed
    /// within `timeout` (or another [`Error`](crate::Error) if no pipe could
    /// be made); [`ReadyError::SendFailed`] if the socket cannot be reached.
    #[cfg_attr(not(tokenpipe_unix_socket), allow(unused_variables))]
    pub fn barrier(&self, timeout: Duration) -> Result<(), ReadyError> {
        match &self.channel {
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => addr.barrier(timeout),
            Channel::Pipe(_) | Channel::Fd(_) | Channel::None => Ok(()),
        }
    }

    /// Reports ready (`true`) or failed (`false`); the name
    /// [`fork_daemon`](crate::daemon::fork_daemon) code has used. `failed`
    /// gets `EIO`.
    ///
    /// # Errors
    /// As for [`ready`](Self::ready).
    pub fn notify(self, ready: bool) -> Result<(), ReadyError> {
        if ready {
            self.ready()
        } else {
            self.failed(libc::EIO)
        }
    }

    /// The pipe or fd channel's write end, for a daemon that hands its
    /// report to a program it `exec`s (which then writes token 1 or 0, or a
    /// newline on a notification fd, or exits without a word). `None` for
    /// the socket, which has no end to hand over (pass `NOTIFY_SOCKET` on
    /// instead, as `pass_to` does), [`none`](Self::none), or a channel
    /// already used.
    #[must_use]
    pub fn into_end(mut self) -> Option<TokenPipeEnd> {
        match &mut self.channel {
            // `self` is ours, so no report is under way: the fd is free to
            // go unless a report was sent already.
            Channel::Pipe(slot) | Channel::Fd(slot) => slot.take().map(TokenPipeEnd::from_owned),
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(_) => None,
            Channel::None => None,
        }
    }

    /// Hands the channel to the program `cmd` will start: a pipe or fd as
    /// [`TokenPipeEnd::pass_to`] does (the variable `env_name` names the
    /// fd, which only that child inherits; drop the notifier after
    /// `spawn`), the socket by setting `NOTIFY_SOCKET` for it;
    /// [`none`](Self::none) hands on nothing.
    ///
    /// # Errors
    /// [`ReadyError::Channel`] with what [`TokenPipeEnd::pass_to`] gives,
    /// or [`Error::Closed`](crate::Error::Closed) for a channel already
    /// used.
    #[cfg(tokenpipe_pass_to)]
    #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "std"))))]
    pub fn pass_to(
        &self,
        cmd: &mut std::process::Command,
        env_name: &str,
    ) -> Result<(), ReadyError> {
        match &self.channel {
            // Held for the call, so that no report closes it meanwhile.
            Channel::Pipe(slot) | Channel::Fd(slot) => {
                Ok(slot.with_end(|end| end.pass_to(cmd, env_name))?)
            }
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => {
                cmd.env(NOTIFY_SOCKET_ENV, addr.to_env_value());
                Ok(())
            }
            // Nothing to hand on: the child finds no channel either.
            Channel::None => Ok(()),
        }
    }
}

/// The end `TOKENPIPE_READY_FD` names, taken for the notifier once every
/// check has passed; nothing is changed if one fails.
///
/// # Safety
/// `fd` must belong to nothing else in this process.
#[allow(unsafe_code)] // handoff::adopt's contract becomes this function's.
unsafe fn take_ready_fd(fd: c_int) -> core::result::Result<TokenPipeEnd, ReadyError> {
    // Before anything else: whatever stdio is, a pipe included, it is not
    // ours to write a token into and close.
    if (0..=2).contains(&fd) {
        return Err(ReadyError::StdioFd { fd });
    }
    handoff::check_pipe(fd).map_err(ReadyError::Handoff)?;
    pipe::check_writable(fd, Some(READY_FD_ENV))?;
    // SAFETY: open, a pipe, and ours alone by our caller's contract.
    unsafe { handoff::adopt(fd) }.map_err(ReadyError::Handoff)
}

/// Refuses status text that would break a message (see
/// [`Notifier::status`]) or is longer than `max`.
fn check_status(text: &str, max: usize) -> Result<(), ReadyError> {
    let bytes = text.as_bytes();
    if let Some(at) = bytes.iter().position(|b| matches!(b, b'\n' | b'\r' | 0)) {
        return Err(ReadyError::StatusByte {
            byte: bytes[at],
            at,
        });
    }
    if bytes.len() > max {
        return Err(ReadyError::StatusTooLong {
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// `n` in decimal, formatted into the end of `buf` without `core::fmt`
/// (async-signal-safe). `buf` must have room for every digit and the sign:
/// 20 bytes hold any `i64`.
#[cfg(any(tokenpipe_unix_socket, tokenpipe_fork))]
pub(crate) fn decimal(n: i64, buf: &mut [u8]) -> &[u8] {
    let mut value = n.unsigned_abs();
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if n < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_formats_every_sign_and_width() {
        let mut buf = [0u8; 24];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(-5, &mut buf), b"-5");
        assert_eq!(decimal(i64::MAX, &mut buf), b"9223372036854775807");
        assert_eq!(decimal(i64::MIN, &mut buf), b"-9223372036854775808");
    }
}
