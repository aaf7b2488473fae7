//! `ready::launch` in the cases real programs and real launchers hit:
//! a launcher that ignores `SIGCHLD` or reaps in a handler, a kill that is
//! refused, a program that daemonizes itself and exits, one that closes
//! the fds it inherited, pipes its stdio, names its main pid, sends a
//! datagram too long for the launcher's buffer, or is dropped unwatched
//! (also when the reaper thread's first start fails); a `TMPDIR` too long
//! for a socket address.
//!
//! Most cases run the `launch` example, the contract a user holds the
//! crate to (set `TOKENPIPE_LAUNCH_EXAMPLE` to run them against another
//! build of it); the rest run the library in this test binary, re-run in
//! child mode where a case changes process-wide state (`SIGCHLD`). The
//! cases that inject faults with strace run where strace can trace the
//! launcher itself rather than an emulator: x86 Linux.
#![cfg(all(unix, feature = "std"))]
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use common::{Scratch, alive, example_words, gone};

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokenpipe::ChildExit;
use tokenpipe::ready::{LaunchError, LaunchOptions, Notifier, launch};

/// One launch at a time: several cases count processes or fds.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits up to 10 s for `pid` to be gone (killed and reaped): a state, not
/// a timing, since a process that is never reaped never gets there.
fn becomes_gone(pid: libc::pid_t) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The `launch` example, ready to take arguments.
fn launch_example() -> Command {
    let words = example_words("launch");
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

/// Runs `cmd` to its end with stdout and stderr in a file (a program it
/// leaves running holds them: a pipe would never see end of file), and
/// returns its exit code and what it printed.
fn run(mut cmd: Command, scratch: &Scratch) -> (i32, String) {
    let out = scratch.path("launch.out");
    let file = File::create(&out).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let status = cmd.status().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    (status.code().unwrap_or(-1), text)
}

/// `cmd` with `SIGCHLD` ignored from its start (the disposition survives
/// `exec`, as it does for a program started so by a shell or a service
/// manager).
fn ignoring_sigchld(mut cmd: Command) -> Command {
    // SAFETY: between fork and exec the closure makes one
    // async-signal-safe call, signal(2), and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd
}

fn example(args: &[&str]) -> Command {
    let mut cmd = launch_example();
    cmd.args(args);
    cmd
}

/// strace, to inject faults into the launcher; a missing strace is an
/// error that names it.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn strace(args: &[&str]) -> Command {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "strace is missing (Debian package strace): these cases inject faults with it"
    );
    // Not -f: the launcher's own calls are the ones to break, and strace
    // following the program too would outlive the launcher with it.
    let mut cmd = Command::new("strace");
    cmd.arg("-qq").args(args);
    cmd
}

// ---------------------------------------------------------------------
// Timeouts: what is killed, what is said, and never a wait past the bound.

#[test]
fn a_detached_program_that_exits_leaving_a_daemon_has_its_group_killed_on_timeout() {
    let _turn = serial();
    let s = Scratch::new("detach");
    let script = format!(
        "sleep 30 & echo $! >{}; exit 0",
        s.path("daemon.pid").display()
    );
    let (code, out) = run(
        example(&["--detach", "--timeout", "1", "--", "/bin/sh", "-c", &script]),
        &s,
    );
    assert_eq!(code, 3, "{out}");
    let daemon = s.pid("daemon.pid");
    // The daemon it left is killed (a zombie at most, until init reaps it).
    let start = Instant::now();
    while alive(daemon) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(daemon), "the daemon the program left runs on: {out}");
    // And nobody is said to have been killed who had already exited.
    assert!(!out.contains("killed it ("), "{out}");
    assert!(out.contains("had exited with status 0"), "{out}");
    assert!(out.contains("killed what it left running"), "{out}");
}

