//! A readiness-aware launcher, like `start-stop-daemon --notify-await`, that
//! also notices when the program dies, and with `--wait` supervises it:
//!
//! ```text
//! launch [--timeout SECS] [--detach] [--wait [--watchdog SECS]]
//!        [--listen unix:PATH | --listen tcp:HOST:PORT]... [--] PROGRAM [ARGS...]
//!
//! cargo run --example launch -- systemd-notify --ready           # exit 0
//! cargo run --example launch -- target/debug/examples/ready_daemon --crash   # exit 2, at once
//! cargo run --example launch -- --wait --watchdog 2 --listen tcp:127.0.0.1:7000 \
//!     -- target/debug/examples/echo_service                     # until it ends
//! ```
//!
//! PROGRAM follows `--`, or is the first word that is not an option (what
//! starts with `-` is taken for one until `--`).
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
//! | 64 | usage error; 71 PROGRAM could not be started (or a `--listen` address not bound) |
//!
//! `--timeout 0` means no timeout, as `TimeoutStartSec=0` does in a systemd
//! unit. `--detach` starts PROGRAM with stdio on `/dev/null`.
//!
//! `--listen unix:PATH` or `--listen tcp:HOST:PORT` (repeatable) binds a
//! listening socket and hands it to PROGRAM by socket activation, as a
//! systemd `.socket` unit does: fds 3, 4, … in the order given, with
//! `LISTEN_FDS`, `LISTEN_FDNAMES` (`unix` or `tcp`, as given) and
//! `LISTEN_PID` set. A `unix:` path that exists is not replaced; the
//! socket files `launch` made are removed when it exits, unless it leaves
//! PROGRAM running with them (ready, without `--wait`). A malformed
//! address (an empty path, a `tcp:` one without HOST or a numeric PORT)
//! is a usage error.
//!
//! With `--wait` it stays after "ready": it prints one line for each later
//! notification (`launch: PROGRAM: STATUS=…`, `RELOADING=1`, `READY=1`,
//! `STOPPING=1`, `WATCHDOG=1`, …), forwards SIGTERM, SIGINT and SIGHUP to
//! the program (its main process), and when the program ends exits with
//! its status: its exit code, or 128+N for signal N (255 when the status
//! cannot be known: a `MAINPID=` process `launch` did not start). With
//! `--watchdog SECS` (needs `--wait`), the program gets `WATCHDOG_USEC` and
//! must send `WATCHDOG=1` at least that often once it is ready; when it
//! misses, it is sent SIGABRT (SIGKILL with all it started 5 s later if it
//! has not ended) and `launch` exits 5. Without `--wait` everything
//! behaves as above.
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
    use std::process::exit;
    use std::time::{Duration, Instant};
    use tokenpipe::Errno;
    use tokenpipe::ready::{LaunchError, LaunchOptions, launch};

    let usage = |why: &str| -> ! {
        eprintln!(
            "usage: launch [--timeout SECS] [--detach] [--wait [--watchdog SECS]] \
             [--listen unix:PATH | --listen tcp:HOST:PORT]... [--] PROGRAM [ARGS...]  ({why})"
        );
        exit(64);
    };
    let seconds = |flag: &str, secs: Option<std::ffi::OsString>| -> Duration {
        let secs = secs.unwrap_or_else(|| usage(&format!("{flag} needs SECS")));
        secs.to_str()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or_else(|| usage(&format!("{flag} takes seconds, not {secs:?}")))
    };
    let mut args = std::env::args_os().skip(1);
    let mut options = LaunchOptions::new();
    let mut wait = false;
    let mut watchdog = None;
    let mut listen_on = Vec::new();
    // PROGRAM: after `--`, or the first word that is not an option (so
    // `cargo run --example launch -- PROGRAM`, whose `--` cargo takes,
    // works as written).
    let mut program = None;
    loop {
        match args.next() {
            None => usage("no PROGRAM"),
            Some(a) if a == "--" => break,
            Some(a) if !a.as_encoded_bytes().starts_with(b"-") => {
                program = Some(a);
                break;
            }
            Some(a) if a == "--detach" => options = options.detach(true),
            Some(a) if a == "--wait" => wait = true,
            Some(a) if a == "--timeout" => {
                let timeout = seconds("--timeout", args.next());
                // 0 is "no timeout" to systemd users (TimeoutStartSec=0).
                options = if timeout.is_zero() {
                    options.no_timeout()
                } else {
                    options.timeout(timeout)
                };
            }
            Some(a) if a == "--watchdog" => {
                let interval = seconds("--watchdog", args.next());
                if interval.is_zero() {
                    usage("--watchdog takes a positive number of seconds");
                }
                watchdog = Some(interval);
            }
            Some(a) if a == "--listen" => {
                let addr = args
                    .next()
                    .unwrap_or_else(|| usage("--listen needs an address"));
                let parsed = addr.to_str().and_then(listen::Addr::parse);
                let addr = parsed.unwrap_or_else(|| {
                    usage(&format!(
                        "--listen takes unix:PATH or tcp:HOST:PORT, not {addr:?}"
                    ))
                });
                listen_on.push(addr);
            }
            Some(other) => usage(&format!("unknown argument {other:?}")),
        }
    }
    if let Some(interval) = watchdog {
        if !wait {
            usage("--watchdog needs --wait: the watchdog is kept by a launcher that stays");
        }
        options = options.watchdog(interval);
    }
    let Some(program) = program.or_else(|| args.next()) else {
        usage("no PROGRAM after --");
    };
    // Bound only once the command line is known to be good, so a usage
    // error leaves no socket file behind.
    for addr in &listen_on {
        options = match listen::bind(addr) {
            Ok((fd, name)) => options.listen(fd, name),
            Err(e) => {
                println!("launch: cannot listen on {addr}: {e}; exiting 71");
                listen::exit(71);
            }
        };
    }
    let name = program.to_string_lossy().into_owned();
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args);
    options = options.contain(true);
    let started = Instant::now();
    let timeout = options.timeout;
    // What is left of the timeout, for the speakers on the socket.
    let left = || {
        started.checked_add(timeout).map_or(Duration::MAX, |end| {
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
    let launched = match launch(&mut cmd, options.clone()) {
        Err(LaunchError::Contain(e)) => {
            eprintln!("launch: no containment here ({e}); what {name} forks may escape");
            launch(&mut cmd, options.contain(false))
        }
        other => other,
    };
    match launched {
        Ok(child) if wait => supervise::until_it_ends(child, &name),
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
            // The program serves on with the sockets: their files stay.
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
            listen::exit(1);
        }
        Err(LaunchError::Exited { exit: how, status }) => {
            println!(
                "launch: {name} {how} before it was ready{}; exiting 2",
                status_suffix(&status)
            );
            listen::exit(2);
        }
        Err(e @ LaunchError::TimedOut { .. }) => {
            println!("launch: {name}: {e}; exiting 3");
            listen::exit(3);
        }
        Err(e) => {
            println!("launch: {name}: {e}; exiting 71");
            listen::exit(71);
        }
    }
}

/// `--listen`'s sockets.
#[cfg(unix)]
mod listen {
    use std::fmt;
    use std::os::fd::OwnedFd;
    use std::path::PathBuf;
    use std::sync::Mutex;

    /// What `--listen` names.
    pub enum Addr {
        Unix(PathBuf),
        Tcp(String),
    }

    impl Addr {
        /// `unix:PATH` (a path, not empty) or `tcp:HOST:PORT` (a host and
        /// a port number); `None` for anything else.
        pub fn parse(addr: &str) -> Option<Addr> {
            if let Some(path) = addr.strip_prefix("unix:") {
                return (!path.is_empty()).then(|| Addr::Unix(path.into()));
            }
            let host_port = addr.strip_prefix("tcp:")?;
            let (host, port) = host_port.rsplit_once(':')?;
            (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| Addr::Tcp(host_port.into()))
        }
    }

    impl fmt::Display for Addr {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Addr::Unix(path) => write!(f, "unix:{}", path.display()),
                Addr::Tcp(host_port) => write!(f, "tcp:{host_port}"),
            }
        }
    }

    /// The socket files this launcher made, removed when it exits unless
    /// the program runs on with them.
    static MADE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Binds `addr`: the socket and its name in `LISTEN_FDNAMES`. A Unix
    /// path that exists is not replaced.
    pub fn bind(addr: &Addr) -> std::io::Result<(OwnedFd, &'static str)> {
        match addr {
            Addr::Unix(path) => {
                let listener = std::os::unix::net::UnixListener::bind(path)?;
                MADE.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(path.clone());
                Ok((listener.into(), "unix"))
            }
            Addr::Tcp(host_port) => {
                let listener = std::net::TcpListener::bind(host_port.as_str())?;
                Ok((listener.into(), "tcp"))
            }
        }
    }

    /// Removes the socket files made, then exits with `code`.
    pub fn exit(code: i32) -> ! {
        for path in MADE.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = std::fs::remove_file(path);
        }
        std::process::exit(code)
    }
}

