//! A clean shutdown of worker threads on SIGTERM or Ctrl-C, and a forced
//! one on a second signal, with `tokenpipe::SignalInterrupt` and
//! no `unsafe`:
//!
//! ```text
//! shutdown [--workers N] [--drain SECS] [--self-test]
//!
//! cargo run --example shutdown                    # serves until Ctrl-C or SIGTERM: exit 0
//! cargo run --example shutdown -- --drain 10      # Ctrl-C, then Ctrl-C again: killed by SIGINT
//! cargo run --example shutdown -- --self-test     # sends itself SIGTERM after 300 ms: exit 0
//! # a systemd unit: Type=notify, NotifyAccess=main, and
//! #   ExecStart=/path/to/shutdown --workers 4
//! systemctl start UNIT; systemctl stop UNIT       # Result=success, ExecMainStatus=0
//! ```
//!
//! - `--workers N` (1 to 256, default 4): threads that each do "jobs" of
//!   50 ms and look at the interrupt (`is_triggered`) between jobs.
//! - `--drain SECS` (default 0.5): once it has seen the stop, each worker
//!   finishes its job and then takes `SECS` to drain (a real one flushes
//!   its state here). The whole clean stop takes about `SECS`.
//! - `--self-test`: sends itself SIGTERM after 300 ms (with `kill(1)`).
//!
//! SIGHUP reloads: it prints `shutdown: got SIGHUP; reload K done`, and
//! the workers go on serving (a real daemon rereads its configuration
//! here). It never stops the program, however many come.
//!
//! The first SIGINT or SIGTERM asks for a clean stop: it prints one line,
//! the workers drain and are joined, each saying how many jobs it did, and
//! the program exits 0. A second SIGINT or SIGTERM before that ends the
//! process at once by the signal's default action (the "press Ctrl-C twice
//! to force" of cargo and most daemons:
//! `InstallOptions::second_signal_terminates`): its parent sees it killed
//! by that signal, which a shell reports as `$?` = 130 for SIGINT, 143 for
//! SIGTERM.
//!
//! | outcome | what it prints | exit |
//! |---|---|---|
//! | a signal, then the drain | `shutdown: got SIGINT; ...` (or `SIGTERM`), one `worker I stopped` line per worker, `shutdown: all N workers stopped; exiting 0` | 0 |
//! | a second signal during the drain | nothing more | killed by that signal (shell: 130 or 143) |
//! | SIGHUP | `shutdown: got SIGHUP; reload K done` | (goes on serving) |
//! | the handlers cannot be installed, `NOTIFY_SOCKET` or `WATCHDOG_USEC` is unusable, or a worker panicked | one line saying which | 1 |
//! | usage error | one `usage:` line on stderr | 64 |
//!
//! Readiness: when `NOTIFY_SOCKET` is set (systemd `Type=notify`,
//! `start-stop-daemon --notify-await`), it reports `READY=1` once its
//! workers run, with `STATUS=serving with N workers`, and
//! `STOPPING=1` and `STATUS=stopping: draining N workers` when asked to
//! stop. On SIGHUP it sends `RELOADING=1` with `MONOTONIC_USEC=` (one
//! datagram), then `STATUS=serving with N workers; reloads: K` and
//! `READY=1`, so systemd's `systemctl reload` (with
//! `ExecReload=/bin/kill -HUP $MAINPID`) returns once the reload is done.
//! With `WatchdogSec=` (`WATCHDOG_USEC`, for this pid) a thread sends
//! `WATCHDOG=1` every half interval, from before `READY=1` until the
//! process exits, drain included. The notify socket is read with
//! `Notifier::socket_from_env`, which needs no `unsafe` (unlike
//! `Notifier::from_env`, which also takes `TOKENPIPE_READY_FD` and removes
//! the variables from the environment). `NOTIFY_SOCKET` stays in the
//! environment, so the `kill` of `--self-test` is started without it.

