//! Bitcoin Core's TokenPipe for Rust: an anonymous pipe that carries
//! one-byte tokens, with a `#![no_std]`, allocation-free core over raw libc
//! calls.
//!
//! It solves two old Unix problems with one small primitive:
//!
//! - **The daemon hand-shake.** A launcher makes a pipe and forks; the
//!   child, once it has detached and initialised, writes one token ("up" or
//!   "failed") and the launcher exits with the matching status. If the child
//!   dies first, every write end is closed and the launcher reads
//!   [`Error::Eos`] instead of hanging.
//! - **The self-pipe.** A signal handler (or any thread) writes one token;
//!   the threads waiting on the pipe wake up and shut the program down
//!   cleanly. [`SignalInterrupt`] is that job as a type (Bitcoin Core's
//!   `util::SignalInterrupt`): a `static` with a safe signal handler and
//!   any number of waiters.
//!
//! Every operation is one system call ([`TokenPipe::make`] one `pipe2` on
//! Linux, [`token_write`](TokenPipeEnd::token_write) one `write`,
//! [`token_read`](TokenPipeEnd::token_read) one `read`, retried only on
//! `EINTR`), and everything reachable from writing, reading and closing is
//! async-signal-safe and allocation-free, so it works in a forked child and
//! inside a signal handler. Both ends are close-on-exec from creation, and
//! each fd is closed exactly once.
//!
//! ```
//! use tokenpipe::{Error, TokenPipe};
//!
//! let mut pipe = TokenPipe::make()?;
//! let reader = pipe.take_read_end();
//! let writer = pipe.take_write_end();
//!
//! std::thread::spawn(move || {
//!     writer.token_write(1).expect("reader is alive");
//!     // `writer` drops here: its fd is closed.
//! });
//!
//! assert_eq!(reader.token_read()?, 1);
//! assert_eq!(reader.token_read(), Err(Error::Eos)); // every writer is gone
//! # Ok::<(), Error>(())
//! ```
//!
//! Beyond the original, for the people who use it: waiting with a deadline
//! ([`TokenPipeEnd::token_read_timeout`]), non-blocking ends and
//! [`drain`](TokenPipeEnd::drain) for self-pipes, batches
//! ([`write_tokens`](TokenPipeEnd::write_tokens),
//! [`read_tokens`](TokenPipeEnd::read_tokens), [`PIPE_BUF`]), a write that
//! never raises `SIGPIPE` ([`token_write_nosignal`](TokenPipeEnd::token_write_nosignal)),
//! handing an end to a program across `exec`
//! ([`from_env`](TokenPipeEnd::from_env), `pass_to`), and bitcoind's daemon
//! hand-shake as a module ([`daemon::fork_daemon`]), hardened (no fd on
//! 0–2, no lost child) and complete: process control with a pidfd
//! ([`ChildExit`]), a locked pid file, umask and double fork. The
//! [`ready`] module tells any launcher "I am up" (this crate's pipe,
//! systemd's notify socket, s6-style fds) and, with `std`, launches a
//! program and waits for its report, its death or a timeout.
//!
//! # Features
//! - `std` (default): `From<Error> for std::io::Error`, `std::io::Read` and
//!   `Write` for ends, and the `std::os::fd` traits (`AsFd`, `AsRawFd`,
//!   `FromRawFd`, `IntoRawFd`, `OwnedFd` conversions). Without it the crate
//!   is `#![no_std]` and uses no allocator.
//! - `tokio` (implies `std`): the waits as futures on tokio's reactor, with
//!   the crate's fds registered soundly so that callers write no `unsafe`:
//!   `ready::launch_async` (cancellation kills and reaps the program),
//!   `ReadyChild::exited`, `SignalInterrupt::triggered` and
//!   `TokenPipeEnd::into_async` (`AsyncTokenPipeEnd`). Without it nothing
//!   of tokio is built.
//!
//! # Platforms
//! Every Unix Rust knows builds the crate; what each offers is decided once,
//! in `build.rs`, from the platform's documentation and the libc crate's
//! bindings (`docs/platforms.md` in the repository says how each was
//! tested):
//!
//! - **Everything** on Linux (glibc, musl, uClibc, OpenHarmony), Android,
//!   macOS, iOS and visionOS, FreeBSD, NetBSD, OpenBSD, DragonFly, illumos,
//!   Solaris, Haiku, QNX Neutrino, Hurd and Cygwin. Redox too, but a pid
//!   file there fails with `EOPNOTSUPP` (no record locks).
//! - **No [`daemon`] module, no `ChildExit` and no `ready::launch`** where
//!   there is no `fork`: tvOS and watchOS (forbidden), Fuchsia, L4Re,
//!   Emscripten, VxWorks, and the single-program systems ESP-IDF, NuttX,
//!   RTEMS, Horizon (3DS) and Vita. The token pipe, timeouts, batches and
//!   the notifier's pipe and fd channels work there; systemd's socket only
//!   where there are Unix-domain sockets that carry fds. There
//!   [`token_write_nosignal`](TokenPipeEnd::token_write_nosignal) is a
//!   plain write: a write to a pipe with no reader raises no signal on
//!   these systems, except RTEMS (see its docs).
//! - **An empty library** where there is no pipe to wrap: Windows (the
//!   original has no Windows build, and Windows has no `fork`), WASI, bare
//!   metal, and the Unix targets whose libc binding has no pipe (QuRT) or
//!   does not build (LynxOS-178, managarm, Linux without a libc, QNX 8.0,
//!   32-bit x86 QNX 7.0), so a
//!   workspace that also builds for them is not broken by this crate.
#![cfg_attr(not(feature = "std"), no_std)]
// docs.rs (`--cfg docsrs`, nightly) marks what exists only on some
// targets or with some features; the build's own flags stand for platform
// facts, so the items they gate say the platform instead.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    docsrs,
    doc(auto_cfg(hide(
        tokenpipe_loom,
        tokenpipe_sys,
        tokenpipe_cloexec,
        tokenpipe_fionbio,
        tokenpipe_nosigpipe,
        tokenpipe_sigmask,
        tokenpipe_sigtimedwait,
        tokenpipe_pollnval,
        tokenpipe_fork,
        tokenpipe_sigaction,
        tokenpipe_sa_restart,
        tokenpipe_exec,
        tokenpipe_unix_socket,
        tokenpipe_sock_cloexec,
        tokenpipe_record_locks,
        tokenpipe_cmsg_cloexec,
        tokenpipe_linux_like,
        tokenpipe_heapless,
        tokenpipe_pass_to,
        tokenpipe_launch,
        tokenpipe_force_no_pidfd
    )))
)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(tokenpipe_sys)]
mod batch;
#[cfg(tokenpipe_fork)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod daemon;
#[cfg(tokenpipe_sys)]
mod end;
#[cfg(tokenpipe_sys)]
mod error;
#[cfg(tokenpipe_sys)]
mod handoff;
#[cfg(tokenpipe_sys)]
pub mod interrupt;
// A loom model of the interrupt's state word as of b01f484 (item 6).
#[cfg(all(test, tokenpipe_loom, tokenpipe_sys))]
mod interrupt_model;
#[cfg(tokenpipe_sys)]
mod nosignal;
#[cfg(tokenpipe_sys)]
mod pipe;
#[cfg(tokenpipe_fork)]
mod process;
#[cfg(tokenpipe_sys)]
pub mod ready;
#[cfg(all(tokenpipe_sys, feature = "std"))]
mod std_impls;
#[cfg(tokenpipe_sys)]
mod sync;
#[cfg(tokenpipe_sys)]
mod sys;
#[cfg(all(tokenpipe_sys, feature = "tokio"))]
mod tokio_impls;
#[cfg(tokenpipe_sys)]
mod wait;

#[cfg(tokenpipe_sys)]
pub use batch::PIPE_BUF;
#[cfg(tokenpipe_sys)]
pub use end::TokenPipeEnd;
#[cfg(tokenpipe_sys)]
pub use error::{Errno, Error, Result, TS_EOS, TS_ERR};
#[cfg(tokenpipe_sys)]
pub use handoff::{ENV_VALUE_LEN, HandoffError, parse_env_value};
#[cfg(tokenpipe_sys)]
pub use interrupt::SignalInterrupt;
#[cfg(tokenpipe_sys)]
pub use pipe::TokenPipe;
#[cfg(tokenpipe_fork)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use process::ChildExit;
#[cfg(all(tokenpipe_sys, feature = "tokio"))]
pub use tokio_impls::{AsyncTokenPipeEnd, IntoAsyncError};

// The README's recipes are compiled and run as doc tests, so the first code
// a newcomer copies is known to work. They need std, fork and exec (one of
// them is `ready::launch`), so they run where `launch` exists.
#[cfg(all(doctest, tokenpipe_launch))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
