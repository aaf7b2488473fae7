//! Tokens written are the tokens read: every value, in order, then end of
//! stream; and the errors a reader or writer meets when the other side is
//! gone or the end is the wrong way round.
#![cfg(unix)]

mod common;

use tokenpipe::{Errno, Error, TokenPipe};

#[test]
fn every_one_of_the_256_token_values_survives_a_round_trip() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    for token in 0..=u8::MAX {
        writer.token_write(token).unwrap();
        assert_eq!(reader.token_read(), Ok(token));
    }
}

#[test]
fn all_256_values_written_first_are_read_back_in_the_same_order() {
    // 256 bytes fit in any pipe buffer, so nothing blocks.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    for token in (0..=u8::MAX).rev() {
        writer.token_write(token).unwrap();
    }
    for token in (0..=u8::MAX).rev() {
        assert_eq!(reader.token_read(), Ok(token));
    }
}

#[test]
fn a_hundred_tokens_arrive_in_the_order_they_were_written() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let sent: Vec<u8> = (0..100u32).map(|i| (i * 37 % 251) as u8).collect();
    for &t in &sent {
        writer.token_write(t).unwrap();
    }
    let got: Vec<u8> = (0..100).map(|_| reader.token_read().unwrap()).collect();
    assert_eq!(got, sent);
}

#[test]
fn read_reports_end_of_stream_after_the_writer_closes() {
    let (reader, mut writer) = TokenPipe::make().unwrap().split();
    writer.token_write(7).unwrap();
    writer.close();
    // Tokens sent before the close are still delivered, then end of stream,
    // and it stays end of stream.
    assert_eq!(reader.token_read(), Ok(7));
    assert_eq!(reader.token_read(), Err(Error::Eos));
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
fn read_reports_end_of_stream_when_the_writer_is_dropped() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(writer);
    let err = reader.token_read().unwrap_err();
    assert_eq!(err, Error::Eos);
    assert_eq!(err.status(), tokenpipe::TS_EOS);
}

#[test]
fn write_reports_broken_pipe_when_the_reader_is_gone_and_sigpipe_is_ignored() {
    // The Rust runtime already ignores SIGPIPE in test binaries; say so
    // explicitly so the test does not depend on that (Miri has no signals
    // and no SIGPIPE).
    if !cfg!(miri) {
        common::set_disposition(libc::SIGPIPE, libc::SIG_IGN);
    }
    let (reader, writer) = TokenPipe::make().unwrap().split();
    drop(reader);
    let err = writer.token_write(1).unwrap_err();
    assert_eq!(err, Error::BrokenPipe);
    assert_eq!(err.errno(), Some(Errno::EPIPE));
    assert_eq!(err.status(), tokenpipe::TS_ERR);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri's pipes do not report the wrong direction as EBADF"
)]
fn reading_a_write_end_fails_with_ebadf() {
    let (_reader, writer) = TokenPipe::make().unwrap().split();
    assert_eq!(writer.token_read(), Err(Error::Os(Errno::EBADF)));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri's pipes do not report the wrong direction as EBADF"
)]
fn writing_a_read_end_fails_with_ebadf() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    assert_eq!(reader.token_write(1), Err(Error::Os(Errno::EBADF)));
}

#[test]
fn a_token_written_before_the_reader_starts_is_not_lost() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.token_write(0).unwrap();
    drop(writer);
    assert_eq!(reader.token_read(), Ok(0));
}

#[test]
fn a_full_pipe_holds_every_token_until_read() {
    // Fill the pipe buffer with a writer thread (it blocks when full) and
    // check each byte arrives once, in order.
    const N: usize = if cfg!(miri) { 2_000 } else { 200_000 };
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let t = std::thread::spawn(move || {
        for i in 0..N {
            writer.token_write(i as u8).unwrap();
        }
    });
    for i in 0..N {
        assert_eq!(reader.token_read(), Ok(i as u8), "token {i}");
    }
    t.join().unwrap();
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[cfg(feature = "std")]
mod std_io {
    use super::*;
    use std::io::{ErrorKind, Read, Write};

    #[test]
    fn io_read_and_write_carry_bytes_and_read_returns_zero_at_end_of_stream() {
        let (mut reader, mut writer) = TokenPipe::make().unwrap().split();
        writer.write_all(b"token").unwrap();
        writer.flush().unwrap();
        drop(writer);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"token");
        assert_eq!(reader.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn io_write_to_a_gone_reader_is_a_broken_pipe_with_its_errno() {
        let (reader, writer) = TokenPipe::make().unwrap().split();
        drop(reader);
        let err = (&writer).write(b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn io_calls_on_a_closed_end_fail_as_not_connected_and_say_why() {
        let mut end = tokenpipe::TokenPipeEnd::new();
        let err = end.write(b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
        assert!(err.to_string().contains("closed"), "{err}");
        let err = end.read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
    }
}
