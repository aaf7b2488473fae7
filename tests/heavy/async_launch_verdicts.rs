//! `launch_async` reaches the verdicts blocking `launch` does, field for
//! field (ready on the pipe and the socket, failed with an errno, exited
//! with a code or a signal, timed out and killed or left running); its
//! futures are `Send` and run on a multi-thread runtime; outside a runtime
//! it and `ReadyChild::exited` fail with `NoRuntime` and start nothing.
#![cfg(feature = "tokio")]

mod support;

use std::future::Future;
use std::pin::pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::{PATIENCE, PIPE_READY, Scratch, bounded, pipe_failed, require_tool, sh};
use tokenpipe::ready::{
    AfterTimeout, LaunchError, LaunchOptions, ReadyChild, launch, launch_async,
};
use tokenpipe::{ChildExit, Error, SignalInterrupt};

/// One poll of `fut` with a waker that does nothing: what a future does
/// when driven outside any runtime.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    pin!(fut).poll(&mut cx)
}

/// The verdict, as fields that can be compared, with every program it
/// hands back killed and awaited first.
async fn shape(verdict: Result<ReadyChild, LaunchError>) -> String {
    async fn end(mut child: ReadyChild) -> ChildExit {
        let _ = child.kill(libc::SIGKILL);
        bounded("a handed-back program's end", child.exited())
            .await
            .expect("exited()")
    }
    match verdict {
        Ok(child) => {
            let status = child.status_text().map(str::to_owned);
            let main_named = child.pid() != child.launched_pid();
            let exit = end(child).await;
            format!("Ready status={status:?} MAINPID={main_named}, then killed: {exit:?}")
        }
        Err(LaunchError::Failed {
            child,
            errno,
            status,
        }) => {
            let exit = end(child).await;
            format!("Failed errno={errno:?} status={status:?}, then killed: {exit:?}")
        }
        Err(LaunchError::Exited { exit, status }) => {
            format!("Exited exit={exit:?} status={status:?}")
        }
        Err(LaunchError::TimedOut {
            waited,
            status,
            after,
        }) => {
            let after = match after {
                AfterTimeout::Killed(exit) => format!("Killed({exit:?})"),
                AfterTimeout::Running(child) => {
                    let exit = end(child).await;
                    format!("Running, then killed: {exit:?}")
                }
                other => format!("{other:?}"),
            };
            format!("TimedOut waited={waited:?} status={status:?} after={after}")
        }
        Err(other) => format!("{other:?}"),
    }
}

/// Runs the program `make` builds with blocking `launch` (on the blocking
/// pool) and with `launch_async`, and returns both verdicts' shapes.
async fn both_ways(make: fn() -> Command, options: LaunchOptions) -> (String, String) {
    let for_blocking = options.clone();
    let blocking = tokio::task::spawn_blocking(move || launch(&mut make(), for_blocking));
    let blocking = bounded("blocking launch", blocking).await.unwrap();
    let blocking = shape(blocking).await;
    let mut cmd = make();
    let asynch = bounded("launch_async", launch_async(&mut cmd, options)).await;
    (blocking, shape(asynch).await)
}

fn long() -> LaunchOptions {
    LaunchOptions::new().timeout(PATIENCE)
}

