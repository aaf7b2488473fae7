//! The launch's wait, as events and one decision: every source (the token
//! pipe, the notify socket, the program's end, the clock) is read into
//! [`Facts`] first, and [`decide`] alone turns them into a verdict. The
//! orderings that matter ("a report that came before the program exited
//! wins", "a closed pipe is not a failure while the socket is on offer",
//! "the named main process's end is the service's end") are rows of the
//! table its tests go through, not paths through a loop.
//!
//! The program is never reaped while the wait runs: its end is looked at
//! with `WNOWAIT` (Linux), so its pid, and the process group and session
//! it leads, stay its own until the launch has killed what it must.

use std::time::{Duration, Instant};

use super::kept::{Kept, Speakers};
#[cfg(tokenpipe_linux_like)]
use super::procfs;
use super::socket::NotifySocket;
use super::{AfterTimeout, LaunchError, LaunchOptions, ReadyChild};
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error};
use crate::process::{ChildExit, Killed, Process};
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
    /// The process watched is one the program named with `MAINPID=`: its
    /// end is the service's end, whoever still holds the pipe.
    pub(super) main_named: bool,
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
        // Ended, and nothing it started holds the pipe: it died first. Or
        // the main process it named ended: as systemd has it, the service
        // ended with it.
        Some(exit) if facts.pipe_closed || facts.main_named => Next::Exited(exit),
        // Ended with the pipe still held by a process it started (it
        // daemonized itself), or still running with the pipe closed (it
        // may report on the socket yet): neither is a verdict.
        _ if facts.timed_out => Next::TimedOut,
        _ => Next::Wait,
    }
}

/// Two reports heard at the same look, one on each channel: which was
/// sent first cannot be known, and a failure is never hidden behind a
/// ready. Within one channel, the first report counts.
pub(super) fn first_report(pipe: Option<Verdict>, socket: Option<Verdict>) -> Option<Verdict> {
    match (pipe, socket) {
        (Some(failed @ Verdict::Failed(_)), _) | (_, Some(failed @ Verdict::Failed(_))) => {
            Some(failed)
        }
        (pipe, socket) => pipe.or(socket),
    }
}

/// How often to look for the program's end where there is no pidfd.
const DEATH_CADENCE: Duration = Duration::from_millis(10);

/// How many datagrams one look receives at most: a flood of them cannot
/// keep a look from ending, or the wait from seeing its deadline.
const DRAIN_BATCH: usize = 64;

