//! One end of a token pipe: an owned fd and the calls that move tokens.

use core::ffi::c_int;

use crate::error::{Errno, Error, Result};
use crate::sys;

/// One end of a token pipe: an owned file descriptor, or closed.
///
/// The port of Bitcoin Core's `TokenPipeEnd`. It is exactly one `c_int`
/// (`-1` when closed), it closes its fd when dropped, and it moves rather
/// than copies: there is never a second owner to close the fd twice.
///
/// Reads and writes take `&self`, like `&File`: several threads may write
/// to (or read from) one end at once, and every single-byte token arrives
/// whole and exactly once. Every call reachable from
/// [`token_write`](Self::token_write), [`token_read`](Self::token_read) and
/// [`close`](Self::close) is async-signal-safe and allocation-free, so they
/// may be used in a signal handler and in a forked child.
///
/// ```
/// use tokenpipe::TokenPipe;
///
/// let mut pipe = TokenPipe::make()?;
/// let reader = pipe.take_read_end();
/// let writer = pipe.take_write_end();
/// writer.token_write(b'x')?;
/// assert_eq!(reader.token_read()?, b'x');
/// # Ok::<(), tokenpipe::Error>(())
/// ```
#[repr(transparent)]
pub struct TokenPipeEnd {
    /// The owned fd, or `-1` for a closed end. On Apple and NetBSD, an end
    /// whose open pipe the crate gave `F_SETNOSIGPIPE` holds its fd `f` as
    /// `-2 - f` instead ([`tag`]), and every reader of this field decodes
    /// it with [`fd_of`]. No other negative is ever stored.
    fd: c_int,
}

/// The value of a closed end's fd, as in the original.
const CLOSED: c_int = -1;

/// The fd that a stored value names: the value itself, as a closed end's
/// `-1` is. Elsewhere than Apple and NetBSD no end is ever tagged, and this
/// is the identity, so the token path gains not one instruction.
#[cfg(not(tokenpipe_nosigpipe))]
#[inline(always)]
const fn fd_of(stored: c_int) -> c_int {
    stored
}

/// The fd that a stored value names: a tagged value (below `-1`) decoded,
/// anything else as it is.
#[cfg(tokenpipe_nosigpipe)]
#[inline(always)]
const fn fd_of(stored: c_int) -> c_int {
    if stored < CLOSED {
        untag(stored)
    } else {
        stored
    }
}

// Apple and NetBSD: `F_SETNOSIGPIPE` belongs to the open pipe, not to an fd
// number, and once set it stays. So an end the crate set it on remembers
// that in its one `c_int`, and `token_write_nosignal` skips the `fcntl`.
// The mark uses the negative numbers below `-1`, which no fd and no closed
// end ever holds: `fd` is stored as `-2 - fd`. Every non-negative value
// stays a plain fd, so any fd `from_raw_fd` may be given is still told
// apart from a marked one; a spare high bit, such as bit 30, would not
// allow that, since only RLIMIT_NOFILE (an int) bounds an open fd on these
// systems. Compiled for the unit tests everywhere.

/// The stored value of an end whose open pipe has `F_SETNOSIGPIPE` set.
/// `fd` must be open, so it is at most `c_int::MAX - 1` (an fd is below
/// `RLIMIT_NOFILE`, which is at most `c_int::MAX`); the impossible
/// `c_int::MAX` is kept unmarked rather than overflow.
#[cfg(any(tokenpipe_nosigpipe, test))]
#[inline(always)]
const fn tag(fd: c_int) -> c_int {
    if fd >= 0 && fd < c_int::MAX {
        CLOSED - 1 - fd
    } else {
        fd
    }
}

/// The fd in a value that [`tag`] made (any value below `-1`).
#[cfg(any(tokenpipe_nosigpipe, test))]
#[inline(always)]
const fn untag(stored: c_int) -> c_int {
    CLOSED - 1 - stored
}

