//! The daemon path under faults: launchers started with any of fds 0–2
//! closed, `EMFILE` before the fork, and a thousand launches that must
//! leave no fd, zombie or pid file behind. (Children killed at each step
//! of set-up are in the daemon module's unit tests, which can reach the
//! set-up's fault hook.)
//!
//! For the first two, each launcher is a forked child of the test process,
//! so it can close its own stdio or lower its fd limit without disturbing
//! the test harness; it reports through its exit code, and its daemon
//! reports to it through a pipe (a double-forked daemon is not the
//! launcher's child, so its exit status is out of reach). The test process
//! has other threads, so launcher and daemon make only async-signal-safe
//! calls (`fork_daemon`, the waits, `fstat`, `open`, `read`, `write`,
//! `_exit`), which is what `fork_daemon`'s contract really needs.
//!
//! The thousand launches call `fork_daemon` in the test process itself:
//! they take their turn through `SERIAL`, and each daemon only reports and
//! drops its pid file before `_exit`.
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Ended, TempDir, exit_now, fork_child, open_pipe_count, report, soak_scale};
use tokenpipe::daemon::{DaemonChild, DaemonError, DaemonOptions, Forked, fork_daemon};
use tokenpipe::{ChildExit, Errno, Error};

static SERIAL: Mutex<()> = Mutex::new(());

// Device numbers as u64: st_rdev is wider than dev_t on 32-bit Android.
#[allow(clippy::unnecessary_cast)]
fn is_dev_null(fd: c_int, null_rdev: u64) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for one stat; fstat is async-signal-safe.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so `st` is filled in.
    let st = unsafe { st.assume_init() };
    st.st_mode as libc::mode_t & libc::S_IFMT == libc::S_IFCHR && st.st_rdev as u64 == null_rdev
}

#[allow(clippy::unnecessary_cast)]
fn dev_null_rdev() -> u64 {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the path is NUL-terminated and `st` valid for one stat.
    let rc = unsafe { libc::stat(c"/dev/null".as_ptr(), st.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: stat returned 0.
    unsafe { st.assume_init() }.st_rdev as u64
}

/// Waits for the launcher, killing it if it has not finished in `limit`:
/// a hang is a failure to report, not a test that never ends.
fn wait_bounded(pid: libc::pid_t, limit: Duration) -> Option<Ended> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Some(if libc::WIFEXITED(status) {
                Ended::Exited(libc::WEXITSTATUS(status))
            } else {
                Ended::Killed(libc::WTERMSIG(status))
            });
        }
        if start.elapsed() > limit {
            common::kill(pid, libc::SIGKILL);
            common::wait_for(pid);
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// What the daemon found, as its exit status (0: all well).
const STDIO_NOT_NULL_BEFORE: c_int = 20;
const NOTIFY_FAILED: c_int = 21;
const STDIO_NOT_NULL_AFTER: c_int = 22;
const NEW_FILE_LANDED_ON_STDIO: c_int = 23;
// What the launcher saw, as its exit status.
const NOT_READY: c_int = 11;
const TIMED_OUT: c_int = 12;
const DIED_BEFORE_READY: c_int = 13;
const WAIT_READY_FAILED: c_int = 14;
const DAEMON_KILLED: c_int = 15;
const WAIT_FAILED: c_int = 16;
const SETUP_FAILED: c_int = 17;
const DIED_DURING_SETUP: c_int = 18;
const FORK_DAEMON_FAILED: c_int = 19;
const RESULT_PIPE_FAILED: c_int = 24;
const DAEMON_SENT_NO_RESULT: c_int = 25;
const LAUNCHER_FDS_CHANGED: c_int = 26;

/// How many fd numbers the launcher scans when it counts its open fds: its
/// limit, but at most 4096 (new fds take the lowest free numbers, so a leak
/// lands far below that in a test process).
fn fd_scan_limit() -> c_int {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer; getrlimit is a plain syscall.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 4096;
    }
    lim.rlim_cur.min(4096) as c_int
}

/// Reads the daemon's one-byte check result from `fd`, retrying on EINTR;
/// `None` at end of stream (every writer gone without a word) or on error.
fn read_result(fd: c_int) -> Option<u8> {
    let mut byte = 0u8;
    loop {
        // SAFETY: `byte` is valid for one byte; read is async-signal-safe.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return Some(byte);
        }
        if n < 0 && common::get_errno() == libc::EINTR {
            continue;
        }
        return None;
    }
}

