//! After the verdict, `ready::launch` goes on supervising the program it
//! started, as systemd supervises a `Type=notify` service: it hears what
//! the program says later (`next_notification`, `next_notification_or`
//! and, with tokio, `notified`), keeps its service watchdog (`SIGABRT` on
//! a missed ping, `SIGKILL` after the grace), follows a `MAINPID=` it
//! honours, and hands it listening sockets by socket activation, through
//! the launch's own `execve`, whose environment must be the one the
//! `Command` would have passed.
//!
//! The programs are `/bin/sh` scripts (reporting ready by hand on the
//! token pipe, or with `systemd-notify`), and this test binary re-run in
//! child mode (`child_mode_plays_a_service`, `TOKENPIPE_TEST_SERVICE`
//! naming the part) where a program must speak precisely, through
//! `Notifier` and `ListenFds`. A program that says more after ready waits
//! on its stdin (a pipe from the case) for the go-ahead, so what it says
//! later is said after the launch has returned; each ends when its stdin
//! does, so none outlives a test run that dies. Every wait is bounded
//! (a hang fails the case instead of hanging the run), no duration is
//! asserted but generous bounds, and every program is killed when its
//! case ends, pass or fail.
#![cfg(all(unix, feature = "std"))]
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::Scratch;
use tokenpipe::ChildExit;
use tokenpipe::ready::{
    LaunchError, LaunchOptions, ListenFds, Notification, Notifier, ReadyChild, launch,
};

/// One case at a time: the watchdog's cases keep 300 ms intervals, which
/// the other cases' programs starting on the same cores must not stretch.
static SERIAL: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The variable that makes this test binary play a service, and which.
const ROLE_ENV: &str = "TOKENPIPE_TEST_SERVICE";

/// How long any one wait of a case may take: far past what it needs, so
/// that only a hang reaches it.
const BOUND: Duration = Duration::from_secs(10);

/// How long a program has to report ready (a re-run test binary starts
/// slowly on a loaded machine or under an emulator).
const LAUNCH_BOUND: Duration = Duration::from_secs(30);

/// The watchdog interval of the cases that must see it fire or not.
const INTERVAL: Duration = Duration::from_millis(300);

/// A shell's report of ready on the token pipe, by hand. Through
/// `/dev/fd/N`, not `>&N`: dash takes one digit there, and the pipe's
/// number may have two.
const READY_BY_HAND: &str = r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD""#;

fn options() -> LaunchOptions {
    LaunchOptions::new().timeout(LAUNCH_BOUND)
}

/// `/bin/sh -c script`, its stdin a pipe from the case (`read _` waits on
/// it, and returns at its end).
fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]).stdin(Stdio::piped());
    cmd
}

/// This test binary, playing `role` (see `child_mode_plays_a_service`),
/// its stdin a pipe from the case.
fn service(role: &str) -> Command {
    let mut cmd = common::this_test_binary("child_mode_plays_a_service");
    cmd.arg("--quiet")
        .env(ROLE_ENV, role)
        .stdin(Stdio::piped())
        // Its own harness's lines would read as this run's results.
        .stdout(Stdio::null());
    cmd
}

/// A ready program, killed (with what the launch reaches of it) and
/// reaped in the background when the case lets go of it, pass or fail: a
/// ready `ReadyChild` dropped leaves its program running.
type Supervised = common::Guard<ReadyChild, fn(&mut ReadyChild)>;

fn killed_when_dropped(child: &mut ReadyChild) {
    child.kill_on_drop(true);
}

fn supervised(child: ReadyChild) -> Supervised {
    common::Guard::new(child, killed_when_dropped as fn(&mut ReadyChild))
}

fn launched(cmd: &mut Command, options: LaunchOptions) -> Supervised {
    match launch(cmd, options) {
        Ok(child) => supervised(child),
        Err(e) => panic!("the launch of {cmd:?} failed: {e}"),
    }
}

/// Tells a program waiting on its stdin to go on. The stdin is handed
/// back: the program reads its end when the case drops it.
fn go_ahead(child: &mut ReadyChild) -> ChildStdin {
    let mut stdin = child.take_stdin().expect("its stdin is piped");
    stdin.write_all(b"go\n").expect("the go-ahead is written");
    stdin
}

/// The next thing the program says, waiting at most [`BOUND`].
fn next(child: &mut ReadyChild) -> Option<Notification> {
    child
        .next_notification(BOUND)
        .unwrap_or_else(|e| panic!("next_notification failed: {e}"))
}

/// Everything the program says until it ends, in order, and how it ended.
/// An `Ok(None)` while it still runs is [`BOUND`] passing in silence: the
/// case fails.
fn said_until_end(child: &mut ReadyChild) -> (Vec<Notification>, ChildExit) {
    let mut said = Vec::new();
    while let Some(notification) = next(child) {
        said.push(notification);
    }
    match child.try_wait() {
        Ok(Some(exit)) => (said, exit),
        Ok(None) => panic!(
            "the program {} said nothing for {BOUND:?} and runs on; it had said {said:?}",
            child.pid()
        ),
        Err(e) => panic!("try_wait failed: {e}; it had said {said:?}"),
    }
}

