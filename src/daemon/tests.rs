//! The launcher's side of set-up, with children that die at every step,
//! send what the protocol never sends, or close the pipe and live on.
//! These fork from the multi-threaded test harness, which the safety
//! contract forbids in general; it holds here because every child below
//! makes only async-signal-safe calls and leaves with `_exit` or a signal.
extern crate std;

use super::child::Stage;
use super::parent::READY;
use super::pid_file::{PID_FILE_TRIES, PidFileError, decimal_line, safe_to_write};
use super::report::{Report, TAG_DONE, TAG_STEP_FAILED};
use super::*;
use crate::error::Errno;
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
fn launch(options: DaemonOptions<'_>, fault: Fault) -> Result<DaemonParent, DaemonError> {
    // SAFETY: see the module comment.
    match unsafe { fork_with(options, fault) } {
        Ok(Forked::Parent(parent)) => Ok(parent),
        Ok(Forked::Child(_)) => sys::exit_now(0),
        Err(e) => Err(e),
    }
}

const DIRECT_STAGES: [Stage; 6] = [
    Stage::Setsid,
    Stage::PidFile,
    Stage::PidFileLock,
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
            Some(DaemonError::DiedDuringSetup(Some(ChildExit::Signaled(
                libc::SIGKILL
            )))),
            "killed at {stage:?}"
        );
        assert!(no_children_left(), "killed at {stage:?}: a child was left");
    }
    DIE_AT.store(u8::MAX, Ordering::Relaxed);
    // A row of ci/soak.sh's reliability table; reached only if all held.
    std::println!(
        "REPORT|daemon set-up killed at each step (setsid, pid file, its lock, chdir, stdio, report)|{} launches, each killed|0|0|0|0",
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
        (Stage::PidFileLock, None),
        (Stage::Chdir, None),
        (Stage::Stdio, None),
        (Stage::Report, None),
    ];
    for (stage, exit) in stages {
        DIE_AT.store(stage as u8, Ordering::Relaxed);
        let got = launch(options, die_at_the_chosen_stage);
        assert_eq!(
            got.err(),
            Some(DaemonError::DiedDuringSetup(exit)),
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
        assert_eq!(got.err(), Some(DaemonError::UnexpectedToken(7)));
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
        let left_running = !has_ended(pid);
        if left_running {
            // Not to outlive the test: it is alive, so the pid is its own.
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        assert!(
            !left_running,
            "double fork {double_fork}: process {pid} was left running"
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
        Some(DaemonError::DiedDuringSetup(Some(ChildExit::Signaled(
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
            assert_eq!(parent.wait_ready(), Err(DaemonError::DiedBeforeReady));
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
    assert_eq!(
        Report::receive(&reader),
        Err(DaemonError::UnexpectedToken(9))
    );
    writer
        .write_tokens(&[TAG_STEP_FAILED, 200, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(
        Report::receive(&reader),
        Err(DaemonError::UnexpectedToken(TAG_STEP_FAILED))
    );
    writer.write_tokens(&[TAG_DONE, 1]).unwrap();
    drop(writer);
    assert_eq!(Report::receive(&reader), Err(DaemonError::Core(Error::Eos)));
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

/// A daemon the test holds: killed and reaped when the test lets go of it,
/// pass or fail, so a failed assertion leaves no daemon running (or a
/// zombie for the next test's `no_children_left` to trip over).
struct Reaped(DaemonParent);

impl Drop for Reaped {
    fn drop(&mut self) {
        // ESRCH once it has ended; the pidfd (or our unreaped child's pid)
        // cannot name anyone else.
        let _ = self.0.kill(libc::SIGKILL);
        let _ = self.0.wait();
    }
}

/// A test's pid file, removed when the test ends, pass or fail.
struct RemovedOnDrop<'a>(&'a CString);

impl Drop for RemovedOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.to_str().unwrap());
    }
}

/// Where `waits_for_the_holder_to_leave` tells the holder that it has the
/// pid file open, and where it hears that the holder has removed the file
/// and released its lock. -1: it does nothing.
static OPENED: AtomicI32 = AtomicI32::new(-1);
static HOLDER_GONE: AtomicI32 = AtomicI32::new(-1);

/// At its first try, between opening the pid file and locking it: the
/// moment a daemon can be left holding a file that is no longer at its
/// path.
fn waits_for_the_holder_to_leave(stage: Stage, _: &TokenPipeEnd) {
    if stage != Stage::PidFileLock {
        return;
    }
    // Swapped in this process's copy only: later tries go straight on.
    let opened = OPENED.swap(-1, Ordering::Relaxed);
    if opened >= 0 {
        let _ = sys::write(opened, &[1]);
        let mut byte = [0u8];
        let _ = sys::read(HOLDER_GONE.load(Ordering::Relaxed), &mut byte);
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fork")]
fn a_daemon_that_opened_the_pid_file_its_holder_then_removed_locks_the_one_at_the_path() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_pid_file("removed");
    let _removed = RemovedOnDrop(&path);
    let file = std::path::Path::new(path.to_str().unwrap());
    let options = DaemonOptions::new().pid_file(&path);
    let (opened_reader, opened_writer) = TokenPipe::make().unwrap().split();
    let (gone_reader, gone_writer) = TokenPipe::make().unwrap().split();

    // The holder: once the second daemon has its file open, it exits as a
    // daemon does (removes the file, which releases the lock) and says so.
    // SAFETY: see the module comment.
    let mut holder = match unsafe { fork_with(options, |_, _| {}) } {
        Ok(Forked::Parent(parent)) => Reaped(parent),
        Ok(Forked::Child(DaemonChild { pid_file, .. })) => {
            let _ = opened_reader.token_read();
            drop(pid_file);
            let _ = gone_writer.token_write(1);
            sys::exit_now(0);
        }
        Err(e) => panic!("the holder did not start: {e}"),
    };
    // Only the holder may write "gone": if it dies, the second daemon reads
    // end of stream instead of waiting forever.
    drop((opened_reader, gone_writer));
    let (until_checked, checked) = TokenPipe::make().unwrap().split();

    // The second daemon opens the holder's file, and locks it only after
    // the holder has removed it and gone.
    OPENED.store(opened_writer.as_raw_fd(), Ordering::Relaxed);
    HOLDER_GONE.store(gone_reader.as_raw_fd(), Ordering::Relaxed);
    // SAFETY: see the module comment.
    let second = unsafe { fork_with(options, waits_for_the_holder_to_leave) };
    OPENED.store(-1, Ordering::Relaxed);
    HOLDER_GONE.store(-1, Ordering::Relaxed);
    let mut second = match second {
        Ok(Forked::Parent(parent)) => Reaped(parent),
        Ok(Forked::Child(DaemonChild { pid_file, .. })) => {
            let _ = until_checked.token_read();
            drop(pid_file);
            sys::exit_now(0);
        }
        Err(e) => panic!("the second daemon did not start: {e}"),
    };
    drop((opened_writer, gone_reader));

    // It holds the file at the path, not the removed one...
    assert_eq!(
        std::fs::read_to_string(file).ok(),
        Some(std::format!("{}\n", second.0.pid())),
        "the path names no file of the second daemon's: it locked the removed one"
    );
    // ...so a third instance is refused, naming it.
    let third = launch(options, |_, _| {}).map(Reaped);
    assert_eq!(
        third.err(),
        Some(DaemonError::AlreadyRunning(second.0.pid()))
    );

    checked.token_write(1).unwrap();
    assert_eq!(second.0.wait(), Ok(ChildExit::Exited(0)));
    assert!(!file.exists(), "the second daemon did not remove its file");
    assert_eq!(holder.0.wait(), Ok(ChildExit::Exited(0)));
    drop((second, holder));
    assert!(no_children_left());
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fcntl record locks")]
fn a_pid_file_replaced_between_open_and_lock_is_opened_again_and_the_new_one_written() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_pid_file("replaced-unit");
    let _removed = RemovedOnDrop(&path);
    let file = std::path::Path::new(path.to_str().unwrap());
    std::fs::write(file, "1\n").unwrap();
    let tries = std::cell::Cell::new(0);
    // At the first try, after our open: another instance's file takes the
    // path (removed and made again, as a daemon that exits and one that
    // starts would leave it).
    let replace = || {
        tries.set(tries.get() + 1);
        if tries.get() == 1 {
            std::fs::remove_file(file).unwrap();
            std::fs::write(file, "2\n").unwrap();
        }
    };
    let held = PidFile::lock_and_write(&path, replace)
        .ok()
        .expect("locked");
    assert_eq!(tries.get(), 2, "it did not open the path again");
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        std::format!("{}\n", std::process::id())
    );
    // The one it holds is the one at the path: it removes it.
    drop(held);
    assert!(!file.exists());
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no fcntl record locks")]
fn a_pid_file_removed_at_every_try_is_given_up_with_eagain_after_a_few_tries() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_pid_file("removed-always");
    let _removed = RemovedOnDrop(&path);
    let file = std::path::Path::new(path.to_str().unwrap());
    let tries = std::cell::Cell::new(0);
    let remove = || {
        tries.set(tries.get() + 1);
        std::fs::remove_file(file).unwrap();
    };
    let got = PidFile::lock_and_write(&path, remove);
    assert!(
        matches!(got, Err(PidFileError::Os(e)) if e == Errno::EAGAIN),
        "a pid file that is never at its path was taken"
    );
    assert_eq!(tries.get(), PID_FILE_TRIES);
    assert!(!file.exists(), "a failed try left a file behind");
}

#[test]
fn only_a_regular_file_of_ours_or_roots_that_no_one_else_can_write_is_safe() {
    let ours = sys::FileStatus {
        is_regular: true,
        mode: 0o644,
        uid: 1000,
        links: 1,
    };
    let with = |change: fn(&mut sys::FileStatus)| {
        let mut file = ours;
        change(&mut file);
        file
    };
    let cases: [(&str, sys::FileStatus, Result<(), Errno>); 13] = [
        ("ours, 0644", ours, Ok(())),
        ("ours, 0600", with(|f| f.mode = 0o600), Ok(())),
        ("ours, 0444", with(|f| f.mode = 0o444), Ok(())),
        ("root's", with(|f| f.uid = 0), Ok(())),
        ("removed since the open", with(|f| f.links = 0), Ok(())),
        (
            "not a regular file",
            with(|f| f.is_regular = false),
            Err(Errno::EINVAL),
        ),
        ("another user's", with(|f| f.uid = 65534), Err(Errno::EPERM)),
        (
            "another user's, 0600",
            with(|f| {
                f.uid = 65534;
                f.mode = 0o600
            }),
            Err(Errno::EPERM),
        ),
        (
            "group-writable",
            with(|f| f.mode = 0o664),
            Err(Errno::EPERM),
        ),
        (
            "world-writable",
            with(|f| f.mode = 0o646),
            Err(Errno::EPERM),
        ),
        (
            "root's, world-writable",
            with(|f| {
                f.uid = 0;
                f.mode = 0o666
            }),
            Err(Errno::EPERM),
        ),
        ("a second name", with(|f| f.links = 2), Err(Errno::EMLINK)),
        // The first rule that fails names it.
        (
            "another user's FIFO",
            with(|f| {
                f.uid = 65534;
                f.is_regular = false
            }),
            Err(Errno::EINVAL),
        ),
    ];
    for (what, file, expected) in cases {
        assert_eq!(safe_to_write(file, 1000), expected, "{what}");
    }
    // Root, the usual daemon: its own files are root's.
    assert_eq!(safe_to_write(with(|f| f.uid = 0), 0), Ok(()));
    assert_eq!(
        safe_to_write(ours, 0),
        Err(Errno::EPERM),
        "a user's file, to root"
    );
}
