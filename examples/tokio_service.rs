//! A tokio service that launches a helper program with
//! `ready::launch_async`, tells its own launcher it is ready through
//! `Notifier`, and stops on SIGTERM through `SignalInterrupt`, with no
//! `unsafe` and on a single-threaded runtime that never blocks:
//!
//! ```text
//! tokio_service [--helper-delay SECS] [--self-test]
//!
//! cargo run --features tokio --example tokio_service                  # serves until Ctrl-C or SIGTERM: exit 0
//! cargo run --features tokio --example tokio_service -- --self-test   # sends itself SIGTERM 300 ms after ready: exit 0
//! # a systemd unit: Type=notify, NotifyAccess=main, KillMode=mixed, and
//! #   ExecStart=/path/to/tokio_service
//! systemctl start UNIT    # active once the helper is; StatusText=serving; helper PID N ready
//! systemctl stop UNIT     # Result=success, ExecMainStatus=0, well under 1 s
//! ```
//!
//! - `--helper-delay SECS` (default 0.2): how long the helper takes to
//!   start before it reports ready.
//! - `--self-test`: sends itself SIGTERM 300 ms after it is ready (with
//!   `kill(1)`).
//!
//! The helper is this program again (`std::env::current_exe()`) with a
//! hidden first argument, `--helper`: it waits `--helper-delay` seconds,
//! reports `READY=1` on the `NOTIFY_SOCKET` that `launch_async` gave it,
//! then serves until SIGTERM (or SIGINT) and exits 0. It runs in a process
//! group of its own, so a Ctrl-C at the terminal reaches only
//! `tokio_service`, which stops the helper itself.
//!
//! While the helper starts, a ticker task counts 10 ms ticks: the launch is
//! awaited, not blocked on, and the count printed once the helper is ready
//! shows it. Then the service awaits, concurrently (a `poll_fn`, not
//! `select!`), the first of `STOP.triggered()` and `helper.exited()`. On
//! SIGTERM or SIGINT it sends the helper SIGTERM (`ReadyChild::kill`) and
//! awaits its end for up to 1 s (then SIGKILL). A second SIGINT or SIGTERM
//! during that stop ends `tokio_service` at once by the signal's default
//! action (`InstallOptions::second_signal_terminates`; the helper, already
//! sent SIGTERM, ends by itself).
//!
//! | outcome | what it prints | exit |
//! |---|---|---|
//! | SIGTERM or SIGINT | `tokio_service: got SIGTERM; stopping` (or `SIGINT`), then `tokio_service: helper exited 0; exiting 0` | 0 |
//! | SIGTERM or SIGINT while the helper starts | `tokio_service: got SIGTERM while the helper was starting; killed it; exiting 0` | 0 |
//! | the helper does not exit 0 within 1 s of its SIGTERM | `tokio_service: got SIGTERM; stopping`, then one line saying how it ended (killed with SIGKILL if it had not) | 1 |
//! | a second signal during the stop | nothing more | killed by that signal (shell: 130 or 143) |
//! | the helper dies while serving | `tokio_service: helper PID exited with status N while serving; exiting 1` (or `was killed by signal N`) | 1 |
//! | the helper cannot be launched, fails or times out (30 s) | `tokio_service: could not launch the helper: ...; exiting 1` | 1 |
//! | the handlers cannot be installed, `NOTIFY_SOCKET` is unusable, or the runtime cannot be built | one line saying which | 1 |
//! | usage error | one `usage:` line on stderr | 64 |
//!
//! Before those, it prints `tokio_service: launching the helper (200ms to
//! start)`, and once the helper is ready `tokio_service: helper PID
//! reported ready after T; the ticker ticked N times meanwhile` and
//! `tokio_service: ready (helper PID)`.
//!
//! Readiness: when `NOTIFY_SOCKET` is set (systemd `Type=notify`,
//! `start-stop-daemon --notify-await`), it reports `READY=1` once its
//! helper is ready, with `STATUS=serving; helper PID N ready`, and
//! `STATUS=stopping` when asked to stop. As in the `shutdown` example, the
//! variable is read with `Notifier::socket_from_env`, which needs no
//! `unsafe`; the helper gets a socket of `launch_async`'s own in it
//! instead, never this one.
//!
//! Under systemd, use `KillMode=mixed`: `systemctl stop` then sends SIGTERM
//! to `tokio_service` alone, which stops its helper, and only what is left
//! at the end gets SIGKILL. (With the default `KillMode=control-group`
//! systemd sends the helper SIGTERM too, just after the main process.
//! `tokio_service` looks at its own stop before the helper's end, so that
//! is still a clean stop; but a helper that somehow ended before
//! `tokio_service` had its own SIGTERM would count as a helper dying: exit
//! 1.)
//!
//! ```ini
//! [Service]
//! Type=notify
//! NotifyAccess=main
//! KillMode=mixed
//! ExecStart=/path/to/tokio_service
//! ```