/// How the program ends, looked at with `try_wait` (which keeps the
/// watchdog) for at most [`BOUND`].
fn ends(child: &mut ReadyChild) -> ChildExit {
    let start = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().expect("try_wait") {
            return exit;
        }
        assert!(
            start.elapsed() < BOUND,
            "the program {} still runs after {BOUND:?}",
            child.pid()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// `child.wait()`, bounded: should it block for twice [`BOUND`], a thread
/// of the case kills the program through a copy of its pidfd (never a
/// number someone else may have by then) and the case fails. Where there
/// is no pidfd (a build that forces none), `try_wait` is looked at instead.
fn wait_within_bound(child: &mut ReadyChild) -> ChildExit {
    let Some(pidfd) = child.pidfd() else {
        return ends(child);
    };
    let pidfd = pidfd.try_clone_to_owned().expect("a copy of the pidfd");
    let (done, stop) = mpsc::channel::<()>();
    let deadman = thread::spawn(move || {
        let fired = stop.recv_timeout(2 * BOUND) == Err(mpsc::RecvTimeoutError::Timeout);
        if fired {
            // SAFETY: pidfd_send_signal takes the pidfd's number, a signal,
            // a null siginfo and no flags; it touches no memory of ours.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
        fired
    });
    let exit = child.wait();
    drop(done);
    let fired = deadman.join().expect("the deadman thread");
    assert!(
        !fired,
        "wait() blocked for {:?}; the case killed the program",
        2 * BOUND
    );
    exit.expect("wait")
}

/// Kills the program and waits for it: it must die of `SIGKILL`, that is,
/// it was still running, not ended by the watchdog or anything else.
fn kill_running(child: &mut ReadyChild) {
    assert_eq!(child.try_wait().expect("try_wait"), None, "still running");
    child.kill(libc::SIGKILL).expect("kill");
    assert_eq!(wait_within_bound(child), ChildExit::Signaled(libc::SIGKILL));
}

/// The first line the program wrote to its piped stdout (written before it
/// reported ready, so there by the time the launch returns).
fn first_line(child: &mut ReadyChild) -> String {
    let stdout = child.take_stdout().expect("its stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("its stdout is read");
    assert!(line.ends_with('\n'), "a whole line: {line:?}");
    line.trim_end().to_owned()
}

/// The environment `pid` was started with, as its `execve` passed it.
fn environ(pid: libc::pid_t) -> BTreeMap<OsString, OsString> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/environ: {e}"));
    raw.split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let at = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
            let value = entry.get(at + 1..).unwrap_or_default();
            (
                std::ffi::OsStr::from_bytes(&entry[..at]).to_owned(),
                std::ffi::OsStr::from_bytes(value).to_owned(),
            )
        })
        .collect()
}

fn var<'a>(env: &'a BTreeMap<OsString, OsString>, name: &str) -> Option<&'a str> {
    env.get(&OsString::from(name)).and_then(|v| v.to_str())
}

/// What `/proc/PID/fd/N` shows for the socket `fd` refers to.
fn socket_link(fd: &impl AsRawFd) -> String {
    let id = common::identity(fd.as_raw_fd()).expect("an open socket");
    format!("socket:[{}]", id.ino)
}

/// `CLOCK_MONOTONIC` now, in microseconds.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is valid for writes of one timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) },
        0
    );
    u64::try_from(now.tv_sec).unwrap() * 1_000_000 + u64::try_from(now.tv_nsec).unwrap() / 1000
}

/// `systemd-notify`, which the cases that use it need; missing, they fail
/// naming it.
fn require_systemd_notify() {
    let found = Command::new("systemd-notify")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "systemd-notify is missing (Debian package systemd): this case runs it"
    );
}

// ---------------------------------------------------------------------
// The programs this test binary plays.

