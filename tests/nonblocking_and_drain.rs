//! Non-blocking mode changes exactly one flag; reads and writes then give
//! `WouldBlock`; `drain` takes everything waiting and never blocks.
#![cfg(unix)]

use tokenpipe::{Error, TokenPipe, TokenPipeEnd};

fn status_flags(end: &TokenPipeEnd) -> libc::c_int {
    // SAFETY: F_GETFL on an open fd touches no memory.
    let flags = unsafe { libc::fcntl(end.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri's F_SETFL accepts only O_NONBLOCK, so no other flag can be planted"
)]
fn set_nonblocking_changes_only_the_nonblocking_flag() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    // Plant another status flag that a careless F_SETFL would clear.
    let planted = status_flags(&reader) | libc::O_APPEND;
    // SAFETY: F_SETFL on an open fd touches no memory.
    assert_eq!(
        unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, planted) },
        0
    );
    let before = status_flags(&reader);
    assert_ne!(before & libc::O_APPEND, 0);

    reader.set_nonblocking(true).unwrap();
    assert_eq!(status_flags(&reader), before | libc::O_NONBLOCK);
    assert!(reader.is_nonblocking().unwrap());

    reader.set_nonblocking(true).unwrap(); // idempotent
    assert_eq!(status_flags(&reader), before | libc::O_NONBLOCK);

    reader.set_nonblocking(false).unwrap();
    assert_eq!(status_flags(&reader), before);
    assert!(!reader.is_nonblocking().unwrap());
}

/// Sets (`on`) or clears `O_ASYNC` with one `ioctl(FIOASYNC)`, which
/// reads no other flag, so it undoes nothing another thread sets.
#[cfg(all(tokenpipe_fionbio, not(target_os = "android")))]
fn set_async(end: &TokenPipeEnd, on: bool) {
    let mut value = libc::c_int::from(on);
    // SAFETY: FIOASYNC reads one int through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(end.as_raw_fd(), libc::FIOASYNC, &mut value) };
    assert_eq!(rc, 0, "FIOASYNC: {}", std::io::Error::last_os_error());
}

// Only where set_nonblocking is one ioctl(FIONBIO) (build.rs's
// tokenpipe_fionbio): elsewhere it still reads the flags and writes them
// back, so it can undo a flag set in between, and this would fail. Not on
// Android, whose libc binding has no FIOASYNC to set a flag with.
#[cfg(all(tokenpipe_fionbio, not(target_os = "android")))]
#[test]
#[cfg_attr(miri, ignore = "Miri has no ioctl")]
fn set_nonblocking_never_undoes_a_flag_another_thread_sets_meanwhile() {
    use std::sync::atomic::{AtomicBool, Ordering};

    const ROUNDS: usize = 20_000;
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    let stop = AtomicBool::new(false);
    let undone = std::thread::scope(|s| {
        s.spawn(|| {
            let mut on = true;
            while !stop.load(Ordering::Relaxed) {
                reader.set_nonblocking(on).unwrap();
                on = !on;
            }
        });
        // This thread alone changes O_ASYNC: whatever it finds there after
        // setting it, a set_nonblocking wrote back.
        let undone = (0..ROUNDS).find(|round| {
            let want = round % 2 == 0;
            set_async(&reader, want);
            (status_flags(&reader) & libc::O_ASYNC != 0) != want
        });
        stop.store(true, Ordering::Relaxed);
        undone
    });
    set_async(&reader, false);
    assert_eq!(
        undone, None,
        "a concurrent set_nonblocking undid O_ASYNC (read-modify-write of the status flags)"
    );
}

#[test]
fn set_nonblocking_does_not_touch_close_on_exec() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    reader.set_nonblocking(true).unwrap();
    // SAFETY: F_GETFD touches no memory.
    let fd_flags = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_GETFD) };
    assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
}

#[test]
fn an_empty_nonblocking_read_end_would_block() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    reader.set_nonblocking(true).unwrap();
    assert_eq!(reader.token_read(), Err(Error::WouldBlock));
    let mut buf = [0u8; 8];
    assert_eq!(reader.read_tokens(&mut buf), Err(Error::WouldBlock));
    writer.token_write(3).unwrap();
    assert_eq!(reader.token_read(), Ok(3));
    drop(writer);
    // End of stream is still end of stream, not WouldBlock.
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
#[cfg_attr(miri, ignore = "Miri's pipes never fill")]
fn a_full_nonblocking_write_end_would_block_and_loses_nothing() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.set_nonblocking(true).unwrap();
    let mut written = 0usize;
    loop {
        match writer.token_write((written % 251) as u8) {
            Ok(()) => written += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(written < 16 << 20, "the pipe never filled");
    }
    assert!(written >= 512, "pipe held only {written} tokens");
    drop(writer);
    for i in 0..written {
        assert_eq!(reader.token_read(), Ok((i % 251) as u8));
    }
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
fn drain_takes_every_waiting_token_and_reports_the_count() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    reader.set_nonblocking(true).unwrap();
    assert_eq!(reader.drain(), Ok(0));
    for n in [1usize, 63, 64, 65, 1000] {
        for _ in 0..n {
            writer.token_write(b'x').unwrap();
        }
        assert_eq!(reader.drain(), Ok(n));
        assert_eq!(reader.token_read(), Err(Error::WouldBlock));
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no poll")]
fn drain_on_a_blocking_end_does_not_block() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    assert_eq!(reader.drain(), Ok(0));
    writer.write_tokens(&[1; 100]).unwrap();
    assert_eq!(reader.drain(), Ok(100));
    assert_eq!(reader.drain(), Ok(0));
    assert!(!reader.is_nonblocking().unwrap(), "drain changed the mode");
}

#[test]
fn drain_reports_waiting_tokens_before_end_of_stream() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    reader.set_nonblocking(true).unwrap();
    writer.write_tokens(b"abc").unwrap();
    drop(writer);
    assert_eq!(reader.drain(), Ok(3));
    assert_eq!(reader.drain(), Err(Error::Eos));
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no poll")]
fn a_token_written_after_drain_wakes_the_next_read() {
    // The self-pipe order: drain first, then act. A signal that arrives
    // while acting leaves a token behind for the next wake-up.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    reader.set_nonblocking(true).unwrap();
    writer.token_write(b'x').unwrap();
    assert_eq!(reader.drain(), Ok(1));
    writer.token_write(b'x').unwrap(); // "the handler fired while acting"
    assert_eq!(
        reader.token_read_timeout(std::time::Duration::ZERO),
        Ok(b'x'),
        "the second wake-up was lost"
    );
}

#[test]
fn mode_calls_on_a_closed_end_are_closed() {
    let end = TokenPipeEnd::new();
    assert_eq!(end.set_nonblocking(true), Err(Error::Closed));
    assert_eq!(end.is_nonblocking(), Err(Error::Closed));
    assert_eq!(end.drain(), Err(Error::Closed));
}
