//! The launch's wait, as events and one decision: every source (the token
//! pipe, the notify socket, the program's end, the clock) is read into
//! [`Facts`] first, and [`decide`] alone turns them into a verdict. The
//! orderings that matter ("a report that came before the program exited
//! wins", "a closed pipe is not a failure while the socket is on offer")
//! are rows of the table its tests go through, not paths through a loop.

use std::time::{Duration, Instant};

use super::socket::NotifySocket;
use super::{AfterTimeout, LaunchError, LaunchOptions, ReadyChild};
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error};
use crate::process::{ChildExit, KILL_BOUND, Killed, Process};
use crate::ready::{TOKEN_EXTEND, TOKEN_FAILED, TOKEN_READY, TOKEN_STATUS};
use crate::sys;
use crate::wait::poll_timeout_ms;

/// What the program reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Ready,
    /// Failed, with the errno it gave, if any.
    Failed(Option<i32>),
}

/// Everything the wait has learnt, from every source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Facts {
    /// The first report heard, on the socket or the pipe.
    pub(super) report: Option<Verdict>,
    /// End of stream on the token pipe: nothing holds its write end.
    pub(super) pipe_closed: bool,
    /// The program (or the process it named with `MAINPID=`) has ended.
    pub(super) ended: Option<ChildExit>,
    /// The deadline has passed.
    pub(super) timed_out: bool,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Report(Verdict),
    Exited(ChildExit),
    TimedOut,
    Wait,
}

/// The launch's one decision. Facts are gathered with the program's end
/// looked at *before* the channels are drained, so a report it sent
/// before it ended is always among them, and wins.
pub(super) fn decide(facts: Facts) -> Next {
    if let Some(verdict) = facts.report {
        return Next::Report(verdict);
    }
    match facts.ended {
        // Ended, and nothing it started holds the pipe: it died first.
        Some(exit) if facts.pipe_closed => Next::Exited(exit),
        // Ended with the pipe still held by a process it started (it
        // daemonized itself), or still running with the pipe closed (it
        // may report on the socket yet): neither is a verdict.
        _ if facts.timed_out => Next::TimedOut,
        _ => Next::Wait,
    }
}

/// How long a verdict heard on the socket waits for the `BARRIER=1` that a
/// systemd-style sender sends right after it (see [`launch`](super::launch)).
pub const BARRIER_LINGER: Duration = Duration::from_millis(25);

/// How often to look for the program's end where there is no pidfd.
const DEATH_CADENCE: Duration = Duration::from_millis(10);

/// One launch's wait.
pub(super) struct Waiter {
    /// The program: killed if the wait ends without handing it over.
    pub(super) child: ReadyChild,
    pub(super) reader: TokenPipeEnd,
    pub(super) socket: Option<NotifySocket>,
    pub(super) options: LaunchOptions,
    pub(super) start: Instant,
    pub(super) deadline: Instant,
    pub(super) facts: Facts,
    pub(super) heard_on_socket: bool,
}

impl Waiter {
    pub(super) fn new(
        child: ReadyChild,
        reader: TokenPipeEnd,
        socket: Option<NotifySocket>,
        options: LaunchOptions,
    ) -> Waiter {
        let start = Instant::now();
        Waiter {
            child,
            reader,
            socket,
            options,
            start,
            deadline: deadline_after(start, options.timeout),
            facts: Facts::default(),
            heard_on_socket: false,
        }
    }

    /// The blocking wait: `poll` for news until there is a verdict.
    pub(super) fn run(mut self) -> Result<ReadyChild, LaunchError> {
        loop {
            match self.step() {
                Next::Wait => self.wait_for_news(),
                Next::Report(verdict) => {
                    if self.heard_on_socket {
                        self.serve_barrier();
                    }
                    return self.conclude(verdict);
                }
                Next::Exited(exit) => return Err(self.exited(exit)),
                Next::TimedOut => return Err(self.timed_out(KILL_BOUND)),
            }
        }
    }

    /// Everything there is to know now, and what it means: the one step
    /// both waits ([`run`](Self::run) and, with tokio, `run_async`) take.
    pub(super) fn step(&mut self) -> Next {
        self.gather();
        decide(self.facts)
    }

    pub(super) fn exited(&mut self, exit: ChildExit) -> LaunchError {
        LaunchError::Exited {
            exit,
            status: self.child.status.take(),
        }
    }

    /// Reads every source once, without blocking: the clock, then the
    /// program's end, then every channel (so that a report sent before the
    /// end is among the facts whenever the end is).
    pub(super) fn gather(&mut self) {
        let now = Instant::now();
        if self.facts.ended.is_none() {
            self.facts.ended = self.look_for_end();
        }
        self.drain_socket();
        self.drain_pipe();
        // After draining: a request for more time may have moved it.
        self.facts.timed_out = now >= self.deadline;
    }

