//! The launcher's side of set-up, with children that die at every step,
//! send what the protocol never sends, or close the pipe and live on.
//! These fork from the multi-threaded test harness, which the safety
//! contract forbids in general; it holds here because every child below
//! makes only async-signal-safe calls and leaves with `_exit` or a signal.
extern crate std;

use super::*;
use std::ffi::CString;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// The stage at which `die_at_the_chosen_stage` kills the child.
static DIE_AT: AtomicU8 = AtomicU8::new(u8::MAX);

fn die_at_the_chosen_stage(stage: Stage, _: &TokenPipeEnd) {
    if stage as u8 == DIE_AT.load(Ordering::Relaxed) {
        let _ = sys::kill(sys::getpid(), libc::SIGKILL);
    }
}

fn pause_forever() -> ! {
    loop {
        // SAFETY: pause is async-signal-safe; only SIGKILL ends it here.
        unsafe { libc::pause() };
    }
}

fn no_children_left() -> bool {
    sys::waitpid(-1, libc::WNOHANG) == Err(Errno::ECHILD)
}

fn temp_pid_file(tag: &str) -> CString {
    let path = std::env::temp_dir().join(std::format!(
        "tokenpipe-unit-{}-{tag}.pid",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    CString::new(path.into_os_string().into_encoded_bytes()).unwrap()
}

/// Runs `fork_with`; a child that gets past set-up leaves at once.
fn launch(options: DaemonOptions<'_>, fault: Fault) -> Result<DaemonParent> {
    // SAFETY: see the module comment.
    match unsafe { fork_with(options, fault) } {
        Ok(Forked::Parent(parent)) => Ok(parent),
        Ok(Forked::Child(_)) => sys::exit_now(0),
        Err(e) => Err(e),
    }
}

const DIRECT_STAGES: [Stage; 5] = [
    Stage::Setsid,
    Stage::PidFile,
    Stage::Chdir,
    Stage::Stdio,
    Stage::Report,
];

#[test]
#[cfg_attr(miri, ignore = "Miri has no fork")]
fn a_child_killed_at_any_step_of_its_setup_is_reaped_and_reported_with_its_signal() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_pid_file("killed");
    let options = DaemonOptions::new().pid_file(&path);
    for stage in DIRECT_STAGES {
        DIE_AT.store(stage as u8, Ordering::Relaxed);
        let got = launch(options, die_at_the_chosen_stage);
        assert_eq!(
            got.err(),
            Some(Error::DiedDuringSetup(Some(ChildExit::Signaled(
                libc::SIGKILL
            )))),
            "killed at {stage:?}"
        );
        assert!(no_children_left(), "killed at {stage:?}: a child was left");
    }
    DIE_AT.store(u8::MAX, Ordering::Relaxed);
    // A row of ci/soak.sh's reliability table; reached only if all held.
    std::println!(
        "REPORT|daemon set-up killed at each step (setsid, pid file, chdir, stdio, report)|{} launches, each killed|0|0|0|0",
        DIRECT_STAGES.len()
    );
    // The file a killed daemon left behind is stale (unlocked): taken over.
    let mut parent = launch(options, |_, _| {}).expect("a stale pid file is taken over");
    let written = std::fs::read_to_string(path.to_str().unwrap()).unwrap();
    assert_eq!(written, std::format!("{}\n", parent.pid()));
    assert!(parent.wait().unwrap().success());
    let _ = std::fs::remove_file(path.to_str().unwrap());
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fork")]
fn a_double_forked_child_killed_at_any_step_is_reported_and_the_intermediate_reaped() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_pid_file("killed2");
    let options = DaemonOptions::new().double_fork(true).pid_file(&path);
    let stages = [
        // The intermediate child dies: it is ours, so its status is known.
        (Stage::Setsid, Some(ChildExit::Signaled(libc::SIGKILL))),
        (Stage::Fork, Some(ChildExit::Signaled(libc::SIGKILL))),
        // The daemon dies: not our child, so no status.
        (Stage::PidFile, None),
        (Stage::Chdir, None),
        (Stage::Stdio, None),
        (Stage::Report, None),
    ];
    for (stage, exit) in stages {
        DIE_AT.store(stage as u8, Ordering::Relaxed);
        let got = launch(options, die_at_the_chosen_stage);
        assert_eq!(
            got.err(),
            Some(Error::DiedDuringSetup(exit)),
            "killed at {stage:?}"
        );
        assert!(no_children_left(), "killed at {stage:?}: a child was left");
    }
    DIE_AT.store(u8::MAX, Ordering::Relaxed);
    std::println!(
        "REPORT|double-forked set-up killed at each step (intermediate or daemon)|{} launches, each killed|0|0|0|0",
        stages.len()
    );
    let _ = std::fs::remove_file(path.to_str().unwrap());
}

/// Where `sends_a_bad_token_and_lives_on` writes the pid of the process it
/// runs in (the hook is a fn pointer, so it cannot capture the fd).
static PID_PIPE: AtomicI32 = AtomicI32::new(-1);

fn sends_a_bad_token_and_lives_on(stage: Stage, writer: &TokenPipeEnd) {
    if stage == Stage::Report {
        // One write of 4 bytes, before the token: the launcher cannot
        // return before it is in the pipe.
        let pid = sys::getpid().to_ne_bytes();
        let _ = sys::write(PID_PIPE.load(Ordering::Relaxed), &pid);
        let _ = writer.token_write(7);
        pause_forever();
    }
}

/// Whether process `pid` has ended: no `/proc/<pid>` or a zombie there
/// (a double-forked daemon waits for init to reap it); without `/proc`,
/// `kill(pid, 0)` failing with `ESRCH`.
fn has_ended(pid: libc::pid_t) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        match std::fs::read_to_string(std::format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    } else {
        sys::kill(pid, 0) == Err(Errno::ESRCH)
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fork")]
fn a_first_report_the_protocol_never_sends_kills_and_reaps_the_live_child() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for double_fork in [false, true] {
        let [pid_read, pid_write] = sys::pipe_then_cloexec().unwrap();
        PID_PIPE.store(pid_write, Ordering::Relaxed);
        let options = DaemonOptions::new().double_fork(double_fork);
        let got = launch(options, sends_a_bad_token_and_lives_on);
        PID_PIPE.store(-1, Ordering::Relaxed);
        sys::close(pid_write);
        assert_eq!(got.err(), Some(Error::UnexpectedToken(7)));
        assert!(no_children_left(), "double fork {double_fork}");
        // The live process (the grandchild, with a double fork, which
        // no_children_left cannot see) wrote its pid before the token, so
        // it is in the pipe now: read without blocking, since a child
        // another test forks meanwhile may hold a copy of the write end.
        // SAFETY: F_SETFL on our own read end touches no memory.
        let rc = unsafe { libc::fcntl(pid_read, libc::F_SETFL, libc::O_NONBLOCK) };
        assert_eq!(rc, 0);
        let mut pid = [0u8; 4];
        let got = sys::read(pid_read, &mut pid);
        sys::close(pid_read);
        assert_eq!(got, Ok(4), "double fork {double_fork}: the pid");
        let pid = libc::pid_t::from_ne_bytes(pid);
        let start = Instant::now();
        while !has_ended(pid) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            has_ended(pid),
            "double fork {double_fork}: process {pid} is still running"
        );
    }
}

