//! The syscall layer: the only module that calls libc.
//!
//! Split by domain: [`fd`] (pipes, fcntl, read, write, poll, files),
//! [`signal`] (SIGPIPE masking), [`env`] (the environment), `process`
//! (fork, wait, kill, the daemon's set-up calls), `pidfile` (the pid file and
//! its lock) and `socket` (systemd's notify socket, both sides); [`conv`] turns
//! each return shape into a `Result` in one place. The last three exist
//! only where the platform has what they call (build.rs sets the flags). One thin function per syscall. Each takes and returns
//! plain values, reads `errno` only when the call failed, and leaves every
//! policy decision (retry on `EINTR`, what an error means) to the safe code
//! above it. None of these functions allocates.
//!
//! Everything reachable from `token_write`, `token_read`, `close` and a
//! `Notifier`'s reports is async-signal-safe. The exceptions here:
//! `strerror_r` (reached only from `Display`); `getenv` and `unsetenv`
//! (reached only from the `from_env` functions, whose contracts forbid a
//! concurrent change of the environment); `sigtimedwait`/`sigwait`, which
//! `token_write_nosignal` reaches only on `EPIPE`; and `nanosleep` and
//! `pread` (reaping without a pidfd; reading a held pid file's pid). The
//! last four are not on POSIX's list, though each is one plain system call.
//!
//! The functions are safe to call but not all are safe to *misuse*: `close`
//! on an fd that something else owns breaks that owner. They are
//! `pub(crate)`, and `close` is only ever called by the fd's owner: an end,
//! or a function here closing fds it has just opened.
#![allow(unsafe_code)]

mod conv;
pub(crate) mod env;
pub(crate) mod fd;
#[cfg(tokenpipe_fork)]
pub(crate) mod pidfile;
#[cfg(tokenpipe_fork)]
pub(crate) mod process;
#[cfg(any(tokenpipe_nosigpipe, tokenpipe_sigmask))]
pub(crate) mod signal;
#[cfg(tokenpipe_unix_socket)]
pub(crate) mod socket;

pub(crate) use env::*;
pub(crate) use fd::*;
#[cfg(tokenpipe_fork)]
pub(crate) use pidfile::*;
#[cfg(tokenpipe_fork)]
pub(crate) use process::*;
#[cfg(any(tokenpipe_nosigpipe, tokenpipe_sigmask))]
pub(crate) use signal::*;
#[cfg(tokenpipe_unix_socket)]
pub(crate) use socket::*;

use core::ffi::c_int;

use crate::error::Errno;

/// The result of one syscall: its value, or the `errno` it left.
pub(crate) type SysResult<T> = core::result::Result<T, Errno>;

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

/// A `timespec` of `sec` seconds and `nsec` nanoseconds. Built field by
/// field on a zeroed value, not with a struct literal: where musl's time_t
/// is 64 bits on a 32-bit target (OpenHarmony, Hexagon), the libc crate's
/// `timespec` has private padding fields.
/// (`sec` is an `i64` and converted with `as`: naming `libc::time_t` draws
/// the libc crate's deprecation warning on musl, whose `time_t` it plans
/// to widen.) Callers pass small values that fit every `time_t`.
#[inline]
pub(crate) fn timespec(sec: i64, nsec: i64) -> libc::timespec {
    // SAFETY: timespec is plain integers (and padding); all-zero is valid.
    let mut ts: libc::timespec = unsafe { core::mem::MaybeUninit::zeroed().assume_init() };
    ts.tv_sec = sec as _;
    ts.tv_nsec = nsec as _;
    ts
}

/// Reads the calling thread's `errno`.
///
/// Called only after a syscall reported failure, so it is off the hot path.
#[cold]
#[inline(never)]
pub(crate) fn errno() -> Errno {
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
