//! Sockets: systemd's notify socket, from both sides. The daemon sends one
//! datagram per message (optionally with one fd, for `BARRIER=1`); the
//! launcher binds a private socket and receives them, closing any fd that
//! came along (which is what completes a sender's barrier).
//!
//! Everything the daemon's side calls (`socket`, `sendmsg`, `connect`,
//! `send`, `close`, and on Apple `fcntl`) is async-signal-safe.

use core::ffi::c_int;
use core::mem::MaybeUninit;

// `ret` and `close` serve the launcher's side (std) and vsock (Linux):
// a no_std build elsewhere uses neither.
#[cfg_attr(not(tokenpipe_launch), allow(unused_imports))]
use super::conv::{ret, ret_c_int, ret_usize};
#[cfg_attr(not(tokenpipe_launch), allow(unused_imports))]
use super::{SysResult, close};

/// A Unix-domain socket address and the length that counts: for a path,
/// the path and its NUL; for a Linux abstract name, the leading NUL and the
/// name, nothing after.
#[derive(Clone, Copy)]
pub(crate) struct UnixAddr {
    pub(crate) addr: libc::sockaddr_un,
    pub(crate) len: libc::socklen_t,
}

impl UnixAddr {
    /// The most bytes a name may have: `sun_path`'s size less one, for
    /// the NUL after a path or before an abstract name.
    pub(crate) const MAX_NAME: usize = {
        // SAFETY: sockaddr_un is plain integers; zero is a valid value.
        let addr: libc::sockaddr_un = unsafe { MaybeUninit::zeroed().assume_init() };
        addr.sun_path.len() - 1
    };

    /// An address for `path` (absolute) or, with `abstract_name`, for a
    /// name in Linux's abstract namespace. `None` if it is too long or has
    /// a NUL byte.
    pub(crate) fn new(name: &[u8], abstract_name: bool) -> Option<UnixAddr> {
        if name.len() > Self::MAX_NAME || name.contains(&0) {
            return None;
        }
        // SAFETY: sockaddr_un is plain integers; zero is a valid value.
        let mut addr: libc::sockaddr_un = unsafe { MaybeUninit::zeroed().assume_init() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let start = usize::from(abstract_name);
        for (slot, &b) in addr.sun_path[start..].iter_mut().zip(name) {
            *slot = b as libc::c_char;
        }
        let base = core::mem::offset_of!(libc::sockaddr_un, sun_path);
        // A path keeps its NUL in the length; an abstract name is exactly
        // its bytes after the leading NUL (a trailing NUL would be part of
        // the name).
        let len = base + start + name.len() + usize::from(!abstract_name);
        Some(UnixAddr {
            addr,
            len: len as libc::socklen_t,
        })
    }

    /// The name's bytes, without the leading NUL of an abstract one.
    pub(crate) fn name(&self) -> &[u8] {
        let base = core::mem::offset_of!(libc::sockaddr_un, sun_path);
        let len = self.len as usize - base;
        // SAFETY: c_char and u8 have the same size and alignment, and
        // sun_path is initialised (zeroed, then written).
        let path: &[u8] = unsafe {
            core::slice::from_raw_parts(
                self.addr.sun_path.as_ptr().cast(),
                self.addr.sun_path.len(),
            )
        };
        if path.first() == Some(&0) {
            &path[1..len]
        } else {
            &path[..len.saturating_sub(1)]
        }
    }

    /// Whether this is a name in the abstract namespace.
    pub(crate) fn is_abstract(&self) -> bool {
        self.addr.sun_path[0] == 0
    }
}

// Two addresses are the same when they name the same socket: the kind and
// the name, not the bytes after it in `sun_path`.
impl PartialEq for UnixAddr {
    fn eq(&self, other: &UnixAddr) -> bool {
        self.is_abstract() == other.is_abstract() && self.name() == other.name()
    }
}

impl Eq for UnixAddr {}

impl core::hash::Hash for UnixAddr {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.is_abstract().hash(state);
        self.name().hash(state);
    }
}

