//! The fd channels: this crate's token pipe and the s6-style notification
//! fd. Both are one-shot: the report is one `write`, then the fd is closed.
//! The fd lives in an `AtomicI32` so that `&self` methods (usable from a
//! signal handler) can close it exactly once: whoever swaps the number out
//! for -1 closes it.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, Ordering};

use super::ReadyError;
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};
use crate::nosignal::without_sigpipe;
use crate::sys;

/// Checks that `fd` is open and is a pipe (or FIFO) or a socket.
pub(super) fn check_pipe_or_socket(fd: c_int) -> core::result::Result<(), ReadyError> {
    match sys::file_id(fd) {
        Ok(id) if id.is_fifo || id.is_socket => Ok(()),
        Ok(_) => Err(ReadyError::NotAPipeOrSocket { fd }),
        Err(Errno::EBADF) => Err(ReadyError::NotOpen { fd }),
        Err(e) => Err(ReadyError::Os(e)),
    }
}

/// Runs `f` on the end the channel still holds, without taking it.
pub(super) fn with_end<T>(fd: &AtomicI32, f: impl FnOnce(&TokenPipeEnd) -> Result<T>) -> Result<T> {
    let raw = fd.load(Ordering::Acquire);
    if raw < 0 {
        return Err(Error::Closed);
    }
    // Borrowed for the call: ManuallyDrop keeps this copy from closing it.
    let end = core::mem::ManuallyDrop::new(TokenPipeEnd::from_owned(raw));
    f(&end)
}

/// Writes `message` in one `write`, raising no `SIGPIPE`. The message is
/// at most 9 bytes, far below `PIPE_BUF`, so it arrives whole.
pub(super) fn write(fd: &AtomicI32, message: &[u8]) -> Result<()> {
    with_end(fd, |end| {
        without_sigpipe(end, || match end.write_tokens(message) {
            Ok(n) if n == message.len() => Ok(()),
            Ok(_) => Err(Error::Os(Errno::EIO)), // cannot happen below PIPE_BUF
            Err(e) => Err(e),
        })
    })
}

/// Writes `message`, then closes the channel whatever the write gave.
pub(super) fn write_then_close(fd: &AtomicI32, message: &[u8]) -> Result<()> {
    let written = write(fd, message);
    let closed = close(fd);
    written.and(closed)
}

/// Closes the channel's fd, once: `Error::Closed` if it was closed already.
pub(super) fn close(fd: &AtomicI32) -> Result<()> {
    let raw = fd.swap(-1, Ordering::AcqRel);
    if raw < 0 {
        return Err(Error::Closed);
    }
    sys::close(raw);
    Ok(())
}

/// `Ok` while the channel is open (a no-op message), `Closed` after.
pub(super) fn still_open(fd: &AtomicI32) -> Result<()> {
    if fd.load(Ordering::Acquire) < 0 {
        Err(Error::Closed)
    } else {
        Ok(())
    }
}