impl TokenPipeEnd {
    /// A closed end, owning nothing. Usable in a `static` or `const`.
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipeEnd};
    ///
    /// static NOTHING: TokenPipeEnd = TokenPipeEnd::new();
    /// assert!(!NOTHING.is_open());
    /// assert_eq!(NOTHING.token_write(0), Err(Error::Closed));
    /// ```
    #[must_use]
    #[inline]
    pub const fn new() -> TokenPipeEnd {
        TokenPipeEnd { fd: CLOSED }
    }

    /// Wraps an fd that the crate has just created and owns alone.
    #[inline]
    pub(crate) const fn from_owned(fd: c_int) -> TokenPipeEnd {
        TokenPipeEnd { fd }
    }

    /// This end with its fd at 3 or above. A process started with stdin
    /// or stdout closed gets a new pipe on 0 or 1, where a child it starts
    /// would take it for its stdio (its first `echo` a report). Moved with
    /// `F_DUPFD_CLOEXEC`; an end already above stdio is returned as it is.
    #[cfg(tokenpipe_launch)]
    pub(crate) fn above_stdio(self) -> Result<TokenPipeEnd> {
        self.at_least(3)
    }

    /// The end at fd `min` or above (moved with `F_DUPFD_CLOEXEC` if it is
    /// below): a launch that hands the program sockets at 3, 4, … keeps
    /// the pipe's write end above them.
    #[cfg(tokenpipe_launch)]
    pub(crate) fn at_least(self, min: c_int) -> Result<TokenPipeEnd> {
        let fd = self.as_raw_fd();
        if fd >= min {
            return Ok(self);
        }
        #[cfg(tokenpipe_nosigpipe)]
        let tagged = self.fd < CLOSED;
        let raw = self.into_raw_fd();
        let moved = crate::sys::dup_at_least(raw, min);
        crate::sys::close(raw);
        let moved = moved.map_err(crate::error::Error::Os)?;
        #[cfg(tokenpipe_nosigpipe)]
        if tagged {
            return Ok(TokenPipeEnd { fd: tag(moved) });
        }
        Ok(TokenPipeEnd::from_owned(moved))
    }

    /// Wraps an fd that the crate owns alone and has just set
    /// `F_SETNOSIGPIPE` on, remembering that it did (Apple, NetBSD).
    #[cfg(tokenpipe_nosigpipe)]
    #[inline]
    pub(crate) const fn from_owned_nosigpipe(fd: c_int) -> TokenPipeEnd {
        TokenPipeEnd { fd: tag(fd) }
    }

    /// Whether the crate set `F_SETNOSIGPIPE` on this end's open pipe
    /// (Apple, NetBSD): `token_write_nosignal` then needs no `fcntl`.
    #[cfg(tokenpipe_nosigpipe)]
    #[inline]
    pub(crate) const fn has_nosigpipe(&self) -> bool {
        self.fd < CLOSED
    }

    /// Takes ownership of a raw fd. A negative `fd` gives a closed end.
    ///
    /// # Safety
    /// `fd` must be negative, or an open file descriptor that nothing else
    /// owns: the end closes it when dropped or closed.
    ///
    /// ```
    /// use tokenpipe::{TokenPipe, TokenPipeEnd};
    ///
    /// let raw = TokenPipe::make()?.take_write_end().into_raw_fd();
    /// // SAFETY: `raw` came from `into_raw_fd`, so nothing else owns it.
    /// let end = unsafe { TokenPipeEnd::from_raw_fd(raw) };
    /// assert!(end.is_open());
    ///
    /// // SAFETY: a negative fd owns nothing.
    /// assert!(!unsafe { TokenPipeEnd::from_raw_fd(-1) }.is_open());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[allow(unsafe_code)] // Declares the ownership contract; does nothing unsafe.
    #[must_use]
    #[inline]
    pub const unsafe fn from_raw_fd(fd: c_int) -> TokenPipeEnd {
        TokenPipeEnd {
            fd: if fd < 0 { CLOSED } else { fd },
        }
    }

    /// The fd this end owns, or `-1` if it is closed. The end keeps
    /// ownership.
    ///
    /// ```
    /// use tokenpipe::{TokenPipe, TokenPipeEnd};
    ///
    /// let mut pipe = TokenPipe::make()?;
    /// let reader = pipe.take_read_end();
    /// assert!(reader.as_raw_fd() >= 0);
    /// assert_eq!(TokenPipeEnd::new().as_raw_fd(), -1);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use]
    #[inline]
    pub const fn as_raw_fd(&self) -> c_int {
        fd_of(self.fd)
    }

    /// Gives up ownership: returns the fd (or `-1` if closed) without
    /// closing it. The caller must close it.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let fd = TokenPipe::make()?.take_read_end().into_raw_fd();
    /// assert!(fd >= 0);
    /// // SAFETY: `into_raw_fd` handed us ownership of `fd`.
    /// unsafe { libc::close(fd) };
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use = "the returned fd is no longer closed by anyone; close it or it leaks"]
    #[inline]
    pub fn into_raw_fd(mut self) -> c_int {
        fd_of(core::mem::replace(&mut self.fd, CLOSED))
        // `self` now holds CLOSED, so its Drop does nothing.
    }

    /// Whether this end still owns an fd.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let mut pipe = TokenPipe::make()?;
    /// let mut reader = pipe.take_read_end();
    /// assert!(reader.is_open());
    /// reader.close();
    /// assert!(!reader.is_open());
    /// assert!(!pipe.take_read_end().is_open()); // taken already
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use]
    #[inline]
    #[doc(alias = "IsOpen")]
    pub const fn is_open(&self) -> bool {
        self.fd != CLOSED
    }

    /// Closes the fd, once. Calling it again, or on a closed end, does
    /// nothing. The fd number is forgotten before anything else can be
    /// given it, so a later drop never closes a reused number.
    ///
    /// One `close(2)`, never retried: on Linux the fd is already released
    /// when `close` reports `EINTR`, and a retry could close a number that
    /// another thread has just been given. Async-signal-safe.
    ///
    /// # References
    /// - [POSIX `close`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/close.html)
    /// - [Linux `close`](https://man7.org/linux/man-pages/man2/close.2.html)
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    ///
    /// let (reader, mut writer) = TokenPipe::make()?.split();
    /// writer.close();
    /// writer.close(); // does nothing
    /// assert_eq!(writer.token_write(1), Err(Error::Closed));
    /// assert_eq!(reader.token_read(), Err(Error::Eos));
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "Close")]
    pub fn close(&mut self) {
        let fd = core::mem::replace(&mut self.fd, CLOSED);
        if fd != CLOSED {
            sys::close(fd_of(fd));
        }
    }

    /// Closes what this end owned, then takes `other`'s fd, leaving `other`
    /// closed: the original's move-assignment.
    ///
    /// ```
    /// use tokenpipe::{TokenPipe, TokenPipeEnd};
    ///
    /// let mut a = TokenPipe::make()?.take_write_end();
    /// let mut b = TokenPipe::make()?.take_write_end();
    /// let b_fd = b.as_raw_fd();
    /// a.assign_from(&mut b); // a's old fd is closed here
    /// assert_eq!(a.as_raw_fd(), b_fd);
    /// assert!(!b.is_open());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    pub fn assign_from(&mut self, other: &mut TokenPipeEnd) {
        self.close();
        self.fd = core::mem::replace(&mut other.fd, CLOSED);
    }

    /// Writes one token: exactly one `write(2)` of one byte, retried only
    /// on `EINTR`. Blocks while the pipe is full (unless the end is
    /// non-blocking). Async-signal-safe and allocation-free.
    ///
    /// A write to a pipe whose readers are all gone raises `SIGPIPE`, which
    /// ends the process at the default disposition; where `SIGPIPE` is
    /// ignored (as in every Rust program using std's `main`) it fails with
    /// [`Error::BrokenPipe`].
    ///
    /// Except on Apple and NetBSD, for a pipe this crate made or took
    /// ([`TokenPipe::make`](crate::TokenPipe::make),
    /// [`from_env`](Self::from_env)): it never raises `SIGPIPE` there, and
    /// the write fails with [`Error::BrokenPipe`] at any disposition. The
    /// crate sets `F_SETNOSIGPIPE` on it at creation, and that flag belongs
    /// to the open pipe, not to this fd: once set it is permanent for that
    /// pipe in every process that shares it (every duplicate of the fd, a
    /// forked or exec'd child, the parent that handed it over). An end
    /// adopted with [`from_raw_fd`](Self::from_raw_fd) keeps whatever its
    /// pipe had.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed end (no syscall is made),
    /// [`Error::BrokenPipe`] with no reader, [`Error::WouldBlock`] on a full
    /// non-blocking pipe, [`Error::Eos`] if `write` wrote nothing, and
    /// [`Error::Os`] for anything else (`EBADF` on a read end).
    ///
    /// # References
    /// - [POSIX `write`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
    /// - [Linux `write`](https://man7.org/linux/man-pages/man2/write.2.html)
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// writer.token_write(0)?;
    /// writer.token_write(255)?;
    /// assert_eq!(reader.token_read()?, 0);
    /// assert_eq!(reader.token_read()?, 255);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "TokenWrite")]
    pub fn token_write(&self, token: u8) -> Result<()> {
        let fd = self.open_fd()?;
        // One compare on the hot path, as in hand-written code: anything
        // but "1 byte moved" goes to the cold function, which reads errno.
        loop {
            match sys::write_count(fd, core::slice::from_ref(&token)) {
                1 => return Ok(()),
                n => retry_or_fail(n)?,
            }
        }
    }

    /// Reads one token: exactly one `read(2)` of one byte, retried only on
    /// `EINTR`. Blocks until a token arrives or every writer is gone.
    /// Async-signal-safe and allocation-free.
    ///
    /// # Errors
    /// [`Error::Eos`] when every write end is closed and the pipe is empty,
    /// [`Error::Closed`] on a closed end (no syscall is made),
    /// [`Error::WouldBlock`] on an empty non-blocking pipe, and
    /// [`Error::Os`] for anything else (`EBADF` on a write end).
    ///
    /// # References
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    /// - [Linux `read`](https://man7.org/linux/man-pages/man2/read.2.html)
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// writer.token_write(42)?;
    /// drop(writer);
    /// assert_eq!(reader.token_read()?, 42);
    /// assert_eq!(reader.token_read(), Err(Error::Eos));
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "TokenRead")]
    pub fn token_read(&self) -> Result<u8> {
        let fd = self.open_fd()?;
        let mut token = 0u8;
        loop {
            match sys::read_count(fd, core::slice::from_mut(&mut token)) {
                1 => return Ok(token),
                n => retry_or_fail(n)?,
            }
        }
    }
}

