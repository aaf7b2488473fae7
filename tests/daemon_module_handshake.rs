//! The `daemon` module: `fork_daemon` detaches the child as bitcoind does,
//! and the launcher learns ready / failed / died, never mistaking a dead
//! child for a ready one.
//!
//! `fork_daemon` wants a process without other threads; the test harness
//! has some. That is sound here because every child below makes only
//! async-signal-safe calls and leaves with `_exit` (the contract's real
//! requirement). The tests take turns, because a forked child inherits the
//! other tests' fds.
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::sync::Mutex;
use std::time::Duration;

use common::{ChildProcess, Ended, KilledOnDrop, exit_now, killed_on_drop};
use tokenpipe::Error;
use tokenpipe::daemon::{
    ChildExit, DaemonError, DaemonOptions, Forked, ReadyNotifier, fork_daemon,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// Forks a daemon; in the child runs `child` (async-signal-safe only) and
/// exits with its code; in the parent returns the handle, which kills and
/// reaps the daemon when dropped, pass or fail.
fn daemon(options: DaemonOptions<'_>, child: impl FnOnce(ReadyNotifier) -> c_int) -> KilledOnDrop {
    // SAFETY: see the module comment.
    match unsafe { fork_daemon(options) } {
        Ok(Forked::Parent(parent)) => killed_on_drop(parent),
        Ok(Forked::Child(daemon)) => exit_now(child(daemon.notifier)),
        Err(e) => panic!("fork_daemon failed: {e}"),
    }
}

fn quiet() -> DaemonOptions<'static> {
    DaemonOptions::new()
}

#[test]
fn a_daemon_that_notifies_ready_is_ready() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = daemon(quiet(), |n| if n.notify(true).is_ok() { 0 } else { 1 });
    assert_eq!(parent.wait_ready(), Ok(true));
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
    // The pipe was closed after the answer.
    assert_eq!(parent.wait_ready(), Err(DaemonError::Core(Error::Closed)));
}

#[test]
fn a_daemon_that_notifies_failure_is_not_ready() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = daemon(quiet(), |n| if n.notify(false).is_ok() { 0 } else { 1 });
    assert_eq!(parent.wait_ready(), Ok(false));
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
}

#[test]
fn a_dropped_notifier_is_a_death_before_ready_not_success() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = daemon(quiet(), |n| {
        drop(n);
        5
    });
    let err = parent.wait_ready().unwrap_err();
    assert_eq!(err, DaemonError::DiedBeforeReady);
    assert_eq!(err.core_status(), tokenpipe::TS_EOS);
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(5)));
}

#[test]
fn a_daemon_killed_before_it_is_ready_is_a_death_before_ready() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = daemon(quiet(), |_n| {
        loop {
            // SAFETY: pause is async-signal-safe; SIGKILL ends it.
            unsafe { libc::pause() };
        }
    });
    parent.kill(libc::SIGKILL).unwrap();
    assert_eq!(parent.wait_ready(), Err(DaemonError::DiedBeforeReady));
    assert_eq!(parent.wait(), Ok(ChildExit::Signaled(libc::SIGKILL)));
}

#[test]
fn a_status_text_before_the_report_is_skipped_not_read_as_tokens() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Bytes 1 (ready) in the text: read as tokens, they would say ready
    // although the daemon failed. Long, so the skip takes several reads.
    let text = "\u{1}".repeat(300);
    for timeout in [None, Some(Duration::from_secs(30))] {
        let mut parent = daemon(quiet(), |n| {
            let sent = n.status(&text).is_ok() && n.notify(false).is_ok();
            if sent { 0 } else { 1 }
        });
        let answer = match timeout {
            None => parent.wait_ready(),
            Some(t) => parent.wait_ready_timeout(t),
        };
        assert_eq!(answer, Ok(false), "timeout {timeout:?}");
        assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
    }
}

#[test]
fn wait_ready_timeout_times_out_then_still_hears_the_answer() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = daemon(quiet(), |n| {
        // Field by field: where time_t is 64 bits on a 32-bit target the
        // libc crate's timespec has private padding, so no literal builds.
        // SAFETY: timespec is integers (and padding); zero is valid.
        let mut pause: libc::timespec = unsafe { std::mem::zeroed() };
        pause.tv_nsec = 300_000_000;
        // SAFETY: nanosleep is async-signal-safe; `pause` is valid.
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
        if n.notify(true).is_ok() { 0 } else { 1 }
    });
    assert_eq!(
        parent.wait_ready_timeout(Duration::from_millis(20)),
        Err(DaemonError::Core(Error::TimedOut))
    );
    assert_eq!(parent.wait_ready_timeout(Duration::from_secs(30)), Ok(true));
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
}

