//! The daemon hand-shake: bitcoind's `fork_daemon`, with its launcher bug
//! fixed.
//!
//! The launcher calls [`fork_daemon`]. The child detaches (new session,
//! optionally `/` as working directory and stdio on `/dev/null`) and sends a
//! set-up token; only then does `fork_daemon` return in the parent. The
//! child initialises and reports with [`ReadyNotifier::notify`]; the parent
//! learns the outcome from [`DaemonParent::wait_ready`]. End of stream at
//! any step (the child died) is an error, never success: bitcoind's own
//! launcher treated a read error or end of stream as success, and this port
//! does not.
//!
//! ```standalone_crate
//! use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
//!
//! // SAFETY: this program has no other threads.
//! match unsafe { fork_daemon(DaemonOptions::default()) }? {
//!     Forked::Parent(mut daemon) => {
//!         let ready = daemon.wait_ready()?;
//!         assert!(ready, "daemon {} failed to come up", daemon.pid());
//!         // A real launcher would now exit(0), leaving the daemon running.
//!     }
//!     Forked::Child(notifier) => {
//!         let initialised = true; // initialise the daemon here
//!         notifier.notify(initialised)?;
//!         // ... serve; this example just ends.
//!         std::process::exit(0);
//!     }
//! }
//! # Ok::<(), bitcoin_tokenpipe::Error>(())
//! ```

use core::time::Duration;

use crate::end::TokenPipeEnd;
use crate::error::{Error, Result};
use crate::pipe::TokenPipe;
use crate::sys;

/// The token the child sends when its set-up is done.
const SETUP_DONE: u8 = 0;
/// The readiness tokens, as in bitcoind: 1 ready, 0 failed.
const READY: u8 = 1;
const FAILED: u8 = 0;

/// What the child does to detach, after `setsid()` (which it always does).
///
/// ```
/// use bitcoin_tokenpipe::daemon::DaemonOptions;
/// let o = DaemonOptions::default();
/// assert!(o.chdir_root && o.close_stdio);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DaemonOptions {
    /// `chdir("/")`, so the daemon keeps no directory (or file system) busy.
    pub chdir_root: bool,
    /// Point stdin, stdout and stderr at `/dev/null`, so the daemon holds
    /// no terminal and writes to no closed one.
    pub close_stdio: bool,
}

impl Default for DaemonOptions {
    /// Both on, as bitcoind does.
    fn default() -> DaemonOptions {
        DaemonOptions {
            chdir_root: true,
            close_stdio: true,
        }
    }
}

/// Which side of the fork this is.
///
/// ```standalone_crate
/// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::default()) }? {
///     Forked::Parent(mut daemon) => assert_eq!(daemon.wait_ready()?, false),
///     Forked::Child(notifier) => {
///         notifier.notify(false)?; // initialisation failed
///         std::process::exit(1);
///     }
/// }
/// # Ok::<(), bitcoin_tokenpipe::Error>(())
/// ```
#[derive(Debug)]
pub enum Forked {
    /// The launcher, after the child's set-up succeeded.
    Parent(DaemonParent),
    /// The detached child, which must report readiness.
    Child(ReadyNotifier),
}

/// The launcher's view of the daemon child.
///
/// ```standalone_crate
/// use bitcoin_tokenpipe::Error;
/// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::default()) }? {
///     Forked::Parent(mut daemon) => {
///         assert!(daemon.pid() > 0);
///         // The child dropped its notifier without a word: failure.
///         assert_eq!(daemon.wait_ready(), Err(Error::DiedBeforeReady));
///     }
///     Forked::Child(notifier) => {
///         drop(notifier);
///         std::process::exit(3);
///     }
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct DaemonParent {
    pid: libc::pid_t,
    reader: TokenPipeEnd,
}

/// The daemon's one-shot readiness report (see [`notify`](Self::notify)
/// for an example). Send it with
/// [`notify`](Self::notify); dropping it unsent closes the pipe, which the
/// launcher reads as failure ([`Error::DiedBeforeReady`]).
#[derive(Debug)]
#[must_use = "the launcher waits for notify(); dropping the notifier reports failure"]
pub struct ReadyNotifier {
    writer: TokenPipeEnd,
}

