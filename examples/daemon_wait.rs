//! The daemon hand-shake, as bitcoind does it with `-daemonwait`, on top of
//! `tokenpipe::daemon::fork_daemon`:
//!
//! ```text
//! daemon_wait [--fail | --crash] [--pid-file PATH] [--double-fork] [--serve SECS] [--reexec]
//!
//! cargo run --example daemon_wait                        # comes up:            exit 0
//! cargo run --example daemon_wait -- --fail              # reports failure:     exit 1
//! cargo run --example daemon_wait -- --crash             # dies before ready:   exit 2
//! cargo run --example daemon_wait -- --pid-file d.pid --serve 5 &
//! cargo run --example daemon_wait -- --pid-file d.pid    # already running:     exit 4
//! kill -TERM "$(cat d.pid)"                              # the daemon stops at once, removing d.pid
//! ```
//!
//! The launcher forks. The daemon detaches (new session, optionally a
//! second fork, a locked pid file, `/` as working directory, stdio on
//! `/dev/null`) and reports its set-up; only then does `fork_daemon`
//! return in the launcher. The daemon "initialises" for about 200 ms and
//! reports ready or failed, then serves `SECS` seconds (default 1) and
//! exits, removing its pid file. SIGTERM (or SIGINT) while it serves stops
//! it at once the same way, exit 0 with its pid file removed, through
//! `tokenpipe::SignalInterrupt` (a signal that comes while it
//! initialises takes effect once it has reported). The launcher prints one
//! line and exits:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the daemon is ready; it keeps running |
//! | 1 | the daemon reported failure (or a set-up step failed) |
//! | 2 | the daemon died before it was ready |
//! | 3 | no report within 30 s; the launcher killed it |
//! | 4 | another instance holds the pid file; the message names its pid |
//! | 64 | usage error |
//!
//! It behaves the same when started with stdin and stdout closed
//! (`<&- >&-`): the crate keeps its pipe above fd 2.
//!
//! `--reexec` daemonizes without forking in-process: the launcher starts a
//! copy of itself, detached, with `ready::launch` (so it would be safe even
//! with threads or an async runtime running), the copy finds its
//! `Notifier` with `from_env` and takes the pid file itself, and the
//! launcher exits with the same codes. Prefer it over `fork_daemon` in any
//! program that has started a thread.

#[cfg(unix)]
fn main() {
    use std::process::exit;
    use std::time::Duration;
    use tokenpipe::Error;
    use tokenpipe::daemon::{DaemonError, DaemonOptions, Forked, SetupStep, fork_daemon};

    const READY_TIMEOUT: Duration = Duration::from_secs(30);

    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!(
                "usage: daemon_wait [--fail | --crash] [--pid-file PATH] [--double-fork] \
                 [--serve SECS] [--reexec]  ({why})"
            );
            exit(64);
        }
    };
    if args.reexec {
        reexec_main(&args);
    }
    let mut options = DaemonOptions::new().double_fork(args.double_fork);
    if let Some(path) = &args.pid_file {
        options = options.pid_file(path);
    }

    // SAFETY: nothing in this program has started a thread yet, so the
    // child is a complete copy of the only thread there is.
    let mut daemon = match unsafe { fork_daemon(options) } {
        Ok(Forked::Parent(daemon)) => daemon,
        Ok(Forked::Child(child)) => {
            let tokenpipe::daemon::DaemonChild {
                notifier, pid_file, ..
            } = child;
            daemon_main(notifier, pid_file, &args)
        }
        Err(DaemonError::AlreadyRunning(pid)) => {
            let path = args.pid_file.as_deref().map(|p| p.to_string_lossy());
            println!(
                "launcher: another instance (pid {pid}) holds the pid file {}; exiting 4",
                path.unwrap_or_default()
            );
            exit(4);
        }
        Err(
            e @ DaemonError::SetupFailed {
                step: SetupStep::PidFile,
                ..
            },
        ) => {
            // The errno alone does not say which file it is about.
            let path = args.pid_file.as_deref().map(|p| p.to_string_lossy());
            println!(
                "launcher: could not start the daemon: {e} (pid file {}); exiting 1",
                path.unwrap_or_default()
            );
            exit(1);
        }
        Err(e @ DaemonError::DiedDuringSetup(_)) => {
            // fork_daemon has reaped (or killed and reaped) that child.
            println!("launcher: {e}; exiting 2");
            exit(2);
        }
        Err(e) => {
            println!("launcher: could not start the daemon: {e}; exiting 1");
            exit(1);
        }
    };
    let pid = daemon.pid();

    match daemon.wait_ready_timeout(READY_TIMEOUT) {
        Ok(true) => {
            println!("launcher: daemon {pid} is ready; exiting 0 and leaving it running");
            exit(0);
        }
        Ok(false) => {
            let how = how_it_ended(daemon.wait());
            println!(
                "launcher: daemon {pid} reported that initialisation failed ({how}); exiting 1"
            );
            exit(1);
        }
        Err(DaemonError::DiedBeforeReady) => {
            let how = how_it_ended(daemon.wait());
            println!("launcher: daemon {pid} died before it was ready ({how}); exiting 2");
            exit(2);
        }
        Err(DaemonError::Core(Error::TimedOut)) => {
            // Exit 3 tells whoever started us the daemon is not up; a
            // half-started one left behind would contradict that.
            let killed = daemon.kill(libc::SIGKILL);
            let how = match killed {
                Ok(()) => how_it_ended(daemon.wait()),
                Err(e) => format!("could not kill it: {e}"),
            };
            println!(
                "launcher: daemon {pid} did not report within {READY_TIMEOUT:?}; \
                 killed it ({how}); exiting 3"
            );
            exit(3);
        }
        Err(e) => {
            let _ = daemon.kill(libc::SIGKILL);
            let how = how_it_ended(daemon.wait());
            println!(
                "launcher: could not read the readiness report: {e}; killed daemon {pid} ({how}); exiting 1"
            );
            exit(1);
        }
    }
}

