//! Signals: keeping a write on a pipe with no reader from raising SIGPIPE.

#[cfg(any(target_vendor = "apple", target_os = "netbsd"))]
use {super::SysResult, super::conv::ret, core::ffi::c_int};

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
    ret(unsafe { libc::fcntl(fd, libc::F_SETNOSIGPIPE, 1 as c_int) })
}

/// The signal-mask calls behind a SIGPIPE-free write on systems without
/// `F_SETNOSIGPIPE`: block SIGPIPE in this thread, see whether one was
/// already pending, and take away the one our write raised.
#[cfg(not(any(target_vendor = "apple", target_os = "netbsd")))]
pub(crate) mod sigpipe {
    use core::mem::MaybeUninit;

    use super::super::SysResult;
    use super::super::conv::{ret, ret_pthread};

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
        ret_pthread(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) })?;
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
        ret(unsafe { libc::sigpending(set.as_mut_ptr()) })?;
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