/// Forks a daemon child and waits until its set-up is done: the port of
/// bitcoind's `fork_daemon`.
///
/// In the child: `setsid()`, then `chdir("/")` if
/// [`chdir_root`](DaemonOptions::chdir_root), then stdin/stdout/stderr onto
/// `/dev/null` if [`close_stdio`](DaemonOptions::close_stdio), then the
/// set-up token. Any failure there makes the child `_exit(1)`. The child
/// returns `Ok(Forked::Child(notifier))`.
///
/// In the parent: returns `Ok(Forked::Parent(..))` only after the set-up
/// token arrived. The pipe's ends are close-on-exec, so a child that
/// `exec`s loses its notifier (the parent sees failure) unless it hands the
/// end over on purpose (`TokenPipeEnd::pass_to`, with `std`).
///
/// Syscalls: `pipe2`, `fork`; in the child `close`, `setsid`, `chdir`,
/// `open`, `dup2` ×3, `close`, `write`; in the parent `close`, `read`.
///
/// # Safety
/// - The process must have **no other threads** when this is called. The
///   child is a copy of the calling thread only; any lock another thread
///   held (the allocator's, stdout's) stays locked forever in the child.
///   Call it first thing in `main`.
/// - Between `fork` and its set-up token the child makes only
///   async-signal-safe calls (this function sees to that). After
///   `fork_daemon` returns in the child, the child is an ordinary
///   single-threaded process, as safe as the program was before the call.
///
/// # Errors
/// [`Error::Os`] if the pipe or the fork cannot be made;
/// [`Error::SetupFailed`] if the child died before its set-up token (it is
/// reaped); [`Error::UnexpectedToken`] for any other first token.
///
/// # References
/// - [POSIX `fork`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fork.html)
/// - [POSIX `setsid`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsid.html)
/// - [POSIX `chdir`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/chdir.html)
/// - [POSIX `dup2`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
/// - [POSIX `_exit`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/_exit.html)
/// - [Linux `daemon(7)`](https://man7.org/linux/man-pages/man7/daemon.7.html)
///
/// See the [module example](self).
#[allow(unsafe_code)] // fork's contract becomes this function's.
pub unsafe fn fork_daemon(options: DaemonOptions) -> Result<Forked> {
    // SAFETY: our caller's contract is fork_with's, and child_setup makes
    // only async-signal-safe calls.
    unsafe { fork_with(options, child_setup) }
}

/// `fork_daemon` with the child's set-up passed in, so the unit tests can
/// make the set-up fail or stall in ways the real one cannot be made to.
///
/// # Safety
/// As for [`fork_daemon`]; `setup` must make only async-signal-safe calls.
#[allow(unsafe_code)]
unsafe fn fork_with(
    options: DaemonOptions,
    setup: fn(&TokenPipeEnd, DaemonOptions),
) -> Result<Forked> {
    let mut pipe = TokenPipe::make()?;
    // SAFETY: our caller guarantees there are no other threads, and until
    // `setup` returns the child calls only async-signal-safe functions.
    let pid = unsafe { sys::fork() }.map_err(Error::Os)?;
    if pid == 0 {
        let writer = pipe.take_write_end();
        pipe.close();
        setup(&writer, options);
        return Ok(Forked::Child(ReadyNotifier { writer }));
    }
    let reader = pipe.take_read_end();
    // Close our copy of the write end: with it open, a dead child would look
    // like a silent one forever.
    pipe.close();
    match reader.token_read() {
        Ok(SETUP_DONE) => Ok(Forked::Parent(DaemonParent { pid, reader })),
        Ok(other) => Err(Error::UnexpectedToken(other)),
        Err(Error::Eos) => {
            // The child is dead or dying; reap it so no zombie is left.
            let _ = sys::waitpid(pid);
            Err(Error::SetupFailed)
        }
        Err(e) => Err(e),
    }
}

