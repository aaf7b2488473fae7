//! The syscall layer: the only module with `unsafe` code.
//!
//! One thin function per syscall. Each takes and returns plain values, reads
//! `errno` only when the call failed, and leaves every policy decision (retry
//! on `EINTR`, what an error means) to the safe code above it. None of these
//! functions allocates, and every syscall here is on POSIX's list of
//! async-signal-safe functions (`strerror_r` is the exception; it is reached
//! only from `Display`, never from a read, a write or a close).
//!
//! The functions are safe to call but not all are safe to *misuse*: `close`
//! on an fd that something else owns breaks that owner. They are
//! `pub(crate)`, and the one caller of `close` is the owner of the fd.
#![allow(unsafe_code)]

use core::ffi::{c_int, c_void};

use crate::error::Errno;

/// The result of one syscall: its value, or the `errno` it left.
pub(crate) type SysResult<T> = core::result::Result<T, Errno>;

// Where each libc keeps the calling thread's `errno`. The name differs per
// OS; the libc crate exposes each under its own name, so pick it here once.
#[cfg(any(
    target_os = "linux",
    target_os = "emscripten",
    target_os = "redox",
    target_os = "hurd",
    target_os = "dragonfly"
))]
use libc::__errno_location as errno_location;

#[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
use libc::__errno as errno_location;

#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
use libc::__error as errno_location;

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
use libc::___errno as errno_location;

#[cfg(not(any(
    target_os = "linux",
    target_os = "emscripten",
    target_os = "redox",
    target_os = "hurd",
    target_os = "dragonfly",
    target_os = "android",
    target_os = "netbsd",
    target_os = "openbsd",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "illumos",
    target_os = "solaris"
)))]
compile_error!(
    "bitcoin-tokenpipe does not know where this Unix keeps errno; \
     add the target to src/sys.rs"
);

/// Reads the calling thread's `errno`.
///
/// Called only after a syscall reported failure, so it is off the hot path.
#[cold]
#[inline(never)]
pub(crate) fn errno() -> Errno {
    // SAFETY: the errno location function has no preconditions and returns a
    // pointer to the calling thread's errno, valid for the thread's lifetime.
    Errno::from_raw(unsafe { *errno_location() })
}

// The platform split for close-on-exec at creation, in one place: `pipe2`
// where the OS has it, `pipe` + `fcntl` elsewhere. Apple's SDK declares
// `pipe2` on recent versions, but older systems lack it at run time, so Apple
// always takes the fallback (as Rust's std does).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris",
    target_os = "redox",
    target_os = "hurd",
    target_os = "emscripten"
))]
mod platform {
    use core::ffi::c_int;

    use super::{SysResult, errno};

    pub(crate) const ATOMIC_CLOEXEC: bool = true;

    /// `pipe2(fds, O_CLOEXEC)`—Creates a pipe whose ends are close-on-exec
    /// from the first instant, so no `fork`+`exec` in another thread can
    /// inherit them.
    ///
    /// Returns `[read end, write end]`. `EINTR` is not among pipe2's errors,
    /// so there is no retry loop.
    ///
    /// # References
    /// - [Linux](https://man7.org/linux/man-pages/man2/pipe2.2.html)
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pipe.html)
    /// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=pipe2&sektion=2)
    /// - [NetBSD](https://man.netbsd.org/pipe2.2)
    /// - [OpenBSD](https://man.openbsd.org/pipe2.2)
    /// - [illumos](https://illumos.org/man/2/pipe2)
    #[doc(alias = "pipe2")]
    #[inline]
    pub(crate) fn make_pipe() -> SysResult<[c_int; 2]> {
        let mut fds: [c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a writable array of exactly two `c_int`, which is
        // what pipe2 writes to; it writes nothing on failure.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        if rc == 0 { Ok(fds) } else { Err(errno()) }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris",
    target_os = "redox",
    target_os = "hurd",
    target_os = "emscripten"
)))]
mod platform {
    pub(crate) const ATOMIC_CLOEXEC: bool = false;
    pub(crate) use super::pipe_then_cloexec as make_pipe;
}

pub(crate) use platform::{ATOMIC_CLOEXEC, make_pipe};

