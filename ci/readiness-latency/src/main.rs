//! How soon `ready::launch` returns after what it waits for; run by
//! `ci/readiness-latency.sh`.
//!
//! `tokenpipe-readiness-latency [LAUNCHES]` (default 200) launches this
//! same program in child mode (`child MODE`) LAUNCHES times per mode, the
//! modes taking turns so that a change of load hits all of them alike, and
//! prints a markdown table: median, p90 and max per mode. It exits 1 if a
//! launch ends otherwise than its mode says it must.
//!
//! The child maps an 8-byte stamp file (`LATENCY_STAMP`) shared, reads
//! `CLOCK_MONOTONIC` right before the event and stores the reading there (a
//! store to memory, no system call between the reading and the event), then:
//!
//! | mode | event | launch must give |
//! |---|---|---|
//! | `die` | `_exit(3)` | `Exited` with status 3 |
//! | `pipe-ready` | `Notifier::ready` on the token pipe (`write` of token 1) | `Ok` |
//! | `socket-ready` | `Notifier::ready` on the notify socket (`sendmsg` of `READY=1`) | `Ok` |
//! | `socket-ready-barrier` | the same, then `Notifier::barrier` (`BARRIER=1`) | `Ok` |
//!
//! The launcher reads `CLOCK_MONOTONIC` as soon as `launch` returns, then
//! the stamp; the difference is the latency. On Linux `CLOCK_MONOTONIC` is
//! one clock for the whole system, so readings in two processes compare.
//! The socket modes remove `TOKENPIPE_READY_FD` before `Notifier::from_env`,
//! so the notifier speaks the socket even though the pipe is on offer.
//!
//! A fifth row times a whole launch of `/bin/false` (spawn, exec, death,
//! verdict) by the launcher's clock alone, to stand beside
//! `start-stop-daemon --notify-await` on the same program.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokenpipe::ChildExit;
use tokenpipe::ready::{LaunchError, LaunchOptions, Notifier, ReadyChild, launch};

const STAMP_ENV: &str = "LATENCY_STAMP";
const WARM_UP: usize = 5;
const DEATH_STATUS: i32 = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Die,
    PipeReady,
    SocketReady,
    SocketReadyBarrier,
}

