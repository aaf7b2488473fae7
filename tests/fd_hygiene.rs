//! fd hygiene: no path, including every error path, leaks an fd, closes
//! one twice, or touches a number that now belongs to another file; and
//! running out of fds is a clean `EMFILE`.
//!
//! Every test here counts the process's open fds, so they take turns
//! (`SERIAL`), and nothing else in this binary opens fds.
#![cfg(unix)]

mod common;

use std::sync::{Mutex, MutexGuard};

use common::{identity, open_pipe_count, report, soak_scale, still_refers_to};
use tokenpipe::{Errno, Error, TokenPipe, TokenPipeEnd};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One cycle through every call and every error path of the core.
fn one_cycle(i: usize) -> usize {
    let mut errors = 0usize;
    let mut check = |ok: bool| errors += usize::from(!ok);

    let mut pipe = TokenPipe::make().unwrap();
    let reader = pipe.take_read_end();
    let mut writer = pipe.take_write_end();
    check(!pipe.take_read_end().is_open());
    check(writer.token_write(i as u8).is_ok());
    check(reader.token_read() == Ok(i as u8));
    // Wrong direction, both ways.
    check(reader.token_write(1) == Err(Error::Os(Errno::EBADF)));
    check(writer.token_read() == Err(Error::Os(Errno::EBADF)));
    // assign_from over a live end, then from a closed one.
    let mut other = TokenPipe::make().unwrap().take_write_end();
    other.assign_from(&mut writer);
    check(!writer.is_open());
    writer.assign_from(&mut other);
    check(writer.token_write(2).is_ok() && reader.token_read() == Ok(2));
    // Pipe-level assign and split.
    let mut a = TokenPipe::make().unwrap();
    let mut b = TokenPipe::make().unwrap();
    a.assign_from(&mut b);
    let (ar, aw) = a.split();
    drop(ar);
    check(aw.token_write(3) == Err(Error::BrokenPipe));
    // Raw round trip.
    let raw = aw.into_raw_fd();
    // SAFETY: `raw` came from into_raw_fd; we are its only owner.
    drop(unsafe { TokenPipeEnd::from_raw_fd(raw) });
    // Close twice, then use: Closed, no syscall.
    writer.close();
    writer.close();
    check(writer.token_write(4) == Err(Error::Closed));
    check(reader.token_read() == Err(Error::Eos));
    // The fallback creation path too.
    let (fr, fw) = TokenPipe::make_with_fcntl().unwrap().split();
    check(fw.token_write(5).is_ok() && fr.token_read() == Ok(5));
    errors
}

#[test]
fn a_hundred_thousand_cycles_through_every_path_leave_the_fd_count_unchanged() {
    let _turn = serial();
    let cycles = 100_000 * soak_scale();
    one_cycle(0); // let any lazily opened fd (none expected) appear first
    let before = open_pipe_count();
    let mut errors = 0;
    for i in 0..cycles {
        errors += one_cycle(i);
    }
    let leaked = open_pipe_count() as isize - before as isize;
    report(
        "fd hygiene: make/take/write/read/assign/close cycles",
        &format!("{cycles} cycles"),
        errors,
        0,
        0,
        leaked,
    );
    assert_eq!(errors, 0);
    assert_eq!(leaked, 0, "fds leaked");
}

/// Counts open fds without opening one (`open_pipe_count` needs a directory
/// handle, which a full table cannot give): probes every number below the
/// soft limit with `fcntl(F_GETFD)`.
fn open_fd_count_without_opening() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    (0..lim.rlim_cur as i32)
        .filter(|&fd| common::fd_flags(fd).is_ok())
        .count()
}

/// Sets the soft RLIMIT_NOFILE for the duration of `f`, then restores it.
fn with_fd_limit<T>(soft: u64, f: impl FnOnce() -> T) -> T {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let new = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: old.rlim_max,
    };
    // SAFETY: valid pointer; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
    let out = f();
    // SAFETY: valid pointer; restoring the limit we read.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    out
}

#[test]
fn exhausting_the_fd_limit_gives_emfile_and_leaks_nothing() {
    let _turn = serial();
    let before = open_pipe_count();
    let (made, err, with_one_left) = with_fd_limit(before as u64 + 64, || {
        let mut pipes = Vec::new();
        let err = loop {
            match TokenPipe::make() {
                Ok(p) => pipes.push(p),
                Err(e) => break e,
            }
            assert!(pipes.len() < 1000, "the limit was not enforced");
        };
        // Fill the table completely, then free exactly one fd: a pipe needs
        // two, so make must still fail cleanly and not keep the one it got.
        let mut fillers = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fillers.push(f);
        }
        drop(fillers.pop());
        let count_with_one_free = open_fd_count_without_opening();
        let again = TokenPipe::make().err();
        let fallback = TokenPipe::make_with_fcntl().err();
        let leaked_here = open_fd_count_without_opening() as isize - count_with_one_free as isize;
        drop(fillers);
        let made = pipes.len();
        drop(pipes);
        (made, err, (again, fallback, leaked_here))
    });
    let leaked = open_pipe_count() as isize - before as isize;
    report(
        "fd exhaustion: make until RLIMIT_NOFILE",
        &format!("{made} pipes, then EMFILE"),
        usize::from(err != Error::Os(Errno::EMFILE)),
        0,
        0,
        leaked + with_one_left.2,
    );
    assert_eq!(err, Error::Os(Errno::EMFILE));
    assert!(err.to_string().contains(&libc::EMFILE.to_string()));
    assert_eq!(with_one_left.0, Some(Error::Os(Errno::EMFILE)));
    assert_eq!(with_one_left.1, Some(Error::Os(Errno::EMFILE)));
    assert_eq!(with_one_left.2, 0, "a failed make kept an fd");
    assert_eq!(leaked, 0);
}

#[test]
fn an_fd_number_reused_after_close_is_never_touched_by_the_old_end() {
    let _turn = serial();
    let mut reused = 0usize;
    for _ in 0..1000 {
        let (reader, mut writer) = TokenPipe::make().unwrap().split();
        let old = writer.as_raw_fd();
        writer.close();
        // The lowest free number is the one just closed: this file gets it.
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        reused += usize::from(fd == old);
        let id = identity(fd).unwrap();
        // Every operation on the closed end, then its drop.
        assert_eq!(writer.token_write(1), Err(Error::Closed));
        assert_eq!(writer.token_read(), Err(Error::Closed));
        writer.close();
        drop(writer);
        assert!(
            still_refers_to(fd, id),
            "the old end closed the reused number"
        );
        drop(reader);
    }
    assert!(
        reused > 900,
        "the number was reused only {reused} times; the test proves little"
    );
}