#[test]
// Natively: qemu-user has no PR_SET_CHILD_SUBREAPER, and the example then
// launches without containment (and says so).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn a_program_that_exits_leaving_a_daemon_undetached_has_the_daemon_killed_by_the_containing_example()
 {
    let _turn = serial();
    let s = Scratch::new("undetached");
    let script = format!(
        "sleep 30 & echo $! >{}; exit 0",
        s.path("daemon.pid").display()
    );
    let (code, out) = run(
        example(&["--timeout", "0.5", "--", "/bin/sh", "-c", &script]),
        &s,
    );
    assert_eq!(code, 3, "{out}");
    // Never "killed" for the program, which had exited by itself.
    assert!(!out.contains("killed it ("), "{out}");
    assert!(out.contains("killed what it left running"), "{out}");
    assert!(
        becomes_gone(s.pid("daemon.pid")),
        "the daemon runs on: {out}"
    );
}

#[test]
fn without_containment_a_daemon_left_undetached_is_said_to_run_on_and_does() {
    let _turn = serial();
    let s = Scratch::new("uncontained");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(format!(
        "sleep 30 & echo $! >{}; exit 0",
        s.path("daemon.pid").display()
    ));
    let options = LaunchOptions::new().timeout(Duration::from_millis(500));
    let e = launch(&mut cmd, options).expect_err("nothing reports");
    let text = e.to_string();
    assert!(text.contains("was left running"), "{text}");
    assert!(!text.contains("killed"), "{text}");
    assert!(alive(s.pid("daemon.pid")), "{text}");
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn a_refused_kill_hands_the_program_back_instead_of_waiting_for_it() {
    let _turn = serial();
    let s = Scratch::new("eperm");
    // Every kill the launcher makes fails with EPERM, as it does for a
    // set-user-ID program an unprivileged launcher started. The program
    // would end by itself only after 30 s.
    let script = format!(
        "echo $$ >{}; exec sleep 30",
        s.path("program.pid").display()
    );
    let mut cmd = strace(&[
        "-o",
        "/dev/null",
        "-e",
        "trace=kill,pidfd_send_signal",
        "-e",
        "inject=kill,pidfd_send_signal:error=EPERM",
    ]);
    cmd.arg(launch_example().get_program()).args([
        "--timeout",
        "0.5",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("could not kill it (Operation not permitted"),
        "{out}"
    );
    // The launcher came back while the program still ran: it did not wait
    // for the program to end by itself.
    assert!(alive(s.pid("program.pid")), "{out}");
}

#[test]
fn the_example_takes_a_zero_timeout_as_no_timeout() {
    let _turn = serial();
    let s = Scratch::new("zero");
    let (code, out) = run(
        example(&[
            "--timeout",
            "0",
            "--",
            "/bin/sh",
            "-c",
            r#"sleep 0.3; printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD""#,
        ]),
        &s,
    );
    assert_eq!(code, 0, "{out}");
}

// ---------------------------------------------------------------------
// A launcher whose SIGCHLD is ignored, or reaped by a handler.

#[test]
fn a_launcher_that_ignores_sigchld_reports_an_exit_as_an_exit() {
    let _turn = serial();
    let s = Scratch::new("sigign");
    let cmd = ignoring_sigchld(example(&["--", "/bin/sh", "-c", "sleep 0.3; exit 7"]));
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("exit status was collected elsewhere"), "{out}");
}

#[test]
fn a_program_that_ends_at_once_under_an_ignored_sigchld_is_seen_to_end() {
    let _turn = serial();
    let s = Scratch::new("sigign-at-once");
    // The kernel reaps it before spawn has even returned: still an end,
    // never a wait for the timeout.
    let cmd = ignoring_sigchld(example(&["--timeout", "20", "--", "/bin/true"]));
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn a_launcher_that_ignores_sigchld_says_so_on_timeout_too() {
    let _turn = serial();
    let s = Scratch::new("sigign-timeout");
    let cmd = ignoring_sigchld(example(&["--timeout", "0.3", "--", "sleep", "5"]));
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("killed it (it ended (how is not known here"),
        "{out}"
    );
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn a_launcher_that_ignores_sigchld_does_not_spin() {
    let _turn = serial();
    let s = Scratch::new("spin");
    let trace = s.path("polls.trace");
    let mut cmd = ignoring_sigchld(strace(&[
        "-o",
        trace.to_str().unwrap(),
        "-e",
        "trace=poll,ppoll",
    ]));
    cmd.arg(launch_example().get_program())
        .args(["--", "/bin/sh", "-c", "sleep 0.5; exit 7"]);
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 2, "{out}");
    // Waiting half a second takes a handful of polls (the pidfd wakes
    // them); a pidfd left readable and polled again costs thousands.
    let polls = std::fs::read_to_string(&trace).unwrap().lines().count();
    assert!(
        polls < 100,
        "{polls} polls in half a second: the launcher spins"
    );
}

/// Run normally, this does nothing. Re-run by the cases below with
/// `TOKENPIPE_TEST_ACT` set, it is a launcher whose `SIGCHLD` handler reaps
/// every child, as many real programs have; it prints what it saw.
#[test]
fn child_mode_launches_with_a_reaping_handler() {
    let Ok(act) = std::env::var("TOKENPIPE_TEST_ACT") else {
        return;
    };
    extern "C" fn reap_everything(_: libc::c_int) {
        let saved = common::get_errno();
        // SAFETY: waitpid is async-signal-safe; a null status is allowed.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        common::set_errno(saved);
    }
    common::install_handler(libc::SIGCHLD, reap_everything);
    let script = match act.as_str() {
        "exit" => "sleep 0.3; exit 7",
        "ready" => r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; sleep 0.3; exit 3"#,
        other => panic!("unknown act {other}"),
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    let verdict = match launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    ) {
        Ok(mut child) => format!("ready, then {:?}", child.wait()),
        Err(LaunchError::Exited { exit, .. }) => format!("exited {exit:?}"),
        Err(e) => format!("error {e}"),
    };
    println!("VERDICT {verdict}");
}

fn launch_with_reaping_handler(act: &str) -> String {
    let mut cmd = common::this_test_binary("child_mode_launches_with_a_reaping_handler");
    cmd.arg("--nocapture").env("TOKENPIPE_TEST_ACT", act);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text.lines()
        .find_map(|l| l.split_once("VERDICT ").map(|(_, verdict)| verdict))
        .unwrap_or_else(|| panic!("no verdict in {text}"))
        .to_owned()
}

#[test]
fn a_launcher_whose_handler_reaps_every_child_still_gets_its_verdicts() {
    let _turn = serial();
    // Whoever reaps first, the handler or the launcher, the verdict is the
    // same; only the status may be lost.
    let exited = launch_with_reaping_handler("exit");
    assert!(
        ["exited Unknown", "exited Exited(7)"].contains(&exited.as_str()),
        "{exited}"
    );
    let ready = launch_with_reaping_handler("ready");
    assert!(
        ["ready, then Ok(Unknown)", "ready, then Ok(Exited(3))"].contains(&ready.as_str()),
        "{ready}"
    );
}

// ---------------------------------------------------------------------
// Reports on the socket.

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn a_socket_report_sent_before_exiting_wins_however_the_reads_interleave() {
    let _turn = serial();
    // STATUS=, then READY=1, then exit; the launcher's n-th recvmsg is held
    // back 100 ms, so the program's exit lands between its reads.
    for n in 1..=4 {
        let s = Scratch::new("interleave");
        let inject = format!("inject=recvmsg:delay_exit=100000:when={n}");
        let mut cmd = strace(&["-o", "/dev/null", "-e", "trace=recvmsg", "-e", &inject]);
        cmd.arg(launch_example().get_program()).args([
            "--",
            "/bin/sh",
            "-c",
            "systemd-notify --status=loading; systemd-notify --ready --no-block",
        ]);
        let (code, out) = run(cmd, &s);
        assert_eq!(code, 0, "recvmsg {n} held back: {out}");
    }
}

/// Launches a program that sends `first` as one datagram (systemd-notify
/// joins its `KEY=VALUE` arguments with newlines), then `READY=1` in a
/// second, then sleeps; returns the verdict with the program killed.
fn verdict_after_datagram(first: &str) -> String {
    let script = format!("systemd-notify {first}; systemd-notify --ready; exec sleep 30");
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]);
    match launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    ) {
        Ok(mut child) => {
            let status = child.status_text().map(str::len);
            child.kill(libc::SIGKILL).unwrap();
            child.wait().unwrap();
            format!("ready, status of {status:?} bytes")
        }
        Err(LaunchError::Failed { errno, .. }) => format!("failed, errno {errno:?}"),
        Err(e) => format!("{e} (the program runs systemd-notify: Debian package systemd)"),
    }
}

