//! A readiness-aware launcher, like `start-stop-daemon --notify-await`, that
//! also notices when the program dies:
//!
//! ```text
//! launch [--timeout SECS] [--detach] -- PROGRAM [ARGS...]
//!
//! cargo run --example launch -- systemd-notify --ready           # exit 0
//! cargo run --example launch -- target/debug/examples/ready_daemon --crash   # exit 2, at once
//! ```
//!
//! It starts PROGRAM with every readiness channel on offer (this crate's
//! token pipe in `TOKENPIPE_READY_FD`, a private systemd `NOTIFY_SOCKET`;
//! an s6-style program can be told `--notify-fd $TOKENPIPE_READY_FD`),
//! waits for a verdict, prints one line saying what happened and exits:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | PROGRAM is ready; it keeps running |
//! | 1 | PROGRAM reported failure (the errno or status text is printed) |
//! | 2 | PROGRAM exited first (its exit status or signal is printed) |
//! | 3 | no report in time (default 30 s); PROGRAM was killed, or the line says why not |
//! | 64 | usage error; 71 PROGRAM could not be started |
//!
//! `--timeout 0` means no timeout, as `TimeoutStartSec=0` does in a systemd
//! unit. `--detach` starts PROGRAM with stdio on `/dev/null`.
//!
//! It contains what it launches (`LaunchOptions::contain`, Linux): it
//! makes itself a child subreaper, so a daemon PROGRAM forks, even one
//! that forks twice and calls `setsid`, stays its descendant. On timeout
//! it kills all of it, not only PROGRAM; `MAINPID=` is believed only for
//! such a process, never for `launch` itself or its ancestors. Where it is
//! refused (off Linux, or under qemu-user, which has no
//! `PR_SET_CHILD_SUBREAPER`) it launches without, and says so on stderr.
//!
//! Before it exits after "ready" or "failed", it waits until every process
//! that spoke on the notify socket has ended or had its `BARRIER=1`
//! served (`systemd-notify --ready` sends one and fails if the socket is
//! gone), for at most what is left of the timeout.

#[cfg(unix)]
fn main() {
    use bitcoin_tokenpipe::Errno;
    use bitcoin_tokenpipe::ready::{LaunchError, LaunchOptions, launch};
    use std::process::exit;
    use std::time::{Duration, Instant};

    let usage = |why: &str| -> ! {
        eprintln!("usage: launch [--timeout SECS] [--detach] -- PROGRAM [ARGS...]  ({why})");
        exit(64);
    };
    let mut args = std::env::args_os().skip(1);
    let mut options = LaunchOptions::new();
    loop {
        match args.next() {
            None => usage("no PROGRAM"),
            Some(a) if a == "--" => break,
            Some(a) if a == "--detach" => options = options.detach(true),
            Some(a) if a == "--timeout" => {
                let secs = args.next().unwrap_or_else(|| usage("--timeout needs SECS"));
                let timeout = secs
                    .to_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .unwrap_or_else(|| usage(&format!("--timeout takes seconds, not {secs:?}")));
                // 0 is "no timeout" to systemd users (TimeoutStartSec=0).
                options = if timeout.is_zero() {
                    options.no_timeout()
                } else {
                    options.timeout(timeout)
                };
            }
            Some(other) => usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(program) = args.next() else {
        usage("no PROGRAM after --");
    };
    let name = program.to_string_lossy().into_owned();
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args);
    options = options.contain(true);
    let started = Instant::now();
    // What is left of the timeout, for the speakers on the socket.
    let left = || {
        started
            .checked_add(options.timeout)
            .map_or(Duration::MAX, |end| {
                end.saturating_duration_since(Instant::now())
            })
    };

    let status_suffix = |status: &Option<String>| match status {
        Some(text) => format!(" (status: {text:?})"),
        None => String::new(),
    };
    // Refused before anything was started (off Linux; under an emulator
    // such as qemu-user, which has no PR_SET_CHILD_SUBREAPER): launch
    // without, and say so on stderr.
    let launched = match launch(&mut cmd, options) {
        Err(LaunchError::Contain(e)) => {
            eprintln!("launch: no containment here ({e}); what {name} forks may escape");
            launch(&mut cmd, options.contain(false))
        }
        other => other,
    };
    match launched {
        Ok(mut child) => {
            println!(
                "launch: {name} (pid {}) is ready{}; exiting 0 and leaving it running",
                child.pid(),
                status_suffix(&child.status_text().map(str::to_owned))
            );
            child.settle(left());
            // `exit` runs no destructors: the handle goes first, and the
            // socket and its directory with it.
            drop(child);
            exit(0);
        }
        Err(LaunchError::Failed {
            mut child,
            errno,
            status,
        }) => {
            let why = match errno {
                Some(e) => format!(": {}", Errno::from_raw(e)),
                None => String::from(" (it gave no errno)"),
            };
            println!(
                "launch: {name} (pid {}) reported failure{why}{}; exiting 1",
                child.pid(),
                status_suffix(&status)
            );
            child.settle(left());
            // Failed but running: it runs on (a launcher's exit kills
            // nothing); the socket goes, as above.
            child.kill_on_drop(false);
            drop(child);
            exit(1);
        }
        Err(LaunchError::Exited { exit: how, status }) => {
            println!(
                "launch: {name} {how} before it was ready{}; exiting 2",
                status_suffix(&status)
            );
            exit(2);
        }
        Err(e @ LaunchError::TimedOut { .. }) => {
            println!("launch: {name}: {e}; exiting 3");
            exit(3);
        }
        Err(e) => {
            println!("launch: {name}: {e}; exiting 71");
            exit(71);
        }
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("launch runs on Unix only");
    std::process::exit(1);
}
