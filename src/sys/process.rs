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
// On Linux `waitid` (by pidfd) replaces it, but for the unit tests.
#[cfg_attr(tokenpipe_linux_like, allow(dead_code))]
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

/// `kill(-pgid, sig)`—Sends a signal to the process group `pgid`. The
/// caller must know that `pgid` still names the group it means: one led by
/// its own child, not yet reaped (the zombie keeps the number from being
/// given to anyone else).
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/kill.html)
#[cfg(tokenpipe_launch)]
pub(crate) fn kill_process_group(pgid: libc::pid_t, sig: c_int) -> SysResult<()> {
    kill(-pgid, sig)
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
    pidfd_send_signal_flags(pidfd, sig, 0)
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` from `<linux/pidfd.h>` (Linux 6.9), which
/// the libc crate does not name.
#[cfg(all(tokenpipe_linux_like, tokenpipe_launch))]
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// `pidfd_send_signal(pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP)`—Sends a
/// signal to the process group that the pidfd's process leads: the group
/// of that very process, held by the kernel's `struct pid`, never a group
/// that a stranger formed under the same number after the leader was
/// reaped. Linux 6.9 and later; `EINVAL` before. `ESRCH` when the group
/// has no member left.
///
/// # References
/// - [Linux](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
#[cfg(all(tokenpipe_linux_like, tokenpipe_launch))]
pub(crate) fn pidfd_send_signal_group(pidfd: c_int, sig: c_int) -> SysResult<()> {
    pidfd_send_signal_flags(pidfd, sig, PIDFD_SIGNAL_PROCESS_GROUP)
}

#[cfg(tokenpipe_linux_like)]
fn pidfd_send_signal_flags(pidfd: c_int, sig: c_int, flags: libc::c_uint) -> SysResult<()> {
    // SAFETY: a null siginfo is allowed (the kernel fills in one as kill
    // would); the flags are 0 or a documented scope flag; no memory of ours
    // is touched.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            core::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    ret(rc as c_int)
}

/// How a child ended, as `waitid` reports it.
#[cfg(tokenpipe_linux_like)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitInfo {
    /// It called `exit` with this status.
    Exited(c_int),
    /// This signal ended it.
    Killed(c_int),
}

/// Which child `waitid` asks about.
#[cfg(tokenpipe_linux_like)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitTarget {
    /// The child a pidfd names (`P_PIDFD`, Linux 5.4): never another
    /// process, whatever became of its pid. `EINVAL` before 5.4.
    Pidfd(c_int),
    /// The child with this pid (`P_PID`): only while it is provably ours.
    Pid(libc::pid_t),
}

/// `waitid(P_PIDFD or P_PID, id, &info, WEXITED | flags)`—Asks whether a
/// child has ended, retrying on `EINTR`: `Ok(None)` if it runs on (with
/// `WNOHANG`), else how it ended. With `WNOWAIT` the child is left
/// unreaped, so its pid (and the process group and session it leads) stay
/// its own; without, it is reaped. `ECHILD` when it is not (or no longer)
/// this process's child to wait for: reaped by someone else, or never ours.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitid.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/waitid.2.html)
#[cfg(tokenpipe_linux_like)]
pub(crate) fn waitid(target: WaitTarget, flags: c_int) -> SysResult<Option<WaitInfo>> {
    let (idtype, id) = match target {
        WaitTarget::Pidfd(fd) => (libc::P_PIDFD, fd as libc::id_t),
        WaitTarget::Pid(pid) => (libc::P_PID, pid as libc::id_t),
    };
    loop {
        // SAFETY: siginfo_t is plain data for which all-zero is valid; the
        // kernel zeroes si_pid when WNOHANG finds nothing, which is how
        // "still running" is told apart below.
        let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer for one siginfo_t.
        match ret(unsafe { libc::waitid(idtype, id, &mut info, libc::WEXITED | flags) }) {
            Ok(()) => {
                // SAFETY: waitid filled in the SIGCHLD fields of `info` (or
                // left it zeroed under WNOHANG); both accessors read them.
                let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
                if pid == 0 {
                    return Ok(None);
                }
                return Ok(Some(if info.si_code == libc::CLD_EXITED {
                    WaitInfo::Exited(status)
                } else {
                    WaitInfo::Killed(status)
                }));
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`—Makes this process a child
/// subreaper: an orphan among its descendants (a daemon whose parent
/// exited) becomes its child instead of init's. Process-wide, inherited by
/// no child, kept across `exec`.
///
/// # References
/// - [Linux](https://man7.org/linux/man-pages/man2/PR_SET_CHILD_SUBREAPER.2const.html)
#[cfg(all(tokenpipe_linux_like, tokenpipe_launch))]
pub(crate) fn become_child_subreaper() -> SysResult<()> {
    // SAFETY: this prctl takes plain integers and touches no memory of ours.
    ret(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })
}