/// The daemon's side: stdio must be /dev/null before and after it reports,
/// and dropping its notifier must not free a number below 3.
fn daemon_checks(child: DaemonChild<'_>, null_rdev: u64) -> c_int {
    if !(0..3).all(|fd| is_dev_null(fd, null_rdev)) {
        return STDIO_NOT_NULL_BEFORE;
    }
    if child.notifier.notify(true).is_err() {
        return NOTIFY_FAILED;
    }
    if !(0..3).all(|fd| is_dev_null(fd, null_rdev)) {
        return STDIO_NOT_NULL_AFTER;
    }
    // SAFETY: the path is NUL-terminated; O_RDONLY takes no mode.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    if fd < 3 {
        return NEW_FILE_LANDED_ON_STDIO;
    }
    0
}

/// A launcher with the fds in `closed` (a bit per fd 0, 1, 2) closed.
///
/// Its daemon writes its check result, one byte, into a pipe the launcher
/// made before `fork_daemon`, and the launcher reads it whatever `wait`
/// says: a double-forked daemon's exit status is not the launcher's to
/// see. The launcher also counts its own open fds before `fork_daemon` and
/// after the wait, since the fds `fork_daemon` could leak are the
/// launcher's, not the test process's.
fn launcher_with_closed_stdio(closed: u8, double_fork: bool, null_rdev: u64) -> c_int {
    // Made while fds 0–2 are still open, so it lands above them and the
    // daemon's redirection of stdio to /dev/null cannot replace it.
    let mut result = [-1 as c_int; 2];
    // SAFETY: `result` is valid for two ints; pipe is a plain syscall. No
    // exec happens in launcher or daemon, so close-on-exec does not matter.
    if unsafe { libc::pipe(result.as_mut_ptr()) } != 0 {
        return RESULT_PIPE_FAILED;
    }
    let [result_read, result_write] = result;
    for fd in 0..3 {
        if closed & (1 << fd) != 0 {
            // SAFETY: closing our own stdio in this forked launcher is the
            // point; nothing else in this process uses it.
            unsafe { libc::close(fd) };
        }
    }
    let scan = fd_scan_limit();
    let fds_before = open_fd_total(scan);
    let options = DaemonOptions::new()
        .chdir_root(false)
        .double_fork(double_fork);
    // SAFETY: see the module comment.
    match unsafe { fork_daemon(options) } {
        Ok(Forked::Parent(mut daemon)) => {
            // SAFETY: our own write end; the daemon holds its copy.
            unsafe { libc::close(result_write) };
            match daemon.wait_ready_timeout(Duration::from_secs(20)) {
                Ok(true) => {}
                Ok(false) => return NOT_READY,
                Err(DaemonError::Core(Error::TimedOut)) => return TIMED_OUT,
                Err(DaemonError::DiedBeforeReady) => return DIED_BEFORE_READY,
                Err(_) => return WAIT_READY_FAILED,
            }
            let ended = match daemon.wait() {
                Ok(ChildExit::Exited(code)) => code,
                Ok(ChildExit::Signaled(_)) => DAEMON_KILLED,
                // Nothing here ignores SIGCHLD or reaps behind our back.
                Ok(ChildExit::Unknown) => WAIT_FAILED,
                // A double-forked daemon's status is not ours to see; the
                // pipe below carries its checks.
                Err(DaemonError::Core(Error::NotAChild)) if double_fork => 0,
                Err(_) => WAIT_FAILED,
            };
            drop(daemon);
            let sent = read_result(result_read);
            // SAFETY: our own read end, not used again.
            unsafe { libc::close(result_read) };
            match sent {
                _ if ended != 0 => ended,
                None => DAEMON_SENT_NO_RESULT,
                Some(checks) if checks != 0 => c_int::from(checks),
                // The result pipe's two ends are closed now.
                Some(_) if open_fd_total(scan) != fds_before - 2 => LAUNCHER_FDS_CHANGED,
                Some(_) => 0,
            }
        }
        Ok(Forked::Child(child)) => {
            let checks = daemon_checks(child, null_rdev);
            let byte = checks as u8;
            // SAFETY: `byte` is valid for one byte; write is async-signal-
            // safe. If it fails, the launcher sees end of stream instead.
            unsafe { libc::write(result_write, (&byte as *const u8).cast(), 1) };
            exit_now(checks)
        }
        Err(DaemonError::SetupFailed { .. }) => SETUP_FAILED,
        Err(DaemonError::DiedDuringSetup(_)) => DIED_DURING_SETUP,
        Err(_) => FORK_DAEMON_FAILED,
    }
}

