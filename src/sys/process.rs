//! Processes: fork, the daemon's set-up calls, and waiting for and
//! signalling a child (by pid, or by pidfd on Linux). Only where the
//! platform can fork (build.rs: `tokenpipe_fork`).
//!
//! Everything here is a plain system call, safe between `fork` and the
//! daemon's set-up report, which is where the daemon's child calls them
//! (POSIX's async-signal-safe list omits `nanosleep`, a plain system call
//! all the same).

use core::ffi::c_int;

use super::Errno;
use super::conv::{ret, ret_c_int};
use super::{SysResult, close};

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
    let pid = ret_c_int(unsafe { libc::fork() })?;
    if pid == 0 {
        // Before anything else in the child, so a signal handler that
        // runs from here on no longer writes into the parent's interrupt.
        super::note_forked_child();
    }
    Ok(pid)
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
    let pause = super::timespec(i64::from(ms / 1000), i64::from((ms % 1000) * 1_000_000));
    // SAFETY: `pause` is a valid timespec; a null remainder is allowed.
    unsafe { libc::nanosleep(&pause, core::ptr::null_mut()) };
}

/// `pidfd_open(pid, 0)`—An fd that names the process `pid` for good: it
/// can never come to name another process, it becomes readable when the
/// process ends, and signals sent through it cannot reach a reused pid.
/// Always close-on-exec. Linux 5.3 and later; `ENOSYS` before, and `EPERM`
/// or `ENOSYS` where a seccomp filter forbids it.
///
/// Built with `--cfg tokenpipe_force_no_pidfd` (`ci/no-pidfd.sh`), it makes
/// no call and fails with `ENOSYS`, as a kernel before 5.3 does: every
/// caller then takes the branch it takes without pidfds, the one every
/// other Unix always takes, so Linux runs it too (as mio's `--cfg
/// mio_unsupported_force_poll_poll` forces its fallback backend).
///
/// # References
/// - [Linux](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
#[cfg(tokenpipe_linux_like)]
pub(crate) fn pidfd_open(pid: libc::pid_t) -> SysResult<c_int> {
    if cfg!(tokenpipe_force_no_pidfd) {
        return Err(Errno::from_raw(libc::ENOSYS));
    }
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
#[cfg(tokenpipe_linux_like)]
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