/// Run normally, this does nothing. Re-run by the cases below with
/// `TOKENPIPE_TEST_SERVICE` set, it is the launched program, playing the
/// part named there.
#[test]
fn child_mode_plays_a_service() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    // A watchdog's SIGABRT leaves no core file behind.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the one struct it is given.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    match role.as_str() {
        "speaks-after-ready" => {
            let notifier = socket_notifier();
            notifier.ready().unwrap();
            wait_for_go_ahead();
            notifier.status("serving").unwrap();
            notifier.reloading().unwrap();
            notifier.ready().unwrap();
            notifier.stopping().unwrap();
            notifier.notify_kv("ERRNO", "5").unwrap();
            notifier.notify_kv("X_MINE", "a").unwrap();
        }
        "pings" => {
            let interval = Notifier::watchdog_interval()
                .expect("WATCHDOG_USEC and WATCHDOG_PID are well formed")
                .expect("a watchdog meant for this process");
            let notifier = socket_notifier();
            notifier.ready().unwrap();
            thread::spawn(|| {
                until_let_go();
                std::process::exit(0);
            });
            loop {
                notifier.watchdog().unwrap();
                thread::sleep(interval / 4);
            }
        }
        "triggers" => {
            let notifier = socket_notifier();
            notifier.ready().unwrap();
            wait_for_go_ahead();
            notifier.watchdog_trigger().unwrap();
            until_let_go();
        }
        "shortens" => {
            let notifier = socket_notifier();
            notifier.ready().unwrap();
            wait_for_go_ahead();
            notifier.notify_kv("WATCHDOG_USEC", "300000").unwrap();
            until_let_go();
        }
        "names-main" => {
            // Its daemon: a child of the program, for the case to kill.
            let mut sleeper = Command::new("sleep")
                .arg("30")
                .stdin(Stdio::null())
                .spawn()
                .expect("sleep starts");
            let daemon = i32::try_from(sleeper.id()).unwrap();
            let me = i32::try_from(std::process::id()).unwrap();
            let launcher = i32::try_from(std::os::unix::process::parent_id()).unwrap();
            let notifier = socket_notifier();
            notifier.ready().unwrap();
            wait_for_go_ahead();
            // Never honoured: init, and the launcher itself. Then the
            // daemon, the program itself again, and the daemon once more.
            for pid in [1, launcher, daemon, me, daemon] {
                notifier.main_pid(pid).unwrap();
            }
            notifier.status("named").unwrap();
            until_let_go();
            // Killed by the case through MAINPID= by now, where that is
            // honoured; reaped here either way.
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
        "echoes" => {
            let me = std::process::id().to_string();
            let ready_fd: i32 = std::env::var("TOKENPIPE_READY_FD")
                .expect("TOKENPIPE_READY_FD")
                .parse()
                .expect("a number");
            assert!(
                ready_fd > 4,
                "the token pipe at {ready_fd}, among the sockets"
            );
            assert_eq!(std::env::var("LISTEN_PID").as_deref(), Ok(me.as_str()));
            assert_eq!(std::env::var("LISTEN_FDS").as_deref(), Ok("2"));
            assert_eq!(std::env::var("LISTEN_FDNAMES").as_deref(), Ok("a:b"));
            let sockets = ListenFds::take_owned().expect("the sockets handed over");
            // SAFETY: this process runs this one test (--exact, one test
            // thread), which has started no thread; the fd is ours alone.
            let notifier = unsafe { Notifier::from_env() }
                .expect("TOKENPIPE_READY_FD is good")
                .expect("a channel");
            assert!(!notifier.is_socket(), "the token pipe, offered first");
            notifier.ready().unwrap();
            for (fd, name) in sockets {
                let name = name.expect("named");
                let listener = UnixListener::from(fd);
                let (connection, _) = listener.accept().expect("a connection");
                connection.set_read_timeout(Some(BOUND)).unwrap();
                let mut line = String::new();
                BufReader::new(&connection).read_line(&mut line).unwrap();
                (&connection)
                    .write_all(format!("{name}:{line}").as_bytes())
                    .unwrap();
            }
        }
        "bursts-after-socket-ready" => {
            // READY=1 then at once 20 more datagrams: some reach the
            // socket before the launch's look that hears READY=1 ends.
            let notifier = socket_notifier();
            notifier.ready().unwrap();
            for i in 0..20 {
                notifier.status(&format!("s{i}")).unwrap();
            }
            until_let_go();
        }
        "bursts-after-pipe-ready" => {
            // Ready on the token pipe, then at once 20 datagrams on the
            // socket: the launch's look may read them with the token.
            let addr = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
            let socket = Notifier::from_socket(
                tokenpipe::ready::NotifyAddr::parse(addr.as_bytes())
                    .expect("NOTIFY_SOCKET is good"),
            );
            // SAFETY: this process runs this one test (--exact, one test
            // thread), which has started no thread.
            let pipe = unsafe { Notifier::from_env() }
                .expect("TOKENPIPE_READY_FD is good")
                .expect("a channel");
            assert!(!pipe.is_socket(), "the token pipe, offered first");
            pipe.ready().unwrap();
            for i in 0..20 {
                socket.status(&format!("s{i}")).unwrap();
            }
            until_let_go();
        }
        other => panic!("unknown role {other}"),
    }
}

/// The notify socket alone, as a program that speaks only systemd's
/// protocol: the token pipe, which `from_env` would take first, is not
/// taken.
fn socket_notifier() -> Notifier {
    // SAFETY: this process runs this one test (--exact, one test thread),
    // which has started no thread before this.
    unsafe { std::env::remove_var("TOKENPIPE_READY_FD") };
    // SAFETY: as above.
    let notifier = unsafe { Notifier::from_env() }
        .expect("NOTIFY_SOCKET is good")
        .expect("NOTIFY_SOCKET is set");
    assert!(notifier.is_socket());
    notifier
}

fn wait_for_go_ahead() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    assert_eq!(line, "go\n", "the case's go-ahead");
}