fn closes_its_end_and_lives_on(stage: Stage, writer: &TokenPipeEnd) {
    if stage == Stage::Report {
        sys::close(writer.as_raw_fd());
        pause_forever();
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fork")]
fn a_child_that_closes_the_pipe_but_lives_on_is_killed_not_waited_for_forever() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let got = launch(DaemonOptions::new(), closes_its_end_and_lives_on);
    // End of stream from a live child: after the grace it is killed, so the
    // launcher does not block in waitpid on a daemon that is alive.
    assert_eq!(
        got.err(),
        Some(Error::DiedDuringSetup(Some(ChildExit::Signaled(
            libc::SIGKILL
        ))))
    );
    assert!(no_children_left());
}

fn slow_report(stage: Stage, _: &TokenPipeEnd) {
    if stage == Stage::Report {
        sys::sleep_ms(300);
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fork")]
fn the_parent_returns_only_after_the_setup_report() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let options = DaemonOptions::new().chdir_root(false).close_stdio(false);
    // SAFETY: see the module comment.
    match unsafe { fork_with(options, slow_report) } {
        Ok(Forked::Parent(mut parent)) => {
            assert!(start.elapsed() >= Duration::from_millis(300));
            // The child never notifies: end of stream, not success.
            assert_eq!(parent.wait_ready(), Err(Error::DiedBeforeReady));
            assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
        }
        Ok(Forked::Child(daemon)) => {
            drop(daemon);
            sys::exit_now(0);
        }
        Err(e) => panic!("fork_with failed: {e}"),
    }
}

#[test]
fn every_report_arrives_whole_and_unknown_ones_are_unexpected() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let reports = [
        Report::Done(12345),
        Report::Forked(i32::MAX),
        Report::AlreadyRunning(1),
        Report::StepFailed(SetupStep::PidFile, Errno::EACCES),
        Report::StepFailed(SetupStep::Stdio, Errno::from_raw(-7)),
    ];
    for report in reports {
        report.send(&writer).unwrap();
    }
    // The readiness token behind them must stay in the pipe.
    writer.token_write(READY).unwrap();
    for report in reports {
        assert_eq!(Report::receive(&reader), Ok(report));
    }
    assert_eq!(reader.token_read(), Ok(READY));
    writer.write_tokens(&[9]).unwrap();
    assert_eq!(Report::receive(&reader), Err(Error::UnexpectedToken(9)));
    writer
        .write_tokens(&[TAG_STEP_FAILED, 200, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(
        Report::receive(&reader),
        Err(Error::UnexpectedToken(TAG_STEP_FAILED))
    );
    writer.write_tokens(&[TAG_DONE, 1]).unwrap();
    drop(writer);
    assert_eq!(Report::receive(&reader), Err(Error::Eos));
}

#[test]
fn a_pid_is_written_in_decimal_with_a_newline_and_read_back() {
    let mut buf = [0u8; 12];
    assert_eq!(decimal_line(0, &mut buf), b"0\n");
    assert_eq!(decimal_line(7, &mut buf), b"7\n");
    assert_eq!(decimal_line(i32::MAX, &mut buf), b"2147483647\n");
    for (i, step) in SetupStep::ALL.into_iter().enumerate() {
        assert_eq!(SetupStep::from_u8(step as u8), Some(step), "{i}");
    }
    assert_eq!(SetupStep::from_u8(0), None);
}