// Async signal handling and launching with no unsafe code at all.
#![forbid(unsafe_code)]

#[cfg(tokenpipe_launch)]
use tokenpipe::SignalInterrupt;

/// Triggered by the first SIGINT or SIGTERM: in the service, and in the
/// helper (a process of its own, with its own copy).
#[cfg(tokenpipe_launch)]
static STOP: SignalInterrupt = SignalInterrupt::new();

#[cfg(tokenpipe_launch)]
const USAGE: &str = "usage: tokio_service [--helper-delay SECS] [--self-test]";

#[cfg(tokenpipe_launch)]
fn main() {
    use std::process::exit;
    use tokenpipe::interrupt::{InstallOptions, SIGINT, SIGTERM};

    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("{USAGE}  ({why})");
            exit(64);
        }
    };
    if args.helper {
        helper(args.helper_delay);
    }
    let notifier = notifier_from_env().unwrap_or_else(|why| {
        println!("tokio_service: {why}; exiting 1");
        exit(1)
    });
    // Before anything starts: the handlers are in place before there is
    // anything to stop.
    let force = InstallOptions::new().second_signal_terminates(true);
    if let Err(e) = STOP.install_with(&[SIGINT, SIGTERM], force) {
        println!("tokio_service: cannot install the SIGINT and SIGTERM handlers: {e}; exiting 1");
        exit(1);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            println!("tokio_service: cannot build the tokio runtime: {e}; exiting 1");
            exit(1);
        }
    };
    let code = runtime.block_on(serve(&args, notifier.as_ref()));
    drop(runtime);
    exit(code);
}

