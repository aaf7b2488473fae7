//! `ready::launch` from a tokio runtime: run on the blocking pool and
//! awaited, it hands back a `ReadyChild` whose pidfd tokio's `AsyncFd`
//! watches for the child's death; called on the runtime's own thread, it
//! leaves the other tasks and threads of the process unharmed, because it
//! starts the program with `Command::spawn` (fork then exec) and runs no
//! Rust code in a forked copy of the runtime.
//!
//! Linux only: the pidfd (`pidfd_open`, Linux 5.3+) is what `AsyncFd`
//! waits on. A Linux that gives none fails these tests, naming why, rather
//! than letting them pass without having watched anything.
#![cfg(all(target_os = "linux", feature = "std"))]

use std::os::fd::{AsFd, BorrowedFd};
use std::process::Command;
use std::time::Duration;

use tokenpipe::ChildExit;
use tokenpipe::ready::{LaunchError, LaunchOptions, ReadyChild, launch};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::timeout;

/// Longer than anything here should take, even under qemu; only a hang
/// reaches it.
const PATIENCE: Duration = Duration::from_secs(20);

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    cmd
}

/// Reports ready on the token pipe, then runs `rest`.
fn ready_then(rest: &str) -> Command {
    sh(&format!(
        r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; {rest}"#
    ))
}

fn options() -> LaunchOptions {
    LaunchOptions::new().timeout(PATIENCE)
}

/// `launch` on the blocking pool, awaited.
async fn launch_blocking(mut cmd: Command) -> Result<ReadyChild, LaunchError> {
    let launched = tokio::task::spawn_blocking(move || launch(&mut cmd, options()));
    timeout(PATIENCE, launched)
        .await
        .expect("launch did not return")
        .expect("the launching task panicked")
}

/// The child's pidfd, or a failure that says why there is none.
fn pidfd_of(child: &ReadyChild) -> BorrowedFd<'_> {
    child.pidfd().unwrap_or_else(|| {
        panic!(
            "launch gave a ReadyChild without a pidfd: this kernel has no \
             pidfd_open (Linux before 5.3) or a seccomp filter refused it, so \
             the child's death cannot be awaited with AsyncFd here"
        )
    })
}

