//! The daemon hand-shake: bitcoind's `fork_daemon`, hardened, with the
//! rest of what `daemon(7)` asks of a daemon.
//!
//! The launcher calls [`fork_daemon`]. The child detaches (new session,
//! optionally a second fork, a umask, a locked pid file, `/` as working
//! directory, stdio on `/dev/null`) and reports its set-up; only then does
//! `fork_daemon` return in the launcher. The daemon initialises and reports
//! with [`ReadyNotifier::notify`]; the launcher learns the outcome from
//! [`DaemonParent::wait_ready`], and can signal and reap the daemon
//! ([`kill`](DaemonParent::kill), [`try_wait`](DaemonParent::try_wait),
//! [`wait`](DaemonParent::wait)).
//!
//! What can go wrong is handled, not left to the caller:
//! - **End of stream is never success.** bitcoind's own launcher treated a
//!   read error or end of stream as success; this port does not.
//! - **No child is lost.** On every failure during set-up the launcher
//!   gives the child a moment to exit, kills it if it has not, reaps it,
//!   and returns an error that says what happened (the failed step and its
//!   errno, or the child's exit status).
//! - **Closed stdio is harmless.** A launcher started with fds 0, 1 or 2
//!   closed gets its pipe there from the kernel; every fd this module keeps
//!   across the fork is moved to 3 or above first, so the daemon's
//!   `/dev/null` redirection cannot close it, and the launcher never blocks
//!   in `waitpid` on a daemon that is alive.
//! - **The pid can never name a stranger.** On Linux 5.3+ the launcher
//!   holds a pidfd, opened before the child can be reaped; elsewhere it
//!   signals by pid only while the child is provably unreaped.
//!
//! ```standalone_crate
//! use tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
//!
//! // SAFETY: this program has no other threads.
//! match unsafe { fork_daemon(DaemonOptions::new()) }? {
//!     Forked::Parent(mut daemon) => {
//!         let ready = daemon.wait_ready()?;
//!         assert!(ready, "daemon {} failed to come up", daemon.pid());
//!         // A real launcher would now exit(0), leaving the daemon running.
//!     }
//!     Forked::Child(daemon) => {
//!         let initialised = true; // initialise the daemon here
//!         daemon.notifier.notify(initialised)?;
//!         // ... serve; this example just ends.
//!         std::process::exit(0);
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod child;
mod error;
mod options;
mod parent;
mod pid_file;
mod report;

use crate::end::TokenPipeEnd;
use crate::error::Error;
use crate::pipe::TokenPipe;
use crate::sys;

use child::Fault;

pub use crate::process::ChildExit;
pub use child::DaemonChild;
pub use error::{DaemonError, SetupStep};
pub use options::DaemonOptions;
#[cfg(feature = "std")]
pub use options::PidFilePath;
pub use parent::DaemonParent;
pub use pid_file::PidFile;

/// Which side of the fork this is.
///
/// ```standalone_crate
/// use tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new()) }? {
///     Forked::Parent(mut daemon) => assert_eq!(daemon.wait_ready()?, false),
///     Forked::Child(daemon) => {
///         daemon.notifier.notify(false)?; // initialisation failed
///         std::process::exit(1);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Forked<'a> {
    /// The launcher, after the child's set-up succeeded.
    Parent(DaemonParent),
    /// The detached daemon, which must report readiness.
    Child(DaemonChild<'a>),
}

/// The daemon's readiness report: since readiness learnt every launcher's
/// protocol, the one [`Notifier`](crate::ready::Notifier) type, here on
/// this crate's token pipe. Report with
/// [`notify`](crate::ready::Notifier::notify) (or `ready`/`failed`);
/// dropping it unsent closes the pipe, which the launcher reads as failure
/// ([`DaemonError::DiedBeforeReady`]).
pub type ReadyNotifier = crate::ready::Notifier;

