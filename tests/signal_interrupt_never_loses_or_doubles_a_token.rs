//! `SignalInterrupt` under load: a storm of signals leaves exactly one
//! token and wakes every waiter; a trigger racing a reset is never lost
//! and never leaves the flag and the pipe disagreeing; signals landing in
//! `wait`, `wait_timeout` and `reset` change nothing; the very first use
//! may be a trigger in a signal handler; and `trigger` leaves `errno` as
//! it found it.
//!
//! The tests run in parallel in one process, so each one that handles a
//! signal has a signal of its own (SIGUSR1, or SIGRTMIN + n).
//!
//! Linux and Android only: fifteen tests in one process each need a signal
//! of its own, which only the real-time signals provide (the libc crate has
//! no SIGRTMIN for Apple and the BSDs). CI runs them natively and on the
//! ten Linux targets of ci/cross.sh.
#![cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]

mod common;

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokenpipe::SignalInterrupt;

/// The bytes waiting in the pipe behind `fd`, read without taking them.
fn bytes_in(fd: c_int) -> c_int {
    let mut n: c_int = -1;
    // SAFETY: FIONREAD writes one int to the valid pointer `&mut n`.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n
}

/// The bytes in the interrupt's pipe.
fn tokens(si: &SignalInterrupt) -> c_int {
    bytes_in(si.as_raw_fd().expect("as_raw_fd"))
}

/// The calling thread, as an integer (pthread_t is a pointer on musl, which
/// is neither Send nor Sync).
fn this_thread() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

fn signal_thread(thread: usize, sig: c_int) {
    // SAFETY: every caller passes a thread that outlives the call (it is
    // joined only after the signalling stops).
    let rc = unsafe { libc::pthread_kill(thread as libc::pthread_t, sig) };
    assert_eq!(rc, 0, "pthread_kill");
}

fn rt(n: c_int) -> c_int {
    let sig = libc::SIGRTMIN() + n;
    assert!(sig <= libc::SIGRTMAX(), "no real-time signal SIGRTMIN+{n}");
    sig
}

/// The current disposition of `sig`.
fn disposition(sig: c_int) -> libc::sigaction {
    // SAFETY: a zeroed sigaction is a valid out-buffer; a null new action
    // only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old
    }
}

/// A barrier for two or more threads that spins (yielding after a while,
/// as this machine may have fewer cores than threads): a million rounds of
/// std's Barrier, which sleeps on a futex, would take minutes.
struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
    parties: usize,
    /// Set when a party panics, so the others stop waiting for it.
    broken: AtomicBool,
}

/// Breaks `barrier` if its holder's thread unwinds: a failed assertion
/// fails the test instead of leaving the other threads spinning forever.
struct BreakOnPanic<'a>(&'a SpinBarrier);

impl Drop for BreakOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.broken.store(true, Ordering::SeqCst);
        }
    }
}

