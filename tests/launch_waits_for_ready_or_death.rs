//! `ready::launch`: whatever the program speaks (this crate's pipe, the
//! notify socket, an s6-style newline), the launcher learns ready, failed,
//! exited or timed out; a report before exit wins; a program that
//! daemonizes itself is not taken for dead; `EXTEND_TIMEOUT_USEC` pushes
//! the deadline; `BARRIER=1` completes; the socket is private and gone
//! afterwards.
//!
//! The programs are this test binary re-run in "child mode" (the test
//! `child_mode_acts_as_told`, with `TOKENPIPE_TEST_ACT` saying what to do),
//! and `/bin/sh` for the by-hand protocols.
#![cfg(all(unix, feature = "std"))]

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokenpipe::ChildExit;
use tokenpipe::ready::{AfterTimeout, LaunchError, LaunchOptions, Notifier, launch};

static SERIAL: Mutex<()> = Mutex::new(());

/// This test binary, started (through `TOKENPIPE_TEST_RUNNER`'s emulator
/// under qemu) to run only the child-mode test, acting out `act`.
fn child(act: &str) -> Command {
    let mut cmd = common::this_test_binary("child_mode_acts_as_told");
    cmd.arg("--quiet");
    cmd.env("TOKENPIPE_TEST_ACT", act);
    // Its own harness's lines would read as this run's results.
    cmd.stdout(std::process::Stdio::null());
    cmd
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    cmd
}

/// `bash -c script`: a shell that closes an fd numbered 10 or more (dash
/// reads `exec 12>&-` as a command named `12`), which the launcher's fds
/// may be given when it holds several launches' sockets.
fn bash(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", script]);
    cmd
}

fn quick() -> LaunchOptions {
    LaunchOptions::new().timeout(Duration::from_secs(20))
}

/// Run normally, this does nothing. Re-run by the tests below with
/// `TOKENPIPE_TEST_ACT` set, it is the launched program.
#[test]
fn child_mode_acts_as_told() {
    let Ok(act) = std::env::var("TOKENPIPE_TEST_ACT") else {
        return;
    };
    let act = act.as_str();
    if act.starts_with("socket-") {
        // Speak only systemd's protocol, as a program that knows no other.
        // SAFETY: only this test runs in this process (--exact,
        // --test-threads=1), and it starts no threads before this.
        unsafe { std::env::remove_var("TOKENPIPE_READY_FD") };
    }
    // SAFETY: as above; the fd it names is ours alone.
    let notifier = unsafe { Notifier::from_env() }.unwrap().expect("a channel");
    let pause = |ms| std::thread::sleep(Duration::from_millis(ms));
    match act {
        "pipe-ready" | "socket-ready" => notifier.ready().unwrap(),
        "pipe-fail" | "socket-fail" => {
            notifier.status("cannot open the wallet").unwrap();
            notifier.failed(libc::ENOENT).unwrap();
        }
        "socket-ready-then-exit" => {
            notifier.ready().unwrap();
            std::process::exit(0);
        }
        "socket-ready-barrier" => {
            notifier.ready().unwrap();
            notifier.barrier(Duration::from_secs(10)).unwrap();
        }
        "pipe-extend" | "socket-extend" => {
            // Past the launcher's 1 s, asking for 1 s more twice: the report
            // comes ~1.6 s after the first request, past where the first
            // extension alone ends (~1 s) and before the second one's end
            // (~1.8 s), so it is heard only if both were honoured.
            for _ in 0..2 {
                notifier.extend_timeout(Duration::from_secs(1)).unwrap();
                pause(800);
            }
            notifier.ready().unwrap();
        }
        "pipe-crash" | "socket-crash" => {
            // SAFETY: kill takes plain integers.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        "pipe-daemonize" => {
            // The bitcoind -daemon way: fork, the parent exits 0 at once,
            // the daemon reports later.
            // SAFETY: only this test runs in this process, and it makes
            // only async-signal-safe calls in the child (sleep, write, _exit).
            if unsafe { libc::fork() } != 0 {
                // SAFETY: leaves without running the harness's exit path.
                unsafe { libc::_exit(0) };
            }
            pause(300);
            notifier.ready().unwrap();
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        "pipe-hang" | "socket-hang" => loop {
            pause(1000);
        },
        other => panic!("unknown act {other}"),
    }
}

#[test]
fn a_program_that_reports_on_the_pipe_is_ready() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = launch(&mut child("pipe-ready"), quick()).unwrap();
    assert!(c.wait().unwrap().success());
}

