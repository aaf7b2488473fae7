//! Signal dispositions and process identity for `SignalInterrupt`: install
//! a handler, read and restore what was there, pass a delivery on to the
//! handler that was there before, die by a signal's default action, and
//! tell this process from the one that made a pipe.
//!
//! The handler calls exist only where the platform has processes and
//! signals (build.rs: `tokenpipe_sigaction`). Everything a signal handler
//! reaches here (`sigaction`, `pthread_sigmask`, `raise`, `getpid`, a call
//! of the previous handler) is on POSIX's list of async-signal-safe
//! functions or is the previous handler itself.

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
/// The signature of a handler installed with `SA_SIGINFO`.
pub(crate) type InfoHandler = extern "C" fn(c_int, *mut libc::siginfo_t, *mut core::ffi::c_void);

#[cfg(all(tokenpipe_sigaction, not(target_os = "nto")))]
/// `SA_ONSTACK` where the binding has it: a handler that may run on an
/// alternate signal stack (`sigaltstack`) runs there, as Go's runtime and
/// stack-overflow handlers need; without it the kernel runs it on the
/// interrupted thread's stack, even one that has just overflowed. (Its
/// type, and `sa_flags`', differ between bindings: `as` below.)
const ONSTACK: c_int = libc::SA_ONSTACK as c_int;
/// QNX: the libc crate's binding has no `SA_ONSTACK`.
#[cfg(all(tokenpipe_sigaction, target_os = "nto"))]
const ONSTACK: c_int = 0;

#[cfg(tokenpipe_sigaction)]
/// `sigaction(sig, {handler, SA_SIGINFO | SA_ONSTACK | SA_RESTART, empty
/// mask}, &old)`—Makes `handler` run on each delivery of `sig` (with the
/// signal's information and context, to pass on to the handler it
/// replaced), restarting the system calls it interrupts, and returns the
/// disposition it replaced.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/sigaction.2.html)
pub(crate) fn install_handler(sig: c_int, handler: InfoHandler) -> SysResult<Disposition> {
    let mut action = Disposition::empty().0;
    action.sa_sigaction = handler as libc::sighandler_t;
    // Where the binding lacks SA_RESTART (QNX), an interrupted call fails
    // with EINTR instead, which every wait in this crate retries.
    #[cfg(tokenpipe_sa_restart)]
    let restart = libc::SA_RESTART as c_int;
    #[cfg(not(tokenpipe_sa_restart))]
    let restart = 0;
    action.sa_flags = (libc::SA_SIGINFO as c_int | ONSTACK | restart) as _;
    // SAFETY: `action.sa_mask` is a valid set to empty.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    let mut old = Disposition::empty();
    // SAFETY: `action` is an initialised sigaction whose handler has the
    // three-argument signature SA_SIGINFO promises; `old.0` is valid for
    // writes of one sigaction.
    ret(unsafe { libc::sigaction(sig, &action, &mut old.0) })?;
    Ok(old)
}

#[cfg(tokenpipe_sigaction)]
/// `sigaction(sig, NULL, &current)`—The disposition `sig` has now,
/// changing nothing.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
pub(crate) fn current_disposition(sig: c_int) -> SysResult<Disposition> {
    let mut current = Disposition::empty();
    // SAFETY: a null new action only reads; `current.0` is valid for
    // writes of one sigaction.
    ret(unsafe { libc::sigaction(sig, core::ptr::null(), &mut current.0) })?;
    Ok(current)
}

#[cfg(tokenpipe_sigaction)]
/// What a disposition does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `SIG_DFL`: the signal's default action.
    Default,
    /// `SIG_IGN`: nothing.
    Ignore,
    /// A handler of one argument, at this address.
    Plain(usize),
    /// A handler installed with `SA_SIGINFO`, at this address.
    Info(usize),
}

