//! [`ReadyError`]: why a readiness channel could not be found or a report
//! not sent, in words that say what to fix. `Copy` and allocation-free
//! like the core [`Error`], so a report that fails in a signal handler or
//! a forked child can still be inspected there; its `Display` (which may
//! call `strerror_r`) is for later.

use core::ffi::c_int;
use core::fmt;

#[cfg(tokenpipe_unix_socket)]
use super::NotifyAddr;
use crate::error::{Errno, Error};
use crate::handoff::HandoffError;

/// Why [`Notifier::from_env`](super::Notifier::from_env) or
/// [`Notifier::from_fd`](super::Notifier::from_fd) found no usable channel
/// (nothing was closed or changed then), or why a report was not sent.
///
/// ```
/// use tokenpipe::Error;
/// use tokenpipe::ready::{NotifyAddr, Notifier, ReadyError};
///
/// let notifier = Notifier::from_socket(NotifyAddr::parse(b"/run/no/such/notify")?);
/// assert_eq!(
///     notifier.status("one\nREADY=1"),
///     Err(ReadyError::StatusByte { byte: b'\n', at: 3 })
/// );
/// match notifier.ready() {
///     Err(ReadyError::SendFailed { addr, errno }) => {
///         assert_eq!(addr.to_string(), "/run/no/such/notify");
///         assert_eq!(errno.raw(), libc::ENOENT);
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), ReadyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ReadyError {
    /// `TOKENPIPE_READY_FD` is set but does not name an open pipe of ours.
    #[error("TOKENPIPE_READY_FD is set but unusable: {0}")]
    Handoff(HandoffError),
    /// `NOTIFY_SOCKET` is neither an absolute path, an `@abstract` name nor
    /// a `vsock:CID:PORT` address; the start of its value is kept.
    #[error(
        "NOTIFY_SOCKET={0} is not an absolute path, an @abstract name or a vsock:CID:PORT address"
    )]
    BadNotifySocket(ValuePrefix),
    /// The socket's name is longer than a Unix socket address can hold.
    #[error("NOTIFY_SOCKET's path is longer than a Unix socket address holds")]
    PathTooLong,
    /// The address kind is not available here (an `@abstract` name or
    /// `vsock:` outside Linux and Android).
    #[error("NOTIFY_SOCKET names an address kind this platform does not have ({0})")]
    Unsupported(&'static str),
    /// The fd is not open.
    #[error("fd {fd} is not open")]
    NotOpen {
        /// The fd number.
        fd: c_int,
    },
    /// The fd is open but is neither a pipe nor a socket.
    #[error("fd {fd} is open but is neither a pipe nor a socket")]
    NotAPipeOrSocket {
        /// The fd number.
        fd: c_int,
    },
    /// `TOKENPIPE_READY_FD` names stdin, stdout or stderr. No launcher
    /// hands its pipe over there, so the variable is a stale one (inherited
    /// from a program that was given a pipe of its own); taking the fd
    /// would write a token into, and then close, a stream the program uses.
    #[error(
        "TOKENPIPE_READY_FD={fd} names {}, which is never a readiness pipe \
         (a stale variable, inherited from another program?); refused",
        stdio_name(*fd)
    )]
    StdioFd {
        /// The fd number: 0, 1 or 2.
        fd: c_int,
    },
    /// The fd is open only for reading (a pipe's read end): no report can
    /// be written to it.
    #[error(
        "{} is open only for reading (a pipe's read end?): no report can be written to it",
        FdNamed(*fd, *variable)
    )]
    ReadOnly {
        /// The fd number.
        fd: c_int,
        /// The environment variable that named it, if one did
        /// ([`Notifier::from_env`](super::Notifier::from_env); `None` from
        /// [`Notifier::from_fd`](super::Notifier::from_fd)).
        variable: Option<&'static str>,
    },
    /// A system call failed while checking the channel.
    #[error("checking the readiness channel failed: {0}")]
    Os(Errno),
    /// [`status`](super::Notifier::status) text with a byte that would
    /// break the message: systemd ends a `KEY=VALUE` line at `\n` and at
    /// `\r`, so either would start a line of the caller's choosing (a
    /// forged `READY=1`), and it drops a message with a NUL whole. Nothing
    /// was sent.
    #[error(
        "status text refused: {} at byte {at} ({}); nothing was sent",
        ByteName(*byte),
        ByteName(*byte).why()
    )]
    StatusByte {
        /// The byte: `b'\n'`, `b'\r'` or `0`.
        byte: u8,
        /// Its offset in the text, from 0.
        at: usize,
    },
    /// [`status`](super::Notifier::status) text longer than the channel
    /// carries in one message. Nothing was sent.
    #[error(
        "status text of {len} bytes refused: this channel carries at most {max} bytes \
         of text in one message; nothing was sent"
    )]
    StatusTooLong {
        /// The text's length in bytes.
        len: usize,
        /// The most this channel takes.
        max: usize,
    },
    /// A key that [`notify_kv`](super::Notifier::notify_kv) refuses: a key
    /// is one or more of `A`–`Z`, `0`–`9` and `_`, as sd_notify(3)'s are,
    /// so it can hold no `=` (which would move the value's start) and no
    /// line break (which would start a line of the caller's choosing).
    /// Nothing was sent.
    #[error(
        "notify key {key} refused: a key is one or more of A-Z, 0-9 and _ \
         (no '=', no line break); nothing was sent"
    )]
    BadKey {
        /// The key (its start, if it is long).
        key: ValuePrefix,
    },
    /// A value that [`notify_kv`](super::Notifier::notify_kv) refuses: a
    /// line feed or carriage return would end the line and start another
    /// (systemd splits at both), a NUL makes systemd drop the message.
    /// Nothing was sent.
    #[error(
        "the value for {key} refused: {} at byte {at} ({}); nothing was sent",
        ByteName(*byte),
        ByteName(*byte).why()
    )]
    BadValue {
        /// The key the value was for.
        key: ValuePrefix,
        /// The byte: `b'\n'`, `b'\r'` or `0`.
        byte: u8,
        /// Its offset in the value, from 0.
        at: usize,
    },
    /// A `KEY=VALUE` line longer than one message carries (1024 bytes,
    /// built on the stack). Nothing was sent.
    #[error(
        "the value for {key} of {len} bytes refused: with its key it must fit \
         one 1024-byte message, so at most {max} bytes; nothing was sent"
    )]
    ValueTooLong {
        /// The key the value was for.
        key: ValuePrefix,
        /// The value's length in bytes.
        len: usize,
        /// The most this key's value may have.
        max: usize,
    },
    /// [`main_pid`](super::Notifier::main_pid) with a pid that names no
    /// single process (0, or negative: a process group). Nothing was sent.
    #[error("MAINPID={pid} refused: a main pid is a positive process id; nothing was sent")]
    BadPid {
        /// The pid given.
        pid: i32,
    },
    /// A variable the manager sets for the service (`WATCHDOG_USEC`,
    /// `WATCHDOG_PID`, `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) holds
    /// something it may not; the start of its value is kept.
    #[error("{variable}={value} refused: {why}")]
    BadVariable {
        /// The variable's name.
        variable: &'static str,
        /// The start of its value.
        value: ValuePrefix,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A name for [`fd_store`](super::Notifier::fd_store) that systemd
    /// would refuse: it must be 1 to 255 printable ASCII characters
    /// without `:` (which separates names in `LISTEN_FDNAMES`). Nothing
    /// was sent.
    #[error(
        "fd store name {name} refused: 1 to 255 printable ASCII characters, no ':'; \
         nothing was sent"
    )]
    BadFdName {
        /// The name (its start, if it is long).
        name: ValuePrefix,
    },
    /// A report could not be sent: the channel was used up
    /// ([`Error::Closed`]), the launcher is gone ([`Error::BrokenPipe`]),
    /// a barrier was not confirmed in time ([`Error::TimedOut`]), or a
    /// system call failed ([`Error::Os`]).
    #[error("{}", ChannelWhy(*.0))]
    Channel(Error),
    /// A message could not be sent to the notify socket at `addr`
    /// (`ENOENT`: nothing there; `ECONNREFUSED`: nobody listens any more;
    /// `EACCES`: not allowed to).
    #[cfg(tokenpipe_unix_socket)]
    #[error("sending to the notify socket NOTIFY_SOCKET={addr} failed: {errno}")]
    SendFailed {
        /// Where `NOTIFY_SOCKET` pointed.
        addr: NotifyAddr,
        /// Why the kernel refused.
        errno: Errno,
    },
}

