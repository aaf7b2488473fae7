//! `SignalInterrupt::triggered` and `ReadyChild::exited` in a process that
//! has run out of file descriptors: each registers a duplicate fd with the
//! reactor, which `EMFILE` now refuses. Neither may turn that into an
//! error while the program it waits for runs (a supervisor told "error"
//! would stop or crash): each falls back to looking every 10 ms, and still
//! gives the right answer.
//!
//! Alone in its binary: the fd table is filled for the whole process.
#![cfg(feature = "tokio")]

mod support;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

use support::{PATIENCE, PIPE_READY, bounded, sh};
use tokenpipe::ready::{LaunchOptions, launch_async};
use tokenpipe::{ChildExit, SignalInterrupt};

/// Duplicates of stdin (or of `keep`) until the system says `EMFILE`; the
/// fd table is full while they live.
fn fill_the_fd_table(keep: &OwnedFd) -> Vec<OwnedFd> {
    let mut filler = Vec::new();
    loop {
        match keep.try_clone() {
            Ok(fd) => filler.push(fd),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return filler,
            Err(e) => panic!("dup failed with {e}, not EMFILE"),
        }
        assert!(
            filler.len() < 100_000,
            "no EMFILE after 100000 fds: the limit was not lowered"
        );
    }
}

/// A low fd limit, so that filling the table is quick.
fn lower_the_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_cur.min(256);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[test]
fn triggered_and_exited_still_answer_when_the_process_is_out_of_fds() {
    lower_the_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Everything that needs an fd of its own is made first: the
        // interrupt's pipe, the program (its pidfd), the runtime's reactor.
        static STOP: SignalInterrupt = SignalInterrupt::new();
        STOP.as_raw_fd().expect("the interrupt's pipe");
        let mut cmd: Command = sh(&format!("{PIPE_READY}; sleep 0.3; exit 5"));
        let mut child = bounded(
            "the launch",
            launch_async(&mut cmd, LaunchOptions::new().timeout(PATIENCE)),
        )
        .await
        .expect("the program reports ready");
        let keep: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();

        let filler = fill_the_fd_table(&keep);
        // The premise: a duplicate now fails, as triggered's and exited's
        // registrations would.
        assert_eq!(
            keep.try_clone()
                .map(|fd| fd.as_raw_fd())
                .map_err(|e| e.raw_os_error()),
            Err(Some(libc::EMFILE)),
            "the fd table is not full"
        );

        let waiter = tokio::spawn(async { STOP.triggered().await });
        let trigger = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            STOP.trigger()
        });
        let woke = bounded("triggered() with no fds left", waiter)
            .await
            .unwrap();
        assert_eq!(woke, Ok(()), "triggered() failed instead of waiting");
        trigger.join().unwrap().expect("trigger");

        let exit = bounded("exited() with no fds left", child.exited()).await;
        assert_eq!(
            exit,
            Ok(ChildExit::Exited(5)),
            "exited() failed instead of waiting"
        );
        drop(filler);
    });
}
