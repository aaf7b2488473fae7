//! A token write that never raises `SIGPIPE`, whatever the process's
//! disposition: for libraries, which do not own the process's signal
//! handling, and for a daemon whose launcher may already be gone.

use crate::end::TokenPipeEnd;
#[cfg(any(tokenpipe_nosigpipe, tokenpipe_sigmask))]
use crate::error::Error;
use crate::error::Result;
#[cfg(any(tokenpipe_nosigpipe, tokenpipe_sigmask))]
use crate::sys;

impl TokenPipeEnd {
    /// Writes one token like [`token_write`](Self::token_write), but a
    /// write with no reader left returns [`Error::BrokenPipe`] and raises
    /// no `SIGPIPE`, even where `SIGPIPE` is at its default disposition
    /// (which would end the process).
    ///
    /// How, per platform:
    /// - **Apple and NetBSD**: `fcntl(F_SETNOSIGPIPE, 1)`, which makes the
    ///   open pipe fail writes with `EPIPE` instead of raising `SIGPIPE`.
    ///   An end the crate made or took ([`TokenPipe::make`](crate::TokenPipe::make),
    ///   [`from_env`](Self::from_env)) got it once, at creation, and
    ///   remembers that, so this is the plain write (1 syscall); an end
    ///   adopted with [`from_raw_fd`](Self::from_raw_fd) (or from an
    ///   `OwnedFd`) gets the `fcntl` on every call, then the write (2
    ///   syscalls). Once set, the flag is permanent for that open pipe in
    ///   every process that shares it (every duplicate of the fd, a child
    ///   that inherited it, the parent that handed it over): plain writes on
    ///   it raise no `SIGPIPE` either.
    /// - **Everywhere else** (Linux, Android, FreeBSD, OpenBSD, illumos):
    ///   `pthread_sigmask` blocks `SIGPIPE` in the calling thread,
    ///   `sigpending` notes whether one was already pending, the write runs,
    ///   and on `EPIPE` the `SIGPIPE` it raised is taken away (unless one was
    ///   pending before: that one is the caller's, and stays) before the old
    ///   mask is restored (4 syscalls, 5 on `EPIPE`). Other threads' masks
    ///   are untouched. The taking is `sigtimedwait` with a zero timeout,
    ///   which never waits; OpenBSD has no `sigtimedwait`, and the libc
    ///   crate binds none for illumos, so there it is `sigpending` then
    ///   `sigwait` (6 on `EPIPE`), which waits only if another thread sets
    ///   `SIGPIPE` to `SIG_IGN` (discarding the pending one) at that moment.
    /// - **Where a write raises no signal** (ESP-IDF, Horizon, Vita and
    ///   NuttX, which fail it with `EPIPE` and have no `SIGPIPE` to raise;
    ///   VxWorks, whose pipes outlive their readers): a plain write.
    /// - **RTEMS** raises `SIGPIPE` for the whole process (`kill(getpid())`),
    ///   which a thread's mask cannot hold back, so this is a plain write
    ///   there too and does *not* keep its promise: an RTEMS program that
    ///   wants `BrokenPipe` instead of the signal sets `SIGPIPE` to
    ///   `SIG_IGN`.
    ///
    /// Use plain [`token_write`](Self::token_write) where `SIGPIPE` is
    /// known to be ignored (every Rust program with a std `main`): it is
    /// one syscall. Allocation-free, and async-signal-safe in practice:
    /// every call is a plain system call in each libc, but POSIX's list of
    /// async-signal-safe functions names neither `sigtimedwait` nor
    /// `sigwait` (it does name `pthread_sigmask`, `sigpending` and
    /// `write`).
    ///
    /// # Errors
    /// As for [`token_write`](Self::token_write); [`Error::Os`] also if a
    /// signal-mask call fails (it cannot with valid arguments).
    ///
    /// # References
    /// - [POSIX `pthread_sigmask`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_sigmask.html)
    /// - [POSIX `sigpending`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigpending.html)
    /// - [POSIX `sigtimedwait`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigtimedwait.html)
    /// - [POSIX `sigwait`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigwait.html)
    /// - [POSIX `write`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
    /// - [Apple `fcntl` (`F_SETNOSIGPIPE`)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
    /// - [NetBSD `fcntl` (`F_SETNOSIGPIPE`)](https://man.netbsd.org/fcntl.2)
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// writer.token_write_nosignal(1)?;
    /// assert_eq!(reader.token_read()?, 1);
    /// drop(reader);
    /// assert_eq!(writer.token_write_nosignal(2), Err(Error::BrokenPipe));
    /// # Ok::<(), Error>(())
    /// ```
    #[doc(alias = "SIGPIPE", alias = "MSG_NOSIGNAL")]
    pub fn token_write_nosignal(&self, token: u8) -> Result<()> {
        self.open_fd()?;
        write_nosignal(self, token)
    }
}