    /// The process whose end is the program's end: the one named by
    /// `MAINPID=` if there is one, else the one we started.
    pub(super) fn watched(&self) -> &Process {
        self.child.main.as_ref().unwrap_or(&self.child.launched)
    }

    /// Whether the program has ended, and how: `ECHILD` or a readable
    /// pidfd means ended, its status unknown, never "still running".
    fn look_for_end(&mut self) -> Option<ChildExit> {
        // The one we started is reaped as soon as it ends, whoever is
        // watched: its status is the answer, or it would linger a zombie.
        let launched = self
            .child
            .launched
            .try_wait()
            .unwrap_or(Some(ChildExit::Unknown));
        match &mut self.child.main {
            Some(main) => main
                .ended_within(Duration::ZERO)
                .unwrap_or(true)
                .then_some(ChildExit::Unknown),
            None => launched,
        }
    }

    /// Waits until a source has news, or the deadline (or, with no pidfd
    /// to watch, the next look for the program's end).
    fn wait_for_news(&self) {
        let pidfd = match self.facts.ended {
            None => self.watched().pidfd(),
            Some(_) => None,
        };
        let limit = self.news_limit(pidfd.is_some() || self.facts.ended.is_some());
        let mut fds = [
            pollin(if self.facts.pipe_closed {
                -1
            } else {
                self.reader.as_raw_fd()
            }),
            pollin(self.socket.as_ref().map_or(-1, |s| s.fd.as_raw_fd())),
            pollin(pidfd.unwrap_or(-1)),
        ];
        // EINTR or a failure: the loop looks again and re-checks the time.
        let _ = sys::poll_many(&mut fds, poll_timeout_ms(limit));
    }

    /// How long to wait for news: until the deadline, or, where the
    /// program's end cannot be watched (`end_watched` false: no pidfd),
    /// until the next look for it.
    pub(super) fn news_limit(&self, end_watched: bool) -> Duration {
        let limit = self.deadline.saturating_duration_since(Instant::now());
        if end_watched {
            limit
        } else {
            limit.min(DEATH_CADENCE)
        }
    }

    /// Every datagram waiting, in order; the first verdict is kept.
    fn drain_socket(&mut self) {
        let Some(socket) = &self.socket else { return };
        let fd = socket.fd.as_raw_fd();
        let mut buf = [0u8; 4096];
        let me = sys::getuid();
        loop {
            let got = match sys::recv_datagram(fd, &mut buf) {
                Ok(got) => got,
                // Drained to EAGAIN, never stopped short by a signal: the
                // async wait is told of new datagrams only as an edge.
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            if got.sender_uid.is_some_and(|uid| uid != me && uid != 0) {
                continue; // another user's process: not ours to hear
            }
            if got.truncated {
                continue; // cut short, its last line may lie: systemd drops it too
            }
            self.heard_on_socket = true;
            self.datagram(&buf[..got.len], got.sender_uid);
        }
    }

    /// Every message waiting on the token pipe, in order.
    fn drain_pipe(&mut self) {
        while !self.facts.pipe_closed {
            match self.reader.token_read() {
                Ok(TOKEN_READY | b'\n') => self.report(Verdict::Ready),
                Ok(TOKEN_FAILED) => {
                    let errno = self.read_exact::<4>().map(i32::from_ne_bytes);
                    self.report(Verdict::Failed(errno));
                }
                Ok(TOKEN_EXTEND) => {
                    if let Some(usec) = self.read_exact::<8>() {
                        self.extend(u64::from_ne_bytes(usec));
                    }
                }
                Ok(TOKEN_STATUS) => {
                    if let Some(len) = self.read_exact::<2>() {
                        let mut text = vec![0u8; usize::from(u16::from_ne_bytes(len))];
                        if self.read_into(&mut text) {
                            self.child.status = Some(String::from_utf8_lossy(&text).into_owned());
                        }
                    }
                }
                // Anything else is not ours to understand; skip it.
                Ok(_) => {}
                Err(Error::Eos) => self.facts.pipe_closed = true,
                Err(_) => break, // WouldBlock: nothing more now
            }
        }
    }

    fn report(&mut self, verdict: Verdict) {
        self.facts.report = self.facts.report.or(Some(verdict));
    }

    /// The bytes after a token; they were written in the same `write`.
    fn read_exact<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut bytes = [0u8; N];
        self.read_into(&mut bytes).then_some(bytes)
    }

