//! `launch_async` and `SignalInterrupt::triggered` never block the runtime's
//! thread: on a current-thread runtime, a 10 ms ticker keeps ticking while
//! five launches wait (ready after ~1 s, exited, timed out) and three
//! tasks await an interrupt. A blocking wait would stop the ticker for a
//! second or more; what is allowed is what starting the five programs
//! takes on this machine, measured in the same run (about 20 ms natively).
//!
//! Alone in its binary: other tests loading the CPU would blur the gaps.
#![cfg(feature = "tokio")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{PATIENCE, PIPE_READY, bounded, sh, under_emulator};
use tokenpipe::ready::{AfterTimeout, LaunchError, LaunchOptions, launch_async};
use tokenpipe::{ChildExit, SignalInterrupt};
use tokio::time::MissedTickBehavior;

#[test]
fn launches_and_interrupt_waits_leave_a_10ms_ticker_ticking_on_a_current_thread_runtime() {
    let bound_seen = std::sync::Mutex::new(Duration::ZERO);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let max_gap = rt.block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let done = Arc::clone(&done);
            let ticks = Arc::clone(&ticks);
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(10));
                interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
                interval.tick().await;
                let mut last = Instant::now();
                let mut max_gap = Duration::ZERO;
                while !done.load(Ordering::Relaxed) {
                    interval.tick().await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                    let now = Instant::now();
                    max_gap = max_gap.max(now - last);
                    last = now;
                }
                max_gap
            }
        });
        // The ticker must be ticking before anything else runs (a
        // yield_now in block_on's own future need not let it start).
        bounded("the ticker's first ticks", async {
            while ticks.load(Ordering::Relaxed) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;

        // What may block the runtime's thread is what launch_async
        // documents: each launch's start (a pipe, a socket, the fork and
        // exec) on the calling thread, and join! below starts all five in
        // one poll. So the bound is five blocking launches of a program
        // that reports at once, timed here and now from this process as
        // it is (under qemu-user a fork copies the emulator, more the more
        // it has mapped), on a blocking thread so the ticker does not
        // count them; half as much again, and one tick; never under 20 ms.
        // A wait that blocked would stop the ticker for a second per
        // launch.
        let five = tokio::task::spawn_blocking(five_quick_launches)
            .await
            .expect("the measuring thread");
        let bound = (Duration::from_millis(10) + five * 3 / 2).max(Duration::from_millis(20));
        let emulator = under_emulator().map_or(String::new(), |r| format!(" under {r}"));
        println!(
            "five forks and execs here{emulator}: {five:?}; allowing tick gaps up to {bound:?}"
        );
        assert!(
            bound < Duration::from_millis(900),
            "starting five programs takes {five:?} here: the ticker cannot tell a blocked \
             runtime (a second per launch) from slow forks"
        );
        *bound_seen.lock().unwrap() = bound;

        let long = LaunchOptions::new().timeout(PATIENCE);
        let ready_after_sleep = format!("sleep 1; {PIPE_READY}; exec sleep 30");
        let mut ready1 = sh(&ready_after_sleep);
        let mut ready2 = sh(&ready_after_sleep);
        let mut ready3 = sh(&ready_after_sleep);
        let mut exits = sh("sleep 1; exit 4");
        let mut hangs = sh("exec sleep 30");

        let stop = Arc::new(SignalInterrupt::new());
        let waiters = support::tasks_awaiting(&stop, 3);
        let trigger = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                stop.trigger()
            }
        });

        let (r1, r2, r3, exited, timed_out) = bounded("the five launches", async {
            tokio::join!(
                launch_async(&mut ready1, long.clone()),
                launch_async(&mut ready2, long.clone()),
                launch_async(&mut ready3, long.clone()),
                launch_async(&mut exits, long.clone()),
                launch_async(
                    &mut hangs,
                    LaunchOptions::new().timeout(Duration::from_secs(1))
                ),
            )
        })
        .await;
        for ready in [r1, r2, r3] {
            let mut child = ready.expect("the program reported ready after its sleep");
            child.kill(libc::SIGKILL).unwrap();
            let exit = bounded("a killed ready program", child.exited()).await;
            assert_eq!(exit, Ok(ChildExit::Signaled(libc::SIGKILL)));
        }
        match exited {
            Err(LaunchError::Exited { exit, .. }) => assert_eq!(exit, ChildExit::Exited(4)),
            other => panic!("expected Exited(4), got {other:?}"),
        }
        match timed_out {
            Err(LaunchError::TimedOut {
                after: AfterTimeout::Killed(exit),
                ..
            }) => assert_eq!(exit, ChildExit::Signaled(libc::SIGKILL)),
            other => panic!("expected TimedOut after Killed, got {other:?}"),
        }
        bounded("the trigger task", trigger)
            .await
            .unwrap()
            .expect("trigger");
        for waiter in waiters {
            bounded("a task awaiting triggered()", waiter)
                .await
                .unwrap()
                .expect("triggered() failed");
        }
        done.store(true, Ordering::Relaxed);
        bounded("the ticker", ticker).await.unwrap()
    });
    let bound = *bound_seen.lock().unwrap();
    println!("largest gap between 10 ms ticks: {max_gap:?} (bound {bound:?})");
    assert!(
        max_gap <= bound,
        "the runtime's thread was blocked: a 10 ms ticker waited {max_gap:?} \
         between ticks (bound {bound:?})"
    );
}

/// Five blocking launches in a row of a shell that reports ready at once
/// and exits: how long starting five programs the way `launch_async`
/// starts them takes, in this process, on this machine, now (the wait for
/// each report is a few milliseconds more, which the bound can spare).
fn five_quick_launches() -> Duration {
    let start = Instant::now();
    for _ in 0..5 {
        let mut child = tokenpipe::ready::launch(
            &mut sh(&format!("{PIPE_READY}; exit 0")),
            LaunchOptions::new().timeout(PATIENCE),
        )
        .expect("a program that reports at once is ready");
        assert!(child.wait().expect("it is reaped").success());
    }
    start.elapsed()
}