/// Until the case lets go of the program's stdin (or dies).
fn until_let_go() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

// ---------------------------------------------------------------------
// What the program says later.

#[test]
fn what_a_ready_program_says_later_arrives_whole_and_in_order_then_none_once_it_has_ended() {
    let _turn = turn();
    let mut child = launched(&mut service("speaks-after-ready"), options());
    assert_eq!(child.status_text(), None);
    let before = monotonic_usec();
    let _stdin = go_ahead(&mut child);
    assert_eq!(
        next(&mut child),
        Some(Notification::Status("serving".into()))
    );
    assert_eq!(child.status_text(), Some("serving"), "updated once taken");
    let Some(Notification::Reloading {
        monotonic_usec: Some(reloading_at),
    }) = next(&mut child)
    else {
        panic!("RELOADING=1 with its MONOTONIC_USEC= next");
    };
    let after = monotonic_usec();
    assert!(
        (before..=after).contains(&reloading_at),
        "MONOTONIC_USEC={reloading_at} is when it reloaded: between {before} and {after}"
    );
    let (rest, exit) = said_until_end(&mut child);
    assert_eq!(
        rest,
        [
            Notification::Ready,
            Notification::Stopping,
            Notification::Errno(5),
            Notification::Other("X_MINE=a".into()),
        ]
    );
    assert_eq!(exit, ChildExit::Exited(0));
    assert_eq!(child.status_text(), Some("serving"));
    // Ended and all taken: none at once, however long it may wait.
    let start = Instant::now();
    assert_eq!(
        child.next_notification(Duration::from_secs(3600)).unwrap(),
        None
    );
    assert!(start.elapsed() < BOUND);
}

/// Launches `role` 20 times (the race it catches is lost often, not
/// always) and takes the 20 `STATUS=s0`… it sends right after ready, in
/// order, each time.
fn twenty_statuses_said_right_after_ready(role: &str) {
    for _ in 0..20 {
        let mut child = launched(&mut service(role), options());
        for i in 0..20 {
            assert_eq!(
                next(&mut child),
                Some(Notification::Status(format!("s{i}"))),
                "{role}: the {i}th status said right after ready"
            );
        }
    }
}

#[test]
fn what_is_said_on_the_socket_right_after_ready_on_it_is_not_lost() {
    let _turn = turn();
    twenty_statuses_said_right_after_ready("bursts-after-socket-ready");
}

#[test]
fn what_is_said_on_the_socket_right_after_ready_on_the_pipe_is_not_lost() {
    let _turn = turn();
    twenty_statuses_said_right_after_ready("bursts-after-pipe-ready");
}

#[test]
fn next_notification_gives_none_when_its_timeout_passes_in_silence() {
    let _turn = turn();
    let mut child = launched(
        &mut sh(&format!("{READY_BY_HAND}; read _; exit 0")),
        options(),
    );
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    assert_eq!(child.next_notification(timeout).unwrap(), None);
    let waited = start.elapsed();
    assert!(
        waited >= timeout && waited < BOUND,
        "waited {waited:?} for {timeout:?}"
    );
    assert_eq!(child.next_notification(Duration::ZERO).unwrap(), None);
    assert_eq!(child.try_wait().unwrap(), None, "silent, not ended");
    // Let go, it ends: none at once, and how it ended.
    drop(child.take_stdin());
    let (said, exit) = said_until_end(&mut child);
    assert_eq!(said, []);
    assert_eq!(exit, ChildExit::Exited(0));
}

#[test]
fn a_readable_wake_fd_ends_next_notification_or_at_once_while_the_program_runs() {
    let _turn = turn();
    let mut child = launched(&mut sh(&format!("{READY_BY_HAND}; read _")), options());
    let (quiet, _quiet_peer) = UnixStream::pair().unwrap();
    let (wake, waker) = UnixStream::pair().unwrap();
    // Neither readable: the timeout ends the wait.
    let start = Instant::now();
    let got = child
        .next_notification_or(Duration::from_millis(200), &[quiet.as_fd(), wake.as_fd()])
        .unwrap();
    assert_eq!(got, None);
    assert!(start.elapsed() >= Duration::from_millis(200));
    // The second readable: an hour's wait ends at once.
    (&waker).write_all(b"!").unwrap();
    let start = Instant::now();
    let got = child
        .next_notification_or(Duration::from_secs(3600), &[quiet.as_fd(), wake.as_fd()])
        .unwrap();
    assert_eq!(got, None);
    assert!(start.elapsed() < BOUND, "woke after {:?}", start.elapsed());
    kill_running(&mut child);
}

