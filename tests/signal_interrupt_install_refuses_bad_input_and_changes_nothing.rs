//! `SignalInterrupt::install` refuses what it must (signals that cannot or
//! must not be caught, numbers that are no signal, too many, a duplicate,
//! a signal another interrupt has) with the right error naming the signal,
//! and then has changed no disposition; `restore` puts back what was there.
//!
//! The tests run in parallel in one process: each uses real-time signals
//! of its own (SIGRTMIN + n).
//!
//! Linux and Android only: fifteen tests in one process each need a signal
//! of its own, which only the real-time signals provide (the libc crate has
//! no SIGRTMIN for Apple and the BSDs). CI runs them natively and on the
//! ten Linux targets of ci/cross.sh.
#![cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]

mod common;

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokenpipe::SignalInterrupt;
use tokenpipe::interrupt::{InstallError, MAX_SIGNALS};

fn rt(n: c_int) -> c_int {
    let sig = libc::SIGRTMIN() + n;
    assert!(sig <= libc::SIGRTMAX(), "no real-time signal SIGRTMIN+{n}");
    sig
}

/// `SA_RESTORER`: glibc and musl add it to every action they give the
/// kernel, so a restored `SIG_DFL` reads back with it though the original
/// did not have it. Not part of what the disposition means.
#[cfg(any(target_os = "linux", target_os = "android"))]
const RESTORER: c_int = 0x0400_0000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RESTORER: c_int = 0;

/// What a disposition is, for comparing: handler and flags.
fn disposition(sig: c_int) -> (libc::sighandler_t, c_int) {
    // SAFETY: a zeroed sigaction is a valid out-buffer; a null new action
    // only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        (old.sa_sigaction, old.sa_flags & !RESTORER)
    }
}

/// The dispositions of `signals` (those that can be asked about). Only a
/// test's own signals: the other tests change theirs meanwhile.
fn dispositions(signals: &[c_int]) -> Vec<(c_int, (libc::sighandler_t, c_int))> {
    signals
        .iter()
        .copied()
        .filter_map(|s| {
            // SAFETY: as in `disposition`; glibc refuses its own 32 and 33.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                (libc::sigaction(s, std::ptr::null(), &mut old) == 0)
                    .then_some((s, (old.sa_sigaction, old.sa_flags & !RESTORER)))
            }
        })
        .collect()
}

static HANDLED_BEFORE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn previous_handler(_: c_int) {
    HANDLED_BEFORE.fetch_add(1, Ordering::SeqCst);
}

