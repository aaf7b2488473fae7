//! Under load and faults, no token is lost, duplicated or reordered, no
//! call fails spuriously, and nothing hangs: a storm of EINTR, a signal
//! handler as the writer, many writers and readers on one pipe, and
//! children killed mid-conversation.
//!
//! Sized to run in seconds; `ci/soak.sh` scales the load with
//! `TOKENPIPE_SOAK_SCALE` and collects the `REPORT|...` lines.
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{Ended, report, soak_scale};
use tokenpipe::{Error, TokenPipe, TokenPipeEnd};

/// Tests that fork or install handlers take turns.
static SERIAL: Mutex<()> = Mutex::new(());

static STORM_HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_storm_signal(_: c_int) {
    STORM_HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn a_million_tokens_survive_an_eintr_storm_on_both_ends() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::install_handler(libc::SIGUSR1, count_storm_signal);
    let tokens = 1_000_000 * soak_scale();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let before = STORM_HANDLED.load(Ordering::SeqCst);
    // Each worker counts itself finished, then waits for the storm to stop
    // before it returns: pthread_kill on a thread that has ended is
    // undefined (on musl pthread_t points into the freed thread: SIGSEGV).
    let finished = AtomicUsize::new(0);
    let storm_over = AtomicBool::new(false);
    let park = || {
        finished.fetch_add(1, Ordering::SeqCst);
        while !storm_over.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    };
    // As integers: pthread_t is a pointer (neither Send nor Sync) on musl.
    let tids: [OnceLock<usize>; 2] = [OnceLock::new(), OnceLock::new()];
    let (errors, mismatches, first_bad) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            // SAFETY: pthread_self has no preconditions.
            tids[0]
                .set(unsafe { libc::pthread_self() } as usize)
                .unwrap();
            let mut errors = 0usize;
            for i in 0..tokens {
                if writer.token_write(i as u8).is_err() {
                    errors += 1;
                }
            }
            park();
            errors
        });
        let r = s.spawn(|| {
            // SAFETY: pthread_self has no preconditions.
            tids[1]
                .set(unsafe { libc::pthread_self() } as usize)
                .unwrap();
            let (mut errors, mut mismatches, mut first_bad) = (0usize, 0usize, None);
            for i in 0..tokens {
                match reader.token_read() {
                    Ok(t) if t == i as u8 => {}
                    Ok(_) => {
                        mismatches += 1;
                        first_bad.get_or_insert(i);
                    }
                    Err(_) => errors += 1,
                }
            }
            park();
            (errors, mismatches, first_bad)
        });
        // The storm: both threads, as fast as pthread_kill goes, until the
        // reader is done.
        s.spawn(|| {
            let (tw, tr) = loop {
                if let (Some(a), Some(b)) = (tids[0].get(), tids[1].get()) {
                    break (*a, *b);
                }
                std::thread::yield_now();
            };
            while finished.load(Ordering::SeqCst) < 2 {
                for t in [tw, tr] {
                    // SAFETY: both threads stay alive until `storm_over` is
                    // set, which happens only after this loop.
                    unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGUSR1) };
                }
            }
            storm_over.store(true, Ordering::SeqCst);
        });
        let write_errors = w.join().unwrap();
        let (read_errors, mismatches, first_bad) = r.join().unwrap();
        (write_errors + read_errors, mismatches, first_bad)
    });
    let signals = STORM_HANDLED.load(Ordering::SeqCst) - before;
    // After the last token, nothing extra is in the pipe.
    drop(writer);
    let extra = usize::from(reader.token_read().is_ok());
    report(
        "EINTR storm (2 threads, SIGUSR1 without SA_RESTART)",
        &format!("{tokens} tokens, {signals} signals delivered"),
        errors,
        mismatches,
        extra,
        0,
    );
    assert_eq!(errors, 0, "calls failed under the storm");
    assert_eq!(
        mismatches, 0,
        "tokens lost or reordered, first at {first_bad:?}"
    );
    assert_eq!(extra, 0, "a token was duplicated");
    assert!(signals > 100, "the storm delivered only {signals} signals");
}