#[test]
fn a_datagram_longer_than_the_buffer_is_dropped_not_read_cut_short() {
    let _turn = serial();
    // 4097 bytes: cut at the launcher's 4096, the last line would read
    // ERRNO=1. systemd drops such a datagram (MSG_TRUNC); so does launch,
    // and hears the READY=1 that follows.
    let long = format!("STATUS={} ERRNO=12", "x".repeat(4081));
    assert_eq!(
        verdict_after_datagram(&long),
        "ready, status of None bytes",
        "the 4097-byte datagram was not dropped"
    );
    // The control: the same lines, short enough, are a failure with errno 12.
    assert_eq!(
        verdict_after_datagram("STATUS=short ERRNO=12"),
        "failed, errno Some(12)"
    );
}

#[test]
fn a_datagram_too_long_that_carries_an_fd_is_dropped_and_the_fd_closed() {
    let _turn = serial();
    // The sender waits for the launcher to close the fd it passed before
    // it says READY=1: an fd leaked with the dropped datagram would hold
    // it there until the timeout.
    let mut cmd = common::this_test_binary("child_mode_sends_a_long_datagram_carrying_an_fd");
    cmd.env("TOKENPIPE_TEST_ACT", "send").stdout(Stdio::null());
    match launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    ) {
        Ok(mut child) => assert!(child.wait().unwrap().success()),
        Err(LaunchError::Failed { errno, .. }) => {
            panic!("the long datagram was read cut short: failed with errno {errno:?}")
        }
        // Timed out: the sender still waits for the fd it passed to close.
        Err(e) => panic!("the long datagram with an fd: {e}"),
    }
}

