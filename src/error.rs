//! Errors: what went wrong, the original's status code, and the errno behind it.
//!
//! [`Errno`] itself lives in the syscall layer, which returns it, and is
//! re-exported here.
//!
//! Both types are `Copy` and small (`Errno` four bytes, `Error` twelve: a
//! `Result<u8>` still comes back in two registers on the 64-bit ABIs, and
//! the callgrind check shows the token path costs what raw libc does), so
//! they can be made and inspected in a signal handler or a forked child
//! without allocating. `Error` is twelve bytes, not eight, because the
//! daemon errors carry both a failed step with its errno and a child's
//! exit status, and two five-byte payloads cannot share one niche.

use core::fmt;

pub use crate::sys::errno::Errno;

/// The original's status for "an error other than end of stream"
/// (`TS_ERR` in Bitcoin Core's `tokenpipe.h`). See [`Error::status`].
///
/// ```
/// use bitcoin_tokenpipe::{Error, Errno, TS_ERR};
/// assert_eq!(Error::Os(Errno::EBADF).status(), TS_ERR);
/// ```
pub const TS_ERR: i32 = -1;

/// The original's status for "end of stream" (`TS_EOS` in Bitcoin Core's
/// `tokenpipe.h`). See [`Error::status`].
///
/// ```
/// use bitcoin_tokenpipe::{Error, TS_EOS};
/// assert_eq!(Error::Eos.status(), TS_EOS);
/// ```
pub const TS_EOS: i32 = -2;

/// `Result` with this crate's [`Error`].
///
/// ```
/// fn first_token(end: &bitcoin_tokenpipe::TokenPipeEnd) -> bitcoin_tokenpipe::Result<u8> {
///     end.token_read()
/// }
/// # let _ = first_token;
/// ```
pub type Result<T> = core::result::Result<T, Error>;

/// Why a token could not be written or read, or a pipe could not be made.
///
/// Match on the variants for what the program should do; call
/// [`status`](Error::status) for the original C++ code and
/// [`errno`](Error::errno) for the OS error behind it.
///
/// ```
/// use bitcoin_tokenpipe::{Error, TokenPipe};
///
/// let (reader, mut writer) = TokenPipe::make()?.split();
/// writer.close();
/// match reader.token_read() {
///     Err(Error::Eos) => println!("the other side is gone"),
///     other => panic!("expected end of stream, got {other:?}"),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// End of stream: every write end of the pipe is closed, so no token can
    /// arrive any more. For a launcher this means the other process exited
    /// or died without sending. Also returned by a write that wrote nothing.
    #[error(
        "end of stream: every write end of the pipe is closed \
         (the peer exited, died or closed its end without sending)"
    )]
    Eos,
    /// This end was already closed or taken, so nothing was done and no
    /// system call was made.
    #[error("this pipe end is closed (closed, moved out or never opened); no system call was made")]
    Closed,
    /// The write found no reader: every read end is closed (`EPIPE`).
    /// `token_write_nosignal` and a `Notifier`'s reports return it at any
    /// `SIGPIPE` disposition, and so does any write on Apple and NetBSD to
    /// a pipe this crate made or took. Elsewhere a plain write sees it only
    /// where `SIGPIPE` is ignored or blocked; at the default disposition the
    /// signal ends the process first.
    #[error(
        "broken pipe: every read end of the pipe is closed, so the token cannot be delivered (EPIPE)"
    )]
    BrokenPipe,
    /// The end is non-blocking and the call would have had to wait
    /// (`EAGAIN`/`EWOULDBLOCK`): no token to read, or the pipe is full.
    #[error(
        "the pipe end is non-blocking and the call would block (EAGAIN): no token yet, or the pipe is full"
    )]
    WouldBlock,
    /// No token arrived before the timeout expired.
    #[error("timed out: no token arrived before the timeout expired")]
    TimedOut,
    /// Any other failure of a system call, with its errno.
    #[error("system call failed: {0}")]
    Os(Errno),
    /// [`fork_daemon`](crate::daemon::fork_daemon): a step of the child's
    /// set-up failed, with this errno. The child has been reaped. Also from
    /// [`PidFile::lock`](crate::daemon::PidFile::lock) (step `PidFile`),
    /// where no child is involved.
    #[cfg(tokenpipe_fork)]
    #[error("the daemon's set-up failed at {step}: {errno}")]
    SetupFailed {
        /// The step that failed.
        step: crate::daemon::SetupStep,
        /// Why it failed.
        errno: Errno,
    },
    /// [`fork_daemon`](crate::daemon::fork_daemon): the child died (or
    /// closed the pipe) during its set-up without a report. It has been
    /// killed if it was still alive, and reaped; how it ended is here when
    /// it was our child (`None` for a double-forked daemon, whose status
    /// goes to its own parent).
    #[cfg(tokenpipe_fork)]
    #[error("the daemon child died during set-up before reporting{}", DiedHow(*.0))]
    DiedDuringSetup(Option<crate::ChildExit>),
    /// [`fork_daemon`](crate::daemon::fork_daemon): another process holds
    /// the pid file's lock: another instance is running, with this pid (0
    /// if it lives in another pid namespace and wrote none). Its file was
    /// not touched. Also from
    /// [`PidFile::lock`](crate::daemon::PidFile::lock).
    #[cfg(tokenpipe_fork)]
    #[error("another instance is already running (pid {0} holds the pid file's lock)")]
    AlreadyRunning(i32),
    /// The process is not this process's child (a double-forked daemon):
    /// its exit status went to its own parent and cannot be collected, and
    /// without a pidfd it cannot be signalled or watched safely.
    #[cfg(tokenpipe_fork)]
    #[error(
        "the daemon is not this process's child (double fork): its exit status goes to its own parent"
    )]
    NotAChild,
    /// [`DaemonParent::wait_ready`](crate::daemon::DaemonParent::wait_ready):
    /// end of stream before the readiness token, so the daemon exited,
    /// died, or dropped its notifier without reporting.
    #[cfg(tokenpipe_fork)]
    #[error(
        "the daemon exited, died or dropped its notifier before reporting readiness (end of stream)"
    )]
    DiedBeforeReady,
    /// A token that the protocol does not define arrived (the daemon
    /// hand-shake knows only 0 and 1).
    #[cfg(tokenpipe_fork)]
    #[error("unexpected token {0} (the daemon hand-shake defines only 0 = failed and 1 = ready)")]
    UnexpectedToken(u8),
}