/// `socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)`—A datagram socket that
/// no `exec` inherits (on Apple and AIX, which have no `SOCK_CLOEXEC`, with
/// `fcntl(FD_CLOEXEC)` right after, closing it if that fails).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/socket.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/socket.2.html)
pub(crate) fn unix_datagram_socket() -> SysResult<c_int> {
    #[cfg(tokenpipe_sock_cloexec)]
    {
        // SAFETY: socket takes plain integers and touches no memory of ours.
        ret_c_int(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
    }
    #[cfg(not(tokenpipe_sock_cloexec))]
    {
        // SAFETY: as above.
        let fd = ret_c_int(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) })?;
        if let Err(e) = super::set_cloexec(fd) {
            close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

/// Room for one `SCM_RIGHTS` control message carrying one fd, aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
struct OneFdControl([u8; 32]);

/// `sendmsg(fd, {to, data, [SCM_RIGHTS: pass]}, 0)`—Sends one
/// datagram to `to`, with one fd attached if `pass` is given. Returns the
/// bytes sent. Not retried: the caller decides what `EINTR` means.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sendmsg.html)
/// - [Linux `unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
pub(crate) fn send_datagram(
    fd: c_int,
    to: &UnixAddr,
    data: &[u8],
    pass: Option<c_int>,
) -> SysResult<usize> {
    send_message(fd, Some(to), data, pass)
}

/// `sendmsg` to `to`, or to a connected socket's peer when `to` is `None`,
/// with one fd attached if `pass` is given.
fn send_message(
    fd: c_int,
    to: Option<&UnixAddr>,
    data: &[u8],
    pass: Option<c_int>,
) -> SysResult<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = OneFdControl([0; 32]);
    // SAFETY: msghdr is plain integers and pointers; all-zero is a valid
    // (empty) value, and the fields we use are set below.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    if let Some(to) = to {
        msg.msg_name = (&raw const to.addr) as *mut libc::c_void;
        msg.msg_namelen = to.len;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(passed) = pass {
        // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(core::mem::size_of::<c_int>() as u32),
                libc::CMSG_LEN(core::mem::size_of::<c_int>() as u32),
            )
        };
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is aligned for cmsghdr and at least
        // CMSG_SPACE(sizeof(int)) bytes, so CMSG_FIRSTHDR gives a header
        // inside it, and CMSG_DATA a slot for one int inside it.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = len as _;
            libc::CMSG_DATA(header)
                .cast::<c_int>()
                .write_unaligned(passed);
        }
    }
    // No MSG_NOSIGNAL: an unconnected datagram socket has no peer to lose,
    // so no send on it raises SIGPIPE (a missing receiver is ENOENT or
    // ECONNREFUSED).
    // SAFETY: every pointer in `msg` (address, iovec, data, control) is
    // valid for the call, and sendmsg only reads them.
    let sent = unsafe { libc::sendmsg(fd, &msg, 0) };
    ret_usize(sent)
}

/// `bind(fd, addr)`—Gives a socket its address.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/bind.html)
#[cfg(tokenpipe_launch)]
pub(crate) fn bind(fd: c_int, addr: &UnixAddr) -> SysResult<()> {
    // SAFETY: `addr.addr` is a valid sockaddr_un of at least `addr.len`
    // bytes, which bind only reads.
    ret(unsafe { libc::bind(fd, (&raw const addr.addr).cast(), addr.len) })
}

/// What [`recv_datagram`] learnt besides the bytes.
#[cfg(tokenpipe_launch)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Received {
    /// How many bytes the datagram had (at most the buffer's length).
    pub(crate) len: usize,
    /// Whether it was longer than the buffer (`MSG_TRUNC`): its end is
    /// lost, and what is left may read as something it never said.
    pub(crate) truncated: bool,
    /// Whether it carried fds (now closed).
    pub(crate) carried_fds: bool,
    /// The sender's uid, where the kernel says (Linux, with `SO_PASSCRED`).
    pub(crate) sender_uid: Option<libc::uid_t>,
    /// The sender's pid, likewise (as it was when it sent).
    pub(crate) sender_pid: Option<libc::pid_t>,
    /// The first fd it carried, left open, when the caller asked to keep it.
    pub(crate) kept_fd: Option<c_int>,
}

/// `setsockopt(fd, SOL_SOCKET, SO_PASSCRED, 1)` (Linux)—Has the kernel
/// attach each sender's pid, uid and gid to the datagrams this socket
/// receives, so a launcher can ignore strangers.
///
/// # References
/// - [Linux `unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[cfg(all(tokenpipe_launch, tokenpipe_linux_like))]
pub(crate) fn pass_credentials(fd: c_int) -> SysResult<()> {
    let on: c_int = 1;
    // SAFETY: `on` is a valid int for the call, and its size is given.
    ret(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&raw const on).cast(),
            core::mem::size_of::<c_int>() as libc::socklen_t,
        )
    })
}

/// `getuid()`—This process's real user id. Cannot fail.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getuid.html)
#[cfg(tokenpipe_launch)]
pub(crate) fn getuid() -> libc::uid_t {
    // SAFETY: getuid takes nothing and touches no memory of ours.
    unsafe { libc::getuid() }
}