impl SpinBarrier {
    fn new(parties: usize) -> SpinBarrier {
        SpinBarrier {
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            parties,
            broken: AtomicBool::new(false),
        }
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.broken.load(Ordering::SeqCst),
                "another thread of the test failed"
            );
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

static STORM: SignalInterrupt = SignalInterrupt::new();

#[test]
fn ten_thousand_signals_from_four_threads_leave_one_token_and_wake_all_eight_waiters() {
    let sig = libc::SIGUSR1;
    // The disposition that restore puts back: a handler that does nothing,
    // so a delivery still pending when it is restored is harmless. (Not
    // SIG_IGN: install leaves a signal the process ignores alone.) It is
    // passed every delivery while the interrupt is installed.
    extern "C" fn nothing(_: c_int) {}
    common::install_handler(sig, nothing);
    let installed = STORM.install(&[sig]).expect("install");
    assert_eq!(installed.signals(), &[sig]);
    assert!(!STORM.is_triggered());
    assert_eq!(tokens(&STORM), 0);

    // Counters and threads outside a scope: a waiter that never wakes
    // fails the test after a deadline instead of hanging it.
    static IN_WAIT: AtomicUsize = AtomicUsize::new(0);
    static WOKE_OK: AtomicUsize = AtomicUsize::new(0);
    for _ in 0..8 {
        std::thread::spawn(|| {
            IN_WAIT.fetch_add(1, Ordering::SeqCst);
            if STORM.wait() == Ok(()) {
                WOKE_OK.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    while IN_WAIT.load(Ordering::SeqCst) < 8 {
        std::thread::yield_now();
    }
    // Let them reach poll.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!STORM.is_triggered(), "nothing has been sent yet");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                // SAFETY: getpid has no preconditions.
                let me = unsafe { libc::getpid() };
                for _ in 0..2_500 {
                    common::kill(me, sig);
                }
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while WOKE_OK.load(Ordering::SeqCst) < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        WOKE_OK.load(Ordering::SeqCst),
        8,
        "every waiter wakes, with Ok, within 30 s"
    );
    assert!(STORM.is_triggered());
    assert_eq!(tokens(&STORM), 1, "10,000 signals, one token");
    assert!(
        STORM.wait_timeout(Duration::ZERO).unwrap(),
        "waiting took nothing"
    );
    assert_eq!(tokens(&STORM), 1, "waiting never takes the token");

    installed.restore().expect("restore");
    // A handler that loaded the interrupt just before the restore may
    // still be running on another thread: let it finish.
    std::thread::sleep(Duration::from_millis(50));
    STORM.reset().expect("reset");
    assert!(!STORM.is_triggered());
    assert_eq!(tokens(&STORM), 0, "reset takes the one token");
}

/// One round of the lock-step race, and what the checker saw.
#[derive(Default, Debug)]
struct Tally {
    ended_triggered: usize,
    ended_clear: usize,
}

#[test]
fn a_trigger_reset_race_over_a_million_rounds_loses_no_trigger() {
    // Not static: a fresh interrupt, so nothing else touches it.
    let si = SignalInterrupt::new();
    let fd = si.as_raw_fd().unwrap();
    let rounds: usize = 1_000_000 * common::soak_scale();
    let barrier = SpinBarrier::new(2);
    let started = Instant::now();
    let tally = std::thread::scope(|s| {
        s.spawn(|| {
            let _broken = BreakOnPanic(&barrier);
            for _ in 0..rounds {
                barrier.wait(); // race
                si.trigger().unwrap();
                barrier.wait(); // checked
                barrier.wait(); // the reset has returned
                si.trigger().unwrap();
                barrier.wait(); // checked again
            }
        });
        let _broken = BreakOnPanic(&barrier);
        let mut tally = Tally::default();
        for round in 0..rounds {
            barrier.wait();
            si.reset().unwrap();
            barrier.wait();
            let n = bytes_in(fd);
            let flag = si.is_triggered();
            assert!(n <= 1, "round {round}: {n} tokens in the pipe");
            assert_eq!(
                flag,
                n == 1,
                "round {round}: flag {flag} but {n} tokens: the flag and the pipe disagree"
            );
            if flag {
                tally.ended_triggered += 1;
            } else {
                tally.ended_clear += 1;
            }
            // Half the rounds start triggered (the reset races a trigger
            // that finds the flag set), half untriggered (the trigger
            // writes while the reset looks).
            si.reset().unwrap();
            assert!(!si.is_triggered());
            assert_eq!(bytes_in(fd), 0, "round {round}: reset left a token");
            barrier.wait();
            // A trigger that started after the reset returned.
            barrier.wait();
            assert!(
                si.is_triggered(),
                "round {round}: a trigger after the reset was lost"
            );
            assert_eq!(bytes_in(fd), 1, "round {round}: its token is missing");
            if round % 2 == 1 {
                si.reset().unwrap();
            }
        }
        tally
    });
    println!("{rounds} rounds in {:?}: {tally:?}", started.elapsed());
    assert_eq!(tally.ended_triggered + tally.ended_clear, rounds);
}

#[test]
fn many_triggering_and_many_resetting_threads_never_hang_and_agree_when_quiet() {
    let si = SignalInterrupt::new();
    let fd = si.as_raw_fd().unwrap();
    let (triggerers, resetters) = (3, 2);
    let batches = 300;
    let barrier = SpinBarrier::new(triggerers + resetters + 1);
    std::thread::scope(|s| {
        for _ in 0..triggerers {
            s.spawn(|| {
                let _broken = BreakOnPanic(&barrier);
                for _ in 0..batches {
                    barrier.wait();
                    for _ in 0..200 {
                        si.trigger().unwrap();
                    }
                    barrier.wait();
                }
            });
        }
        for _ in 0..resetters {
            s.spawn(|| {
                let _broken = BreakOnPanic(&barrier);
                for _ in 0..batches {
                    barrier.wait();
                    for _ in 0..200 {
                        si.reset().unwrap();
                    }
                    barrier.wait();
                }
            });
        }
        let _broken = BreakOnPanic(&barrier);
        for batch in 0..batches {
            barrier.wait();
            barrier.wait();
            // Quiescent: every thread has finished its calls.
            let n = bytes_in(fd);
            assert!(n <= 1, "batch {batch}: {n} tokens");
            assert_eq!(si.is_triggered(), n == 1, "batch {batch}: disagree");
        }
    });
    si.reset().unwrap();
    si.trigger().unwrap();
    assert!(si.is_triggered());
    assert_eq!(bytes_in(fd), 1);
}

/// Counts the signals of the storms below (handled without SA_RESTART).
static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// Sends `sig` to `target` every `every` until `stop`, counting.
fn storm(target: usize, sig: c_int, every: Duration, stop: &AtomicBool) -> usize {
    let mut sent = 0;
    while !stop.load(Ordering::SeqCst) {
        signal_thread(target, sig);
        sent += 1;
        std::thread::sleep(every);
    }
    sent
}

#[test]
fn a_signal_landing_in_wait_keeps_it_waiting_until_a_real_trigger() {
    let sig = rt(1);
    common::install_handler(sig, count_signal);
    let si = SignalInterrupt::new();
    si.as_raw_fd().unwrap();
    for timed in [false, true] {
        let returned = AtomicBool::new(false);
        let waiter_thread = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                waiter_thread.store(this_thread(), Ordering::SeqCst);
                let got = if timed {
                    si.wait_timeout(Duration::from_secs(60))
                } else {
                    si.wait().map(|()| true)
                };
                returned.store(true, Ordering::SeqCst);
                got
            });
            while waiter_thread.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let target = waiter_thread.load(Ordering::SeqCst);
            let before = HANDLED.load(Ordering::SeqCst);
            let stop = &stop;
            let stormer = s.spawn(move || storm(target, sig, Duration::from_millis(2), stop));
            std::thread::sleep(Duration::from_millis(400));
            stop.store(true, Ordering::SeqCst);
            let sent = stormer.join().unwrap();
            assert!(sent > 10, "the storm sent only {sent} signals");
            assert!(
                HANDLED.load(Ordering::SeqCst) > before,
                "no signal was handled"
            );
            assert!(
                !returned.load(Ordering::SeqCst),
                "wait (timed: {timed}) returned on a signal"
            );
            si.trigger().unwrap();
            assert_eq!(
                waiter.join().unwrap(),
                Ok(true),
                "timed: {timed}: woke on the trigger"
            );
        });
        si.reset().unwrap();
    }
}