impl From<Error> for ReadyError {
    fn from(e: Error) -> ReadyError {
        ReadyError::Channel(e)
    }
}

impl ReadyError {
    /// The OS error behind this error, if a system call reported one.
    ///
    /// ```
    /// use tokenpipe::{Errno, Error};
    /// use tokenpipe::ready::ReadyError;
    ///
    /// assert_eq!(ReadyError::from(Error::BrokenPipe).errno(), Some(Errno::EPIPE));
    /// assert_eq!(ReadyError::from(Error::Closed).errno(), None);
    /// ```
    #[must_use]
    pub const fn errno(self) -> Option<Errno> {
        match self {
            ReadyError::Os(e) => Some(e),
            ReadyError::Handoff(HandoffError::Os(e)) => Some(e),
            ReadyError::Channel(e) => e.errno(),
            #[cfg(tokenpipe_unix_socket)]
            ReadyError::SendFailed { errno, .. } => Some(errno),
            _ => None,
        }
    }
}

/// The start of an environment variable's value, kept in an error without
/// allocating: its first [`MAX`](Self::MAX) bytes, and whether there were
/// more. Shown quoted, with control characters and bytes that are not
/// UTF-8 escaped.
///
/// ```
/// use tokenpipe::ready::{NotifyAddr, ReadyError};
///
/// let Err(ReadyError::BadNotifySocket(value)) = NotifyAddr::parse(b"run/notify") else {
///     panic!("a relative path is refused");
/// };
/// assert_eq!(value.as_bytes(), b"run/notify");
/// assert_eq!(value.to_string(), r#""run/notify""#);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValuePrefix {
    bytes: [u8; ValuePrefix::MAX],
    len: u8,
    cut: bool,
}