/// The service: launch the helper, report ready, stop on a signal. Returns
/// the exit code.
#[cfg(tokenpipe_launch)]
async fn serve(args: &Args, notifier: Option<&tokenpipe::ready::Notifier>) -> i32 {
    use core::future::{Future, poll_fn};
    use core::pin::pin;
    use core::task::Poll;
    use std::os::unix::process::CommandExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    use tokenpipe::interrupt::SIGTERM;
    use tokenpipe::ready::{LaunchOptions, launch_async};

    // The ticker: proof that the runtime's one thread is free while the
    // helper starts.
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            loop {
                interval.tick().await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let mut cmd = match this_program_again() {
        Ok(cmd) => cmd,
        Err(e) => {
            println!(
                "tokio_service: cannot find my own program to run as the helper: {e}; exiting 1"
            );
            return 1;
        }
    };
    cmd.arg("--helper")
        .arg("--helper-delay")
        .arg(args.helper_delay.as_secs_f64().to_string())
        // Ctrl-C at a terminal goes to the foreground process group: not
        // to the helper, which this service stops itself.
        .process_group(0);
    println!(
        "tokio_service: launching the helper ({:?} to start)",
        args.helper_delay
    );
    let asked = Instant::now();
    // The launch, unless a stop comes first: dropping the unfinished launch
    // kills the helper (a program not yet ready is killed when the wait
    // for it ends any other way) and reaps it.
    let launched = {
        let mut launch = pin!(launch_async(&mut cmd, LaunchOptions::new()));
        let mut stop = pin!(STOP.triggered());
        poll_fn(|cx| {
            if let Poll::Ready(launched) = launch.as_mut().poll(cx) {
                return Poll::Ready(Some(launched));
            }
            stop.as_mut().poll(cx).map(|_| None)
        })
        .await
    };
    let mut helper = match launched {
        Some(Ok(helper)) => helper,
        Some(Err(e)) => {
            println!("tokio_service: could not launch the helper: {e}; exiting 1");
            return 1;
        }
        None => {
            println!(
                "tokio_service: got {} while the helper was starting; killed it; exiting 0",
                signal_name()
            );
            return 0;
        }
    };
    ticker.abort();
    let pid = helper.pid();
    println!(
        "tokio_service: helper {pid} reported ready after {:?}; the ticker ticked {} times meanwhile",
        asked.elapsed(),
        ticks.load(Ordering::Relaxed)
    );
    if let Some(notifier) = notifier {
        if let Err(e) = notifier.ready() {
            eprintln!("tokio_service: could not report ready: {e}; serving all the same");
        }
        let _ = notifier.status(&format!("serving; helper PID {pid} ready"));
    }
    println!("tokio_service: ready (helper {pid})");
    if args.self_test {
        let me = std::process::id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &me])
                .env_remove("NOTIFY_SOCKET")
                .status();
            match sent {
                Ok(status) if status.success() => {}
                Ok(status) => eprintln!("tokio_service: kill -TERM {me} failed ({status})"),
                Err(e) => eprintln!("tokio_service: cannot run kill -TERM {me}: {e}"),
            }
        });
        println!("tokio_service: --self-test: sending myself SIGTERM in 300 ms");
    } else {
        println!(
            "tokio_service: serving (pid {}); press Ctrl-C or send SIGTERM to stop",
            std::process::id()
        );
    }

    // The first of a stop and the helper's end. The stop is looked at
    // first, so a signal that reached both (systemd's default KillMode)
    // counts as a stop, not as the helper dying.
    let died = {
        let mut stop = pin!(STOP.triggered());
        let mut exited = pin!(helper.exited());
        poll_fn(|cx| {
            if let Poll::Ready(result) = stop.as_mut().poll(cx) {
                if let Err(e) = result {
                    // Stopping is the safe way out of not knowing.
                    eprintln!("tokio_service: waiting for a signal failed: {e}; stopping");
                }
                return Poll::Ready(None);
            }
            exited.as_mut().poll(cx).map(Some)
        })
        .await
    };
    // Both at once (the signal reached the helper too): a stop, and the
    // helper's end is already known.
    let mut ended = None;
    match died {
        Some(Ok(exit)) if STOP.is_triggered() => ended = Some(exit),
        Some(Ok(exit)) => {
            println!("tokio_service: helper {pid} {exit} while serving; exiting 1");
            return 1;
        }
        Some(Err(e)) => {
            println!("tokio_service: waiting for helper {pid} failed: {e}; exiting 1");
            return 1;
        }
        None => {}
    }

    println!("tokio_service: got {}; stopping", signal_name());
    if let Some(notifier) = notifier {
        let _ = notifier.status("stopping");
    }
    let stopping = async {
        if let Some(exit) = ended {
            return Ok(exit);
        }
        // ESRCH: it has just ended by itself; exited() says how.
        let _ = helper.kill(SIGTERM);
        helper.exited().await
    };
    let exit = match tokio::time::timeout(Duration::from_secs(1), stopping).await {
        Ok(Ok(exit)) => exit,
        Ok(Err(e)) => {
            println!("tokio_service: waiting for helper {pid} failed: {e}; exiting 1");
            return 1;
        }
        Err(_elapsed) => {
            let _ = helper.kill(libc::SIGKILL);
            let how = match helper.exited().await {
                Ok(exit) => exit.to_string(),
                Err(e) => format!("could not be waited for ({e})"),
            };
            println!(
                "tokio_service: helper {pid} did not exit within 1s of SIGTERM; killed it ({how}); exiting 1"
            );
            return 1;
        }
    };
    if exit.success() {
        println!("tokio_service: helper exited 0; exiting 0");
        0
    } else {
        println!("tokio_service: helper {exit} after SIGTERM; exiting 1");
        1
    }
}