#[test]
fn wait_timeout_interrupted_by_signals_still_waits_its_whole_timeout() {
    let sig = rt(2);
    common::install_handler(sig, count_signal);
    let si = SignalInterrupt::new();
    si.as_raw_fd().unwrap();
    let target = this_thread();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stormer = s.spawn(|| storm(target, sig, Duration::from_millis(3), &stop));
        let start = Instant::now();
        let got = si.wait_timeout(Duration::from_millis(300));
        let took = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        let sent = stormer.join().unwrap();
        assert_eq!(got, Ok(false));
        assert!(
            took >= Duration::from_millis(300),
            "returned after {took:?}, before its 300 ms ({sent} signals)"
        );
        // The bound, generous: an interrupted wait does not start
        // over with the full timeout each time.
        assert!(
            took < Duration::from_secs(10),
            "took {took:?} ({sent} signals)"
        );
    });
}

#[test]
fn a_reset_hammered_by_signals_never_fails_and_keeps_flag_and_pipe_agreeing() {
    let sig = rt(3);
    common::install_handler(sig, count_signal);
    let si = SignalInterrupt::new();
    let fd = si.as_raw_fd().unwrap();
    let target = this_thread();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stormer = s.spawn(|| storm(target, sig, Duration::from_micros(50), &stop));
        for round in 0..50_000 {
            si.trigger().unwrap();
            assert_eq!(bytes_in(fd), 1, "round {round}");
            assert_eq!(si.reset(), Ok(()), "round {round}");
            assert!(!si.is_triggered(), "round {round}");
            assert_eq!(bytes_in(fd), 0, "round {round}");
        }
        stop.store(true, Ordering::SeqCst);
        let sent = stormer.join().unwrap();
        assert!(sent > 10, "the storm sent only {sent} signals");
    });
}

static FIRST_USE_IN_HANDLER: SignalInterrupt = SignalInterrupt::new();

extern "C" fn trigger_first_use(_: c_int) {
    let _ = FIRST_USE_IN_HANDLER.trigger();
}

#[test]
fn the_very_first_use_may_be_a_trigger_in_a_signal_handler() {
    let sig = rt(4);
    common::install_handler(sig, trigger_first_use);
    // Nothing else has touched the interrupt: the handler makes the pipe.
    // SAFETY: raise has no memory preconditions; the handler is installed.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
    assert!(FIRST_USE_IN_HANDLER.is_triggered());
    assert_eq!(
        FIRST_USE_IN_HANDLER.wait_timeout(Duration::from_secs(5)),
        Ok(true)
    );
    assert_eq!(tokens(&FIRST_USE_IN_HANDLER), 1);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
    assert_eq!(
        tokens(&FIRST_USE_IN_HANDLER),
        1,
        "a second trigger writes nothing"
    );
    FIRST_USE_IN_HANDLER.reset().unwrap();
    assert_eq!(tokens(&FIRST_USE_IN_HANDLER), 0);
}

