//! `token_read_timeout`: it returns a token as soon as one arrives, end of
//! stream as soon as every writer is gone, and otherwise `TimedOut` after
//! the full timeout, even while a storm of signals interrupts it, and no
//! later than the timeout plus slack (so an interrupted wait does not start
//! over).
//!
//! This binary installs a SIGUSR1 handler without SA_RESTART, so every
//! signal really interrupts poll(2) with EINTR.
#![cfg(unix)]

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokenpipe::{Errno, Error, TokenPipe, TokenPipeEnd};

static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn install_handler_without_restart() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler
        // is an extern "C" fn that only touches an atomic (async-signal-safe),
        // and sa_flags leaves out SA_RESTART on purpose.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
    });
}

/// Runs `wait` on this thread while another thread sends it SIGUSR1 every
/// `every`; returns what `wait` returned, how long it took, and how many
/// signals the storm sent.
fn under_signal_storm<T>(every: Duration, wait: impl FnOnce() -> T) -> (T, Duration, usize) {
    install_handler_without_restart();
    // SAFETY: pthread_self has no preconditions.
    // As an integer: pthread_t is an integer on glibc but a pointer (not
    // Send/Sync) on musl.
    let target = unsafe { libc::pthread_self() } as usize;
    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Bounded, so a wait that restarted on every EINTR shows up as
            // a failed assertion, not a hung test.
            let storm_ends = Instant::now() + Duration::from_secs(3);
            while !stop.load(Ordering::SeqCst) && Instant::now() < storm_ends {
                // SAFETY: `target` is alive: it is the thread running this
                // scope, which cannot end before this thread is joined.
                unsafe { libc::pthread_kill(target as libc::pthread_t, libc::SIGUSR1) };
                sent.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(every);
            }
        });
        let start = Instant::now();
        let out = wait();
        let took = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        (out, took, sent.load(Ordering::SeqCst))
    })
}

#[test]
fn an_empty_pipe_times_out_after_the_full_timeout() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    let start = Instant::now();
    assert_eq!(
        reader.token_read_timeout(Duration::from_millis(100)),
        Err(Error::TimedOut)
    );
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_zero_timeout_checks_once_without_blocking() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    assert_eq!(
        reader.token_read_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    );
    writer.token_write(4).unwrap();
    assert_eq!(reader.token_read_timeout(Duration::ZERO), Ok(4));
    assert_eq!(
        reader.token_read_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    );
}

#[test]
fn a_sub_millisecond_timeout_still_waits_at_least_that_long() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    let start = Instant::now();
    assert_eq!(
        reader.token_read_timeout(Duration::from_micros(300)),
        Err(Error::TimedOut)
    );
    assert!(start.elapsed() >= Duration::from_micros(300));
}

#[test]
fn a_token_that_arrives_during_the_wait_is_returned_at_once() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            writer.token_write(9).unwrap();
        });
        let start = Instant::now();
        assert_eq!(reader.token_read_timeout(Duration::from_secs(60)), Ok(9));
        // Returned on the token, not at the 60 s timeout.
        assert!(start.elapsed() < Duration::from_secs(30));
    });
}

#[test]
fn every_writer_gone_is_end_of_stream_not_a_timeout() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.token_write(1).unwrap();
    drop(writer);
    assert_eq!(reader.token_read_timeout(Duration::from_secs(60)), Ok(1));
    assert_eq!(
        reader.token_read_timeout(Duration::from_secs(60)),
        Err(Error::Eos)
    );
}

#[test]
fn a_closed_end_is_closed_without_waiting() {
    let start = Instant::now();
    assert_eq!(
        TokenPipeEnd::new().token_read_timeout(Duration::from_secs(60)),
        Err(Error::Closed)
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_write_end_whose_reader_is_gone_fails_with_ebadf_rather_than_waiting() {
    // poll reports POLLERR on a write end with no reader; the read that
    // follows says what is wrong.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(reader);
    assert_eq!(
        writer.token_read_timeout(Duration::from_secs(60)),
        Err(Error::Os(Errno::EBADF))
    );
}

#[test]
fn a_storm_of_eintr_does_not_shorten_the_wait() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    let timeout = Duration::from_millis(300);
    let (got, took, sent) = under_signal_storm(Duration::from_millis(1), || {
        reader.token_read_timeout(timeout)
    });
    assert_eq!(got, Err(Error::TimedOut));
    assert!(took >= timeout, "returned early after {took:?}");
    assert!(sent >= 50, "the storm sent only {sent} signals");
}

#[test]
fn a_storm_of_eintr_does_not_restart_the_wait() {
    // If each EINTR restarted the full timeout, a signal every millisecond
    // would keep a 300 ms wait going forever. It must end near 300 ms; the
    // bound is generous for a loaded 2-core machine.
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    let timeout = Duration::from_millis(300);
    let (got, took, _) = under_signal_storm(Duration::from_millis(1), || {
        reader.token_read_timeout(timeout)
    });
    assert_eq!(got, Err(Error::TimedOut));
    assert!(
        took < timeout * 4,
        "waited {took:?} for a {timeout:?} timeout"
    );
}

#[test]
fn a_token_sent_during_a_storm_is_delivered_once() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (got, _, _) = under_signal_storm(Duration::from_millis(1), || {
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                writer.token_write(42).unwrap();
            });
            reader.token_read_timeout(Duration::from_secs(30))
        })
    });
    assert_eq!(got, Ok(42));
    assert_eq!(
        reader.token_read_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    );
}

#[test]
fn blocking_reads_and_writes_survive_a_storm_of_eintr() {
    // token_read and token_write retry on EINTR: nothing lost or repeated.
    const N: usize = 20_000;
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (got, _, sent) = under_signal_storm(Duration::from_micros(200), || {
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..N {
                    writer.token_write(i as u8).unwrap();
                }
            });
            (0..N)
                .map(|_| reader.token_read().unwrap())
                .collect::<Vec<u8>>()
        })
    });
    assert!(sent > 0);
    let want: Vec<u8> = (0..N).map(|i| i as u8).collect();
    assert_eq!(got, want);
}