/// Where the kernel has pidfds (Linux 5.3+) the launch holds one for the
/// program; built with `--cfg tokenpipe_force_no_pidfd` (ci/no-pidfd.sh)
/// it holds none, so every other case in that run takes the branches that
/// systems without pidfds take. Either way round, a build whose pidfds are
/// not what it was told fails here: this is what proves the switch took.
#[test]
#[cfg(target_os = "linux")]
fn a_launched_program_holds_a_pidfd_unless_the_build_forces_none() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = launch(&mut child("pipe-ready"), quick()).unwrap();
    let held = c.pidfd().is_some();
    assert!(c.wait().unwrap().success());
    if cfg!(tokenpipe_force_no_pidfd) {
        assert!(
            !held,
            "built with --cfg tokenpipe_force_no_pidfd, yet the launched program has a \
             pidfd: the switch did not reach sys::pidfd_open"
        );
    } else {
        assert!(
            held,
            "the launched program has no pidfd: this kernel has no pidfd_open (Linux \
             before 5.3) or a seccomp filter refused it"
        );
    }
}

#[test]
fn a_program_that_reports_on_the_socket_is_ready() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = launch(&mut child("socket-ready"), quick()).unwrap();
    assert!(c.wait().unwrap().success());
}

#[test]
fn an_s6_style_newline_on_the_handed_fd_is_ready() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = sh(r#"echo >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 0.2"#);
    let mut c = launch(&mut cmd, quick()).unwrap();
    assert!(c.wait().unwrap().success());
}

#[test]
fn a_reported_failure_carries_the_errno_and_the_status_text() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for act in ["pipe-fail", "socket-fail"] {
        match launch(&mut child(act), quick()) {
            Err(LaunchError::Failed {
                mut child,
                errno,
                status,
            }) => {
                assert_eq!(errno, Some(libc::ENOENT), "{act}");
                if act == "socket-fail" {
                    assert_eq!(status.as_deref(), Some("cannot open the wallet"));
                }
                // The caller owns the failed program.
                assert!(child.wait().unwrap().success(), "{act}");
            }
            other => panic!("{act}: {other:?}"),
        }
    }
}

