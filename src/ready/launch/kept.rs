//! A launch's notify socket after the verdict: kept open for as long as the
//! [`ReadyChild`](super::ReadyChild) lives, because its processes may
//! still speak on it (`BARRIER=1` right after `READY=1`, as
//! `systemd-notify` sends it; later `STATUS=`). While it is kept, this
//! process's notify thread receives what arrives, so a barrier is
//! completed at once whatever the caller is doing; and the socket knows
//! who has spoken, so a launcher about to exit can wait until each of them
//! has ended or had its barrier served ([`Kept::settle`]).
//!
//! The thread also reads what the program says later into a bounded queue
//! ([`Kept::pop`]) and keeps the watchdog's clock (the time of the last
//! `WATCHDOG=1`), so a ping counts when it arrives, not when the caller
//! gets round to reading it. It never acts on a process: the watchdog's
//! signals are sent by the `ReadyChild`'s owner, through its handles.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::child::WatchdogState;
use super::notification::{self, Heard, Notification};
use super::socket::NotifySocket;
use crate::end::TokenPipeEnd;
use crate::error::Errno;
use crate::process::Process;
use crate::sys;
use crate::wait::poll_timeout_ms;

/// Who has spoken on a launch's socket, and whether each is done with it.
#[derive(Debug, Default)]
pub(super) struct Speakers {
    list: Vec<Speaker>,
    /// A datagram came whose sender the kernel did not name (no
    /// credentials on this system), and no barrier has come since.
    unnamed: bool,
}

#[derive(Debug)]
struct Speaker {
    pid: libc::pid_t,
    /// Held from its first datagram; `None` if it had ended by then (or
    /// the system has no pidfds: then its pid is looked up instead).
    process: Option<Process>,
    barrier_served: bool,
    /// For each of its datagrams (but barriers), its children when it
    /// was read (Linux): who may have sent it in its name.
    /// `systemd-notify`, run as root, sends its messages with its parent's
    /// pid in the credentials, and its barrier with its own. At most
    /// [`MAX_GROUPS`]; later datagrams add to the last.
    children: Vec<Vec<Process>>,
}

/// How many datagrams of one speaker keep their own group of children.
const MAX_GROUPS: usize = 8;

impl Speakers {
    /// Notes a datagram from `pid` (`None`: not named by the kernel), and
    /// whether it was a barrier (it carried an fd, now closed: served).
    pub(super) fn heard(&mut self, pid: Option<libc::pid_t>, barrier: bool) {
        let Some(pid) = pid else {
            self.unnamed = !barrier;
            return;
        };
        let speaker = match self.list.iter().position(|s| s.pid == pid) {
            Some(i) => &mut self.list[i],
            None => {
                let process = Process::stranger(pid);
                self.list.push(Speaker {
                    pid,
                    process: process.pidfd().is_some().then_some(process),
                    barrier_served: false,
                    children: Vec::new(),
                });
                let last = self.list.len() - 1;
                &mut self.list[last]
            }
        };
        if barrier {
            speaker.barrier_served = true;
        } else {
            let now = children_of(pid);
            let full = speaker.children.len() >= MAX_GROUPS;
            match speaker.children.last_mut() {
                Some(last) if full => last.extend(now),
                _ => speaker.children.push(now),
            }
        }
    }

    /// Whether every speaker has ended or had its barrier served, or is
    /// one that `lives_on` (the service itself, this process or one of its
    /// ancestors: `systemd-notify` sends its messages in its parent's name,
    /// and its barrier in its own).
    ///
    /// A speaker that lives on is settled once, for each of its datagrams,
    /// one of its children then (the helper that spoke in its name) has
    /// had a barrier served, or all of them have ended; a datagram sent
    /// when it had no children it sent itself.
    pub(super) fn settled(&mut self, lives_on: &dyn Fn(libc::pid_t) -> bool) -> bool {
        if self.unnamed {
            return false;
        }
        let served: Vec<libc::pid_t> = self
            .list
            .iter()
            .filter(|s| s.barrier_served)
            .map(|s| s.pid)
            .collect();
        self.list.iter_mut().all(|s| {
            if s.barrier_served {
                return true;
            }
            if lives_on(s.pid) {
                return s.children.iter_mut().all(|group| {
                    group.iter().any(|c| served.contains(&c.pid())) || group.iter_mut().all(ended)
                });
            }
            match &mut s.process {
                Some(process) => ended(process),
                // No pidfd: gone when no process has its pid.
                None => sys::kill(s.pid, 0) == Err(Errno::ESRCH),
            }
        })
    }

