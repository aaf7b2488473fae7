//! Two threads racing to be a fresh `SignalInterrupt`'s first user (one
//! triggers while the other asks for the fd or looks with a zero timeout)
//! make one pipe between them, leak none, and leave exactly one token.
//!
//! Alone in its binary, so that the count of open pipes sees only this
//! test's.
#![cfg(all(unix, not(miri)))]

mod common;

use std::ffi::c_int;
use std::time::Duration;

use tokenpipe::SignalInterrupt;

fn bytes_in(fd: c_int) -> c_int {
    let mut n: c_int = -1;
    // SAFETY: FIONREAD writes one int to the valid pointer `&mut n`.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n
}

#[test]
fn two_first_users_racing_make_one_pipe_leak_none_and_leave_one_token() {
    // Once, before counting: the fork hook's registration and std's own
    // first-use set-up.
    SignalInterrupt::new().as_raw_fd().unwrap();
    let before = common::open_pipe_count();
    let rounds = 2_000 * common::soak_scale();
    for round in 0..rounds {
        let si = Box::new(SignalInterrupt::new());
        let si = &*si;
        let go = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let looker = s.spawn(|| {
                go.wait();
                if round % 2 == 0 {
                    si.as_raw_fd().map(drop)
                } else {
                    si.wait_timeout(Duration::ZERO).map(drop)
                }
            });
            go.wait();
            assert_eq!(si.trigger(), Ok(()), "round {round}");
            assert_eq!(looker.join().unwrap(), Ok(()), "round {round}");
        });
        assert!(si.is_triggered(), "round {round}");
        let fd = si.as_raw_fd().unwrap();
        assert_eq!(bytes_in(fd), 1, "round {round}: exactly one token");
        assert_eq!(
            common::open_pipe_count(),
            before + 2,
            "round {round}: one pipe, both ends"
        );
    }
    assert_eq!(
        common::open_pipe_count(),
        before,
        "dropping closed them all"
    );
}
