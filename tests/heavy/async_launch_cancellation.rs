//! A `launch_async` future dropped before its verdict, at every stage,
//! leaves nothing behind: the program (and, detached, its process group)
//! is killed and reaped by the crate's reaper, and the notify socket and
//! its directory are removed. `ReadyChild::exited` dropped mid-wait can be
//! awaited again.
//!
//! Each program first writes `$NOTIFY_SOCKET` and its pid to files, so the
//! test knows what to look for once the future is gone.
#![cfg(feature = "tokio")]

mod support;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::task::Poll;
use std::time::Duration;

use support::{
    PATIENCE, PIPE_READY, Scratch, assert_dead, assert_reaped, assert_socket_removed, bounded,
    line_in, pid_in, require_tool, running, sh,
};
use tokenpipe::ChildExit;
use tokenpipe::ready::{LaunchError, LaunchOptions, ReadyChild, launch_async};

fn long() -> LaunchOptions {
    LaunchOptions::new().timeout(PATIENCE)
}

/// A program that records its socket and pid in `scratch`, then runs
/// `rest`.
fn recording(scratch: &Scratch, rest: &str) -> Command {
    sh(&format!(
        r#"echo "$NOTIFY_SOCKET" >{sock}; echo $$ >{pid}; {rest}"#,
        sock = scratch.file("sock").display(),
        pid = scratch.file("pid").display(),
    ))
}

/// Polls `launch` until the program has recorded its pid (so it surely
/// runs) and returns that pid; a verdict before that fails the test.
async fn until_started(
    launch: Pin<&mut impl Future<Output = Result<ReadyChild, LaunchError>>>,
    scratch: &Scratch,
) -> libc::pid_t {
    let pid_file = scratch.file("pid");
    tokio::select! {
        verdict = launch => panic!("a verdict before the program started: {verdict:?}"),
        pid = pid_in(&pid_file) => pid,
    }
}

/// One poll of `fut`, from within the task (so with its waker).
async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// What must hold once a launch is dropped: the program reaped, its
/// socket and the socket's directory gone.
async fn assert_cleaned_up(pid: libc::pid_t, scratch: &Scratch) {
    assert_reaped(pid, "the program of the dropped launch").await;
    assert_socket_removed(&scratch.file("sock")).await;
}

#[tokio::test]
async fn a_launch_future_never_polled_starts_nothing() {
    let scratch = Scratch::new("never-polled");
    let mut cmd = recording(&scratch, "exec sleep 60");
    let launch = launch_async(&mut cmd, long());
    drop(launch);
    // A started shell writes its pid at once; give it ample time to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !scratch.file("pid").exists(),
        "a launch future dropped unpolled started the program"
    );
}

#[tokio::test]
async fn a_launch_dropped_by_a_timeout_while_the_program_is_silent_kills_it_and_removes_the_socket()
{
    let scratch = Scratch::new("silent");
    let mut cmd = recording(&scratch, "exec sleep 60");
    // Boxed, so that dropping `launch` drops the future itself.
    let mut launch = Box::pin(launch_async(&mut cmd, long()));
    let pid = until_started(launch.as_mut(), &scratch).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), launch.as_mut())
            .await
            .is_err(),
        "a silent program got a verdict"
    );
    assert!(running(pid), "the program runs until the launch is dropped");
    drop(launch);
    assert_cleaned_up(pid, &scratch).await;
}

#[tokio::test]
async fn a_launch_in_an_aborted_task_kills_the_program_and_removes_the_socket() {
    let scratch = Scratch::new("aborted");
    let mut cmd = recording(&scratch, "exec sleep 60");
    let task = tokio::spawn(async move { launch_async(&mut cmd, long()).await });
    let pid = pid_in(&scratch.file("pid")).await;
    task.abort();
    let joined = bounded("the aborted task", task).await;
    assert!(
        joined.as_ref().is_err_and(|e| e.is_cancelled()),
        "the task was not cancelled: {joined:?}"
    );
    assert_cleaned_up(pid, &scratch).await;
}

/// Stage (d), best effort: the program has sent READY=1 (no barrier) on
/// the socket, and the future is dropped either without being polled
/// again (`polls_after` 0) or after one more poll, which may leave it in
/// the barrier linger. The datagram is sent before `sent` is written, so
/// when the test sees `sent` the report is queued. Whichever of "dropped
/// before the verdict" and "verdict already there" happens, it is checked:
/// dropped, everything is gone; a verdict, the child is alive and ours.
async fn drop_after_a_socket_report(name: &str, polls_after: usize) {
    require_tool("systemd-notify");
    let scratch = Scratch::new(name);
    let sent = scratch.file("sent");
    let mut cmd = recording(
        &scratch,
        &format!(
            "systemd-notify --no-block --ready; echo sent >{}; exec sleep 60",
            sent.display()
        ),
    );
    // Boxed, so that dropping `launch` drops the future itself.
    let mut launch = Box::pin(launch_async(&mut cmd, long()));
    let mut verdict: Option<Result<ReadyChild, LaunchError>> = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while verdict.is_none() && !sent.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: the program never reported"
        );
        if let Poll::Ready(v) = poll_once(launch.as_mut()).await {
            verdict = Some(v);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for _ in 0..polls_after {
        if verdict.is_none()
            && let Poll::Ready(v) = poll_once(launch.as_mut()).await
        {
            verdict = Some(v);
        }
    }
    let pid = pid_in(&scratch.file("pid")).await;
    match verdict {
        None => {
            println!("{name}: dropped before the verdict");
            drop(launch);
            assert_cleaned_up(pid, &scratch).await;
        }
        Some(Ok(mut child)) => {
            println!("{name}: the verdict came first");
            drop(launch);
            assert!(running(pid), "{name}: a ready program is alive");
            assert_eq!(child.try_wait().unwrap(), None);
            child.kill(libc::SIGKILL).unwrap();
            let exit = bounded("the ready program's end", child.exited()).await;
            assert_eq!(exit, Ok(ChildExit::Signaled(libc::SIGKILL)));
            // The socket lives as long as the handle (its processes may
            // still speak on it), and goes with it.
            let socket = PathBuf::from(line_in(&scratch.file("sock")).await);
            assert!(socket.exists(), "{name}: the socket went before the handle");
            drop(child);
            assert_socket_removed(&scratch.file("sock")).await;
        }
        Some(Err(e)) => panic!("{name}: {e:?}"),
    }
}