fn short() -> LaunchOptions {
    LaunchOptions::new().timeout(Duration::from_millis(300))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A name, the program, the options and the start of the expected verdict.
type Case = (&'static str, fn() -> Command, LaunchOptions, &'static str);

#[test]
fn launch_async_reaches_the_same_verdict_with_the_same_fields_as_blocking_launch() {
    require_tool("systemd-notify");
    let ready_pipe = || sh(&format!("{PIPE_READY}; exec sleep 30"));
    let ready_socket = || sh("systemd-notify --ready --status=serving; exec sleep 30");
    // The shell waits for its background job, so it reaps it once killed.
    let ready_main_pid = || sh("sleep 30 & systemd-notify --ready --pid=$!; wait");
    let failed_pipe = || sh(&format!("{}; exec sleep 30", pipe_failed(libc::ENOENT)));
    let failed_socket = || sh("systemd-notify STATUS=no-wallet ERRNO=5; exec sleep 30");
    let exit_7 = || sh("exit 7");
    let killed = || sh("kill -9 $$");
    let silent = || sh("systemd-notify --no-block --status=stuck; exec sleep 30");
    let cases: [Case; 9] = [
        (
            "ready on the pipe",
            ready_pipe,
            long(),
            "Ready status=None MAINPID=false, then killed: Signaled(9)",
        ),
        (
            "ready on the socket",
            ready_socket,
            long(),
            "Ready status=Some(\"serving\") MAINPID=false",
        ),
        (
            "ready on the socket, naming another MAINPID",
            ready_main_pid,
            long(),
            // Built without pidfds (ci/no-pidfd.sh), MAINPID= is ignored,
            // as documented: nothing could hold the named process against
            // the reuse of its pid. The program as started is the one
            // watched, then, and the one killed.
            if cfg!(tokenpipe_force_no_pidfd) {
                "Ready status=None MAINPID=false, then killed: Signaled(9)"
            } else {
                "Ready status=None MAINPID=true, then killed: Unknown"
            },
        ),
        (
            "failed on the pipe",
            failed_pipe,
            long(),
            "Failed errno=Some(2) status=None",
        ),
        (
            "failed on the socket",
            failed_socket,
            long(),
            "Failed errno=Some(5) status=Some(\"no-wallet\")",
        ),
        ("exit code 7", exit_7, long(), "Exited exit=Exited(7)"),
        (
            "killed by a signal",
            killed,
            long(),
            "Exited exit=Signaled(9)",
        ),
        (
            "timed out, killed",
            silent,
            short(),
            "TimedOut waited=300ms status=Some(\"stuck\") after=Killed(Signaled(9))",
        ),
        (
            "timed out, left running",
            silent,
            short().kill_on_timeout(false),
            "TimedOut waited=300ms status=Some(\"stuck\") after=Running",
        ),
    ];
    runtime().block_on(async {
        for (name, make, options, expected) in cases {
            let (blocking, asynch) = both_ways(make, options).await;
            assert!(
                blocking.starts_with(expected),
                "{name}: blocking launch gave {blocking}, expected {expected}…"
            );
            assert_eq!(asynch, blocking, "{name}: launch_async differs from launch");
        }
    });
}

#[test]
fn launch_async_futures_spawned_on_a_multi_thread_runtime_reach_their_verdicts() {
    let rt = support::multi_thread_runtime();
    rt.block_on(async {
        // tokio::spawn needs the launch future to be Send.
        let launch_in_task = |script: String, options: LaunchOptions| {
            tokio::spawn(async move { launch_async(&mut sh(&script), options).await })
        };
        let ready: Vec<_> = (0..3)
            .map(|_| launch_in_task(format!("sleep 0.3; {PIPE_READY}; exec sleep 30"), long()))
            .collect();
        let exits = launch_in_task("sleep 0.3; exit 4".into(), long());
        let hangs = launch_in_task("exec sleep 30".into(), short());
        let stop = Arc::new(SignalInterrupt::new());
        let waiters = support::tasks_awaiting(&stop, 3);
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.trigger().unwrap();

        for task in ready {
            let child = bounded("a spawned launch", task).await.unwrap();
            let child = child.expect("the program reported ready");
            assert!(
                shape(Ok(child))
                    .await
                    .starts_with("Ready status=None MAINPID=false")
            );
        }
        match bounded("the exiting launch", exits).await.unwrap() {
            Err(LaunchError::Exited { exit, .. }) => assert_eq!(exit, ChildExit::Exited(4)),
            other => panic!("expected Exited(4), got {other:?}"),
        }
        match bounded("the timed-out launch", hangs).await.unwrap() {
            Err(LaunchError::TimedOut {
                after: AfterTimeout::Killed(exit),
                ..
            }) => assert_eq!(exit, ChildExit::Signaled(libc::SIGKILL)),
            other => panic!("expected TimedOut after Killed, got {other:?}"),
        }
        for waiter in waiters {
            bounded("a task awaiting triggered()", waiter)
                .await
                .unwrap()
                .expect("triggered() failed");
        }
    });
}

#[test]
fn launch_async_outside_a_runtime_is_no_runtime_and_starts_nothing() {
    let scratch = Scratch::new("outside");
    let started = scratch.file("started");
    let mut cmd = sh(&format!("echo $$ >{}; exec sleep 30", started.display()));
    match poll_once(launch_async(&mut cmd, long())) {
        Poll::Ready(Err(LaunchError::Setup(Error::NoRuntime))) => {}
        other => panic!("expected Setup(NoRuntime) at the first poll, got {other:?}"),
    }
    // A started shell writes its pid at once; give it ample time to.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !started.exists(),
        "launch_async outside a runtime started the program"
    );
}

#[test]
fn exited_outside_a_runtime_is_no_runtime_and_the_child_is_still_ours() {
    let mut cmd = sh(&format!("{PIPE_READY}; exec sleep 30"));
    let mut child = launch(&mut cmd, long()).expect("the program reported ready");
    match poll_once(child.exited()) {
        Poll::Ready(Err(Error::NoRuntime)) => {}
        other => panic!("expected NoRuntime at the first poll, got {other:?}"),
    }
    assert_eq!(child.try_wait().unwrap(), None, "the program still runs");
    child.kill(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap(), ChildExit::Signaled(libc::SIGKILL));
}