const MODES: [Mode; 4] = [
    Mode::Die,
    Mode::PipeReady,
    Mode::SocketReady,
    Mode::SocketReadyBarrier,
];

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Die => "die",
            Mode::PipeReady => "pipe-ready",
            Mode::SocketReady => "socket-ready",
            Mode::SocketReadyBarrier => "socket-ready-barrier",
        }
    }

    fn from_arg(arg: &str) -> Option<Mode> {
        MODES.into_iter().find(|m| m.arg() == arg)
    }

    /// The table's row label: from which event in the child to `launch`'s
    /// return.
    fn label(self) -> &'static str {
        match self {
            Mode::Die => "death seen: child's `_exit` → `launch` returns `Exited`",
            Mode::PipeReady => {
                "ready, token pipe: child's `write` of token 1 → `launch` returns `Ok`"
            }
            Mode::SocketReady => {
                "ready, notify socket: child's `sendmsg` of `READY=1` → `launch` returns `Ok`"
            }
            Mode::SocketReadyBarrier => {
                "ready, notify socket, sender follows with `BARRIER=1`: child's `sendmsg` of \
                 `READY=1` → `launch` returns `Ok`"
            }
        }
    }

    fn target(self) -> Duration {
        match self {
            Mode::Die => Duration::from_millis(10),
            _ => Duration::from_millis(1),
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args[..] {
        [child, mode] if child == "child" => match Mode::from_arg(mode) {
            Some(mode) => be_the_child(mode),
            None => usage(),
        },
        [] => measure(200),
        [n] => match n.parse() {
            Ok(n) if n > 0 => measure(n),
            _ => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: tokenpipe-readiness-latency [LAUNCHES]");
    ExitCode::from(64)
}

// ---- the launched program ---------------------------------------------------

fn be_the_child(mode: Mode) -> ExitCode {
    let stamp = map_stamp(Path::new(
        &std::env::var_os(STAMP_ENV).expect("LATENCY_STAMP is set"),
    ));
    if mode == Mode::Die {
        stamp.store(monotonic_ns(), Ordering::SeqCst);
        // SAFETY: leaves at once, as a crashing daemon would.
        unsafe { libc::_exit(DEATH_STATUS) }
    }
    let socket = mode != Mode::PipeReady;
    if socket {
        // SAFETY: single-threaded; nothing else reads the environment.
        unsafe { std::env::remove_var("TOKENPIPE_READY_FD") };
    }
    // SAFETY: as above; the fd TOKENPIPE_READY_FD names is ours alone.
    let notifier = unsafe { Notifier::from_env() }
        .expect("a usable channel")
        .expect("a channel");
    assert_eq!(
        notifier.is_socket(),
        socket,
        "the channel this mode measures"
    );
    stamp.store(monotonic_ns(), Ordering::SeqCst);
    notifier.ready().expect("ready");
    if mode == Mode::SocketReadyBarrier {
        // Served by launch's linger; its result is not what is timed.
        let _ = notifier.barrier(Duration::from_secs(1));
    }
    // Run until the launcher kills us.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The stamp file mapped shared: a store is in the file (the page cache)
/// at once, for the launcher to read, without a system call.
fn map_stamp(path: &Path) -> &'static AtomicU64 {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the stamp file");
    // SAFETY: a fresh shared mapping of 8 bytes of an open file; the
    // mapping outlives the fd, and is never unmapped.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap the stamp file");
    // SAFETY: page-aligned, 8 bytes, mapped for the rest of the process.
    unsafe { &*(p as *const AtomicU64) }
}

// ---- the launcher -----------------------------------------------------------

fn measure(n: usize) -> ExitCode {
    let dir = std::env::temp_dir().join(format!(
        "tokenpipe-readiness-latency-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("make the stamp directory");
    let stamp = dir.join("stamp");
    let exe = std::env::current_exe().expect("this program's path");
    let falsy = if Path::new("/bin/false").exists() {
        "/bin/false"
    } else {
        "false"
    };

    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(n); MODES.len()];
    let mut whole: Vec<u64> = Vec::with_capacity(n);
    let mut failures = 0;
    for round in 0..WARM_UP + n {
        for (i, mode) in MODES.into_iter().enumerate() {
            match once(&exe, &stamp, mode) {
                Ok(ns) if round >= WARM_UP => samples[i].push(ns),
                Ok(_) => {}
                Err(why) => {
                    eprintln!("readiness-latency: {} launch {round}: {why}", mode.arg());
                    failures += 1;
                }
            }
        }
        let start = Instant::now();
        match launch(&mut Command::new(falsy), options()) {
            Err(LaunchError::Exited {
                exit: ChildExit::Exited(1),
                ..
            }) => {
                if round >= WARM_UP {
                    whole.push(start.elapsed().as_nanos() as u64);
                }
            }
            other => {
                eprintln!("readiness-latency: {falsy} launch {round}: {other:?}");
                failures += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("| what is timed | launches | median | p90 | max | target | p90 / max within it |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (mode, ns) in MODES.into_iter().zip(&mut samples) {
        let (median, p90, max) = summary(ns);
        let met = |v: u64| {
            if v < mode.target().as_nanos() as u64 {
                "yes"
            } else {
                "no"
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | < {} ms | {} / {} |",
            mode.label(),
            ns.len(),
            time(median),
            time(p90),
            time(max),
            mode.target().as_millis(),
            met(p90),
            met(max),
        );
    }
    let (median, p90, max) = summary(&mut whole);
    println!(
        "| whole launch of `{falsy}`, by the launcher's clock: `launch` called → returns `Exited` (spawn and exec included) | {} | {} | {} | {} | — | — |",
        whole.len(),
        time(median),
        time(p90),
        time(max),
    );
    if failures > 0 {
        eprintln!("readiness-latency: {failures} launches ended otherwise than expected");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn options() -> LaunchOptions {
    LaunchOptions::new().timeout(Duration::from_secs(10))
}

/// One launch in `mode`: nanoseconds from the child's stamp to `launch`'s
/// return.
fn once(exe: &Path, stamp: &Path, mode: Mode) -> Result<u64, String> {
    File::create(stamp)
        .and_then(|mut f| f.write_all(&[0; 8]))
        .map_err(|e| format!("cannot reset the stamp file: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["child", mode.arg()]).env(STAMP_ENV, stamp);
    let result = launch(&mut cmd, options());
    let returned = monotonic_ns();
    let outcome = match (mode, result) {
        (Mode::Die, Err(LaunchError::Exited { exit, .. })) => {
            if exit == ChildExit::Exited(DEATH_STATUS) {
                Ok(())
            } else {
                Err(format!("it {exit}, not with status {DEATH_STATUS}"))
            }
        }
        (Mode::Die, other) => Err(format!("expected Exited, got {other:?}")),
        (_, Ok(child)) => end(child),
        (_, Err(e)) => Err(format!("expected Ok, got {e}")),
    };
    outcome?;
    let bytes = std::fs::read(stamp).map_err(|e| format!("cannot read the stamp: {e}"))?;
    let stamped = u64::from_ne_bytes(bytes[..8].try_into().map_err(|_| "a short stamp file")?);
    if stamped == 0 || stamped > returned {
        return Err(format!(
            "no usable stamp ({stamped}, launch returned at {returned})"
        ));
    }
    Ok(returned - stamped)
}

/// Kills and reaps a child that reported ready.
fn end(mut child: ReadyChild) -> Result<(), String> {
    child
        .kill(libc::SIGKILL)
        .map_err(|e| format!("cannot kill the ready child: {e}"))?;
    match child.wait() {
        Ok(ChildExit::Signaled(libc::SIGKILL)) => Ok(()),
        other => Err(format!(
            "the ready child ended as {other:?}, not by our SIGKILL"
        )),
    }
}

/// Median, p90 (nearest rank) and max.
fn summary(ns: &mut [u64]) -> (u64, u64, u64) {
    if ns.is_empty() {
        return (0, 0, 0);
    }
    ns.sort_unstable();
    let rank = |q: f64| ns[((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1];
    (rank(0.5), rank(0.9), ns[ns.len() - 1])
}

fn time(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.0} µs", ns as f64 / 1e3)
    }
}