/// The end the SIGUSR2 handler writes to: set once, read with an atomic
/// load in the handler (async-signal-safe; no lock).
static HANDLER_END: OnceLock<TokenPipeEnd> = OnceLock::new();
static HANDLER_RAN: AtomicUsize = AtomicUsize::new(0);
static HANDLER_WRITE_FAILED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn write_token_from_handler(_: c_int) {
    HANDLER_RAN.fetch_add(1, Ordering::SeqCst);
    // Deliberately no errno save/restore: the test checks that token_write
    // itself leaves the interrupted code's errno alone.
    if let Some(end) = HANDLER_END.get()
        && end.token_write(b's').is_err()
    {
        HANDLER_WRITE_FAILED.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn every_signal_a_handler_sees_becomes_exactly_one_token_and_errno_survives() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let signals_to_send = 20_000 * soak_scale();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    // A full pipe must not block the handler: count such a write as lost.
    writer.set_nonblocking(true).unwrap();
    HANDLER_END.set(writer).map_err(|_| "set twice").unwrap();
    common::install_handler(libc::SIGUSR2, write_token_from_handler);

    const SENTINEL: c_int = 0x5eed;
    let stop = AtomicBool::new(false);
    let victim_tid: OnceLock<usize> = OnceLock::new();
    let (tokens, errno_clobbered) = std::thread::scope(|s| {
        // The interrupted code: keeps a sentinel in errno and checks it.
        let victim = s.spawn(|| {
            // SAFETY: pthread_self has no preconditions.
            victim_tid
                .set(unsafe { libc::pthread_self() } as usize)
                .unwrap();
            let mut clobbered = 0usize;
            while !stop.load(Ordering::SeqCst) {
                common::set_errno(SENTINEL);
                for _ in 0..100 {
                    std::hint::spin_loop();
                }
                if common::get_errno() != SENTINEL {
                    clobbered += 1;
                }
            }
            clobbered
        });
        let counter = s.spawn(|| {
            let mut n = 0usize;
            loop {
                match reader.token_read_timeout(Duration::from_millis(500)) {
                    Ok(b's') => n += 1,
                    Ok(other) => panic!("unexpected token {other}"),
                    Err(Error::TimedOut) if stop.load(Ordering::SeqCst) => return n,
                    Err(Error::TimedOut) => {}
                    Err(e) => panic!("reader failed: {e}"),
                }
            }
        });
        let tid = loop {
            if let Some(t) = victim_tid.get() {
                break *t;
            }
            std::thread::yield_now();
        };
        for _ in 0..signals_to_send {
            let seen = HANDLER_RAN.load(Ordering::SeqCst);
            // SAFETY: the victim runs until `stop` is set below.
            unsafe { libc::pthread_kill(tid as libc::pthread_t, libc::SIGUSR2) };
            // Pace the sender so most signals are delivered one by one
            // (a standard signal sent while one is pending is merged), but
            // never wait long for one.
            let deadline = std::time::Instant::now() + Duration::from_millis(2);
            while HANDLER_RAN.load(Ordering::SeqCst) == seen && std::time::Instant::now() < deadline
            {
                std::hint::spin_loop();
            }
        }
        // Let the last pending signal be handled before stopping.
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::SeqCst);
        let clobbered = victim.join().unwrap();
        (counter.join().unwrap(), clobbered)
    });
    let ran = HANDLER_RAN.load(Ordering::SeqCst);
    let failed = HANDLER_WRITE_FAILED.load(Ordering::SeqCst);
    report(
        "signal handler writes a token per signal",
        &format!("{signals_to_send} signals sent, {ran} delivered"),
        failed + errno_clobbered,
        ran.saturating_sub(tokens + failed),
        tokens.saturating_sub(ran),
        0,
    );
    assert_eq!(failed, 0, "the handler's write failed");
    assert_eq!(tokens, ran, "delivered signals and tokens differ");
    assert_eq!(
        errno_clobbered, 0,
        "the handler changed the interrupted errno"
    );
    assert!(ran > 0);
}

