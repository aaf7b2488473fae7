//! `errno`: the [`Errno`] newtype the whole crate reports OS errors with,
//! and the calls that read, set and describe the calling thread's `errno`.
//!
//! It lives here, at the bottom, because every wrapper in this layer
//! returns it (as rustix keeps its `Errno` in its backend); the crate's
//! `error` module above re-exports it.

use core::ffi::c_int;
use core::fmt;

/// An OS error number (`errno`), as a `Copy` newtype over the raw `i32`.
///
/// Any `i32` is a valid `Errno`, so a value the crate has never heard of is
/// still carried and printed safely. [`Display`](fmt::Display) shows the
/// system's description and the number, with no allocation.
///
/// ```
/// use tokenpipe::Errno;
/// let e = Errno::EBADF;
/// assert_eq!(e.raw(), libc::EBADF);
/// assert!(e.to_string().contains(&format!("os error {}", libc::EBADF)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Errno(i32);

impl Errno {
    /// Interrupted system call.
    pub const EINTR: Errno = Errno(libc::EINTR);
    /// Bad file descriptor: the fd is not open, or not open for this
    /// direction (reading a write end).
    pub const EBADF: Errno = Errno(libc::EBADF);
    /// Broken pipe: no reader left.
    pub const EPIPE: Errno = Errno(libc::EPIPE);
    /// Resource temporarily unavailable (a non-blocking call would block).
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// The process has too many open files (`RLIMIT_NOFILE`).
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    /// The system has too many open files.
    pub const ENFILE: Errno = Errno(libc::ENFILE);
    /// Bad address.
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    /// Permission denied (also: a file lock held by another process).
    pub const EACCES: Errno = Errno(libc::EACCES);
    /// Input/output error.
    pub const EIO: Errno = Errno(libc::EIO);
    /// No such process: it has ended (and, for a child, been reaped).
    pub const ESRCH: Errno = Errno(libc::ESRCH);
    /// No child process to wait for.
    pub const ECHILD: Errno = Errno(libc::ECHILD);
    /// Message too long (a notify message that does not fit).
    pub const EMSGSIZE: Errno = Errno(libc::EMSGSIZE);
    /// Operation not supported (no fd passing over vsock).
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    /// Address family not supported (vsock where the system has none).
    pub const EAFNOSUPPORT: Errno = Errno(libc::EAFNOSUPPORT);
    /// Operation not permitted (a pid file owned by another user, or
    /// writable by group or others).
    pub const EPERM: Errno = Errno(libc::EPERM);
    /// Too many levels of symbolic links (`O_NOFOLLOW` met a symbolic link:
    /// a pid file path that names one).
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    /// Too many links (a pid file with a second name, a hard link).
    pub const EMLINK: Errno = Errno(libc::EMLINK);

    /// Wraps a raw errno value.
    ///
    /// ```
    /// use tokenpipe::Errno;
    /// assert_eq!(Errno::from_raw(libc::EPIPE), Errno::EPIPE);
    /// ```
    #[must_use]
    #[inline]
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The raw errno value.
    ///
    /// ```
    /// use tokenpipe::Errno;
    /// assert_eq!(Errno::EMFILE.raw(), libc::EMFILE);
    /// ```
    #[must_use]
    #[inline]
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The calling thread's current `errno`.
    ///
    /// Meaningful only right after a libc call reported failure.
    ///
    /// ```
    /// use tokenpipe::Errno;
    /// // SAFETY: closing an fd number that is certainly not open is harmless.
    /// assert_eq!(unsafe { libc::close(-5) }, -1);
    /// assert_eq!(Errno::last(), Errno::EBADF);
    /// ```
    #[must_use]
    pub fn last() -> Errno {
        errno()
    }

    /// Makes this the calling thread's `errno`.
    ///
    /// For signal handlers: a handler interrupts code that may be about to
    /// read `errno`, so it saves [`Errno::last`] on entry and restores it
    /// with this before it returns. (`token_write` changes `errno` only when
    /// it fails, but a handler's write can fail, on a full non-blocking
    /// pipe.) Async-signal-safe.
    ///
    /// ```
    /// use tokenpipe::Errno;
    ///
    /// extern "C" fn on_signal(_: libc::c_int) {
    ///     let saved = Errno::last();
    ///     // ... write a token ...
    ///     saved.set_last();
    /// }
    /// # let _ = on_signal;
    /// Errno::EINTR.set_last();
    /// assert_eq!(Errno::last(), Errno::EINTR);
    /// ```
    pub fn set_last(self) {
        set_errno(self);
    }
}

