//! The daemon hand-shake, as bitcoind does it with `-daemonwait`, on top of
//! `bitcoin_tokenpipe::daemon::fork_daemon`:
//!
//! ```text
//! cargo run --example daemon_wait            # the daemon comes up: exit 0
//! cargo run --example daemon_wait -- --fail  # it reports failure:  exit 1
//! cargo run --example daemon_wait -- --crash # it dies first:       exit 2
//! ```
//!
//! The launcher forks. The child detaches (new session, `/` as working
//! directory, stdio on `/dev/null`) and sends a set-up token; only then does
//! `fork_daemon` return in the launcher. The child "initialises" and reports
//! ready or failed; the launcher exits 0 only on ready. If the child dies
//! before it reports, every write end is closed and the launcher reads end
//! of stream: a failure (exit 2), never the success that bitcoind's own
//! launcher mistook it for. No report within 30 s is exit 3.

#[cfg(unix)]
fn main() {
    use bitcoin_tokenpipe::Error;
    use bitcoin_tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
    use std::process::exit;
    use std::time::Duration;

    const READY_TIMEOUT: Duration = Duration::from_secs(30);

    let mode = match std::env::args().nth(1).as_deref() {
        None => Mode::ComeUp,
        Some("--fail") => Mode::Fail,
        Some("--crash") => Mode::Crash,
        Some(other) => {
            eprintln!("usage: daemon_wait [--fail | --crash]  (unknown argument {other:?})");
            exit(64);
        }
    };

    // SAFETY: nothing in this program has started a thread yet, so the
    // child is a complete copy of the only thread there is.
    let mut daemon = match unsafe { fork_daemon(DaemonOptions::default()) } {
        Ok(Forked::Parent(daemon)) => daemon,
        Ok(Forked::Child(notifier)) => daemon_main(notifier, mode),
        Err(e @ Error::SetupFailed) => {
            // fork_daemon has reaped that child already.
            println!("launcher: {e}; exiting 2");
            exit(2);
        }
        Err(e) => {
            println!("launcher: could not start the daemon: {e}; exiting 1");
            exit(1);
        }
    };
    let pid = daemon.pid();
    println!("launcher: daemon {pid} detached (set-up done), waiting for readiness");

    match daemon.wait_ready_timeout(READY_TIMEOUT) {
        Ok(true) => {
            println!("launcher: daemon {pid} is ready; exiting 0 and leaving it running");
            exit(0);
        }
        Ok(false) => {
            println!(
                "launcher: daemon {pid} reported that initialisation failed ({}); exiting 1",
                how_it_ended(pid)
            );
            exit(1);
        }
        Err(Error::DiedBeforeReady) => {
            println!(
                "launcher: daemon {pid} died before it was ready ({}); exiting 2",
                how_it_ended(pid)
            );
            exit(2);
        }
        Err(Error::TimedOut) => {
            // Exit 3 tells whoever started us the daemon is not up; a
            // half-started one left behind would contradict that.
            // SAFETY: kill takes plain integers; `pid` is our own child,
            // not yet reaped, so the number cannot name another process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            println!(
                "launcher: daemon {pid} did not report within {READY_TIMEOUT:?}; \
                 killed it ({}); exiting 3",
                how_it_ended(pid)
            );
            exit(3);
        }
        Err(e) => {
            println!("launcher: could not read the readiness token: {e}; exiting 1");
            exit(1);
        }
    }
}

#[cfg(unix)]
#[derive(Clone, Copy)]
enum Mode {
    ComeUp,
    Fail,
    Crash,
}

/// The daemon side, after `fork_daemon` has detached it. Its stdout is
/// `/dev/null` now, so it has nothing to print to. Never returns.
#[cfg(unix)]
fn daemon_main(notifier: bitcoin_tokenpipe::daemon::ReadyNotifier, mode: Mode) -> ! {
    use std::process::exit;
    use std::time::Duration;

    // "Initialisation": a real daemon loads its state here.
    std::thread::sleep(Duration::from_millis(200));
    match mode {
        Mode::ComeUp => {
            // An error here means the launcher is gone: nobody to tell.
            let _ = notifier.notify(true);
            // A real daemon would serve here; this one rests, then ends.
            std::thread::sleep(Duration::from_secs(1));
            exit(0)
        }
        Mode::Fail => {
            let _ = notifier.notify(false);
            exit(1)
        }
        Mode::Crash => {
            // SIGKILL rather than abort(): the same sudden death, with the
            // notifier still unsent, and no core file left behind.
            // SAFETY: kill takes plain integers and touches no memory.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            drop(notifier);
            exit(3)
        }
    }
}

/// Reaps the child and says how it ended. `fork_daemon` does not reap a
/// child that got past set-up, and setsid() does not change its parent,
/// so it is still ours to wait for.
#[cfg(unix)]
fn how_it_ended(pid: libc::pid_t) -> String {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for one int.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    if rc != pid {
        return format!("not reaped: {}", std::io::Error::last_os_error());
    }
    if libc::WIFEXITED(status) {
        format!("it exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("it was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("daemon_wait needs fork(): it runs on Unix only");
    std::process::exit(1);
}