#[test]
fn a_pipe_closed_without_a_report_is_no_verdict_while_the_socket_is_on_offer() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // It closes every fd it inherited, then reports on the socket: ready,
    // not "failed" for the closed pipe.
    let mut cmd = bash(
        r#"eval "exec $TOKENPIPE_READY_FD>&-" || exit 99; sleep 0.2; systemd-notify --ready; exec sleep 1"#,
    );
    let mut child = launch(&mut cmd, quick()).unwrap();
    assert!(child.wait().unwrap().success());
    // Closed, and then it ends without a word: it ended first.
    let mut cmd = bash(r#"eval "exec $TOKENPIPE_READY_FD>&-" || exit 99; sleep 0.2; exit 4"#);
    match launch(&mut cmd, quick()) {
        Err(LaunchError::Exited { exit, .. }) => assert_eq!(exit, ChildExit::Exited(4)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_program_that_dies_first_is_reported_at_once_with_its_exit_status() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for act in ["pipe-crash", "socket-crash"] {
        let start = Instant::now();
        match launch(&mut child(act), quick()) {
            Err(LaunchError::Exited { exit, .. }) => {
                assert_eq!(exit, ChildExit::Signaled(libc::SIGKILL), "{act}");
            }
            other => panic!("{act}: {other:?}"),
        }
        // Not a timing claim: only that it was not the 20 s timeout.
        assert!(start.elapsed() < Duration::from_secs(15), "{act}");
    }
    match launch(&mut sh("exit 3"), quick()) {
        Err(LaunchError::Exited { exit, .. }) => assert_eq!(exit, ChildExit::Exited(3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_report_sent_just_before_exiting_wins_over_the_exit() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..20 {
        let mut c = launch(&mut child("socket-ready-then-exit"), quick()).unwrap();
        assert!(c.wait().unwrap().success());
    }
    for _ in 0..20 {
        // A fresh Command each time: launch adds its hand-off to the one
        // it is given, which is then spent.
        let mut cmd = sh(r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exit 4"#);
        let mut c = launch(&mut cmd, quick()).unwrap();
        assert_eq!(c.wait().unwrap(), ChildExit::Exited(4));
    }
}

#[test]
fn a_program_that_daemonizes_itself_is_not_taken_for_dead() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The launched process exits 0 at once; its forked daemon, which holds
    // the pipe, reports 300 ms later.
    let mut c = launch(&mut child("pipe-daemonize"), quick()).unwrap();
    assert_eq!(c.try_wait().unwrap(), Some(ChildExit::Exited(0)));
}

#[test]
fn extend_timeout_pushes_the_deadline_on_either_channel_each_time_it_is_asked() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The child asks for 1 s more twice, 800 ms apart, and reports 800 ms
    // after the second request: see its "pipe-extend" act.
    let short = LaunchOptions::new().timeout(Duration::from_secs(1));
    for act in ["pipe-extend", "socket-extend"] {
        let mut c = launch(&mut child(act), short.clone()).unwrap_or_else(|e| panic!("{act}: {e}"));
        assert!(c.wait().unwrap().success(), "{act}");
    }
}

#[test]
fn a_barrier_after_ready_completes_against_the_launcher() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = launch(&mut child("socket-ready-barrier"), quick()).unwrap();
    // The child unwraps the barrier's result: success means we closed the fd.
    assert!(c.wait().unwrap().success());
}

#[test]
fn on_timeout_the_program_is_killed_and_reaped() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let short = LaunchOptions::new().timeout(Duration::from_millis(500));
    for act in ["pipe-hang", "socket-hang"] {
        match launch(&mut child(act), short.clone()) {
            Err(LaunchError::TimedOut {
                after: AfterTimeout::Killed(exit),
                ..
            }) => {
                assert_eq!(exit, ChildExit::Signaled(libc::SIGKILL), "{act}");
            }
            other => panic!("{act}: {other:?}"),
        }
    }
    // Without kill_on_timeout the running program is handed back.
    match launch(&mut child("pipe-hang"), short.kill_on_timeout(false)) {
        Err(LaunchError::TimedOut {
            after: AfterTimeout::Running(mut c),
            ..
        }) => {
            c.kill(libc::SIGKILL).unwrap();
            assert_eq!(c.wait().unwrap(), ChildExit::Signaled(libc::SIGKILL));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn a_detached_program_runs_in_its_own_session_and_its_group_dies_on_timeout() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The program starts a grandchild in its session, then hangs.
    let dir = std::env::temp_dir().join(format!("tokenpipe-launch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("grandchild.pid");
    let script = format!("sleep 30 & echo $! >{}; wait", pidfile.display());
    let short = LaunchOptions::new()
        .timeout(Duration::from_millis(800))
        .detach(true);
    match launch(&mut sh(&script), short) {
        Err(LaunchError::TimedOut {
            after: AfterTimeout::Killed(exit),
            ..
        }) => {
            assert_eq!(exit, ChildExit::Signaled(libc::SIGKILL));
        }
        other => panic!("{other:?}"),
    }
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The whole group got SIGKILL: the grandchild is gone (or a zombie
    // waiting for init), never left running.
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
        let gone = match stat {
            Err(_) => true,
            Ok(s) => s
                .split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z')),
        };
        if gone {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "grandchild {grandchild} survived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(&dir);
    // In the detached session the program's session id is its own pid.
    let mut c = launch(
        &mut sh(r#"[ "$(cut -d' ' -f6 /proc/$$/stat)" = "$$" ] && printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; sleep 0.2"#),
        quick().detach(true),
    )
    .unwrap();
    assert!(c.wait().unwrap().success());
}

#[test]
fn each_launch_has_its_own_socket_and_nobody_listens_after_the_verdict() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("tokenpipe-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seen = Vec::new();
    for i in 0..2 {
        let file = dir.join(format!("addr{i}"));
        let script = format!(
            r#"printf %s "$NOTIFY_SOCKET" >{}; printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD""#,
            file.display()
        );
        let mut c = launch(&mut sh(&script), quick()).unwrap();
        c.wait().unwrap();
        seen.push(std::fs::read_to_string(&file).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(seen[0], seen[1], "two launches shared a socket");
    assert!(
        std::env::var_os("NOTIFY_SOCKET").is_none(),
        "the launcher's own environment changed"
    );
    for addr in &seen {
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let sent = if let Some(name) = addr.strip_prefix('@') {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt;
                let to = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
                sender.send_to_addr(b"READY=1", &to)
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                panic!("an abstract name {name} off Linux")
            }
        } else {
            assert!(
                !std::path::Path::new(addr).exists(),
                "{addr} was left behind"
            );
            sender.send_to(b"READY=1", addr)
        };
        assert!(sent.is_err(), "someone still listens on {addr}");
    }
}

#[test]
fn a_timeout_too_long_for_the_clock_means_forever_not_a_panic() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let forever = LaunchOptions::new().timeout(Duration::MAX);
    let mut c = launch(&mut child("pipe-ready"), forever).unwrap();
    assert!(c.wait().unwrap().success());
}
