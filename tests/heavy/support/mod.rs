//! Helpers shared by the `async_*` tests: shell programs, bounded waits,
//! and the checks that a launched program is gone (killed and reaped) and
//! left no socket behind.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Longer than anything here should take, even under qemu; only a hang
/// reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long a killed program may take to be reaped by the crate's reaper
/// thread.
pub const GONE_WITHIN: Duration = Duration::from_secs(5);

/// Whether the tests run under an emulator (ci/qemu.toml sets this).
pub fn under_emulator() -> Option<String> {
    std::env::var("TOKENPIPE_TEST_RUNNER")
        .ok()
        .filter(|r| !r.is_empty())
}

pub fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    cmd
}

/// A tool the tests run, or a failure naming it (never a silent skip).
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()));
    assert!(found, "the tests need `{name}` on PATH; install it");
}

/// Shell that reports ready on the token pipe.
pub const PIPE_READY: &str = r#"printf '\001' >"/dev/fd/$TOKENPIPE_READY_FD""#;

/// Shell that reports failure with `errno` on the token pipe: token 0 and
/// the errno's native-endian bytes, in one `write` (printf's one flush).
pub fn pipe_failed(errno: i32) -> String {
    let bytes: String = errno
        .to_ne_bytes()
        .iter()
        .map(|b| format!("\\{b:03o}"))
        .collect();
    format!(r#"printf '\000{bytes}' >"/dev/fd/$TOKENPIPE_READY_FD""#)
}

/// A private directory for one test's files, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("tokenpipe-async-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fut`, or a failure naming `what` once [`PATIENCE`] has passed.
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {PATIENCE:?}"),
    }
}

/// Waits (on the runtime) until `path` holds a complete line, and returns
/// it without the newline.
pub async fn line_in(path: &Path) -> String {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(line) = text.strip_suffix('\n')
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < until,
            "{} was never written within {PATIENCE:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn pid_in(path: &Path) -> libc::pid_t {
    let line = line_in(path).await;
    line.parse()
        .unwrap_or_else(|_| panic!("{} holds {line:?}, not a pid", path.display()))
}

/// `kill(pid, 0)`'s errno, or `None` if the signal could be sent (the
/// process exists, perhaps as a zombie).
pub fn probe(pid: libc::pid_t) -> Option<i32> {
    // SAFETY: signal 0 sends nothing; kill only checks the pid.
    let rc = unsafe { libc::kill(pid, 0) };
    (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap())
}

/// Whether `pid` is running (exists and, on Linux, is no zombie).
pub fn running(pid: libc::pid_t) -> bool {
    if probe(pid).is_some() {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised name.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.trim().chars().next());
        if state == Some('Z') {
            return false;
        }
    }
    true
}

/// Waits up to [`GONE_WITHIN`] for our former child `pid` to be killed and
/// reaped: `kill(pid, 0)` gives `ESRCH` (a zombie still takes signal 0, so
/// this holds only once reaped) and, on Linux, `/proc/PID` is absent.
/// The crate's reaper owns the pid, so `waitpid` is not ours to call.
pub async fn assert_reaped(pid: libc::pid_t, what: &str) {
    let until = Instant::now() + GONE_WITHIN;
    loop {
        let esrch = probe(pid) == Some(libc::ESRCH);
        let proc_absent =
            !cfg!(target_os = "linux") || !Path::new(&format!("/proc/{pid}")).exists();
        if esrch && proc_absent {
            return;
        }
        assert!(
            Instant::now() < until,
            "{what} (pid {pid}) still exists {GONE_WITHIN:?} after the launch was dropped \
             (kill(pid, 0) errno {:?}, running {})",
            probe(pid),
            running(pid)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits up to [`GONE_WITHIN`] for `pid`, not our child (a grandchild), to
/// be dead: gone, or a zombie, which is the job of whoever it was
/// reparented to (init, or a subreaper in a container) to reap.
pub async fn assert_dead(pid: libc::pid_t, what: &str) {
    let until = Instant::now() + GONE_WITHIN;
    while running(pid) {
        assert!(
            Instant::now() < until,
            "{what} (pid {pid}) still runs {GONE_WITHIN:?} after the launch was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The socket the program was given (it wrote `$NOTIFY_SOCKET` to
/// `recorded`) and its directory must both be gone.
pub async fn assert_socket_removed(recorded: &Path) {
    let socket = PathBuf::from(line_in(recorded).await);
    assert!(
        socket.is_absolute(),
        "the program's NOTIFY_SOCKET was {}, not a path",
        socket.display()
    );
    assert!(
        !socket.exists(),
        "the notify socket {} is still there",
        socket.display()
    );
    let dir = socket.parent().expect("a socket in a directory");
    assert!(
        !dir.exists(),
        "the notify socket's directory {} is still there",
        dir.display()
    );
}

/// A multi-thread runtime with two workers (this machine's core count,
/// and enough for tasks to move between threads).
pub fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `n` tasks, each awaiting `stop.triggered()`.
pub fn tasks_awaiting(
    stop: &std::sync::Arc<tokenpipe::SignalInterrupt>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<(), tokenpipe::Error>>> {
    (0..n)
        .map(|_| {
            let stop = std::sync::Arc::clone(stop);
            tokio::spawn(async move { stop.triggered().await })
        })
        .collect()
}