/// Forks a daemon and waits until its set-up is done: the port of
/// bitcoind's `fork_daemon`, hardened.
///
/// In the child, in this order: `setsid()`; with
/// [`double_fork`](DaemonOptions::double_fork), a second `fork()` (the
/// intermediate child reports the daemon's pid and waits, keeping it
/// unreaped, until the launcher has the daemon's set-up report, then
/// exits); `umask`; the [`pid_file`](DaemonOptions::pid_file) (open
/// without truncating or following a symbolic link, refuse a file that is
/// not safe to write, lock, check that the path still names it, truncate,
/// write); `chdir("/")`; stdio onto
/// `/dev/null`; then the set-up report (the daemon's pid, or the step that
/// failed and its errno). Only async-signal-safe calls are made until the
/// report. The daemon returns `Ok(Forked::Child(..))`.
///
/// In the launcher: returns `Ok(Forked::Parent(..))` only after the
/// report of a successful set-up. The pipe's ends are kept at fd 3 or
/// above and are close-on-exec, so a daemon that `exec`s loses its
/// notifier (the launcher sees failure) unless it hands the end over on
/// purpose ([`ReadyNotifier::into_end`], or `pass_to` with `std`).
///
/// Syscalls in the launcher: `pipe2`, `fcntl(F_DUPFD_CLOEXEC)` and `close`
/// only for an end that landed on 0–2, `fork`, `close`, `pidfd_open`
/// (Linux), `read` ×2. With `double_fork`: `pipe2` ×2, `fork`, `close`,
/// `pidfd_open` ×2 (intermediate and daemon), `read` ×4, `close`, then
/// the intermediate is reaped (`poll` on its pidfd, else `waitpid(WNOHANG)`
/// and `nanosleep` every millisecond; `waitpid`; `close`).
///
/// # Safety
/// - The process must have **no other threads** when this is called. The
///   child is a copy of the calling thread only; any lock another thread
///   held (the allocator's, stdout's) stays locked forever in the child.
///   Call it first thing in `main`. (A program that has started threads
///   should re-execute itself instead of forking.)
/// - After `fork_daemon` returns in the child, the child is an ordinary
///   single-threaded process, as safe as the program was before the call.
///
/// # Errors
/// In the launcher, after the child is reaped (or killed and reaped):
/// - [`DaemonError::Core`]`(`[`Error::Os`]`)` if a pipe or the fork cannot
///   be made (`EMFILE`, `EAGAIN`), before any child exists;
/// - [`DaemonError::SetupFailed`] with the step and its errno;
/// - [`DaemonError::AlreadyRunning`] with the pid that holds the pid file;
/// - [`DaemonError::DiedDuringSetup`] if the child died without a report,
///   with its exit status where it was our child;
/// - [`DaemonError::UnexpectedToken`] for a report this module never sends.
///
/// # References
/// - [POSIX `fork`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fork.html)
/// - [POSIX `setsid`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsid.html)
/// - [POSIX `fcntl` (record locks)](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
/// - [POSIX `chdir`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/chdir.html)
/// - [POSIX `dup2`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
/// - [POSIX `_exit`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/_exit.html)
/// - [Linux `pidfd_open`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
/// - [Linux `daemon(7)`](https://man7.org/linux/man-pages/man7/daemon.7.html)
///
/// See the [module example](self).
#[allow(unsafe_code)] // fork's contract becomes this function's.
pub unsafe fn fork_daemon(options: DaemonOptions<'_>) -> Result<Forked<'_>, DaemonError> {
    // SAFETY: our caller's contract is fork_with's; the real set-up has no
    // fault hook.
    unsafe { fork_with(options, |_, _| {}) }
}

/// `fork_daemon` with a fault hook, called at each [`Stage`](child::Stage) in the child,
/// so the unit tests can kill the child at every step of its set-up.
///
/// # Safety
/// As for [`fork_daemon`]; `fault` must make only async-signal-safe calls.
#[allow(unsafe_code)]
unsafe fn fork_with(options: DaemonOptions<'_>, fault: Fault) -> Result<Forked<'_>, DaemonError> {
    let (reader, writer) = pipe_above_stdio()?;
    let hold = match options.double_fork {
        true => Some(pipe_above_stdio()?),
        false => None,
    };
    // SAFETY: our caller guarantees there are no other threads, and until
    // its report the child calls only async-signal-safe functions.
    let pid = unsafe { sys::fork() }.map_err(Error::Os)?;
    if pid == 0 {
        drop(reader);
        let hold = hold.map(|(hold_reader, _)| hold_reader);
        // SAFETY: our caller's contract covers the second fork too.
        let child = unsafe { child::setup(writer, hold, options, fault) };
        return Ok(Forked::Child(child));
    }
    // Close our copy of the write end: with it open, a dead child would look
    // like a silent one forever.
    drop(writer);
    let hold = hold.map(|(_, hold_writer)| hold_writer);
    DaemonParent::await_setup(pid, reader, hold).map(Forked::Parent)
}

/// A pipe whose two ends are at fd 3 or above: a launcher started with
/// stdio closed would otherwise get them on 0–2, where the daemon's
/// `/dev/null` redirection closes them and std's `println!` writes into
/// them.
fn pipe_above_stdio() -> Result<(TokenPipeEnd, TokenPipeEnd), Error> {
    let (reader, writer) = TokenPipe::make()?.split();
    Ok((above_stdio(reader)?, above_stdio(writer)?))
}

fn above_stdio(end: TokenPipeEnd) -> Result<TokenPipeEnd, Error> {
    let fd = end.into_raw_fd();
    // above_stdio closes `fd` if it fails, so nothing leaks either way.
    sys::above_stdio(fd)
        .map(TokenPipeEnd::from_owned)
        .map_err(Error::Os)
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests;
