//! Processes: the environment, fork, the daemon's set-up calls, wait.

use core::ffi::c_int;

use super::{SysResult, close, errno};
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
