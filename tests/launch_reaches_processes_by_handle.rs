//! `ready::launch` and the `launch` example reach the processes they mean
//! through handles, never through numbers that may name someone else by
//! now, hear each channel for what it is, and keep their bounds:
//!
//! - fd numbers: a launcher whose stdin and stdout are closed does not hand
//!   its program fd 1 as the token pipe (an `echo` is not a report) and can
//!   still detach it;
//! - pids and process groups: a program reaped by someone else, or a
//!   process group whose leader was reaped, is never signalled or waited
//!   for again once a stranger has its number (the stranger is forced onto
//!   the freed pid through `/proc/sys/kernel/ns_last_pid`); what a program
//!   leaves running in a session of its own is killed on timeout;
//! - `MAINPID=`: heard for a daemon whose parent has exited by the time
//!   the datagram is read, refused when it names the launcher, and the end
//!   of the process it names ends the launch;
//! - the socket: reachable by a program started as another user, alive
//!   for a `BARRIER=1` that comes late (under CPU load, or held back), and
//!   a failure on the pipe is not overtaken by `READY=1` on the socket;
//! - bounds: a program that `SIGKILL` cannot end (v1 freezer) is handed
//!   back within the kill bound however often `EINTR` comes, and a flood on
//!   the pipe or the socket does not hold the launch past its timeout.
//!
//! Each case fails, naming what is missing, where it needs root,
//! `ns_last_pid`, `systemd-notify`, strace or a v1 freezer cgroup. Cases
//! that change process-wide state (signal handlers, interval timers,
//! reaping others' children, closing stdio) re-run this binary in child
//! mode. Timings are never asserted: a launch that overstays a generous
//! bound is killed and the case fails saying so.
//!
//! They drive the machine's own kernel (its pid allocator, its freezer, CPU
//! load on every core, strace), so they run once, natively, in the main
//! test step on x86_64 Linux with glibc: not again for each target of
//! `ci/cross.sh`, where an emulator stands between them and the kernel and
//! the load cases alone would take most of the run.
#![cfg(all(unix, feature = "std"))]
#![cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]

mod common;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use common::{
    ChildProcess, CpuLoad, FreezerCgroup, Scratch, becomes_dead, example_words, fork_at_pid, gone,
    require_root, stat_fields, unharmed, zombie,
};
use tokenpipe::ChildExit;
use tokenpipe::ready::{AfterTimeout, LaunchError, LaunchOptions, ReadyChild, launch};

/// One launch at a time: several cases force pids, load the CPU or count
/// processes.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `launch` example with `args`.
fn example(args: &[&str]) -> Command {
    let words = example_words("launch");
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]).args(args);
    cmd
}

/// This binary re-run in child mode: only `test`, told `act`, writing its
/// verdict to `scratch`'s `verdict` file.
fn child_mode(test: &str, act: &str, scratch: &Scratch) -> Command {
    let mut cmd = common::this_test_binary(test);
    cmd.env("TOKENPIPE_TEST_ACT", act)
        .env("TOKENPIPE_TEST_VERDICT", scratch.path("verdict"));
    cmd
}

/// In child mode: the verdict, for the case that started it.
fn write_verdict(verdict: &str) {
    let path = std::env::var_os("TOKENPIPE_TEST_VERDICT").expect("where the verdict goes");
    std::fs::write(path, format!("{verdict}\n")).unwrap();
}

/// What a launch came to, in a few words a case can compare.
fn verdict_of(result: &Result<ReadyChild, LaunchError>) -> String {
    match result {
        Ok(_) => "ready".into(),
        Err(LaunchError::Failed { errno, .. }) => format!("failed {errno:?}"),
        Err(LaunchError::Exited { exit, .. }) => format!("exited {exit:?}"),
        Err(LaunchError::TimedOut { after, .. }) => match after {
            AfterTimeout::Killed(exit) => format!("timed out, killed {exit:?}"),
            AfterTimeout::AlreadyExited { exit, .. } => format!("timed out, had {exit:?}"),
            AfterTimeout::Running(_) => "timed out, running".into(),
            AfterTimeout::KillFailed { errno, .. } => format!("timed out, kill failed {errno:?}"),
            other => format!("timed out, {other:?}"),
        },
        Err(e) => format!("error: {e}"),
    }
}

/// A process this case started (a launcher, or this binary in child mode)
/// with its stdout and stderr in a file: continued, killed and reaped when
/// dropped, pass or fail (signalled by pid: it is our child, not yet
/// reaped). Unless the case chose one, its `TMPDIR` is the file's
/// directory, so that the socket directory of a launcher killed at a hang
/// bound goes with the case's scratch directory.
struct Running {
    child: std::process::Child,
    out: PathBuf,
    started: Instant,
    ended: Option<i32>,
}

