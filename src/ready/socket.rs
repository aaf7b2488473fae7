//! systemd's notify socket: the address in `NOTIFY_SOCKET`, one datagram
//! per message built on the stack, and `BARRIER=1`.

use core::ffi::c_int;
use core::fmt;
use core::time::Duration;

use super::{ReadyError, ValuePrefix};
use crate::error::{Errno, Error};
use crate::sys::{self, UnixAddr};

/// The largest message, built on the stack: `STATUS=` and up to 1017
/// bytes of text.
const MESSAGE_MAX: usize = 1024;

/// Where `NOTIFY_SOCKET` points: a Unix datagram socket by path or (Linux)
/// abstract name, or a vsock address (Linux, for virtual machines).
///
/// ```
/// use tokenpipe::ready::NotifyAddr;
///
/// assert!(NotifyAddr::parse(b"/run/systemd/notify").is_ok());
/// assert!(NotifyAddr::parse(b"relative/path").is_err());
/// assert!(NotifyAddr::parse(b"vsock:2:9999").is_ok() || cfg!(not(target_os = "linux")));
/// ```
///
/// Shown (`Display`) as `NOTIFY_SOCKET` would hold it, without
/// allocating: `/run/systemd/notify`, `@name`, `vsock:2:9999`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyAddr {
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Unix(UnixAddr),
    /// Parsed everywhere; sent only where the system has vsock.
    Vsock {
        cid: u32,
        port: u32,
        socket_type: VsockType,
    },
}

/// The socket type a `vsock` address asks for: `vsock:` leaves it to the
/// sender (systemd tries a datagram first, then a stream), the others name
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum VsockType {
    Any,
    Stream,
    Dgram,
    Seqpacket,
}

impl fmt::Debug for NotifyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Unix(addr) => {
                let name = core::str::from_utf8(addr.name()).unwrap_or("<not UTF-8>");
                let at = if addr.is_abstract() { "@" } else { "" };
                write!(f, "NotifyAddr({at}{name})")
            }
            Kind::Vsock {
                cid,
                port,
                socket_type,
            } => write!(f, "NotifyAddr(vsock {socket_type:?} {cid}:{port})"),
        }
    }
}

impl fmt::Display for NotifyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Unix(addr) => {
                if addr.is_abstract() {
                    f.write_str("@")?;
                }
                super::error::write_escaped(f, addr.name())
            }
            Kind::Vsock {
                cid,
                port,
                socket_type,
            } => write!(f, "{}:{cid}:{port}", socket_type.prefix()),
        }
    }
}

impl VsockType {
    /// The prefix `NOTIFY_SOCKET` gives this type.
    fn prefix(self) -> &'static str {
        match self {
            VsockType::Any => "vsock",
            VsockType::Stream => "vsock-stream",
            VsockType::Dgram => "vsock-dgram",
            VsockType::Seqpacket => "vsock-seqpacket",
        }
    }
}

impl NotifyAddr {
    /// Parses a `NOTIFY_SOCKET` value: `/absolute/path`; `@name` for Linux's
    /// abstract namespace (the `@` becomes a leading NUL byte, and the
    /// address length counts only the bytes used); `vsock:CID:PORT`,
    /// `vsock-stream:`, `vsock-dgram:` or `vsock-seqpacket:CID:PORT`.
    ///
    /// # Errors
    /// [`ReadyError::BadNotifySocket`], with the start of the value, for
    /// anything else (a relative path, an empty value, a malformed vsock
    /// address);
    /// [`ReadyError::PathTooLong`]; [`ReadyError::Unsupported`] for an
    /// abstract name outside Linux and Android.
    ///
    /// ```
    /// use tokenpipe::ready::{NotifyAddr, ReadyError};
    ///
    /// let Some(ReadyError::BadNotifySocket(value)) = NotifyAddr::parse(b"vsock:x:1").err() else {
    ///     panic!("a malformed vsock address is refused");
    /// };
    /// assert_eq!(value.as_bytes(), b"vsock:x:1");
    /// assert!(matches!(NotifyAddr::parse(b""), Err(ReadyError::BadNotifySocket(_))));
    /// let long = [b'/'; 300];
    /// assert_eq!(NotifyAddr::parse(&long).err(), Some(ReadyError::PathTooLong));
    /// ```
    pub fn parse(value: &[u8]) -> Result<NotifyAddr, ReadyError> {
        let bad = || ReadyError::BadNotifySocket(ValuePrefix::new(value));
        let unix = |name: &[u8], abstract_name: bool| {
            UnixAddr::new(name, abstract_name)
                .map(|addr| NotifyAddr {
                    kind: Kind::Unix(addr),
                })
                .ok_or_else(|| {
                    if name.contains(&0) {
                        bad()
                    } else {
                        ReadyError::PathTooLong
                    }
                })
        };
        match value.first() {
            Some(b'/') => unix(value, false),
            Some(b'@') if value.len() > 1 => {
                if cfg!(tokenpipe_linux_like) {
                    unix(&value[1..], true)
                } else {
                    Err(ReadyError::Unsupported("abstract socket names are Linux's"))
                }
            }
            _ => parse_vsock(value).ok_or_else(bad),
        }
    }