/// The child's set-up: detach, then send the set-up token, or `_exit(1)`.
/// Only async-signal-safe calls.
fn child_setup(writer: &TokenPipeEnd, options: DaemonOptions) {
    let ok = sys::setsid().is_ok()
        && (!options.chdir_root || sys::chdir_root().is_ok())
        && (!options.close_stdio || sys::stdio_to_dev_null().is_ok())
        && writer.token_write_nosignal(SETUP_DONE).is_ok();
    if !ok {
        // _exit closes the write end; the parent reads end of stream.
        sys::exit_now(1);
    }
}

impl DaemonParent {
    /// The daemon child's process id, for `waitpid` or `kill`.
    ///
    /// ```standalone_crate
    /// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions { chdir_root: false, close_stdio: true }) }? {
    ///     Forked::Parent(mut daemon) => {
    ///         assert!(daemon.pid() > 0 && daemon.pid() != std::process::id() as i32);
    ///         assert!(daemon.wait_ready()?);
    ///     }
    ///     Forked::Child(notifier) => {
    ///         notifier.notify(true)?;
    ///         std::process::exit(0);
    ///     }
    /// }
    /// # Ok::<(), bitcoin_tokenpipe::Error>(())
    /// ```
    #[must_use]
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Blocks until the daemon reports: `Ok(true)` for ready (token 1),
    /// `Ok(false)` for failed (token 0). The pipe is closed once an answer
    /// (or an error) has arrived.
    ///
    /// # Errors
    /// [`Error::DiedBeforeReady`] if the daemon exited, died or dropped its
    /// notifier first; [`Error::UnexpectedToken`] for any other token;
    /// [`Error::Closed`] if called again after an answer.
    ///
    /// # References
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    ///
    /// ```standalone_crate
    /// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions::default()) }? {
    ///     Forked::Parent(mut daemon) => assert!(daemon.wait_ready()?),
    ///     Forked::Child(notifier) => {
    ///         notifier.notify(true)?;
    ///         std::process::exit(0);
    ///     }
    /// }
    /// # Ok::<(), bitcoin_tokenpipe::Error>(())
    /// ```
    pub fn wait_ready(&mut self) -> Result<bool> {
        let answer = self.reader.token_read();
        self.conclude(answer)
    }

    /// As [`wait_ready`](Self::wait_ready), waiting at most `timeout`
    /// (see [`TokenPipeEnd::token_read_timeout`]). On
    /// [`Error::TimedOut`] the pipe stays open, so the caller may wait
    /// again.
    ///
    /// # Errors
    /// As for [`wait_ready`](Self::wait_ready), and [`Error::TimedOut`].
    ///
    /// # References
    /// - [POSIX `poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    ///
    /// ```standalone_crate
    /// use bitcoin_tokenpipe::Error;
    /// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    /// use std::time::Duration;
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions::default()) }? {
    ///     Forked::Parent(mut daemon) => {
    ///         // Slow to initialise: the first wait times out, the second succeeds.
    ///         let first = daemon.wait_ready_timeout(Duration::from_millis(10));
    ///         assert_eq!(first, Err(Error::TimedOut));
    ///         assert!(daemon.wait_ready_timeout(Duration::from_secs(10))?);
    ///     }
    ///     Forked::Child(notifier) => {
    ///         std::thread::sleep(Duration::from_millis(200));
    ///         notifier.notify(true)?;
    ///         std::process::exit(0);
    ///     }
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn wait_ready_timeout(&mut self, timeout: Duration) -> Result<bool> {
        let answer = self.reader.token_read_timeout(timeout);
        if answer == Err(Error::TimedOut) {
            return Err(Error::TimedOut);
        }
        self.conclude(answer)
    }

    fn conclude(&mut self, answer: Result<u8>) -> Result<bool> {
        self.reader.close();
        match answer {
            Ok(READY) => Ok(true),
            Ok(FAILED) => Ok(false),
            Ok(other) => Err(Error::UnexpectedToken(other)),
            Err(Error::Eos) => Err(Error::DiedBeforeReady),
            Err(e) => Err(e),
        }
    }
}