#[test]
fn a_shell_scripts_systemd_notify_lines_after_ready_are_heard() {
    require_systemd_notify();
    let _turn = turn();
    // As root, systemd-notify sends in its parent's name: the launch hears
    // this user's senders, whoever they name.
    let script = "systemd-notify --ready; read _; \
                  systemd-notify STATUS=from-a-script; systemd-notify WATCHDOG=1; read _; exit 0";
    let mut child = launched(&mut sh(script), options());
    let stdin = go_ahead(&mut child);
    assert_eq!(
        next(&mut child),
        Some(Notification::Status("from-a-script".into()))
    );
    assert_eq!(next(&mut child), Some(Notification::Watchdog));
    drop(stdin);
    let (said, exit) = said_until_end(&mut child);
    assert_eq!(said, []);
    assert_eq!(exit, ChildExit::Exited(0));
    assert_eq!(child.status_text(), Some("from-a-script"));
}

// ---------------------------------------------------------------------
// The watchdog.

#[test]
fn a_program_that_pings_every_quarter_interval_is_never_aborted() {
    let _turn = turn();
    let mut child = launched(&mut service("pings"), options().watchdog(INTERVAL));
    let watch_for = 4 * INTERVAL;
    let start = Instant::now();
    let mut pings = 0;
    while let Some(left) = watch_for.checked_sub(start.elapsed()) {
        match child.next_notification(left).unwrap() {
            Some(Notification::Watchdog) => pings += 1,
            Some(other) => panic!("{other:?} after {pings} pings"),
            None => assert_eq!(
                child.try_wait().unwrap(),
                None,
                "the program ended after {pings} pings"
            ),
        }
    }
    assert!(pings >= 2, "{pings} pings in {watch_for:?}");
    assert!(!child.watchdog_expired());
    kill_running(&mut child);
    assert!(!child.watchdog_expired());
}

#[test]
fn a_program_that_stops_pinging_is_sent_sigabrt_and_the_watchdog_says_so() {
    let _turn = turn();
    let script = format!("ulimit -c 0; {READY_BY_HAND}; read _");
    let mut child = launched(&mut sh(&script), options().watchdog(INTERVAL));
    assert!(!child.watchdog_expired());
    // The blocking wait itself keeps the watchdog.
    assert_eq!(
        wait_within_bound(&mut child),
        ChildExit::Signaled(libc::SIGABRT)
    );
    assert!(child.watchdog_expired());
    let (said, _) = said_until_end(&mut child);
    assert_eq!(said, [Notification::WatchdogExpired]);
}

#[test]
fn a_program_that_ignores_sigabrt_is_killed_once_the_grace_has_passed() {
    let _turn = turn();
    let script = format!("trap '' ABRT; {READY_BY_HAND}; read _");
    let options = options().watchdog(INTERVAL).watchdog_grace(INTERVAL);
    let mut child = launched(&mut sh(&script), options);
    // try_wait keeps the watchdog too.
    assert_eq!(ends(&mut child), ChildExit::Signaled(libc::SIGKILL));
    assert!(child.watchdog_expired());
    let (said, _) = said_until_end(&mut child);
    assert_eq!(said, [Notification::WatchdogExpired]);
}

/// Launches `role` under a 60 s watchdog and lets it say `what`, which
/// must fire the watchdog long before the interval: it is handed out, then
/// the expiry it caused (the queue is taken before the expiry, so in that
/// order), and the program ends aborted. `next_notification` keeps the
/// watchdog.
fn the_watchdog_fires_on(role: &str, what: Notification) {
    let interval = Duration::from_secs(60);
    let mut child = launched(&mut service(role), options().watchdog(interval));
    let start = Instant::now();
    let _stdin = go_ahead(&mut child);
    let (said, exit) = said_until_end(&mut child);
    assert_eq!(said, [what, Notification::WatchdogExpired], "{role}");
    assert_eq!(exit, ChildExit::Signaled(libc::SIGABRT));
    assert!(child.watchdog_expired());
    assert!(
        start.elapsed() < interval / 2,
        "fired after {:?}",
        start.elapsed()
    );
}

#[test]
fn watchdog_trigger_fires_the_watchdog_at_once_however_long_the_interval() {
    let _turn = turn();
    the_watchdog_fires_on("triggers", Notification::WatchdogTrigger);
}

#[test]
fn the_programs_own_watchdog_usec_sets_a_shorter_interval() {
    let _turn = turn();
    the_watchdog_fires_on("shortens", Notification::WatchdogInterval(INTERVAL));
}

#[test]
fn the_program_is_told_the_interval_in_microseconds_and_its_own_pid_for_watchdog_and_sockets() {
    let _turn = turn();
    let s = Scratch::new("told");
    let socket = UnixListener::bind(s.path("web")).unwrap();
    let script = format!(
        "echo \"$WATCHDOG_USEC $WATCHDOG_PID $LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES\"; \
         {READY_BY_HAND}; read _"
    );
    let mut cmd = sh(&script);
    cmd.stdout(Stdio::piped());
    let options = options()
        .watchdog(Duration::from_millis(61_500))
        .listen(socket, "web");
    let mut child = launched(&mut cmd, options);
    let pid = child.pid();
    assert_eq!(
        first_line(&mut child),
        format!("61500000 {pid} {pid} {pid} 1 web")
    );
    kill_running(&mut child);
}

// ---------------------------------------------------------------------
// Socket activation.

