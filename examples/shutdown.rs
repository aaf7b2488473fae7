//! A clean shutdown of worker threads on SIGTERM or Ctrl-C, and a forced
//! one on a second signal, with `bitcoin_tokenpipe::SignalInterrupt` and
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
//! | the handlers cannot be installed, `NOTIFY_SOCKET` is unusable, or a worker panicked | one line saying which | 1 |
//! | usage error | one `usage:` line on stderr | 64 |
//!
//! Readiness: when `NOTIFY_SOCKET` is set (systemd `Type=notify`,
//! `start-stop-daemon --notify-await`), it reports `READY=1` once its
//! workers run, with `STATUS=serving with N workers`, and
//! `STATUS=stopping: draining N workers` when asked to stop. The variable
//! is read with `std::env::var_os` and given to
//! `Notifier::from_socket`, which needs no `unsafe` (unlike
//! `Notifier::from_env`, which also takes `TOKENPIPE_READY_FD` and removes
//! the variables from the environment). It is left in the environment, so
//! the `kill` of `--self-test` is started without it.

// The point of this example: signal handling with no unsafe code at all.
#![forbid(unsafe_code)]

#[cfg(tokenpipe_sigaction)]
use bitcoin_tokenpipe::SignalInterrupt;

/// Triggered by the first SIGINT or SIGTERM.
#[cfg(tokenpipe_sigaction)]
static STOP: SignalInterrupt = SignalInterrupt::new();

#[cfg(tokenpipe_sigaction)]
fn main() {
    use bitcoin_tokenpipe::interrupt::{InstallOptions, SIGINT, SIGTERM};
    use std::process::exit;
    use std::time::{Duration, Instant};

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

    // Before any worker starts: the handlers are in place before there is
    // anything to stop. Safe: the handler runs only async-signal-safe code.
    let force = InstallOptions::new().second_signal_terminates(true);
    if let Err(e) = STOP.install_with(&[SIGINT, SIGTERM], force) {
        println!("shutdown: cannot install the SIGINT and SIGTERM handlers: {e}; exiting 1");
        exit(1);
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
    if let Some(notifier) = &notifier {
        if let Err(e) = notifier.ready() {
            eprintln!("shutdown: could not report ready: {e}; serving all the same");
        }
        let _ = notifier.status(&format!("serving with {n} workers"));
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
    if let Some(notifier) = &notifier {
        let _ = notifier.status(&format!("stopping: draining {n} workers"));
    }
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
fn notifier_from_env() -> Result<Option<bitcoin_tokenpipe::ready::Notifier>, String> {
    use bitcoin_tokenpipe::ready::{Notifier, NotifyAddr};
    use std::os::unix::ffi::OsStrExt;

    let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(None);
    };
    NotifyAddr::parse(value.as_bytes())
        .map(|addr| Some(Notifier::from_socket(addr)))
        .map_err(|e| format!("cannot use NOTIFY_SOCKET={value:?}: {e}"))
}

/// No Unix-domain sockets here: nothing to report to.
#[cfg(all(tokenpipe_sigaction, not(tokenpipe_unix_socket)))]
fn notifier_from_env() -> Result<Option<bitcoin_tokenpipe::ready::Notifier>, String> {
    Ok(None)
}

#[cfg(not(tokenpipe_sigaction))]
fn main() {
    eprintln!("shutdown needs POSIX signals (sigaction): it runs where processes do");
    std::process::exit(1);
}