/// `--wait`: after "ready", until the program ends.
#[cfg(unix)]
mod supervise {
    use std::os::fd::BorrowedFd;
    use std::time::Duration;
    use tokenpipe::ChildExit;
    use tokenpipe::SignalInterrupt;
    use tokenpipe::interrupt::{SIGHUP, SIGINT, SIGTERM};
    use tokenpipe::ready::{Notification, ReadyChild};

    /// One interrupt per forwarded signal, so two different signals in a
    /// row are both forwarded.
    static TERM: SignalInterrupt = SignalInterrupt::new();
    static INT: SignalInterrupt = SignalInterrupt::new();
    static HUP: SignalInterrupt = SignalInterrupt::new();
    const FORWARDED: [(&SignalInterrupt, i32, &str); 3] = [
        (&TERM, SIGTERM, "SIGTERM"),
        (&INT, SIGINT, "SIGINT"),
        (&HUP, SIGHUP, "SIGHUP"),
    ];

    pub fn until_it_ends(mut child: ReadyChild, name: &str) -> ! {
        for (interrupt, signal, _) in FORWARDED {
            if let Err(e) = interrupt.install(&[signal]) {
                println!("launch: cannot forward signals ({e}); killing {name}; exiting 71");
                let _ = child.kill(libc::SIGKILL);
                let _ = child.wait();
                super::listen::exit(71);
            }
        }
        println!(
            "launch: {name} (pid {}) is ready{}; waiting for it to end",
            child.pid(),
            child
                .status_text()
                .map(|t| format!(" (status: {t:?})"))
                .unwrap_or_default()
        );
        loop {
            let wake: Vec<BorrowedFd<'_>> = FORWARDED
                .iter()
                .filter_map(|(i, _, _)| i.try_as_fd().ok())
                .collect();
            match child.next_notification_or(Duration::from_secs(3600), &wake) {
                Ok(Some(said)) => println!("launch: {name}: {}", line(&said)),
                Ok(None) => {}
                Err(e) => println!("launch: {name}: cannot wait for news ({e})"),
            }
            for (interrupt, signal, signame) in FORWARDED {
                if interrupt.is_triggered() {
                    let _ = interrupt.reset();
                    match child.kill(signal) {
                        Ok(()) => println!(
                            "launch: forwarded {signame} to {name} (pid {})",
                            child.pid()
                        ),
                        Err(e) => println!("launch: could not forward {signame} to {name}: {e}"),
                    }
                }
            }
            match child.try_wait() {
                Ok(Some(how)) => {
                    // What it said just before it ended (a STOPPING=1)
                    // is still to be printed.
                    while let Ok(Some(said)) = child.next_notification(Duration::ZERO) {
                        println!("launch: {name}: {}", line(&said));
                    }
                    ended(child, name, how)
                }
                Ok(None) => {}
                Err(e) => {
                    println!("launch: cannot tell whether {name} runs ({e}); exiting 71");
                    super::listen::exit(71);
                }
            }
        }
    }

