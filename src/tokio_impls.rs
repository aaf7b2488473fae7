//! The `tokio` feature: the crate's fds on tokio's reactor, registered
//! soundly, so that async users never write `unsafe` for them.
//!
//! tokio 1.54 made `AsyncFd::new` deprecated and its replacement,
//! `AsyncFd::register`, `unsafe`: the fd must stay open, and name the same
//! open file, for as long as it is registered, or the reactor watches (and
//! later deregisters) whatever file takes the number next. [`register`] is
//! the one place this crate calls it, and only for values that own their
//! fd and are never handed out mutably while registered: an [`OwnedFd`]
//! made by `dup` for this registration alone, or a [`TokenPipeEnd`] kept
//! private inside an [`AsyncTokenPipeEnd`].

use core::future::poll_fn;
use core::task::Poll;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};

/// A value whose fd stays open, and the same, for as long as the value
/// lives and is not mutably borrowed: what [`register`] requires.
trait OwnsItsFd: AsRawFd {}
impl OwnsItsFd for OwnedFd {}
impl OwnsItsFd for TokenPipeEnd {}

/// Registers `inner` with the current runtime's reactor. Fails with
/// [`Error::NoRuntime`] outside a runtime, where tokio would panic.
fn register<T: OwnsItsFd>(
    inner: T,
    interest: Interest,
) -> core::result::Result<AsyncFd<T>, (Error, T)> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err((Error::NoRuntime, inner));
    }
    #[allow(unsafe_code)]
    // SAFETY: `T` owns its fd (`OwnsItsFd`): the fd is open, and stays open
    // and the same while the AsyncFd owns `inner`, because this crate never
    // takes `inner` out mutably while it is registered (no `get_mut`, no
    // `close`); the AsyncFd deregisters it before `inner` drops.
    let registered = unsafe { AsyncFd::register_with_interest(inner, interest) };
    registered.map_err(|e| {
        let (inner, cause) = e.into_parts();
        (os_error(&cause), inner)
    })
}

/// A registration of its own for an fd someone else owns: a duplicate
/// (`fcntl(F_DUPFD_CLOEXEC)`), so that closing the original while this is
/// registered cannot leave the reactor watching a reused number, and so
/// that any number of tasks can watch one fd (epoll refuses the same fd
/// twice).
pub(crate) fn watch(fd: BorrowedFd<'_>) -> Result<AsyncFd<OwnedFd>> {
    let own = fd.try_clone_to_owned().map_err(|e| os_error(&e))?;
    register(own, Interest::READABLE).map_err(|(e, _)| e)
}

/// The first of `fds` to be readable (its readiness cleared: the caller
/// reads everything there is next, and a readiness that comes after that is
/// an edge of its own, which tokio keeps), or `limit` passing: `Ok(false)`
/// for the latter.
pub(crate) async fn any_readable(fds: &[&AsyncFd<OwnedFd>], limit: Duration) -> Result<bool> {
    let sleep = tokio::time::sleep(limit);
    let mut sleep = core::pin::pin!(sleep);
    poll_fn(|cx| {
        for fd in fds {
            if let Poll::Ready(ready) = fd.poll_read_ready(cx) {
                return Poll::Ready(match ready {
                    Ok(mut guard) => {
                        guard.clear_ready();
                        Ok(true)
                    }
                    Err(e) => Err(os_error(&e)),
                });
            }
        }
        sleep.as_mut().poll(cx).map(|()| Ok(false))
    })
    .await
}

