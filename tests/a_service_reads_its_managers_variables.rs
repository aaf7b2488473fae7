//! What a service reads from the variables its manager sets, bad input
//! included: the watchdog's interval (`WATCHDOG_USEC`, `WATCHDOG_PID`).
//! Reading removes nothing.
//!
//! Every test takes its turn through `SERIAL`: they change the
//! environment, which is process-wide, and `set_var` may not race a read.
#![cfg(unix)]

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokenpipe::ready::{Notifier, ReadyError};

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

// ---------------------------------------------------------------------------
// Socket activation: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

use tokenpipe::ready::ListenFds;

/// Sets each variable to its value, or removes it. Runs only in the
/// child, alone (`--exact`, one test thread).
fn set_listen_env(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) {
    for (name, value) in [
        ("LISTEN_PID", pid),
        ("LISTEN_FDS", fds),
        ("LISTEN_FDNAMES", names),
    ] {
        // SAFETY: this child process runs this one test on one thread.
        unsafe {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

fn listed(set: &ListenFds) -> Vec<(i32, Option<String>)> {
    set.iter()
        .map(|(fd, n)| (fd, n.map(String::from)))
        .collect()
}

#[test]
fn child_mode_takes_the_fds_its_parent_placed_at_3_and_4() {
    if std::env::var_os("TOKENPIPE_TEST_LISTEN").is_none() {
        return;
    }
    let ours = std::process::id().to_string();
    let want = vec![(3, Some("web".to_string())), (4, Some("admin".to_string()))];

    // Meant for another process, or none at all: nothing, no error.
    set_listen_env(Some("1"), Some("2"), Some("web:admin"));
    assert!(ListenFds::from_env().unwrap().is_empty(), "another's fds");
    set_listen_env(Some(&ours), Some("0"), None);
    assert!(ListenFds::from_env().unwrap().is_empty(), "LISTEN_FDS=0");
    // Bad input, refused by name.
    for (fds, names, variable) in [
        ("two", None, "LISTEN_FDS"),
        ("2", Some("web"), "LISTEN_FDNAMES"),
        ("2", Some("web:admin:more"), "LISTEN_FDNAMES"),
    ] {
        set_listen_env(Some(&ours), Some(fds), names);
        let got = ListenFds::from_env();
        let Err(error @ ReadyError::BadVariable { variable: v, .. }) = got else {
            panic!("{fds} {names:?} gave {got:?}");
        };
        assert_eq!(v, variable);
        assert!(error.to_string().contains(variable), "{error}");
    }
    set_listen_env(Some("me"), Some("2"), None);
    assert!(matches!(
        ListenFds::from_env(),
        Err(ReadyError::BadVariable {
            variable: "LISTEN_PID",
            ..
        })
    ));

    // Ours: the fds with their names, made close-on-exec, the variables left.
    set_listen_env(Some(&ours), Some("2"), Some("web:admin"));
    for fd in [3, 4] {
        assert_eq!(common::fd_flags(fd).map(|f| f & libc::FD_CLOEXEC), Ok(0));
    }
    let set = ListenFds::from_env().unwrap();
    assert_eq!(listed(&set), want);
    for fd in [3, 4] {
        assert_eq!(
            common::fd_flags(fd).map(|f| f & libc::FD_CLOEXEC),
            Ok(libc::FD_CLOEXEC),
            "fd {fd} is close-on-exec"
        );
    }
    assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("2"), "left");

    // Taken safely as OwnedFds, once per process: a second take is refused
    // by name, the variables stay.
    #[cfg(feature = "std")]
    let owned_once = {
        let owned = ListenFds::take_owned().unwrap();
        let again = ListenFds::take_owned().expect_err("taken twice");
        assert!(again.to_string().contains("LISTEN_FDS"), "{again}");
        assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("2"), "left");
        owned
    };

    // Taken: the same fds, and the variables gone.
    // SAFETY: this child runs this one test on one thread.
    let set = unsafe { ListenFds::take_from_env() }.unwrap();
    assert_eq!(listed(&set), want);
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        assert!(std::env::var_os(name).is_none(), "{name} removed");
    }
    assert!(ListenFds::from_env().unwrap().is_empty());

    // With std: each as an OwnedFd, and from that a listener.
    #[cfg(feature = "std")]
    {
        // The OwnedFds take_owned gave (into_owned on `set` would own the
        // same fds twice).
        let _ = set;
        let mut owned = owned_once.into_iter();
        let (web, name) = owned.next().unwrap();
        assert_eq!(name.as_deref(), Some("web"));
        let web = UnixListener::from(web);
        let path = web.local_addr().unwrap();
        let path = path.as_pathname().expect("a path").to_owned();
        let _client = std::os::unix::net::UnixStream::connect(&path).expect("the listener listens");
        web.accept().expect("and accepts");
        let (admin, name) = owned.next().unwrap();
        assert_eq!(name.as_deref(), Some("admin"));
        let admin = std::net::TcpListener::from(admin);
        let addr = admin.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).expect("the listener listens");
        admin.accept().expect("and accepts");
        assert!(owned.next().is_none());
    }
}

#[test]
fn socket_activation_hands_over_named_fds_from_3_once_and_only_to_their_process() {
    let _turn = turn();
    let dir = std::env::temp_dir().join(format!("tokenpipe-listen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let unix = UnixListener::bind(dir.join("web")).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (unix.as_raw_fd(), tcp.as_raw_fd());
    let mut cmd = common::this_test_binary("child_mode_takes_the_fds_its_parent_placed_at_3_and_4");
    cmd.env("TOKENPIPE_TEST_LISTEN", "1");
    // SAFETY: between fork and exec only fcntl and dup2, both
    // async-signal-safe; copies first above 100, so that a listener
    // already at 3 or 4 is not overwritten before it is placed, and dup2
    // always makes an inheritable copy.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let high_a = libc::fcntl(a, libc::F_DUPFD, 100);
            let high_b = libc::fcntl(b, libc::F_DUPFD, 100);
            if high_a < 0 || high_b < 0 || libc::dup2(high_a, 3) < 0 || libc::dup2(high_b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(high_a);
            libc::close(high_b);
            Ok(())
        });
    }
    let out = cmd.output().expect("run this test binary again");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran its test"
    );
}
