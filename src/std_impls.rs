//! The std layer (feature `std`): `std::io` errors and traits, and the
//! `std::os::fd` ownership traits, so an end plugs into code written
//! against std.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

#[cfg(tokenpipe_fork)]
use crate::daemon::DaemonError;
use crate::end::TokenPipeEnd;
use crate::error::Error;

impl From<Error> for io::Error {
    /// Keeps the errno of `Os`, `BrokenPipe` and `WouldBlock`, so
    /// `raw_os_error()` still answers: `Os(e)` gives `e`, `BrokenPipe` gives
    /// `EPIPE` (kind `BrokenPipe`), `WouldBlock` gives `EAGAIN` (kind
    /// `WouldBlock`). The rest carry the crate's error inside: `Eos` is
    /// `UnexpectedEof`, `TimedOut` is `TimedOut`, `Closed` is
    /// `NotConnected`, `NotAChild` is `Unsupported`.
    ///
    /// ```
    /// use tokenpipe::{Errno, Error};
    /// use std::io;
    ///
    /// let e = io::Error::from(Error::Os(Errno::EMFILE));
    /// assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
    /// assert_eq!(io::Error::from(Error::Eos).kind(), io::ErrorKind::UnexpectedEof);
    /// assert_eq!(io::Error::from(Error::BrokenPipe).kind(), io::ErrorKind::BrokenPipe);
    /// ```
    fn from(e: Error) -> io::Error {
        if let Some(errno) = e.errno() {
            return io::Error::from_raw_os_error(errno.raw());
        }
        let kind = match e {
            Error::Eos => io::ErrorKind::UnexpectedEof,
            #[cfg(tokenpipe_fork)]
            Error::NotAChild => io::ErrorKind::Unsupported,
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::Closed => io::ErrorKind::NotConnected,
            #[cfg(feature = "tokio")]
            Error::NoRuntime => io::ErrorKind::Unsupported,
            // Os, BrokenPipe and WouldBlock carry an errno and returned
            // above; a variant added later lands here until it is mapped.
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(tokenpipe_fork)]
impl From<DaemonError> for io::Error {
    /// A core error converts as `Error` does (the errno kept, or the core
    /// error inside). `SetupFailed` takes the kind of its errno and keeps
    /// its step in the message (`raw_os_error()` is `None` for it). The
    /// rest carry the daemon error inside: `DiedDuringSetup` and
    /// `DiedBeforeReady` (end of stream at a known step) are
    /// `UnexpectedEof`, `AlreadyRunning` is `AlreadyExists`,
    /// `UnexpectedToken` is `InvalidData`.
    ///
    /// ```
    /// use tokenpipe::daemon::DaemonError;
    /// use tokenpipe::{Errno, Error};
    /// use std::io;
    ///
    /// let e = io::Error::from(DaemonError::Core(Error::Os(Errno::EMFILE)));
    /// assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
    /// let e = io::Error::from(DaemonError::AlreadyRunning(42));
    /// assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    /// ```
    fn from(e: DaemonError) -> io::Error {
        let kind = match e {
            DaemonError::Core(e) => return io::Error::from(e),
            // Keep the step in the message; the kind still follows the errno.
            DaemonError::SetupFailed { errno, .. } => {
                io::Error::from_raw_os_error(errno.raw()).kind()
            }
            DaemonError::DiedDuringSetup(_) | DaemonError::DiedBeforeReady => {
                io::ErrorKind::UnexpectedEof
            }
            DaemonError::AlreadyRunning(_) => io::ErrorKind::AlreadyExists,
            DaemonError::UnexpectedToken(_) => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

impl AsRawFd for TokenPipeEnd {
    /// The fd, or `-1` for a closed end (a raw fd carries no promise).
    ///
    /// ```
    /// use tokenpipe::TokenPipeEnd;
    /// use std::os::fd::AsRawFd;
    /// assert_eq!(AsRawFd::as_raw_fd(&TokenPipeEnd::new()), -1);
    /// ```
    #[inline]
    fn as_raw_fd(&self) -> RawFd {
        TokenPipeEnd::as_raw_fd(self)
    }
}

impl IntoRawFd for TokenPipeEnd {
    /// Gives up ownership; see [`TokenPipeEnd::into_raw_fd`].
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    ///
    /// let fd = IntoRawFd::into_raw_fd(TokenPipe::make()?.take_read_end());
    /// // SAFETY: we own `fd` now.
    /// drop(unsafe { OwnedFd::from_raw_fd(fd) });
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    fn into_raw_fd(self) -> RawFd {
        TokenPipeEnd::into_raw_fd(self)
    }
}

impl FromRawFd for TokenPipeEnd {
    /// Takes ownership; see [`TokenPipeEnd::from_raw_fd`] (a negative fd
    /// gives a closed end).
    ///
    /// ```
    /// use tokenpipe::{TokenPipe, TokenPipeEnd};
    /// use std::os::fd::{FromRawFd, IntoRawFd};
    ///
    /// let fd = TokenPipe::make()?.take_read_end().into_raw_fd();
    /// // SAFETY: `fd` is open and ours alone.
    /// let end: TokenPipeEnd = unsafe { FromRawFd::from_raw_fd(fd) };
    /// assert!(end.is_open());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[allow(unsafe_code)] // The trait's method is unsafe; the body forwards the contract.
    #[inline]
    unsafe fn from_raw_fd(fd: RawFd) -> TokenPipeEnd {
        // SAFETY: our caller gives the same guarantee that the inherent
        // from_raw_fd asks for: `fd` is negative or open and unowned.
        unsafe { TokenPipeEnd::from_raw_fd(fd) }
    }
}

impl TokenPipeEnd {
    /// Borrows the fd, or gives [`Error::Closed`] for a closed end: the
    /// fallible form of [`AsFd::as_fd`].
    ///
    /// # Errors
    /// [`Error::Closed`] if the end is closed.
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe, TokenPipeEnd};
    ///
    /// let reader = TokenPipe::make()?.take_read_end();
    /// assert!(reader.try_as_fd().is_ok());
    /// assert_eq!(TokenPipeEnd::new().try_as_fd().err(), Some(Error::Closed));
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    pub fn try_as_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        if !self.is_open() {
            return Err(Error::Closed);
        }
        #[allow(unsafe_code)]
        // SAFETY: the end is open, so the fd is not -1 and stays open while
        // `self` is borrowed: only `close`, `assign_from` and `into_raw_fd`
        // release it, and all need `&mut self` or `self`.
        Ok(unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) })
    }
}

impl AsFd for TokenPipeEnd {
    /// Borrows the fd of an open end.
    ///
    /// # Panics
    /// On a closed end, with a message that says so. A `BorrowedFd` must
    /// name an open fd (never `-1`), the trait has no way to report an
    /// error, and a made-up number would break I/O safety for the caller:
    /// code holding a `BorrowedFd` may pass it to `FD_SET` or `poll` and
    /// trust it. This, `as_fd` on a `DaemonParent` or `ReadyChild`
    /// without a pidfd, and `as_fd` on a `SignalInterrupt` whose pipe
    /// cannot be made, are the library's only panics; use
    /// [`TokenPipeEnd::try_as_fd`] or check
    /// [`is_open`](TokenPipeEnd::is_open) where an end may be closed.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::os::fd::{AsFd, AsRawFd};
    ///
    /// let reader = TokenPipe::make()?.take_read_end();
    /// assert_eq!(reader.as_fd().as_raw_fd(), reader.as_raw_fd());
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[track_caller]
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.try_as_fd() {
            Ok(fd) => fd,
            Err(_) => closed_as_fd(),
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn closed_as_fd() -> ! {
    panic!(
        "AsFd::as_fd called on a closed TokenPipeEnd; a closed end has no fd to \
         borrow (use TokenPipeEnd::try_as_fd or check is_open first)"
    )
}

impl From<OwnedFd> for TokenPipeEnd {
    /// Takes ownership of the fd.
    ///
    /// ```
    /// use tokenpipe::{TokenPipe, TokenPipeEnd};
    /// use std::os::fd::OwnedFd;
    ///
    /// let (r, w) = TokenPipe::make()?.split();
    /// let owned = OwnedFd::try_from(w)?;
    /// let writer = TokenPipeEnd::from(owned);
    /// writer.token_write(9)?;
    /// assert_eq!(r.token_read()?, 9);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    fn from(fd: OwnedFd) -> TokenPipeEnd {
        TokenPipeEnd::from_owned(fd.into_raw_fd())
    }
}

impl TryFrom<TokenPipeEnd> for OwnedFd {
    type Error = Error;

