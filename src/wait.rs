//! Waiting with a deadline, non-blocking mode, and draining: what a
//! supervisor and a self-pipe need beyond a blocking read.

use core::ffi::c_int;
use core::time::Duration;

use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};
use crate::sys::{self, Polled};

/// The poll(2) timeout for `remaining`: rounded *up* to whole milliseconds,
/// so a wait is never shorter than asked, and capped at `c_int::MAX` (about
/// 24.8 days; a longer wait polls again).
pub(crate) fn poll_timeout_ms(remaining: Duration) -> c_int {
    let ms = remaining.as_nanos().div_ceil(1_000_000);
    c_int::try_from(ms).unwrap_or(c_int::MAX)
}

/// A wait's deadline on `CLOCK_MONOTONIC`, which the wall clock cannot
/// step: what a wait that a signal interrupts measures the time left
/// against, instead of starting the whole timeout again. Shared by
/// [`TokenPipeEnd::token_read_timeout`] and `SignalInterrupt::wait_timeout`.
pub(crate) struct Deadline {
    timeout: Duration,
    start: Duration,
}

impl Deadline {
    /// Starts the clock (a zero timeout needs none: there is no remaining
    /// time to track).
    pub(crate) fn start(timeout: Duration) -> Result<Deadline> {
        let start = if timeout.is_zero() {
            Duration::ZERO
        } else {
            sys::monotonic_now().map_err(Error::Os)?
        };
        Ok(Deadline { timeout, start })
    }

    /// The time left, or `None` once it has run out (at once for a zero
    /// timeout: one look).
    pub(crate) fn left(&self) -> Result<Option<Duration>> {
        if self.timeout.is_zero() {
            return Ok(None);
        }
        let elapsed = sys::monotonic_now()
            .map_err(Error::Os)?
            .saturating_sub(self.start);
        let left = self.timeout.saturating_sub(elapsed);
        Ok((!left.is_zero()).then_some(left))
    }
}

impl TokenPipeEnd {
    /// Reads one token, waiting at most `timeout` for it: `poll(2)` for
    /// readability, then one `read(2)`.
    ///
    /// A signal that interrupts the wait (`EINTR`) does not restart the
    /// full timeout: the remaining time is measured on `CLOCK_MONOTONIC`,
    /// which the wall clock cannot step. The wait is never shorter than
    /// `timeout` and at most a millisecond longer (poll's resolution), plus
    /// scheduling. A zero timeout checks once without blocking; a `read`
    /// that a signal interrupts is not that check, so the call looks again
    /// rather than report `TimedOut` with a token waiting.
    /// Async-signal-safe and allocation-free.
    ///
    /// With several readers on one blocking end, another reader may take
    /// the token between the `poll` and the `read`, and the `read` then
    /// blocks; make such an end [non-blocking](Self::set_nonblocking) and
    /// this call goes back to waiting for the time that remains instead.
    ///
    /// # Errors
    /// [`Error::TimedOut`] when no token arrived in time, [`Error::Eos`]
    /// when every writer is gone, [`Error::Closed`] on a closed end, and
    /// [`Error::Os`] for anything else. A write end never becomes readable:
    /// it waits out the timeout, or fails with `EBADF` once its reader is
    /// gone.
    ///
    /// # References
    /// - [POSIX `poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
    /// - [Linux `poll`](https://man7.org/linux/man-pages/man2/poll.2.html)
    /// - [POSIX `clock_gettime`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/clock_gettime.html)
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    /// use std::time::Duration;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// assert_eq!(reader.token_read_timeout(Duration::ZERO), Err(Error::TimedOut));
    /// writer.token_write(1)?;
    /// assert_eq!(reader.token_read_timeout(Duration::from_secs(5))?, 1);
    /// assert_eq!(
    ///     reader.token_read_timeout(Duration::from_millis(20)),
    ///     Err(Error::TimedOut)
    /// );
    /// # Ok::<(), Error>(())
    /// ```
    #[doc(alias = "poll")]
    pub fn token_read_timeout(&self, timeout: Duration) -> Result<u8> {
        let fd = self.open_fd()?;
        let deadline = Deadline::start(timeout)?;
        let mut remaining = timeout;
        loop {
            match sys::poll_readable(fd, poll_timeout_ms(remaining)) {
                // poll's own timeout passed; the clock check below decides
                // (it may have been capped, or the kernel may round).
                Ok(Polled::TimedOut) => {}
                Ok(Polled::NotOpen) => return Err(Error::Os(Errno::EBADF)),
                // Readable, hung up or in error: the read says which.
                Ok(Polled::Ready) => {
                    let mut token = 0u8;
                    match sys::read(fd, core::slice::from_mut(&mut token)) {
                        Ok(0) => return Err(Error::Eos),
                        Ok(_) => return Ok(token),
                        // Interrupted before the byte moved. With a zero
                        // timeout the check was not made, so it is not a
                        // timeout: look again (on FreeBSD and macOS a
                        // signal can interrupt a read with a token waiting).
                        Err(Errno::EINTR) if timeout.is_zero() => continue,
                        // Interrupted, or another reader took the token
                        // first (non-blocking end): wait for what remains.
                        Err(Errno::EINTR) => {}
                        Err(e) => match Error::from_errno(e) {
                            Error::WouldBlock => {}
                            other => return Err(other),
                        },
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::Os(e)),
            }
            remaining = deadline.left()?.ok_or(Error::TimedOut)?;
        }
    }

    /// Turns non-blocking mode on or off (`O_NONBLOCK`), and no other
    /// status flag, so flags set by others (such as `O_APPEND` or
    /// `O_ASYNC`) survive.
    ///
    /// One `ioctl(FIONBIO)` on Linux, Android, Apple and the BSDs: the
    /// kernel flips the bit under its own lock, so a flag another thread
    /// changes at the same moment survives too. On illumos and Solaris
    /// (whose `FIONBIO` sets `O_NDELAY`, under which an empty pipe reads as
    /// end of stream) and elsewhere: `fcntl(F_GETFL)`, then `F_SETFL` with
    /// only that bit changed, if it was not already as asked.
    ///
    /// In non-blocking mode a read of an empty pipe and a write to a full
    /// one fail with [`Error::WouldBlock`] instead of waiting. The flag
    /// belongs to the open pipe, not to this fd number: it is shared with
    /// every duplicate of the fd, including in forked children.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed end, [`Error::Os`] if `ioctl` or
    /// `fcntl` fails.
    ///
    /// # References
    /// - [Linux `ioctl`](https://man7.org/linux/man-pages/man2/ioctl.2.html)
    /// - [FreeBSD `ioctl`](https://man.freebsd.org/cgi/man.cgi?query=ioctl&sektion=2)
    /// - [POSIX `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
    /// - [Linux `fcntl`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    ///
    /// let (reader, _writer) = TokenPipe::make()?.split();
    /// reader.set_nonblocking(true)?;
    /// assert_eq!(reader.token_read(), Err(Error::WouldBlock));
    /// assert!(reader.is_nonblocking()?);
    /// # Ok::<(), Error>(())
    /// ```
    #[doc(alias = "O_NONBLOCK", alias = "FIONBIO")]
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        let fd = self.open_fd()?;
        sys::set_nonblocking(fd, on).map_err(Error::Os)
    }