/// `pipe(fds)`, then close-on-exec on each end—the portable path.
///
/// Used where `pipe2` is not available (Apple). There is a window between
/// `pipe` and `fcntl` in which a concurrent `fork`+`exec` in another thread
/// inherits the ends; no portable call closes it. If setting the flag fails,
/// both fds are closed, so the caller never sees a half-made pipe.
///
/// # References
/// - [POSIX 2024 `pipe`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pipe.html)
/// - [Apple `pipe`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/pipe.2.html)
/// - [Linux `pipe`](https://man7.org/linux/man-pages/man2/pipe.2.html)
#[inline]
pub(crate) fn pipe_then_cloexec() -> SysResult<[c_int; 2]> {
    let mut fds: [c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a writable array of exactly two `c_int`, which is what
    // pipe writes to; it writes nothing on failure.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(errno());
    }
    for fd in fds {
        if let Err(e) = set_cloexec(fd) {
            close(fds[0]);
            close(fds[1]);
            return Err(e);
        }
    }
    Ok(fds)
}

/// `fcntl(fd, F_GETFD)`—Reads the fd flags (only `FD_CLOEXEC` is defined).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=fcntl&sektion=2)
#[inline]
pub(crate) fn fcntl_getfd(fd: c_int) -> SysResult<c_int> {
    // SAFETY: F_GETFD takes no third argument and touches no memory of ours;
    // an fd that is not open gives EBADF, not undefined behaviour.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags >= 0 { Ok(flags) } else { Err(errno()) }
}

/// `fcntl(fd, F_SETFD, flags)`—Writes the fd flags.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[inline]
pub(crate) fn fcntl_setfd(fd: c_int, flags: c_int) -> SysResult<()> {
    // SAFETY: F_SETFD takes an int third argument and touches no memory of
    // ours; an fd that is not open gives EBADF.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, flags) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// Sets `FD_CLOEXEC` on `fd`, keeping every other fd flag as it was.
///
/// Reads before it writes: a bare `F_SETFD, FD_CLOEXEC` would clear any flag
/// a platform adds beside it (FreeBSD has `FD_RESOLVE_BENEATH`).
#[inline]
pub(crate) fn set_cloexec(fd: c_int) -> SysResult<()> {
    let flags = fcntl_getfd(fd)?;
    if flags & libc::FD_CLOEXEC != 0 {
        return Ok(());
    }
    fcntl_setfd(fd, flags | libc::FD_CLOEXEC)
}

/// `write(fd, buf)`—Writes up to `buf.len()` bytes, once.
///
/// No retry here: the caller decides what `EINTR` and a short count mean.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/write.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/write.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=write&sektion=2)
#[inline]
pub(crate) fn write(fd: c_int, buf: &[u8]) -> SysResult<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole
    // call, and write only reads from it.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast::<c_void>(), buf.len()) };
    // A non-negative ssize_t always fits in usize.
    if n >= 0 { Ok(n as usize) } else { Err(errno()) }
}

/// `read(fd, buf)`—Reads up to `buf.len()` bytes, once. `Ok(0)` is end of
/// stream (or an empty `buf`).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/read.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/read.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=read&sektion=2)
#[inline]
pub(crate) fn read(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
    // call, read writes at most that many, and any byte pattern is a valid u8.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast::<c_void>(), buf.len()) };
    // A non-negative ssize_t always fits in usize.
    if n >= 0 { Ok(n as usize) } else { Err(errno()) }
}

/// `close(fd)`—Releases the fd number. The caller must own `fd` and must
/// never use the number again.
///
/// Never retried, and its result is ignored: on Linux, FreeBSD and most
/// others the fd is released even when close reports `EINTR`, and a retry
/// could close an unrelated fd that another thread has just been given the
/// same number. The remaining errors (`EIO` on some file systems) do not
/// apply to pipes.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/close.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/close.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/close.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=close&sektion=2)
#[inline]
pub(crate) fn close(fd: c_int) {
    // SAFETY: close touches no memory of ours. The caller owns `fd` and
    // forgets the number afterwards, so no other owner's fd is closed.
    unsafe { libc::close(fd) };
}

/// `strerror_r(errnum, buf)`—The system's description of an errno value,
/// written into `buf` (the POSIX/XSI version on every libc; the libc crate
/// links glibc's `__xpg_strerror_r`). `None` if the system has none.
///
/// Not async-signal-safe on every libc; reached only from `Display`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/strerror.html)
/// - [Linux](https://man7.org/linux/man-pages/man3/strerror.3.html)
pub(crate) fn strerror(errnum: c_int, buf: &mut [u8]) -> Option<&str> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and strerror_r
    // writes at most that many, NUL included.
    let rc = unsafe { libc::strerror_r(errnum, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&buf[..len]).ok()
}