#[tokio::test]
async fn a_launch_dropped_after_a_socket_report_it_has_not_yet_read_leaves_nothing_behind() {
    drop_after_a_socket_report("report-unread", 0).await;
}

#[tokio::test]
async fn a_launch_dropped_after_one_more_poll_past_a_socket_report_leaves_nothing_behind() {
    drop_after_a_socket_report("report-polled", 1).await;
}

#[tokio::test]
async fn a_detached_launch_dropped_takes_the_grandchild_in_its_process_group_with_it() {
    let scratch = Scratch::new("detached");
    let grandchild = scratch.file("grandchild");
    let mut cmd = recording(
        &scratch,
        &format!(
            "sleep 60 & echo $! >{}; exec sleep 60",
            grandchild.display()
        ),
    );
    // Boxed, so that dropping `launch` drops the future itself.
    let mut launch = Box::pin(launch_async(&mut cmd, long().detach(true)));
    let pid = until_started(launch.as_mut(), &scratch).await;
    let grandchild = pid_in(&grandchild).await;
    assert!(running(grandchild), "the grandchild runs before the drop");
    drop(launch);
    assert_cleaned_up(pid, &scratch).await;
    assert_dead(grandchild, "the detached program's grandchild").await;
}

#[tokio::test]
async fn control_without_detach_the_grandchild_outlives_the_dropped_launch() {
    // Shows the check above can fail: only detach(true) kills the group.
    let scratch = Scratch::new("not-detached");
    let grandchild = scratch.file("grandchild");
    let mut cmd = recording(
        &scratch,
        &format!(
            "sleep 60 </dev/null >/dev/null 2>&1 & echo $! >{}; exec sleep 60",
            grandchild.display()
        ),
    );
    let mut launch = Box::pin(launch_async(&mut cmd, long()));
    let pid = until_started(launch.as_mut(), &scratch).await;
    let grandchild = pid_in(&grandchild).await;
    drop(launch);
    assert_cleaned_up(pid, &scratch).await;
    let survived = running(grandchild);
    // SAFETY: kill takes plain integers; the grandchild is ours to stop.
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    assert!(
        survived,
        "the grandchild of a launch without detach died with it"
    );
}

#[test]
fn launches_dropped_on_a_multi_thread_runtime_leave_nothing_behind() {
    let rt = support::multi_thread_runtime();
    rt.block_on(async {
        // Aborted while running on a worker thread.
        let scratch = Scratch::new("mt-aborted");
        let mut cmd = recording(&scratch, "exec sleep 60");
        let task = tokio::spawn(async move { launch_async(&mut cmd, long()).await });
        let pid = pid_in(&scratch.file("pid")).await;
        task.abort();
        assert!(bounded("the aborted task", task).await.is_err());
        assert_cleaned_up(pid, &scratch).await;

        // Dropped by a timeout inside a spawned task.
        let scratch = Scratch::new("mt-timeout");
        let mut cmd = recording(&scratch, "exec sleep 60");
        let pid_file = scratch.file("pid");
        let task = tokio::spawn(async move {
            // Boxed, so that dropping `launch` drops the future itself.
            let mut launch = Box::pin(launch_async(&mut cmd, long()));
            tokio::select! {
                verdict = launch.as_mut() => panic!("a verdict for a silent program: {verdict:?}"),
                _ = line_in(&pid_file) => {}
            }
            tokio::time::timeout(Duration::from_millis(200), launch)
                .await
                .is_err()
        });
        assert!(
            bounded("the task dropping its launch", task).await.unwrap(),
            "a silent program got a verdict"
        );
        let pid = pid_in(&scratch.file("pid")).await;
        assert_cleaned_up(pid, &scratch).await;
    });
}

#[tokio::test]
async fn exited_dropped_mid_wait_and_awaited_again_gives_the_exit_code() {
    let mut cmd = sh(&format!("{PIPE_READY}; sleep 0.5; exit 7"));
    let mut child = bounded("launch_async", launch_async(&mut cmd, long()))
        .await
        .expect("the program reported ready");
    for _ in 0..3 {
        assert!(
            tokio::time::timeout(Duration::from_millis(50), child.exited())
                .await
                .is_err(),
            "exited() returned while the program still ran"
        );
    }
    let exit = bounded("exited() after cancelled waits", child.exited()).await;
    assert_eq!(exit, Ok(ChildExit::Exited(7)));
    // Reaped once: the same answer again, at once.
    assert_eq!(child.exited().await, Ok(ChildExit::Exited(7)));
}
