//! `token_write_nosignal` never raises SIGPIPE: a process at the default
//! disposition survives a write with no reader and gets `BrokenPipe`; the
//! caller's signal mask and any SIGPIPE it already had pending are left as
//! they were.
//!
//! Each test runs in a forked child, so it can change its signal state
//! freely. The tests take turns, because a forked child inherits the other
//! tests' fds.
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::sync::Mutex;

use common::{Ended, fork_child, wait_for};
use tokenpipe::{Error, TokenPipe, TokenPipeEnd};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` in a forked child and returns how the child ended. `body`
/// returns 0 on success or a code naming the check that failed.
fn in_child(body: impl FnOnce() -> c_int) -> Ended {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    wait_for(fork_child(body))
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset sets one bit.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

fn sigpipe_pending() -> bool {
    // SAFETY: `set` is a valid out-pointer; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

fn sigpipe_blocked() -> bool {
    // SAFETY: a null new set only reads the current mask into `old`.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        libc::sigismember(&old, libc::SIGPIPE) == 1
    }
}

fn set_default_disposition() {
    // SAFETY: SIG_DFL is a valid disposition; signal is async-signal-safe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// A write end whose only reader is already closed, made before the fork
/// so that no copy of the read end survives in the parent.
fn orphaned_writer() -> TokenPipeEnd {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(reader);
    writer
}

/// The same from a pipe the crate did not make: raw `pipe(2)`, the write
/// end adopted with `from_raw_fd`. On Apple and NetBSD it has no
/// F_SETNOSIGPIPE, as a pipe made by the crate has.
fn orphaned_adopted_writer() -> TokenPipeEnd {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe just returned both fds; nothing else owns them.
    let (reader, writer) = unsafe {
        (
            TokenPipeEnd::from_raw_fd(fds[0]),
            TokenPipeEnd::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    writer
}

/// Whether a crate-made pipe is SIGPIPE-free at creation (F_SETNOSIGPIPE).
const NOSIGPIPE_AT_CREATION: bool = cfg!(any(target_vendor = "apple", target_os = "netbsd"));

/// How a forked child at SIG_DFL ends after one plain `token_write` on
/// `writer`: exits 0 if it got BrokenPipe, killed if SIGPIPE killed it.
fn plain_write_at_default_disposition(writer: &TokenPipeEnd) -> Ended {
    in_child(|| {
        set_default_disposition();
        match writer.token_write(1) {
            Err(Error::BrokenPipe) => 0,
            _ => 13,
        }
    })
}

#[test]
fn a_process_at_the_default_disposition_survives_and_gets_broken_pipe() {
    let writer = orphaned_writer();
    let ended = in_child(|| {
        set_default_disposition();
        match writer.token_write_nosignal(1) {
            Err(Error::BrokenPipe) => {}
            _ => return 10,
        }
        // Nothing was left pending to kill us later.
        if sigpipe_pending() {
            return 11;
        }
        0
    });
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn the_control_plain_token_write_is_killed_by_sigpipe() {
    // Without this, the tests here could pass because the child ignored
    // SIGPIPE after all. A pipe the crate did not make: on Apple and NetBSD
    // one it made never raises SIGPIPE (the next test).
    let writer = orphaned_adopted_writer();
    assert_eq!(
        plain_write_at_default_disposition(&writer),
        Ended::Killed(libc::SIGPIPE)
    );
}

#[test]
fn pipes_the_crate_makes_or_takes_raise_sigpipe_only_where_f_setnosigpipe_is_missing() {
    // Apple and NetBSD: F_SETNOSIGPIPE is set once at creation, so even a
    // plain token_write gets BrokenPipe at SIG_DFL. Elsewhere the original's
    // SIGPIPE stays.
    let expected = if NOSIGPIPE_AT_CREATION {
        Ended::Exited(0)
    } else {
        Ended::Killed(libc::SIGPIPE)
    };
    let made = orphaned_writer();
    assert_eq!(plain_write_at_default_disposition(&made), expected, "make");
    let (reader, with_fcntl) = TokenPipe::make_with_fcntl().unwrap().split();
    drop(reader);
    assert_eq!(
        plain_write_at_default_disposition(&with_fcntl),
        expected,
        "make_with_fcntl"
    );
    let raw = orphaned_adopted_writer().into_raw_fd();
    let taken = {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: this binary's tests touch the environment only under
        // SERIAL, and `raw` came from into_raw_fd, so nothing else owns it.
        unsafe {
            std::env::set_var("TOKENPIPE_TEST_SIGPIPE_FD", raw.to_string());
            TokenPipeEnd::from_env(c"TOKENPIPE_TEST_SIGPIPE_FD").unwrap()
        }
    };
    assert_eq!(
        plain_write_at_default_disposition(&taken),
        expected,
        "from_env"
    );
}

#[test]
fn a_nosignal_write_on_an_adopted_pipe_raises_no_sigpipe_either() {
    // Apple and NetBSD: an end the crate did not make pays the fcntl on
    // every call; elsewhere the mask dance is the same for every end.
    let writer = orphaned_adopted_writer();
    let ended = in_child(|| {
        set_default_disposition();
        for _ in 0..3 {
            if writer.token_write_nosignal(1) != Err(Error::BrokenPipe) {
                return 15;
            }
        }
        0
    });
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn an_unblocked_sigpipe_stays_unblocked_after_the_call() {
    let writer = orphaned_writer();
    let ended = in_child(|| {
        set_default_disposition();
        if sigpipe_blocked() {
            return 20;
        }
        let _ = writer.token_write_nosignal(1);
        if sigpipe_blocked() {
            return 21;
        }
        0
    });
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn a_blocked_sigpipe_pending_before_the_call_is_still_pending_after_it() {
    let writer = orphaned_writer();
    let ended = in_child(|| {
        set_default_disposition();
        let set = sigpipe_set();
        // SAFETY: `set` is initialised; raise targets the calling thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::raise(libc::SIGPIPE);
        }
        if !sigpipe_pending() {
            return 30;
        }
        match writer.token_write_nosignal(1) {
            Err(Error::BrokenPipe) => {}
            _ => return 31,
        }
        if !sigpipe_pending() {
            return 32; // the caller's own SIGPIPE was swallowed
        }
        if !sigpipe_blocked() {
            return 33; // the caller's mask was not restored
        }
        0
    });
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn a_caller_that_blocks_sigpipe_is_left_with_nothing_pending() {
    let writer = orphaned_writer();
    let ended = in_child(|| {
        set_default_disposition();
        let set = sigpipe_set();
        // SAFETY: `set` is initialised.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        match writer.token_write_nosignal(1) {
            Err(Error::BrokenPipe) => {}
            _ => return 40,
        }
        if sigpipe_pending() {
            return 41;
        }
        if !sigpipe_blocked() {
            return 42;
        }
        0
    });
    assert_eq!(ended, Ended::Exited(0));
}

#[test]
fn a_successful_nosignal_write_delivers_the_token() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    for t in 0..=u8::MAX {
        writer.token_write_nosignal(t).unwrap();
        assert_eq!(reader.token_read(), Ok(t));
    }
    assert_eq!(
        TokenPipeEnd::new().token_write_nosignal(0),
        Err(Error::Closed)
    );
}

#[cfg(not(any(target_os = "openbsd", target_os = "illumos", target_os = "solaris")))]
extern "C" fn ignore_signal(_: c_int) {}

// Not on OpenBSD, illumos and Solaris: without a sigtimedwait binding the
// crate takes the SIGPIPE with sigpending + sigwait there, which does wait
// in exactly this race (see src/sys/signal.rs).
#[cfg(not(any(target_os = "openbsd", target_os = "illumos", target_os = "solaris")))]
#[test]
fn a_sigpipe_discarded_by_another_thread_cannot_make_the_write_wait() {
    // Setting SIGPIPE to SIG_IGN discards a pending SIGPIPE in every
    // thread, even a blocked one. If that lands between "one is pending"
    // and taking it away, a sigwait would wait for the next SIGPIPE
    // forever; the zero-timeout sigtimedwait just finds none. Another
    // thread flips the disposition between SIG_IGN and a handler (never
    // SIG_DFL, which would end the test binary) while this one writes to
    // a pipe with no reader. The writes run on a thread of their own so a
    // hang shows as a failure instead of a test that never ends.
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    const WRITES: usize = 10_000;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let writer = orphaned_writer();
    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                common::set_disposition(libc::SIGPIPE, libc::SIG_IGN);
                common::set_disposition(
                    libc::SIGPIPE,
                    ignore_signal as *const () as libc::sighandler_t,
                );
            }
            common::set_disposition(libc::SIGPIPE, libc::SIG_IGN);
        });
        std::thread::Builder::new()
            .spawn(move || {
                let broken = (0..WRITES)
                    .filter(|_| writer.token_write_nosignal(1) == Err(Error::BrokenPipe))
                    .count();
                let _ = done_tx.send(broken);
            })
            .unwrap();
        // A generous bound on a loop that takes well under a second: this
        // tells "returned" from "waits forever", it times nothing.
        let got = done_rx.recv_timeout(Duration::from_secs(120));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            got,
            Ok(WRITES),
            "token_write_nosignal hung waiting for a SIGPIPE that was discarded"
        );
    });
}