    /// The pidfds of the speakers (and their children) still waited for.
    fn pidfds(&self) -> Vec<libc::c_int> {
        self.list
            .iter()
            .filter(|s| !s.barrier_served)
            .flat_map(|s| s.process.iter().chain(s.children.iter().flatten()))
            .filter_map(Process::pidfd)
            .collect()
    }
}

fn ended(process: &mut Process) -> bool {
    process.ended_within(Duration::ZERO).unwrap_or(true)
}

/// `pid`'s children now, each held by a pidfd (read again after it was
/// taken, so it is the child the line named).
#[cfg(tokenpipe_linux_like)]
fn children_of(pid: libc::pid_t) -> Vec<Process> {
    use super::procfs;
    procfs::children(pid)
        .into_iter()
        .map(Process::stranger)
        .filter(|p| p.pidfd().is_some() && procfs::stat(p.pid()).is_some_and(|s| s.ppid == pid))
        .collect()
}

#[cfg(not(tokenpipe_linux_like))]
fn children_of(_: libc::pid_t) -> Vec<Process> {
    Vec::new()
}

/// What the socket's owner and the notify thread share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Readable when the queue has news (the read end of `State::news`).
    news: TokenPipeEnd,
}

#[derive(Debug)]
struct State {
    /// `None` once the owner let go: the notify thread forgets it.
    socket: Option<NotifySocket>,
    speakers: Speakers,
    /// What the program said, not yet taken; at most [`QUEUE_BOUND`].
    queue: VecDeque<Heard>,
    /// Tells the owner the queue has news (nonblocking; a full pipe
    /// already says so).
    news: TokenPipeEnd,
    watchdog: WatchdogClock,
    /// What the owner's watchdog has done (only the owner changes it).
    watch: WatchdogState,
    /// The program as started, and whether its owner has reaped it (its
    /// pid may be anyone's then): another user's datagram is heard only
    /// from its descendants while it is unreaped.
    launched: libc::pid_t,
    launched_reaped: bool,
    /// The notify thread serves the socket: the owner waits on the news
    /// pipe alone. Without the thread, the owner reads the socket itself.
    by_thread: bool,
}

/// How many notifications wait for the owner at most; beyond, the oldest
/// go (a caller that never reads them costs bounded memory).
const QUEUE_BOUND: usize = 1024;

/// The watchdog's clock, kept by whoever receives the pings.
#[derive(Debug, Clone, Copy)]
pub(super) struct WatchdogClock {
    /// The interval (the launch's option, or the program's
    /// `WATCHDOG_USEC=`); `None`: no watchdog.
    pub(super) interval: Option<Duration>,
    /// When the last `WATCHDOG=1` came (the verdict, before the first).
    pub(super) last_ping: Instant,
    /// A `WATCHDOG=trigger` came.
    pub(super) triggered: bool,
}

impl WatchdogClock {
    /// When the watchdog fires unless a ping comes first.
    pub(super) fn due(&self) -> Option<Instant> {
        let interval = self.interval?;
        if self.triggered {
            return Some(self.last_ping.min(Instant::now()));
        }
        Some(
            self.last_ping
                .checked_add(interval)
                .unwrap_or_else(|| super::waiter::deadline_after(self.last_ping, Duration::MAX)),
        )
    }

    fn heard(&mut self, said: &Notification) {
        match said {
            Notification::Watchdog => self.last_ping = Instant::now(),
            Notification::WatchdogTrigger if self.interval.is_some() => self.triggered = true,
            Notification::WatchdogInterval(interval) => {
                // As systemd: a new interval counts from now.
                self.interval = (!interval.is_zero()).then_some(*interval);
                self.last_ping = Instant::now();
            }
            _ => {}
        }
    }
}