/// Run normally, this does nothing; re-run with `TOKENPIPE_TEST_ACT`, it
/// sends `NOTIFY_SOCKET` one datagram too long for the launcher's 4096-byte
/// buffer, `STATUS=<4081 x>\nERRNO=12`, with a pipe's write end attached,
/// waits for end of file on the read end (which comes only once the
/// launcher has closed the copy it received), then sends `READY=1`.
#[test]
fn child_mode_sends_a_long_datagram_carrying_an_fd() {
    if std::env::var_os("TOKENPIPE_TEST_ACT").is_none() {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let path = std::env::var_os("NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_end, write_end] = fds;
    let long = format!("STATUS={}\nERRNO=12", "x".repeat(4081));
    send_with_fd(path.as_bytes(), long.as_bytes(), write_end);
    // SAFETY: both ends are this process's own, closed once each.
    unsafe { libc::close(write_end) };
    let mut byte = 0u8;
    // SAFETY: `byte` has room for the one byte asked for.
    let read = unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) };
    assert_eq!(read, 0, "the write end should be closed everywhere");
    // SAFETY: as above.
    unsafe { libc::close(read_end) };
    let socket = UnixDatagram::unbound().unwrap();
    socket.send_to(b"READY=1", &path).unwrap();
}

/// `sendmsg` of `data` to the socket at `path`, with `fd` passed along
/// (`SCM_RIGHTS`), as `sd_pid_notify_with_fds` sends one.
fn send_with_fd(path: &[u8], data: &[u8], fd: libc::c_int) {
    let socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
    // SAFETY: sockaddr_un and msghdr are plain integers and pointers; zero
    // is a valid value of each, and the fields used are set below.
    let (mut addr, mut msg) = unsafe {
        (
            std::mem::zeroed::<libc::sockaddr_un>(),
            std::mem::zeroed::<libc::msghdr>(),
        )
    };
    assert!(path.len() < addr.sun_path.len(), "socket path too long");
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, &b) in addr.sun_path.iter_mut().zip(path) {
        *slot = b as libc::c_char;
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    #[repr(C, align(8))]
    struct Control([u8; 64]);
    let mut control = Control([0; 64]);
    let int = std::mem::size_of::<libc::c_int>() as u32;
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(int) } as _;
    // SAFETY: the control buffer is aligned for cmsghdr and larger than
    // CMSG_SPACE(sizeof(int)), so the header and its one int fit in it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(int) as _;
        libc::CMSG_DATA(header)
            .cast::<libc::c_int>()
            .write_unaligned(fd);
    }
    use std::os::fd::AsRawFd;
    // SAFETY: every pointer in `msg` is valid for the call, which only
    // reads them.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    assert_eq!(
        sent,
        data.len() as isize,
        "sendmsg: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn a_program_that_closes_its_inherited_fds_and_reports_on_the_socket_is_ready() {
    let _turn = serial();
    let s = Scratch::new("closes-fds");
    let (code, out) = run(
        example(&[
            "--",
            "/bin/sh",
            "-c",
            r#"eval "exec $TOKENPIPE_READY_FD>&-" || exit 99; systemd-notify --ready; sleep 1"#,
        ]),
        &s,
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_long_tmpdir_falls_back_to_a_directory_whose_paths_fit_a_socket_address() {
    let _turn = serial();
    let s = Scratch::new("tmpdir");
    let long = s.path(&"d".repeat(100));
    std::fs::create_dir_all(&long).unwrap();
    let mut cmd = example(&["--", "systemd-notify", "--ready"]);
    cmd.env("TMPDIR", &long).env_remove("XDG_RUNTIME_DIR");
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 0, "{out}");
}

