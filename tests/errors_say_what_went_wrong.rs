//! Errors: the original's status codes, the errno behind them, messages a
//! person can act on, and a size and shape fit for a signal handler.
#![cfg(unix)]

use tokenpipe::daemon::{DaemonError, SetupStep};
use tokenpipe::{ChildExit, Errno, Error, TS_EOS, TS_ERR};

const ALL: [Error; 6] = [
    Error::Eos,
    Error::Closed,
    Error::BrokenPipe,
    Error::WouldBlock,
    Error::TimedOut,
    Error::Os(Errno::EBADF),
];

#[test]
fn status_codes_match_the_original() {
    assert_eq!(TS_ERR, -1);
    assert_eq!(TS_EOS, -2);
    for e in ALL {
        let want = if e == Error::Eos { TS_EOS } else { TS_ERR };
        assert_eq!(e.status(), want, "{e:?}");
    }
    assert_eq!(Error::NotAChild.status(), TS_ERR);
    // The daemon hand-shake's end-of-stream errors keep the original's code.
    assert_eq!(DaemonError::DiedDuringSetup(None).core_status(), TS_EOS);
    assert_eq!(
        DaemonError::DiedDuringSetup(Some(ChildExit::Exited(1))).core_status(),
        TS_EOS
    );
    assert_eq!(DaemonError::DiedBeforeReady.core_status(), TS_EOS);
    assert_eq!(DaemonError::UnexpectedToken(2).core_status(), TS_ERR);
    let failed = DaemonError::SetupFailed {
        step: SetupStep::Chdir,
        errno: Errno::EACCES,
    };
    assert_eq!(failed.core_status(), TS_ERR);
    assert_eq!(failed.errno(), Some(Errno::EACCES));
    assert_eq!(DaemonError::AlreadyRunning(42).core_status(), TS_ERR);
    // A core error inside keeps its own code and errno.
    for e in ALL {
        assert_eq!(DaemonError::from(e).core_status(), e.status(), "{e:?}");
        assert_eq!(DaemonError::from(e).errno(), e.errno(), "{e:?}");
    }
}

#[test]
fn a_daemon_errors_exit_code_is_the_launchers_table_not_the_cores_negative_status() {
    // `exit(-1)` exits 255 and `exit(-2)` 254: the exit code says what
    // happened, as daemon_wait's table has it.
    let setup = DaemonError::SetupFailed {
        step: SetupStep::PidFile,
        errno: Errno::EACCES,
    };
    let table = [
        (setup, 1),
        (DaemonError::UnexpectedToken(2), 1),
        (DaemonError::Core(Error::Os(Errno::EMFILE)), 1),
        (DaemonError::Core(Error::Closed), 1),
        (DaemonError::DiedDuringSetup(None), 2),
        (DaemonError::DiedBeforeReady, 2),
        (DaemonError::Core(Error::Eos), 2),
        (DaemonError::Core(Error::TimedOut), 3),
        (DaemonError::AlreadyRunning(42), 4),
    ];
    for (e, code) in table {
        assert_eq!(e.exit_code(), code, "{e:?}");
        assert!((1..=4).contains(&e.exit_code()), "{e:?}");
    }
}

#[test]
fn an_install_error_gives_its_errno_as_every_error_does() {
    use tokenpipe::interrupt::{InstallError, SIGKILL};
    assert_eq!(InstallError::Refused { signal: SIGKILL }.errno(), None);
    assert_eq!(InstallError::OutOfRange { signal: 0 }.errno(), None);
    assert_eq!(InstallError::TooMany { count: 99 }.errno(), None);
    assert_eq!(InstallError::Taken { signal: 15 }.errno(), None);
    let os = InstallError::Os {
        signal: 32,
        errno: Errno::from(libc::EINVAL),
    };
    assert_eq!(os.errno(), Some(Errno::from(libc::EINVAL)));
    assert_eq!(
        InstallError::Pipe(Error::Os(Errno::EMFILE)).errno(),
        Some(Errno::EMFILE)
    );
    assert_eq!(InstallError::Pipe(Error::Closed).errno(), None);
}

#[test]
fn errno_is_the_os_error_behind_the_error_and_none_otherwise() {
    assert_eq!(Error::Os(Errno::EMFILE).errno(), Some(Errno::EMFILE));
    assert_eq!(Error::BrokenPipe.errno(), Some(Errno::EPIPE));
    assert_eq!(Error::WouldBlock.errno(), Some(Errno::EAGAIN));
    assert_eq!(Error::Eos.errno(), None);
    assert_eq!(Error::Closed.errno(), None);
    assert_eq!(Error::TimedOut.errno(), None);
}

#[test]
fn errors_are_copy_and_the_core_one_fits_in_eight_bytes() {
    use std::mem::size_of;

    fn is_copy<T: Copy>() {}
    is_copy::<Error>();
    is_copy::<Errno>();
    is_copy::<DaemonError>();
    // A tag and an errno; `Ok` takes a tag value Error leaves unused, so
    // a token result is no bigger than the error. (src/error.rs asserts the
    // first two at compile time as well.)
    assert!(size_of::<Error>() <= 8);
    assert!(size_of::<Result<(), Error>>() <= 8);
    assert!(size_of::<Result<u8, Error>>() <= 8);
    assert_eq!(size_of::<Errno>(), 4);
    // The daemon's error carries a failed step with its errno, or a
    // child's exit status, beside the core error: twelve bytes, off the
    // token path.
    assert!(size_of::<DaemonError>() <= 12);
}