impl Error {
    /// The original's status code: [`TS_EOS`] for end of stream
    /// ([`Eos`](Error::Eos), and the daemon hand-shake's
    /// [`DiedDuringSetup`](Error::DiedDuringSetup) and
    /// [`DiedBeforeReady`](Error::DiedBeforeReady), which are end of stream
    /// at a known step), [`TS_ERR`] for everything else.
    ///
    /// ```
    /// use bitcoin_tokenpipe::{Error, TS_EOS, TS_ERR};
    /// assert_eq!(Error::Eos.status(), TS_EOS);
    /// assert_eq!(Error::Closed.status(), TS_ERR);
    /// assert_eq!(Error::BrokenPipe.status(), TS_ERR);
    /// ```
    #[must_use]
    pub const fn status(self) -> i32 {
        match self {
            Error::Eos => TS_EOS,
            // The two daemon errors are end of stream seen at a known step.
            #[cfg(tokenpipe_fork)]
            Error::DiedDuringSetup(_) | Error::DiedBeforeReady => TS_EOS,
            _ => TS_ERR,
        }
    }

    /// The OS error behind this error, if a system call reported one:
    /// `EPIPE` for [`BrokenPipe`](Error::BrokenPipe), `EAGAIN` for
    /// [`WouldBlock`](Error::WouldBlock), the errno of [`Os`](Error::Os) and
    /// of [`SetupFailed`](Error::SetupFailed);
    /// `None` for the rest, which no errno caused.
    ///
    /// ```
    /// use bitcoin_tokenpipe::{Errno, Error};
    /// assert_eq!(Error::BrokenPipe.errno(), Some(Errno::EPIPE));
    /// assert_eq!(Error::Os(Errno::EMFILE).errno(), Some(Errno::EMFILE));
    /// assert_eq!(Error::Eos.errno(), None);
    /// ```
    #[must_use]
    pub const fn errno(self) -> Option<Errno> {
        match self {
            Error::Os(e) => Some(e),
            #[cfg(tokenpipe_fork)]
            Error::SetupFailed { errno: e, .. } => Some(e),
            Error::BrokenPipe => Some(Errno::EPIPE),
            Error::WouldBlock => Some(Errno::EAGAIN),
            _ => None,
        }
    }

    /// Classifies the errno of a failed `read` or `write`.
    #[cold]
    #[inline(never)]
    pub(crate) fn from_errno(e: Errno) -> Error {
        match e.raw() {
            libc::EPIPE => Error::BrokenPipe,
            // EWOULDBLOCK equals EAGAIN on every supported Unix, but POSIX
            // allows them to differ.
            #[allow(unreachable_patterns)]
            libc::EAGAIN | libc::EWOULDBLOCK => Error::WouldBlock,
            _ => Error::Os(e),
        }
    }
}

/// The end of [`Error::DiedDuringSetup`]'s message: how the child ended.
#[cfg(tokenpipe_fork)]
struct DiedHow(Option<crate::ChildExit>);

#[cfg(tokenpipe_fork)]
impl fmt::Display for DiedHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(exit) => write!(f, " (it {exit})"),
            None => f.write_str(" (not our child: its exit status went to its own parent)"),
        }
    }
}
