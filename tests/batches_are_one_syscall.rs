//! Batches: `write_tokens` and `read_tokens` move many tokens per syscall,
//! a batch of at most `PIPE_BUF` is never interleaved with another writer's,
//! and `read_tokens_into` fills a fixed-capacity vector.
#![cfg(unix)]

use tokenpipe::{Errno, Error, PIPE_BUF, TokenPipe, TokenPipeEnd};

#[test]
fn a_batch_round_trips_in_order() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let sent: Vec<u8> = (0..=255u8).collect();
    assert_eq!(writer.write_tokens(&sent), Ok(256));
    let mut got = vec![0u8; 256];
    let mut filled = 0;
    while filled < got.len() {
        filled += reader.read_tokens(&mut got[filled..]).unwrap();
    }
    assert_eq!(got, sent);
}

#[test]
fn read_tokens_never_returns_zero_at_end_of_stream() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(writer);
    assert_eq!(reader.read_tokens(&mut [0u8; 16]), Err(Error::Eos));
}

#[test]
fn empty_batches_make_no_syscall() {
    // A read end cannot be written and a write end cannot be read: a
    // syscall would fail with EBADF. An empty batch must not get that far.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    assert_eq!(reader.write_tokens(&[]), Ok(0));
    assert_eq!(writer.read_tokens(&mut []), Ok(0));
    assert_eq!(reader.write_tokens(&[1]), Err(Error::Os(Errno::EBADF)));
}

#[test]
fn pipe_buf_is_the_guaranteed_atomic_size() {
    const { assert!(PIPE_BUF >= 512) };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    assert_eq!(PIPE_BUF, libc::PIPE_BUF);
}

#[test]
fn batches_of_pipe_buf_tokens_from_many_writers_never_interleave() {
    const WRITERS: u8 = 6;
    const BATCHES: usize = if cfg!(miri) { 2 } else { 200 };
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let mut stream = Vec::with_capacity(WRITERS as usize * BATCHES * PIPE_BUF);
    std::thread::scope(|s| {
        let writer = &writer;
        for id in 0..WRITERS {
            s.spawn(move || {
                let batch = vec![id; PIPE_BUF];
                for _ in 0..BATCHES {
                    // Blocking and within PIPE_BUF: all or nothing.
                    assert_eq!(writer.write_tokens(&batch), Ok(PIPE_BUF));
                }
            });
        }
        let mut buf = vec![0u8; 3 * PIPE_BUF + 17]; // reads cut anywhere
        while stream.len() < WRITERS as usize * BATCHES * PIPE_BUF {
            let n = reader.read_tokens(&mut buf).unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
    });
    let mut per_writer = [0usize; WRITERS as usize];
    for (i, chunk) in stream.chunks(PIPE_BUF).enumerate() {
        let id = chunk[0];
        assert!(chunk.iter().all(|&t| t == id), "batch {i} was interleaved");
        per_writer[id as usize] += 1;
    }
    assert_eq!(per_writer, [BATCHES; WRITERS as usize]);
}

#[test]
fn read_tokens_into_fills_the_remaining_capacity() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.write_tokens(b"abcdefgh").unwrap();
    let mut out: heapless::Vec<u8, 5> = heapless::Vec::new();
    out.push(b'_').unwrap();
    assert_eq!(reader.read_tokens_into(&mut out), Ok(4));
    assert_eq!(&out[..], b"_abcd");
    // Full: no syscall, nothing taken from the pipe.
    assert_eq!(reader.read_tokens_into(&mut out), Ok(0));
    let mut rest = [0u8; 8];
    assert_eq!(reader.read_tokens(&mut rest), Ok(4));
    assert_eq!(&rest[..4], b"efgh");
}

#[test]
fn read_tokens_into_leaves_the_vector_unchanged_on_error() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(writer);
    let mut out: heapless::Vec<u8, 8> = heapless::Vec::new();
    out.extend_from_slice(b"ok").unwrap();
    assert_eq!(reader.read_tokens_into(&mut out), Err(Error::Eos));
    assert_eq!(&out[..], b"ok");
    assert_eq!(
        TokenPipeEnd::new().read_tokens_into(&mut out),
        Err(Error::Closed)
    );
    assert_eq!(&out[..], b"ok");
}

#[test]
fn a_batch_to_a_gone_reader_is_a_broken_pipe() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(reader);
    assert_eq!(writer.write_tokens(b"abc"), Err(Error::BrokenPipe));
}