#[test]
fn eight_writers_and_four_readers_keep_exact_per_writer_counts() {
    const WRITERS: usize = 8;
    const READERS: usize = 4;
    let each = 100_000 * soak_scale();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let counts: Vec<[usize; 256]> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let reader = &reader;
                s.spawn(move || {
                    let mut seen = [0usize; 256];
                    let mut buf = [0u8; 64];
                    // Batched reads: one syscall can take tokens of many
                    // writers, which is exactly what must not mix them up.
                    loop {
                        match reader.read_tokens(&mut buf) {
                            Ok(n) => buf[..n].iter().for_each(|&t| seen[t as usize] += 1),
                            Err(Error::Eos) => return seen,
                            Err(e) => panic!("reader failed: {e}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::scope(|w| {
            for id in 0..WRITERS {
                let writer = &writer;
                w.spawn(move || {
                    for _ in 0..each {
                        writer.token_write(id as u8).unwrap();
                    }
                });
            }
        });
        drop(writer);
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut total = [0usize; 256];
    for c in &counts {
        for (t, n) in c.iter().enumerate() {
            total[t] += n;
        }
    }
    let lost: usize = (0..WRITERS).map(|id| each.saturating_sub(total[id])).sum();
    let duplicated: usize = (0..WRITERS)
        .map(|id| total[id].saturating_sub(each))
        .sum::<usize>()
        + total[WRITERS..].iter().sum::<usize>();
    report(
        "contention: 8 writers, 4 readers, one pipe",
        &format!("{} tokens", WRITERS * each),
        0,
        lost,
        duplicated,
        0,
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicated, 0);
}

/// A small xorshift PRNG: reproducible kill points without a dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The child of the conversation: answers each request with the next
/// number of its sequence until killed. Async-signal-safe only.
fn answer_requests(requests: &mut TokenPipe, replies: &mut TokenPipe) -> c_int {
    let rx = requests.take_read_end();
    requests.close();
    let tx = replies.take_write_end();
    replies.close();
    let mut i: u32 = 0;
    loop {
        if rx.token_read().is_err() || tx.token_write(i as u8).is_err() {
            return 1;
        }
        i = i.wrapping_add(1);
    }
}

#[test]
fn a_child_killed_mid_conversation_always_leaves_every_reply_sent_then_eos() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rounds = 1_000 * soak_scale();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut hangs, mut wrong, mut errors, mut not_reaped) = (0usize, 0usize, 0usize, 0usize);
    let mut exchanges = 0usize;
    for _ in 0..rounds {
        let mut requests = TokenPipe::make().unwrap();
        let mut replies = TokenPipe::make().unwrap();
        let pid = common::fork_child(|| answer_requests(&mut requests, &mut replies));
        let tx = requests.take_write_end();
        requests.close();
        let rx = replies.take_read_end();
        replies.close();

        // A random number of complete exchanges, then maybe one request
        // left unanswered, then a random pause, then the kill: so the kill
        // lands before, during or after the child's reply.
        let r = xorshift(&mut seed);
        let complete = (r % 64) as usize;
        let mut next = 0usize;
        for _ in 0..complete {
            if tx.token_write(b'?').is_err() {
                errors += 1;
                break;
            }
            match rx.token_read_timeout(Duration::from_secs(10)) {
                Ok(t) if t == next as u8 => next += 1,
                Ok(_) => wrong += 1,
                Err(Error::TimedOut) => hangs += 1,
                Err(_) => errors += 1,
            }
        }
        let pending_request = (r >> 8) & 1 == 1 && tx.token_write(b'?').is_ok();
        let pause = Duration::from_micros((r >> 16) % 200);
        std::thread::sleep(pause);
        common::kill(pid, libc::SIGKILL);

        // Every reply the child sent arrives (at most the one pending),
        // then end of stream; never a hang, never a stray token.
        let mut after_kill = 0usize;
        loop {
            match rx.token_read_timeout(Duration::from_secs(10)) {
                Ok(t) if t == next as u8 && pending_request && after_kill == 0 => {
                    next += 1;
                    after_kill += 1;
                }
                Ok(_) => {
                    wrong += 1;
                    break;
                }
                Err(Error::Eos) => break,
                Err(Error::TimedOut) => {
                    hangs += 1;
                    break;
                }
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
        exchanges += next;
        if common::wait_for(pid) != Ended::Killed(libc::SIGKILL) {
            not_reaped += 1;
        }
    }
    report(
        "dying peers: child SIGKILLed mid-conversation",
        &format!("{rounds} kills, {exchanges} exchanges"),
        errors + hangs + not_reaped,
        wrong,
        0,
        0,
    );
    assert_eq!(hangs, 0, "a read hung after the child died");
    assert_eq!(wrong, 0, "a reply was lost, garbled or invented");
    assert_eq!(errors, 0, "a call failed");
    assert_eq!(not_reaped, 0, "a child did not end by SIGKILL");
}
