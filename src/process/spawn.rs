//! Starting a program (`std`'s `Command::spawn`, so it is safe with threads
//! and async runtimes running) and never leaving it a zombie: the
//! launcher's half of process control.

use std::io;
#[cfg(tokenpipe_linux_like)]
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use super::Process;
#[cfg(tokenpipe_linux_like)]
use crate::end::TokenPipeEnd;
use crate::sys;
use crate::wait::poll_timeout_ms;

/// Starts `cmd` and takes its pid over as a [`Process`].
///
/// On Linux the child opens its own pidfd between `fork` and `exec` and
/// sends it back on a private socket pair. Opening it by pid once `spawn`
/// has returned would race: a program that ends at once, in a launcher
/// that ignores `SIGCHLD`, is reaped by the kernel straight away, and its
/// pid can name a stranger by the time we ask. A pidfd the child made of
/// itself can only ever name the child. Where that fails (no pidfds, no
/// socket pair) it falls back to `pidfd_open` after `spawn`, or to no pidfd.
pub(crate) fn spawn(cmd: &mut Command) -> io::Result<(Process, Child)> {
    #[cfg(tokenpipe_linux_like)]
    let line = PidfdLine::offer(cmd);
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    #[cfg(tokenpipe_linux_like)]
    let pidfd = line.and_then(PidfdLine::take);
    #[cfg(not(tokenpipe_linux_like))]
    let pidfd = None;
    Ok((Process::child_with_pidfd(pid, pidfd), child))
}

/// The socket pair on which a child sends its own pidfd.
#[cfg(tokenpipe_linux_like)]
struct PidfdLine {
    ours: TokenPipeEnd,
    /// The child's end; the parent's copy goes once `spawn` returns.
    theirs: TokenPipeEnd,
}

#[cfg(tokenpipe_linux_like)]
impl PidfdLine {
    /// Makes the pair and has `cmd`'s child send its pidfd on it. `None`
    /// if no pair can be made (the launch goes on without).
    fn offer(cmd: &mut Command) -> Option<PidfdLine> {
        let [ours, theirs] = sys::socketpair_dgram().ok()?;
        // Above stdio, as every fd a launch makes: on a launcher's closed
        // 0 or 1, the child would take the pair for its stdio.
        let line = PidfdLine {
            ours: TokenPipeEnd::from_owned(ours).above_stdio().ok()?,
            theirs: TokenPipeEnd::from_owned(theirs).above_stdio().ok()?,
        };
        let fd = line.theirs.as_raw_fd();
        let made = sys::file_id(fd).ok()?;
        let send_own_pidfd = move || {
            // A `Command` spawned again runs this again, long after the
            // pair is gone: send only on the very socket made for it.
            if sys::file_id(fd).ok() == Some(made)
                && let Ok(pidfd) = sys::pidfd_open(sys::getpid())
            {
                let _ = sys::send_fd(fd, pidfd);
                sys::close(pidfd);
            }
            // Without it the parent falls back; never a reason to fail.
            Ok(())
        };
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec and makes
        // only system calls (fstat, getpid, pidfd_open, sendmsg, close), each
        // async-signal-safe; it captures two plain values
        // and allocates nothing.
        unsafe {
            cmd.pre_exec(send_own_pidfd);
        }
        Some(line)
    }

    /// The pidfd the child sent, above stdio; `None` if it sent none.
    fn take(self) -> Option<libc::c_int> {
        drop(self.theirs);
        let pidfd = sys::recv_fd(self.ours.as_raw_fd()).ok().flatten()?;
        sys::above_stdio(pidfd).ok()
    }
}

/// How often the reaper looks again at children with no pidfd, and for
/// newly handed ones while it waits on the others.
const REAPER_CADENCE: Duration = Duration::from_millis(100);

/// Hands a child that is still running to this process's reaper thread,
/// which waits for it so that it never lingers as a zombie. The thread is
/// started on first use. Where it cannot be (`EAGAIN` at the process's
/// thread limit), the child is kept, and the start is tried again at the
/// next hand-off, which hands over every child kept so far; until then a
/// kept child that ends stays a zombie (at most until that next hand-off,
/// or until this process exits and init reaps it).
pub(crate) fn reap_in_background(mut process: Process) {
    if !matches!(process.try_wait(), Ok(None)) {
        return; // ended and reaped now, or not ours to reap
    }
    static REAPER: Mutex<Reaper> = Mutex::new(Reaper {
        hand: None,
        kept: Vec::new(),
    });
    // Nothing panics while it is held; were it poisoned all the same, the
    // state would still be whole (a child is either kept or sent).
    let mut reaper = REAPER.lock().unwrap_or_else(PoisonError::into_inner);
    reaper.kept.push(process);
    reaper.hand_over();
}

/// The reaper thread's end of the channel, once it runs, and the children
/// handed over while it could not be started.
struct Reaper {
    hand: Option<mpsc::Sender<Process>>,
    kept: Vec<Process>,
}

impl Reaper {
    /// Starts the thread if it does not run, and hands it every kept child.
    fn hand_over(&mut self) {
        // Those that ended meanwhile are reaped here, thread or not.
        self.kept
            .retain_mut(|process| matches!(process.try_wait(), Ok(None)));
        if self.hand.is_none() {
            let (hand, orphans) = mpsc::channel();
            let started = std::thread::Builder::new()
                .name("tokenpipe-reaper".into())
                .spawn(move || reap(&orphans));
            self.hand = started.ok().map(|_| hand);
        }
        let Some(hand) = &self.hand else { return };
        while let Some(process) = self.kept.pop() {
            // The thread has gone (it cannot return while the channel is
            // open, so only by a panic): keep the child, start anew next time.
            if let Err(mpsc::SendError(process)) = hand.send(process) {
                self.kept.push(process);
                self.hand = None;
                return;
            }
        }
    }
}

/// The reaper thread: waits on every handed child's pidfd (or looks on a
/// cadence where there is none) and reaps each as it ends.
fn reap(orphans: &mpsc::Receiver<Process>) {
    let mut waiting: Vec<Process> = Vec::new();
    loop {
        if waiting.is_empty() {
            match orphans.recv() {
                Ok(process) => waiting.push(process),
                Err(_) => return,
            }
        }
        waiting.extend(orphans.try_iter());
        waiting.retain_mut(|process| matches!(process.try_wait(), Ok(None)));
        if waiting.is_empty() {
            continue;
        }
        let mut fds: Vec<libc::pollfd> = waiting
            .iter()
            .filter_map(Process::pidfd)
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let _ = sys::poll_many(&mut fds, poll_timeout_ms(REAPER_CADENCE));
    }
}