// The point of this example: signal handling with no unsafe code at all.
#![forbid(unsafe_code)]

#[cfg(tokenpipe_sigaction)]
use tokenpipe::SignalInterrupt;

/// Triggered by the first SIGINT or SIGTERM.
#[cfg(tokenpipe_sigaction)]
static STOP: SignalInterrupt = SignalInterrupt::new();

/// Triggered by SIGHUP; reset after each reload. An interrupt of its own,
/// so that a reload never looks like a stop to the workers.
#[cfg(tokenpipe_sigaction)]
static RELOAD: SignalInterrupt = SignalInterrupt::new();

#[cfg(tokenpipe_sigaction)]
fn main() {
    use std::process::exit;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokenpipe::interrupt::{InstallOptions, SIGHUP, SIGINT, SIGTERM};
    use tokenpipe::ready::Notifier;

    /// One job's work.
    const JOB: Duration = Duration::from_millis(50);

    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("usage: shutdown [--workers N] [--drain SECS] [--self-test]  ({why})");
            exit(64);
        }
    };
    let notifier = notifier_from_env().unwrap_or_else(|why| {
        println!("shutdown: {why}; exiting 1");
        exit(1)
    });
    // Read before any thread starts; safe all the same (it removes nothing).
    let watchdog = match &notifier {
        Some(_) => Notifier::watchdog_interval().unwrap_or_else(|e| {
            println!("shutdown: cannot use the watchdog: {e}; exiting 1");
            exit(1)
        }),
        None => None,
    };
    let notifier = Arc::new(notifier.unwrap_or_else(Notifier::none));

    // Before any worker starts: the handlers are in place before there is
    // anything to stop. Safe: the handler runs only async-signal-safe code.
    let force = InstallOptions::new().second_signal_terminates(true);
    if let Err(e) = STOP.install_with(&[SIGINT, SIGTERM], force) {
        println!("shutdown: cannot install the SIGINT and SIGTERM handlers: {e}; exiting 1");
        exit(1);
    }
    if let Err(e) = RELOAD.install(&[SIGHUP]) {
        println!("shutdown: cannot install the SIGHUP handler: {e}; exiting 1");
        exit(1);
    }

    // The watchdog: one ping every half interval, until the process exits
    // (a drain is no reason to be killed as hung). A sleep, not a wait on
    // STOP: the pings go on after the stop.
    if let Some(interval) = watchdog {
        let notifier = Arc::clone(&notifier);
        std::thread::spawn(move || {
            loop {
                if let Err(e) = notifier.watchdog() {
                    eprintln!("shutdown: watchdog ping failed: {e}");
                }
                std::thread::sleep(interval / 2);
            }
        });
    }

    let drain = args.drain;
    let workers: Vec<_> = (1..=args.workers)
        .map(|i| {
            std::thread::spawn(move || {
                let mut jobs = 0u64;
                while !STOP.is_triggered() {
                    // A job is not interrupted: the stop is seen between jobs.
                    std::thread::sleep(JOB);
                    jobs += 1;
                }
                std::thread::sleep(drain); // flushing state
                println!("shutdown: worker {i} stopped after {jobs} jobs");
            })
        })
        .collect();

    let n = args.workers;
    if let Err(e) = notifier.ready() {
        eprintln!("shutdown: could not report ready: {e}; serving all the same");
    }
    let _ = notifier.status(&format!("serving with {n} workers"));

    // Reloads: RELOADING=1 (with MONOTONIC_USEC=, in one datagram), the
    // work, then READY=1, which ends the manager's "reloading". Reset
    // first: a SIGHUP during the reload asks for one more.
    {
        let notifier = Arc::clone(&notifier);
        std::thread::spawn(move || {
            let mut reloads = 0u64;
            while RELOAD.wait().is_ok() {
                let _ = RELOAD.reset();
                if STOP.is_triggered() {
                    continue; // stopping: no READY=1 after STOPPING=1
                }
                reloads += 1;
                if let Err(e) = notifier.reloading() {
                    eprintln!("shutdown: could not report reloading: {e}");
                }
                // A real daemon rereads its configuration here.
                println!("shutdown: got SIGHUP; reload {reloads} done");
                let _ = notifier.status(&format!("serving with {n} workers; reloads: {reloads}"));
                if let Err(e) = notifier.ready() {
                    eprintln!("shutdown: could not report ready after the reload: {e}");
                }
            }
            eprintln!("shutdown: waiting for SIGHUP failed; no more reloads");
        });
    }
    if args.self_test {
        let pid = std::process::id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .env_remove("NOTIFY_SOCKET")
                .status();
            match sent {
                Ok(status) if status.success() => {}
                Ok(status) => eprintln!("shutdown: kill -TERM {pid} failed ({status})"),
                Err(e) => eprintln!("shutdown: cannot run kill -TERM {pid}: {e}"),
            }
        });
        println!(
            "shutdown: serving with {n} workers; --self-test: sending myself SIGTERM in 300 ms"
        );
    } else {
        println!(
            "shutdown: serving with {n} workers (pid {}); press Ctrl-C or send SIGTERM to stop",
            std::process::id()
        );
    }

    if let Err(e) = STOP.wait() {
        // The workers still stop on the flag; nothing is lost by going on.
        eprintln!("shutdown: waiting for a signal failed: {e}; stopping");
        let _ = STOP.trigger();
    }
    let asked = Instant::now();
    let name = match STOP.signal() {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        _ => "a stop",
    };
    println!(
        "shutdown: got {name}; draining {n} workers for {drain:?} \
         (send it again to force)"
    );
    if let Err(e) = notifier.stopping() {
        eprintln!("shutdown: could not report stopping: {e}");
    }
    let _ = notifier.status(&format!("stopping: draining {n} workers"));
    let mut panicked = 0;
    for worker in workers {
        if worker.join().is_err() {
            panicked += 1;
        }
    }
    if panicked > 0 {
        println!("shutdown: {panicked} of {n} workers panicked; exiting 1");
        exit(1);
    }
    println!(
        "shutdown: all {n} workers stopped in {:?}; exiting 0",
        asked.elapsed()
    );
    exit(0);
}

