//! Signals: keeping a write on a pipe with no reader from raising SIGPIPE.

#[cfg(tokenpipe_nosigpipe)]
use {super::SysResult, super::conv::ret, core::ffi::c_int};

/// `fcntl(fd, F_SETNOSIGPIPE, 1)`—Makes writes on `fd` fail with `EPIPE`
/// instead of raising `SIGPIPE` (Apple and NetBSD only).
///
/// # References
/// - [Apple `fcntl`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
/// - [NetBSD `fcntl`](https://man.netbsd.org/fcntl.2)
#[cfg(tokenpipe_nosigpipe)]
#[inline]
pub(crate) fn fcntl_set_nosigpipe(fd: c_int) -> SysResult<()> {
    // SAFETY: F_SETNOSIGPIPE takes an int third argument and touches no
    // memory of ours.
    ret(unsafe { libc::fcntl(fd, libc::F_SETNOSIGPIPE, 1 as c_int) })
}

/// The signal-mask calls behind a SIGPIPE-free write on systems without
/// `F_SETNOSIGPIPE`: block SIGPIPE in this thread, see whether one was
/// already pending, and take away the one our write raised, without ever
/// waiting for one.
#[cfg(tokenpipe_sigmask)]
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

    /// `sigtimedwait({SIGPIPE}, NULL, {0, 0})`—Takes away one pending
    /// SIGPIPE, if there is one (it fails with `EAGAIN` if not, which is
    /// ignored). The zero timeout means it never waits: a SIGPIPE that
    /// another thread discarded in the meantime (setting `SIG_IGN` does
    /// that) leaves nothing to wait for. One syscall, and a plain wrapper
    /// of it in each libc, like `sigpending`; neither this nor `sigwait` is
    /// on POSIX's list of async-signal-safe functions.
    ///
    /// Everywhere the libc crate binds `sigtimedwait`: Linux (glibc, musl),
    /// Android, FreeBSD, DragonFly, Redox, Hurd, Emscripten.
    ///
    /// # References
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigtimedwait.html)
    /// - [Linux](https://man7.org/linux/man-pages/man2/sigtimedwait.2.html)
    /// - [FreeBSD](https://man.freebsd.org/cgi/man.cgi?query=sigtimedwait&sektion=2)
    #[cfg(tokenpipe_sigtimedwait)]
    #[doc(alias = "sigtimedwait")]
    pub(crate) fn take_pending() {
        let set = sigpipe_set();
        let zero = super::super::timespec(0, 0);
        // SAFETY: `set` and `zero` are initialised and outlive the call; a
        // null siginfo pointer asks for no details.
        unsafe { libc::sigtimedwait(&set, core::ptr::null_mut(), &zero) };
    }

    /// `sigpending`, then `sigwait({SIGPIPE})` if one is pending—Takes away
    /// one pending SIGPIPE, if there is one. For OpenBSD, which has no
    /// `sigtimedwait`, and illumos and Solaris, whose libc binding lacks it.
    ///
    /// sigwait does not return until a SIGPIPE is pending. It is reached
    /// only with SIGPIPE blocked in this thread and pending, so it returns
    /// at once: only this thread can take a signal raised at it, and a
    /// blocked one stays pending. The one way to lose it in between is
    /// another thread setting SIGPIPE to `SIG_IGN` at that moment, which
    /// discards it; then sigwait waits for the next SIGPIPE.
    ///
    /// # References
    /// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigwait.html)
    /// - [OpenBSD](https://man.openbsd.org/sigwait.3)
    /// - [illumos](https://illumos.org/man/2/sigwait)
    #[cfg(not(tokenpipe_sigtimedwait))]
    #[doc(alias = "sigwait")]
    pub(crate) fn take_pending() {
        if is_pending() != Ok(true) {
            return;
        }
        let set = sigpipe_set();
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
        unsafe { libc::sigwait(&set, &mut sig) };
    }
}