    /// Whether the end is in non-blocking mode (`fcntl(F_GETFL)`).
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed end, [`Error::Os`] if `fcntl` fails.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (reader, _writer) = TokenPipe::make()?.split();
    /// assert!(!reader.is_nonblocking()?);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    pub fn is_nonblocking(&self) -> Result<bool> {
        let fd = self.open_fd()?;
        let flags = sys::fcntl_get(fd, libc::F_GETFL).map_err(Error::Os)?;
        Ok(flags & libc::O_NONBLOCK != 0)
    }

    /// Reads every token that is waiting, without blocking, and returns how
    /// many it took: the self-pipe's first step.
    ///
    /// The self-pipe order is *drain first, then act*: a handler that fires
    /// while the program acts writes a new token, which the next wake-up
    /// sees. Acting first and draining after would swallow that token and
    /// lose the signal.
    ///
    /// Meant for a [non-blocking](Self::set_nonblocking) end, where it reads
    /// until `EAGAIN`. On a blocking end it asks `poll` with a zero timeout
    /// before each read so it still never waits (one reader assumed: see
    /// [`token_read_timeout`](Self::token_read_timeout)). Reads 64 tokens
    /// per syscall, into a stack buffer.
    ///
    /// # Errors
    /// [`Error::Eos`] if every writer is gone and nothing was waiting (if
    /// tokens were waiting, their count is returned and the next call says
    /// `Eos`), [`Error::Closed`] on a closed end, [`Error::Os`] otherwise.
    ///
    /// # References
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    /// - [POSIX `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
    /// - [POSIX `poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// reader.set_nonblocking(true)?;
    /// writer.write_tokens(b"xxx")?;
    /// assert_eq!(reader.drain()?, 3);
    /// assert_eq!(reader.drain()?, 0);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    pub fn drain(&self) -> Result<usize> {
        let fd = self.open_fd()?;
        let blocking =
            sys::fcntl_get(fd, libc::F_GETFL).map_err(Error::Os)? & libc::O_NONBLOCK == 0;
        let mut buf = [0u8; 64];
        let mut taken = 0usize;
        loop {
            if blocking {
                match sys::poll_readable(fd, 0) {
                    Ok(Polled::TimedOut) => return Ok(taken),
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(Error::Os(e)),
                }
            }
            match sys::read(fd, &mut buf) {
                Ok(0) if taken == 0 => return Err(Error::Eos),
                Ok(0) => return Ok(taken),
                Ok(n) => {
                    taken += n;
                    // A short read means the pipe was empty at that moment.
                    if n < buf.len() {
                        return Ok(taken);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => match Error::from_errno(e) {
                    Error::WouldBlock => return Ok(taken),
                    other => return Err(other),
                },
            }
        }
    }
}
