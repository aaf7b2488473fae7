//! Handing an end to another program: the fd number travels in an
//! environment variable; `from_env` accepts only an open pipe named by a
//! plain decimal number; `pass_to` makes the fd inheritable in that one
//! child and never in the parent.
//!
//! The tests change the environment and watch fd numbers, so they take
//! turns (`SERIAL`); `from_env`'s contract forbids concurrent `setenv`.
#![cfg(unix)]

mod common;

use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};

use tokenpipe::{Error, HandoffError, TokenPipe, TokenPipeEnd, parse_env_value};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets `name` to `value` and calls `from_env(name)`.
fn from_env_with(name: &CStr, value: Option<&str>) -> Result<TokenPipeEnd, HandoffError> {
    let key = name.to_str().unwrap();
    // SAFETY: every test in this binary that touches the environment holds
    // SERIAL, and nothing else in the binary reads it concurrently.
    unsafe {
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
        TokenPipeEnd::from_env(name)
    }
}

fn is_cloexec(fd: i32) -> bool {
    common::fd_flags(fd).unwrap() & libc::FD_CLOEXEC != 0
}

#[test]
fn an_unset_variable_is_not_set() {
    let _turn = serial();
    let got = from_env_with(c"TOKENPIPE_TEST_UNSET", None);
    assert_eq!(got.err(), Some(HandoffError::NotSet));
}

#[test]
fn values_that_are_not_a_plain_decimal_fd_are_malformed() {
    let _turn = serial();
    for bad in [
        "abc",
        "-1",
        "",
        "99999999999",
        "3,4",
        " 3",
        "3 ",
        "+3",
        "0x3",
        "2147483648",
    ] {
        let got = from_env_with(c"TOKENPIPE_TEST_BAD", Some(bad));
        assert_eq!(got.err(), Some(HandoffError::Malformed), "value {bad:?}");
    }
}

#[test]
fn the_parser_accepts_the_whole_c_int_range_and_nothing_beyond() {
    assert_eq!(parse_env_value(b"0"), Ok(0));
    assert_eq!(parse_env_value(b"2147483647"), Ok(i32::MAX));
    assert_eq!(parse_env_value(b"2147483648"), Err(HandoffError::Malformed));
    assert_eq!(parse_env_value(b"\xff"), Err(HandoffError::Malformed));
}

#[test]
fn a_closed_fd_is_not_open() {
    let _turn = serial();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let fd = writer.as_raw_fd();
    drop(writer);
    let got = from_env_with(c"TOKENPIPE_TEST_CLOSED", Some(&fd.to_string()));
    assert_eq!(got.err(), Some(HandoffError::NotOpen { fd }));
    drop(reader);
}

#[test]
fn a_regular_file_is_not_a_pipe_and_is_left_open() {
    let _turn = serial();
    let file = std::fs::File::open("/proc/self/exe")
        .or_else(|_| std::fs::File::open("/etc/passwd"))
        .unwrap();
    let fd = file.as_raw_fd();
    let got = from_env_with(c"TOKENPIPE_TEST_FILE", Some(&fd.to_string()));
    assert_eq!(got.err(), Some(HandoffError::NotAPipe { fd }));
    // Rejected means untouched: the file is still open and still ours.
    assert!(common::fd_flags(fd).is_ok());
}

#[test]
fn a_socket_is_not_a_pipe() {
    let _turn = serial();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let got = from_env_with(c"TOKENPIPE_TEST_SOCKET", Some(&fd.to_string()));
    assert_eq!(got.err(), Some(HandoffError::NotAPipe { fd }));
}

