//! File descriptors: pipes, fcntl flags, reads and writes, poll, fstat.

use core::ffi::{c_int, c_void};

use super::SysResult;
use super::conv::{ret, ret_c_int, ret_usize};

// The platform split for close-on-exec at creation, in one place: `pipe2`
// where the OS has it (build.rs: `tokenpipe_pipe2`), `pipe` + `fcntl`
// elsewhere. Apple's SDK declares `pipe2` on recent versions, but older
// systems lack it at run time, so Apple always takes the fallback (as Rust's
// std does).
#[cfg(tokenpipe_pipe2)]
mod platform {
    use core::ffi::c_int;

    use super::super::SysResult;
    use super::super::conv::ret;

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
        // Uninitialised, as `int fds[2]` is in C: pipe2 fills both on
        // success, and a `[-1, -1]` that is never read costs a store per
        // make (ci/instructions.sh counts make + close).
        let mut fds = core::mem::MaybeUninit::<[c_int; 2]>::uninit();
        // SAFETY: `fds` is valid for writes of exactly two `c_int`, which is
        // what pipe2 writes to; it writes nothing on failure.
        ret(unsafe { libc::pipe2(fds.as_mut_ptr().cast(), libc::O_CLOEXEC) })?;
        // SAFETY: pipe2 returned 0, so it wrote both fds.
        let fds = unsafe { fds.assume_init() };
        // SAFETY: a successful pipe2 returns two open fds, and an open fd
        // is never negative (POSIX: the lowest numbers not open, from 0).
        // Telling the compiler lets it drop the ends' closed-fd checks
        // wherever it can see the ends came from here.
        unsafe { core::hint::assert_unchecked(fds[0] >= 0 && fds[1] >= 0) };
        Ok(fds)
    }

    /// `pipe2(fds, O_CLOEXEC | O_NONBLOCK)`—A close-on-exec pipe whose
    /// ends never block, in one call (a `SignalInterrupt`'s pipe, made on
    /// first use, maybe inside a signal handler: pipe2 is a plain system
    /// call, async-signal-safe in practice and on POSIX 2024's list).
    ///
    /// # References
    /// - [Linux](https://man7.org/linux/man-pages/man2/pipe2.2.html)
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pipe.html)
    #[inline]
    #[cfg_attr(tokenpipe_loom, allow(dead_code))] // a count stands in under loom
    pub(crate) fn make_pipe_nonblocking() -> SysResult<[c_int; 2]> {
        let mut fds = core::mem::MaybeUninit::<[c_int; 2]>::uninit();
        // SAFETY: as in make_pipe: pipe2 writes two c_int on success only.
        ret(unsafe { libc::pipe2(fds.as_mut_ptr().cast(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        // SAFETY: pipe2 returned 0, so it wrote both fds.
        Ok(unsafe { fds.assume_init() })
    }
}

#[cfg(not(tokenpipe_pipe2))]
mod platform {
    use core::ffi::c_int;

    use super::super::SysResult;

    pub(crate) const ATOMIC_CLOEXEC: bool = false;
    pub(crate) use super::pipe_then_cloexec as make_pipe;

    /// [`make_pipe`], then `O_NONBLOCK` on each end; both fds are closed
    /// if a flag cannot be set.
    #[cfg_attr(tokenpipe_loom, allow(dead_code))] // a count stands in under loom
    pub(crate) fn make_pipe_nonblocking() -> SysResult<[c_int; 2]> {
        let fds = make_pipe()?;
        let made = super::set_nonblocking(fds[0], true).and(super::set_nonblocking(fds[1], true));
        if let Err(e) = made {
            super::close(fds[0]);
            super::close(fds[1]);
            return Err(e);
        }
        Ok(fds)
    }
}

// The model checker's build stands a count in for the interrupt's pipe.
#[cfg_attr(tokenpipe_loom, allow(unused_imports))]
pub(crate) use platform::{ATOMIC_CLOEXEC, make_pipe, make_pipe_nonblocking};

/// `pipe(fds)`, then close-on-exec on each end—the portable path.
///
/// Used where `pipe2` is not available (build.rs leaves `tokenpipe_pipe2`
/// unset: Apple, Haiku, QNX, AIX, L4Re, VxWorks, the newlib systems). There is a window between `pipe` and `fcntl` in which a
/// concurrent `fork`+`exec` in another thread inherits the ends; no portable
/// call closes it. If setting the flag fails, both fds are closed, so the
/// caller never sees a half-made pipe. Where no program can be executed
/// (ESP-IDF, Horizon, Vita, RTEMS, NuttX: `tokenpipe_cloexec` unset) there
/// is nothing to inherit the ends and ESP-IDF rejects the flag, so it is not
/// set.
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
    ret(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    #[cfg(tokenpipe_cloexec)]
    for fd in fds {
        if let Err(e) = set_cloexec(fd) {
            close(fds[0]);
            close(fds[1]);
            return Err(e);
        }
    }
    // SAFETY: as in make_pipe: a successful pipe gave two open fds.
    unsafe { core::hint::assert_unchecked(fds[0] >= 0 && fds[1] >= 0) };
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
    ret_c_int(unsafe { libc::fcntl(fd, cmd) })
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
    ret(unsafe { libc::fcntl(fd, cmd, value) })
}

/// `fcntl(fd, F_GETFL) & O_ACCMODE`—How the open file `fd` names may be
/// used: `O_RDONLY`, `O_WRONLY` or `O_RDWR`. A pipe's read end is
/// `O_RDONLY` and its write end `O_WRONLY`, which tells them apart where
/// both share one inode (Linux), and a channel no report can be written
/// to (`ready::Notifier::from_env`, `from_fd`). Async-signal-safe.
///
/// # References
/// - [POSIX 2024 `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [POSIX 2024 `<fcntl.h>` (`O_ACCMODE`)](https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/fcntl.h.html)
/// - [Linux `fcntl`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[doc(alias = "O_ACCMODE")]
#[inline]
pub(crate) fn access_mode(fd: c_int) -> SysResult<c_int> {
    Ok(fcntl_get(fd, libc::F_GETFL)? & libc::O_ACCMODE)
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

/// `ioctl(fd, FIONBIO, &on)`—Turns non-blocking mode (`O_NONBLOCK`) on or
/// off in one call. The kernel changes that one status flag under its own
/// lock, so unlike `F_GETFL` then `F_SETFL` it cannot write back a stale
/// copy of a flag that another thread changes at the same moment. What
/// Rust's std does for its own fds on Linux.
///
/// Only where the kernel's `FIONBIO` sets the same `O_NONBLOCK` that
/// `fcntl` sets, for any fd: Linux and Android (`ioctl_fionbio`), Apple
/// and the BSDs (the generic `ioctl` code, before the file's own). Not on
/// illumos and Solaris, where it sets `O_NDELAY`, with which a read of an
/// empty pipe returns 0, the same as end of stream; not on Redox, Hurd and
/// Emscripten, whose pipes it is not known to reach; and not under Miri,
/// which has no `ioctl`. There [`set_nonblocking`] reads the flags and
/// writes them back with only `O_NONBLOCK` changed.
///
/// # References
/// - [Linux `ioctl`](https://man7.org/linux/man-pages/man2/ioctl.2.html)
/// - [FreeBSD `ioctl`](https://man.freebsd.org/cgi/man.cgi?query=ioctl&sektion=2)
/// - [NetBSD `ioctl`](https://man.netbsd.org/ioctl.2)
/// - [OpenBSD `ioctl`](https://man.openbsd.org/ioctl.2)
/// - [Apple `ioctl`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/ioctl.2.html)
#[cfg(all(not(miri), tokenpipe_fionbio))]
#[doc(alias = "FIONBIO", alias = "ioctl")]
#[inline]
pub(crate) fn set_nonblocking(fd: c_int, on: bool) -> SysResult<()> {
    let mut value = c_int::from(on);
    // SAFETY: FIONBIO reads one int through its third argument, and `value`
    // is a valid, initialised int for the whole call.
    ret(unsafe { libc::ioctl(fd, libc::FIONBIO, &mut value) })
}

/// `fcntl(fd, F_GETFL)`, then `fcntl(fd, F_SETFL)` with only `O_NONBLOCK`
/// changed (and no second call if it is already as asked): the portable
/// path, where `ioctl(FIONBIO)` is missing or means something else (see the
/// other `set_nonblocking`). Another thread changing a status flag between
/// the two calls has its change undone.
///
/// # References
/// - [POSIX 2024 `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [illumos `ioctl` (`FIONBIO` sets `FNDELAY`)](https://illumos.org/man/2/ioctl)
#[cfg(not(all(not(miri), tokenpipe_fionbio)))]
#[doc(alias = "O_NONBLOCK")]
#[inline]
pub(crate) fn set_nonblocking(fd: c_int, on: bool) -> SysResult<()> {
    let flags = fcntl_get(fd, libc::F_GETFL)?;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted == flags {
        return Ok(());
    }
    fcntl_set(fd, libc::F_SETFL, wanted)
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
    ret_usize(write_count(fd, buf))
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
    ret_usize(read_count(fd, buf))
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

/// Whether `revents` says the fd was not open. (A macro, not a function:
/// `revents` and `POLLNVAL` are `c_short` in most bindings, `c_int` on
/// Horizon.)
#[cfg(tokenpipe_pollnval)]
macro_rules! not_open {
    ($revents:expr) => {
        $revents & libc::POLLNVAL != 0
    };
}

/// Where the libc binding has no `POLLNVAL` (build.rs leaves
/// `tokenpipe_pollnval` unset: ESP-IDF), `poll` never says so; a closed fd
/// then shows as the read's `EBADF` instead.
#[cfg(not(tokenpipe_pollnval))]
macro_rules! not_open {
    ($revents:expr) => {{
        let _ = $revents;
        false
    }};
}

/// What [`poll_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polled {
    /// The timeout passed first.
    TimedOut,
    /// Readable, hung up or in error: a read says which.
    Ready,
    /// The fd is not open (`POLLNVAL`).
    NotOpen,
}

/// `poll([{fd, POLLIN}], timeout_ms)`—Waits until `fd` is readable (a token
/// or end of stream), or the timeout passes. A negative timeout waits
/// forever.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/poll.2.html)
/// - [Apple](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/poll.2.html)
/// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=poll&sektion=2)
#[inline]
pub(crate) fn poll_readable(fd: c_int, timeout_ms: c_int) -> SysResult<Polled> {
    let mut pfd = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    // On a timeout the kernel leaves `revents` 0.
    poll_many(&mut pfd, timeout_ms)?;
    let revents = pfd[0].revents;
    Ok(if revents == 0 {
        Polled::TimedOut
    } else if not_open!(revents) {
        Polled::NotOpen
    } else {
        Polled::Ready
    })
}

/// `clock_gettime(CLOCK_MONOTONIC)`—The time since an arbitrary fixed
/// point, never stepped by the wall clock. Async-signal-safe.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/clock_gettime.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
#[inline]
pub(crate) fn monotonic_now() -> SysResult<core::time::Duration> {
    let mut ts = super::timespec(0, 0);
    // SAFETY: `ts` is a valid, writable timespec.
    ret(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) })?;
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
    pub(crate) is_socket: bool,
}

/// `fstat(fd)`—Identifies the file `fd` refers to. Async-signal-safe.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fstat.2.html)
pub(crate) fn file_id(fd: c_int) -> SysResult<FileId> {
    let mut st = core::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`.
    ret(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it filled in `st` completely.
    let st = unsafe { st.assume_init() };
    // dev_t and ino_t are at most 64 bits on every supported Unix.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(FileId {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        // st_mode is wider than mode_t on 32-bit Android; the type bits fit.
        is_fifo: st.st_mode as libc::mode_t & libc::S_IFMT == libc::S_IFIFO,
        is_socket: st.st_mode as libc::mode_t & libc::S_IFMT == libc::S_IFSOCK,
    })
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)` then `close(fd)`—Moves an fd that landed
/// on 0, 1 or 2 (because the process started with stdio closed) to the
/// lowest free number at 3 or above, close-on-exec. An fd already at 3 or
/// above is returned as it is, with no syscall.
///
/// Why: a daemon points 0, 1 and 2 at `/dev/null` with `dup2`, which would
/// silently close a pipe end sitting there, and std's `println!` would
/// write tokens into it. On failure `fd` is closed, so nothing leaks.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[cfg(tokenpipe_fork)] // Only the daemon asks.
pub(crate) fn above_stdio(fd: c_int) -> SysResult<c_int> {
    if fd > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC takes an int and touches no memory of ours.
    let moved = ret_c_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3 as c_int) });
    close(fd);
    moved
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`—A close-on-exec copy of `fd` at the
/// lowest free number at `min` or above. A launch uses it to keep numbers
/// 3, 4, … taken while it spawns a program that gets sockets there, and to
/// move its own fds above them; never to take a number someone holds (the
/// kernel picks only a free one).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
#[cfg(tokenpipe_launch)]
pub(crate) fn dup_at_least(fd: c_int, min: c_int) -> SysResult<c_int> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int and touches no memory of ours.
    ret_c_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// `poll(fds, timeout_ms)`—Waits until one of `fds` has an event, or the
/// timeout passes. Entries with a negative fd are skipped by the kernel.
/// Returns how many entries have events (0 on timeout).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/poll.2.html)
#[inline]
pub(crate) fn poll_many(fds: &mut [libc::pollfd], timeout_ms: c_int) -> SysResult<usize> {
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfds.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    ret_c_int(n).map(|n| n as usize)
}
