//! Errors: what went wrong, the original's status code, and the errno behind it.
//!
//! [`Error`] carries the original's errors (end of stream, and an errno,
//! which this port names: `BrokenPipe`, `WouldBlock`, `Os`) and what this
//! port's core adds to them: `Closed` for a closed end, `TimedOut` for the
//! timed read, and `NotAChild` from process control (a child's pid, its
//! pidfd, `kill` and `wait`), which the daemon hand-shake and the launcher
//! both build on and which, like the rest of the core, is `no_std` and
//! allocation-free. The higher modules own their errors and convert from
//! this one: [`HandoffError`](crate::HandoffError),
//! `daemon::DaemonError` and `ready::ReadyError`.
//!
//! Both `Error` and [`Errno`] are `Copy` and small: `Errno` is four bytes,
//! `Error` eight (a tag and an errno), and `Result<(), Error>` eight too,
//! so a `Result<u8>` comes back in registers and the callgrind check shows
//! the token path costs what raw libc does. They can be made and inspected
//! in a signal handler or a forked child without allocating. The
//! assertions at the end of this file keep those sizes.

pub use crate::sys::errno::Errno;

/// The original's status for "an error other than end of stream"
/// (`TS_ERR` in Bitcoin Core's `tokenpipe.h`). See [`Error::status`].
///
/// ```
/// use tokenpipe::{Error, Errno, TS_ERR};
/// assert_eq!(Error::Os(Errno::EBADF).status(), TS_ERR);
/// ```
pub const TS_ERR: i32 = -1;

/// The original's status for "end of stream" (`TS_EOS` in Bitcoin Core's
/// `tokenpipe.h`). See [`Error::status`].
///
/// ```
/// use tokenpipe::{Error, TS_EOS};
/// assert_eq!(Error::Eos.status(), TS_EOS);
/// ```
pub const TS_EOS: i32 = -2;

/// `Result` with this crate's [`Error`].
///
/// ```
/// fn first_token(end: &tokenpipe::TokenPipeEnd) -> tokenpipe::Result<u8> {
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
/// use tokenpipe::{Error, TokenPipe};
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
    /// Process control: the process is not this process's child (a
    /// double-forked daemon, or one a launched program named with
    /// `MAINPID=`): its exit status went to its own parent and cannot be
    /// collected, and without a pidfd it cannot be signalled or watched
    /// safely.
    #[cfg(tokenpipe_fork)]
    #[error(
        "the daemon is not this process's child (double fork): its exit status goes to its own parent"
    )]
    NotAChild,
    /// An async call (feature `tokio`) was made outside a tokio runtime:
    /// there is no reactor to register the fd with. Nothing was done.
    #[cfg(feature = "tokio")]
    #[error("called outside a tokio runtime: there is no reactor to wait with")]
    NoRuntime,
}

impl Error {
    /// The original's status code: [`TS_EOS`] for end of stream
    /// ([`Eos`](Error::Eos)), [`TS_ERR`] for everything else.
    ///
    /// ```
    /// use tokenpipe::{Error, TS_EOS, TS_ERR};
    /// assert_eq!(Error::Eos.status(), TS_EOS);
    /// assert_eq!(Error::Closed.status(), TS_ERR);
    /// assert_eq!(Error::BrokenPipe.status(), TS_ERR);
    /// ```
    #[must_use]
    pub const fn status(self) -> i32 {
        match self {
            Error::Eos => TS_EOS,
            _ => TS_ERR,
        }
    }

    /// The OS error behind this error, if a system call reported one:
    /// `EPIPE` for [`BrokenPipe`](Error::BrokenPipe), `EAGAIN` for
    /// [`WouldBlock`](Error::WouldBlock), the errno of [`Os`](Error::Os);
    /// `None` for the rest, which no errno caused.
    ///
    /// ```
    /// use tokenpipe::{Errno, Error};
    /// assert_eq!(Error::BrokenPipe.errno(), Some(Errno::EPIPE));
    /// assert_eq!(Error::Os(Errno::EMFILE).errno(), Some(Errno::EMFILE));
    /// assert_eq!(Error::Eos.errno(), None);
    /// ```
    #[must_use]
    pub const fn errno(self) -> Option<Errno> {
        match self {
            Error::Os(e) => Some(e),
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

// The sizes the module docs promise, checked where every build sees them:
// a daemon or launcher error that grows `Error` fails to compile here.
const _: () = assert!(core::mem::size_of::<Error>() <= 8);
const _: () = assert!(core::mem::size_of::<Result<()>>() <= 8);
const _: () = assert!(core::mem::size_of::<Errno>() == 4);