#[cfg(tokenpipe_sigaction)]
impl Disposition {
    /// What it does with a delivery.
    // sighandler_t is usize on most targets, not all.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn action(&self) -> Action {
        let handler = self.0.sa_sigaction;
        if handler == libc::SIG_DFL {
            Action::Default
        } else if handler == libc::SIG_IGN {
            Action::Ignore
        } else if self.0.sa_flags as c_int & libc::SA_SIGINFO as c_int != 0 {
            Action::Info(handler as usize)
        } else {
            Action::Plain(handler as usize)
        }
    }

    /// Whether it runs `handler` (this crate's, for instance).
    pub(crate) fn runs(&self, handler: InfoHandler) -> bool {
        self.action() == Action::Info(handler as usize)
    }

    /// Its flags, for the tests of what `install_handler` sets.
    #[cfg(all(test, not(tokenpipe_loom)))]
    pub(crate) fn flags(&self) -> c_int {
        self.0.sa_flags as c_int
    }
}

#[cfg(tokenpipe_sigaction)]
/// The handler a signal had before ours: what every delivery is passed on
/// to. Written only from a disposition the kernel reported for that
/// signal, so whatever a delivery reads from it is a live handler of the
/// form it says (or nothing). Lock-free: a handler reads it.
pub(crate) struct PreviousHandler {
    kind: core::sync::atomic::AtomicU8,
    address: core::sync::atomic::AtomicUsize,
}

#[cfg(tokenpipe_sigaction)]
impl PreviousHandler {
    const NONE: u8 = 0;
    const PLAIN: u8 = 1;
    const INFO: u8 = 2;

    /// None yet.
    pub(crate) const fn new() -> PreviousHandler {
        PreviousHandler {
            kind: core::sync::atomic::AtomicU8::new(Self::NONE),
            address: core::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Remembers what `previous` runs (nothing for `SIG_DFL` and
    /// `SIG_IGN`: they are not handlers to call). The kind is cleared
    /// first and set last, so a delivery in between calls nothing rather
    /// than a half-written handler.
    pub(crate) fn set(&self, previous: &Disposition) {
        use core::sync::atomic::Ordering;
        let (kind, address) = match previous.action() {
            Action::Plain(address) => (Self::PLAIN, address),
            Action::Info(address) => (Self::INFO, address),
            Action::Default | Action::Ignore => (Self::NONE, 0),
        };
        self.kind.store(Self::NONE, Ordering::Release);
        self.address.store(address, Ordering::Release);
        self.kind.store(kind, Ordering::Release);
    }

    /// Forgets it.
    pub(crate) fn clear(&self) {
        self.kind
            .store(Self::NONE, core::sync::atomic::Ordering::Release);
    }

    /// Calls it, as the kernel would have for this delivery: the
    /// three-argument form with the delivery's `info` and `context` for an
    /// `SA_SIGINFO` handler, the one-argument form otherwise.
    /// Async-signal-safe as far as that handler is.
    pub(crate) fn pass_on(
        &self,
        sig: c_int,
        info: *mut libc::siginfo_t,
        context: *mut core::ffi::c_void,
    ) {
        use core::sync::atomic::Ordering;
        let kind = self.kind.load(Ordering::Acquire);
        let address = self.address.load(Ordering::Acquire);
        match kind {
            Self::PLAIN => {
                // SAFETY: `set` stored this address with PLAIN only from a
                // disposition the kernel reported, whose handler takes one
                // int; the Acquire load of the kind orders the address.
                let handler: extern "C" fn(c_int) = unsafe { core::mem::transmute(address) };
                handler(sig);
            }
            Self::INFO => {
                // SAFETY: as above, from a disposition with SA_SIGINFO;
                // `info` and `context` are the ones the kernel gave the
                // running handler for this delivery.
                let handler: InfoHandler = unsafe { core::mem::transmute(address) };
                handler(sig, info, context);
            }
            _ => {}
        }
    }
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

/// This process's id, which tells a `SignalInterrupt`'s pipe made here
/// from the copy a fork's child inherited: `getpid()`, a system call (no C
/// library caches it any more), asked where a decision needs it and
/// nowhere on a trigger that finds the flag already set. Without `fork`
/// there is one process, and no call.
#[inline]
#[cfg_attr(tokenpipe_loom, allow(dead_code))] // one process in a model
pub(crate) fn process_id() -> i32 {
    #[cfg(tokenpipe_fork)]
    {
        super::getpid()
    }
    #[cfg(not(tokenpipe_fork))]
    {
        1
    }
}