impl ReadyNotifier {
    /// Tells the launcher whether the daemon came up (`true`: token 1) or
    /// failed (`false`: token 0), then closes the pipe.
    ///
    /// Uses [`TokenPipeEnd::token_write_nosignal`]: if the launcher is
    /// already gone, this returns [`Error::BrokenPipe`] instead of killing
    /// the daemon with `SIGPIPE`.
    ///
    /// # Errors
    /// [`Error::BrokenPipe`] if the launcher is gone; [`Error::Os`] for
    /// anything else.
    ///
    /// # References
    /// - [POSIX `write`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
    ///
    /// ```standalone_crate
    /// use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    ///
    /// // SAFETY: this program has no other threads.
    /// match unsafe { fork_daemon(DaemonOptions::default()) }? {
    ///     Forked::Parent(mut daemon) => assert!(daemon.wait_ready()?),
    ///     Forked::Child(notifier) => {
    ///         notifier.notify(true)?;
    ///         std::process::exit(0);
    ///     }
    /// }
    /// # Ok::<(), bitcoin_tokenpipe::Error>(())
    /// ```
    pub fn notify(self, ready: bool) -> Result<()> {
        self.writer
            .token_write_nosignal(if ready { READY } else { FAILED })
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    //! The parent's side of set-up, with set-ups that fail or stall. These
    //! fork from the multi-threaded test harness, which the safety contract
    //! forbids in general; it holds here because every child below makes
    //! only async-signal-safe calls and leaves with `_exit`.
    extern crate std;

    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    static SERIAL: Mutex<()> = Mutex::new(());

    fn no_children_left() -> bool {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        rc == -1 && sys::errno() == crate::Errno::from_raw(libc::ECHILD)
    }

    fn dies_during_setup(_: &TokenPipeEnd, _: DaemonOptions) {
        sys::exit_now(1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no fork")]
    fn a_child_that_dies_during_setup_is_setup_failed_and_reaped() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: see the module comment.
        let got = unsafe { fork_with(DaemonOptions::default(), dies_during_setup) };
        assert!(matches!(got, Err(Error::SetupFailed)), "{got:?}");
        assert_eq!(Error::SetupFailed.status(), crate::TS_EOS);
        assert!(no_children_left(), "the dead child was not reaped");
    }

    fn sends_a_bad_token(writer: &TokenPipeEnd, _: DaemonOptions) {
        let _ = writer.token_write(7);
        sys::exit_now(0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no fork")]
    fn a_first_token_other_than_setup_done_is_unexpected() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: see the module comment.
        let got = unsafe { fork_with(DaemonOptions::default(), sends_a_bad_token) };
        assert!(matches!(got, Err(Error::UnexpectedToken(7))), "{got:?}");
        // Reap it ourselves: fork_with only reaps on end of stream.
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        unsafe { libc::waitpid(-1, &mut status, 0) };
    }

    fn slow_setup(writer: &TokenPipeEnd, options: DaemonOptions) {
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 300_000_000,
        };
        // SAFETY: nanosleep is async-signal-safe; `pause` is valid.
        unsafe { libc::nanosleep(&pause, core::ptr::null_mut()) };
        child_setup(writer, options);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no fork")]
    fn the_parent_returns_only_after_the_setup_token() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let options = DaemonOptions {
            chdir_root: false,
            close_stdio: false,
        };
        // SAFETY: see the module comment.
        match unsafe { fork_with(options, slow_setup) } {
            Ok(Forked::Parent(mut parent)) => {
                assert!(start.elapsed() >= Duration::from_millis(300));
                // The child never notifies: end of stream, not success.
                assert_eq!(parent.wait_ready(), Err(Error::DiedBeforeReady));
                let mut status = 0;
                // SAFETY: `status` is a valid out-pointer.
                unsafe { libc::waitpid(parent.pid(), &mut status, 0) };
            }
            Ok(Forked::Child(notifier)) => {
                drop(notifier);
                sys::exit_now(0);
            }
            Err(e) => panic!("fork_with failed: {e}"),
        }
    }
}
