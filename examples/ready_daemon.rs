//! A daemon that tells whoever started it "I am up" (or "I failed"), in
//! whatever protocol that launcher speaks, through
//! `tokenpipe::ready::Notifier`:
//!
//! ```text
//! ready_daemon [--fail | --crash] [--notify-fd N] [--init SECS] [--serve SECS] [--pid-file PATH]
//!
//! cargo run --example ready_daemon                       # no launcher: runs all the same
//! cargo run --example ready_daemon -- --pid-file rd.pid --serve 30 &
//! kill -TERM "$(cat rd.pid)"                              # stops at once: exit 0, rd.pid removed
//! start-stop-daemon --start --notify-await --notify-timeout 5 --background \
//!     --pidfile /tmp/rd.pid --make-pidfile --exec target/debug/examples/ready_daemon
//!                                                        # systemd's socket: exit 0
//! # an s6 service directory: notification-fd holds 3, and run is
//! #   #!/bin/sh
//! #   exec /path/to/ready_daemon --notify-fd 3 --serve 30
//! s6-svwait -U -t 10000 SERVICEDIR                       # up and ready: exit 0
//! # a systemd unit: Type=notify, TimeoutStartSec=2, and
//! #   ExecStart=/path/to/ready_daemon --init 4
//! systemctl start UNIT                                   # active after 4 s: exit 0
//! ```
//!
//! Where it reports:
//!
//! - `--notify-fd N`: a notification fd in the s6 style (also dinit's
//!   `pipefd:N`, OpenRC's `ready=fd:N`): a newline, then close, for ready;
//!   close without a word for failed. The number comes from the command
//!   line, as s6 expects, never from the environment.
//! - otherwise `TOKENPIPE_READY_FD` (this crate's token pipe), then
//!   `NOTIFY_SOCKET` (systemd `Type=notify`, `start-stop-daemon
//!   --notify-await`): `READY=1`, or `ERRNO=5`. The variable is removed
//!   from the environment, so nothing this daemon starts reports for it.
//! - none of them: it says so on stderr and runs all the same.
//!
//! It "initialises" for `--init SECS` (default 0.2); when that is longer
//! than 0.5 s it asks the launcher for 1 s more (`extend_timeout`:
//! systemd's `EXTEND_TIMEOUT_USEC=`) at the start and every 0.5 s until
//! done, so a launcher whose start timeout is shorter than SECS still waits.
//! Then:
//!
//! | flag | what it does | exit |
//! |---|---|---|
//! | (none) | reports ready, serves `SECS` seconds (default 5), or until SIGTERM or SIGINT | 0 |
//! | `--fail` | reports failure with `EIO` (errno 5) | 1 |
//! | `--crash` | exits without a word (the launcher sees only the end of the channel, or nothing at all) | 3 |
//! | | `--notify-fd` names an fd that is not an open pipe or socket, or the environment names an unusable channel | 1 |
//! | | the SIGTERM and SIGINT handlers cannot be installed, or the `--pid-file` cannot be written | 1 |
//! | | usage error (one `usage:` line on stderr) | 64 |
//!
//! While it serves, SIGTERM (what `systemctl stop`, `start-stop-daemon
//! --stop` and `s6-svc -d` send) or SIGINT stops it at once, cleanly: it
//! says so on stderr, removes its pid file and exits 0, through
//! `tokenpipe::SignalInterrupt` (the handlers are installed just
//! before it reports ready; during `--init` the signals still kill it).
//!
//! `--pid-file PATH`: once it has reported ready, it writes its pid (in
//! decimal, with a newline) to `PATH`, and removes the file when it exits
//! 0, whether its `--serve` time ran out or a signal stopped it. It is a
//! plain file, not a lock: `daemon_wait` shows a locked one.
//!
//! A report that cannot be delivered (the launcher has gone) is said on
//! stderr; the daemon goes on as it would have.
//!
//! No barrier (`sd_notify_barrier`) after `READY=1`: this daemon keeps
//! running, so the manager has all the time it needs to read the message
//! and credit it to our pid. A failing daemon exits at once, and its exit
//! alone tells the manager that it did not come up.

/// Triggered by SIGTERM or SIGINT while the daemon serves.
#[cfg(tokenpipe_sigaction)]
static STOP: tokenpipe::SignalInterrupt = tokenpipe::SignalInterrupt::new();

