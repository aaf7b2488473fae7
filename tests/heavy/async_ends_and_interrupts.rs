//! `AsyncTokenPipeEnd` moves tokens as the blocking end does (round trip,
//! `Eos`, `BrokenPipe`, four writers through a full pipe losing and
//! doubling nothing), goes back to a blocking end, and refuses a closed
//! end or a missing runtime handing the end back. `triggered()` wakes
//! every waiting task on one trigger, waits again after a reset, wakes on
//! a real signal, and says `NoRuntime` outside a runtime.
#![cfg(feature = "tokio")]

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::bounded;
use tokenpipe::{Error, SignalInterrupt, TokenPipe, TokenPipeEnd};

/// One poll of `fut` with a waker that does nothing: outside a runtime,
/// or to see whether something is ready at once.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    pin!(fut).poll(&mut cx)
}

#[test]
fn into_async_outside_a_runtime_hands_the_end_back_open_and_blocking() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let refused = reader
        .into_async()
        .expect_err("no runtime to register with");
    assert_eq!(refused.error, Error::NoRuntime);
    let reader = refused.end;
    assert!(reader.is_open(), "the end came back closed");
    assert_eq!(
        reader.is_nonblocking(),
        Ok(false),
        "the end came back non-blocking"
    );
    writer.token_write(42).unwrap();
    assert_eq!(reader.token_read(), Ok(42));
}

#[tokio::test]
async fn into_async_of_a_closed_end_is_closed_and_hands_it_back() {
    let refused = TokenPipeEnd::new()
        .into_async()
        .expect_err("a closed end cannot be registered");
    assert_eq!(refused.error, Error::Closed);
    assert!(!refused.end.is_open());

    let (mut reader, _writer) = TokenPipe::make().unwrap().split();
    reader.close();
    let refused = reader.into_async().expect_err("a closed end");
    assert_eq!(refused.error, Error::Closed);
}

#[test]
fn triggered_outside_a_runtime_is_no_runtime_unless_already_triggered() {
    let stop = SignalInterrupt::new();
    match poll_once(stop.triggered()) {
        Poll::Ready(Err(Error::NoRuntime)) => {}
        other => panic!("expected NoRuntime at the first poll, got {other:?}"),
    }
    stop.trigger().unwrap();
    assert!(
        matches!(poll_once(stop.triggered()), Poll::Ready(Ok(()))),
        "an interrupt already triggered is Ok at once, runtime or not"
    );
}

#[tokio::test]
async fn every_token_value_round_trips_one_by_one_and_in_batches() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (reader, writer) = (reader.into_async().unwrap(), writer.into_async().unwrap());
    assert!(reader.get_ref().is_open());
    assert_eq!(reader.get_ref().is_nonblocking(), Ok(true));
    for token in 0..=255u8 {
        writer.token_write(token).await.unwrap();
        assert_eq!(reader.token_read().await, Ok(token));
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(writer.write_tokens(&all).await, Ok(256));
    let mut got = Vec::new();
    let mut buf = [0u8; 100];
    while got.len() < all.len() {
        let n = bounded("read_tokens", reader.read_tokens(&mut buf))
            .await
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, all);
}

#[tokio::test]
async fn a_waiting_reader_gets_eos_when_the_writer_is_dropped() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (reader, writer) = (reader.into_async().unwrap(), writer.into_async().unwrap());
    writer.token_write(9).await.unwrap();
    let waiting = tokio::spawn(async move {
        let first = reader.token_read().await;
        (first, reader.token_read().await)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "the reader did not wait for more");
    drop(writer);
    let (first, second) = bounded("the reader after the writer went", waiting)
        .await
        .unwrap();
    assert_eq!(first, Ok(9));
    assert_eq!(second, Err(Error::Eos));
}

