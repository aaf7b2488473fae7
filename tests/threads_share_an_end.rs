//! Threads: a blocked reader wakes for a writer thread's token, and many
//! writers sharing one end through `&` deliver every token exactly once.
#![cfg(unix)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokenpipe::{Error, TokenPipe};

#[test]
fn a_blocked_reader_wakes_when_a_writer_thread_sends() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let sent = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Give the reader time to block in read(2) first.
            std::thread::sleep(Duration::from_millis(50));
            sent.store(true, Ordering::SeqCst);
            writer.token_write(b'x').unwrap();
        });
        assert_eq!(reader.token_read(), Ok(b'x'));
        // The read returned only after the token was sent.
        assert!(sent.load(Ordering::SeqCst));
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri does not wake a blocked read when the last writer closes"
)]
fn a_blocked_reader_wakes_with_end_of_stream_when_the_last_writer_drops() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(writer);
        });
        assert_eq!(reader.token_read(), Err(Error::Eos));
    });
}

#[test]
fn eight_writer_threads_sharing_one_end_deliver_every_token_exactly_once() {
    const WRITERS: u8 = 8;
    const EACH: usize = if cfg!(miri) { 50 } else { 20_000 };
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let mut counts = [0usize; WRITERS as usize];
    std::thread::scope(|s| {
        let writer = &writer;
        for id in 0..WRITERS {
            s.spawn(move || {
                for _ in 0..EACH {
                    writer.token_write(id).unwrap();
                }
            });
        }
        for _ in 0..(WRITERS as usize * EACH) {
            let token = reader.token_read().unwrap();
            assert!(token < WRITERS, "a token no writer sent: {token}");
            counts[token as usize] += 1;
        }
    });
    drop(writer);
    assert_eq!(counts, [EACH; WRITERS as usize]);
    // Nothing extra is left behind.
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
fn readers_on_several_threads_each_take_distinct_tokens() {
    const READERS: usize = 4;
    const TOTAL: usize = if cfg!(miri) { 400 } else { 40_000 };
    // Never a data token (those are below 200).
    const STOP: u8 = 255;
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let per_reader: Vec<Vec<u8>> = std::thread::scope(|s| {
        let reader = &reader;
        let handles: Vec<_> = (0..READERS)
            .map(|_| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(t) = reader.token_read() {
                        if t == STOP {
                            break;
                        }
                        got.push(t);
                    }
                    got
                })
            })
            .collect();
        for i in 0..TOTAL {
            writer.token_write((i % 200) as u8).unwrap();
        }
        // Natively every blocked reader must wake with end of stream when
        // the writer goes. Miri wakes none of them on close (see the ignored
        // test above), so there each reader is told to stop with a token
        // instead; the distinct-tokens property is the same either way.
        if cfg!(miri) {
            for _ in 0..READERS {
                writer.token_write(STOP).unwrap();
            }
        }
        drop(writer);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut hist = [0usize; 256];
    for t in per_reader.iter().flatten() {
        hist[*t as usize] += 1;
    }
    assert_eq!(hist.iter().sum::<usize>(), TOTAL);
    for (v, &n) in hist.iter().enumerate() {
        let want = if v < 200 { TOTAL / 200 } else { 0 };
        assert_eq!(n, want, "token {v}");
    }
}
