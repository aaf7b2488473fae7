//! Helpers shared by the integration tests: fd identity, fork and wait,
//! and guards that clean up after a test whether it passes or fails; on
//! Linux, a scratch directory, `/proc`'s word on a pid and the examples
//! (`scratch`), and processes by number (`procs`: a child forced onto a
//! freed pid, a freezer cgroup, CPU load).
//!
//! Each test binary includes this with `mod common;` and uses what it needs.
#![allow(dead_code, unsafe_code)]

mod fds;
#[allow(unused_imports)] // Not every test binary counts fds.
pub use fds::open_pipe_count;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod scratch;
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unused_imports)] // Only the launch cases use them.
pub use scratch::*;
// As the one test file that uses it: natively on x86_64 Linux with glibc.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
mod procs;
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[allow(unused_imports)] // Only the launch cases reach processes by number.
pub use procs::*;

use std::ffi::c_int;

/// What an fd number refers to: the (device, inode) of the open file.
///
/// Pipe inodes are never reused while the test runs, so comparing identities
/// tells "this fd is still our pipe" from "the number was closed and perhaps
/// reused by another test's file", even with tests running in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdIdentity {
    pub dev: u64,
    pub ino: u64,
}

/// The identity of `fd`, or `None` if the number is not open.
pub fn identity(fd: c_int) -> Option<FdIdentity> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`, and fstat fills it in
    // completely when it returns 0.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstat returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Some(FdIdentity {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    })
}

/// Whether `fd` still refers to the file with identity `id`.
pub fn still_refers_to(fd: c_int, id: FdIdentity) -> bool {
    identity(fd) == Some(id)
}

/// The fd flags of `fd` (`F_GETFD`), or the errno.
pub fn fd_flags(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: F_GETFD touches no memory; a closed fd gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags >= 0 {
        Ok(flags)
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

// The tests reach errno through libc directly rather than through the
// crate's Errno::last/set_last, so that a bug there cannot hide one in what
// these helpers check ("no syscall was made", "errno survived a handler").

/// Sets the calling thread's errno.
pub fn set_errno(value: c_int) {
    // SAFETY: the errno location is valid for the calling thread's lifetime.
    unsafe { *errno_location() = value };
}

/// Reads the calling thread's errno.
pub fn get_errno() -> c_int {
    // SAFETY: as for set_errno.
    unsafe { *errno_location() }
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
use libc::___errno as errno_location;
#[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
use libc::__errno as errno_location;
#[cfg(any(target_os = "linux", target_os = "dragonfly"))]
use libc::__errno_location as errno_location;
#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
use libc::__error as errno_location;

/// `_exit(code)`: leaves at once, without destructors or atexit handlers.
/// Async-signal-safe, so a forked child of the threaded harness may call it.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Sleeps in `pause` until a signal ends the process. Async-signal-safe.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause is async-signal-safe; a signal ends the process.
        unsafe { libc::pause() };
    }
}

/// This test binary, to be started again running only the test `test`
/// (`--exact`, one test thread). Under qemu-user (ci/cross.sh) a foreign
/// binary cannot exec itself directly: `TOKENPIPE_TEST_RUNNER` names the
/// emulator (and its arguments) to start it with.
pub fn this_test_binary(test: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = under_runner(exe.as_os_str());
    cmd.args(["--exact", test, "--test-threads=1"]);
    cmd
}

/// The words that start the program `exe` built for the target under test:
/// the emulator in `TOKENPIPE_TEST_RUNNER` (and its arguments) first, where
/// there is one.
pub fn runner_words(exe: &std::ffi::OsStr) -> Vec<std::ffi::OsString> {
    let runner = std::env::var("TOKENPIPE_TEST_RUNNER").unwrap_or_default();
    let mut words: Vec<std::ffi::OsString> = runner.split_whitespace().map(Into::into).collect();
    words.push(exe.to_owned());
    words
}

/// `exe` as a `Command`, under the emulator where there is one.
pub fn under_runner(exe: &std::ffi::OsStr) -> std::process::Command {
    let words = runner_words(exe);
    let mut cmd = std::process::Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(c_int),
    Killed(c_int),
}

/// Forks. In the child, runs `child` and `_exit`s with what it returns;
/// in the parent, returns the child's pid.
///
/// The test process has other threads, so the child may only make
/// async-signal-safe calls: no allocation, no panics, no locks. `child`
/// reports failure through its exit code instead of asserting.
pub fn fork_child(child: impl FnOnce() -> c_int) -> libc::pid_t {
    // SAFETY: the child runs only `child`, which by this function's contract
    // makes only async-signal-safe calls, then `_exit`s without running
    // destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = child();
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for `pid` (retrying on EINTR) and says how it ended.
pub fn wait_for(pid: libc::pid_t) -> Ended {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for one int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EINTR),
            "waitpid({pid}) failed: {err}"
        );
    }
    if libc::WIFEXITED(status) {
        Ended::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ended::Killed(libc::WTERMSIG(status))
    } else {
        panic!("waitpid({pid}) returned an unexpected status {status:#x}")
    }
}

/// A forked child of the test, by pid: killed and reaped when dropped,
/// unless [`wait`](Self::wait) has reaped it. A failed assertion unwinds
/// through it, so the child is neither left running nor left a zombie for
/// the next test's "no child is left" check to trip over. Signalling by
/// pid is safe here: until we reap it, the pid is our child's.
#[derive(Debug)]
pub struct ChildProcess {
    pid: libc::pid_t,
    ended: Option<Ended>,
}

impl ChildProcess {
    /// Takes charge of `pid`, a child of this process not yet reaped.
    pub fn new(pid: libc::pid_t) -> ChildProcess {
        ChildProcess { pid, ended: None }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Waits for it (once; asked again, the same answer).
    pub fn wait(&mut self) -> Ended {
        let pid = self.pid;
        *self.ended.get_or_insert_with(|| wait_for(pid))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.ended.is_none() {
            // SAFETY: kill touches no memory; the pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer for one int.
            while unsafe { libc::waitpid(self.pid, &mut status, 0) } == -1
                && get_errno() == libc::EINTR
            {}
        }
    }
}

/// `value` with a clean-up that runs on it when the guard is dropped:
/// at the end of the test, or while a failed assertion unwinds. Derefs to
/// the value; [`into_inner`](Self::into_inner) takes it back unguarded.
pub struct Guard<T, F: FnMut(&mut T)> {
    value: Option<T>,
    cleanup: F,
}

impl<T, F: FnMut(&mut T)> Guard<T, F> {
    pub fn new(value: T, cleanup: F) -> Guard<T, F> {
        Guard {
            value: Some(value),
            cleanup,
        }
    }

    /// The value, without its clean-up.
    pub fn into_inner(mut self) -> T {
        self.value
            .take()
            .expect("a guard holds its value until dropped")
    }
}

impl<T, F: FnMut(&mut T)> std::ops::Deref for Guard<T, F> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
            .as_ref()
            .expect("a guard holds its value until dropped")
    }
}

impl<T, F: FnMut(&mut T)> std::ops::DerefMut for Guard<T, F> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_mut()
            .expect("a guard holds its value until dropped")
    }
}

impl<T, F: FnMut(&mut T)> Drop for Guard<T, F> {
    fn drop(&mut self) {
        if let Some(value) = self.value.as_mut() {
            (self.cleanup)(value);
        }
    }
}

/// A daemon that is killed and reaped when the test lets go of it.
#[cfg(tokenpipe_fork)]
pub type KilledOnDrop =
    Guard<tokenpipe::daemon::DaemonParent, fn(&mut tokenpipe::daemon::DaemonParent)>;

/// Guards `daemon`: when dropped, pass or fail, it is sent `SIGKILL` and
/// waited for. Its handle never signals a stranger (`ESRCH` once it is
/// reaped), so this is harmless after the test has waited for it itself.
/// A double-forked daemon is reached only through its pidfd (Linux 5.3
/// and later); elsewhere `kill` refuses and the test must stop it itself.
#[cfg(tokenpipe_fork)]
pub fn killed_on_drop(daemon: tokenpipe::daemon::DaemonParent) -> KilledOnDrop {
    Guard::new(daemon, |d| {
        let _ = d.kill(libc::SIGKILL);
        let _ = d.wait();
    })
}

/// A fresh directory, `tokenpipe-TAG-PID` in the temp directory, removed
/// with all it holds when dropped, pass or fail.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tokenpipe-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` inside it.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// `name` inside it, as the C string a pid file option takes.
    pub fn c_path(&self, name: &str) -> std::ffi::CString {
        std::ffi::CString::new(self.join(name).into_os_string().into_encoded_bytes()).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends `signal` to `pid`.
pub fn kill(pid: libc::pid_t, signal: c_int) {
    // SAFETY: kill touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// Sets the disposition of `signal` to `handler` (SIG_IGN or SIG_DFL).
pub fn set_disposition(signal: c_int, handler: libc::sighandler_t) {
    // SAFETY: SIG_IGN and SIG_DFL are valid dispositions for any catchable
    // signal.
    let old = unsafe { libc::signal(signal, handler) };
    assert_ne!(old, libc::SIG_ERR, "signal({signal}) failed");
}

/// The load multiplier for the stress tests: `TOKENPIPE_SOAK_SCALE`
/// (default 1, sized for CI). `ci/soak.sh` raises it.
pub fn soak_scale() -> usize {
    match std::env::var("TOKENPIPE_SOAK_SCALE") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("TOKENPIPE_SOAK_SCALE must be a whole number, not {v:?}")),
        Err(_) => 1,
    }
}

/// One line of the reliability report, for `ci/soak.sh` to collect:
/// `REPORT|test|load|errors|lost|duplicated|leaked fds`.
pub fn report(
    test: &str,
    load: &str,
    errors: usize,
    lost: usize,
    duplicated: usize,
    leaked: isize,
) {
    println!("REPORT|{test}|{load}|{errors}|{lost}|{duplicated}|{leaked}");
}

/// Installs `handler` for `signal` without `SA_RESTART`, so the signal
/// interrupts blocking calls with `EINTR`.
pub fn install_handler(signal: c_int, handler: extern "C" fn(c_int)) {
    // SAFETY: a zeroed sigaction is a valid start; the handler is an
    // extern "C" fn; sa_flags leaves out SA_RESTART on purpose.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        assert_eq!(libc::sigaction(signal, &sa, std::ptr::null_mut()), 0);
    }
}