/// Registers `pidfd` with the runtime's reactor, for readability only (a
/// pidfd is never writable).
fn watch(pidfd: BorrowedFd<'_>) -> AsyncFd<BorrowedFd<'_>> {
    // SAFETY: the AsyncFd holds the borrow, so the ReadyChild, which
    // closes the pidfd only when dropped, outlives the registration; a
    // BorrowedFd always gives the same fd number.
    unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .expect("epoll takes a pidfd")
}

/// Waits, without blocking the runtime, until `pidfd` says its process
/// has ended. The fd stays open: `AsyncFd` only borrows it.
async fn death_of(pidfd: BorrowedFd<'_>) {
    let watched = watch(pidfd);
    let guard = timeout(PATIENCE, watched.readable())
        .await
        .expect("the pidfd never became readable")
        .expect("waiting on the pidfd failed");
    drop(guard);
}

/// `Threads:` from /proc/self/status.
fn threads_in_this_process() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// The calling thread's kernel id (`gettid`).
fn this_thread_id() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and touches no memory.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

#[tokio::test]
async fn a_child_launched_from_tokio_is_killed_and_its_death_awaited_on_the_pidfd() {
    let mut child = launch_blocking(ready_then("exec sleep 30"))
        .await
        .expect("the program reported ready");
    assert_eq!(child.try_wait().unwrap(), None, "it runs after reporting");
    {
        let pidfd = pidfd_of(&child);
        let watched = watch(pidfd);
        assert!(
            timeout(Duration::from_millis(50), watched.readable())
                .await
                .is_err(),
            "the pidfd was readable while the program ran"
        );
        drop(watched);
        child.kill(libc::SIGKILL).unwrap();
        death_of(pidfd).await;
    }
    // Readable pidfd: it has ended, so try_wait reaps it without waiting.
    assert_eq!(
        child.try_wait().unwrap(),
        Some(ChildExit::Signaled(libc::SIGKILL))
    );
    // Reaped once; later calls give the same answer, and no signal goes
    // to whoever gets the pid next.
    assert_eq!(child.wait().unwrap(), ChildExit::Signaled(libc::SIGKILL));
    assert!(child.kill(libc::SIGKILL).is_err());
}

#[tokio::test]
async fn a_child_that_exits_by_itself_is_awaited_through_as_fd_and_try_wait_gives_its_status() {
    let mut child = launch_blocking(ready_then("sleep 0.2; exit 5"))
        .await
        .expect("the program reported ready");
    // AsFd on a ReadyChild borrows the same pidfd.
    death_of(child.as_fd()).await;
    assert_eq!(child.try_wait().unwrap(), Some(ChildExit::Exited(5)));
}

#[tokio::test]
async fn a_program_that_dies_before_reporting_is_an_error_the_awaiting_task_gets() {
    match launch_blocking(sh("exit 3")).await {
        Err(LaunchError::Exited { exit, .. }) => assert_eq!(exit, ChildExit::Exited(3)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn other_tasks_run_while_a_launch_waits_on_the_blocking_pool() {
    // The program reports only once the test says so, so the launch is
    // still waiting for as long as the test wants to look.
    let dir = std::env::temp_dir().join(format!("tokenpipe-tokio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    let _ = std::fs::remove_file(&go);
    let mut cmd = sh(&format!(
        r#"while [ ! -e {go} ]; do sleep 0.01; done; printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 30"#,
        go = go.display()
    ));
    let launching = tokio::task::spawn_blocking(move || launch(&mut cmd, options()));

    // A task echoing datagrams, and a timer: both go on meanwhile.
    let (ours, theirs) = tokio::net::UnixDatagram::pair().unwrap();
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            let n = theirs.recv(&mut buf).await.unwrap();
            theirs.send(&buf[..n]).await.unwrap();
        }
    });
    for round in 0u8..3 {
        ours.send(&[round]).await.unwrap();
        let mut buf = [0u8; 16];
        let n = timeout(PATIENCE, ours.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &[round]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    timeout(PATIENCE, echo).await.unwrap().unwrap();
    assert!(
        !launching.is_finished(),
        "launch returned before the program could report"
    );

    std::fs::write(&go, b"").unwrap();
    let mut child = timeout(PATIENCE, launching)
        .await
        .expect("launch did not return")
        .unwrap()
        .expect("the program reported ready");
    let _ = std::fs::remove_dir_all(&dir);
    child.kill(libc::SIGKILL).unwrap();
    death_of(pidfd_of(&child)).await;
    assert_eq!(
        child.try_wait().unwrap(),
        Some(ChildExit::Signaled(libc::SIGKILL))
    );
}

#[tokio::test]
async fn launching_on_the_runtime_thread_itself_is_safe_with_other_tasks_and_threads_running() {
    // Another thread is busy (a blocking-pool task holding a lock-step
    // channel), a task is parked on a socket, and a timer is pending:
    // a fork that ran Rust code in the child would copy all of that
    // half-way. launch forks only to exec.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, busy_thread) = std::sync::mpsc::channel::<libc::pid_t>();
    let busy = tokio::task::spawn_blocking(move || {
        // Says which thread it is, then holds that thread until released.
        let _ = started.send(this_thread_id());
        held.recv().is_ok()
    });
    let (ours, theirs) = tokio::net::UnixDatagram::pair().unwrap();
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let n = theirs.recv(&mut buf).await.unwrap();
        theirs.send(&buf[..n]).await.unwrap();
    });
    let timer = tokio::spawn(tokio::time::sleep(Duration::from_millis(20)));
    tokio::task::yield_now().await;
    assert!(
        threads_in_this_process() >= 2,
        "the process should have a second thread during the launch"
    );
    // Not only some second thread (libtest's own would do): the busy task's
    // thread, another than this one, alive and held during the launch.
    let busy_tid = busy_thread
        .recv_timeout(PATIENCE)
        .expect("the busy task never started");
    assert_ne!(
        busy_tid,
        this_thread_id(),
        "the busy task runs on another thread"
    );
    assert!(
        std::path::Path::new(&format!("/proc/self/task/{busy_tid}")).exists(),
        "the busy task's thread {busy_tid} is alive"
    );

    // Called right here, on the thread that runs the tasks: it blocks this
    // thread until the program reports (milliseconds), nothing else.
    let mut cmd = ready_then("exit 7");
    let mut child = launch(&mut cmd, options()).expect("the program reported ready");
    assert_ne!(child.pid(), std::process::id() as libc::pid_t);
    assert!(
        std::path::Path::new(&format!("/proc/self/task/{busy_tid}")).exists(),
        "the busy task's thread {busy_tid} lived through the launch"
    );

    // The runtime carries on where it was.
    ours.send(b"after").await.unwrap();
    let mut buf = [0u8; 16];
    let n = timeout(PATIENCE, ours.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"after");
    timeout(PATIENCE, echo).await.unwrap().unwrap();
    timeout(PATIENCE, timer).await.unwrap().unwrap();
    release.send(()).unwrap();
    assert!(timeout(PATIENCE, busy).await.unwrap().unwrap());

    death_of(pidfd_of(&child)).await;
    assert_eq!(child.try_wait().unwrap(), Some(ChildExit::Exited(7)));
}