/// A raw errno value, so a call that takes `impl Into<Errno>` (such as
/// `Notifier::failed`) takes `libc::EIO` or a plain `5` as well.
///
/// ```
/// use tokenpipe::Errno;
/// assert_eq!(Errno::from(libc::EPIPE), Errno::EPIPE);
/// ```
impl From<i32> for Errno {
    #[inline]
    fn from(raw: i32) -> Errno {
        Errno(raw)
    }
}

/// The raw errno value.
impl From<Errno> for i32 {
    #[inline]
    fn from(errno: Errno) -> i32 {
        errno.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({})", self.0)
    }
}

impl fmt::Display for Errno {
    /// `Broken pipe (os error 32)`, in the format of `std::io::Error`; just
    /// `os error N` where the system has no description.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Long enough for every message of glibc, musl and the BSDs; a longer
        // one makes strerror_r fail with ERANGE and we print the number only.
        let mut buf = [0u8; 128];
        match strerror(self.0, &mut buf) {
            Some(msg) if !msg.is_empty() => write!(f, "{msg} (os error {})", self.0),
            _ => write!(f, "os error {}", self.0),
        }
    }
}

impl core::error::Error for Errno {}

// Where each libc keeps the calling thread's `errno`: build.rs names the
// function per OS (`tokenpipe_errno`), and the libc crate binds it there.
#[cfg(tokenpipe_errno = "___errno")]
use libc::___errno as errno_location;
#[cfg(tokenpipe_errno = "__errno")]
use libc::__errno as errno_location;
#[cfg(tokenpipe_errno = "__errno_location")]
use libc::__errno_location as errno_location;
#[cfg(tokenpipe_errno = "__error")]
use libc::__error as errno_location;
#[cfg(tokenpipe_errno = "__get_errno_ptr")]
use libc::__get_errno_ptr as errno_location;
#[cfg(tokenpipe_errno = "_Errno")]
use libc::_Errno as errno_location;
#[cfg(tokenpipe_errno = "_errnop")]
use libc::_errnop as errno_location;

/// Reads the calling thread's `errno`.
///
/// Called only after a syscall reported failure, so it is off the hot path.
#[cold]
#[inline(never)]
pub(crate) fn errno() -> Errno {
    errno_now()
}

/// Reads the calling thread's `errno` where the read is on a hot path (a
/// signal-safe call saving it to restore later): [`errno()`] without the
/// `#[cold]`.
#[inline]
pub(crate) fn errno_now() -> Errno {
    #[cfg(not(tokenpipe_errno = "errnoGet"))]
    // SAFETY: the errno location function has no preconditions and returns a
    // pointer to the calling thread's errno, valid for the thread's lifetime.
    let e = unsafe { *errno_location() };
    #[cfg(tokenpipe_errno = "errnoGet")]
    // SAFETY: errnoGet has no preconditions; it reads this task's errno.
    let e = unsafe { libc::errnoGet() };
    Errno::from_raw(e)
}

/// Sets the calling thread's `errno` (for handlers that restore it).
#[inline]
pub(crate) fn set_errno(e: Errno) {
    #[cfg(not(tokenpipe_errno = "errnoGet"))]
    // SAFETY: as in `errno`: the pointer is this thread's errno, valid for
    // the thread's lifetime, and writing an int there is what it is for.
    unsafe {
        *errno_location() = e.raw()
    };
    #[cfg(tokenpipe_errno = "errnoGet")]
    // SAFETY: errnoSet has no preconditions; it sets this task's errno.
    unsafe {
        libc::errnoSet(e.raw())
    };
}

/// `strerror_r(errnum, buf)`—The system's description of an errno value,
/// written into `buf` (the POSIX/XSI version on every libc; the libc crate
/// links glibc's `__xpg_strerror_r`). `None` if the system has none.
///
/// Not async-signal-safe on every libc; reached only from `Display`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/strerror.html)
/// - [Linux](https://man7.org/linux/man-pages/man3/strerror.3.html)
pub(crate) fn strerror(errnum: c_int, buf: &mut [u8]) -> Option<&str> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and strerror_r
    // writes at most that many, NUL included.
    let rc = unsafe { libc::strerror_r(errnum, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&buf[..len]).ok()
}