impl Running {
    fn start(mut cmd: Command, out: PathBuf) -> Running {
        if !cmd.get_envs().any(|(name, _)| name == "TMPDIR")
            && let Some(dir) = out.parent()
        {
            cmd.env("TMPDIR", dir);
        }
        let file = File::create(&out).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Running {
            child,
            out,
            started,
            ended: None,
        }
    }

    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Whether it has ended (and been reaped); its exit code is kept, a
    /// signal as 128 + its number, as a shell shows it.
    fn has_ended(&mut self) -> bool {
        if self.ended.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.ended = Some(
                status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            );
        }
        self.ended.is_some()
    }

    /// Its exit code and output once it has ended. Past `bound` from its
    /// start it is killed and the case fails: `hang` says why that is a
    /// hang.
    fn finish_within(&mut self, bound: Duration, hang: &str) -> (i32, String) {
        while !self.has_ended() {
            if self.started.elapsed() > bound {
                self.stop();
                panic!(
                    "{hang}: it had not returned {bound:?} after it started, and was killed; \
                     its output: {}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (self.ended.unwrap_or(-1), self.output())
    }

    fn stop(&mut self) {
        if !self.has_ended() {
            // SAFETY: kill takes plain integers; the pid is our unreaped
            // child's. SIGCONT first: a case may have stopped it.
            unsafe { libc::kill(self.pid(), libc::SIGCONT) };
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.ended = Some(-1);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cmd` to its end, within `bound`; its exit code and output.
fn run_within(cmd: Command, scratch: &Scratch, bound: Duration, hang: &str) -> (i32, String) {
    Running::start(cmd, scratch.path("launch.out")).finish_within(bound, hang)
}

/// Runs this binary's child-mode `test` with `act` (and `envs`) to its
/// end, within `bound`, and returns its verdict.
fn child_verdict(test: &str, act: &str, envs: &[(&str, &str)], bound: Duration) -> String {
    let s = Scratch::new("child");
    let mut cmd = child_mode(test, act, &s);
    cmd.envs(envs.iter().copied());
    let (code, out) = run_within(cmd, &s, bound, &format!("{test} ({act})"));
    match std::fs::read_to_string(s.path("verdict")) {
        Ok(verdict) => verdict.trim().to_owned(),
        Err(_) => panic!("{test} ({act}) gave no verdict (exit {code}): {out}"),
    }
}

/// strace, to hold a program's system call back; a missing strace is an
/// error that names it.
fn strace_words() -> Vec<String> {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "strace is missing (Debian package strace): this case holds a system call back with it"
    );
    vec![
        "strace".into(),
        "-qq".into(),
        "-o".into(),
        "/dev/null".into(),
    ]
}

/// Fails, naming it, where `systemd-notify` is missing.
fn require_systemd_notify() {
    let found = Command::new("systemd-notify")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "systemd-notify is missing (Debian package systemd): this case sends with it"
    );
}

/// The session id of `pid`, from `/proc/PID/stat`.
fn session_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    stat_fields(&PathBuf::from(format!("/proc/{pid}/stat")))?
        .get(3)?
        .parse()
        .ok()
}

/// Whether `pid` is a child of this process that is still running:
/// `waitpid(WNOHANG)` says "not yet" (it neither reaps nor blocks).
fn still_our_running_child(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for one int.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 }
}

// ---------------------------------------------------------------------
// fd numbers: a launcher with stdin and stdout closed.

/// Run normally, this does nothing. Re-run with `TOKENPIPE_TEST_ACT`, it
/// is a launcher that has closed its stdin and stdout (std reopens them on
/// `/dev/null` before `main`, so a closed pair reaches the library only
/// when the program closes them itself, as this does).
#[test]
fn child_mode_launches_with_stdin_and_stdout_closed() {
    let Ok(act) = std::env::var("TOKENPIPE_TEST_ACT") else {
        return;
    };
    let options = LaunchOptions::new().timeout(Duration::from_secs(5));
    let (script, options) = match act.as_str() {
        "echo" => ("echo hi; exit 3", options),
        "detach" => ("exit 3", options.detach(true)),
        other => panic!("unknown act {other}"),
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    // SAFETY: closes our own stdin and stdout; std ignores writes to a
    // closed stdout, and the test's output is captured anyway.
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    let verdict = verdict_of(&launch(&mut cmd, options));
    // Whatever takes 0 and 1 next is not to receive the harness's lines.
    for fd in [0, 1] {
        if common::fd_flags(fd).is_err() {
            // SAFETY: a constant path; the fd it gives is the lowest free
            // one, which is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
    write_verdict(&verdict);
}

#[test]
fn a_launcher_with_stdin_and_stdout_closed_does_not_take_its_programs_echo_for_ready() {
    let _turn = serial();
    let verdict = child_verdict(
        "child_mode_launches_with_stdin_and_stdout_closed",
        "echo",
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(
        verdict, "exited Exited(3)",
        "`sh -c 'echo hi; exit 3'` launched with fds 0 and 1 closed: its echo must not be \
         read from the token pipe (handed over as fd 1)"
    );
}

#[test]
fn a_launcher_with_stdin_and_stdout_closed_can_detach_its_program() {
    let _turn = serial();
    let verdict = child_verdict(
        "child_mode_launches_with_stdin_and_stdout_closed",
        "detach",
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(
        verdict, "exited Exited(3)",
        "`sh -c 'exit 3'` launched detached with fds 0 and 1 closed"
    );
}

#[test]
fn the_example_started_with_stdin_and_stdout_closed_gives_the_same_verdicts() {
    let _turn = serial();
    let cases: [&[&str]; 2] = [
        &["--timeout", "5", "--", "/bin/sh", "-c", "echo hi; exit 3"],
        &[
            "--detach",
            "--timeout",
            "5",
            "--",
            "/bin/sh",
            "-c",
            "exit 3",
        ],
    ];
    for args in cases {
        let s = Scratch::new("closed-stdio");
        // Its line goes nowhere: the exit code speaks.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", r#"exec 0<&- 1>&-; exec "$@""#, "sh"])
            .args(example_words("launch"))
            .args(args);
        let (code, out) = run_within(cmd, &s, Duration::from_secs(20), "the launcher");
        assert_eq!(
            code, 2,
            "launch {args:?} with stdin and stdout closed: {out}"
        );
    }
}

// ---------------------------------------------------------------------
// MAINPID=.

#[test]
fn mainpid_from_a_program_that_exited_before_the_launcher_read_it_names_the_daemon() {
    require_root("the launcher is run as nobody (setpriv), so that its senders are not root");
    require_systemd_notify();
    let _turn = serial();
    let s = Scratch::new("mainpid-late");
    // Nobody writes the pid files here, and makes the socket under tmp.
    std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let tmp = s.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The program stops the launcher (as a busy machine would keep it from
    // running), announces its daemon and exits; the launcher goes on only
    // once the program is a zombie, so it reads MAINPID= after the exit.
    let script = format!(
        "echo $$ >{}; sleep 300 & echo $! >{}; kill -STOP $PPID; \
         systemd-notify --no-block --ready --pid=$!; exit 0",
        s.path("program").display(),
        s.path("daemon.pid").display()
    );
    let words = example_words("launch");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(&words)
        .args(["--timeout", "20", "--", "/bin/sh", "-c", &script])
        .env("TMPDIR", &tmp);
    let mut launcher = Running::start(cmd, s.path("launch.out"));
    let program = s.pid("program");
    let start = Instant::now();
    while !(zombie(program) || gone(program)) {
        assert!(
            start.elapsed() < Duration::from_secs(10) && !launcher.has_ended(),
            "the program {program} did not end: {}",
            launcher.output()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    common::kill(launcher.pid(), libc::SIGCONT);
    let (code, out) = launcher.finish_within(Duration::from_secs(20), "the launcher");
    let daemon = s.pid("daemon.pid");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("(pid {daemon}) is ready")),
        "the line names the program ({program}), not the daemon {daemon} its MAINPID= named: {out}"
    );
}

#[test]
fn mainpid_naming_the_launcher_itself_is_refused() {
    require_root("MAINPID= from a root sender is the case");
    require_systemd_notify();
    let _turn = serial();
    let s = Scratch::new("mainpid-launcher");
    let tmp = s.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let script = format!(
        "echo $$ >{}; systemd-notify --pid=$PPID; exec sleep 30",
        s.path("program.pid").display()
    );
    let mut cmd = example(&["--timeout", "2", "--", "/bin/sh", "-c", &script]);
    cmd.env("TMPDIR", &tmp);
    let (code, out) = run_within(
        cmd,
        &s,
        Duration::from_secs(10),
        "the launcher (timeout 2 s, kill bound 2 s)",
    );
    let program = s.pid("program.pid");
    assert_eq!(
        code, 3,
        "MAINPID= named the launcher (exit 137: it killed itself on timeout): {out}"
    );
    assert!(
        becomes_dead(program),
        "the program {program} runs on: {out}"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}: {out}");
}

#[test]
fn the_end_of_the_process_named_by_mainpid_ends_the_launch() {
    require_systemd_notify();
    let _turn = serial();
    let s = Scratch::new("mainpid-ends");
    let script = format!(
        "echo $$ >{}; sleep 1 & systemd-notify --pid=$!; exec sleep 300",
        s.path("program.pid").display()
    );
    let (code, out) = run_within(
        example(&["--timeout", "20", "--", "/bin/sh", "-c", &script]),
        &s,
        Duration::from_secs(10),
        "the launcher, whose MAINPID= process ended after 1 s (timeout 20 s)",
    );
    let program = s.pid("program.pid");
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("SIGCHLD"), "SIGCHLD is not to blame: {out}");
    assert!(
        becomes_dead(program),
        "the program {program} runs on: {out}"
    );
}

// ---------------------------------------------------------------------
// Process groups and what a program leaves running.

/// The script of a program that leaves a daemon in a session of its own
/// (holding the token pipe, so the launch waits) and exits.
fn leaves_a_setsid_daemon(s: &Scratch) -> String {
    format!(
        "echo $$ >{}; setsid sleep 300 </dev/null & echo $! >{}; exit 0",
        s.path("program").display(),
        s.path("daemon.pid").display()
    )
}

#[test]
fn a_detached_launch_that_times_out_kills_no_stranger_that_took_its_programs_group_id() {
    require_root("a pid is forced through /proc/sys/kernel/ns_last_pid");
    let _turn = serial();
    let s = Scratch::new("stranger-group");
    let script = leaves_a_setsid_daemon(&s);
    let mut launcher = Running::start(
        example(&["--detach", "--timeout", "3", "--", "/bin/sh", "-c", &script]),
        s.path("launch.out"),
    );
    let program = s.pid("program");
    let daemon = s.pid("daemon.pid");
    // Once the daemon has a session of its own and the program has been
    // reaped, a stranger takes the program's number, as its own process
    // group's id. (A launcher that keeps the program a zombie until the
    // timeout leaves no number to take: then there is no stranger.)
    let mut stranger = None;
    let start = Instant::now();
    while !launcher.has_ended() && start.elapsed() < Duration::from_secs(10) {
        if session_of(daemon) == Some(daemon) && gone(program) {
            let pid = fork_at_pid(program, true).unwrap_or_else(|| {
                panic!("pid {program} was taken by another process before the stranger")
            });
            stranger = Some(ChildProcess::new(pid));
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (code, out) = launcher.finish_within(
        Duration::from_secs(10),
        "the launcher (timeout 3 s, kill bound 2 s)",
    );
    assert_eq!(code, 3, "{out}");
    if let Some(stranger) = &stranger {
        assert!(
            unharmed(stranger.pid()),
            "a stranger at pid {program}, leading process group {program} after the program \
             was reaped, was killed by the timeout's kill(-{program}): {out}"
        );
    }
    assert!(
        becomes_dead(daemon),
        "the daemon {daemon} the program left in a session of its own runs on: {out}"
    );
}

#[test]
fn a_launch_that_times_out_kills_the_daemon_its_program_left_in_a_session_of_its_own() {
    let _turn = serial();
    let s = Scratch::new("setsid-daemon");
    let script = leaves_a_setsid_daemon(&s);
    let (code, out) = run_within(
        example(&["--timeout", "2", "--", "/bin/sh", "-c", &script]),
        &s,
        Duration::from_secs(10),
        "the launcher (timeout 2 s, kill bound 2 s)",
    );
    let daemon = s.pid("daemon.pid");
    assert_eq!(code, 3, "{out}");
    assert!(
        becomes_dead(daemon),
        "the daemon {daemon} the program left in a session of its own runs on: {out}"
    );
}

#[test]
fn dropping_a_detached_failure_after_waiting_for_it_kills_no_stranger_in_its_old_group() {
    require_root("a pid is forced through /proc/sys/kernel/ns_last_pid");
    let _turn = serial();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\000' >"/dev/fd/$TOKENPIPE_READY_FD"; exit 0"#,
    ]);
    let mut err = launch(
        &mut cmd,
        LaunchOptions::new()
            .detach(true)
            .timeout(Duration::from_secs(20)),
    )
    .expect_err("the program reported failure");
    let pid = match &mut err {
        LaunchError::Failed { child, .. } => {
            assert_eq!(child.wait().unwrap(), ChildExit::Exited(0));
            child.launched_pid()
        }
        other => panic!("{other:?}"),
    };
    let start = Instant::now();
    while !gone(pid) {
        assert!(start.elapsed() < Duration::from_secs(10), "{pid} not gone");
        std::thread::sleep(Duration::from_millis(2));
    }
    let stranger = ChildProcess::new(
        fork_at_pid(pid, true)
            .unwrap_or_else(|| panic!("pid {pid} was taken by another process first")),
    );
    drop(err);
    assert!(
        unharmed(stranger.pid()),
        "dropping the error killed process group {pid}, led by a stranger since the program \
         was waited for"
    );
}

// ---------------------------------------------------------------------
// A program reaped behind the launcher's back.

/// Run normally, this does nothing. Re-run with `TOKENPIPE_TEST_ACT`, it
/// launches a program that reports ready, reaps it itself (as a
/// `waitpid(-1)` loop elsewhere in a program would), forks a stranger onto
/// its pid, and then waits for (`wait`) or drops (`drop`) the `ReadyChild`.
#[test]
fn child_mode_reaps_the_program_behind_the_launchers_back() {
    let Ok(act) = std::env::var("TOKENPIPE_TEST_ACT") else {
        return;
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 0.2"#,
    ]);
    let child = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .expect("the program reported ready");
    let pid = child.pid();
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for one int.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let stranger = ChildProcess::new(fork_at_pid(pid, false).expect("a stranger at the pid"));
    let verdict = match act.as_str() {
        "wait" => wait_past_an_outside_reap(child, &stranger),
        "drop" => drop_past_an_outside_reap(child, &stranger),
        other => panic!("unknown act {other}"),
    };
    write_verdict(&verdict);
}

fn wait_past_an_outside_reap(child: ReadyChild, stranger: &ChildProcess) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    // Not joined: a wait that never returns ends with this process.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(format!("{:?}", child.wait()));
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(got) => {
            let ours = still_our_running_child(stranger.pid());
            format!(
                "wait returned {got}; the stranger is {}",
                if ours { "still ours" } else { "reaped" }
            )
        }
        Err(_) => {
            common::kill(stranger.pid(), libc::SIGKILL);
            let then = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| "nothing".into());
            format!(
                "wait had not returned 5 s after the program was reaped elsewhere; once the \
                 stranger at its pid was killed it returned {then}"
            )
        }
    }
}

fn drop_past_an_outside_reap(child: ReadyChild, stranger: &ChildProcess) -> String {
    drop(child);
    let before = reaper_ticks();
    std::thread::sleep(Duration::from_millis(1500));
    let burned = reaper_ticks().saturating_sub(before);
    let ours = still_our_running_child(stranger.pid());
    format!(
        "ticks {burned}; the stranger is {}",
        if ours { "still ours" } else { "reaped" }
    )
}

/// The CPU time (utime + stime, in clock ticks) of this process's
/// `tokenpipe-reaper` thread; 0 where there is none.
fn reaper_ticks() -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        // The name is cut to 15 bytes: "tokenpipe-reape".
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("tokenpipe-reap")
            && let Some(fields) = stat_fields(&task.path().join("stat"))
        {
            // utime and stime: fields 14 and 15, 11 and 12 after the name.
            ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        }
    }
    ticks
}

#[test]
fn waiting_for_a_program_reaped_elsewhere_does_not_collect_the_stranger_at_its_pid() {
    require_root("a pid is forced through /proc/sys/kernel/ns_last_pid");
    let _turn = serial();
    let verdict = child_verdict(
        "child_mode_reaps_the_program_behind_the_launchers_back",
        "wait",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(
        verdict,
        "wait returned Ok(Unknown); the stranger is still ours"
    );
}

#[test]
fn dropping_a_program_reaped_elsewhere_leaves_the_reaper_idle_and_the_stranger_alone() {
    require_root("a pid is forced through /proc/sys/kernel/ns_last_pid");
    let _turn = serial();
    let verdict = child_verdict(
        "child_mode_reaps_the_program_behind_the_launchers_back",
        "drop",
        &[],
        Duration::from_secs(30),
    );
    let (ticks, rest) = verdict
        .strip_prefix("ticks ")
        .and_then(|v| v.split_once(';'))
        .unwrap_or_else(|| panic!("{verdict}"));
    let ticks: u64 = ticks.parse().unwrap();
    assert!(
        ticks < 20,
        "the reaper thread used {ticks} clock ticks of CPU in 1.5 s: it spins on the readable \
         pidfd of a program reaped elsewhere ({verdict})"
    );
    assert_eq!(rest, " the stranger is still ours", "{verdict}");
}

// ---------------------------------------------------------------------
// The kill bound, whatever EINTR does.

/// The thread whose `poll` the `SIGALRM`s are to interrupt.
static LAUNCH_THREAD: AtomicI32 = AtomicI32::new(0);

/// Sends a `SIGALRM` that landed on another thread on to the launching one.
extern "C" fn alarm_to_the_launching_thread(_: libc::c_int) {
    let saved = common::get_errno();
    let target = LAUNCH_THREAD.load(Ordering::Relaxed);
    // SAFETY: gettid, getpid and tgkill are plain system calls,
    // async-signal-safe, touching no memory.
    unsafe {
        if libc::syscall(libc::SYS_gettid) as i32 != target {
            libc::syscall(libc::SYS_tgkill, libc::getpid(), target, libc::SIGALRM);
        }
    }
    common::set_errno(saved);
}

/// Run normally, this does nothing. Re-run with `TOKENPIPE_TEST_ACT`
/// (`restart` or `no-restart`: the handler's `SA_RESTART`), it launches
/// `sh` with timeout 1 s under a 300 ms `ITIMER_REAL`, every `SIGALRM`
/// interrupting the launching thread; the case freezes the program.
#[test]
fn child_mode_launches_under_an_interval_timer() {
    let Ok(act) = std::env::var("TOKENPIPE_TEST_ACT") else {
        return;
    };
    let flags = match act.as_str() {
        "restart" => libc::SA_RESTART,
        "no-restart" => 0,
        other => panic!("unknown act {other}"),
    };
    LAUNCH_THREAD.store(
        // SAFETY: gettid takes nothing.
        unsafe { libc::syscall(libc::SYS_gettid) } as i32,
        Ordering::Relaxed,
    );
    // SAFETY: a zeroed sigaction is a valid start; the handler is an
    // extern "C" fn that makes only async-signal-safe calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = alarm_to_the_launching_thread as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = flags;
        assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
    }
    let every = libc::timeval {
        tv_sec: 0,
        tv_usec: 300_000,
    };
    let timer = |t: libc::timeval| {
        let spec = libc::itimerval {
            it_interval: t,
            it_value: t,
        };
        // SAFETY: `spec` is a valid itimerval; the old value is not asked.
        assert_eq!(
            unsafe { libc::setitimer(libc::ITIMER_REAL, &spec, std::ptr::null_mut()) },
            0
        );
    };
    timer(every);
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"echo $$ >"$TOKENPIPE_TEST_PIDFILE"; exec sleep 300"#,
    ]);
    let result = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(1)),
    );
    timer(libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    });
    write_verdict(&verdict_of(&result));
}

/// Launches a program that the case freezes (v1 freezer: `SIGKILL` does
/// not end it) from this binary in child mode, under a 300 ms interval
/// timer whose handler has `act`'s `SA_RESTART`; the launch must hand it
/// back (timed out, kill failed) within timeout + kill bound, with room.
fn frozen_program_is_handed_back_under_an_interval_timer(act: &str) {
    require_root("the program is frozen in a v1 freezer cgroup");
    let _turn = serial();
    let s = Scratch::new("frozen");
    let freezer = FreezerCgroup::new("frozen");
    let mut cmd = child_mode("child_mode_launches_under_an_interval_timer", act, &s);
    cmd.env("TOKENPIPE_TEST_PIDFILE", s.path("program.pid"));
    let mut launcher = Running::start(cmd, s.path("launch.out"));
    let program = s.pid("program.pid");
    freezer.freeze(program);
    let (code, out) = launcher.finish_within(
        Duration::from_secs(8),
        &format!(
            "launch of a frozen program (timeout 1 s, kill bound 2 s, SIGALRM every 300 ms, \
             handler {act})"
        ),
    );
    let verdict = std::fs::read_to_string(s.path("verdict"))
        .unwrap_or_else(|_| panic!("no verdict (exit {code}): {out}"));
    assert!(
        verdict.starts_with("timed out, kill failed"),
        "handler {act}: {verdict} {out}"
    );
}

#[test]
fn a_program_sigkill_cannot_end_is_handed_back_within_the_kill_bound_however_often_eintr_comes() {
    frozen_program_is_handed_back_under_an_interval_timer("no-restart");
}

#[test]
fn a_program_sigkill_cannot_end_is_handed_back_within_the_kill_bound_under_a_restarting_handler() {
    frozen_program_is_handed_back_under_an_interval_timer("restart");
}

// ---------------------------------------------------------------------
// The socket: reachable, and alive for a late barrier.

#[test]
fn a_program_started_as_another_user_reaches_the_notify_socket() {
    require_root("the program is started as nobody (Command::uid and gid)");
    require_systemd_notify();
    let _turn = serial();
    for args in [&["--ready"][..], &["--ready", "--no-block"]] {
        let s = Scratch::new("as-nobody");
        let mut cmd = Command::new("systemd-notify");
        cmd.args(args)
            .uid(65534)
            .gid(65534)
            .stderr(File::create(s.path("stderr")).unwrap());
        let result = launch(
            &mut cmd,
            LaunchOptions::new().timeout(Duration::from_secs(5)),
        );
        let said = std::fs::read_to_string(s.path("stderr")).unwrap_or_default();
        match result {
            Ok(mut child) => {
                let _ = child.wait();
            }
            other => panic!(
                "systemd-notify {args:?} as uid 65534: {} ({said})",
                verdict_of(&other)
            ),
        }
    }
}

/// Loads every core with busy threads (24 a core), for at most 2 minutes.
fn load_every_core() -> CpuLoad {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    CpuLoad::start(24 * cores, Duration::from_secs(120))
}

/// A program that reports with `systemd-notify --ready` (READY=1, then
/// BARRIER=1) and writes its exit code to `rc`.
fn notifies_ready(s: &Scratch, notify: &str) -> String {
    format!(
        "echo $$ >{}; {notify}; echo $? >{}; exec sleep 2",
        s.path("program.pid").display(),
        s.path("rc").display()
    )
}

#[test]
fn systemd_notify_gets_its_barrier_completed_under_cpu_load_through_the_example() {
    require_systemd_notify();
    let _turn = serial();
    let _load = load_every_core();
    let mut failures = Vec::new();
    for run in 0..30 {
        let s = Scratch::new("barrier-load");
        let script = notifies_ready(&s, "systemd-notify --ready");
        let (code, _) = run_within(
            example(&["--timeout", "20", "--", "/bin/sh", "-c", &script]),
            &s,
            Duration::from_secs(60),
            "the launcher",
        );
        let rc = s.text("rc");
        if code != 0 || rc != "0" {
            let out = std::fs::read_to_string(s.path("launch.out")).unwrap_or_default();
            failures.push(format!(
                "run {run}: exit {code}, systemd-notify {rc}: {out}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 30 failed: {failures:#?}",
        failures.len()
    );
}

#[test]
fn systemd_notify_gets_its_barrier_completed_under_cpu_load_through_the_library() {
    require_systemd_notify();
    let _turn = serial();
    let _load = load_every_core();
    let mut failures = Vec::new();
    for run in 0..30 {
        let s = Scratch::new("barrier-load-lib");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &notifies_ready(&s, "systemd-notify --ready")])
            .stderr(File::create(s.path("stderr")).unwrap());
        match launch(
            &mut cmd,
            LaunchOptions::new().timeout(Duration::from_secs(20)),
        ) {
            Ok(mut child) => {
                // The ready child is held while systemd-notify finishes.
                let rc = s.text("rc");
                if rc != "0" {
                    let said = std::fs::read_to_string(s.path("stderr")).unwrap_or_default();
                    failures.push(format!("run {run}: systemd-notify {rc}: {said}"));
                }
                let _ = child.kill(libc::SIGKILL);
                let _ = child.wait();
            }
            Err(e) => failures.push(format!("run {run}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 30 failed: {failures:#?}",
        failures.len()
    );
}

/// `systemd-notify --ready` with its second `sendmsg` (the barrier) held
/// back 300 ms by strace, as a descheduled sender would be.
fn late_barrier() -> String {
    let mut words = strace_words();
    words.extend(
        [
            "-e",
            "trace=sendmsg",
            "-e",
            "inject=sendmsg:delay_enter=300000:when=2",
            "systemd-notify",
            "--ready",
        ]
        .map(String::from),
    );
    words.join(" ")
}

#[test]
fn a_barrier_sent_late_is_completed_through_the_example() {
    require_systemd_notify();
    let _turn = serial();
    let s = Scratch::new("barrier-late");
    let script = notifies_ready(&s, &late_barrier());
    let (code, _) = run_within(
        example(&["--timeout", "20", "--", "/bin/sh", "-c", &script]),
        &s,
        Duration::from_secs(30),
        "the launcher",
    );
    let rc = s.text("rc");
    let out = std::fs::read_to_string(s.path("launch.out")).unwrap_or_default();
    assert_eq!((code, rc.as_str()), (0, "0"), "{out}");
}

#[test]
fn a_barrier_sent_late_is_completed_while_the_ready_child_is_held() {
    require_systemd_notify();
    let _turn = serial();
    let s = Scratch::new("barrier-late-lib");
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &notifies_ready(&s, &late_barrier())])
        .stderr(File::create(s.path("stderr")).unwrap());
    let mut child = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(20)),
    )
    .expect("the program reported ready");
    let rc = s.text("rc");
    let said = std::fs::read_to_string(s.path("stderr")).unwrap_or_default();
    let _ = child.kill(libc::SIGKILL);
    let _ = child.wait();
    assert_eq!(rc, "0", "systemd-notify: {said}");
}

// ---------------------------------------------------------------------
// Order between channels.

#[test]
fn a_failure_on_the_pipe_followed_at_once_by_ready_on_the_socket_is_a_failure() {
    require_systemd_notify();
    let _turn = serial();
    let mut failures = Vec::new();
    for run in 0..20 {
        let s = Scratch::new("pipe-then-socket");
        // The launcher is stopped while both reports are sent, failure on
        // the pipe first, so that both wait for it when it looks.
        let script = format!(
            r#"echo $$ >{}; kill -STOP $PPID; printf '\000' >"/dev/fd/$TOKENPIPE_READY_FD"; systemd-notify --no-block --ready; kill -CONT $PPID; exec sleep 5"#,
            s.path("program.pid").display()
        );
        let (code, out) = run_within(
            example(&["--timeout", "10", "--", "/bin/sh", "-c", &script]),
            &s,
            Duration::from_secs(30),
            "the launcher",
        );
        if code != 1 {
            failures.push(format!("run {run}: exit {code}: {out}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 20 were not failures: {failures:#?}",
        failures.len()
    );
}

// ---------------------------------------------------------------------
// Floods.

#[test]
fn a_program_flooding_the_token_pipe_does_not_hold_the_launch_past_its_timeout() {
    let _turn = serial();
    let s = Scratch::new("pipe-flood");
    // Bytes that are no token, as fast as tr writes them.
    let script = format!(
        r#"echo $$ >{}; exec tr '\000' x </dev/zero >"/dev/fd/$TOKENPIPE_READY_FD""#,
        s.path("program.pid").display()
    );
    let (code, out) = run_within(
        example(&["--timeout", "1", "--", "/bin/sh", "-c", &script]),
        &s,
        Duration::from_secs(8),
        "the launcher of a program flooding the token pipe (timeout 1 s, kill bound 2 s)",
    );
    assert_eq!(code, 3, "{out}");
}

/// Run normally, this does nothing. Re-run with `TOKENPIPE_TEST_ACT` as a
/// launched program, it floods `NOTIFY_SOCKET` with `STATUS=` datagrams
/// from two threads, without end (at most a minute), and never reports.
#[test]
fn child_mode_floods_the_notify_socket() {
    if std::env::var_os("TOKENPIPE_TEST_ACT").is_none() {
        return;
    }
    let addr = std::env::var_os("NOTIFY_SOCKET").expect("NOTIFY_SOCKET");
    std::fs::write(
        std::env::var_os("TOKENPIPE_TEST_PIDFILE").expect("where my pid goes"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let datagram = "STATUS=x\n".repeat(4096 / 9);
    let start = Instant::now();
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (addr, datagram) = (addr.clone(), datagram.clone());
            std::thread::spawn(move || {
                let socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
                socket.set_nonblocking(true).unwrap();
                while start.elapsed() < Duration::from_secs(60) {
                    let _ = socket.send_to(datagram.as_bytes(), &addr);
                }
            })
        })
        .collect();
    for sender in senders {
        let _ = sender.join();
    }
}

#[test]
fn a_program_flooding_the_notify_socket_does_not_hold_the_launch_past_its_timeout() {
    let _turn = serial();
    let s = Scratch::new("socket-flood");
    let program = child_mode("child_mode_floods_the_notify_socket", "flood", &s);
    let mut cmd = example(&["--timeout", "1", "--"]);
    cmd.arg(program.get_program())
        .args(program.get_args())
        .env("TOKENPIPE_TEST_ACT", "flood")
        .env("TOKENPIPE_TEST_PIDFILE", s.path("program.pid"));
    let (code, out) = run_within(
        cmd,
        &s,
        Duration::from_secs(5),
        "the launcher of a program flooding the notify socket (timeout 1 s, kill bound 2 s)",
    );
    assert_eq!(code, 3, "{out}");
}

/// Run normally, this does nothing. Re-run with `TOKENPIPE_TEST_ACT` (and
/// `TMPDIR` a scratch directory), it launches a program that reports ready,
/// uses up every fd it may open (its limit lowered to 256 first), and lets
/// go of the launch (whose socket lives as long as it) while none is left;
/// then frees them and writes the verdict.
#[test]
fn child_mode_lets_go_of_a_launch_with_the_fd_table_full() {
    if std::env::var_os("TOKENPIPE_TEST_ACT").is_none() {
        return;
    }
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: a valid rlimit for the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD"; exec sleep 5"#,
    ]);
    let result = launch(
        &mut cmd,
        LaunchOptions::new().timeout(Duration::from_secs(10)),
    );
    let verdict = verdict_of(&result);
    if let Ok(child) = &result {
        let _ = child.kill(libc::SIGKILL);
    }
    let mut taken = Vec::new();
    loop {
        // SAFETY: a constant path; the fd is ours and closed below.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            break;
        }
        taken.push(fd);
    }
    // With no fd to spare: the socket and its directory go here.
    drop(result);
    for fd in taken {
        // SAFETY: each was opened above and is closed once.
        unsafe { libc::close(fd) };
    }
    write_verdict(&verdict);
}

#[test]
fn a_launch_let_go_of_with_the_fd_table_full_leaves_no_socket_directory() {
    let _turn = serial();
    let s = Scratch::new("fd-table-full");
    let tmp = s.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = child_mode(
        "child_mode_lets_go_of_a_launch_with_the_fd_table_full",
        "fill",
        &s,
    );
    cmd.env("TMPDIR", &tmp);
    let (code, out) = run_within(
        cmd,
        &s,
        Duration::from_secs(30),
        "a launcher whose fd table is full when it lets go of its launch",
    );
    let verdict = std::fs::read_to_string(s.path("verdict"))
        .unwrap_or_else(|_| panic!("no verdict (exit {code}): {out}"));
    assert_eq!(verdict.trim(), "ready", "{out}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the socket's directory was left behind: {left:?} (removing it must need no fd)"
    );
}