    fn read_into(&mut self, bytes: &mut [u8]) -> bool {
        match self.reader.read_exact(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.facts.pipe_closed |= e == Error::Eos;
                false
            }
        }
    }

    /// One notify datagram: `KEY=VALUE` lines.
    fn datagram(&mut self, text: &[u8], sender_uid: Option<libc::uid_t>) {
        for line in text.split(|&b| b == b'\n') {
            if line == b"READY=1" {
                self.report(Verdict::Ready);
            } else if let Some(errno) = line.strip_prefix(b"ERRNO=") {
                self.report(Verdict::Failed(parse(errno)));
            } else if let Some(text) = line.strip_prefix(b"STATUS=") {
                self.child.status = Some(String::from_utf8_lossy(text).into_owned());
            } else if let Some(usec) = line.strip_prefix(b"EXTEND_TIMEOUT_USEC=")
                && let Some(usec) = parse(usec)
            {
                self.extend(usec);
            } else if let Some(pid) = line.strip_prefix(b"MAINPID=")
                && let Some(pid) = parse(pid)
            {
                self.main_pid(pid, sender_uid);
            }
        }
    }

    /// `EXTEND_TIMEOUT_USEC`: the deadline becomes at least now + `usec`.
    fn extend(&mut self, usec: u64) {
        let asked = Instant::now().checked_add(Duration::from_micros(usec));
        if let Some(asked) = asked {
            self.deadline = self.deadline.max(asked);
        }
    }

    /// `MAINPID=`: the program names another process as its main one (it
    /// forked its daemon). Honoured as systemd honours it: from a
    /// privileged sender, or for a process of the launched program's own
    /// tree (systemd asks "is it in the service's cgroup"; we have no
    /// cgroup, and ask whether the program we started is among its
    /// ancestors). Only where a pidfd can hold the new process (Linux):
    /// anywhere else its pid could be reused under us.
    fn main_pid(&mut self, pid: libc::pid_t, sender_uid: Option<libc::uid_t>) {
        #[cfg(tokenpipe_linux_like)]
        {
            let launched = self.child.launched.pid();
            if pid <= 1 || pid == launched {
                return;
            }
            let ours = |pid| sender_uid == Some(0) || descends_from(pid, launched);
            if !ours(pid) {
                return;
            }
            let main = Process::stranger(pid);
            // Still the same process now that a pidfd holds it?
            if main.pidfd().is_some() && ours(pid) {
                self.child.main = Some(main);
                self.facts.ended = None;
            }
        }
        #[cfg(not(tokenpipe_linux_like))]
        let _ = (pid, sender_uid);
    }

    /// After a verdict from the socket: receive (and so complete) a
    /// barrier that follows it, for at most [`BARRIER_LINGER`].
    fn serve_barrier(&mut self) {
        let Some(socket) = &self.socket else { return };
        let fd = socket.fd.as_raw_fd();
        let until = Instant::now() + BARRIER_LINGER;
        while !self.barrier_served() {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let _ = sys::poll_readable(fd, poll_timeout_ms(until - now));
        }
    }

    /// Receives what waits on the socket: whether a barrier (a datagram
    /// carrying an fd, which completes it for the sender) was among it.
    pub(super) fn barrier_served(&self) -> bool {
        let Some(socket) = &self.socket else {
            return true;
        };
        let fd = socket.fd.as_raw_fd();
        let mut buf = [0u8; 4096];
        while let Ok(got) = sys::recv_datagram(fd, &mut buf) {
            // A cut datagram is dropped (its fds closed all the same).
            if got.carried_fds && !got.truncated {
                return true;
            }
        }
        false
    }

    /// The verdict, with the program handed over (ready) or held in the
    /// error (failed). The barrier has been served, or given up on.
    pub(super) fn conclude(self, verdict: Verdict) -> Result<ReadyChild, LaunchError> {
        let mut child = self.child;
        match verdict {
            Verdict::Ready => {
                child.kill_on_drop = false;
                Ok(child)
            }
            Verdict::Failed(errno) => Err(LaunchError::Failed {
                status: child.status.clone(),
                child,
                errno,
            }),
        }
    }

    /// The timeout's error, after killing the program (unless it was not
    /// to be) and waiting at most `kill_wait` for it to end: the blocking
    /// wait gives [`KILL_BOUND`]; the async one has waited already.
    pub(super) fn timed_out(self, kill_wait: Duration) -> LaunchError {
        let waited = self.deadline.saturating_duration_since(self.start);
        let mut child = self.child;
        let status = child.status.clone();
        let after = if !self.options.kill_on_timeout {
            child.kill_on_drop = false;
            AfterTimeout::Running(child)
        } else {
            // Detached, it leads its own process group: whatever it left
            // running there (a daemon it forked) goes too, even when the
            // program itself has exited.
            let group_killed =
                child.detached && sys::kill(-child.launched.pid(), libc::SIGKILL).is_ok();
            match self.facts.ended {
                Some(exit) => {
                    // Never "killed" for what had already exited.
                    child.kill_on_drop = false;
                    AfterTimeout::AlreadyExited { exit, group_killed }
                }
                None => {
                    let watched = child.main.as_mut().unwrap_or(&mut child.launched);
                    match watched.kill_within(libc::SIGKILL, kill_wait) {
                        Killed::Ended(exit) => {
                            // With MAINPID= the one we started is another
                            // process: it goes too (reaped when `child`
                            // drops). The group was killed above.
                            if !child.launched.is_reaped() {
                                let _ = child.launched.kill(libc::SIGKILL);
                            }
                            AfterTimeout::Killed(exit)
                        }
                        Killed::Refused(errno) => AfterTimeout::KillFailed {
                            child,
                            errno: Some(errno),
                        },
                        Killed::Lingering => AfterTimeout::KillFailed { child, errno: None },
                    }
                }
            }
        };
        LaunchError::TimedOut {
            waited,
            status,
            after,
        }
    }
}

