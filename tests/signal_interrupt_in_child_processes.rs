//! `SignalInterrupt` across processes, each case in a child process of its
//! own (this test binary started again with `TOKENPIPE_SI_CHILD` naming
//! the part to play), so that the harness running the tests never gets a
//! SIGINT, a handler or a fork of its own:
//!
//! - the second-signal option: the first SIGINT asks for a clean stop, the
//!   second kills the process by SIGINT; without the option the process
//!   shuts down cleanly however many come; after `reset` the count starts
//!   again;
//! - fork: a daemon from `fork_daemon`, or a child of a plain `fork` after
//!   `install`, and the process that forked it have a pipe each and never
//!   wake each other.
#![cfg(all(unix, not(miri), feature = "std"))]

mod common;

use std::ffi::c_int;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
use tokenpipe::interrupt::{InstallOptions, SIGINT, SIGUSR1};
use tokenpipe::{SignalInterrupt, TokenPipe, TokenPipeEnd};

const MODE: &str = "TOKENPIPE_SI_CHILD";
const ENTRY: &str = "a_child_started_by_these_tests_plays_the_part_its_parent_names";

/// The one interrupt of each child process.
static STOP: SignalInterrupt = SignalInterrupt::new();

/// Not a test of its own: the entry point of the child processes the tests
/// below start. Run by the harness without `TOKENPIPE_SI_CHILD`, it does
/// nothing.
#[test]
fn a_child_started_by_these_tests_plays_the_part_its_parent_names() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    match mode.as_str() {
        "force" => obey(true),
        "no_force" => obey(false),
        "fork_daemon" => launch(true),
        "fork" => launch(false),
        other => panic!("unknown child part {other:?}"),
    }
}

/// Writes a line to stdout with one `write`, around the harness's capture.
fn say(line: &str) {
    let text = format!("{line}\n");
    // SAFETY: `text` is valid for reads of its length.
    let n = unsafe { libc::write(1, text.as_ptr().cast(), text.len()) };
    assert_eq!(n, text.len() as isize);
}

/// The child of the second-signal tests: installs SIGINT, then does what
/// each line on stdin says.
fn obey(force: bool) {
    let options = InstallOptions::new().second_signal_terminates(force);
    STOP.install_with(&[SIGINT], options).unwrap();
    say("ready");
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().as_str() {
            "wait" => {
                STOP.wait().unwrap();
                say("woke");
            }
            "reset" => {
                STOP.reset().unwrap();
                assert!(!STOP.is_triggered());
                say("reset done");
            }
            "exit" => {
                // The clean shutdown.
                say("bye");
                std::process::exit(0);
            }
            other => panic!("unknown command {other:?}"),
        }
    }
    panic!("stdin closed");
}

/// A child of this test binary playing `mode`, killed if the test fails.
struct Player {
    /// Set once the test is done with the child: the watchdog leaves it.
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Player {
    fn start(mode: &str) -> Player {
        let mut child = common::this_test_binary(ENTRY)
            .env(MODE, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // A child that stops answering would leave the test reading its
        // output forever: the watchdog kills it after a minute.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pid = child.id() as libc::pid_t;
        let watched = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            if !watched.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: kill touches no memory; the child is not reaped
                // until `done` is set.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let mut player = Player {
            done,
            child,
            stdin,
            stdout,
        };
        player.expect("ready");
        player
    }

    /// Reads lines until `want` (skipping the harness's own), failing on
    /// end of output.
    fn expect(&mut self, want: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the child ended before saying {want:?}");
            // The harness prints "test NAME ... " before the test runs, so
            // the first line the child says ends one of its lines.
            if line.trim_end().ends_with(want) {
                return;
            }
        }
    }