#[cfg(tokenpipe_sigaction)]
fn main() {
    use std::process::exit;
    use std::time::Duration;
    use tokenpipe::interrupt::{SIGINT, SIGTERM};
    use tokenpipe::ready::Notifier;

    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!(
                "usage: ready_daemon [--fail | --crash] [--notify-fd N] [--init SECS] \
                 [--serve SECS] [--pid-file PATH]  ({why})"
            );
            exit(64);
        }
    };

    let found = match args.notify_fd {
        // SAFETY: the fd was given to us for this purpose by whoever started
        // us (s6-supervise opens it before exec'ing `run`); nothing else in
        // this program uses it.
        Some(fd) => unsafe { Notifier::from_fd(fd) }.map(Some),
        // SAFETY: first thing in main, before any thread exists, so no one
        // else reads or changes the environment; the fd of a token pipe
        // handed to us is ours alone.
        None => unsafe { Notifier::from_env() },
    };
    let notifier = match found {
        Ok(Some(notifier)) => {
            eprintln!("ready_daemon: reporting through {notifier:?}");
            Some(notifier)
        }
        Ok(None) => {
            eprintln!(
                "ready_daemon: no readiness channel (no --notify-fd, TOKENPIPE_READY_FD or \
                 NOTIFY_SOCKET); running all the same"
            );
            None
        }
        Err(e) => {
            eprintln!("ready_daemon: cannot use the readiness channel: {e}; exiting 1");
            exit(1);
        }
    };
    // Text for a launcher that shows it (systemd's `systemctl status`, this
    // crate's `launch`); a no-op on an s6-style fd. Not being able to send it is not worth
    // stopping for.
    if let Some(n) = &notifier {
        let _ = n.status("initialising");
    }

    // "Initialisation": a real daemon loads its state here. A long one
    // asks for more time as it goes; the default 200 ms asks for none.
    const STEP: Duration = Duration::from_millis(500);
    const EXTRA: Duration = Duration::from_secs(1);
    let mut left = args.init;
    while !left.is_zero() {
        if args.init > STEP
            && let Some(n) = &notifier
            && let Err(e) = n.extend_timeout(EXTRA)
        {
            eprintln!("ready_daemon: could not ask for more time: {e}; initialising all the same");
        }
        let nap = left.min(STEP);
        std::thread::sleep(nap);
        left -= nap;
    }

    match args.mode {
        Mode::ComeUp => {
            // Before the report: whoever learns that we are up (and reads
            // the pid file) may send SIGTERM at once, and must get a clean stop.
            if let Err(e) = STOP.install(&[SIGTERM, SIGINT]) {
                eprintln!(
                    "ready_daemon: cannot install the SIGTERM and SIGINT handlers: {e}; exiting 1"
                );
                exit(1);
            }
            if let Some(n) = &notifier {
                if let Err(e) = n.ready() {
                    eprintln!("ready_daemon: could not report ready: {e}; serving all the same");
                }
                // start-stop-daemon closes its socket once it has READY=1,
                // so this may well go nowhere: ignored.
                let _ = n.status("serving");
            }
            if let Some(path) = &args.pid_file
                && let Err(e) = std::fs::write(path, format!("{}\n", std::process::id()))
            {
                eprintln!("ready_daemon: cannot write the pid file {path:?}: {e}; exiting 1");
                exit(1);
            }
            eprintln!("ready_daemon: ready; serving for {:?}", args.serve);
            // A real daemon would serve here; this one rests, then ends,
            // or ends as soon as it is asked to stop.
            let stopped = match STOP.wait_timeout(args.serve) {
                Ok(stopped) => stopped,
                Err(e) => {
                    eprintln!("ready_daemon: cannot wait for a signal ({e}); serving without");
                    std::thread::sleep(args.serve);
                    false
                }
            };
            if let Some(path) = &args.pid_file
                && let Err(e) = std::fs::remove_file(path)
            {
                eprintln!("ready_daemon: cannot remove the pid file {path:?}: {e}");
            }
            if stopped {
                eprintln!("ready_daemon: got SIGTERM or SIGINT; stopped cleanly; exiting 0");
            }
            exit(0)
        }
        Mode::Fail => {
            if let Some(n) = &notifier
                && let Err(e) = n.failed(libc::EIO)
            {
                eprintln!("ready_daemon: could not report the failure: {e}");
            }
            eprintln!("ready_daemon: initialisation failed (EIO); exiting 1");
            exit(1)
        }
        Mode::Crash => {
            // No report, no message, no destructors: as sudden as a crash
            // that still leaves a status to read. The kernel closes the
            // channel's fd; a socket channel hears nothing at all.
            exit(3)
        }
    }
}

/// What the command line asked for.
#[cfg(tokenpipe_sigaction)]
struct Args {
    mode: Mode,
    notify_fd: Option<std::ffi::c_int>,
    init: std::time::Duration,
    serve: std::time::Duration,
    pid_file: Option<std::path::PathBuf>,
}

#[cfg(tokenpipe_sigaction)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    ComeUp,
    Fail,
    Crash,
}

#[cfg(tokenpipe_sigaction)]
impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            mode: Mode::ComeUp,
            notify_fd: None,
            init: std::time::Duration::from_millis(200),
            serve: std::time::Duration::from_secs(5),
            pid_file: None,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--fail" | "--crash" if parsed.mode != Mode::ComeUp => {
                    return Err("--fail and --crash exclude each other".into());
                }
                "--fail" => parsed.mode = Mode::Fail,
                "--crash" => parsed.mode = Mode::Crash,
                "--notify-fd" => {
                    let n = args.next().ok_or("--notify-fd needs N")?;
                    let fd = n
                        .parse::<std::ffi::c_int>()
                        .ok()
                        .filter(|&fd| fd >= 0)
                        .ok_or(format!("--notify-fd takes an fd number, not {n:?}"))?;
                    parsed.notify_fd = Some(fd);
                }
                "--init" => parsed.init = seconds(&arg, args.next())?,
                "--serve" => parsed.serve = seconds(&arg, args.next())?,
                "--pid-file" => {
                    let path = args.next().ok_or("--pid-file needs a PATH")?;
                    parsed.pid_file = Some(path.into());
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

/// The SECS after `flag`, as a duration.
#[cfg(tokenpipe_sigaction)]
fn seconds(flag: &str, secs: Option<String>) -> Result<std::time::Duration, String> {
    let secs = secs.ok_or(format!("{flag} needs SECS"))?;
    secs.parse::<f64>()
        .ok()
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .ok_or(format!("{flag} takes seconds, not {secs:?}"))
}

#[cfg(not(tokenpipe_sigaction))]
fn main() {
    eprintln!("ready_daemon needs POSIX signals (sigaction): it runs where processes do");
    std::process::exit(1);
}