/// An unlikely errno value, so that it cannot be left there by chance.
const SENTINEL: c_int = 0x5eed;

#[test]
fn trigger_leaves_errno_alone_on_first_use_on_a_write_and_when_already_triggered() {
    let si = SignalInterrupt::new();
    common::set_errno(SENTINEL);
    assert_eq!(si.trigger(), Ok(()), "first use: pipe2 then write");
    assert_eq!(common::get_errno(), SENTINEL, "first use");
    assert_eq!(si.trigger(), Ok(()));
    assert_eq!(common::get_errno(), SENTINEL, "already triggered");
    assert_eq!(tokens(&si), 1);
    si.reset().unwrap();
    common::set_errno(SENTINEL);
    assert_eq!(si.trigger(), Ok(()), "a write on the pipe made already");
    assert_eq!(common::get_errno(), SENTINEL, "the write path");
    assert_eq!(tokens(&si), 1);
}

/// The fd in this process that is the other end of the pipe `fd` is on.
fn other_end_of(fd: c_int) -> Option<c_int> {
    let id = common::identity(fd)?;
    (0..4096).find(|&other| other != fd && common::identity(other) == Some(id))
}

#[test]
fn a_trigger_that_cannot_write_says_why_and_leaves_errno_alone() {
    // The fork hook is registered here, before the fork: registering it
    // allocates, which a forked child of a threaded process must not.
    let _ = SignalInterrupt::new().as_raw_fd().unwrap();
    // In a forked child: one lowers its fd limit so the first trigger's
    // pipe2 fails, the other closes the write end behind the interrupt's
    // back. Only async-signal-safe calls in the child.
    let child = common::fork_child(|| {
        let si = SignalInterrupt::new();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit to the valid pointer.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return 2;
        }
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &none) } != 0 {
            return 3;
        }
        common::set_errno(SENTINEL);
        let failed = si.trigger();
        if common::get_errno() != SENTINEL {
            return 4;
        }
        if failed != Err(tokenpipe::Error::Os(tokenpipe::Errno::EMFILE)) {
            return 5;
        }
        if !si.is_triggered() {
            return 6;
        }
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return 7;
        }
        // The first use that makes the pipe writes the token still owed.
        let Ok(fd) = si.as_raw_fd() else { return 8 };
        if bytes_in_quiet(fd) != 1 {
            return 9;
        }
        if si.reset().is_err() || si.is_triggered() || bytes_in_quiet(fd) != 0 {
            return 10;
        }
        // Now close the write end behind its back: the write fails.
        let Some(write_end) = other_end_of(fd) else {
            return 11;
        };
        // SAFETY: the fd is this child's copy; nothing else uses it.
        unsafe { libc::close(write_end) };
        common::set_errno(SENTINEL);
        let failed = si.trigger();
        if common::get_errno() != SENTINEL {
            return 12;
        }
        if failed != Err(tokenpipe::Error::Os(tokenpipe::Errno::EBADF)) {
            return 13;
        }
        // No token can come for this flag, so it is clear again (as in
        // Bitcoin Core), and the next trigger tries the write again.
        if si.is_triggered() {
            return 14;
        }
        if si.trigger() != Err(tokenpipe::Error::Os(tokenpipe::Errno::EBADF))
            || common::get_errno() != SENTINEL
        {
            return 15;
        }
        std::mem::forget(si); // its write end is gone
        0
    });
    let mut child = common::ChildProcess::new(child);
    assert_eq!(
        child.wait(),
        common::Ended::Exited(0),
        "see the codes above"
    );
}

/// `bytes_in` without the assertion (for a forked child: -1 on error).
fn bytes_in_quiet(fd: c_int) -> c_int {
    let mut n: c_int = -1;
    // SAFETY: FIONREAD writes one int to the valid pointer `&mut n`.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } != 0 {
        return -1;
    }
    n
}

#[test]
fn the_handler_and_trigger_keep_errno_across_an_installed_signal() {
    static ERRNO_KEPT: SignalInterrupt = SignalInterrupt::new();
    let sig = rt(5);
    let installed = ERRNO_KEPT.install(&[sig]).unwrap();
    for _ in 0..2 {
        common::set_errno(SENTINEL);
        // SAFETY: raise has no memory preconditions; the handler is
        // installed.
        unsafe { libc::raise(sig) };
        // raise itself may set errno only on failure; it succeeded.
        assert_eq!(common::get_errno(), SENTINEL);
    }
    assert!(ERRNO_KEPT.is_triggered());
    assert_eq!(tokens(&ERRNO_KEPT), 1);
    installed.restore().unwrap();
    assert_eq!(disposition(sig).sa_sigaction, libc::SIG_DFL);
}