/// `recvmsg(fd, buf, MSG_DONTWAIT)` with room for passed fds—Receives one
/// datagram into `buf` without waiting, and closes every fd that came with
/// it (a sender's `BARRIER=1` waits for exactly that). Returns its length,
/// whether it carried fds, and the sender's uid where the kernel attached
/// credentials; `EAGAIN` if there is none. A datagram longer than `buf` is
/// cut (its end is lost) and marked [`Received::truncated`]; its fds are
/// closed all the same.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/recvmsg.html)
/// - [Linux `unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[cfg(tokenpipe_launch)]
pub(crate) fn recv_datagram(fd: c_int, buf: &mut [u8]) -> SysResult<Received> {
    receive(fd, buf, false)
}

/// `recvmsg` as [`recv_datagram`] describes; with `keep_first`, the first
/// fd passed is left open in [`Received::kept_fd`] (the others are closed).
#[cfg(tokenpipe_launch)]
fn receive(fd: c_int, buf: &mut [u8], keep_first: bool) -> SysResult<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for up to 16 passed fds; more are closed by the kernel (MSG_CTRUNC).
    #[repr(C, align(8))]
    struct Control([u8; 256]);
    let mut control = Control([0; 256]);
    // SAFETY: as in send_datagram: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    #[cfg(tokenpipe_cmsg_cloexec)]
    let flags = libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(tokenpipe_cmsg_cloexec))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: the iovec and control buffer are valid for writes of their
    // lengths for the call.
    let len = ret_usize(unsafe { libc::recvmsg(fd, &mut msg, flags) })?;
    let mut got = Received {
        len,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        ..Received::default()
    };
    // SAFETY: recvmsg filled `msg`; CMSG_FIRSTHDR/NXTHDR walk only the
    // control bytes it reported, and each SCM_RIGHTS payload is a run of
    // ints (read unaligned, as the macros do not promise alignment).
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let payload = (*header).cmsg_len as usize - (data as usize - header as usize);
                for i in 0..payload / core::mem::size_of::<c_int>() {
                    let passed = data.cast::<c_int>().add(i).read_unaligned();
                    if keep_first && got.kept_fd.is_none() {
                        got.kept_fd = Some(passed);
                    } else {
                        close(passed);
                    }
                    got.carried_fds = true;
                }
            }
            #[cfg(tokenpipe_linux_like)]
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_CREDENTIALS
            {
                let cred = libc::CMSG_DATA(header)
                    .cast::<libc::ucred>()
                    .read_unaligned();
                got.sender_uid = Some(cred.uid);
                got.sender_pid = Some(cred.pid);
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    Ok(got)
}

/// A vsock address (Linux): context id, port and socket type.
#[cfg(tokenpipe_linux_like)]
pub(crate) fn vsock_send(cid: u32, port: u32, kind: c_int, data: &[u8]) -> SysResult<usize> {
    // SAFETY: socket takes plain integers.
    let fd = ret_c_int(unsafe { libc::socket(libc::AF_VSOCK, kind | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: sockaddr_vm is plain integers; zero is valid.
    let mut addr: libc::sockaddr_vm = unsafe { MaybeUninit::zeroed().assume_init() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    let len = core::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_vm of `len` bytes, only read.
    let result = ret(unsafe { libc::connect(fd, (&raw const addr).cast(), len) }).and_then(|()| {
        // SAFETY: `data` is valid for reads of its length.
        ret_usize(unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) })
    });
    close(fd);
    result
}

/// `socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC)`—Two connected datagram
/// sockets: the launcher's private line from a child, between `fork` and
/// `exec`, to itself (the child sends its own pidfd on it).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/socketpair.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/socketpair.2.html)
#[cfg(all(tokenpipe_launch, tokenpipe_linux_like))]
pub(crate) fn socketpair_dgram() -> SysResult<[c_int; 2]> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is valid for writes of two ints for the call.
    ret(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok(fds)
}

/// `sendmsg(sock, {"fd", SCM_RIGHTS: fd}, 0)`—Sends a copy of `fd` to the
/// connected peer of `sock`. Async-signal-safe: the launcher's child calls
/// it between `fork` and `exec`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sendmsg.html)
/// - [Linux `unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[cfg(all(tokenpipe_launch, tokenpipe_linux_like))]
pub(crate) fn send_fd(sock: c_int, fd: c_int) -> SysResult<()> {
    send_message(sock, None, b"fd", Some(fd)).map(drop)
}

/// `recvmsg(sock, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)`—Takes the first fd
/// passed in the next datagram waiting on `sock` (any others are closed);
/// `None` if the datagram carried none, `EAGAIN` if there is no datagram.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/recvmsg.html)
/// - [Linux `unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html)
#[cfg(all(tokenpipe_launch, tokenpipe_linux_like))]
pub(crate) fn recv_fd(sock: c_int) -> SysResult<Option<c_int>> {
    receive(sock, &mut [0u8; 2], true).map(|got| got.kept_fd)
}
