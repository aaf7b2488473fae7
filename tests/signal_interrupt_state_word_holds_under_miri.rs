//! `SignalInterrupt`'s atomic protocol, in a form Miri can run (pipe2,
//! read, write, close and threads; no poll, signals, fork or ioctl): many
//! triggers leave one token, waiting on a triggered interrupt needs no
//! poll, reset takes the token, and a trigger racing a reset leaves the
//! flag and the pipe agreeing. With no FIONREAD, the pipe is looked at
//! with a non-blocking `read` of the read end (EAGAIN when empty), which
//! takes the token: each check is followed by a reset.
#![cfg(unix)]

use std::ffi::c_int;
use std::sync::Barrier;
use std::time::Duration;

use tokenpipe::SignalInterrupt;

/// What a non-blocking read of the interrupt's pipe finds: `Some(n)` bytes
/// read (taking them), or `None` for EAGAIN (empty).
fn take_bytes(si: &SignalInterrupt) -> Option<isize> {
    let fd: c_int = si.as_raw_fd().unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error().raw_os_error();
        assert_eq!(e, Some(libc::EAGAIN), "the read end is non-blocking");
        return None;
    }
    Some(n)
}

#[test]
fn triggers_from_several_threads_set_the_flag_and_write_one_token() {
    let si = SignalInterrupt::new();
    let threads = 4;
    let go = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                go.wait();
                for _ in 0..10 {
                    si.trigger().unwrap();
                }
            });
        }
    });
    assert!(si.is_triggered());
    assert_eq!(take_bytes(&si), Some(1), "one token, however many triggers");
    assert_eq!(take_bytes(&si), None);
}

#[test]
fn wait_on_a_triggered_interrupt_returns_without_polling() {
    // Under Miri a poll would be an unsupported operation: these return on
    // the flag.
    let si = SignalInterrupt::new();
    si.trigger().unwrap();
    si.wait().unwrap();
    assert_eq!(si.wait_timeout(Duration::ZERO), Ok(true));
    assert_eq!(si.wait_timeout(Duration::from_secs(3600)), Ok(true));
    // Every waiter wakes: waiting left the token.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| si.wait().unwrap());
        }
    });
    assert_eq!(take_bytes(&si), Some(1));
}

#[test]
fn reset_takes_the_token_and_clears_the_flag() {
    let si = SignalInterrupt::new();
    for _ in 0..3 {
        si.trigger().unwrap();
        si.reset().unwrap();
        assert!(!si.is_triggered());
        assert_eq!(take_bytes(&si), None, "reset took the token");
    }
    si.reset().unwrap(); // untriggered: nothing to do
    assert!(!si.is_triggered());
}

#[test]
fn a_trigger_racing_a_reset_leaves_flag_and_pipe_agreeing() {
    let si = SignalInterrupt::new();
    si.as_raw_fd().unwrap();
    let rounds = if cfg!(miri) { 300 } else { 20_000 };
    let go = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..rounds {
                go.wait();
                si.trigger().unwrap();
                go.wait();
                go.wait();
            }
        });
        for round in 0..rounds {
            // Natively, half the rounds start triggered and half not. A
            // round that starts untriggered lets the reset find the
            // trigger writing its token, and wait for it in a poll,
            // which Miri does not have: there every round starts triggered
            // (the trigger finds the flag set, or comes after the reset and
            // writes; the reset never waits).
            if cfg!(miri) || round % 2 == 0 {
                si.trigger().unwrap();
            }
            go.wait();
            si.reset().unwrap();
            go.wait();
            let flag = si.is_triggered();
            let got = take_bytes(&si);
            assert_eq!(
                got,
                flag.then_some(1),
                "round {round}: flag {flag}, pipe {got:?}"
            );
            if flag {
                // The check took the token: the reset that follows finds
                // none and no write in flight, and ends instead of waiting
                // for a token that will never come (a version that waited
                // for as long as the flag was set hung here).
                si.reset().unwrap();
            }
            assert!(!si.is_triggered());
            go.wait();
        }
    });
    // A trigger after the last reset is seen.
    si.trigger().unwrap();
    assert!(si.is_triggered());
    assert_eq!(take_bytes(&si), Some(1));
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no poll")]
fn an_untriggered_interrupt_times_out() {
    let si = SignalInterrupt::new();
    assert_eq!(si.wait_timeout(Duration::from_millis(10)), Ok(false));
    assert_eq!(si.wait_timeout(Duration::ZERO), Ok(false));
}