/// What the command line asked for.
#[cfg(tokenpipe_sigaction)]
struct Args {
    workers: usize,
    drain: std::time::Duration,
    self_test: bool,
}

#[cfg(tokenpipe_sigaction)]
impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            workers: 4,
            drain: std::time::Duration::from_millis(500),
            self_test: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--workers" => {
                    let n = args.next().ok_or("--workers needs N")?;
                    parsed.workers = n
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or(format!("--workers takes 1 to 256, not {n:?}"))?;
                }
                "--drain" => {
                    let secs = args.next().ok_or("--drain needs SECS")?;
                    parsed.drain = secs
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                        .ok_or(format!("--drain takes seconds, not {secs:?}"))?;
                }
                "--self-test" => parsed.self_test = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

/// systemd's notify socket, if `NOTIFY_SOCKET` names one; an error
/// message if it is set but unusable.
#[cfg(all(tokenpipe_sigaction, tokenpipe_unix_socket))]
fn notifier_from_env() -> Result<Option<tokenpipe::ready::Notifier>, String> {
    tokenpipe::ready::Notifier::socket_from_env()
        .map_err(|e| format!("cannot use the notify socket: {e}"))
}

/// No Unix-domain sockets here: nothing to report to.
#[cfg(all(tokenpipe_sigaction, not(tokenpipe_unix_socket)))]
fn notifier_from_env() -> Result<Option<tokenpipe::ready::Notifier>, String> {
    Ok(None)
}

#[cfg(not(tokenpipe_sigaction))]
fn main() {
    eprintln!("shutdown needs POSIX signals (sigaction): it runs where processes do");
    std::process::exit(1);
}