// ---------------------------------------------------------------------
// MAINPID=: the daemon a program forked and announced.

#[test]
fn mainpid_from_a_privileged_or_related_sender_names_the_daemon() {
    let _turn = serial();
    let s = Scratch::new("mainpid");
    let script = format!(
        "sleep 30 & echo $! >{}; systemd-notify --ready --pid=$!",
        s.path("daemon.pid").display()
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &script]);
    let mut child = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let daemon = s.pid("daemon.pid");
    if cfg!(tokenpipe_force_no_pidfd) {
        // Built without pidfds (ci/no-pidfd.sh): MAINPID= is ignored, as
        // documented, since no pidfd could hold the daemon against the
        // reuse of its pid. The program as started stays the one watched
        // (the daemon goes with the scratch directory).
        assert_eq!(child.pid(), child.launched_pid());
        assert_ne!(child.pid(), daemon);
        assert_eq!(child.wait().unwrap(), ChildExit::Exited(0));
        return;
    }
    assert_eq!(child.pid(), daemon);
    assert_ne!(child.launched_pid(), daemon);
    child.kill(libc::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap(), ChildExit::Unknown);
    assert!(!alive(daemon));
}

#[test]
fn mainpid_naming_a_stranger_is_refused_from_an_unprivileged_sender() {
    let _turn = serial();
    let s = Scratch::new("mainpid-stranger");
    // Root is trusted with any MAINPID=, as systemd trusts it: run the
    // launcher (and so its senders) as nobody.
    // SAFETY: geteuid takes nothing.
    let as_nobody = unsafe { libc::geteuid() } == 0;
    let launcher = launch_example();
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(launcher.get_program()).args(launcher.get_args());
        c
    } else {
        launcher
    };
    let me = std::process::id().to_string();
    cmd.args([
        "--",
        "/bin/sh",
        "-c",
        &format!("echo $$ >&2; systemd-notify --ready --pid={me}; sleep 1"),
    ]);
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 0, "{out}");
    // The line names the program as started, not this test process.
    assert!(!out.contains(&format!("(pid {me})")), "{out}");
}

// ---------------------------------------------------------------------
// What the caller gets: stdio, errors, and never a zombie.