    /// Hands the fd to std. A closed end has no fd: [`Error::Closed`].
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe, TokenPipeEnd};
    /// use std::os::fd::OwnedFd;
    ///
    /// assert!(OwnedFd::try_from(TokenPipe::make()?.take_read_end()).is_ok());
    /// assert_eq!(OwnedFd::try_from(TokenPipeEnd::new()).err(), Some(Error::Closed));
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    fn try_from(end: TokenPipeEnd) -> Result<OwnedFd, Error> {
        if !end.is_open() {
            return Err(Error::Closed);
        }
        let fd = end.into_raw_fd();
        #[allow(unsafe_code)]
        // SAFETY: `fd` is open (checked above) and `into_raw_fd` gave up the
        // end's ownership, so the OwnedFd becomes its only owner.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// One `read(2)` into `buf`, `Ok(0)` at end of stream, as `io::Read` wants.
fn io_read(end: &TokenPipeEnd, buf: &mut [u8]) -> io::Result<usize> {
    match end.read_tokens(buf) {
        Ok(n) => Ok(n),
        Err(Error::Eos) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// One `write(2)` of `buf`, as `io::Write` wants.
fn io_write(end: &TokenPipeEnd, buf: &[u8]) -> io::Result<usize> {
    match end.write_tokens(buf) {
        Ok(n) => Ok(n),
        Err(Error::Eos) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

impl io::Read for &TokenPipeEnd {
    /// One `read(2)`, retried on `EINTR`; `Ok(0)` at end of stream.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::io::{Read, Write};
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// (&writer).write_all(b"ok")?;
    /// drop(writer);
    /// let mut got = Vec::new();
    /// (&reader).read_to_end(&mut got)?;
    /// assert_eq!(got, b"ok");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io_read(self, buf)
    }
}

impl io::Read for TokenPipeEnd {
    /// As for `&TokenPipeEnd`.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::io::Read;
    ///
    /// let (mut reader, writer) = TokenPipe::make()?.split();
    /// writer.token_write(5)?;
    /// let mut b = [0u8; 1];
    /// reader.read_exact(&mut b)?;
    /// assert_eq!(b, [5]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io_read(self, buf)
    }
}

impl io::Write for &TokenPipeEnd {
    /// One `write(2)`, retried on `EINTR`.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::io::Write;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// (&writer).write_all(&[1])?;
    /// assert_eq!(reader.token_read()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io_write(self, buf)
    }

    /// Nothing to do: a pipe has no user-space buffer.
    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Write for TokenPipeEnd {
    /// As for `&TokenPipeEnd`.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::io::Write;
    ///
    /// let (reader, mut writer) = TokenPipe::make()?.split();
    /// writer.write_all(&[2])?;
    /// writer.flush()?;
    /// assert_eq!(reader.token_read()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io_write(self, buf)
    }

    /// Nothing to do: a pipe has no user-space buffer.
    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(tokenpipe_fork)]
impl crate::process::Process {
    /// The pidfd as a `BorrowedFd`, for the `pidfd()` and `AsFd` of
    /// `DaemonParent` and `ReadyChild`; `None` where there is none.
    pub(crate) fn borrowed_pidfd(&self) -> Option<BorrowedFd<'_>> {
        #[allow(unsafe_code)]
        // SAFETY: the pidfd is open and owned by `self`, which closes it
        // only when dropped, so it outlives the borrow.
        self.pidfd().map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
    }
}

#[cfg(all(tokenpipe_linux_like, tokenpipe_fork))]
impl AsFd for crate::daemon::DaemonParent {
    /// Borrows the daemon's pidfd (see
    /// [`DaemonParent::pidfd`](crate::daemon::DaemonParent::pidfd)).
    ///
    /// # Panics
    /// Where the kernel gave no pidfd (Linux before 5.3, or a seccomp
    /// filter that forbids `pidfd_open`), for the reason
    /// [`TokenPipeEnd`'s `as_fd`](TokenPipeEnd#impl-AsFd-for-TokenPipeEnd)
    /// panics on a closed end: a `BorrowedFd` must name an open fd and the
    /// trait cannot report an error. Use `pidfd()` where that can happen.
    #[track_caller]
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.pidfd() {
            Some(fd) => fd,
            None => crate::process::no_pidfd("DaemonParent"),
        }
    }
}

impl crate::SignalInterrupt {
    /// Borrows the read end (making the pipe on first use): the fallible
    /// form of [`AsFd::as_fd`]. See [`as_raw_fd`](crate::SignalInterrupt::as_raw_fd).
    ///
    /// # Errors
    /// [`Error::Os`] if the pipe cannot be made.
    ///
    /// ```
    /// use tokenpipe::SignalInterrupt;
    /// use std::os::fd::AsRawFd;
    ///
    /// let stop = SignalInterrupt::new();
    /// let fd = stop.try_as_fd()?;
    /// assert_eq!(fd.as_raw_fd(), stop.as_raw_fd()?);
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    pub fn try_as_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        let fd = self.as_raw_fd()?;
        #[allow(unsafe_code)]
        // SAFETY: a made pipe's read end is open and not -1, and stays open
        // while `self` is borrowed: only Drop closes it, and, in a fork's
        // child, the first use there, which swaps the parent's pipe for the
        // child's (a borrow held across a fork then names a closed number or
        // the child's new read end: the type's "fork" section says so and
        // asks a child to borrow again).
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }
}

impl AsFd for crate::SignalInterrupt {
    /// Borrows the read end, making the pipe on first use: readable
    /// exactly while the interrupt is triggered.
    ///
    /// # Panics
    /// Only if the pipe cannot be made (the process is out of fds), as
    /// `as_fd` of a closed [`TokenPipeEnd`] does: the trait cannot report
    /// an error and a made-up fd would break I/O safety. Use
    /// [`try_as_fd`](crate::SignalInterrupt::try_as_fd) to handle that.
    #[track_caller]
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self.try_as_fd() {
            Ok(fd) => fd,
            Err(e) => no_interrupt_pipe(e),
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn no_interrupt_pipe(e: Error) -> ! {
    panic!("SignalInterrupt::as_fd: cannot make the pipe ({e}); use try_as_fd to handle this")
}