/// One launch's wait.
pub(super) struct Waiter {
    /// The program: killed if the wait ends without handing it over.
    pub(super) child: ReadyChild,
    pub(super) reader: TokenPipeEnd,
    pub(super) socket: Option<NotifySocket>,
    pub(super) speakers: Speakers,
    pub(super) options: LaunchOptions,
    pub(super) start: Instant,
    pub(super) deadline: Instant,
    pub(super) facts: Facts,
    /// The last look stopped at [`DRAIN_BATCH`] with datagrams left.
    pub(super) backlog: bool,
    /// The datagrams of the last look that carried no report: handed to
    /// the `ReadyChild` when a report on the pipe ends the wait in that
    /// look, as what may have been said after it.
    pub(super) look_datagrams: Vec<Box<[u8]>>,
    /// What the kill on timeout did to the watched process.
    pub(super) killed: Option<Killed>,
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
            speakers: Speakers::default(),
            start,
            deadline: deadline_after(start, options.timeout),
            options,
            facts: Facts::default(),
            backlog: false,
            look_datagrams: Vec::new(),
            killed: None,
        }
    }

    /// The blocking wait: `poll` for news until there is a verdict.
    pub(super) fn run(mut self) -> Result<ReadyChild, LaunchError> {
        loop {
            match self.step() {
                Next::Wait => self.wait_for_news(),
                Next::Report(verdict) => return self.conclude(verdict),
                Next::Exited(exit) => return Err(self.exited(exit)),
                Next::TimedOut => {
                    if self.options.kill_on_timeout && self.facts.ended.is_none() {
                        self.kill_all_within();
                    }
                    return Err(self.timed_out());
                }
            }
        }
    }

    /// Everything there is to know now, and what it means: the one step
    /// both waits ([`run`](Self::run) and, with tokio, `run_async`) take.
    pub(super) fn step(&mut self) -> Next {
        self.gather();
        decide(self.facts)
    }

    /// The program ended first (or its named main process did): whatever
    /// it left goes with it, as nothing of the launch is handed back. The
    /// program itself is reaped here or, killed, by the reaper thread.
    pub(super) fn exited(&mut self, exit: ChildExit) -> LaunchError {
        self.child.kill_all();
        let _ = self.child.launched.try_wait();
        LaunchError::Exited {
            exit,
            status: self.child.status.take().map(String::from),
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
        self.facts.main_named = self.child.main.is_some();
        self.backlog = false;
        if let Some(contained) = &mut self.child.contain {
            contained.refresh(&mut self.child.launched);
        }
        self.look_datagrams.clear();
        let socket = self.drain_socket();
        let pipe = self.drain_pipe();
        if self.facts.report.is_none() {
            self.facts.report = first_report(pipe, socket);
            // A report on the pipe: the datagrams of this look may have
            // been sent after it (which came first cannot be known); the
            // ReadyChild hands them out rather than lose them.
            if self.facts.report.is_some() && socket.is_some() {
                self.look_datagrams.clear();
            }
        }
        // After draining: a request for more time may have moved it.
        self.facts.timed_out = now >= self.deadline;
    }

    /// Whether the program has ended, and how, leaving it unreaped:
    /// `ECHILD` or a readable pidfd means ended, its status unknown, never
    /// "still running".
    fn look_for_end(&mut self) -> Option<ChildExit> {
        match &mut self.child.main {
            Some(main) => match main.try_wait() {
                Ok(None) => None,
                Ok(Some(exit)) => Some(exit),
                // Ended, not ours to reap: its parent has its status.
                Err(_) => Some(ChildExit::Unknown),
            },
            None => self
                .child
                .launched
                .peek()
                .unwrap_or(Some(ChildExit::Unknown)),
        }
    }

    /// Waits until a source has news, or the deadline (or, with no pidfd
    /// to watch, the next look for the program's end).
    fn wait_for_news(&self) {
        let pidfd = match self.facts.ended {
            None => self.child.watched().pidfd(),
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
    /// until the next look for it; not at all while datagrams are left
    /// from the last look.
    pub(super) fn news_limit(&self, end_watched: bool) -> Duration {
        if self.backlog {
            return Duration::ZERO;
        }
        let limit = self.deadline.saturating_duration_since(Instant::now());
        if end_watched {
            limit
        } else {
            limit.min(DEATH_CADENCE)
        }
    }

    /// The datagrams waiting, in order, at most [`DRAIN_BATCH`]; the first
    /// report among them.
    fn drain_socket(&mut self) -> Option<Verdict> {
        let fd = self.socket.as_ref()?.fd.as_raw_fd();
        let mut buf = [0u8; 4096];
        let mut first = None;
        let mut drained = false;
        for _ in 0..DRAIN_BATCH {
            let got = match sys::recv_datagram(fd, &mut buf) {
                Ok(got) => got,
                // Drained to EAGAIN, never stopped short by a signal: the
                // async wait is told of new datagrams only as an edge.
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    drained = true;
                    break;
                }
            };
            if !self.may_speak(got.sender_uid, got.sender_pid) {
                continue;
            }
            if got.truncated {
                continue; // cut short, its last line may lie: systemd drops it too
            }
            self.speakers.heard(got.sender_pid, got.carried_fds);
            let report = self.datagram(&buf[..got.len]);
            if report.is_none() {
                self.look_datagrams.push(buf[..got.len].into());
            }
            first = first.or(report);
            if first.is_some() {
                // What follows the report is said after it: left in the
                // socket for the ReadyChild to hand out.
                drained = true;
                break;
            }
        }
        // Stopped at the batch with datagrams maybe left: look again at once.
        self.backlog |= !drained;
        first
    }

    /// Who is heard on the socket: a process of this user, or one the
    /// launch contains (the program, its descendants, what containment
    /// holds), whatever its user: a program started with `Command::uid`
    /// speaks as another user. Where the kernel names no sender (no
    /// credentials), the socket's directory is this user's alone.
    fn may_speak(&mut self, uid: Option<libc::uid_t>, pid: Option<libc::pid_t>) -> bool {
        match uid {
            None => true,
            Some(uid) if uid == sys::getuid() => true,
            Some(_) => pid.is_some_and(|pid| self.contains(pid)),
        }
    }

    /// Whether `pid` is the program, or a process the launch contains.
    #[cfg(tokenpipe_linux_like)]
    fn contains(&mut self, pid: libc::pid_t) -> bool {
        let launched = self.child.launched.pid();
        if pid == launched {
            return true;
        }
        match &mut self.child.contain {
            Some(contained) => {
                if !contained.holds(&self.child.launched, pid) {
                    contained.refresh(&mut self.child.launched);
                }
                contained.holds(&self.child.launched, pid)
            }
            None => !self.child.launched.is_reaped() && procfs::descends_from(pid, launched),
        }
    }

    #[cfg(not(tokenpipe_linux_like))]
    fn contains(&mut self, pid: libc::pid_t) -> bool {
        pid == self.child.launched.pid()
    }

    /// Every message waiting on the token pipe, in order; the first report
    /// among them.
    fn drain_pipe(&mut self) -> Option<Verdict> {
        let mut first = None;
        // Bounded as the socket's drain is: a program that writes bytes
        // without end (not tokens) cannot keep a look from ending.
        let mut budget = DRAIN_BATCH * 16;
        while !self.facts.pipe_closed {
            if budget == 0 {
                self.backlog = true;
                break;
            }
            budget -= 1;
            let report = match self.reader.token_read() {
                Ok(TOKEN_READY | b'\n') => Some(Verdict::Ready),
                Ok(TOKEN_FAILED) => {
                    let errno = self.read_exact::<4>().map(i32::from_ne_bytes);
                    Some(Verdict::Failed(errno))
                }
                Ok(TOKEN_EXTEND) => {
                    if let Some(usec) = self.read_exact::<8>() {
                        self.extend(u64::from_ne_bytes(usec));
                    }
                    None
                }
                Ok(TOKEN_STATUS) => {
                    if let Some(len) = self.read_exact::<2>() {
                        let mut text = vec![0u8; usize::from(u16::from_ne_bytes(len))];
                        if self.read_into(&mut text) {
                            self.child.status = Some(String::from_utf8_lossy(&text).into());
                        }
                    }
                    None
                }
                // Anything else is not ours to understand; skip it.
                Ok(_) => None,
                Err(Error::Eos) => {
                    self.facts.pipe_closed = true;
                    None
                }
                Err(_) => break, // WouldBlock: nothing more now
            };
            first = first.or(report);
        }
        first
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

    /// One notify datagram: `KEY=VALUE` lines; the first report in it.
    fn datagram(&mut self, text: &[u8]) -> Option<Verdict> {
        let mut first = None;
        for line in text.split(|&b| b == b'\n') {
            if line == b"READY=1" {
                first = first.or(Some(Verdict::Ready));
            } else if let Some(errno) = line.strip_prefix(b"ERRNO=") {
                first = first.or(Some(Verdict::Failed(parse(errno))));
            } else if let Some(text) = line.strip_prefix(b"STATUS=") {
                self.child.status = Some(String::from_utf8_lossy(text).into());
            } else if let Some(usec) = line.strip_prefix(b"EXTEND_TIMEOUT_USEC=")
                && let Some(usec) = parse(usec)
            {
                self.extend(usec);
            } else if let Some(pid) = line.strip_prefix(b"MAINPID=")
                && let Some(pid) = parse(pid)
            {
                self.main_pid(pid);
            }
        }
        first
    }

    /// `EXTEND_TIMEOUT_USEC`: the deadline becomes at least now + `usec`.
    fn extend(&mut self, usec: u64) {
        let asked = Instant::now().checked_add(Duration::from_micros(usec));
        if let Some(asked) = asked {
            self.deadline = self.deadline.max(asked);
        }
    }

    /// `MAINPID=`: see [`ReadyChild::adopt_main`]; a newly named main
    /// process has not ended yet.
    fn main_pid(&mut self, pid: libc::pid_t) {
        if self.child.adopt_main(pid, None) {
            self.facts.ended = None;
        }
    }

    /// The verdict, with the program handed over (ready) or held in the
    /// error (failed), and the socket kept with it: its processes may
    /// still speak (a `BARRIER=1` after `READY=1`).
    pub(super) fn conclude(mut self, verdict: Verdict) -> Result<ReadyChild, LaunchError> {
        let speakers = std::mem::take(&mut self.speakers);
        let early = std::mem::take(&mut self.look_datagrams);
        let mut child = self.child;
        let launched = child.launched.pid();
        // Without the news pipe (out of fds) the socket still goes with
        // the child, and barriers are served when it is dropped.
        child.notify = self.socket.take().and_then(|socket| {
            Kept::new(
                socket,
                speakers,
                &early,
                launched,
                self.options.watchdog,
                self.options.watchdog_grace,
            )
            .ok()
        });
        match verdict {
            Verdict::Ready => {
                child.kill_on_drop = false;
                Ok(child)
            }
            Verdict::Failed(errno) => Err(LaunchError::Failed {
                status: child.status.as_deref().map(String::from),
                child,
                errno,
            }),
        }
    }

    /// Kills everything the launch reaches and waits, up to the kill
    /// bound on one monotonic deadline, for the watched process to end.
    pub(super) fn kill_all_within(&mut self) {
        let watched = self.kill_rest_then_watched();
        let killed = watched.kill_within(libc::SIGKILL, crate::process::KILL_BOUND);
        self.killed = Some(killed);
    }

    /// The first half of every kill on timeout, blocking or awaited: what
    /// the program left goes (while it is pinned), then the process whose
    /// end is the program's is handed back to be killed and waited for.
    pub(super) fn kill_rest_then_watched(&mut self) -> &mut Process {
        self.child.kill_rest();
        self.child.watched_mut()
    }

    /// The timeout's error. Unless the program was not to be killed,
    /// everything the launch reaches was killed first
    /// ([`kill_all_within`](Self::kill_all_within), or its async twin).
    pub(super) fn timed_out(mut self) -> LaunchError {
        let waited = self.deadline.saturating_duration_since(self.start);
        let killed = self.killed.take();
        let mut child = self.child;
        let status = child.status.as_deref().map(String::from);
        let after = if !self.options.kill_on_timeout {
            child.kill_on_drop = false;
            AfterTimeout::Running(child)
        } else {
            match self.facts.ended {
                Some(exit) => {
                    // Whatever it left running (its group, detached; all
                    // it contains, contained) goes, while the program is
                    // still unreaped; never "killed" for what had ended.
                    let group_killed = child.kill_rest();
                    let _ = child.launched.try_wait();
                    child.kill_on_drop = false;
                    AfterTimeout::AlreadyExited { exit, group_killed }
                }
                None => match killed {
                    Some(Killed::Ended(exit)) => {
                        // With MAINPID= the one we started is another
                        // process: it goes too (reaped when `child` drops).
                        child.kill_all();
                        AfterTimeout::Killed(exit)
                    }
                    Some(Killed::Refused(errno)) => AfterTimeout::KillFailed {
                        child,
                        errno: Some(errno),
                    },
                    Some(Killed::Lingering) | None => {
                        AfterTimeout::KillFailed { child, errno: None }
                    }
                },
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
            main_named: false,
            timed_out,
        }
    }

    fn main_named(facts: Facts) -> Facts {
        Facts {
            main_named: true,
            ..facts
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
            // The main process named by MAINPID= ended while the program
            // runs on and holds the pipe: the service has ended.
            (
                main_named(facts(None, false, UNKNOWN, false)),
                Next::Exited(ChildExit::Unknown),
            ),
            (
                main_named(facts(None, false, EXIT, true)),
                Next::Exited(ChildExit::Exited(3)),
            ),
            (main_named(facts(None, false, None, false)), Next::Wait),
            (
                main_named(facts(READY, false, UNKNOWN, false)),
                Next::Report(Verdict::Ready),
            ),
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
    fn a_failure_heard_at_the_same_look_as_a_ready_on_the_other_channel_wins() {
        const F: Option<Verdict> = Some(Verdict::Failed(None));
        let table = [
            (None, None, None),
            (READY, None, READY),
            (None, READY, READY),
            (F, None, F),
            (None, FAILED, FAILED),
            // The pipe's failure token and the socket's READY=1 came
            // between the same two looks: their order is unknowable.
            (F, READY, F),
            (READY, FAILED, FAILED),
            (F, FAILED, F),
            (READY, READY, READY),
        ];
        for (pipe, socket, want) in table {
            assert_eq!(first_report(pipe, socket), want, "{pipe:?} {socket:?}");
        }
    }
}
