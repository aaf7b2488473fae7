//! What a service reads from the variables its manager sets, bad input
//! included: the watchdog's interval (`WATCHDOG_USEC`, `WATCHDOG_PID`).
//! Reading removes nothing.
//!
//! Every test takes its turn through `SERIAL`: they change the
//! environment, which is process-wide, and `set_var` may not race a read.
#![cfg(unix)]

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bitcoin_tokenpipe::ready::{Notifier, ReadyError};

static SERIAL: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets (or removes) `WATCHDOG_USEC` and `WATCHDOG_PID`, reads the
/// interval, checks that the read removed neither, and clears them again.
/// The caller holds `SERIAL`.
// ReadyError is fixed-size and Copy by design: no allocation, not boxed.
#[allow(clippy::result_large_err)]
fn watchdog_with(usec: Option<&str>, pid: Option<&str>) -> Result<Option<Duration>, ReadyError> {
    let vars = [("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)];
    for (name, value) in vars {
        // SAFETY: the caller holds SERIAL, so no other thread of this test
        // binary reads or changes the environment meanwhile.
        unsafe {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
    let got = Notifier::watchdog_interval();
    for (name, value) in vars {
        assert_eq!(
            std::env::var(name).ok().as_deref(),
            value,
            "{name} left as it was"
        );
        // SAFETY: as above.
        unsafe { std::env::remove_var(name) };
    }
    got
}

#[test]
fn no_watchdog_usec_means_no_watchdog() {
    let _turn = turn();
    assert_eq!(watchdog_with(None, None), Ok(None));
    // WATCHDOG_PID alone says nothing.
    assert_eq!(watchdog_with(None, Some("1")), Ok(None));
}

#[test]
fn watchdog_usec_alone_is_our_interval() {
    let _turn = turn();
    assert_eq!(
        watchdog_with(Some("30000000"), None),
        Ok(Some(Duration::from_secs(30)))
    );
}

#[test]
fn watchdog_pid_of_this_process_keeps_the_interval_and_of_another_drops_it() {
    let _turn = turn();
    let ours = std::process::id().to_string();
    assert_eq!(
        watchdog_with(Some("500000"), Some(&ours)),
        Ok(Some(Duration::from_millis(500)))
    );
    // pid 1 is init (or the container's first process), never a test.
    assert_eq!(watchdog_with(Some("500000"), Some("1")), Ok(None));
}

#[test]
fn a_watchdog_usec_that_is_not_a_number_or_is_zero_is_refused_by_name() {
    let _turn = turn();
    for bad in ["soon", "0", "-1", "5s", "", "18446744073709551615"] {
        let got = watchdog_with(Some(bad), None);
        let Err(
            error @ ReadyError::BadVariable {
                variable, value, ..
            },
        ) = got
        else {
            panic!("WATCHDOG_USEC={bad:?} gave {got:?}");
        };
        assert_eq!(variable, "WATCHDOG_USEC");
        assert_eq!(value.as_bytes(), bad.as_bytes());
        let said = error.to_string();
        assert!(
            said.contains("WATCHDOG_USEC") && said.contains(&format!("{bad:?}")),
            "{said:?} names the variable and shows the value"
        );
    }
}

#[test]
fn a_watchdog_pid_that_is_not_a_pid_is_refused_by_name() {
    let _turn = turn();
    for bad in ["me", "0", "-1", "12 "] {
        let got = watchdog_with(Some("500000"), Some(bad));
        let Err(error @ ReadyError::BadVariable { variable, .. }) = got else {
            panic!("WATCHDOG_PID={bad:?} gave {got:?}");
        };
        assert_eq!(variable, "WATCHDOG_PID");
        assert!(error.to_string().contains("WATCHDOG_PID"), "{error}");
    }
}