impl ValuePrefix {
    /// The most bytes kept.
    pub const MAX: usize = 64;

    /// Keeps the start of `value`.
    pub(crate) fn new(value: &[u8]) -> ValuePrefix {
        let len = value.len().min(Self::MAX);
        let mut bytes = [0u8; Self::MAX];
        bytes[..len].copy_from_slice(&value[..len]);
        ValuePrefix {
            bytes,
            len: len as u8,
            cut: value.len() > Self::MAX,
        }
    }

    /// The bytes kept.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the value was longer than what was kept.
    #[must_use]
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Display for ValuePrefix {
    /// `"the value"`, or `"its first 64 bytes"… (cut)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        write_escaped(f, self.as_bytes())?;
        f.write_str("\"")?;
        if self.cut {
            write!(f, "… (its first {} bytes)", Self::MAX)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ValuePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `bytes` as text: UTF-8 shown as it is but for control characters,
/// which are escaped as in Rust's `{:?}`, and bytes that are not UTF-8 as
/// `\xNN`. Nothing is allocated.
pub(super) fn write_escaped(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

pub(super) fn stdio_name(fd: c_int) -> &'static str {
    match fd {
        0 => "stdin",
        1 => "stdout",
        _ => "stderr",
    }
}

/// How an error message names an fd: by the variable that held it, if
/// one did.
struct FdNamed(c_int, Option<&'static str>);

impl fmt::Display for FdNamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(variable) => write!(f, "{variable}={}, the fd it names,", self.0),
            None => write!(f, "fd {}", self.0),
        }
    }
}

/// A byte that status text may not hold, by name.
struct ByteName(u8);

impl ByteName {
    fn why(&self) -> &'static str {
        match self.0 {
            0 => "systemd drops a message that holds one",
            _ => "systemd starts a new KEY=VALUE line there",
        }
    }
}

impl fmt::Display for ByteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\n' => f.write_str("a line feed (\\n)"),
            b'\r' => f.write_str("a carriage return (\\r)"),
            0 => f.write_str("a NUL byte (\\0)"),
            other => write!(f, "the byte {other:#04x}"),
        }
    }
}

/// What a core error means for a report.
struct ChannelWhy(Error);

impl fmt::Display for ChannelWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::Closed => f.write_str(
                "the readiness channel is closed: a pipe or fd carries one report \
                 (ready, failed or notify), and it was sent already or the end handed on",
            ),
            Error::BrokenPipe => f.write_str(
                "the launcher is gone: nobody reads the readiness channel any more (EPIPE)",
            ),
            Error::TimedOut => f.write_str(
                "the notify socket's manager did not confirm the barrier in time \
                 (what was sent before it may still have arrived)",
            ),
            Error::WouldBlock => f.write_str(
                "the readiness channel is non-blocking and full (EAGAIN): the launcher \
                 is not reading it",
            ),
            e => write!(f, "the readiness report failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::ToString;

    use super::*;

    #[test]
    fn a_value_prefix_keeps_the_start_and_says_it_was_cut() {
        let short = ValuePrefix::new(b"run/notify");
        assert_eq!(short.as_bytes(), b"run/notify");
        assert!(!short.is_cut());
        let long = ValuePrefix::new(&[b'n'; 300]);
        assert_eq!(long.as_bytes(), &[b'n'; ValuePrefix::MAX][..]);
        assert!(long.is_cut());
        assert!(long.to_string().ends_with("… (its first 64 bytes)"));
    }

    #[test]
    fn a_value_prefix_escapes_control_characters_and_bytes_that_are_not_utf8() {
        let shown = ValuePrefix::new(b"a\nb\xffc\"").to_string();
        assert_eq!(shown, r#""a\nb\xffc\"""#);
        // Cut inside a two-byte character: the half shows as a byte.
        let mut value = [b'x'; ValuePrefix::MAX + 1];
        value[ValuePrefix::MAX - 1..].copy_from_slice("é".as_bytes());
        assert!(ValuePrefix::new(&value).to_string().contains("\\xc3\""));
    }

    #[test]
    fn each_core_error_is_said_as_what_it_means_for_a_report() {
        let closed = ReadyError::from(Error::Closed).to_string();
        assert!(closed.contains("sent already"), "{closed}");
        let gone = ReadyError::from(Error::BrokenPipe).to_string();
        assert!(gone.contains("launcher is gone"), "{gone}");
        let os = ReadyError::from(Error::Os(Errno::EMFILE)).to_string();
        assert!(os.starts_with("the readiness report failed: "), "{os}");
    }

    #[test]
    fn refused_bytes_are_named_with_their_offset() {
        let said = ReadyError::StatusByte { byte: 0, at: 7 }.to_string();
        assert!(said.contains("a NUL byte (\\0) at byte 7"), "{said}");
        assert!(said.contains("drops"), "{said}");
    }
}