    fn ended(child: ReadyChild, name: &str, how: ChildExit) -> ! {
        let code = match how {
            ChildExit::Exited(code) => code,
            ChildExit::Signaled(signal) => 128 + signal,
            _ => 255,
        };
        if child.watchdog_expired() {
            println!("launch: {name} {how} after its watchdog expired; exiting 5");
            drop(child);
            super::listen::exit(5);
        }
        println!("launch: {name} {how}; exiting {code}");
        // `exit` runs no destructors: the socket and its directory go now.
        drop(child);
        super::listen::exit(code);
    }

    /// A notification as one line, in the protocol's words.
    fn line(said: &Notification) -> String {
        match said {
            Notification::Ready => "READY=1".into(),
            Notification::Reloading {
                monotonic_usec: Some(usec),
            } => {
                format!("RELOADING=1 MONOTONIC_USEC={usec}")
            }
            Notification::Reloading {
                monotonic_usec: None,
            } => "RELOADING=1".into(),
            Notification::Stopping => "STOPPING=1".into(),
            Notification::Status(text) => format!("STATUS={text}"),
            Notification::Watchdog => "WATCHDOG=1".into(),
            Notification::WatchdogTrigger => "WATCHDOG=trigger".into(),
            Notification::WatchdogInterval(every) => format!("WATCHDOG_USEC={}", every.as_micros()),
            Notification::Errno(errno) => format!("ERRNO={errno}"),
            Notification::MainPid(pid) => format!("MAINPID={pid}"),
            Notification::ExtendTimeout(more) => {
                format!("EXTEND_TIMEOUT_USEC={}", more.as_micros())
            }
            Notification::WatchdogExpired => {
                "watchdog expired: no WATCHDOG=1 in time; sent SIGABRT".into()
            }
            Notification::Other(line) => line.clone(),
            other => format!("{other:?}"),
        }
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("launch runs on Unix only");
    std::process::exit(1);
}
