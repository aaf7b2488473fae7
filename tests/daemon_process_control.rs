//! What a launcher can do with the daemon after `fork_daemon`: signal it,
//! learn how it ended, never signal a stranger after reaping it, watch its
//! pidfd; the umask and double-fork options; and the pid file's lock.
//!
//! `fork_daemon` wants a process without other threads; the test harness
//! has some. That is sound here because every daemon below but one makes
//! only async-signal-safe calls and leaves with `_exit` or a signal. The
//! exception is `exec_with_notifier`, which allocates and spawns a program
//! (`Command::status`): see its comment for why that holds up here. The
//! tests take turns, because a forked child inherits the other tests' fds.
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::{KilledOnDrop, TempDir, exit_now, killed_on_drop, pause_forever};
use tokenpipe::daemon::{
    ChildExit, DaemonChild, DaemonError, DaemonOptions, Forked, SetupStep, fork_daemon,
};
use tokenpipe::{Errno, Error, TokenPipe};

static SERIAL: Mutex<()> = Mutex::new(());

/// Forks a daemon; in it runs `child` (async-signal-safe only) and exits
/// with its code; in the launcher returns the handle, which kills and
/// reaps the daemon when dropped, so a failed assertion leaves no daemon
/// paused for good (nor a zombie for `no_children_left`).
fn daemon(
    options: DaemonOptions<'_>,
    child: impl FnOnce(DaemonChild<'_>) -> c_int,
) -> Result<KilledOnDrop, DaemonError> {
    // SAFETY: see the module comment.
    match unsafe { fork_daemon(options) } {
        Ok(Forked::Parent(parent)) => Ok(killed_on_drop(parent)),
        Ok(Forked::Child(daemon)) => exit_now(child(daemon)),
        Err(e) => Err(e),
    }
}

fn ready_then_pause(d: DaemonChild<'_>) -> c_int {
    let _keep = d.pid_file;
    if d.notifier.notify(true).is_err() {
        return 1;
    }
    pause_forever()
}

fn no_children_left() -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim_end().parse().ok()
}

#[test]
fn kill_reaches_the_daemon_and_wait_says_which_signal_ended_it() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = daemon(DaemonOptions::new(), ready_then_pause).unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    assert!(d.is_child());
    assert_eq!(d.try_wait(), Ok(None), "it is still running");
    d.kill(libc::SIGTERM).unwrap();
    assert_eq!(d.wait(), Ok(ChildExit::Signaled(libc::SIGTERM)));
    // Asked again, the same answer: it is not waited for twice.
    assert_eq!(d.try_wait(), Ok(Some(ChildExit::Signaled(libc::SIGTERM))));
    assert_eq!(d.wait(), Ok(ChildExit::Signaled(libc::SIGTERM)));
    assert!(no_children_left());
}

#[test]
fn after_the_daemon_is_reaped_kill_fails_instead_of_signalling_a_reused_pid() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = daemon(DaemonOptions::new(), |d| {
        drop(d);
        4
    })
    .unwrap();
    assert_eq!(d.wait(), Ok(ChildExit::Exited(4)));
    // Another process may hold the number now; ESRCH, and nothing is sent.
    assert_eq!(d.kill(libc::SIGKILL), Err(Error::Os(Errno::ESRCH).into()));
    assert_eq!(d.kill(0), Err(Error::Os(Errno::ESRCH).into()));
}

#[test]
fn try_wait_reaps_a_daemon_that_has_ended_without_blocking() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = daemon(DaemonOptions::new(), |d| {
        if d.notifier.notify(false).is_ok() {
            9
        } else {
            1
        }
    })
    .unwrap();
    assert_eq!(d.wait_ready(), Ok(false));
    let mut exit = None;
    for _ in 0..10_000 {
        exit = d.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(exit, Some(ChildExit::Exited(9)));
    assert!(no_children_left());
}

#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn the_pidfd_becomes_readable_when_the_daemon_ends() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = daemon(DaemonOptions::new(), ready_then_pause).unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    let Some(pidfd) = d.as_raw_pidfd() else {
        // Only a kernel before 5.3 (or a seccomp filter) gives no pidfd;
        // say so rather than pass quietly.
        panic!("this Linux gave no pidfd (pidfd_open); the pidfd path is untested here");
    };
    assert!(pidfd > 2);
    #[cfg(feature = "std")]
    {
        use std::os::fd::{AsFd, AsRawFd};
        assert_eq!(d.as_fd().as_raw_fd(), pidfd);
        assert_eq!(d.pidfd().map(|fd| fd.as_raw_fd()), Some(pidfd));
    }
    let poll = |timeout: c_int| {
        let mut pfd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout) }
    };
    assert_eq!(poll(0), 0, "readable while the daemon runs");
    d.kill(libc::SIGKILL).unwrap();
    assert_eq!(poll(10_000), 1, "not readable after the daemon ended");
    assert_eq!(d.wait(), Ok(ChildExit::Signaled(libc::SIGKILL)));
}