    /// The value to put in `NOTIFY_SOCKET` for this address, as `parse`
    /// reads it.
    #[cfg(tokenpipe_pass_to)]
    pub(crate) fn to_env_value(self) -> std::ffi::OsString {
        use std::os::unix::ffi::OsStrExt;
        match &self.kind {
            Kind::Unix(addr) => {
                let mut value = std::ffi::OsString::new();
                if addr.is_abstract() {
                    value.push("@");
                }
                value.push(std::ffi::OsStr::from_bytes(addr.name()));
                value
            }
            Kind::Vsock {
                cid,
                port,
                socket_type,
            } => format!("{}:{cid}:{port}", socket_type.prefix()).into(),
        }
    }

    /// The address of this crate's launcher's own socket.
    #[cfg(tokenpipe_launch)]
    pub(crate) fn from_unix(addr: UnixAddr) -> NotifyAddr {
        NotifyAddr {
            kind: Kind::Unix(addr),
        }
    }

    /// Sends the concatenation of `parts` as one message: one `socket`,
    /// one `sendmsg`, one `close` (a Unix address), or `socket`, `connect`,
    /// `send`, `close` (vsock).
    pub(super) fn send(&self, parts: &[&[u8]]) -> Result<(), ReadyError> {
        let mut buf = [0u8; MESSAGE_MAX];
        let message = join(parts, &mut buf)?;
        self.send_with(message, None)
    }

    /// As [`send`](Self::send), with a copy of `fd` attached by
    /// `SCM_RIGHTS` (`FDSTORE=1`).
    pub(super) fn send_passing(&self, parts: &[&[u8]], fd: c_int) -> Result<(), ReadyError> {
        let mut buf = [0u8; MESSAGE_MAX];
        let message = join(parts, &mut buf)?;
        self.send_with(message, Some(fd))
    }

    fn send_with(&self, message: &[u8], pass: Option<c_int>) -> Result<(), ReadyError> {
        let sent = match &self.kind {
            Kind::Unix(addr) => {
                // Not the address's fault: no SendFailed naming it.
                let fd = sys::unix_datagram_socket().map_err(Error::Os)?;
                let sent = loop {
                    match sys::send_datagram(fd, addr, message, pass) {
                        Err(Errno::EINTR) => {}
                        other => break other,
                    }
                };
                sys::close(fd);
                sent
            }
            Kind::Vsock {
                cid,
                port,
                socket_type,
            } => send_vsock(*cid, *port, *socket_type, message, pass),
        };
        match sent {
            Ok(n) if n == message.len() => Ok(()),
            Ok(_) => Err(self.failed(Errno::EMSGSIZE)),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&self, errno: Errno) -> ReadyError {
        ReadyError::SendFailed { addr: *self, errno }
    }

    /// `BARRIER=1` with a fresh pipe's write end; then wait for the manager
    /// to close it (the read end hangs up).
    pub(super) fn barrier(&self, timeout: Duration) -> Result<(), ReadyError> {
        let (reader, writer) = crate::TokenPipe::make()?.split();
        let sent = self.send_with(b"BARRIER=1", Some(writer.as_raw_fd()));
        // Our copy must go, or the read end never hangs up.
        drop(writer);
        sent?;
        match reader.token_read_timeout(timeout) {
            Err(Error::Eos) => Ok(()),
            Err(e) => Err(e.into()),
            // The manager wrote into the pipe instead of closing it: not
            // the protocol, but it did get there.
            Ok(_) => Ok(()),
        }
    }
}

/// `parts` joined into `buf`, or `EMSGSIZE` if they do not fit (callers
/// check the text's length first, so this is only a backstop).
fn join<'b>(parts: &[&[u8]], buf: &'b mut [u8; MESSAGE_MAX]) -> Result<&'b [u8], Error> {
    let mut len = 0;
    for part in parts {
        let end = len + part.len();
        if end > buf.len() {
            return Err(Error::Os(Errno::EMSGSIZE));
        }
        buf[len..end].copy_from_slice(part);
        len = end;
    }
    Ok(&buf[..len])
}