/// What the command line asked for.
#[cfg(unix)]
struct Args {
    mode: Mode,
    reexec: bool,
    pid_file: Option<std::ffi::CString>,
    double_fork: bool,
    serve: std::time::Duration,
}

#[cfg(unix)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    ComeUp,
    Fail,
    Crash,
}

#[cfg(unix)]
impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            mode: Mode::ComeUp,
            reexec: false,
            pid_file: None,
            double_fork: false,
            serve: std::time::Duration::from_secs(1),
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--fail" | "--crash" if parsed.mode != Mode::ComeUp => {
                    return Err("--fail and --crash exclude each other".into());
                }
                "--fail" => parsed.mode = Mode::Fail,
                "--crash" => parsed.mode = Mode::Crash,
                "--double-fork" => parsed.double_fork = true,
                "--reexec" => parsed.reexec = true,
                "--pid-file" => {
                    let path = args.next().ok_or("--pid-file needs a PATH")?;
                    let path = std::ffi::CString::new(path)
                        .map_err(|_| "the pid file path has a NUL byte")?;
                    parsed.pid_file = Some(path);
                }
                "--serve" => {
                    let secs = args.next().ok_or("--serve needs SECS")?;
                    parsed.serve = secs
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                        .ok_or(format!("--serve takes seconds, not {secs:?}"))?;
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if parsed.reexec && parsed.double_fork {
            return Err("--reexec and --double-fork exclude each other".into());
        }
        Ok(parsed)
    }
}

/// Triggered by SIGTERM or SIGINT in the daemon.
#[cfg(unix)]
static STOP: tokenpipe::SignalInterrupt = tokenpipe::SignalInterrupt::new();