/// One token, written by [`without_sigpipe`].
fn write_nosignal(end: &TokenPipeEnd, token: u8) -> Result<()> {
    without_sigpipe(end, || end.token_write(token))
}

/// Runs `write`, a write on `end`, so that no reader raises no `SIGPIPE`:
/// it fails with [`Error::BrokenPipe`] instead. Async-signal-safe if
/// `write` is.
#[cfg(tokenpipe_nosigpipe)]
pub(crate) fn without_sigpipe<T>(
    end: &TokenPipeEnd,
    write: impl FnOnce() -> Result<T>,
) -> Result<T> {
    // An end the crate made or took already has the flag, for good.
    if !end.has_nosigpipe() {
        sys::fcntl_set_nosigpipe(end.open_fd()?).map_err(Error::Os)?;
    }
    write()
}

#[cfg(tokenpipe_nosigpipe)]
impl TokenPipeEnd {
    /// This end, after `fcntl(F_SETNOSIGPIPE, 1)` on its open pipe, marked
    /// so that [`token_write_nosignal`](Self::token_write_nosignal) skips
    /// the `fcntl` (Apple, NetBSD). On failure the end is dropped (closed).
    pub(crate) fn into_nosigpipe(self) -> Result<TokenPipeEnd> {
        sys::fcntl_set_nosigpipe(self.open_fd()?).map_err(Error::Os)?;
        Ok(TokenPipeEnd::from_owned_nosigpipe(self.into_raw_fd()))
    }
}

#[cfg(tokenpipe_sigmask)]
pub(crate) fn without_sigpipe<T>(
    end: &TokenPipeEnd,
    write: impl FnOnce() -> Result<T>,
) -> Result<T> {
    use sys::sigpipe;

    end.open_fd()?;
    let old_mask = sigpipe::block().map_err(Error::Os)?;
    let pending_before = match sigpipe::is_pending() {
        Ok(p) => p,
        Err(e) => {
            sigpipe::restore(&old_mask);
            return Err(Error::Os(e));
        }
    };
    let result = write();
    // EPIPE raised a SIGPIPE at this thread, where it is blocked and so
    // pending. Take it away before unblocking, or it would be delivered the
    // moment the mask is restored. One pending before the write is not ours
    // (standard signals do not queue, so ours merged into it): leave it.
    // take_pending never waits, even if another thread discarded ours.
    if matches!(result, Err(Error::BrokenPipe)) && !pending_before {
        sigpipe::take_pending();
    }
    sigpipe::restore(&old_mask);
    result
}

/// Where build.rs leaves `tokenpipe_sigmask` unset without
/// `F_SETNOSIGPIPE`: a write to a pipe with no reader raises no signal at
/// all there and fails with `EPIPE` (ESP-IDF, Horizon, Vita, NuttX,
/// VxWorks), so the plain write keeps the promise; on RTEMS it cannot (see
/// `token_write_nosignal`).
#[cfg(not(any(tokenpipe_nosigpipe, tokenpipe_sigmask)))]
pub(crate) fn without_sigpipe<T>(
    end: &TokenPipeEnd,
    write: impl FnOnce() -> Result<T>,
) -> Result<T> {
    end.open_fd()?;
    write()
}