#[test]
fn the_umask_option_is_applied_in_the_daemon() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = daemon(DaemonOptions::new().umask(Some(0o027)), |d| {
        drop(d);
        // SAFETY: umask is async-signal-safe; read it by setting it back.
        let mask = unsafe { libc::umask(0o022) };
        mask as c_int
    })
    .unwrap();
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0o027)));
}

#[test]
fn a_double_forked_daemon_is_no_session_leader_and_the_launcher_gets_its_own_pid() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("double");
    let path = dir.c_path("d.pid");
    let options = DaemonOptions::new().double_fork(true).pid_file(&path);
    let mut d = daemon(options, |d| {
        // SAFETY: getsid and getpid are async-signal-safe.
        let leader = unsafe { libc::getsid(0) == libc::getpid() };
        // Ready only if it can never acquire a controlling terminal.
        let _keep = d.pid_file;
        if d.notifier.notify(!leader).is_err() {
            return 1;
        }
        pause_forever()
    })
    .unwrap();
    assert_eq!(d.wait_ready(), Ok(true), "the daemon is a session leader");
    assert!(!d.is_child());
    // The pid the launcher holds is the daemon's own, as it wrote it.
    assert_eq!(read_pid(&dir.join("d.pid")), Some(d.pid()));
    // The intermediate child is gone and reaped: no child of ours is left.
    assert!(no_children_left());
    if d.as_raw_pidfd().is_some() {
        assert_eq!(d.try_wait(), Ok(None), "still running");
        d.kill(libc::SIGTERM).unwrap();
        // It ended; its status went to its own parent.
        assert_eq!(d.wait(), Err(Error::NotAChild.into()));
        assert_eq!(d.try_wait(), Err(Error::NotAChild.into()));
    } else {
        // No pidfd: a stranger's pid is never signalled or waited for.
        assert_eq!(d.kill(libc::SIGTERM), Err(Error::NotAChild.into()));
        assert_eq!(d.try_wait(), Err(Error::NotAChild.into()));
        // SAFETY: the daemon is alive (it holds the pid file lock and we
        // have not signalled it), so its pid is still its own.
        unsafe { libc::kill(d.pid(), libc::SIGTERM) };
    }
}

#[test]
fn a_second_instance_fails_at_once_naming_the_running_pid_and_leaves_its_file_alone() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("second");
    let path = dir.c_path("d.pid");
    let file = dir.join("d.pid");
    let mut first = daemon(DaemonOptions::new().pid_file(&path), ready_then_pause).unwrap();
    assert_eq!(first.wait_ready(), Ok(true));
    assert_eq!(read_pid(&file), Some(first.pid()));
    for double_fork in [false, true] {
        let options = DaemonOptions::new()
            .double_fork(double_fork)
            .pid_file(&path);
        let second = daemon(options, |_| 99);
        assert_eq!(
            second.err(),
            Some(DaemonError::AlreadyRunning(first.pid())),
            "double fork {double_fork}"
        );
        // Not truncated, not rewritten.
        assert_eq!(read_pid(&file), Some(first.pid()));
    }
    assert!(
        DaemonError::AlreadyRunning(first.pid())
            .to_string()
            .contains(&first.pid().to_string())
    );
    first.kill(libc::SIGKILL).unwrap();
    assert_eq!(first.wait(), Ok(ChildExit::Signaled(libc::SIGKILL)));
    // Killed, it left its file behind, unlocked: the next one takes over.
    let mut next = daemon(DaemonOptions::new().pid_file(&path), ready_then_pause).unwrap();
    assert_eq!(next.wait_ready(), Ok(true));
    assert_eq!(read_pid(&file), Some(next.pid()));
    next.kill(libc::SIGKILL).unwrap();
    next.wait().unwrap();
}

#[test]
fn a_stale_pid_file_with_longer_content_is_taken_over_and_rewritten_whole() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("stale");
    let path = dir.c_path("d.pid");
    let file = dir.join("d.pid");
    std::fs::write(&file, "2147483647\nleft over by a crashed daemon\n").unwrap();
    let mut d = daemon(DaemonOptions::new().pid_file(&path), ready_then_pause).unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}\n", d.pid())
    );
    d.kill(libc::SIGKILL).unwrap();
    d.wait().unwrap();
}

