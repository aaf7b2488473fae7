//! `SignalInterrupt::triggered` is cancel-safe: thousands of waits dropped
//! before a trigger (one at a time and many at once) leave no fd behind,
//! and the interrupt still wakes the next wait.
//!
//! Linux only (`/proc/self/fd`), and alone in its binary: the fd count of
//! the process is only this test's while no other test runs.
#![cfg(all(feature = "tokio", target_os = "linux"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::bounded;
use tokenpipe::SignalInterrupt;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[tokio::test]
async fn cancelled_triggered_waits_leave_no_fd_and_the_next_wait_still_wakes() {
    let stop = Arc::new(SignalInterrupt::new());
    // The first wait makes the interrupt's pipe: count after it.
    assert!(
        tokio::time::timeout(Duration::from_millis(1), stop.triggered())
            .await
            .is_err()
    );
    let before = open_fds();

    // One at a time: each registered, waiting, then dropped.
    for _ in 0..1_000 {
        assert!(
            tokio::time::timeout(Duration::from_micros(100), stop.triggered())
                .await
                .is_err(),
            "triggered() returned with no trigger"
        );
    }
    // Many at once, aborted as tasks.
    for _ in 0..10 {
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let stop = Arc::clone(&stop);
                tokio::spawn(async move { stop.triggered().await })
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        for waiter in &waiters {
            waiter.abort();
        }
        for waiter in waiters {
            let joined = bounded("an aborted waiter", waiter).await;
            assert!(joined.is_err(), "a waiter finished with no trigger");
        }
    }
    let after = open_fds();
    assert_eq!(
        after, before,
        "2,000 cancelled triggered() waits changed the open fd count"
    );

    let waiter = tokio::spawn({
        let stop = Arc::clone(&stop);
        async move { stop.triggered().await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop.trigger().unwrap();
    bounded("the wait after the cancelled ones", waiter)
        .await
        .unwrap()
        .expect("triggered()");
}
