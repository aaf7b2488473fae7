//! The launch's wait on tokio (feature `tokio`): the same [`Waiter`], the
//! same [`step`](Waiter::step) and so the same `decide`, with the one
//! blocking `poll` replaced by the runtime's reactor and timer. Nothing
//! here decides anything; it only waits differently.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::process::Killed;

use tokio::io::unix::AsyncFd;

use super::waiter::{Next, Waiter};
use super::{LaunchError, ReadyChild};
use crate::process::{KILL_BOUND, Process};
use crate::sys;
use crate::tokio_impls::{any_readable, watch};

/// How soon to look again for an end the pidfd has announced but
/// `waitpid` has not yet given, or for a barrier on a socket the reactor
/// could not take.
const END_PENDING_CADENCE: Duration = Duration::from_millis(1);

/// How often to look for an end that cannot be awaited on the reactor (no
/// pidfd), as the blocking wait does.
const LOOK_CADENCE: Duration = Duration::from_millis(10);

/// The registrations the wait holds: duplicates of the pipe, the socket
/// and the watched process's pidfd, so that nothing the [`Waiter`] closes
/// or replaces (a `MAINPID=` swaps the pidfd) is ever registered.
#[derive(Default)]
struct Watches {
    pipe: Option<AsyncFd<OwnedFd>>,
    socket: Option<AsyncFd<OwnedFd>>,
    /// The pidfd, with the pid it was made for.
    pidfd: Option<(libc::pid_t, AsyncFd<OwnedFd>)>,
}

impl Watches {
    /// Brings the registrations in line with what the wait still needs.
    /// Returns whether every source that must be watched is: where one
    /// cannot be (no pidfd on this system, or the reactor refused), the
    /// caller looks again on the 10 ms cadence instead, as the blocking
    /// wait does without a pidfd; never an error, never a lost report.
    fn update(&mut self, waiter: &Waiter) -> bool {
        let mut complete = true;
        if waiter.facts.pipe_closed {
            self.pipe = None;
        } else if self.pipe.is_none() {
            self.pipe = waiter.reader.try_as_fd().ok().and_then(|fd| watch(fd).ok());
            complete &= self.pipe.is_some();
        }
        if self.socket.is_none()
            && let Some(socket) = &waiter.socket
        {
            self.socket = socket.fd.try_as_fd().ok().and_then(|fd| watch(fd).ok());
            complete &= self.socket.is_some();
        }
        if waiter.facts.ended.is_some() {
            self.pidfd = None;
        } else {
            let watched = waiter.child.watched();
            if self.pidfd.as_ref().map(|(pid, _)| *pid) != Some(watched.pid()) {
                self.pidfd = watched
                    .borrowed_pidfd()
                    .and_then(|fd| watch(fd).ok())
                    .map(|fd| (watched.pid(), fd));
            }
            complete &= self.pidfd.is_some();
        }
        complete
    }

    fn all(&self) -> impl Iterator<Item = &AsyncFd<OwnedFd>> {
        let pidfd = self.pidfd.as_ref().map(|(_, fd)| fd);
        self.pipe.iter().chain(&self.socket).chain(pidfd)
    }
}

impl Waiter {
    /// The async wait: the runtime's reactor for news, its timer for the
    /// deadline; the thread is never blocked. Dropped before it ends, the
    /// `Waiter` it owns drops with it, which kills and reaps the program
    /// and removes the socket, as every other way out without a verdict
    /// does.
    pub(super) async fn run_async(mut self) -> Result<ReadyChild, LaunchError> {
        let mut watches = Watches::default();
        loop {
            match self.step() {
                Next::Wait => {
                    let complete = watches.update(&self);
                    let fds: Vec<_> = watches.all().collect();
                    let limit = if self.end_pending() {
                        END_PENDING_CADENCE
                    } else {
                        self.news_limit(complete)
                    };
                    // A reactor failure is one more reason to look again:
                    // the loop re-reads every source and the clock.
                    if any_readable(&fds, limit).await.is_err() {
                        tokio::time::sleep(LOOK_CADENCE).await;
                    }
                }
                Next::Report(verdict) => return self.conclude(verdict),
                Next::Exited(exit) => return Err(self.exited(exit)),
                Next::TimedOut => {
                    drop(watches);
                    if self.options.kill_on_timeout && self.facts.ended.is_none() {
                        self.kill_all_async().await;
                    }
                    return Err(self.timed_out());
                }
            }
        }
    }

    /// Whether the watched process's pidfd says it has ended while
    /// `waitpid` could not collect it yet. The reactor reports the pidfd
    /// once, as an edge, and its readiness was cleared before the look;
    /// so while this holds the wait looks again on a short cadence rather
    /// than wait for an edge that will not come (the blocking wait's
    /// `poll` sees the level and needs no such care).
    fn end_pending(&self) -> bool {
        self.facts.ended.is_none()
            && self
                .child
                .watched()
                .pidfd()
                .is_some_and(|fd| sys::poll_readable(fd, 0) == Ok(sys::Polled::Ready))
    }

    /// [`kill_all_within`](Waiter::kill_all_within) on the reactor: kills
    /// everything the launch reaches, then waits at most [`KILL_BOUND`]
    /// for the watched process to end and reaps it if it is ours.
    async fn kill_all_async(&mut self) {
        let watched = self.kill_rest_then_watched();
        let killed = match watched.kill(libc::SIGKILL) {
            Ok(()) | Err(crate::error::Error::Os(crate::error::Errno::ESRCH)) => {
                match ended_within(watched, KILL_BOUND).await {
                    // What the blocking kill says of an ended process.
                    Ok(true) => watched.kill_within(libc::SIGKILL, Duration::ZERO),
                    _ => Killed::Lingering,
                }
            }
            Err(crate::error::Error::Os(errno)) => Killed::Refused(errno),
            Err(_) => Killed::Refused(crate::error::Errno::from_raw(libc::ESRCH)),
        };
        self.killed = Some(killed);
    }
}

/// Whether `process` ends within `limit`, waiting on the reactor: its
/// pidfd where there is one, else a look every 10 ms (which reaps our
/// child once it has ended). The async [`Process::ended_within`]. Where the
/// pidfd cannot be registered (out of fds) or the reactor fails, it falls
/// back to the looks rather than fail: a caller waiting for a program's end
/// is not to be told "error" while the program runs.
pub(crate) async fn ended_within(
    process: &mut Process,
    limit: Duration,
) -> crate::error::Result<bool> {
    let until = Instant::now() + limit;
    let registered = process.borrowed_pidfd().and_then(|fd| watch(fd).ok());
    if let Some(fd) = registered
        && let Ok(ended) = any_readable(&[&fd], limit).await
    {
        return Ok(ended);
    }
    loop {
        if process.ended_within(Duration::ZERO)? {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(false);
        }
        tokio::time::sleep((until - now).min(LOOK_CADENCE)).await;
    }
}