#[test]
fn a_relative_pid_file_is_relative_to_the_launchers_directory_and_removed_after_chdir() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("relative");
    let here = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let (until_checked, checked) = TokenPipe::make().unwrap().split();
    let checked_fd = checked.as_raw_fd();
    let options = DaemonOptions::new().chdir_root(true).pid_file(c"d.pid");
    let got = daemon(options, |d| {
        // SAFETY: the daemon's copy of the launcher's end, which nothing
        // else in the daemon uses: closed so only the launcher's remains.
        unsafe { libc::close(checked_fd) };
        if d.notifier.notify(true).is_err() {
            return 1;
        }
        let _ = until_checked.token_read();
        // The working directory is / now; the removal must still find it.
        match d.pid_file.map(|f| f.remove()) {
            Some(Ok(())) => 0,
            _ => 2,
        }
    });
    std::env::set_current_dir(&here).unwrap();
    let mut d = got.unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    assert_eq!(read_pid(&dir.join("d.pid")), Some(d.pid()));
    assert!(!Path::new("/d.pid").exists());
    drop(checked);
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0)));
    assert!(!dir.join("d.pid").exists(), "the pid file was not removed");
}

#[test]
fn a_pid_file_whose_directory_is_missing_fails_the_pid_file_step_with_its_errno() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("missing");
    let path = dir.c_path("no/such/dir/d.pid");
    for double_fork in [false, true] {
        let options = DaemonOptions::new()
            .double_fork(double_fork)
            .pid_file(&path);
        let got = daemon(options, |_| 99);
        assert_eq!(
            got.err(),
            Some(DaemonError::SetupFailed {
                step: SetupStep::PidFile,
                errno: Errno::from_raw(libc::ENOENT),
            })
        );
        assert!(no_children_left());
    }
}

#[test]
fn a_pid_file_removed_by_hand_and_made_again_by_another_is_not_removed_by_the_first() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("replaced");
    let path = dir.c_path("d.pid");
    let file = dir.join("d.pid");
    let (until_replaced, replaced) = TokenPipe::make().unwrap().split();
    let replaced_fd = replaced.as_raw_fd();
    let mut d = daemon(DaemonOptions::new().pid_file(&path), |d| {
        // SAFETY: as above: the daemon's copy of the launcher's end.
        unsafe { libc::close(replaced_fd) };
        if d.notifier.notify(true).is_err() {
            return 1;
        }
        let _ = until_replaced.token_read();
        // Not ours any more: remove must leave it.
        match d.pid_file.map(|f| f.remove()) {
            Some(Ok(())) => 0,
            _ => 2,
        }
    })
    .unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "12345\n").unwrap();
    drop(replaced);
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0)));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "12345\n");
}

#[cfg(feature = "std")]
/// Runs `script` with `sh -c`, the notifier handed over as `$READY_FD`;
/// the daemon exits 0 if the shell did.
///
/// This daemon allocates and spawns, which a fork of a threaded process
/// may not do in general: another thread could hold a lock forever. It is
/// sound enough here: every test in this binary holds SERIAL, so the only
/// other threads are the harness's, idle in a channel wait holding no lock,
/// and glibc's and musl's malloc reset their locks in a forked child.
fn exec_with_notifier(d: DaemonChild<'_>, script: &str) -> c_int {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", script]);
    if d.notifier.pass_to(&mut cmd, "READY_FD").is_err() {
        return 40;
    }
    let status = cmd.status();
    // Drop our copy after the spawn: the program's is the only writer left.
    drop(d);
    match status {
        Ok(s) if s.success() => 0,
        _ => 41,
    }
}

#[test]
#[cfg(feature = "std")]
fn a_daemon_can_hand_its_report_to_a_program_it_execs() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let options = DaemonOptions::new().chdir_root(false);
    let mut d = daemon(options, |d| {
        exec_with_notifier(d, r#"printf '\001' >"/dev/fd/$READY_FD""#)
    })
    .unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0)));
    // A program that exits without a word is a death before ready: the
    // Command kept no copy of the end.
    let mut d = daemon(options, |d| exec_with_notifier(d, "exit 0")).unwrap();
    assert_eq!(d.wait_ready(), Err(DaemonError::DiedBeforeReady));
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0)));
    // into_end: the raw end, for a program that takes it some other way.
    let mut d = daemon(options, |d| match d.notifier.into_end() {
        Some(end) if end.token_write(1).is_ok() => 0,
        _ => 1,
    })
    .unwrap();
    assert_eq!(d.wait_ready(), Ok(true));
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0)));
}

#[test]
fn wait_ready_timeout_of_duration_max_waits_as_long_as_it_takes() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut d = daemon(DaemonOptions::new(), |d| {
        // Ask for more time too: the extension must saturate as well.
        let ok = d.notifier.extend_timeout(Duration::MAX).is_ok() && d.notifier.ready().is_ok();
        if ok { 0 } else { 1 }
    })
    .unwrap();
    assert_eq!(d.wait_ready_timeout(Duration::MAX), Ok(true));
    assert_eq!(d.wait(), Ok(ChildExit::Exited(0)));
}