#[test]
fn each_rejection_says_something_different() {
    let messages: Vec<String> = [
        HandoffError::NotSet,
        HandoffError::Malformed,
        HandoffError::NotOpen { fd: 7 },
        HandoffError::NotAPipe { fd: 7 },
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for (i, a) in messages.iter().enumerate() {
        for b in &messages[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(messages[2].contains("fd 7") && messages[3].contains("fd 7"));
}

#[test]
fn an_open_pipe_is_taken_and_made_close_on_exec() {
    let _turn = serial();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.set_inheritable(true).unwrap(); // as an exec'd child would find it
    let value = writer.env_value();
    let raw = writer.into_raw_fd();
    let taken = from_env_with(c"TOKENPIPE_TEST_OK", Some(value.as_str())).unwrap();
    assert_eq!(taken.as_raw_fd(), raw);
    assert!(is_cloexec(raw), "from_env left the fd inheritable");
    taken.token_write(5).unwrap();
    assert_eq!(reader.token_read(), Ok(5));
}

#[test]
fn env_value_round_trips_through_the_parser() {
    let ends: Vec<TokenPipeEnd> = (0..4)
        .flat_map(|_| {
            let (r, w) = TokenPipe::make().unwrap().split();
            [r, w]
        })
        .collect();
    for end in &ends {
        let value = end.env_value();
        assert_eq!(parse_env_value(value.as_bytes()), Ok(end.as_raw_fd()));
    }
    assert_eq!(TokenPipeEnd::new().env_value().as_str(), "-1");
    assert_eq!(
        parse_env_value(TokenPipeEnd::new().env_value().as_bytes()),
        Err(HandoffError::Malformed)
    );
}

#[test]
fn set_inheritable_flips_close_on_exec_and_nothing_else() {
    let (reader, _writer) = TokenPipe::make().unwrap().split();
    let fd = reader.as_raw_fd();
    assert!(is_cloexec(fd));
    reader.set_inheritable(true).unwrap();
    assert_eq!(common::fd_flags(fd).unwrap(), 0);
    reader.set_inheritable(true).unwrap();
    assert_eq!(common::fd_flags(fd).unwrap(), 0);
    reader.set_inheritable(false).unwrap();
    assert_eq!(common::fd_flags(fd).unwrap(), libc::FD_CLOEXEC);
    assert_eq!(
        TokenPipeEnd::new().set_inheritable(true),
        Err(Error::Closed)
    );
}

#[cfg(feature = "std")]
mod pass_to {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_program_started_with_pass_to_sees_the_fd_and_the_parent_keeps_it_close_on_exec() {
        let _turn = serial();
        let (reader, writer) = TokenPipe::make().unwrap().split();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(
            r#"[ -p "/dev/fd/$READY_FD" ] || exit 3; printf '\001' >"/dev/fd/$READY_FD" || exit 4"#,
        );
        writer.pass_to(&mut cmd, "READY_FD").unwrap();
        let status = cmd.status().unwrap();
        assert!(
            is_cloexec(writer.as_raw_fd()),
            "pass_to made the parent's fd inheritable"
        );
        drop(writer);
        assert_eq!(status.code(), Some(0));
        assert_eq!(reader.token_read(), Ok(1));
        assert_eq!(reader.token_read(), Err(Error::Eos));
    }

    #[test]
    fn programs_spawned_concurrently_without_pass_to_never_see_the_fd() {
        let _turn = serial();
        let (reader, writer) = TokenPipe::make().unwrap().split();
        let fd = writer.as_raw_fd();
        let done = AtomicBool::new(false);
        let leaks = std::thread::scope(|s| {
            let spy = s.spawn(|| {
                let mut leaks = 0;
                while !done.load(Ordering::SeqCst) {
                    let out = Command::new("/bin/sh")
                        .arg("-c")
                        .arg(format!("[ -e /dev/fd/{fd} ] && echo leaked; true"))
                        .output()
                        .unwrap();
                    leaks += usize::from(!out.stdout.is_empty());
                }
                leaks
            });
            for _ in 0..30 {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(r#"printf x >"/dev/fd/$FD""#);
                writer.pass_to(&mut cmd, "FD").unwrap();
                assert!(cmd.status().unwrap().success());
            }
            done.store(true, Ordering::SeqCst);
            spy.join().unwrap()
        });
        assert_eq!(leaks, 0, "an unrelated program inherited the end");
        drop(writer);
        let mut got = 0;
        while reader.token_read() == Ok(b'x') {
            got += 1;
        }
        assert_eq!(got, 30);
    }

    #[test]
    fn an_end_closed_before_spawn_fails_the_spawn_instead_of_handing_over_another_file() {
        let _turn = serial();
        let (_reader, writer) = TokenPipe::make().unwrap().split();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(r#"printf x >"/dev/fd/$FD""#);
        writer.pass_to(&mut cmd, "FD").unwrap();
        let fd = writer.as_raw_fd();
        drop(writer);
        // Another pipe takes the freed number (the lowest free fd).
        let (other_reader, other_writer) = TokenPipe::make().unwrap().split();
        assert!([other_reader.as_raw_fd(), other_writer.as_raw_fd()].contains(&fd));
        let err = cmd.status().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        // And with the number simply gone, the same.
        drop((other_reader, other_writer));
        let err = cmd.status().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    }

    #[test]
    fn the_same_pipes_read_end_on_the_passed_number_fails_the_spawn() {
        // Both ends of a Linux pipe share one inode, so (device, inode)
        // alone cannot tell the write end that was passed from the read end
        // that took its number.
        let _turn = serial();
        let (reader, writer) = TokenPipe::make().unwrap().split();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"[ -e "/dev/fd/$FD" ] && echo "received fd $FD""#);
        writer.pass_to(&mut cmd, "FD").unwrap();
        let fd = writer.into_raw_fd();
        // Drop the writer and put the read end on its number in one step:
        // dup2 closes what `fd` named and makes it a copy of the read end.
        // SAFETY: both fds are open and ours; dup2 touches no memory.
        assert_eq!(unsafe { libc::dup2(reader.as_raw_fd(), fd) }, fd);
        // SAFETY: `fd` now names our copy of the read end, owned by nothing
        // else; the end closes it.
        let read_copy = unsafe { TokenPipeEnd::from_raw_fd(fd) };
        // Close-on-exec again, as the writer was (dup2 clears it); SERIAL
        // keeps this binary's other spawns out of the moment between.
        read_copy.set_inheritable(false).unwrap();
        if cfg!(any(target_os = "linux", target_os = "android")) {
            // The case the old check missed: same device, same inode.
            assert_eq!(common::identity(fd), common::identity(reader.as_raw_fd()));
        }
        match cmd.output() {
            Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}"),
            Ok(out) => panic!(
                "the child was started with the read end: {:?}, stdout {:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ),
        }
        drop(read_copy);
    }

    #[test]
    fn pass_to_on_a_closed_end_is_closed() {
        let mut cmd = Command::new("/bin/true");
        assert_eq!(
            TokenPipeEnd::new().pass_to(&mut cmd, "FD"),
            Err(Error::Closed)
        );
    }

    /// Run normally, this checks that a program started without a hand-off
    /// finds none. Re-run by the test below as an exec'd child with
    /// `TOKENPIPE_TEST_HANDOFF` set, it takes the end and reports through it.
    #[test]
    fn from_env_in_a_program_without_a_handoff_is_not_set() {
        let _turn = serial();
        // SAFETY: the environment is not changed concurrently (SERIAL, and
        // in the exec'd child only this test runs).
        match unsafe { TokenPipeEnd::from_env(c"TOKENPIPE_TEST_HANDOFF") } {
            Err(HandoffError::NotSet) => {}
            Ok(end) => {
                // Exec'd child mode: prove we hold the end, and that it is
                // close-on-exec now.
                assert!(is_cloexec(end.as_raw_fd()));
                end.token_write(b'!').unwrap();
            }
            Err(e) => panic!("hand-off failed: {e}"),
        }
    }

    #[test]
    fn a_rust_program_takes_the_end_with_from_env_across_exec() {
        let _turn = serial();
        let (reader, writer) = TokenPipe::make().unwrap().split();
        let mut cmd = crate::common::this_test_binary(
            "pass_to::from_env_in_a_program_without_a_handoff_is_not_set",
        );
        writer.pass_to(&mut cmd, "TOKENPIPE_TEST_HANDOFF").unwrap();
        let out = cmd.output().unwrap();
        drop(writer);
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        assert_eq!(reader.token_read(), Ok(b'!'));
        assert_eq!(reader.token_read(), Err(Error::Eos));
    }
}