/// `vsock[-stream|-dgram|-seqpacket]:CID:PORT`, both decimal `u32`s.
fn parse_vsock(value: &[u8]) -> Option<NotifyAddr> {
    let (socket_type, rest) = [
        (&b"vsock:"[..], VsockType::Any),
        (b"vsock-stream:", VsockType::Stream),
        (b"vsock-dgram:", VsockType::Dgram),
        (b"vsock-seqpacket:", VsockType::Seqpacket),
    ]
    .into_iter()
    .find_map(|(prefix, t)| value.strip_prefix(prefix).map(|rest| (t, rest)))?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let cid = parse_u32(&rest[..colon])?;
    let port = parse_u32(&rest[colon + 1..])?;
    Some(NotifyAddr {
        kind: Kind::Vsock {
            cid,
            port,
            socket_type,
        },
    })
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Sends `message` to a vsock address: the bytes sent, or the errno.
#[cfg(tokenpipe_linux_like)]
fn send_vsock(
    cid: u32,
    port: u32,
    socket_type: VsockType,
    message: &[u8],
    pass: Option<c_int>,
) -> Result<usize, Errno> {
    if pass.is_some() {
        // Passing fds over vsock is not a thing: no barrier there.
        return Err(Errno::EOPNOTSUPP);
    }
    let tries: &[c_int] = match socket_type {
        VsockType::Any => &[libc::SOCK_DGRAM, libc::SOCK_STREAM],
        VsockType::Stream => &[libc::SOCK_STREAM],
        VsockType::Dgram => &[libc::SOCK_DGRAM],
        VsockType::Seqpacket => &[libc::SOCK_SEQPACKET],
    };
    let mut last = Errno::EOPNOTSUPP;
    for &kind in tries {
        match sys::vsock_send(cid, port, kind, message) {
            Ok(n) => return Ok(n),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(not(tokenpipe_linux_like))]
fn send_vsock(_: u32, _: u32, _: VsockType, _: &[u8], _: Option<c_int>) -> Result<usize, Errno> {
    // No vsock on this system: say so plainly.
    Err(Errno::EAFNOSUPPORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_addresses_parse_with_their_socket_type() {
        let got = parse_vsock(b"vsock:2:1234").unwrap();
        assert!(matches!(
            got.kind,
            Kind::Vsock {
                cid: 2,
                port: 1234,
                socket_type: VsockType::Any
            }
        ));
        let got = parse_vsock(b"vsock-stream:4294967295:0").unwrap();
        assert!(matches!(
            got.kind,
            Kind::Vsock {
                cid: u32::MAX,
                port: 0,
                socket_type: VsockType::Stream
            }
        ));
        for bad in [
            &b"vsock:"[..],
            b"vsock:1",
            b"vsock::1",
            b"vsock:1:",
            b"vsock:1:2:3",
            b"vsock:4294967296:1",
            b"vsock-raw:1:2",
            b"vsock:+1:2",
        ] {
            assert!(
                parse_vsock(bad).is_none(),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn a_message_that_does_not_fit_is_emsgsize_not_cut() {
        let mut buf = [0u8; MESSAGE_MAX];
        let big = [b'x'; MESSAGE_MAX];
        assert_eq!(
            join(&[b"STATUS=", &big], &mut buf),
            Err(Error::Os(Errno::EMSGSIZE))
        );
        assert_eq!(join(&[b"A", b"B"], &mut buf), Ok(&b"AB"[..]));
    }
}