#[test]
fn listening_sockets_sit_at_fds_3_and_4_named_in_order_with_the_token_pipe_above_them() {
    let _turn = turn();
    let s = Scratch::new("sockets");
    let a = UnixListener::bind(s.path("a")).unwrap();
    let b = UnixListener::bind(s.path("b")).unwrap();
    let (link_a, link_b) = (socket_link(&a), socket_link(&b));
    let script = format!(
        "echo \"$(readlink /proc/$$/fd/3) $(readlink /proc/$$/fd/4) $LISTEN_FDS $LISTEN_FDNAMES \
         $TOKENPIPE_READY_FD\"; {READY_BY_HAND}; read _"
    );
    let mut cmd = sh(&script);
    cmd.stdout(Stdio::piped());
    // The launch returns Ok: the report by hand on the pipe came through.
    let mut child = launched(&mut cmd, options().listen(a, "a").listen(b, "b"));
    let line = first_line(&mut child);
    let words: Vec<&str> = line.split(' ').collect();
    let [at_3, at_4, count, names, ready_fd] = words[..] else {
        panic!("the program said {line:?}");
    };
    assert_eq!((at_3, at_4), (link_a.as_str(), link_b.as_str()), "{line}");
    assert_eq!((count, names), ("2", "a:b"), "{line}");
    let ready_fd: i32 = ready_fd.parse().unwrap_or_else(|_| panic!("{line}"));
    assert!(ready_fd > 4, "the token pipe at {ready_fd}: {line}");
    kill_running(&mut child);
}

#[test]
fn a_connection_to_a_handed_over_socket_reaches_the_program() {
    let _turn = turn();
    let s = Scratch::new("echo");
    let a = UnixListener::bind(s.path("a")).unwrap();
    let b = UnixListener::bind(s.path("b")).unwrap();
    let options = options().listen(a, "a").listen(b, "b");
    let mut child = launched(&mut service("echoes"), options);
    for name in ["a", "b"] {
        let connection = UnixStream::connect(s.path(name)).expect("the socket listens");
        connection.set_read_timeout(Some(BOUND)).unwrap();
        (&connection)
            .write_all(format!("hello {name}\n").as_bytes())
            .unwrap();
        let mut reply = String::new();
        BufReader::new(&connection)
            .read_line(&mut reply)
            .expect("the program answers");
        assert_eq!(reply, format!("{name}:hello {name}\n"));
    }
    assert_eq!(wait_within_bound(&mut child), ChildExit::Exited(0));
}

#[test]
fn a_clone_of_the_options_hands_the_same_socket_to_a_second_program() {
    let _turn = turn();
    let s = Scratch::new("clone");
    let socket = UnixListener::bind(s.path("shared")).unwrap();
    let link = socket_link(&socket);
    let first = options().listen(socket, "shared");
    let second = first.clone();
    for options in [first, second] {
        let mut cmd = sh(&format!("readlink /proc/$$/fd/3; {READY_BY_HAND}; read _"));
        cmd.stdout(Stdio::piped());
        let mut child = launched(&mut cmd, options);
        assert_eq!(first_line(&mut child), link);
        kill_running(&mut child);
    }
}

#[test]
fn each_socket_name_systemd_refuses_is_a_launch_error_and_nothing_starts() {
    let _turn = turn();
    let s = Scratch::new("names");
    let marker = s.path("started");
    let script = format!("touch '{}'", marker.display());
    let long = "x".repeat(256);
    let bad = ["", ":", "a:b", "a b", "tab\there", "bell\u{7}", "é", &long];
    for (i, name) in bad.into_iter().enumerate() {
        let socket = UnixListener::bind(s.path(&format!("socket-{i}"))).unwrap();
        let good = UnixListener::bind(s.path(&format!("good-{i}"))).unwrap();
        // A good name first does not let a bad one through.
        let options = options().listen(good, "good").listen(socket, name);
        match launch(&mut sh(&script), options) {
            Err(LaunchError::Exec { program, problem }) => {
                assert_eq!(program, "/bin/sh", "{name:?}");
                assert!(problem.contains("socket name"), "{name:?}: {problem}");
            }
            Err(other) => panic!("{name:?}: {other}"),
            Ok(child) => {
                drop(supervised(child));
                panic!("{name:?} was taken");
            }
        }
    }
    // Had one been started, its touch would be done long before this.
    thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "a program was started");
}

// ---------------------------------------------------------------------
// The launch's own execve: the environment and the program.

/// The variables the launch sets itself (the token pipe, the socket and,
/// with the options that make it exec the program itself, the pid ones).
const THE_LAUNCHS: [&str; 7] = [
    "TOKENPIPE_READY_FD",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PID",
];

