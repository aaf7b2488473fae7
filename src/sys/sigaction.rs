//! Signal dispositions and fork detection for `SignalInterrupt`: install a
//! handler, restore what was there, die by a signal's default action, and
//! learn that this process is a fork's child.
//!
//! The handler calls exist only where the platform has processes and
//! signals (build.rs: `tokenpipe_sigaction`); the fork generation exists
//! everywhere (without `fork` it stays 0). Everything a signal handler reaches here
//! (`sigaction`, `pthread_sigmask`, `raise`) is on POSIX's list of
//! async-signal-safe functions; `pthread_atfork` is not, and is called only
//! from functions a handler never calls.

#[cfg(tokenpipe_sigaction)]
use {
    super::SysResult,
    super::conv::ret,
    core::{ffi::c_int, mem::MaybeUninit},
};

#[cfg(tokenpipe_sigaction)]
/// A signal's disposition as `sigaction` reports it: what to restore.
#[derive(Clone, Copy)]
pub(crate) struct Disposition(libc::sigaction);

#[cfg(tokenpipe_sigaction)]
impl Disposition {
    /// A placeholder for arrays that are filled in before being read.
    pub(crate) fn empty() -> Disposition {
        // SAFETY: sigaction is plain integers, a signal set and (on some
        // targets) an optional function pointer; all-zero is a valid value
        // of each (SIG_DFL, no flags, an empty set, None).
        Disposition(unsafe { MaybeUninit::zeroed().assume_init() })
    }
}

#[cfg(tokenpipe_sigaction)]
/// `sigaction(sig, {handler, SA_RESTART, empty mask}, &old)`—Makes
/// `handler` run on each delivery of `sig`, restarting the system calls it
/// interrupts, and returns the disposition it replaced.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/sigaction.2.html)
pub(crate) fn install_handler(sig: c_int, handler: extern "C" fn(c_int)) -> SysResult<Disposition> {
    let mut action = Disposition::empty().0;
    action.sa_sigaction = handler as libc::sighandler_t;
    // Where the binding lacks SA_RESTART (QNX), an interrupted call fails
    // with EINTR instead, which every wait in this crate retries.
    #[cfg(tokenpipe_sa_restart)]
    {
        action.sa_flags = libc::SA_RESTART;
    }
    // SAFETY: `action.sa_mask` is a valid set to empty.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    let mut old = Disposition::empty();
    // SAFETY: `action` is an initialised sigaction whose handler is a
    // plain `extern "C" fn(c_int)` (no SA_SIGINFO); `old.0` is valid for
    // writes of one sigaction.
    ret(unsafe { libc::sigaction(sig, &action, &mut old.0) })?;
    Ok(old)
}

#[cfg(tokenpipe_sigaction)]
/// `sigaction(sig, old, NULL)`—Puts back a disposition that
/// [`install_handler`] returned.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
pub(crate) fn restore(sig: c_int, old: &Disposition) -> SysResult<()> {
    // SAFETY: `old` is a disposition the kernel gave us for this signal.
    ret(unsafe { libc::sigaction(sig, &old.0, core::ptr::null_mut()) })
}

#[cfg(tokenpipe_sigaction)]
/// `sigaction(sig, SIG_DFL)`, `pthread_sigmask(SIG_UNBLOCK, {sig})`, then
/// `raise(sig)`—Ends the process by `sig`'s default action, from inside
/// that signal's handler (where `sig` is blocked). Returns only where the
/// default action does not end the process (`SIGCHLD`, `SIGWINCH`,
/// `SIGURG` are ignored by default; `SIGCONT` continues) or a call failed.
/// Async-signal-safe: all three are on POSIX's list.
///
/// # References
/// - [POSIX `sigaction`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
/// - [POSIX `pthread_sigmask`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_sigmask.html)
/// - [POSIX `raise`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/raise.html)
pub(crate) fn die_by_default_action(sig: c_int) {
    let mut action = Disposition::empty().0;
    action.sa_sigaction = libc::SIG_DFL;
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `action` is an initialised SIG_DFL sigaction; `set` is
    // initialised by sigemptyset before sigaddset and pthread_sigmask read
    // it; a null old-mask pointer is allowed; raise takes a plain integer.
    unsafe {
        libc::sigaction(sig, &action, core::ptr::null_mut());
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), core::ptr::null_mut());
        libc::raise(sig);
    }
}

/// What [`note_forked_child`] adds to the fork generation: its low sixteen
/// bits stay zero, free for the flags and counts a caller keeps beside it
/// in one word (the generation then tells 65,536 generations apart).
pub(crate) const FORK_GENERATION_STEP: u32 = 1 << 16;

/// How many times this process has been a fork's child since it started,
/// times [`FORK_GENERATION_STEP`]: bumped in the child by
/// [`fork`](super::fork) and by the hook [`watch_forks`] registers. An
/// interrupt made under one value is stale under another: its pipe is
/// shared with the parent.
static FORK_GENERATION: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The current fork generation (see [`FORK_GENERATION`]).
#[inline(always)]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(core::sync::atomic::Ordering::Relaxed)
}

/// Marks this process as a new fork child. Async-signal-safe (one atomic
/// add), so it may run first thing after `fork` returns 0.
#[cfg(tokenpipe_fork)]
#[inline]
pub(crate) fn note_forked_child() {
    FORK_GENERATION.fetch_add(FORK_GENERATION_STEP, core::sync::atomic::Ordering::Relaxed);
}

#[cfg(tokenpipe_sigaction)]
extern "C" fn forked_child_hook() {
    note_forked_child();
}

#[cfg(tokenpipe_sigaction)]
/// `pthread_atfork(NULL, NULL, hook)`, once per process—Makes every
/// `fork()` through the C library mark its child (see
/// [`note_forked_child`]). Not async-signal-safe (the C library allocates
/// and locks), so only functions a handler never calls call this. Miri has
/// no `pthread_atfork`, and nothing to fork; there it does nothing.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_atfork.html)
/// - [Linux](https://man7.org/linux/man-pages/man3/pthread_atfork.3.html)
pub(crate) fn watch_forks() {
    use core::sync::atomic::{AtomicBool, Ordering};
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if REGISTERED.load(Ordering::Acquire) || REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    #[cfg(not(miri))]
    // SAFETY: the hook is a plain `extern "C" fn()` that lives as long as
    // the program; null prepare and parent hooks are allowed. A failure
    // (ENOMEM) leaves only the crate's own forks marked, which the docs of
    // `SignalInterrupt` say.
    unsafe {
        libc::pthread_atfork(None, None, Some(forked_child_hook));
    }
}