#[test]
fn piped_stdio_stays_open_after_the_verdict() {
    use std::io::Read;
    let _turn = serial();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; sleep 0.2; echo served"#,
    ])
    .stdout(Stdio::piped());
    let mut child = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let mut said = String::new();
    child
        .take_stdout()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert_eq!(said, "served\n");
    assert_eq!(child.wait().unwrap(), ChildExit::Exited(0));
}

#[test]
fn dropping_a_failed_launch_leaves_no_process_and_no_zombie() {
    let _turn = serial();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\000\005\000\000\000' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 30"#,
    ]);
    let pid = match launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    ) {
        Err(LaunchError::Failed { child, .. }) => child.pid(),
        other => panic!("{other:?}"),
    };
    // The error (and the child in it) is gone: killed and reaped.
    assert!(becomes_gone(pid), "pid {pid} left behind");
}

#[test]
fn a_failed_program_taken_out_of_the_error_runs_on() {
    let _turn = serial();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\000\005\000\000\000' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 30"#,
    ]);
    let err = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .unwrap_err();
    let mut child = err.into_child().expect("a failed launch holds its program");
    let pid = child.pid();
    assert!(alive(pid));
    child.kill(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap(), ChildExit::Signaled(libc::SIGKILL));
}

#[test]
fn a_dropped_ready_child_runs_on_and_is_reaped_when_it_ends() {
    let _turn = serial();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 0.5"#,
    ]);
    let child = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let pid = child.pid();
    drop(child);
    assert!(alive(pid), "dropping a ready program must not kill it");
    assert!(becomes_gone(pid), "pid {pid} left a zombie");
}

/// Run normally, this does nothing. Re-run by the case below with
/// `TOKENPIPE_TEST_ACT` set, under strace failing the first `clone3` (a
/// thread's creation) of every thread, it drops two ready programs that
/// still run, from a thread of its own whose first `clone3` is the reaper
/// thread's start; it prints whether the reaper started at the first drop
/// and which of the two were left once both had ended.
#[test]
fn child_mode_drops_two_running_ready_programs() {
    if std::env::var_os("TOKENPIPE_TEST_ACT").is_none() {
        return;
    }
    // A launch's notify socket is served by a thread of its own, started
    // at the first verdict: start it here, on this thread, so that the
    // dropping thread's first clone3 is the reaper's. (This program has
    // ended and been waited for: its drop starts no reaper.)
    for _ in 0..2 {
        // This thread's own first clone3 may be the failed one.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD""#]);
        let mut child = launch(
            &mut cmd,
            LaunchOptions::new().timeout(Duration::from_secs(20)),
        )
        .unwrap();
        child.wait().unwrap();
        drop(child);
        if notify_thread_runs() {
            break;
        }
    }
    assert!(notify_thread_runs(), "the notify thread did not start");
    // This thread's own first clone3 may be the failed one (where libtest
    // runs this test on a thread of its own): then the second start works.
    let start = || std::thread::Builder::new().spawn(drop_two_running_ready_programs);
    let worker = start().or_else(|_| start()).expect("a thread to drop from");
    worker.join().unwrap();
}

/// Whether this process runs the thread that serves kept notify sockets.
fn notify_thread_runs() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "tokenpipe-notif")
        })
}