#[test]
fn the_own_execve_passes_the_commands_additions_and_removals_and_the_launchs_variables_win() {
    let _turn = turn();
    let ours: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    let removed = ours
        .keys()
        .find(|k| {
            *k != "PATH" && !THE_LAUNCHS.iter().any(|v| *k == *v) && !k.as_bytes().contains(&b'=')
        })
        .expect("this test's environment has a variable to remove")
        .clone();
    let mut cmd = sh(&format!("{READY_BY_HAND}; read _"));
    cmd.env("TOKENPIPE_TEST_SET", "by the Command")
        .env_remove(&removed)
        // The launch's own values win over the Command's.
        .env("WATCHDOG_USEC", "1")
        .env("WATCHDOG_PID", "1")
        .env("LISTEN_FDS", "9")
        .env("LISTEN_PID", "1");
    let mut child = launched(&mut cmd, options().watchdog(Duration::from_secs(60)));
    let pid = child.pid();
    let mut env = environ(pid);
    assert!(var(&env, "TOKENPIPE_READY_FD").is_some(), "{env:?}");
    assert!(var(&env, "NOTIFY_SOCKET").is_some(), "{env:?}");
    assert_eq!(var(&env, "WATCHDOG_USEC"), Some("60000000"));
    assert_eq!(var(&env, "WATCHDOG_PID"), Some(pid.to_string().as_str()));
    for name in THE_LAUNCHS {
        env.remove(&OsString::from(name));
    }
    let mut want = ours;
    want.retain(|k, _| *k != removed && !THE_LAUNCHS.iter().any(|v| *k == *v));
    want.insert("TOKENPIPE_TEST_SET".into(), "by the Command".into());
    assert_eq!(env, want, "the environment {removed:?} was removed from");
    kill_running(&mut child);
}

#[test]
fn the_own_execve_honours_env_clear() {
    let _turn = turn();
    let s = Scratch::new("cleared");
    let socket = UnixListener::bind(s.path("socket")).unwrap();
    // The longest name systemd takes.
    let name = "x".repeat(255);
    let mut cmd = sh(&format!("{READY_BY_HAND}; read _"));
    cmd.env_clear().env("ONLY", "this");
    let mut child = launched(&mut cmd, options().listen(socket, &name));
    let pid = child.pid().to_string();
    let env = environ(child.pid());
    let names: Vec<&str> = env.keys().map(|k| k.to_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "LISTEN_FDNAMES",
            "LISTEN_FDS",
            "LISTEN_PID",
            "NOTIFY_SOCKET",
            "ONLY",
            "TOKENPIPE_READY_FD"
        ],
        "{env:?}"
    );
    assert_eq!(var(&env, "ONLY"), Some("this"));
    assert_eq!(var(&env, "LISTEN_FDS"), Some("1"));
    assert_eq!(var(&env, "LISTEN_FDNAMES"), Some(name.as_str()));
    assert_eq!(var(&env, "LISTEN_PID"), Some(pid.as_str()));
    kill_running(&mut child);
}

#[test]
fn a_program_the_own_execve_cannot_find_is_a_spawn_error_with_enoent() {
    let _turn = turn();
    let s = Scratch::new("missing");
    let spare = UnixListener::bind(s.path("socket")).unwrap();
    let absolute = s.path("no-such-program");
    let cases = [
        (
            OsString::from("tokenpipe-test-no-such-program"),
            options().watchdog(Duration::from_secs(60)),
        ),
        (absolute.into_os_string(), options().listen(spare, "spare")),
    ];
    for (name, options) in cases {
        match launch(&mut Command::new(&name), options) {
            Err(LaunchError::Spawn { program, error }) => {
                assert_eq!(program, name);
                assert_eq!(
                    error.raw_os_error(),
                    Some(libc::ENOENT),
                    "{name:?}: {error}"
                );
            }
            Err(other) => panic!("{name:?}: {other}"),
            Ok(child) => {
                drop(supervised(child));
                panic!("{name:?} was started");
            }
        }
    }
}