fn raise(sig: c_int) {
    // SAFETY: raise has no memory preconditions; every caller has a
    // handler (or SIG_IGN) in place for `sig`.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

#[test]
fn each_refused_signal_is_refused_by_name_and_nothing_is_installed() {
    static SI: SignalInterrupt = SignalInterrupt::new();
    let ok = rt(1);
    common::install_handler(ok, previous_handler);
    let refused = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    let mut watched = refused.to_vec();
    watched.push(ok);
    for sig in refused {
        let before = dispositions(&watched);
        for list in [&[sig][..], &[ok, sig][..]] {
            let err = SI.install(list).unwrap_err();
            assert_eq!(err, InstallError::Refused { signal: sig }, "{list:?}");
            let text = err.to_string();
            assert!(text.contains(&sig.to_string()), "{text:?} names {sig}");
            assert_eq!(
                dispositions(&watched),
                before,
                "{list:?} changed a disposition"
            );
        }
    }
    assert_eq!(
        disposition(ok).0,
        previous_handler as *const () as libc::sighandler_t
    );
    // And it did not take the good signal: it can be installed.
    let installed = SI.install(&[ok]).expect("install after refusals");
    installed.restore().unwrap();
}

#[test]
fn numbers_that_are_no_signal_too_many_and_duplicates_are_refused_with_nothing_installed() {
    static SI: SignalInterrupt = SignalInterrupt::new();
    let ok = rt(2);
    common::install_handler(ok, previous_handler);
    let watched: Vec<c_int> = (2..=12).map(rt).collect();
    let before = dispositions(&watched);
    for bad in [0, -1, 200, 129, c_int::MIN, c_int::MAX] {
        let err = SI.install(&[ok, bad]).unwrap_err();
        assert_eq!(err, InstallError::OutOfRange { signal: bad });
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    assert_eq!(dispositions(&watched), before);

    let nine: Vec<c_int> = (3..3 + MAX_SIGNALS as c_int + 1).map(rt).collect();
    assert_eq!(nine.len(), 9);
    let err = SI.install(&nine).unwrap_err();
    assert_eq!(err, InstallError::TooMany { count: 9 });
    assert!(err.to_string().contains('9'), "{err}");
    assert_eq!(
        dispositions(&watched),
        before,
        "nine signals: none installed"
    );

    let err = SI.install(&[ok, rt(12), ok]).unwrap_err();
    assert_eq!(err, InstallError::Taken { signal: ok });
    assert!(err.to_string().contains(&ok.to_string()), "{err}");
    assert_eq!(
        dispositions(&watched),
        before,
        "a duplicate: none installed"
    );

    // Eight is the most, and allowed.
    let eight = &nine[..MAX_SIGNALS];
    let installed = SI.install(eight).expect("eight signals");
    assert_eq!(installed.signals(), eight);
    installed.restore().unwrap();
    assert_eq!(dispositions(&watched), before, "restored");
}

#[test]
fn a_signal_another_interrupt_has_is_taken_and_the_rest_are_put_back() {
    static FIRST: SignalInterrupt = SignalInterrupt::new();
    static SECOND: SignalInterrupt = SignalInterrupt::new();
    let shared = rt(13);
    let mine = rt(14);
    common::install_handler(mine, previous_handler);
    let held = FIRST.install(&[shared]).unwrap();
    let watched = [shared, mine];
    let before = dispositions(&watched);
    // `mine` comes first, so it is installed before `shared` is found
    // taken, then put back.
    let err = SECOND.install(&[mine, shared]).unwrap_err();
    assert_eq!(err, InstallError::Taken { signal: shared });
    assert!(err.to_string().contains(&shared.to_string()), "{err}");
    assert_eq!(dispositions(&watched), before, "nothing changed");
    // The same interrupt a second time is taken too.
    assert_eq!(
        FIRST.install(&[shared]).unwrap_err(),
        InstallError::Taken { signal: shared }
    );
    // `mine` still goes to its old handler, and `shared` to FIRST only.
    let calls = HANDLED_BEFORE.load(Ordering::SeqCst);
    raise(mine);
    assert!(HANDLED_BEFORE.load(Ordering::SeqCst) > calls);
    raise(shared);
    assert!(FIRST.is_triggered());
    assert!(!SECOND.is_triggered());

    held.restore().unwrap();
    // Free again: the other interrupt may have it now.
    let again = SECOND.install(&[mine, shared]).expect("after restore");
    raise(shared);
    assert!(SECOND.is_triggered());
    again.restore().unwrap();
    assert_eq!(
        disposition(mine).0,
        previous_handler as *const () as libc::sighandler_t
    );
}

#[test]
fn restore_puts_the_previous_handler_back_which_ran_all_along_and_the_signal_can_be_installed_again()
 {
    static SI: SignalInterrupt = SignalInterrupt::new();
    let sig = rt(15);
    common::install_handler(sig, previous_handler);
    let before = disposition(sig);
    for _ in 0..3 {
        let installed = SI.install(&[sig]).unwrap();
        assert_eq!(installed.signals(), &[sig]);
        assert_ne!(disposition(sig), before, "install changed the handler");
        let calls = HANDLED_BEFORE.load(Ordering::SeqCst);
        raise(sig);
        assert!(SI.is_triggered(), "the interrupt handles it now");
        assert!(
            HANDLED_BEFORE.load(Ordering::SeqCst) > calls,
            "the previous handler is passed each delivery while installed"
        );
        installed.restore().unwrap();
        assert_eq!(disposition(sig), before, "the previous handler is back");
        SI.reset().unwrap();
        let calls = HANDLED_BEFORE.load(Ordering::SeqCst);
        raise(sig);
        assert!(
            HANDLED_BEFORE.load(Ordering::SeqCst) > calls,
            "and is called"
        );
        assert!(!SI.is_triggered(), "the interrupt no longer handles it");
    }
}

#[cfg(feature = "std")]
#[test]
fn install_errors_convert_to_io_errors_that_keep_the_message() {
    let err = InstallError::Refused {
        signal: libc::SIGKILL,
    };
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    assert!(io.to_string().contains(&libc::SIGKILL.to_string()));
}
