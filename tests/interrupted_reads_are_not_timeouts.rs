//! `token_read_timeout`: a `read` that a signal interrupts (`EINTR`) is not
//! a timeout. With a zero timeout the call looks again, and returns the
//! token that is waiting instead of `TimedOut`.
//!
//! A real signal cannot show this on Linux: a pipe read with a byte waiting
//! takes the pipe lock without an interruptible sleep, so it never fails
//! with `EINTR`. On FreeBSD and macOS it can (the reader sleeps, signal by
//! signal, while a writer holds the pipe lock). So this binary defines its
//! own `read`, which the linker binds before libc's for every caller in
//! the binary, the crate included: it fails the next reads of one chosen fd
//! with `EINTR`, as such a signal would, and hands every other call to the
//! kernel unchanged (`syscall(SYS_read)`).
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokenpipe::{Error, TokenPipe};

/// The fd whose reads fail with EINTR, and how many more of them will.
static INTERRUPTED_FD: AtomicI32 = AtomicI32::new(-1);
static INTERRUPTS_LEFT: AtomicUsize = AtomicUsize::new(0);

/// `read(2)` for this whole binary. Async-signal-safe and allocation-free,
/// like the libc function it replaces.
///
/// # Safety
/// As for libc's `read`: `buf` must be valid for writes of `count` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    if fd == INTERRUPTED_FD.load(Ordering::SeqCst)
        && INTERRUPTS_LEFT
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        // Through common's per-platform errno location: Android's is
        // `__errno`, not glibc's `__errno_location`.
        common::set_errno(libc::EINTR);
        return -1;
    }
    // SAFETY: the caller's contract is read's, which is SYS_read's.
    unsafe { libc::syscall(libc::SYS_read, fd, buf, count) as isize }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Makes the next `times` reads of `fd` fail with EINTR, for as long as
/// the returned guard lives.
fn interrupt_reads(fd: c_int, times: usize) -> MutexGuard<'static, ()> {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    INTERRUPTS_LEFT.store(times, Ordering::SeqCst);
    INTERRUPTED_FD.store(fd, Ordering::SeqCst);
    turn
}

fn interrupts_left() -> usize {
    let left = INTERRUPTS_LEFT.load(Ordering::SeqCst);
    INTERRUPTED_FD.store(-1, Ordering::SeqCst);
    left
}

#[test]
fn a_zero_timeout_read_interrupted_by_a_signal_returns_the_waiting_token() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.token_write(7).unwrap();
    let _turn = interrupt_reads(reader.as_raw_fd(), 1);
    let got = reader.token_read_timeout(Duration::ZERO);
    assert_eq!(interrupts_left(), 0, "the read was never interrupted");
    assert_eq!(got, Ok(7));
    // Taken once: nothing is left.
    assert_eq!(
        reader.token_read_timeout(Duration::ZERO),
        Err(Error::TimedOut)
    );
}

#[test]
fn reads_interrupted_again_and_again_still_return_the_token() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.token_write(8).unwrap();
    for timeout in [Duration::ZERO, Duration::from_secs(60)] {
        let _turn = interrupt_reads(reader.as_raw_fd(), 5);
        let got = reader.token_read_timeout(timeout);
        assert_eq!(interrupts_left(), 0, "the reads were not all interrupted");
        assert_eq!(got, Ok(8), "with a timeout of {timeout:?}");
        writer.token_write(8).unwrap();
    }
}

#[test]
fn the_injected_eintr_reaches_the_crate() {
    // The control: a plain token_read retries EINTR too, so it must see
    // and use up the injected failures; if this binary's `read` were not
    // the one the crate calls, none would be used.
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.token_write(9).unwrap();
    let _turn = interrupt_reads(reader.as_raw_fd(), 3);
    assert_eq!(reader.token_read(), Ok(9));
    assert_eq!(interrupts_left(), 0);
}