#[test]
fn a_launcher_with_any_of_its_stdio_closed_gets_a_ready_daemon_whose_stdio_is_dev_null() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let null_rdev = dev_null_rdev();
    let rounds = soak_scale();
    let pipes_before = open_pipe_count();
    let mut errors = 0;
    let mut launchers_with_changed_fds = 0;
    for _ in 0..rounds {
        for closed in 0..8u8 {
            for double_fork in [false, true] {
                let pid = fork_child(|| launcher_with_closed_stdio(closed, double_fork, null_rdev));
                let ended = wait_bounded(pid, Duration::from_secs(60));
                if ended == Some(Ended::Exited(LAUNCHER_FDS_CHANGED)) {
                    launchers_with_changed_fds += 1;
                }
                if ended != Some(Ended::Exited(0)) {
                    errors += 1;
                    eprintln!(
                        "fds closed {closed:03b}, double fork {double_fork}: launcher {ended:?} \
                         (None: it hung and was killed)"
                    );
                }
            }
        }
    }
    let leaked = open_pipe_count() as isize - pipes_before as isize;
    // The leak column: pipes the test process gained, plus each launcher
    // whose fd count changed across fork_daemon and wait (at least one fd
    // each; its exit code cannot say how many).
    report(
        "daemon launch with fds 0–2 closed (all 8 combinations, single and double fork)",
        &format!(
            "{} launches; launchers whose fd count changed {launchers_with_changed_fds}",
            rounds * 16
        ),
        errors,
        0,
        0,
        leaked + launchers_with_changed_fds as isize,
    );
    assert_eq!(errors, 0, "launches that failed or hung (see above)");
    assert_eq!(
        launchers_with_changed_fds, 0,
        "launchers whose fd count changed across fork_daemon and wait"
    );
    assert_eq!(leaked, 0);
}

/// How many fds this process has open, counted without allocating: the
/// launchers run in forked children of a threaded process.
fn open_fd_total(limit: c_int) -> c_int {
    // SAFETY: F_GETFD touches no memory; an unopened number gives EBADF.
    (0..limit)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .count() as c_int
}

const NOT_EMFILE: c_int = 30;
const FDS_CHANGED: c_int = 31;
const A_CHILD_WAS_LEFT: c_int = 32;
const SETUP_LIMIT_FAILED: c_int = 33;

/// A launcher whose fd table has only `free` numbers left: `fork_daemon`
/// must fail with `EMFILE`, start no child and leak nothing.
fn launcher_out_of_fds(free: c_int, double_fork: bool) -> c_int {
    const LIMIT: c_int = 64;
    let lim = libc::rlimit {
        rlim_cur: LIMIT as libc::rlim_t,
        rlim_max: LIMIT as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit; lowering our own limit is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return SETUP_LIMIT_FAILED;
    }
    // Fill the table, then free exactly `free` numbers.
    let mut last = -1;
    loop {
        // SAFETY: F_DUPFD on fd 0 (open in this launcher) or on our last
        // duplicate touches no memory.
        let fd = unsafe { libc::fcntl(0.max(last), libc::F_DUPFD, 0) };
        if fd < 0 {
            break;
        }
        last = fd;
    }
    for fd in (LIMIT - free)..LIMIT {
        // SAFETY: these numbers hold our own duplicates.
        unsafe { libc::close(fd) };
    }
    let before = open_fd_total(LIMIT);
    let options = DaemonOptions::new().double_fork(double_fork);
    // SAFETY: see the module comment.
    let got = unsafe { fork_daemon(options) };
    let code = match got {
        Err(DaemonError::Core(Error::Os(e))) if e == Errno::EMFILE => 0,
        Ok(Forked::Child(_)) => exit_now(0),
        _ => NOT_EMFILE,
    };
    if code != 0 {
        return code;
    }
    if open_fd_total(LIMIT) != before {
        return FDS_CHANGED;
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } != -1 {
        return A_CHILD_WAS_LEFT;
    }
    0
}

