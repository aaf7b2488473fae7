//! Processes: the environment, fork, the daemon's set-up calls, waiting
//! for and signalling a child (by pid, or by pidfd on Linux), and the pid
//! file's lock.
//!
//! Everything here but `getenv` and `unsetenv` is a plain system call, safe
//! between `fork` and the daemon's set-up report, which is where the
//! daemon's child calls them (POSIX's async-signal-safe list omits
//! `nanosleep` and `pread`, which are plain system calls all the same).

use core::ffi::{CStr, c_int};
use core::mem::MaybeUninit;

use super::conv::{ret, ret_c_int};
use super::{SysResult, close};
use crate::error::Errno;

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

/// `unsetenv(name)`—Removes an environment variable, so programs this one
/// starts do not inherit it.
///
/// # Safety
/// No other thread may read or change the environment meanwhile.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/unsetenv.html)
pub(crate) unsafe fn unsetenv(name: &CStr) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated; the caller keeps other threads
    // away from the environment.
    ret(unsafe { libc::unsetenv(name.as_ptr()) })
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
    ret_c_int(unsafe { libc::fork() })
}

/// `getpid()`—The calling process's id. Cannot fail.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getpid.html)
pub(crate) fn getpid() -> libc::pid_t {
    // SAFETY: getpid takes nothing and touches no memory of ours.
    unsafe { libc::getpid() }
}

/// `getppid()`—The parent's process id: after the parent has died, the
/// reaper's (init's or a subreaper's). Cannot fail.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getppid.html)
pub(crate) fn getppid() -> libc::pid_t {
    // SAFETY: getppid takes nothing and touches no memory of ours.
    unsafe { libc::getppid() }
}

/// `setsid()`—Makes the caller the leader of a new session with no
/// controlling terminal.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsid.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/setsid.2.html)
pub(crate) fn setsid() -> SysResult<()> {
    // SAFETY: setsid touches no memory of ours.
    ret_c_int(unsafe { libc::setsid() }).map(drop)
}

/// `umask(mask)`—Sets the file mode creation mask. Cannot fail.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/umask.html)
pub(crate) fn umask(mask: libc::mode_t) {
    // SAFETY: umask takes a plain integer and touches no memory of ours.
    unsafe { libc::umask(mask) };
}

/// `chdir("/")`—Moves the working directory to the root, so a daemon holds
/// no directory busy.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/chdir.html)
pub(crate) fn chdir_root() -> SysResult<()> {
    // SAFETY: the path is a NUL-terminated literal.
    ret(unsafe { libc::chdir(c"/".as_ptr()) })
}