/// The errno of a failure from tokio or a `dup`, or `EIO` for one without
/// (the reactor has shut down).
fn os_error(e: &io::Error) -> Error {
    Error::Os(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// How often [`SignalInterrupt::triggered`](crate::SignalInterrupt::triggered)
/// looks at the flag where it cannot wait on the pipe.
const FLAG_CADENCE: Duration = Duration::from_millis(10);

/// A [`TokenPipeEnd`] for tokio: non-blocking, registered with the runtime,
/// and awaited instead of blocking a thread. Made by
/// [`TokenPipeEnd::into_async`]; [`into_end`](Self::into_end) gives the
/// blocking end back.
///
/// Each call is one `read` or `write` once the reactor says the pipe is
/// ready (one more when readiness was stale), and each is cancel-safe: a
/// call dropped before it completes has moved no token. Calls take `&self`,
/// so several tasks may share one end (in an `Arc`).
///
/// ```
/// use tokenpipe::{Error, TokenPipe};
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let (reader, writer) = TokenPipe::make()?.split();
///     let (reader, writer) = (reader.into_async()?, writer.into_async()?);
///     let sender = tokio::spawn(async move {
///         writer.token_write(7).await?;
///         writer.write_tokens(b"ab").await
///     });
///     assert_eq!(reader.token_read().await?, 7);
///     let mut buf = [0u8; 4];
///     assert_eq!(reader.read_tokens(&mut buf).await?, 2);
///     assert_eq!(sender.await.expect("the sender ran"), Ok(2));
///     // The writer is gone: end of stream, as for the blocking end.
///     assert_eq!(reader.token_read().await, Err(Error::Eos));
///     Ok::<(), Error>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AsyncTokenPipeEnd {
    fd: AsyncFd<TokenPipeEnd>,
}

/// Why [`TokenPipeEnd::into_async`] failed, with the end it was given,
/// unchanged but for its mode: nothing is closed or lost.
#[derive(Debug)]
pub struct IntoAsyncError {
    /// Why: [`Error::Closed`] for a closed end, [`Error::NoRuntime`]
    /// outside a tokio runtime, [`Error::Os`] if `fcntl` or the reactor
    /// refused.
    pub error: Error,
    /// The end, as it was given.
    pub end: TokenPipeEnd,
}

impl core::fmt::Display for IntoAsyncError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "could not register the pipe end with tokio: {}",
            self.error
        )
    }
}

impl std::error::Error for IntoAsyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<IntoAsyncError> for Error {
    /// The cause; the end is dropped (closed).
    fn from(e: IntoAsyncError) -> Error {
        e.error
    }
}

impl TokenPipeEnd {
    /// This end for tokio (feature `tokio`): made non-blocking and
    /// registered with the current runtime's reactor. Must be called within
    /// a runtime that has IO and time enabled (`enable_all`): outside any
    /// runtime it fails with [`Error::NoRuntime`].
    ///
    /// Non-blocking mode belongs to the open pipe, not to this fd: a
    /// duplicate of this end (in a forked child, say) is non-blocking too.
    ///
    /// # Errors
    /// [`IntoAsyncError`], holding this end back unchanged (but for its
    /// mode, which is put back where it can be): a closed end, no runtime,
    /// or a refusal from `fcntl` or the reactor.
    pub fn into_async(self) -> core::result::Result<AsyncTokenPipeEnd, IntoAsyncError> {
        if let Err(error) = self.open_fd() {
            return Err(IntoAsyncError { error, end: self });
        }
        let was_nonblocking = self.is_nonblocking().unwrap_or(false);
        if let Err(error) = self.set_nonblocking(true) {
            return Err(IntoAsyncError { error, end: self });
        }
        match register(self, Interest::READABLE | Interest::WRITABLE) {
            Ok(fd) => Ok(AsyncTokenPipeEnd { fd }),
            Err((error, end)) => {
                if !was_nonblocking {
                    let _ = end.set_nonblocking(false);
                }
                Err(IntoAsyncError { error, end })
            }
        }
    }
}

impl AsyncTokenPipeEnd {
    /// Waits for a token and reads it: the async
    /// [`TokenPipeEnd::token_read`].
    ///
    /// # Errors
    /// As for [`TokenPipeEnd::token_read`] ([`Error::Eos`] once every
    /// writer is gone), never [`Error::WouldBlock`]; [`Error::Os`] if the
    /// reactor fails.
    pub async fn token_read(&self) -> Result<u8> {
        self.io(Interest::READABLE, TokenPipeEnd::token_read).await
    }

    /// Waits for room and writes one token: the async
    /// [`TokenPipeEnd::token_write`].
    ///
    /// # Errors
    /// As for [`TokenPipeEnd::token_write`], never [`Error::WouldBlock`].
    pub async fn token_write(&self, token: u8) -> Result<()> {
        self.io(Interest::WRITABLE, |end| end.token_write(token))
            .await
    }

    /// Waits for at least one token and reads as many as are there, up to
    /// `buf.len()`, with one `read`: the async
    /// [`TokenPipeEnd::read_tokens`]. An empty `buf` returns `Ok(0)` at
    /// once.
    ///
    /// # Errors
    /// As for [`TokenPipeEnd::read_tokens`], never [`Error::WouldBlock`].
    pub async fn read_tokens(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.io(Interest::READABLE, |end| end.read_tokens(buf))
            .await
    }

