//! The syscall layer: the only module that calls libc.
//!
//! One thin function per syscall. Each takes and returns plain values, reads
//! `errno` only when the call failed, and leaves every policy decision (retry
//! on `EINTR`, what an error means) to the safe code above it. None of these
//! functions allocates. Everything reachable from `token_write`,
//! `token_read` and `close` is async-signal-safe; the exceptions here are
//! `strerror_r` (reached only from `Display`) and `getenv` (reached only
//! from `from_env`, whose contract forbids a concurrent `setenv`).
//!
//! The functions are safe to call but not all are safe to *misuse*: `close`
//! on an fd that something else owns breaks that owner. They are
//! `pub(crate)`, and `close` is only ever called by the fd's owner: an end,
//! or a function here closing fds it has just opened.
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

/// Sets the calling thread's `errno` (for handlers that restore it).
#[inline]
pub(crate) fn set_errno(e: Errno) {
    // SAFETY: as in `errno`: the pointer is this thread's errno, valid for
    // the thread's lifetime, and writing an int there is what it is for.
    unsafe { *errno_location() = e.raw() };
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

/// `fcntl(fd, cmd)` for a command that reads a value: `F_GETFD` (the fd
/// flags: `FD_CLOEXEC`) or `F_GETFL` (the status flags: `O_NONBLOCK`, the
/// access mode, ...).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=fcntl&sektion=2)
#[inline]
pub(crate) fn fcntl_get(fd: c_int, cmd: c_int) -> SysResult<c_int> {
    debug_assert!(cmd == libc::F_GETFD || cmd == libc::F_GETFL);
    // SAFETY: F_GETFD and F_GETFL take no third argument and touch no
    // memory of ours; an fd that is not open gives EBADF.
    let value = unsafe { libc::fcntl(fd, cmd) };
    if value >= 0 { Ok(value) } else { Err(errno()) }
}

/// `fcntl(fd, cmd, value)` for a command that writes an int: `F_SETFD` or
/// `F_SETFL`. Callers pass what [`fcntl_get`] read, with one bit changed.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[inline]
pub(crate) fn fcntl_set(fd: c_int, cmd: c_int, value: c_int) -> SysResult<()> {
    debug_assert!(cmd == libc::F_SETFD || cmd == libc::F_SETFL);
    // SAFETY: F_SETFD and F_SETFL take an int third argument and touch no
    // memory of ours; an fd that is not open gives EBADF.
    let rc = unsafe { libc::fcntl(fd, cmd, value) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// Sets `FD_CLOEXEC` on `fd`, keeping every other fd flag as it was.
///
/// Reads before it writes: a bare `F_SETFD, FD_CLOEXEC` would clear any flag
/// a platform adds beside it (FreeBSD has `FD_RESOLVE_BENEATH`).
#[inline]
pub(crate) fn set_cloexec(fd: c_int) -> SysResult<()> {
    let flags = fcntl_get(fd, libc::F_GETFD)?;
    if flags & libc::FD_CLOEXEC != 0 {
        return Ok(());
    }
    fcntl_set(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC)
}

/// Clears `FD_CLOEXEC` on `fd`, keeping every other fd flag as it was, so
/// the fd survives `exec`. Async-signal-safe: used between fork and exec.
#[inline]
pub(crate) fn clear_cloexec(fd: c_int) -> SysResult<()> {
    let flags = fcntl_get(fd, libc::F_GETFD)?;
    if flags & libc::FD_CLOEXEC == 0 {
        return Ok(());
    }
    fcntl_set(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC)
}

/// `write(fd, buf)`—Writes up to `buf.len()` bytes, once, and returns what
/// the call returned: the count, or `-1` with `errno` set.
///
/// Raw, because the one-token hot path wants one compare (`== 1`) first;
/// checking the sign first, as [`write()`] does, cost 7 more instructions per
/// round trip under callgrind. No retry here: the caller decides what
/// `EINTR` and a short count mean.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/write.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/write.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=write&sektion=2)
#[inline]
pub(crate) fn write_count(fd: c_int, buf: &[u8]) -> isize {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole
    // call, and write only reads from it.
    unsafe { libc::write(fd, buf.as_ptr().cast::<c_void>(), buf.len()) }
}

/// [`write_count`] as a `Result`: the count, or the `errno` it left.
#[inline]
pub(crate) fn write(fd: c_int, buf: &[u8]) -> SysResult<usize> {
    let n = write_count(fd, buf);
    // A non-negative ssize_t always fits in usize.
    if n >= 0 { Ok(n as usize) } else { Err(errno()) }
}

/// `read(fd, buf)`—Reads up to `buf.len()` bytes, once, and returns what
/// the call returned: the count (`0` at end of stream or for an empty
/// `buf`), or `-1` with `errno` set. Raw for the same reason as
/// [`write_count`].
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/read.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/read.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=read&sektion=2)
#[inline]
pub(crate) fn read_count(fd: c_int, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole
    // call, read writes at most that many, and any byte pattern is a valid u8.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast::<c_void>(), buf.len()) }
}

/// [`read_count`] as a `Result`: the count, or the `errno` it left.
#[inline]
pub(crate) fn read(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    let n = read_count(fd, buf);
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

/// `fcntl(fd, F_SETNOSIGPIPE, 1)`—Makes writes on `fd` fail with `EPIPE`
/// instead of raising `SIGPIPE` (Apple and NetBSD only).
///
/// # References
/// - [Apple `fcntl`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
/// - [NetBSD `fcntl`](https://man.netbsd.org/fcntl.2)
#[cfg(any(target_vendor = "apple", target_os = "netbsd"))]
#[inline]
pub(crate) fn fcntl_set_nosigpipe(fd: c_int) -> SysResult<()> {
    // SAFETY: F_SETNOSIGPIPE takes an int third argument and touches no
    // memory of ours.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETNOSIGPIPE, 1 as c_int) };
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// `poll([{fd, POLLIN}], timeout_ms)`—Waits until `fd` is readable (a token
/// or end of stream), or the timeout passes. Returns the `revents` bits, `0`
/// on timeout. A negative timeout waits forever.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/poll.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/poll.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=poll&sektion=2)
#[inline]
pub(crate) fn poll_readable(fd: c_int, timeout_ms: c_int) -> SysResult<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, writable pollfd, and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    match rc {
        0 => Ok(0),
        n if n > 0 => Ok(pfd.revents),
        _ => Err(errno()),
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)`—The time since an arbitrary fixed
/// point, never stepped by the wall clock. Async-signal-safe.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/clock_gettime.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
#[inline]
pub(crate) fn monotonic_now() -> SysResult<core::time::Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return Err(errno());
    }
    // The monotonic clock is never negative, and tv_nsec < 1e9.
    #[allow(clippy::unnecessary_cast)]
    Ok(core::time::Duration::new(
        ts.tv_sec as u64,
        ts.tv_nsec as u32,
    ))
}

/// What `fstat` says about an open fd: which file it is, and whether it is
/// a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) is_fifo: bool,
}

/// `fstat(fd)`—Identifies the file `fd` refers to. Async-signal-safe.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fstat.2.html)
pub(crate) fn file_id(fd: c_int) -> SysResult<FileId> {
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return Err(errno());
    }
    // SAFETY: fstat returned 0, so it filled in `st` completely.
    let st = unsafe { st.assume_init() };
    // dev_t and ino_t are at most 64 bits on every supported Unix.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(FileId {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        is_fifo: st.st_mode & libc::S_IFMT == libc::S_IFIFO,
    })
}

/// The signal-mask calls behind a SIGPIPE-free write on systems without
/// `F_SETNOSIGPIPE`: block SIGPIPE in this thread, see whether one was
/// already pending, and take away the one our write raised.
#[cfg(not(any(target_vendor = "apple", target_os = "netbsd")))]
pub(crate) mod sigpipe {
    use core::mem::MaybeUninit;

    use super::{SysResult, errno};

    /// A signal set holding only `SIGPIPE`.
    fn sigpipe_set() -> libc::sigset_t {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set it is given, and
        // sigaddset with a valid signal number only sets one bit in it.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
            set.assume_init()
        }
    }

    /// `pthread_sigmask(SIG_BLOCK, {SIGPIPE}, &old)`—Blocks SIGPIPE in the
    /// calling thread and returns the mask to restore.
    ///
    /// # References
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_sigmask.html)
    /// - [Linux](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
    pub(crate) fn block() -> SysResult<libc::sigset_t> {
        let set = sigpipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is an initialised set and `old` is valid for writes
        // of one sigset_t, which pthread_sigmask fills on success.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) };
        if rc != 0 {
            // pthread functions return the error instead of setting errno.
            return Err(crate::error::Errno::from_raw(rc));
        }
        // SAFETY: pthread_sigmask succeeded, so it wrote the old mask.
        Ok(unsafe { old.assume_init() })
    }

    /// `pthread_sigmask(SIG_SETMASK, old)`—Restores the mask [`block`] saved.
    ///
    /// # References
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_sigmask.html)
    pub(crate) fn restore(old: &libc::sigset_t) {
        // SAFETY: `old` is the initialised mask block() returned. With a
        // valid `how` and set, pthread_sigmask cannot fail.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, core::ptr::null_mut()) };
    }

    /// `sigpending` and `sigismember(SIGPIPE)`—Whether a SIGPIPE is pending
    /// for this thread or the process.
    ///
    /// # References
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigpending.html)
    /// - [Linux](https://man7.org/linux/man-pages/man2/sigpending.2.html)
    pub(crate) fn is_pending() -> SysResult<bool> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is valid for writes of one sigset_t.
        if unsafe { libc::sigpending(set.as_mut_ptr()) } != 0 {
            return Err(errno());
        }
        // SAFETY: sigpending succeeded, so `set` is initialised.
        Ok(unsafe { libc::sigismember(set.as_ptr(), libc::SIGPIPE) } == 1)
    }

    /// `sigwait({SIGPIPE})`—Takes one pending SIGPIPE away. Call it only
    /// when [`is_pending`] said one is pending, or it blocks.
    ///
    /// # References
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigwait.html)
    /// - [Linux](https://man7.org/linux/man-pages/man3/sigwait.3.html)
    pub(crate) fn take_pending() {
        let set = sigpipe_set();
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
        // SIGPIPE is blocked and pending, so this returns at once.
        unsafe { libc::sigwait(&set, &mut sig) };
    }
}

/// `getenv(name)`—The value of an environment variable, as bytes without
/// the NUL.
///
/// # Safety
/// No other thread may change the environment (`setenv`, `putenv`,
/// `unsetenv`) while this runs or while the returned slice is in use.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getenv.html)
pub(crate) unsafe fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated. The caller keeps the environment
    // unchanged while the result is used, so the pointer stays valid.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a non-null pointer to a NUL-terminated string
    // that lives until the environment changes.
    Some(unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes())
}

/// `fork()`—Creates a child process.
///
/// # Safety
/// If the calling process has other threads, the child may only make
/// async-signal-safe calls until it `exec`s or `_exit`s: locks held by the
/// other threads (the allocator's among them) stay held forever there.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fork.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fork.2.html)
pub(crate) unsafe fn fork() -> SysResult<libc::pid_t> {
    // SAFETY: the caller upholds the threads contract above.
    let pid = unsafe { libc::fork() };
    if pid >= 0 { Ok(pid) } else { Err(errno()) }
}

/// `setsid()`—Makes the caller the leader of a new session with no
/// controlling terminal.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsid.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/setsid.2.html)
pub(crate) fn setsid() -> SysResult<()> {
    // SAFETY: setsid touches no memory of ours.
    if unsafe { libc::setsid() } >= 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `chdir("/")`—Moves the working directory to the root, so a daemon holds
/// no directory busy.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/chdir.html)
pub(crate) fn chdir_root() -> SysResult<()> {
    // SAFETY: the path is a NUL-terminated literal.
    if unsafe { libc::chdir(c"/".as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `open("/dev/null", O_RDWR)` then `dup2` onto fds 0, 1 and 2—Points
/// stdin, stdout and stderr at `/dev/null`.
///
/// # References
/// - [POSIX 2024 `open`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html)
/// - [POSIX 2024 `dup2`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
pub(crate) fn stdio_to_dev_null() -> SysResult<()> {
    // SAFETY: the path is a NUL-terminated literal; O_RDWR takes no mode.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
    if null < 0 {
        return Err(errno());
    }
    for target in 0..3 {
        // SAFETY: dup2 touches no memory of ours; replacing 0..=2 is the
        // point of this function, and their old files are not ours to keep.
        if null != target && unsafe { libc::dup2(null, target) } < 0 {
            let e = errno();
            close(null);
            return Err(e);
        }
    }
    if null > 2 {
        close(null);
    }
    Ok(())
}

/// `_exit(code)`—Ends the process at once, without running destructors,
/// `atexit` handlers or flushing stdio buffers (which belong to the parent
/// after a fork).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/_exit.html)
pub(crate) fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// `waitpid(pid, &status, 0)`—Reaps a child, retrying on `EINTR`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/waitpid.2.html)
pub(crate) fn waitpid(pid: libc::pid_t) -> SysResult<c_int> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for one int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(status);
        }
        let e = errno();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}