impl State {
    /// Receives every datagram waiting (at most a batch: a flood cannot
    /// hold the lock), closing the fds they carry, which is what completes
    /// a sender's barrier.
    fn serve(&mut self) {
        let Some(socket) = &self.socket else { return };
        let fd = socket.fd.as_raw_fd();
        let me = sys::getuid();
        let mut buf = [0u8; 4096];
        let mut said_any = false;
        for _ in 0..256 {
            let got = match sys::recv_datagram(fd, &mut buf) {
                Ok(got) => got,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            let ours = got.sender_uid.is_none_or(|uid| uid == me);
            if !ours && !self.is_descendant(got.sender_pid) {
                continue;
            }
            // Another user's barrier is served (its fd closed) all the
            // same; only this user's speakers are waited for.
            if ours {
                self.speakers.heard(got.sender_pid, got.carried_fds);
            }
            if got.truncated {
                continue; // cut short, its last line may lie: systemd drops it too
            }
            said_any |= self.heard(&buf[..got.len]);
        }
        if said_any {
            let _ = self.news.token_write(0);
        }
    }

    /// Queues what one datagram says, and keeps the watchdog's clock by
    /// it. Whether it said anything.
    fn heard(&mut self, datagram: &[u8]) -> bool {
        let (queue, watchdog) = (&mut self.queue, &mut self.watchdog);
        let mut said_any = false;
        notification::parse(datagram, |heard| {
            if let Heard::Said(said) = &heard {
                watchdog.heard(said);
            }
            if queue.len() == QUEUE_BOUND {
                queue.pop_front();
            }
            queue.push_back(heard);
            said_any = true;
        });
        said_any
    }

    /// Whether another user's sender is the program or one of its
    /// descendants (a `Command::uid` program), while the program is
    /// unreaped and its pid its own.
    #[cfg(tokenpipe_linux_like)]
    fn is_descendant(&self, pid: Option<libc::pid_t>) -> bool {
        !self.launched_reaped
            && pid.is_some_and(|pid| {
                pid == self.launched || super::procfs::descends_from(pid, self.launched)
            })
    }

    #[cfg(not(tokenpipe_linux_like))]
    fn is_descendant(&self, pid: Option<libc::pid_t>) -> bool {
        !self.launched_reaped && pid == Some(self.launched)
    }
}

/// A launch's socket kept after the verdict.
#[derive(Debug)]
pub(super) struct Kept {
    shared: Arc<Shared>,
}

impl Kept {
    /// Keeps `socket`, with the speakers heard before the verdict, and
    /// hands it to the notify thread. `watchdog`: the launch's interval,
    /// whose clock starts now. `None` if the news pipe cannot be made.
    pub(super) fn new(
        socket: NotifySocket,
        speakers: Speakers,
        early: &[Box<[u8]>],
        launched: libc::pid_t,
        watchdog: Option<Duration>,
        grace: Duration,
    ) -> crate::error::Result<Kept> {
        let (news_reader, news) = crate::pipe::TokenPipe::make()?.split();
        news_reader.set_nonblocking(true)?;
        news.set_nonblocking(true)?;
        let mut state = State {
            socket: Some(socket),
            speakers,
            queue: VecDeque::new(),
            news,
            watchdog: WatchdogClock {
                interval: watchdog,
                last_ping: Instant::now(),
                triggered: false,
            },
            watch: WatchdogState {
                grace,
                ..WatchdogState::default()
            },
            launched,
            launched_reaped: false,
            by_thread: false,
        };
        let mut said_any = false;
        for datagram in early {
            said_any |= state.heard(datagram);
        }
        if said_any {
            let _ = state.news.token_write(0);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            news: news_reader,
        });
        // Without the thread, barriers are served and notifications read
        // when the owner waits (or drops the socket, which releases every
        // barrier waiting in it).
        let by_thread = serve_in_background(&shared);
        let kept = Kept { shared };
        kept.lock().by_thread = by_thread;
        Ok(kept)
    }

    /// The next thing the program said, if any is waiting (read from the
    /// socket first where no notify thread serves it).
    pub(super) fn pop(&self) -> Option<Heard> {
        while self.shared.news.token_read().is_ok() {}
        let mut state = self.lock();
        if !state.by_thread {
            state.serve();
        }
        state.queue.pop_front()
    }

    /// Readable when there may be news for [`pop`](Self::pop): the news
    /// pipe, and the socket itself where no notify thread serves it (-1
    /// otherwise).
    pub(super) fn news_fds(&self) -> [libc::c_int; 2] {
        let state = self.lock();
        let socket = match &state.socket {
            Some(socket) if !state.by_thread => socket.fd.as_raw_fd(),
            _ => -1,
        };
        [self.shared.news.as_raw_fd(), socket]
    }

    /// Whether the notify thread serves the socket (else only a wait that
    /// reads it does).
    #[cfg(feature = "tokio")]
    pub(super) fn served_by_thread(&self) -> bool {
        self.lock().by_thread
    }