#[test]
fn a_token_outside_the_protocol_is_an_error() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The notifier can only say 0 or 1, so smuggle a 7 through a raw write
    // on the inherited write end: find it as the lowest fd above stdio.
    let mut parent = daemon(quiet(), |n| {
        let end = notifier_fd(&n);
        // SAFETY: writing one byte from a valid buffer.
        let ok = unsafe { libc::write(end, [7u8].as_ptr().cast(), 1) } == 1;
        drop(n);
        if ok { 0 } else { 1 }
    });
    assert_eq!(parent.wait_ready(), Err(DaemonError::UnexpectedToken(7)));
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
}

/// The notifier's fd, found without allocating: the one fd above 2 that is
/// a pipe open for writing.
fn notifier_fd(_n: &ReadyNotifier) -> c_int {
    for fd in 3..1024 {
        // SAFETY: F_GETFL touches no memory; unopened fds give -1.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if fl >= 0 && fl & libc::O_ACCMODE == libc::O_WRONLY {
            return fd;
        }
    }
    -1
}

/// Child check codes for the set-up test.
const NOT_SESSION_LEADER: c_int = 20;
const WRONG_CWD: c_int = 21;
const STDIO_NOT_DEV_NULL: c_int = 22;
const STDIO_IS_DEV_NULL: c_int = 23;
const CWD_CHANGED: c_int = 24;

fn is_dev_null(fd: c_int) -> bool {
    // SAFETY: valid out-pointers; stat and fstat are async-signal-safe.
    unsafe {
        let mut a: libc::stat = std::mem::zeroed();
        let mut b: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut a) == 0
            && libc::stat(c"/dev/null".as_ptr(), &mut b) == 0
            && a.st_rdev == b.st_rdev
            && a.st_mode as libc::mode_t & libc::S_IFMT == libc::S_IFCHR
    }
}

fn cwd_is(path: &[u8]) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is valid for writes of its length; with a buffer given,
    // getcwd is a plain syscall on Linux.
    let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
    !p.is_null() && buf.starts_with(path) && buf[path.len()] == 0
}

#[test]
fn by_default_the_child_is_detached_as_daemon_7_asks() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut parent = daemon(DaemonOptions::new(), |n| {
        // SAFETY: getsid and getpid are async-signal-safe.
        if unsafe { libc::getsid(0) != libc::getpid() } {
            return NOT_SESSION_LEADER;
        }
        if !cwd_is(b"/") {
            return WRONG_CWD;
        }
        if !(0..3).all(is_dev_null) {
            return STDIO_NOT_DEV_NULL;
        }
        if n.notify(true).is_ok() { 0 } else { 1 }
    });
    assert_eq!(parent.wait_ready(), Ok(true));
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
}

#[test]
fn options_off_leave_the_working_directory_and_stdio_alone() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let here = std::env::current_dir().unwrap();
    let here = here.as_os_str().as_encoded_bytes().to_vec();
    // stdin of a test process may itself be /dev/null; stderr is the
    // harness's pipe or terminal, so watch fd 2.
    let stderr_was_null = is_dev_null(2);
    let options = DaemonOptions::new().chdir_root(false).close_stdio(false);
    let mut parent = daemon(options, |n| {
        // SAFETY: getsid and getpid are async-signal-safe.
        if unsafe { libc::getsid(0) != libc::getpid() } {
            return NOT_SESSION_LEADER;
        }
        if !cwd_is(&here) {
            return CWD_CHANGED;
        }
        if !stderr_was_null && is_dev_null(2) {
            return STDIO_IS_DEV_NULL;
        }
        if n.notify(true).is_ok() { 0 } else { 1 }
    });
    assert_eq!(parent.wait_ready(), Ok(true));
    assert_eq!(parent.wait(), Ok(ChildExit::Exited(0)));
}

#[test]
fn a_daemon_whose_launcher_is_gone_survives_notify_with_broken_pipe() {
    // bitcoind's daemon would die of SIGPIPE here if it did not ignore it;
    // notify never raises it.
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut pipe_to_child = tokenpipe::TokenPipe::make().unwrap();
    let go = pipe_to_child.take_read_end();
    let go_writer = pipe_to_child.take_write_end();
    // The handle unguarded (dropping it below must not kill the daemon);
    // `child` kills and reaps it by pid instead, pass or fail.
    let mut parent = daemon(quiet(), |n| {
        // SAFETY: signal is async-signal-safe; SIG_DFL is valid.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        // Wait until the launcher has closed its read end.
        if go.token_read().is_err() {
            return 30;
        }
        match n.notify(true) {
            Err(tokenpipe::ready::ReadyError::Channel(Error::BrokenPipe)) => 0,
            _ => 31,
        }
    })
    .into_inner();
    let mut child = ChildProcess::new(parent.pid());
    drop(go);
    // The launcher gives up: closes its read end without an answer.
    assert_eq!(
        parent.wait_ready_timeout(Duration::ZERO),
        Err(DaemonError::Core(Error::TimedOut))
    );
    drop(parent);
    go_writer.token_write(1).unwrap();
    assert_eq!(child.wait(), Ended::Exited(0));
}