#[test]
fn every_message_names_what_happened() {
    let expect = [
        (Error::Eos, "end of stream"),
        (Error::Closed, "closed"),
        (Error::BrokenPipe, "broken pipe"),
        (Error::WouldBlock, "would block"),
        (Error::TimedOut, "timed out"),
        (Error::NotAChild, "not this process's child"),
    ];
    for (e, needle) in expect {
        let msg = e.to_string();
        assert!(msg.contains(needle), "{e:?} says {msg:?}");
        // Inside a daemon error, a core error says the same.
        assert_eq!(DaemonError::from(e).to_string(), msg);
    }
    let expect = [
        (
            DaemonError::DiedDuringSetup(Some(ChildExit::Signaled(9))),
            "died during set-up before reporting (it was killed by signal 9)",
        ),
        (
            DaemonError::DiedDuringSetup(Some(ChildExit::Exited(1))),
            "(it exited with status 1)",
        ),
        (
            DaemonError::DiedDuringSetup(None),
            "not our child: its exit status went to its own parent",
        ),
        (
            DaemonError::AlreadyRunning(4242),
            "already running (pid 4242",
        ),
        (
            DaemonError::SetupFailed {
                step: SetupStep::PidFile,
                errno: Errno::EACCES,
            },
            "set-up failed at the pid file: ",
        ),
        (DaemonError::DiedBeforeReady, "before reporting readiness"),
        (DaemonError::UnexpectedToken(7), "unexpected token 7"),
    ];
    for (e, needle) in expect {
        let msg = e.to_string();
        assert!(msg.contains(needle), "{e:?} says {msg:?}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri has no strerror (the test's reference)")]
fn an_os_error_message_has_the_number_and_the_system_description() {
    let msg = Error::Os(Errno::EMFILE).to_string();
    assert!(msg.contains(&format!("os error {}", libc::EMFILE)), "{msg}");
    // The system's own words, as strerror gives them.
    // SAFETY: strerror returns a valid C string for any errno value.
    let sys = unsafe { std::ffi::CStr::from_ptr(libc::strerror(libc::EMFILE)) };
    assert!(msg.contains(sys.to_str().unwrap()), "{msg} lacks {sys:?}");
}

#[test]
fn an_unknown_errno_still_prints_its_number() {
    let e = Errno::from_raw(987_654);
    assert_eq!(e.raw(), 987_654);
    assert!(e.to_string().contains("987654"), "{e}");
    let neg = Errno::from_raw(-3);
    assert!(neg.to_string().contains("-3"), "{neg}");
}

#[test]
fn errors_implement_the_core_error_trait() {
    fn is_error<E: core::error::Error>() {}
    is_error::<Error>();
    is_error::<Errno>();
    is_error::<DaemonError>();
}

#[cfg(feature = "std")]
#[test]
fn conversion_to_io_error_keeps_the_errno_and_picks_the_right_kind() {
    use std::io::{self, ErrorKind};

    let e = io::Error::from(Error::Os(Errno::EBADF));
    assert_eq!(e.raw_os_error(), Some(libc::EBADF));

    let cases = [
        (Error::Eos, ErrorKind::UnexpectedEof, None),
        (Error::BrokenPipe, ErrorKind::BrokenPipe, Some(libc::EPIPE)),
        (Error::WouldBlock, ErrorKind::WouldBlock, Some(libc::EAGAIN)),
        (Error::TimedOut, ErrorKind::TimedOut, None),
        (Error::Closed, ErrorKind::NotConnected, None),
        (Error::NotAChild, ErrorKind::Unsupported, None),
    ];
    for (err, kind, raw) in cases {
        let io = io::Error::from(err);
        assert_eq!(io.kind(), kind, "{err:?}");
        assert_eq!(io.raw_os_error(), raw, "{err:?}");
        if raw.is_none() {
            // The crate's error travels inside, message and all.
            let inner = io.get_ref().and_then(|e| e.downcast_ref::<Error>());
            assert_eq!(inner, Some(&err));
        }
        // Inside a daemon error, a core error converts as it does alone.
        let io = io::Error::from(DaemonError::from(err));
        assert_eq!((io.kind(), io.raw_os_error()), (kind, raw), "{err:?}");
    }

    let cases = [
        (DaemonError::DiedDuringSetup(None), ErrorKind::UnexpectedEof),
        (DaemonError::AlreadyRunning(42), ErrorKind::AlreadyExists),
        (DaemonError::DiedBeforeReady, ErrorKind::UnexpectedEof),
        (DaemonError::UnexpectedToken(7), ErrorKind::InvalidData),
        (
            DaemonError::SetupFailed {
                step: SetupStep::Chdir,
                errno: Errno::EACCES,
            },
            ErrorKind::PermissionDenied,
        ),
    ];
    for (err, kind) in cases {
        let io = io::Error::from(err);
        assert_eq!(io.kind(), kind, "{err:?}");
        // The step stays in the message, so no errno is given out alone.
        assert_eq!(io.raw_os_error(), None, "{err:?}");
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<DaemonError>());
        assert_eq!(inner, Some(&err));
    }
}

#[cfg(feature = "std")]
#[test]
fn a_pid_file_path_with_a_nul_or_none_at_all_is_refused_before_any_fork() {
    use tokenpipe::daemon::{DaemonOptions, PidFilePath};
    let refused = |errno: i32| DaemonError::SetupFailed {
        step: SetupStep::PidFile,
        errno: Errno::from(errno),
    };
    assert_eq!(PidFilePath::new("a\0b.pid"), Err(refused(libc::EINVAL)));
    assert_eq!(PidFilePath::new(""), Err(refused(libc::ENOENT)));
    let path = PidFilePath::new(std::path::PathBuf::from("run/d.pid")).unwrap();
    assert_eq!(path.as_c_str(), c"run/d.pid");
    let options = DaemonOptions::new().pid_file_path(&path);
    assert_eq!(options.pid_file, Some(c"run/d.pid"));
}