fn drop_two_running_ready_programs() {
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    // Ready at once, then running for 2 s: still running when dropped.
    let launch_and_drop = || {
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 2"#,
        ]);
        let child = launch(
            &mut cmd,
            LaunchOptions::new().timeout(Duration::from_secs(20)),
        )
        .unwrap();
        let pid = child.pid();
        assert!(alive(pid), "pid {pid} ended before it was dropped");
        drop(child);
        pid
    };
    let before = threads();
    let first = launch_and_drop();
    println!("REAPER STARTED AT FIRST DROP {}", threads() > before);
    let second = launch_and_drop();
    // Each ends 2 s after its start; a zombie stays one (state Z), so the
    // wait is a bound on a hang, not a timing.
    let start = Instant::now();
    let left = loop {
        let left: Vec<_> = [first, second]
            .into_iter()
            .filter(|&pid| !gone(pid))
            .collect();
        if left.is_empty() || start.elapsed() > Duration::from_secs(15) {
            break left;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let left: Vec<String> = left
        .iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map_or("?", |(_, rest)| &rest[..1]);
            format!("pid {pid} in state {state}")
        })
        .collect();
    println!("LEFT {left:?}");
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
fn a_reaper_thread_that_could_not_start_starts_at_the_next_drop_and_reaps_both() {
    let _turn = serial();
    // Every thread's first clone3 (glibc's pthread_create; musl's makes a
    // thread with clone, and forks with fork) fails with EAGAIN, as at the
    // process's thread limit: strace counts each thread's calls apart, and
    // the child mode's dropping thread makes its first one for the
    // reaper. -f: strace follows threads only so.
    let thread_call = if cfg!(target_env = "musl") {
        "clone"
    } else {
        "clone3"
    };
    let inner = common::this_test_binary("child_mode_drops_two_running_ready_programs");
    let trace = format!("trace={thread_call}");
    let inject = format!("inject={thread_call}:error=EAGAIN:when=1");
    let mut cmd = strace(&["-f", "-o", "/dev/null", "-e", &trace, "-e", &inject]);
    cmd.arg(inner.get_program())
        .args(inner.get_args())
        .arg("--nocapture")
        .env("TOKENPIPE_TEST_ACT", "drop");
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // The fault hit the reaper's start, or this case proves nothing.
    assert!(
        text.contains("REAPER STARTED AT FIRST DROP false"),
        "the injected clone3 failure missed the reaper's start: {text}"
    );
    assert!(
        text.contains("LEFT []"),
        "after the reaper's first start failed, dropped programs were left: {text}"
    );
}

#[test]
fn a_reused_command_gets_an_error_that_says_so() {
    let _turn = serial();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD""#]);
    let mut first = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .unwrap();
    first.wait().unwrap();
    match launch(&mut cmd, LaunchOptions::new()) {
        Err(e @ LaunchError::CommandReused { .. }) => {
            assert!(e.to_string().contains("use a fresh Command"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_program_that_cannot_start_is_named_in_the_error() {
    let _turn = serial();
    let mut cmd = Command::new("/nonexistent/tokenpipe-daemon");
    let e = launch(&mut cmd, LaunchOptions::new()).unwrap_err();
    assert!(matches!(e, LaunchError::Spawn { .. }), "{e:?}");
    assert!(
        e.to_string().contains("/nonexistent/tokenpipe-daemon"),
        "{e}"
    );
}

#[test]
fn status_text_on_the_token_pipe_reaches_the_launcher() {
    let _turn = serial();
    // A program that reports through the pipe only, as a Notifier from
    // from_env does when this crate's launcher started it.
    let mut cmd = common::this_test_binary("child_mode_reports_on_the_pipe_with_status");
    cmd.env("TOKENPIPE_TEST_ACT", "fail").stdout(Stdio::null());
    match launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    ) {
        Err(e @ LaunchError::Failed { .. }) => {
            assert_eq!(e.status_text(), Some("cannot open the wallet"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Run normally, this does nothing; re-run with `TOKENPIPE_TEST_ACT`, it
/// reports on the token pipe with a status text first.
#[test]
fn child_mode_reports_on_the_pipe_with_status() {
    if std::env::var_os("TOKENPIPE_TEST_ACT").is_none() {
        return;
    }
    // SAFETY: only this test runs in this process, before any thread.
    unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    // SAFETY: as above; the fd is ours alone.
    let notifier = unsafe { Notifier::from_env() }.unwrap().expect("the pipe");
    notifier.status("cannot open the wallet").unwrap();
    notifier.failed(libc::ENOENT).unwrap();
}

#[test]
fn the_example_shows_the_status_a_daemon_sent_on_the_pipe() {
    let _turn = serial();
    let s = Scratch::new("status");
    let mut cmd = launch_example();
    cmd.arg("--")
        .args(example_words("ready_daemon"))
        .arg("--fail");
    let (code, out) = run(cmd, &s);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(r#"status: "initialising""#), "{out}");
}