#[test]
fn emfile_before_the_fork_is_an_error_that_starts_no_child_and_leaks_nothing() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // No room for the set-up pipe (0 or 1 free), and, with a double fork,
    // room for it but not for the second pipe (2 or 3 free).
    let cases = [
        (0, false),
        (1, false),
        (0, true),
        (1, true),
        (2, true),
        (3, true),
    ];
    let mut errors = 0;
    for (free, double_fork) in cases {
        let pid = fork_child(|| launcher_out_of_fds(free, double_fork));
        let ended = wait_bounded(pid, Duration::from_secs(60));
        if ended != Some(Ended::Exited(0)) {
            errors += 1;
            eprintln!("{free} fds free, double fork {double_fork}: launcher {ended:?}");
        }
    }
    report(
        "daemon launch with EMFILE before the fork",
        &format!("{} launches, 0 to 3 fds free", cases.len()),
        errors,
        0,
        0,
        0,
    );
    assert_eq!(errors, 0, "see above");
}

#[test]
fn a_thousand_launches_leave_no_fd_no_zombie_and_no_pid_file() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("launches");
    let path = dir.c_path("d.pid");
    let launches = 1000 * soak_scale();
    let pipes_before = open_pipe_count();
    let mut errors = 0;
    for i in 0..launches {
        let double_fork = i % 2 == 1;
        let options = DaemonOptions::new()
            .chdir_root(false)
            .double_fork(double_fork)
            .pid_file(&path);
        // SAFETY: see the module comment.
        match unsafe { fork_daemon(options) } {
            Ok(Forked::Parent(mut daemon)) => {
                let ready = daemon.wait_ready();
                let ended = daemon.wait();
                let ok = ready == Ok(true)
                    && match ended {
                        Ok(exit) => exit == ChildExit::Exited(0),
                        Err(DaemonError::Core(Error::NotAChild)) => double_fork,
                        Err(_) => false,
                    };
                if !ok {
                    errors += 1;
                    eprintln!("launch {i}: ready {ready:?}, ended {ended:?}");
                }
                if double_fork && daemon.as_raw_pidfd().is_none() {
                    // Without a pidfd, wait() cannot tell when the daemon
                    // has gone; give it a moment to remove its file.
                    let start = Instant::now();
                    while dir.join("d.pid").exists() && start.elapsed() < Duration::from_secs(5) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
            Ok(Forked::Child(DaemonChild {
                notifier, pid_file, ..
            })) => {
                let code = if notifier.notify(true).is_ok() { 0 } else { 1 };
                drop(pid_file);
                exit_now(code);
            }
            Err(e) => {
                errors += 1;
                eprintln!("launch {i}: {e}");
            }
        }
    }
    let leaked = open_pipe_count() as isize - pipes_before as isize;
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let zombies = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } != -1;
    let left = std::fs::read_dir(dir.path()).unwrap().count();
    report(
        "daemon launches with a pid file (half double-forked), each reaped",
        &format!(
            "{launches} launches; zombies {}, pid files left {left}",
            zombies as u8
        ),
        errors + zombies as usize + left,
        0,
        0,
        leaked,
    );
    assert_eq!(errors, 0, "see above");
    assert!(!zombies, "a child was left unreaped");
    assert_eq!(left, 0, "pid files were left behind");
    assert_eq!(leaked, 0, "pipes leaked");
}