    /// Waits for room and writes as many of `tokens` as fit, with one
    /// `write`: the async [`TokenPipeEnd::write_tokens`] (up to
    /// [`PIPE_BUF`](crate::PIPE_BUF) bytes go in whole or not at all).
    ///
    /// # Errors
    /// As for [`TokenPipeEnd::write_tokens`], never [`Error::WouldBlock`].
    pub async fn write_tokens(&self, tokens: &[u8]) -> Result<usize> {
        if tokens.is_empty() {
            return Ok(0);
        }
        self.io(Interest::WRITABLE, |end| end.write_tokens(tokens))
            .await
    }

    /// The blocking end back, deregistered and in blocking mode again.
    ///
    /// # Errors
    /// [`IntoAsyncError`] if blocking mode cannot be set back (`fcntl`);
    /// the end, still non-blocking, is in it.
    pub fn into_end(self) -> core::result::Result<TokenPipeEnd, IntoAsyncError> {
        let end = self.fd.into_inner();
        match end.set_nonblocking(false) {
            Ok(()) => Ok(end),
            Err(error) => Err(IntoAsyncError { error, end }),
        }
    }

    /// The end, for the calls that do not wait (`is_open`,
    /// `as_raw_fd`, ...).
    #[must_use]
    pub fn get_ref(&self) -> &TokenPipeEnd {
        self.fd.get_ref()
    }

    /// One try of `op` each time the reactor says `interest` is ready,
    /// until it does not say "would block".
    async fn io<T>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&TokenPipeEnd) -> Result<T>,
    ) -> Result<T> {
        loop {
            let mut guard = self.fd.ready(interest).await.map_err(|e| os_error(&e))?;
            match op(self.fd.get_ref()) {
                Err(Error::WouldBlock) => guard.clear_ready_matching(ready_of(interest)),
                done => return done,
            }
        }
    }
}

fn ready_of(interest: Interest) -> tokio::io::Ready {
    if interest.is_readable() {
        tokio::io::Ready::READABLE
    } else {
        tokio::io::Ready::WRITABLE
    }
}

impl AsRawFd for AsyncTokenPipeEnd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }
}

impl AsFd for AsyncTokenPipeEnd {
    /// Borrows the fd; never panics (an `AsyncTokenPipeEnd` is always
    /// open).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

impl crate::SignalInterrupt {
    /// Waits, without blocking the runtime, until the interrupt is
    /// triggered (feature `tokio`); at once if it already is. Every task
    /// awaiting it wakes on one trigger, since waiting never takes the
    /// token ([`reset`](Self::reset) does). Cancel-safe: dropping the future
    /// changes nothing.
    ///
    /// Each call registers a duplicate of the read end with the reactor
    /// (`fcntl(F_DUPFD_CLOEXEC)`, then `epoll_ctl` or `kevent`) for as long
    /// as it waits, so any number of tasks can wait on one interrupt; one
    /// that is triggered already makes no syscall. Where the pipe cannot be
    /// made or the fd registered (the process is out of fds), it looks at
    /// the flag every 10 ms instead: a stop is never missed, nor reported
    /// as an error.
    ///
    /// # Errors
    /// Only [`Error::NoRuntime`], outside a tokio runtime (unless the
    /// interrupt is triggered already).
    ///
    /// ```
    /// use tokenpipe::SignalInterrupt;
    /// use std::sync::Arc;
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// rt.block_on(async {
    ///     let stop = Arc::new(SignalInterrupt::new());
    ///     let waiters: Vec<_> = (0..3)
    ///         .map(|_| {
    ///             let stop = Arc::clone(&stop);
    ///             tokio::spawn(async move { stop.triggered().await })
    ///         })
    ///         .collect();
    ///     tokio::task::yield_now().await; // let them start waiting
    ///     stop.trigger()?;
    ///     for waiter in waiters {
    ///         waiter.await.expect("the waiter ran")?;
    ///     }
    ///     Ok::<(), tokenpipe::Error>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn triggered(&self) -> Result<()> {
        if self.is_triggered() {
            return Ok(());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime);
        }
        let mut fd = self.try_as_fd().ok().and_then(|fd| watch(fd).ok());
        loop {
            // After registering: a trigger since the look above is either
            // seen here or is an edge the reactor reports.
            if self.is_triggered() {
                return Ok(());
            }
            let Some(registered) = &fd else {
                tokio::time::sleep(FLAG_CADENCE).await;
                continue;
            };
            match registered.readable().await {
                Ok(mut guard) => {
                    // The flag is set before the token is written, so a
                    // readable pipe with the flag clear is a token a reset
                    // took (or someone read): wait again, dropping only that
                    // readiness.
                    if self.is_triggered() {
                        return Ok(());
                    }
                    guard.clear_ready();
                }
                Err(_) => fd = None,
            }
        }
    }
}
