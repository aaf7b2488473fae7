//! The syscall layer: the only module that calls libc.
//!
//! Split by domain: [`errno`](mod@errno) (the [`Errno`] type every
//! wrapper returns, and reading, setting and describing `errno`), [`fd`]
//! (pipes, fcntl, read, write, poll, files), [`signal`] (SIGPIPE masking),
//! [`sigaction`] (the interrupt's handlers and fork detection),
//! [`env`](mod@env) (the environment), `process` (fork, wait, kill, the
//! daemon's set-up calls), `pidfile` (the pid file and its lock), `exec` (a launch's own `execve`,
//! for what `Command` cannot say; its plan allocates, in the parent) and
//! `socket` (systemd's notify socket, both sides); [`conv`] turns each
//! return shape into a `Result` in one place. The last three exist only
//! where the platform has what they call (build.rs sets the flags). This
//! layer imports nothing from the rest of the crate. One thin function per
//! syscall. Each takes and returns
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
pub(crate) mod errno;
#[cfg(tokenpipe_launch)]
pub(crate) mod exec;
pub(crate) mod fd;
#[cfg(tokenpipe_fork)]
pub(crate) mod pidfile;
#[cfg(tokenpipe_fork)]
pub(crate) mod process;
pub(crate) mod sigaction;
#[cfg(any(tokenpipe_nosigpipe, tokenpipe_sigmask))]
pub(crate) mod signal;
#[cfg(tokenpipe_unix_socket)]
pub(crate) mod socket;
#[cfg(tokenpipe_sigaction)]
pub(crate) mod static_ref;

pub(crate) use env::*;
pub(crate) use errno::*;
#[cfg(tokenpipe_launch)]
pub(crate) use exec::*;
pub(crate) use fd::*;
#[cfg(tokenpipe_fork)]
pub(crate) use pidfile::*;
#[cfg(tokenpipe_fork)]
pub(crate) use process::*;
pub(crate) use sigaction::*;
#[cfg(any(tokenpipe_nosigpipe, tokenpipe_sigmask))]
pub(crate) use signal::*;
#[cfg(tokenpipe_unix_socket)]
pub(crate) use socket::*;

/// The result of one syscall: its value, or the `errno` it left.
pub(crate) type SysResult<T> = core::result::Result<T, Errno>;

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