impl TokenPipeEnd {
    /// The fd of an open end, or [`Error::Closed`] without a syscall.
    #[inline]
    pub(crate) fn open_fd(&self) -> Result<c_int> {
        if self.fd == CLOSED {
            Err(Error::Closed)
        } else {
            Ok(fd_of(self.fd))
        }
    }
}

impl core::fmt::Debug for TokenPipeEnd {
    /// `TokenPipeEnd { fd: 3 }`, or `fd: -1` for a closed end: the fd, as
    /// [`as_raw_fd`](TokenPipeEnd::as_raw_fd) gives it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenPipeEnd")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl Default for TokenPipeEnd {
    /// A closed end; the same as [`TokenPipeEnd::new`].
    ///
    /// ```
    /// use tokenpipe::TokenPipeEnd;
    /// assert!(!TokenPipeEnd::default().is_open());
    /// ```
    #[inline]
    fn default() -> TokenPipeEnd {
        TokenPipeEnd::new()
    }
}

impl Drop for TokenPipeEnd {
    /// Closes the fd if the end still owns one; see
    /// [`close`](TokenPipeEnd::close).
    #[inline]
    fn drop(&mut self) {
        self.close();
    }
}

/// What a one-byte `read` or `write` that did not move its byte means:
/// `Ok(())` to retry (interrupted by a signal before anything moved), or
/// the error. Called straight after the syscall, so `errno` is still its.
#[cold]
#[inline(never)]
fn retry_or_fail(n: isize) -> Result<()> {
    if n == 0 {
        return Err(Error::Eos);
    }
    match sys::errno() {
        Errno::EINTR => Ok(()),
        e => Err(Error::from_errno(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_fd_decodes_to_itself_and_never_looks_closed_or_plain() {
        for fd in [0, 1, 2, 1 << 30, (1 << 30) + 5, c_int::MAX - 1] {
            let stored = tag(fd);
            assert!(stored < CLOSED, "fd {fd} tagged as {stored}");
            assert_eq!(untag(stored), fd);
        }
    }

    #[test]
    fn every_plain_fd_and_closed_stay_as_they_are() {
        // What from_raw_fd stores, on every platform: never mistaken for a
        // tag, so no accessor changes it.
        for stored in [CLOSED, 0, 1, 1 << 30, c_int::MAX] {
            assert_eq!(fd_of(stored), stored);
        }
        assert_eq!(tag(c_int::MAX), c_int::MAX);
    }
}
