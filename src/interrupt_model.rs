//! `SignalInterrupt`'s state word as of commit b01f484, copied small for
//! loom (`ci/loom.sh`), to show that the model checker finds item 6 of the
//! review on that ordering, and which orderings it passes.
//!
//! Item 6: a failed write can clear a later trigger's flag. `write_token`
//! takes its writer off the count before `write_failed` clears the flag;
//! in between a reset can finish and a new trigger set the flag and write
//! its token, which the failing trigger's clear then leaves stale: a token
//! in the pipe with the flag clear. loom finds it (the failing trigger's
//! CAS and `fetch_sub`, the whole reset, the other trigger, then the
//! failing trigger's `fetch_and`).
//!
//! Taking the writer off and clearing the flag in one update is not enough
//! either: loom finds the same disagreement when the write fails while a
//! reset is taking the token. The reset waits for the writer, sees none,
//! looks one last time; the failed write has cleared the flag under it, so
//! a new trigger sets the flag after that last look and writes its token,
//! and the reset's clear takes the flag and leaves the token. What holds:
//! the failing write clears the flag only when no reset is taking the
//! token (a taking reset clears it when it is done), in the same update
//! that takes its writer off.
//!
//! A copy, not the type: `src/interrupt/` is being rewritten, and its
//! syscalls (pipe2, write, read, poll) have no loom model. This file keeps
//! the part under test, the state word and the steps that read and change
//! it, in the same order and with the same memory orderings, and stands
//! the pipe in with a loom atomic:
//!
//! - the state word: `TRIGGERED`, `READY` (set from the start: the pipe is
//!   made, in this process, so the fork generation is left out), `TAKING`
//!   and the `WRITERS` count; `BUSY` (first use) is not modelled;
//! - the pipe: a count of tokens, changed only by read-modify-writes, which
//!   are linearizable as the kernel's pipe lock makes `read` and `write`;
//!   a write can be told to fail (`EBADF`: its fd was closed behind the
//!   interrupt's back); it never finds the pipe full, which holds one
//!   token;
//! - `poll` in the reset's wait: a loom yield ([`spin_loop`]).
//!
//! The invariant, checked when every thread has returned: the flag and the
//! pipe agree (`TRIGGERED` set if and only if one token is in the pipe,
//! never a token with the flag clear), and no writer or reset is left in
//! the word.
//!
//! The state word's rewrite should be checked as itself once its syscalls
//! can be stood in for; this copy then only records what loom found.

use loom::sync::Arc;
use loom::thread;

use crate::sync::{AtomicU32, Ordering, model, spin_loop};

const TRIGGERED: u32 = 1;
const READY: u32 = 1 << 1;
const TAKING: u32 = 1 << 3;
const WRITER: u32 = 1 << 4;
const WRITERS: u32 = 0xfff << 4;

/// How a trigger whose write failed gives its flag and its writer back.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// As at b01f484: `fetch_sub(WRITER)`, then `fetch_and(!TRIGGERED)`.
    TwoSteps,
    /// One update: the writer off and the flag clear together.
    OneUpdate,
    /// One update, which leaves the flag to a reset that is taking the
    /// token (it clears the flag when it is done).
    OneUpdateUnlessTaking,
}

struct Interrupt {
    state: AtomicU32,
    /// Tokens in the pipe.
    pipe: AtomicU32,
    failure: Failure,
}

impl Interrupt {
    fn new(failure: Failure) -> Arc<Interrupt> {
        Arc::new(Interrupt {
            state: AtomicU32::new(READY),
            pipe: AtomicU32::new(0),
            failure,
        })
    }

