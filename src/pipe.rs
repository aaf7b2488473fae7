//! The pipe: making it, and handing out its two ends.

use crate::end::TokenPipeEnd;
use crate::error::{Error, Result};
use crate::sys;

/// An anonymous pipe that carries one-byte tokens: the port of Bitcoin
/// Core's `TokenPipe`.
///
/// Make it before `fork()` or before spawning threads, then
/// [take](Self::take_read_end) each end to the side that uses it (or
/// [`split`](Self::split) it). Both ends are blocking and close-on-exec.
/// Dropping the pipe closes whatever ends it still holds.
///
/// ```
/// use tokenpipe::TokenPipe;
///
/// let mut pipe = TokenPipe::make()?;
/// let reader = pipe.take_read_end();
/// let writer = pipe.take_write_end();
/// std::thread::spawn(move || writer.token_write(1));
/// assert_eq!(reader.token_read()?, 1);
/// # Ok::<(), tokenpipe::Error>(())
/// ```
#[derive(Debug)]
pub struct TokenPipe {
    read: TokenPipeEnd,
    write: TokenPipeEnd,
}

impl TokenPipe {
    /// Whether [`make`](Self::make) sets close-on-exec atomically on this
    /// target (`pipe2(O_CLOEXEC)`), or with `pipe` then `fcntl` (Apple).
    ///
    /// On the second path another thread's `fork`+`exec` that lands between
    /// the two calls inherits the ends; make pipes before starting threads
    /// there if that matters.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// if cfg!(target_os = "linux") {
    ///     assert!(TokenPipe::ATOMIC_CLOEXEC);
    /// }
    /// ```
    pub const ATOMIC_CLOEXEC: bool = sys::ATOMIC_CLOEXEC;

    /// Creates a pipe with both ends open, blocking and close-on-exec.
    ///
    /// One `pipe2(fds, O_CLOEXEC)` on Linux, Android, the BSDs and illumos;
    /// `pipe` then `fcntl(F_GETFD)`/`fcntl(F_SETFD, FD_CLOEXEC)` on each end
    /// elsewhere, closing both fds if that fails (see
    /// [`ATOMIC_CLOEXEC`](Self::ATOMIC_CLOEXEC)). On Apple and NetBSD also
    /// `fcntl(F_SETNOSIGPIPE)` on the write end, so this pipe never raises
    /// `SIGPIPE` (see [`token_write`](TokenPipeEnd::token_write)).
    ///
    /// # Errors
    /// [`Error::Os`] with `EMFILE` or `ENFILE` when the process or the
    /// system is out of fds. Nothing is left open on failure.
    ///
    /// # References
    /// - [Linux `pipe2`](https://man7.org/linux/man-pages/man2/pipe2.2.html)
    /// - [POSIX `pipe`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pipe.html)
    /// - [FreeBSD `pipe2`](https://man.freebsd.org/cgi/man.cgi?query=pipe2&sektion=2)
    /// - [Apple `pipe`](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/pipe.2.html)
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let mut pipe = TokenPipe::make()?;
    /// assert!(pipe.take_read_end().is_open());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "Make", alias = "pipe2", alias = "pipe")]
    pub fn make() -> Result<TokenPipe> {
        match sys::make_pipe() {
            Ok(fds) => TokenPipe::from_fds(fds),
            Err(e) => Err(Error::Os(e)),
        }
    }

    /// Creates a pipe the portable way, `pipe` then `fcntl`, even where
    /// `pipe2` exists. For testing the fallback that Apple targets use on
    /// every platform; not part of the stable API.
    #[doc(hidden)]
    pub fn make_with_fcntl() -> Result<TokenPipe> {
        match sys::pipe_then_cloexec() {
            Ok(fds) => TokenPipe::from_fds(fds),
            Err(e) => Err(Error::Os(e)),
        }
    }

    #[inline]
    fn from_fds([read, write]: [core::ffi::c_int; 2]) -> Result<TokenPipe> {
        // The fds were just returned by pipe/pipe2, so we are their only
        // owner, and each goes into exactly one end.
        let read = TokenPipeEnd::from_owned(read);
        let write = TokenPipeEnd::from_owned(write);
        // Apple and NetBSD: no SIGPIPE from a pipe made here, set once on
        // the write end's open pipe (writes fail with EPIPE instead). If
        // that fails, both ends are dropped, so nothing is left open.
        #[cfg(tokenpipe_nosigpipe)]
        let write = write.into_nosigpipe()?;
        Ok(TokenPipe { read, write })
    }

    /// Moves the read end out. A second call returns a closed end.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let mut pipe = TokenPipe::make()?;
    /// assert!(pipe.take_read_end().is_open());
    /// assert!(!pipe.take_read_end().is_open());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use = "dropping the taken end closes it"]
    #[inline]
    #[doc(alias = "TakeReadEnd")]
    pub fn take_read_end(&mut self) -> TokenPipeEnd {
        core::mem::take(&mut self.read)
    }

    /// Moves the write end out. A second call returns a closed end.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let mut pipe = TokenPipe::make()?;
    /// let writer = pipe.take_write_end();
    /// writer.token_write(7)?;
    /// assert!(!pipe.take_write_end().is_open());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use = "dropping the taken end closes it"]
    #[inline]
    #[doc(alias = "TakeWriteEnd")]
    pub fn take_write_end(&mut self) -> TokenPipeEnd {
        core::mem::take(&mut self.write)
    }

    /// Closes whichever ends the pipe still holds. Ends already taken are
    /// not affected. Calling it again does nothing.
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    ///
    /// let mut pipe = TokenPipe::make()?;
    /// let reader = pipe.take_read_end();
    /// pipe.close(); // closes the write end it still held
    /// assert_eq!(reader.token_read(), Err(Error::Eos));
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[doc(alias = "Close")]
    pub fn close(&mut self) {
        self.read.close();
        self.write.close();
    }

    /// Closes the ends this pipe held, then takes both of `other`'s,
    /// leaving `other` empty: the original's move-assignment.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let mut a = TokenPipe::make()?;
    /// let mut b = TokenPipe::make()?;
    /// a.assign_from(&mut b); // a's old ends are closed here
    /// assert!(!b.take_read_end().is_open());
    /// let (reader, writer) = a.split();
    /// writer.token_write(3)?;
    /// assert_eq!(reader.token_read()?, 3);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    pub fn assign_from(&mut self, other: &mut TokenPipe) {
        self.read.assign_from(&mut other.read);
        self.write.assign_from(&mut other.write);
    }

    /// Splits the pipe into `(read end, write end)`.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// writer.token_write(b'!')?;
    /// assert_eq!(reader.token_read()?, b'!');
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use = "dropping the ends closes them"]
    #[inline]
    pub fn split(self) -> (TokenPipeEnd, TokenPipeEnd) {
        (self.read, self.write)
    }
}