#[test]
fn the_own_execve_looks_for_the_program_in_path_as_execvp_does() {
    let _turn = turn();
    // `sh`, in this process's PATH.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("{READY_BY_HAND}; read _")])
        .stdin(Stdio::piped());
    let mut child = launched(&mut cmd, options().watchdog(Duration::from_secs(60)));
    kill_running(&mut child);
    drop(child);
    // A script in the Command's own PATH, after an entry that does not
    // exist (skipped, as execvp skips it).
    let s = Scratch::new("path");
    let script = s.path("tokenpipe-test-service");
    std::fs::write(&script, format!("#!/bin/sh\n{READY_BY_HAND}\nread _\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("tokenpipe-test-service");
    cmd.env(
        "PATH",
        format!("{}:{}", s.path("absent").display(), s.dir().display()),
    )
    .stdin(Stdio::piped());
    let mut child = launched(&mut cmd, options().watchdog(Duration::from_secs(60)));
    kill_running(&mut child);
}

// ---------------------------------------------------------------------
// MAINPID= after ready.

#[test]
fn mainpid_after_ready_naming_a_child_of_the_program_moves_its_pid_and_others_are_not_heard() {
    let _turn = turn();
    let mut child = launched(&mut service("names-main"), options());
    let program = child.launched_pid();
    let stdin = go_ahead(&mut child);
    // MAINPID= is honoured only where a pidfd holds the process named.
    let honoured = child.pidfd().is_some();
    assert_eq!(honoured, !cfg!(tokenpipe_force_no_pidfd));
    if honoured {
        let Some(Notification::MainPid(daemon)) = next(&mut child) else {
            panic!("MAINPID= naming the program's daemon is heard, and nothing before it");
        };
        let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
        let ppid = stat.rsplit_once(") ").unwrap().1.split(' ').nth(1).unwrap();
        assert_eq!(ppid, program.to_string(), "a child of the program: {stat}");
        assert_eq!(child.pid(), daemon);
        assert_eq!(child.launched_pid(), program);
        assert_eq!(next(&mut child), Some(Notification::MainPid(program)));
        assert_eq!(
            child.pid(),
            program,
            "the program is the main process again"
        );
        assert_eq!(next(&mut child), Some(Notification::MainPid(daemon)));
        assert_eq!(child.pid(), daemon);
        // Nothing for MAINPID=1, nor for the launcher's own pid.
        assert_eq!(next(&mut child), Some(Notification::Status("named".into())));
        // The daemon is the service now: kill reaches it, and its end is
        // the end (its status is its parent's to know).
        child.kill(libc::SIGKILL).unwrap();
        let (said, exit) = said_until_end(&mut child);
        assert_eq!(said, []);
        assert_eq!(exit, ChildExit::Unknown);
    } else {
        // Without pidfds no other process is taken for the main one (the
        // program naming itself changes nothing, said or not).
        loop {
            match next(&mut child) {
                Some(Notification::MainPid(pid)) => {
                    assert_eq!(pid, program, "MAINPID= honoured without a pidfd");
                }
                Some(Notification::Status(text)) if text == "named" => break,
                other => panic!("{other:?} where STATUS=named was to come"),
            }
        }
        assert_eq!(child.pid(), program);
    }
    // The program as started ends when let go (or is killed by the guard).
    drop(stdin);
}

// ---------------------------------------------------------------------
// The same on tokio.

#[cfg(feature = "tokio")]
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Everything the program says until it ends, awaited with `notified`.
#[cfg(feature = "tokio")]
async fn notified_until_end(child: &mut ReadyChild) -> Vec<Notification> {
    let mut said = Vec::new();
    loop {
        match tokio::time::timeout(BOUND, child.notified()).await {
            Err(_) => panic!("nothing said for {BOUND:?} and not ended; it had said {said:?}"),
            Ok(Err(e)) => panic!("notified failed: {e}; it had said {said:?}"),
            Ok(Ok(Some(notification))) => said.push(notification),
            Ok(Ok(None)) => return said,
        }
    }
}

#[cfg(feature = "tokio")]
async fn exited_within_bound(child: &mut ReadyChild) -> ChildExit {
    tokio::time::timeout(BOUND, child.exited())
        .await
        .expect("the program ends")
        .expect("exited")
}

#[cfg(feature = "tokio")]
#[test]
fn notified_yields_the_same_later_notifications_on_a_current_thread_runtime() {
    use tokenpipe::ready::launch_async;
    let _turn = turn();
    current_thread_runtime().block_on(async {
        let mut cmd = service("speaks-after-ready");
        let mut child = match launch_async(&mut cmd, options()).await {
            Ok(child) => supervised(child),
            Err(e) => panic!("the launch failed: {e}"),
        };
        let _stdin = go_ahead(&mut child);
        let said = notified_until_end(&mut child).await;
        let [
            Notification::Status(status),
            Notification::Reloading {
                monotonic_usec: Some(_),
            },
            rest @ ..,
        ] = &said[..]
        else {
            panic!("{said:?}");
        };
        assert_eq!(status, "serving");
        assert_eq!(
            rest,
            [
                Notification::Ready,
                Notification::Stopping,
                Notification::Errno(5),
                Notification::Other("X_MINE=a".into()),
            ]
        );
        assert_eq!(child.status_text(), Some("serving"));
        assert_eq!(exited_within_bound(&mut child).await, ChildExit::Exited(0));
        assert_eq!(notified_until_end(&mut child).await, []);
    });
}

#[cfg(feature = "tokio")]
#[test]
fn notified_keeps_the_watchdog_and_yields_its_expiry() {
    use tokenpipe::ready::launch_async;
    let _turn = turn();
    current_thread_runtime().block_on(async {
        let mut cmd = sh(&format!("ulimit -c 0; {READY_BY_HAND}; read _"));
        let mut child = match launch_async(&mut cmd, options().watchdog(INTERVAL)).await {
            Ok(child) => supervised(child),
            Err(e) => panic!("the launch failed: {e}"),
        };
        let said = notified_until_end(&mut child).await;
        assert_eq!(said, [Notification::WatchdogExpired]);
        assert!(child.watchdog_expired());
        assert_eq!(
            exited_within_bound(&mut child).await,
            ChildExit::Signaled(libc::SIGABRT)
        );
    });
}