#[tokio::test]
async fn a_write_after_the_reader_is_dropped_is_broken_pipe() {
    // Rust test binaries start with SIGPIPE ignored, so write gives EPIPE.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let writer = writer.into_async().unwrap();
    drop(reader);
    assert_eq!(writer.token_write(1).await, Err(Error::BrokenPipe));
    assert_eq!(writer.write_tokens(b"ab").await, Err(Error::BrokenPipe));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_through_a_full_pipe_lose_and_double_no_token() {
    const PER_WRITER: usize = 10_000;
    let (reader, writer) = TokenPipe::make().unwrap().split();
    // A pipe small enough that 40,000 tokens fill it many times over.
    #[cfg(target_os = "linux")]
    {
        // SAFETY: F_SETPIPE_SZ takes an int and touches no memory.
        let rc = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(
            rc >= 4096,
            "F_SETPIPE_SZ: {}",
            std::io::Error::last_os_error()
        );
    }
    let (reader, writer) = (reader.into_async().unwrap(), writer.into_async().unwrap());
    // Filled to the brim first (token 4, counted apart), so that every
    // writer waits for room even where the pipe cannot be shrunk and
    // would hold all 40,000.
    let mut filler = 0;
    loop {
        match writer.get_ref().token_write(4) {
            Ok(()) => filler += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    let writer = Arc::new(writer);
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4u8)
        .map(|id| {
            let writer = Arc::clone(&writer);
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                for _ in 0..PER_WRITER {
                    writer.token_write(id).await?;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), Error>(())
            })
        })
        .collect();
    drop(writer); // the tasks hold the only references now
    // With no reader and the pipe full, the writers wait: the count
    // stops short of 40,000.
    let mut last = usize::MAX;
    bounded("the writers filling the pipe", async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = written.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
    })
    .await;
    assert!(
        last < 4 * PER_WRITER,
        "the pipe never filled ({last} tokens went in with no reader), so \
         the writers never had to wait for room"
    );
    let mut counts = [0usize; 5];
    let mut buf = [0u8; 512];
    loop {
        match bounded("the reader", reader.read_tokens(&mut buf)).await {
            Ok(n) => {
                for &token in &buf[..n] {
                    counts[usize::from(token)] += 1;
                }
            }
            Err(Error::Eos) => break,
            Err(e) => panic!("read_tokens: {e}"),
        }
    }
    for task in writers {
        bounded("a writer", task).await.unwrap().unwrap();
    }
    assert_eq!(
        counts,
        [PER_WRITER, PER_WRITER, PER_WRITER, PER_WRITER, filler],
        "tokens lost or doubled per writer (the last is the {filler} filler tokens)"
    );
}

#[tokio::test]
async fn into_end_gives_back_a_blocking_end_that_still_works() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (reader, writer) = (reader.into_async().unwrap(), writer.into_async().unwrap());
    let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
    writer.token_write(3).await.unwrap();
    let reader = reader.into_end().expect("into_end");
    let writer = writer.into_end().expect("into_end");
    assert_eq!(reader.as_raw_fd(), fd, "the same fd came back");
    assert_eq!(reader.is_nonblocking(), Ok(false));
    assert_eq!(writer.is_nonblocking(), Ok(false));
    assert_eq!(reader.token_read(), Ok(3));
    writer.token_write(4).unwrap();
    assert_eq!(reader.token_read(), Ok(4));
}

#[tokio::test]
async fn read_tokens_into_an_empty_buffer_is_zero_at_once() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (reader, writer) = (reader.into_async().unwrap(), writer.into_async().unwrap());
    // The pipe is empty: anything but Ok(0) at the first poll is a wait.
    let mut empty = [0u8; 0];
    let first_poll =
        std::future::poll_fn(|cx| Poll::Ready(pin!(reader.read_tokens(&mut empty)).poll(cx))).await;
    assert!(
        matches!(first_poll, Poll::Ready(Ok(0))),
        "read_tokens(&mut []) gave {first_poll:?} at its first poll"
    );
    assert_eq!(writer.write_tokens(&[]).await, Ok(0));
}

#[tokio::test]
async fn one_trigger_wakes_64_waiting_tasks_and_after_a_reset_they_wait_again() {
    let stop = Arc::new(SignalInterrupt::new());
    let spawn_waiters = |n| -> Vec<_> {
        (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                tokio::spawn(async move { stop.triggered().await })
            })
            .collect()
    };
    let waiters = spawn_waiters(64);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "a task returned from triggered() before any trigger"
    );
    stop.trigger().unwrap();
    for (i, waiter) in waiters.into_iter().enumerate() {
        bounded(&format!("waiting task {i} after the trigger"), waiter)
            .await
            .unwrap()
            .expect("triggered()");
    }
    // Already triggered: at once.
    assert!(matches!(poll_once(stop.triggered()), Poll::Ready(Ok(()))));

    stop.reset().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stop.triggered())
            .await
            .is_err(),
        "triggered() returned after a reset, with no new trigger"
    );
    let waiters = spawn_waiters(8);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    stop.trigger().unwrap();
    for waiter in waiters {
        bounded("a task waiting after the reset", waiter)
            .await
            .unwrap()
            .expect("triggered()");
    }
}

static USR2: SignalInterrupt = SignalInterrupt::new();

#[tokio::test]
async fn a_real_signal_caught_by_the_installed_handler_wakes_waiting_tasks() {
    let installed = USR2.install(&[libc::SIGUSR2]).expect("install SIGUSR2");
    let waiters: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async { USR2.triggered().await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    // SAFETY: raise takes a plain integer; the handler is installed.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    for waiter in waiters {
        bounded("a task waiting for SIGUSR2", waiter)
            .await
            .unwrap()
            .expect("triggered()");
    }
    installed.restore().expect("restore SIGUSR2");
}