/// This program, as a command that starts it again. Where it runs under an
/// emulator the kernel does not know of (qemu-user without binfmt_misc, as
/// in this crate's cross-target tests, which say so in
/// `TOKENPIPE_TEST_RUNNER`), the helper must be started through that
/// emulator too: the kernel cannot run it by itself.
#[cfg(tokenpipe_launch)]
fn this_program_again() -> std::io::Result<std::process::Command> {
    let exe = std::env::current_exe()?;
    let runner = std::env::var("TOKENPIPE_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    Ok(match words.next() {
        Some(emulator) => {
            let mut cmd = std::process::Command::new(emulator);
            cmd.args(words).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    })
}

/// The signal that triggered [`STOP`], for messages.
#[cfg(tokenpipe_launch)]
fn signal_name() -> &'static str {
    use tokenpipe::interrupt::{SIGINT, SIGTERM};
    match STOP.signal() {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        _ => "a stop",
    }
}

/// The helper (the hidden `--helper`): `delay` of "starting", `READY=1` on
/// the socket `launch_async` gave it, then serving until SIGTERM or SIGINT:
/// exit 0. Plain blocking code: it is a program of its own.
#[cfg(tokenpipe_launch)]
fn helper(delay: std::time::Duration) -> ! {
    use std::process::exit;
    use tokenpipe::interrupt::{SIGINT, SIGTERM};

    // First, so that a SIGTERM that comes as soon as it is ready is a
    // clean stop, not a death.
    if let Err(e) = STOP.install(&[SIGTERM, SIGINT]) {
        eprintln!("tokio_service --helper: cannot install the SIGTERM handler: {e}");
        exit(1);
    }
    let notifier = match notifier_from_env() {
        Ok(Some(notifier)) => notifier,
        Ok(None) => {
            eprintln!("tokio_service --helper: no NOTIFY_SOCKET: it is started by tokio_service");
            exit(1);
        }
        Err(why) => {
            eprintln!("tokio_service --helper: {why}");
            exit(1);
        }
    };
    // Starting up; a stop during it ends the start too.
    if let Ok(true) = STOP.wait_timeout(delay) {
        exit(0);
    }
    if let Err(e) = notifier.ready() {
        eprintln!("tokio_service --helper: could not report ready: {e}");
        exit(1);
    }
    if let Err(e) = STOP.wait() {
        eprintln!("tokio_service --helper: waiting for SIGTERM failed: {e}");
        exit(1);
    }
    exit(0);
}

/// What the command line asked for.
#[cfg(tokenpipe_launch)]
struct Args {
    helper: bool,
    helper_delay: std::time::Duration,
    self_test: bool,
}

#[cfg(tokenpipe_launch)]
impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            helper: false,
            helper_delay: std::time::Duration::from_millis(200),
            self_test: false,
        };
        let mut first = true;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                // Hidden: how the service runs this program as its helper.
                "--helper" if first => parsed.helper = true,
                "--helper-delay" => {
                    let secs = args.next().ok_or("--helper-delay needs SECS")?;
                    parsed.helper_delay = secs
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                        .ok_or(format!("--helper-delay takes seconds, not {secs:?}"))?;
                }
                "--self-test" => parsed.self_test = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
            first = false;
        }
        Ok(parsed)
    }
}

/// The notify socket `NOTIFY_SOCKET` names, if it is set; an error message
/// if it is set but unusable. (`tokenpipe_launch` implies Unix-domain
/// sockets.)
#[cfg(tokenpipe_launch)]
fn notifier_from_env() -> Result<Option<tokenpipe::ready::Notifier>, String> {
    tokenpipe::ready::Notifier::socket_from_env()
        .map_err(|e| format!("cannot use the notify socket: {e}"))
}

#[cfg(not(tokenpipe_launch))]
fn main() {
    eprintln!(
        "tokio_service needs POSIX signals, fork, exec and Unix-domain sockets: it runs where processes do"
    );
    std::process::exit(1);
}
