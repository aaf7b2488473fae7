//! Processes as the kernel numbers them (Linux): whether a pid is alive or
//! gone, a child forced onto a pid that was just freed (to stand for the
//! stranger that reuses a number), a v1 freezer cgroup that holds a
//! process past `SIGKILL`, and CPU load. Each one that needs privileges
//! says what is missing instead of skipping.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{alive, gone};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether `pid` is alive and no `SIGKILL` waits for it: a kill that was
/// sent is seen at once, not only once the process has died of it.
pub fn unharmed(pid: libc::pid_t) -> bool {
    let kill_bit = 1u64 << (libc::SIGKILL - 1);
    let pending = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .any(|mask| u64::from_str_radix(mask.trim(), 16).is_ok_and(|m| m & kill_bit != 0));
    alive(pid) && !pending
}

/// Waits up to 10 s for `pid` to stop being alive (a zombie counts as
/// dead): a state, not a timing.
pub fn becomes_dead(pid: libc::pid_t) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Fields of `/proc/PID/stat` (or `/proc/self/task/TID/stat`) after the
/// command name: index 0 is the state (field 3 of proc(5)).
pub fn stat_fields(path: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Whether `pid` is a zombie: ended, not yet reaped.
pub fn zombie(pid: libc::pid_t) -> bool {
    stat_fields(Path::new(&format!("/proc/{pid}/stat")))
        .is_some_and(|fields| fields.first().is_some_and(|state| state == "Z"))
}

/// Whether this process may act as root (the cases that need it fail
/// with `what` rather than skip).
pub fn require_root(what: &str) {
    // SAFETY: geteuid takes nothing and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this case needs root (it runs as uid {euid}): {what}"
    );
}

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// Forks a child of this process at exactly `pid` (free by now: its
/// process reaped), as a stranger that reuses a number would take it:
/// `pid - 1` is written to `/proc/sys/kernel/ns_last_pid`, then `fork`.
/// The child makes only async-signal-safe calls (the test binary has
/// threads): `setpgid(0, 0)` if `own_group` (so it leads process group
/// `pid`), then `pause` until killed. The caller kills and reaps it
/// (wrap it in [`ChildProcess`](super::ChildProcess) at once).
///
/// `None` when another process took `pid` first (tried a few times), or
/// `pid` is not free. Panics, naming what is missing, where
/// `ns_last_pid` cannot be written (root, a kernel with it).
pub fn fork_at_pid(pid: libc::pid_t, own_group: bool) -> Option<libc::pid_t> {
    assert!(pid > 1, "no forking at pid {pid}");
    for _ in 0..10 {
        if !gone(pid) {
            return None;
        }
        if let Err(e) = std::fs::write(NS_LAST_PID, (pid - 1).to_string()) {
            panic!(
                "cannot write {NS_LAST_PID} ({e}): forcing a pid needs root \
                 (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE) and a kernel with ns_last_pid"
            );
        }
        let child = super::fork_child(move || {
            if own_group {
                // SAFETY: setpgid is async-signal-safe and touches no memory.
                unsafe { libc::setpgid(0, 0) };
            }
            super::pause_forever()
        });
        if child == pid {
            if own_group {
                // Also from here, so the group exists before we return
                // whichever of us runs first (EACCES once it has: same).
                // SAFETY: setpgid touches no memory; `child` is ours.
                unsafe { libc::setpgid(child, child) };
            }
            return Some(child);
        }
        // Someone else forked in between: ours got another number.
        drop(super::ChildProcess::new(child));
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A v1 freezer cgroup of its own (`/sys/fs/cgroup/freezer/NAME`): a
/// process moved in and frozen there does not die of `SIGKILL` until it is
/// thawed, as a process stuck in the kernel would not. Dropped, pass or
/// fail: thawed, every member killed (by pidfd, after checking it is still
/// a member), and the group removed.
pub struct FreezerCgroup {
    dir: PathBuf,
    name: String,
}

const FREEZER: &str = "/sys/fs/cgroup/freezer";

impl FreezerCgroup {
    /// Makes the group; panics naming what is missing (root, a cgroup v1
    /// freezer hierarchy mounted at `/sys/fs/cgroup/freezer`).
    pub fn new(tag: &str) -> FreezerCgroup {
        require_root("a freezer cgroup is made and written to");
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        assert!(
            mounts.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.len() > 3
                    && words[1] == FREEZER
                    && words[2] == "cgroup"
                    && words[3].split(',').any(|o| o == "freezer")
            }),
            "no cgroup v1 freezer hierarchy mounted at {FREEZER} (mount -t cgroup -o freezer \
             freezer {FREEZER}): this case needs a task that SIGKILL cannot end, which only a \
             v1-frozen one is"
        );
        let name = format!("tokenpipe-{tag}-{}", std::process::id());
        let dir = Path::new(FREEZER).join(&name);
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot make {dir:?}: {e}"));
        FreezerCgroup { dir, name }
    }

    /// Moves `pid` in and freezes the group; returns once it is frozen
    /// (at most 5 s, else panics).
    pub fn freeze(&self, pid: libc::pid_t) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("cannot move {pid} into {:?}: {e}", self.dir));
        std::fs::write(self.dir.join("freezer.state"), "FROZEN").unwrap();
        let start = Instant::now();
        loop {
            let state = std::fs::read_to_string(self.dir.join("freezer.state")).unwrap();
            if state.trim() == "FROZEN" {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{:?} is still {state:?} 5 s after FROZEN was asked for",
                self.dir
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn members(&self) -> Vec<libc::pid_t> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for FreezerCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        let start = Instant::now();
        loop {
            let members = self.members();
            if members.is_empty() || start.elapsed() > Duration::from_secs(10) {
                break;
            }
            for pid in members {
                kill_member(pid, &self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// SIGKILLs `pid` through a pidfd, once the pidfd is known to hold a
/// member of the freezer group `name` (a number read from `cgroup.procs`
/// may have been reused since).
fn kill_member(pid: libc::pid_t, name: &str) {
    // SAFETY: pidfd_open takes plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return;
    }
    let member = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|c| c.lines().any(|l| l.ends_with(&format!(":freezer:/{name}"))));
    if member {
        // SAFETY: the pidfd is ours and open; no siginfo is passed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
    // SAFETY: `fd` is ours, closed once.
    unsafe { libc::close(fd) };
}

/// Busy threads that keep every core loaded, for at most a bound; stopped
/// and joined when dropped, pass or fail.
pub struct CpuLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    /// `threads` busy threads, each ending by itself after `at_most`.
    pub fn start(threads: usize, at_most: Duration) -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < at_most {
                        for _ in 0..10_000 {
                            n = std::hint::black_box(n.wrapping_mul(6_364_136_223_846_793_005))
                                .wrapping_add(1);
                        }
                    }
                })
            })
            .collect();
        CpuLoad { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
