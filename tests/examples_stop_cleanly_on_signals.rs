//! The examples that stop on signals through `SignalInterrupt`, run as a
//! user runs them: `shutdown` stops its workers cleanly on SIGTERM and is
//! killed by a second SIGINT; `ready_daemon` and `daemon_wait`'s daemon
//! end at once on SIGTERM, exit 0 and remove their pid files;
//! `tokio_service` (with the `tokio` feature) stops the helper it launched
//! and exits 0 on SIGTERM.
//!
//! The examples must be built first (`cargo build --all-features
//! --examples`): `cargo test` builds them only when it runs every target,
//! not for `--test examples_stop_cleanly_on_signals`. A missing one fails
//! the test, naming it; it is never skipped.
#![cfg(all(unix, feature = "std"))]
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long a signalled example may take to end, well above the "at once"
/// the CI script measures (1 s): this is a loaded test machine, maybe an
/// emulator.
const END_WITHIN: Duration = Duration::from_secs(10);

/// The example `name` next to this test binary, as a command (under the
/// emulator where there is one).
fn example(name: &str) -> Command {
    let me = std::env::current_exe().unwrap();
    // target/<profile>/deps/this-test -> target/<profile>/examples/NAME
    let exe = me
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        exe.exists(),
        "the {name} example is not built at {exe:?}: run `cargo build --all-features --examples` first"
    );
    common::under_runner(exe.as_os_str())
}