/// The daemon side, after `fork_daemon` (or `launch`) has detached it.
/// Its stdout is `/dev/null` now, so it has nothing to print to. Never
/// returns.
#[cfg(unix)]
fn daemon_main(
    notifier: tokenpipe::ready::Notifier,
    pid_file: Option<tokenpipe::daemon::PidFile<'_>>,
    args: &Args,
) -> ! {
    use std::process::exit;
    use std::time::Duration;
    use tokenpipe::interrupt::{SIGINT, SIGTERM};

    // First: a SIGTERM sent as soon as the pid file names us must not kill
    // us with the file left behind.
    if STOP.install(&[SIGTERM, SIGINT]).is_err() {
        let _ = notifier.notify(false);
        drop(pid_file);
        exit(1);
    }
    // "Initialisation": a real daemon loads its state here.
    std::thread::sleep(Duration::from_millis(200));
    match args.mode {
        Mode::ComeUp => {
            // An error here means the launcher is gone: nobody to tell.
            let _ = notifier.notify(true);
            // A real daemon would serve here; this one rests, then ends,
            // or ends at once when asked to stop.
            if STOP.wait_timeout(args.serve).is_err() {
                std::thread::sleep(args.serve);
            }
            drop(pid_file); // removes the pid file; exit() would not
            exit(0)
        }
        Mode::Fail => {
            let _ = notifier.notify(false);
            drop(pid_file);
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

/// `--reexec`: in the launcher, start a detached copy of this program and
/// wait for its report; in that copy (it was given a readiness channel),
/// be the daemon. Never returns.
#[cfg(unix)]
fn reexec_main(args: &Args) -> ! {
    use std::process::exit;
    use std::time::Duration;
    use tokenpipe::daemon::{DaemonError, PidFile};
    use tokenpipe::ready::{LaunchError, LaunchOptions, Notifier, launch};

    /// The copy's exit status when another instance holds the pid file;
    /// the launcher then reads the holder's pid from the file.
    const PID_FILE_HELD: i32 = 4;

    // SAFETY: first thing in main: no thread reads the environment, and
    // the handed fd belongs to nobody else.
    match unsafe { Notifier::from_env() } {
        Ok(Some(notifier)) => {
            let pid_file = match args.pid_file.as_deref().map(PidFile::lock) {
                None => None,
                Some(Ok(file)) => Some(file),
                Some(Err(DaemonError::AlreadyRunning(_))) => exit(PID_FILE_HELD),
                Some(Err(e)) => {
                    let _ = notifier.failed(e.errno().map_or(libc::EIO, |e| e.raw()));
                    exit(1);
                }
            };
            daemon_main(notifier, pid_file, args);
        }
        Ok(None) => {}
        Err(e) => {
            println!("daemon_wait: a readiness channel was set but is unusable: {e}; exiting 1");
            exit(1);
        }
    }
    // The launcher: this very program again, with the same arguments.
    let exe = std::env::current_exe().unwrap_or_else(|e| {
        println!("launcher: cannot find this program to re-execute it: {e}; exiting 1");
        exit(1)
    });
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    let options = LaunchOptions::new()
        .detach(true)
        .timeout(Duration::from_secs(30));
    match launch(&mut cmd, options) {
        Ok(daemon) => {
            let pid = daemon.pid();
            println!("launcher: daemon {pid} is ready; exiting 0 and leaving it running");
            exit(0);
        }
        Err(LaunchError::Failed { mut child, .. }) => {
            let how = how_it_ended(child.wait());
            println!(
                "launcher: daemon {} reported that initialisation failed ({how}); exiting 1",
                child.pid()
            );
            exit(1);
        }
        Err(LaunchError::Exited { exit: how, .. }) if how.code() == Some(PID_FILE_HELD) => {
            let path = args
                .pid_file
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned());
            let path = path.unwrap_or_default();
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            println!(
                "launcher: another instance (pid {}) holds the pid file {path}; exiting 4",
                holder.trim()
            );
            exit(4);
        }
        Err(LaunchError::Exited { exit: how, .. }) => {
            println!("launcher: the daemon died before it was ready (it {how}); exiting 2");
            exit(2);
        }
        Err(e @ LaunchError::TimedOut { .. }) => {
            println!("launcher: the daemon did not report: {e}; exiting 3");
            exit(3);
        }
        Err(e) => {
            println!("launcher: could not start the daemon: {e}; exiting 1");
            exit(1);
        }
    }
}

/// Says how the daemon ended, from `DaemonParent::wait` or `ReadyChild::wait`.
#[cfg(unix)]
fn how_it_ended<E: std::fmt::Display>(waited: Result<tokenpipe::ChildExit, E>) -> String {
    match waited {
        Ok(exit) => format!("it {exit}"),
        Err(e) => e.to_string(),
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("daemon_wait needs fork(): it runs on Unix only");
    std::process::exit(1);
}