/// A deadline `timeout` after `start`; a timeout past what an `Instant`
/// holds (`Duration::MAX`) means "never", and a century stands in for it
/// rather than a panic.
pub(super) fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn pollin(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// A decimal number in a notify message.
fn parse<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether `ancestor` is among `pid`'s ancestors, from `/proc/PID/stat`'s
/// parent pids (a short walk: a daemon's tree is shallow).
#[cfg(tokenpipe_linux_like)]
fn descends_from(pid: libc::pid_t, ancestor: libc::pid_t) -> bool {
    let mut pid = pid;
    for _ in 0..64 {
        let Some(parent) = parent_of(pid) else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}

/// The parent pid, field 4 of `/proc/PID/stat` (after the command name,
/// which is in parentheses and may hold anything, spaces and `)` too).
#[cfg(tokenpipe_linux_like)]
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let mut fields = after_name
        .split(|&b| b == b' ')
        .filter(|field| !field.is_empty());
    let _state = fields.next()?;
    parse(fields.next()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: Option<Verdict> = Some(Verdict::Ready);
    const FAILED: Option<Verdict> = Some(Verdict::Failed(Some(5)));
    const EXIT: Option<ChildExit> = Some(ChildExit::Exited(3));
    const UNKNOWN: Option<ChildExit> = Some(ChildExit::Unknown);

    fn facts(
        report: Option<Verdict>,
        pipe_closed: bool,
        ended: Option<ChildExit>,
        timed_out: bool,
    ) -> Facts {
        Facts {
            report,
            pipe_closed,
            ended,
            timed_out,
        }
    }

    #[test]
    fn every_ordering_of_the_facts_gives_the_verdict_it_should() {
        let table = [
            // Nothing yet.
            (facts(None, false, None, false), Next::Wait),
            // A report wins over everything that came with it: the end is
            // looked at before the channels are drained.
            (facts(READY, true, EXIT, true), Next::Report(Verdict::Ready)),
            (
                facts(FAILED, true, EXIT, false),
                Next::Report(Verdict::Failed(Some(5))),
            ),
            (
                facts(READY, false, None, true),
                Next::Report(Verdict::Ready),
            ),
            // Ended with nothing holding the pipe: it died first, however
            // its status was collected.
            (
                facts(None, true, EXIT, false),
                Next::Exited(ChildExit::Exited(3)),
            ),
            (
                facts(None, true, UNKNOWN, false),
                Next::Exited(ChildExit::Unknown),
            ),
            (
                facts(None, true, EXIT, true),
                Next::Exited(ChildExit::Exited(3)),
            ),
            // Ended, but something it started holds the pipe (it
            // daemonized itself): not dead, wait for it or the clock.
            (facts(None, false, EXIT, false), Next::Wait),
            (facts(None, false, EXIT, true), Next::TimedOut),
            // The pipe closed while it runs: it may still report on the
            // socket; no verdict.
            (facts(None, true, None, false), Next::Wait),
            (facts(None, true, None, true), Next::TimedOut),
            // Out of time with nothing heard.
            (facts(None, false, None, true), Next::TimedOut),
        ];
        for (given, want) in table {
            assert_eq!(decide(given), want, "{given:?}");
        }
    }

    #[test]
    fn a_timeout_past_what_an_instant_holds_is_a_century_not_a_panic() {
        let start = Instant::now();
        assert!(
            deadline_after(start, Duration::MAX) > start + Duration::from_secs(3600 * 24 * 365)
        );
        assert_eq!(deadline_after(start, Duration::ZERO), start);
    }

    #[test]
    #[cfg(tokenpipe_linux_like)]
    #[cfg_attr(miri, ignore = "Miri has no getppid and no /proc")]
    fn the_parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses() {
        // Our own stat line: whatever our name, the parent is getppid's.
        let parent = sys::getppid();
        assert_eq!(parent_of(std::process::id() as libc::pid_t), Some(parent));
        assert!(descends_from(std::process::id() as libc::pid_t, parent));
        assert!(!descends_from(std::process::id() as libc::pid_t, i32::MAX));
    }
}