    /// The news pipe's read end, for the async wait to register a copy of.
    #[cfg(feature = "tokio")]
    pub(super) fn news_fd(&self) -> crate::error::Result<std::os::fd::BorrowedFd<'_>> {
        self.shared.news.try_as_fd()
    }

    /// The watchdog's clock as it stands, and what the owner's side has
    /// done.
    pub(super) fn watchdog(&self) -> (WatchdogClock, WatchdogState) {
        let state = self.lock();
        (state.watchdog, state.watch)
    }

    /// Changes what the owner's side of the watchdog has done.
    pub(super) fn set_watchdog(&self, change: impl FnOnce(&mut WatchdogState)) {
        change(&mut self.lock().watch);
    }

    /// The program as started has been reaped: its pid no longer vouches
    /// for another user's sender.
    pub(super) fn launched_reaped(&self) {
        self.lock().launched_reaped = true;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the socket until every process that spoke on it has ended
    /// or had its `BARRIER=1` served, or `within` has passed. Whether they
    /// all had.
    /// A speaker for which `lives_on` is true is not waited for.
    pub(super) fn settle(&self, within: Duration, lives_on: &dyn Fn(libc::pid_t) -> bool) -> bool {
        let until = Instant::now().checked_add(within);
        let mut state = self.lock();
        loop {
            state.serve();
            if state.speakers.settled(lives_on) {
                return true;
            }
            let left = until.map_or(Duration::MAX, |u| {
                u.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return false;
            }
            // Wait on the socket and the pidfds of the speakers not yet
            // settled (the notify thread may take the socket's news first:
            // hence the short bound).
            let pidfds = state.speakers.pidfds();
            let socket = state.socket.as_ref().map(|s| s.fd.as_raw_fd());
            drop(state);
            let mut fds: Vec<libc::pollfd> = pidfds
                .into_iter()
                .chain(socket)
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // Bounded looks: a speaker without a pidfd is looked up again.
            let _ = sys::poll_many(
                &mut fds,
                poll_timeout_ms(left.min(Duration::from_millis(10))),
            );
            state = self.lock();
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        // Closing the socket here (not on the notify thread) removes its
        // path before the drop returns and releases every barrier still
        // queued in it. The thread may poll the closed number once more: it
        // reads only through the state, under the lock, and finds `None`.
        let socket = self.lock().socket.take();
        drop(socket);
        wake_server();
    }
}

/// The notify thread's inbox and its wake-up pipe.
struct Server {
    inbox: mpsc::Sender<Arc<Shared>>,
    wake: TokenPipeEnd,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Hands `shared` to the notify thread, starting it if it is not running
/// (again, if it could not be started before). `false` if it cannot be.
fn serve_in_background(shared: &Arc<Shared>) -> bool {
    let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if server.is_none() {
        *server = start_server();
    }
    match &*server {
        Some(s) => {
            let sent = s.inbox.send(Arc::clone(shared)).is_ok();
            let _ = s.wake.token_write(0);
            sent
        }
        None => false,
    }
}

fn wake_server() {
    let server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = &*server {
        let _ = s.wake.token_write(0);
    }
}

fn start_server() -> Option<Server> {
    let (wake_reader, wake) = crate::pipe::TokenPipe::make().ok()?.split();
    wake_reader.set_nonblocking(true).ok()?;
    wake.set_nonblocking(true).ok()?;
    let (inbox, kept) = mpsc::channel();
    std::thread::Builder::new()
        .name("tokenpipe-notify".into())
        .spawn(move || serve(&kept, &wake_reader))
        .ok()?;
    Some(Server { inbox, wake })
}

/// The notify thread: waits on every kept socket and its wake-up pipe,
/// serves whichever has news, and forgets the sockets let go of.
fn serve(kept: &mpsc::Receiver<Arc<Shared>>, wake: &TokenPipeEnd) {
    let mut sockets: Vec<Arc<Shared>> = Vec::new();
    loop {
        while wake.token_read().is_ok() {}
        sockets.extend(kept.try_iter());
        let mut fds = vec![libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        sockets.retain(|shared| {
            let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            match &state.socket {
                Some(socket) => {
                    fds.push(libc::pollfd {
                        fd: socket.fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    true
                }
                None => false,
            }
        });
        if sys::poll_many(&mut fds, -1).is_err() {
            continue;
        }
        for (shared, polled) in sockets.iter().zip(&fds[1..]) {
            if polled.revents != 0 {
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                state.serve();
            }
        }
    }
}