/// `open("/dev/null", O_RDWR)` then `dup2` onto fds 0, 1 and 2—Points
/// stdin, stdout and stderr at `/dev/null`.
///
/// # References
/// - [POSIX 2024 `open`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html)
/// - [POSIX 2024 `dup2`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
pub(crate) fn stdio_to_dev_null() -> SysResult<()> {
    // SAFETY: the path is a NUL-terminated literal; O_RDWR takes no mode.
    let null = ret_c_int(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
    for target in (0..3).filter(|&t| t != null) {
        // SAFETY: dup2 touches no memory of ours; replacing 0..=2 is the
        // point of this function, and their old files are not ours to keep.
        // Every fd the crate itself holds here is at 3 or above.
        let moved = unsafe { libc::dup2(null, target) };
        if let Err(e) = ret_c_int(moved) {
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

/// `waitpid(pid, &status, flags)`—Reaps a child, retrying on `EINTR`.
/// Returns its wait status, or `None` if `WNOHANG` was given and the child
/// is still running.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/waitpid.2.html)
pub(crate) fn waitpid(pid: libc::pid_t, flags: c_int) -> SysResult<Option<c_int>> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for one int.
        match ret_c_int(unsafe { libc::waitpid(pid, &mut status, flags) }) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(status)),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `kill(pid, sig)`—Sends a signal by pid. The caller must know that `pid`
/// still names the process it means: its own child, not yet reaped.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/kill.html)
pub(crate) fn kill(pid: libc::pid_t, sig: c_int) -> SysResult<()> {
    // SAFETY: kill takes plain integers and touches no memory of ours.
    ret(unsafe { libc::kill(pid, sig) })
}

/// `nanosleep(ms)`—Sleeps for `ms` milliseconds (less if a signal
/// arrives: callers re-check what they wait for).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/nanosleep.html)
pub(crate) fn sleep_ms(ms: u32) {
    let pause = libc::timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    };
    // SAFETY: `pause` is a valid timespec; a null remainder is allowed.
    unsafe { libc::nanosleep(&pause, core::ptr::null_mut()) };
}

/// `pidfd_open(pid, 0)`—An fd that names the process `pid` for good: it
/// can never come to name another process, it becomes readable when the
/// process ends, and signals sent through it cannot reach a reused pid.
/// Always close-on-exec. Linux 5.3 and later; `ENOSYS` before, and `EPERM`
/// or `ENOSYS` where a seccomp filter forbids it.
///
/// # References
/// - [Linux](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_open(pid: libc::pid_t) -> SysResult<c_int> {
    // SAFETY: pidfd_open takes a pid and a flags word and touches no memory
    // of ours; the kernel returns an fd or -1 with errno.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    // An fd always fits in c_int; -1 is the only negative return.
    ret_c_int(fd as c_int)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`—Sends a signal through a pidfd:
/// `ESRCH` once the process has ended, never a stranger that reused its pid.
/// Linux 5.1 and later.
///
/// # References
/// - [Linux](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_send_signal(pidfd: c_int, sig: c_int) -> SysResult<()> {
    // SAFETY: a null siginfo is allowed (the kernel fills in one as kill
    // would) and flags must be 0; no memory of ours is touched.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            core::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    ret(rc as c_int)
}

/// `open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)`—The current working
/// directory, held open so a path relative to it still resolves after a
/// `chdir`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html)
pub(crate) fn open_cwd() -> SysResult<c_int> {
    // SAFETY: the path is a NUL-terminated literal; no O_CREAT, so no mode.
    ret_c_int(unsafe {
        libc::open(
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// `openat(dir, path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644)`—Opens
/// (or creates) a pid file *without* truncating it: a running daemon's
/// file must survive a second instance that fails to lock it.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html)
pub(crate) fn open_pid_file(dir: c_int, path: &CStr) -> SysResult<c_int> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `path` is NUL-terminated; O_CREAT takes the mode as a
    // variadic unsigned int, which we pass.
    ret_c_int(unsafe { libc::openat(dir, path.as_ptr(), flags, 0o644 as libc::c_uint) })
}

/// A whole-file `flock` record of type `kind` (`F_WRLCK`, ...).
fn whole_file(kind: c_int) -> libc::flock {
    // SAFETY: flock is a plain C struct of integers, for which all-zero is
    // a valid value (and the one POSIX expects for fields we do not set).
    let mut lock: libc::flock = unsafe { MaybeUninit::zeroed().assume_init() };
    lock.l_type = kind as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 0;
    lock.l_len = 0; // 0: to the end of the file, however long it grows
    lock
}

/// `fcntl(fd, F_SETLK, {F_WRLCK, whole file})`—Takes a write lock on the
/// whole file without waiting: `EAGAIN` or `EACCES` if another process
/// holds one. The lock belongs to this process; it ends when the process
/// exits or closes *any* fd of the file.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
pub(crate) fn lock_whole_file(fd: c_int) -> SysResult<()> {
    let lock = whole_file(libc::F_WRLCK as c_int);
    // SAFETY: F_SETLK reads one flock, which `lock` is, for the call.
    ret(unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) })
}

/// `fcntl(fd, F_GETLK, {F_WRLCK, whole file})`—The pid of a process whose
/// lock would block ours, or `None` if none would. The pid is 0 where the
/// holder lives in another pid namespace.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
pub(crate) fn lock_holder(fd: c_int) -> SysResult<Option<libc::pid_t>> {
    let mut lock = whole_file(libc::F_WRLCK as c_int);
    // SAFETY: F_GETLK reads and rewrites one flock, which `lock` is.
    ret(unsafe { libc::fcntl(fd, libc::F_GETLK, &mut lock) })?;
    if c_int::from(lock.l_type) == libc::F_UNLCK as c_int {
        Ok(None)
    } else {
        Ok(Some(lock.l_pid))
    }
}

/// `ftruncate(fd, 0)`—Empties a file.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/ftruncate.html)
pub(crate) fn truncate(fd: c_int) -> SysResult<()> {
    // SAFETY: ftruncate takes plain integers and touches no memory of ours.
    ret(unsafe { libc::ftruncate(fd, 0) })
}

/// `pread(fd, buf, 0)`—Reads from the start of a file without moving its
/// offset.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pread.html)
pub(crate) fn read_at_start(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    super::conv::ret_usize(n)
}

/// `fstatat(dir, path, 0)` compared with `fstat(fd)`—Whether `path` (from
/// `dir`) still names the file open as `fd`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstatat.html)
pub(crate) fn path_names_fd(dir: c_int, path: &CStr, fd: c_int) -> SysResult<bool> {
    let open = super::file_id(fd)?;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` is valid for one stat.
    ret(unsafe { libc::fstatat(dir, path.as_ptr(), st.as_mut_ptr(), 0) })?;
    // SAFETY: fstatat returned 0, so it filled in `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(st.st_dev as u64 == open.dev && st.st_ino as u64 == open.ino)
}

/// `unlinkat(dir, path, 0)`—Removes a file's name.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/unlink.html)
pub(crate) fn unlink_at(dir: c_int, path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated; no memory of ours is written.
    ret(unsafe { libc::unlinkat(dir, path.as_ptr(), 0) })
}