/// A started example, killed when dropped (a failed case leaves nothing
/// running), with its stdout lines arriving on a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts `cmd` with stdout piped (and stderr too, merged by reading
    /// both), stdin on /dev/null.
    fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting the example");
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).unwrap()
    }

    /// Waits up to 20 s for a line containing `needle`.
    fn expect_line(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.seen.iter().any(|l| l.contains(needle)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {needle:?} within 20 s; saw {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the example ended ({:?}) without a line with {needle:?}; saw {:?}",
                    self.child.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// Waits up to [`END_WITHIN`] for the example to end; then collects
    /// the rest of its output.
    fn ends(&mut self) -> ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < END_WITHIN,
                "the example did not end within {END_WITHIN:?}; it said {:?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        // Its pipes are closed now (it started nothing that keeps them).
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to [`END_WITHIN`] for `path` to exist and hold something.
fn appears(path: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < END_WITHIN {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Whether `pid` has ended: no such process, or a zombie its reaper has
/// not collected yet.
fn ended(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn pid_in(path: &Path) -> libc::pid_t {
    let text = std::fs::read_to_string(path).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path:?} holds {text:?}, not a pid"))
}

#[test]
fn shutdown_stops_its_workers_cleanly_on_sigterm() {
    let mut cmd = example("shutdown");
    cmd.args(["--workers", "3", "--drain", "0.2"])
        .env_remove("NOTIFY_SOCKET");
    let mut run = Running::start(cmd);
    run.expect_line("serving with 3 workers");
    common::kill(run.pid(), libc::SIGTERM);
    let status = run.ends();
    assert_eq!(status.code(), Some(0), "{status}; it said {:?}", run.seen);
    let stopped = run
        .seen
        .iter()
        .filter(|l| l.contains("stopped after"))
        .count();
    assert_eq!(stopped, 3, "one line per worker; it said {:?}", run.seen);
    assert!(
        run.seen
            .last()
            .is_some_and(|l| l.contains("all 3 workers stopped") && l.ends_with("exiting 0")),
        "it said {:?}",
        run.seen
    );
}

#[test]
fn shutdown_is_killed_by_a_second_sigint_during_the_drain() {
    let mut cmd = example("shutdown");
    cmd.args(["--workers", "2", "--drain", "30"])
        .env_remove("NOTIFY_SOCKET");
    let mut run = Running::start(cmd);
    run.expect_line("serving with 2 workers");
    common::kill(run.pid(), libc::SIGINT);
    // The first has been handled: the second is a second delivery.
    run.expect_line("got SIGINT; draining 2 workers");
    common::kill(run.pid(), libc::SIGINT);
    let status = run.ends();
    assert_eq!(
        status.signal(),
        Some(libc::SIGINT),
        "{status} (want killed by SIGINT, not an exit code); it said {:?}",
        run.seen
    );
    assert!(
        !run.seen.iter().any(|l| l.contains("stopped after")),
        "no worker finishes a 30 s drain; it said {:?}",
        run.seen
    );
}

#[test]
fn ready_daemon_exits_0_on_sigterm_and_removes_its_pid_file() {
    let dir = common::TempDir::new("rd-sigterm");
    let pid_file: PathBuf = dir.join("rd.pid");
    let mut cmd = example("ready_daemon");
    cmd.arg("--pid-file")
        .arg(&pid_file)
        .args(["--serve", "30"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("TOKENPIPE_READY_FD");
    let mut run = Running::start(cmd);
    assert!(appears(&pid_file), "no pid file; it said {:?}", run.seen);
    assert_eq!(pid_in(&pid_file), run.pid(), "the pid file names it");
    common::kill(run.pid(), libc::SIGTERM);
    let status = run.ends();
    assert_eq!(status.code(), Some(0), "{status}; it said {:?}", run.seen);
    assert!(
        !pid_file.exists(),
        "the pid file is removed; it said {:?}",
        run.seen
    );
    assert!(
        run.seen.iter().any(|l| l.contains("stopped cleanly")),
        "it said {:?}",
        run.seen
    );
}

#[test]
fn daemon_wait_daemon_ends_on_sigterm_and_removes_its_pid_file() {
    let dir = common::TempDir::new("dw-sigterm");
    let pid_file = dir.join("dw.pid");
    let mut launcher = example("daemon_wait");
    launcher
        .arg("--pid-file")
        .arg(&pid_file)
        .args(["--serve", "30"]);
    let mut run = Running::start(launcher);
    let status = run.ends();
    assert_eq!(status.code(), Some(0), "{status}; it said {:?}", run.seen);
    let daemon = pid_in(&pid_file);
    // Killed when this case ends, however it ends.
    let _guard = common::Guard::new(daemon, |pid: &mut libc::pid_t| {
        if !ended(*pid) {
            common::kill(*pid, libc::SIGKILL);
        }
    });
    common::kill(daemon, libc::SIGTERM);
    let start = Instant::now();
    while !ended(daemon) || pid_file.exists() {
        assert!(
            start.elapsed() < END_WITHIN,
            "daemon {daemon} ended: {}, its pid file still there: {}",
            ended(daemon),
            pid_file.exists()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// tokio_service exists only with the tokio feature (required-features),
/// and `cargo test --all-features` builds it.
#[cfg(feature = "tokio")]
#[test]
fn tokio_service_stops_its_helper_and_exits_0_on_sigterm() {
    let mut cmd = example("tokio_service");
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("TOKENPIPE_READY_FD");
    let mut run = Running::start(cmd);
    run.expect_line("tokio_service: ready (helper ");
    let helper: libc::pid_t = run
        .seen
        .iter()
        .find_map(|l| {
            l.strip_prefix("tokio_service: ready (helper ")?
                .strip_suffix(')')
        })
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no helper pid in the ready line; it said {:?}", run.seen));
    // Killed when this case ends, however it ends.
    let _guard = common::Guard::new(helper, |pid: &mut libc::pid_t| {
        if !ended(*pid) {
            common::kill(*pid, libc::SIGKILL);
        }
    });
    common::kill(run.pid(), libc::SIGTERM);
    let status = run.ends();
    assert_eq!(status.code(), Some(0), "{status}; it said {:?}", run.seen);
    assert!(
        run.seen
            .iter()
            .any(|l| l == "tokio_service: got SIGTERM; stopping"),
        "it said {:?}",
        run.seen
    );
    assert_eq!(
        run.seen.last().map(String::as_str),
        Some("tokio_service: helper exited 0; exiting 0"),
        "it said {:?}",
        run.seen
    );
    assert!(
        ended(helper),
        "helper {helper} still runs; it said {:?}",
        run.seen
    );
}