    /// `write(2)` of one token: `false` if it fails.
    fn pipe_write(&self, fails: bool) -> bool {
        if fails {
            return false;
        }
        self.pipe.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// `read(2)` of one token: `false` for `EAGAIN`. Always a
    /// read-modify-write, so an empty pipe is seen as it is now.
    fn pipe_read(&self) -> bool {
        let before = self
            .pipe
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or_else(|n| n);
        before > 0
    }

    /// `SignalInterrupt::trigger` on a made pipe.
    fn trigger(&self, write_fails: bool) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & (TRIGGERED | READY) != READY {
                return true; // triggered already (the pipe is always made)
            }
            match self.state.compare_exchange_weak(
                s,
                (s | TRIGGERED) + WRITER,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return self.write_token(write_fails),
                Err(now) => s = now,
            }
        }
    }

    /// `write_token` and `write_failed`.
    fn write_token(&self, write_fails: bool) -> bool {
        let wrote = self.pipe_write(write_fails);
        match self.failure {
            Failure::TwoSteps => {
                self.state.fetch_sub(WRITER, Ordering::Release);
                if wrote {
                    return true;
                }
                self.state.fetch_and(!TRIGGERED, Ordering::AcqRel);
            }
            _ if wrote => {
                self.state.fetch_sub(WRITER, Ordering::Release);
                return true;
            }
            Failure::OneUpdate => {
                self.give_back(|_| TRIGGERED);
            }
            Failure::OneUpdateUnlessTaking => {
                self.give_back(|s| if s & TAKING != 0 { 0 } else { TRIGGERED });
            }
        }
        false
    }

    /// Takes this writer off and clears the bits `clear` picks, in one
    /// update.
    fn give_back(&self, clear: impl Fn(u32) -> u32) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s - WRITER) & !clear(s))
            });
    }

    /// `SignalInterrupt::reset` on a made pipe.
    fn reset(&self) {
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s & TRIGGERED == 0 {
                return;
            }
            if s & TAKING != 0 {
                spin_loop(); // another reset is taking the token
                continue;
            }
            if self
                .state
                .compare_exchange(s, s | TAKING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // Wait while a write is in flight; once none is, one last look.
            let mut last_look = false;
            while !self.pipe_read() && !last_look {
                if self.state.load(Ordering::Acquire) & WRITERS == 0 {
                    last_look = true;
                } else {
                    spin_loop(); // poll(read end, 10 ms)
                }
            }
            self.state
                .fetch_and(!(TRIGGERED | TAKING), Ordering::AcqRel);
            return;
        }
    }

    /// When every thread has returned.
    fn check(&self) {
        let s = self.state.load(Ordering::Acquire);
        let tokens = self.pipe.load(Ordering::Acquire);
        assert_eq!(
            s & (WRITERS | TAKING),
            0,
            "a writer or reset left in {s:#x}"
        );
        assert_eq!(
            tokens,
            u32::from(s & TRIGGERED != 0),
            "flag and pipe disagree: state {s:#x}, {tokens} token(s) ({:?})",
            self.failure
        );
    }
}

/// A trigger whose write fails (on a thread), a trigger from a signal
/// handler (a thread that runs it to its end) and a reset on this thread.
fn failed_write_trigger_and_reset(failure: Failure) {
    model(move || {
        let interrupt = Interrupt::new(failure);
        let failing = Arc::clone(&interrupt);
        let failing = thread::spawn(move || failing.trigger(true));
        let handler = Arc::clone(&interrupt);
        let handler = thread::spawn(move || handler.trigger(false));
        interrupt.reset();
        failing.join().unwrap();
        handler.join().unwrap();
        interrupt.check();
    });
}

#[test]
#[should_panic(expected = "flag and pipe disagree")]
fn loom_finds_item_6_a_failed_write_clearing_a_later_triggers_flag() {
    failed_write_trigger_and_reset(Failure::TwoSteps);
}

#[test]
#[should_panic(expected = "flag and pipe disagree")]
fn loom_finds_one_update_still_clears_the_flag_under_a_taking_reset() {
    failed_write_trigger_and_reset(Failure::OneUpdate);
}

#[test]
fn loom_a_failed_write_that_leaves_the_flag_to_a_taking_reset_holds() {
    failed_write_trigger_and_reset(Failure::OneUpdateUnlessTaking);
}

/// Without failures, b01f484's ordering holds: two triggers (one from a
/// handler) racing a reset.
#[test]
fn loom_triggers_racing_a_reset_keep_flag_and_pipe_agreeing() {
    model(|| {
        let interrupt = Interrupt::new(Failure::TwoSteps);
        let thread_side = Arc::clone(&interrupt);
        let thread_side = thread::spawn(move || thread_side.trigger(false));
        let handler = Arc::clone(&interrupt);
        let handler = thread::spawn(move || handler.trigger(false));
        interrupt.reset();
        assert!(thread_side.join().unwrap());
        assert!(handler.join().unwrap());
        interrupt.check();
    });
}