    fn tell(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn signal(&self, sig: c_int) {
        common::kill(self.child.id() as libc::pid_t, sig);
    }

    /// How it ended, failing if it is still running after 20 s.
    fn ended(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the child is still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn with_the_option_a_first_sigint_asks_and_a_second_kills_by_sigint() {
    let mut child = Player::start("force");
    child.signal(SIGINT);
    child.tell("wait");
    child.expect("woke"); // the flag is set and the child keeps running
    child.signal(SIGINT);
    let status = child.ended();
    assert_eq!(
        status.signal(),
        Some(libc::SIGINT),
        "killed by SIGINT, not {status:?}"
    );
}

#[test]
fn without_the_option_sigints_only_ask_and_the_child_shuts_down_cleanly() {
    let mut child = Player::start("no_force");
    child.signal(SIGINT);
    child.tell("wait");
    child.expect("woke");
    child.signal(SIGINT);
    child.signal(SIGINT);
    // A round trip after the signals, and time for them to land.
    child.tell("wait");
    child.expect("woke");
    std::thread::sleep(Duration::from_millis(200));
    child.tell("exit");
    child.expect("bye");
    let status = child.ended();
    assert_eq!(status.code(), Some(0), "a clean exit, not {status:?}");
}

#[test]
fn after_a_reset_the_count_of_sigints_starts_again() {
    let mut child = Player::start("force");
    child.signal(SIGINT);
    child.tell("wait");
    child.expect("woke");
    child.tell("reset");
    child.expect("reset done");
    // The first SIGINT since the reset: it asks, it does not kill.
    child.signal(SIGINT);
    child.tell("wait");
    child.expect("woke");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "one SIGINT after reset killed it"
    );
    // The second since the reset kills.
    child.signal(SIGINT);
    let status = child.ended();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

fn bytes_in(fd: c_int) -> c_int {
    let mut n: c_int = -1;
    // SAFETY: FIONREAD writes one int to the valid pointer `&mut n`.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } != 0 {
        return -1;
    }
    n
}

/// The forked side (daemon or plain child): async-signal-safe calls only,
/// failures as exit codes. Its interrupt's flag is clear while its
/// launcher's is set; then SIGUSR1 sets its own.
fn forked_side(go: &TokenPipeEnd, report: &TokenPipeEnd) -> c_int {
    if go.token_read() != Ok(b'g') {
        return 20;
    }
    // The launcher has triggered its interrupt: this one must not see it.
    if STOP.is_triggered() {
        return 21;
    }
    if STOP.wait_timeout(Duration::from_millis(300)) != Ok(false) {
        return 22;
    }
    let Ok(fd) = STOP.as_raw_fd() else { return 23 };
    if bytes_in(fd) != 0 {
        return 24; // the launcher's token is in our pipe: it is shared
    }
    if report.token_write(b'a').is_err() {
        return 25;
    }
    // Now the launcher sends SIGUSR1, to us only.
    if STOP.wait_timeout(Duration::from_secs(20)) != Ok(true) {
        return 26;
    }
    if bytes_in(fd) != 1 {
        return 27;
    }
    if report.token_write(b'b').is_err() {
        return 28;
    }
    0
}

/// The launcher: installs SIGUSR1, forks (with `fork_daemon` or libc's
/// `fork`), triggers its own interrupt and checks the child did not wake,
/// then signals the child and checks that it did wake and this process
/// did not.
fn launch(daemon: bool) {
    let installed = STOP.install(&[SIGUSR1]).unwrap();
    let fd = STOP.as_raw_fd().unwrap();
    let (go_reader, go_writer) = TokenPipe::make().unwrap().split();
    let (report_reader, report_writer) = TokenPipe::make().unwrap().split();

    let (pid, mut finish): (libc::pid_t, Box<dyn FnMut() -> common::Ended>) = if daemon {
        let options = DaemonOptions::new();
        // SAFETY: the daemon makes only async-signal-safe calls and leaves
        // with _exit (fork_daemon's contract, as in
        // tests/daemon_module_handshake.rs).
        match unsafe { fork_daemon(options) } {
            Ok(Forked::Child(child)) => {
                let code = if child.notifier.notify(true).is_ok() {
                    forked_side(&go_reader, &report_writer)
                } else {
                    30
                };
                common::exit_now(code)
            }
            Ok(Forked::Parent(parent)) => {
                let mut parent = common::killed_on_drop(parent);
                assert_eq!(parent.wait_ready(), Ok(true));
                let pid = parent.pid();
                (
                    pid,
                    Box::new(move || match parent.wait() {
                        Ok(tokenpipe::daemon::ChildExit::Exited(code)) => {
                            common::Ended::Exited(code)
                        }
                        other => panic!("the daemon ended so: {other:?}"),
                    }),
                )
            }
            Err(e) => panic!("fork_daemon: {e}"),
        }
    } else {
        let pid = common::fork_child(|| forked_side(&go_reader, &report_writer));
        let mut child = common::ChildProcess::new(pid);
        (pid, Box::new(move || child.wait()))
    };

    STOP.trigger().unwrap();
    assert_eq!(bytes_in(fd), 1, "the launcher's own token");
    go_writer.token_write(b'g').unwrap();
    let first = report_reader.token_read_timeout(Duration::from_secs(20));
    if first != Ok(b'a') {
        panic!(
            "the child saw the launcher's trigger: {first:?}, it ended {:?} (see its codes)",
            finish()
        );
    }
    STOP.reset().unwrap();
    common::kill(pid, SIGUSR1);
    assert_eq!(
        report_reader.token_read_timeout(Duration::from_secs(20)),
        Ok(b'b'),
        "the child did not wake on its SIGUSR1"
    );
    assert_eq!(
        STOP.wait_timeout(Duration::from_millis(300)),
        Ok(false),
        "the child's signal woke the launcher"
    );
    assert!(!STOP.is_triggered());
    assert_eq!(bytes_in(fd), 0, "the child wrote into the launcher's pipe");
    assert_eq!(finish(), common::Ended::Exited(0));
    installed.restore().unwrap();
    say("launcher done");
}

fn run_launcher(mode: &str) {
    let out = common::this_test_binary(ENTRY)
        .env(MODE, mode)
        .stdin(Stdio::null())
        .output()
        .expect("start the launcher");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("launcher done"),
        "the launcher ({mode}) failed: {:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_daemon_from_fork_daemon_and_its_launcher_do_not_wake_each_other() {
    run_launcher("fork_daemon");
}

#[test]
fn a_child_of_plain_fork_after_install_and_its_parent_do_not_wake_each_other() {
    run_launcher("fork");
}
