//! The daemon writes its pid only into a file that is safe to write, as
//! systemd requires of a `PIDFile=` (issue 22, item 15): never through a
//! symbolic link, never into a FIFO, a device or a directory, a file
//! another user owns, one its group or others can write, or one with a
//! second name. A refused file is left exactly as it was (contents, size,
//! mode, owner, kind), the set-up fails at the pid file with an errno that
//! says why, and no fd is left open on it. Its own new file, and a stale
//! one a previous run left, are still taken.
//!
//! Most cases take the file with `PidFile::lock` in this process: the code
//! the forked daemon runs, without a fork. The symbolic link is also tried
//! through `fork_daemon`, single and double fork, for the set-up's error.
//! The cases that give a file to uid 65534 or make a device node need
//! root, as CI runs them; without it they fail, naming what is missing.
#![cfg(unix)]

mod common;

use std::ffi::{CStr, CString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::{KilledOnDrop, TempDir, exit_now, killed_on_drop};
use tokenpipe::Errno;
use tokenpipe::daemon::{DaemonError, DaemonOptions, Forked, PidFile, SetupStep, fork_daemon};

static SERIAL: Mutex<()> = Mutex::new(());

/// The errno `open` gives with `O_NOFOLLOW` when the path is a symbolic
/// link.
#[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
const SYMLINK_ERRNO: i32 = libc::EMLINK;
#[cfg(target_os = "netbsd")]
const SYMLINK_ERRNO: i32 = libc::EFTYPE;
#[cfg(not(any(target_os = "freebsd", target_os = "dragonfly", target_os = "netbsd")))]
const SYMLINK_ERRNO: i32 = libc::ELOOP;

/// The error a refused pid file gives.
fn refused(errno: i32) -> Option<DaemonError> {
    Some(DaemonError::SetupFailed {
        step: SetupStep::PidFile,
        errno: Errno::from_raw(errno),
    })
}

/// Takes the pid file at `path` in this process, as the daemon does; a
/// file wrongly taken is kept (not removed) until `look` has seen what it
/// did, and is then dropped.
fn lock_then_look<T>(path: &CStr, look: impl FnOnce() -> T) -> (Option<DaemonError>, T) {
    let got = PidFile::lock(path);
    let seen = look();
    (got.err(), seen)
}

/// Forks a daemon that exits 99 if its set-up succeeds.
fn daemon(options: DaemonOptions<'_>) -> Result<KilledOnDrop, DaemonError> {
    // SAFETY: fork_daemon wants no other threads; the harness has some.
    // The child makes only async-signal-safe calls and leaves with _exit.
    match unsafe { fork_daemon(options) } {
        Ok(Forked::Parent(parent)) => Ok(killed_on_drop(parent)),
        Ok(Forked::Child(_)) => exit_now(99),
        Err(e) => Err(e),
    }
}

/// Fails the test, naming what is missing, when not run as root.
fn needs_root(what: &str) {
    // SAFETY: geteuid takes nothing.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "needs root, to {what}: run as root (CI does); this test does not skip"
    );
}

/// Everything about `path` itself (not a link's target) that a refusal
/// must leave alone: kind, mode, owner, size, contents (of a regular file).
#[derive(Debug, PartialEq, Eq)]
struct Left {
    kind: std::fs::FileType,
    mode: u32,
    uid: u32,
    size: u64,
    contents: Option<String>,
}

fn left(path: &Path) -> Option<Left> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(Left {
        kind: meta.file_type(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        size: meta.len(),
        contents: meta
            .is_file()
            .then(|| String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()),
    })
}

/// The fds of this process open on the file `path` names (found by device
/// and inode); after a refusal there must be none.
fn fds_open_on(path: &Path) -> Vec<i32> {
    let meta = std::fs::metadata(path).unwrap();
    let dir = if Path::new("/proc/self/fd").exists() {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let fds: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.into_iter()
        .filter(|&fd| {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: `st` is valid for one stat; a number closed since it
            // was listed (read_dir's own) gives EBADF.
            if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
                return false;
            }
            // SAFETY: fstat returned 0, so it filled `st` in.
            let st = unsafe { st.assume_init() };
            #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
            let same = st.st_dev as u64 == meta.dev() && st.st_ino as u64 == meta.ino();
            same
        })
        .collect()
}

fn chown(path: &Path, uid: u32) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is NUL-terminated; lchown touches no memory of ours.
    let rc = unsafe { libc::lchown(c.as_ptr(), uid, uid) };
    assert_eq!(
        rc,
        0,
        "chown {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A file at `name` in `dir` holding `contents`, with exactly `mode`
/// (whatever the umask).
fn file_with(dir: &TempDir, name: &str, contents: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    chmod(&path, mode);
    path
}

#[test]
fn a_symlink_at_the_path_fails_the_daemons_setup_and_leaves_its_target_whole() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-symlink");
    let victim = file_with(&dir, "victim", "precious, not a pid\n", 0o644);
    std::os::unix::fs::symlink(&victim, dir.join("d.pid")).unwrap();
    let path = dir.c_path("d.pid");
    let before = left(&victim);
    for double_fork in [false, true] {
        let options = DaemonOptions::new()
            .double_fork(double_fork)
            .pid_file(&path);
        let got = daemon(options);
        // Before the daemon's guard goes: it may have written already.
        let after = left(&victim);
        assert_eq!(
            after, before,
            "double fork {double_fork}: the link's target was written"
        );
        assert_eq!(
            got.err(),
            refused(SYMLINK_ERRNO),
            "double fork {double_fork}"
        );
        assert!(
            std::fs::symlink_metadata(dir.join("d.pid"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "double fork {double_fork}: the link itself was replaced"
        );
    }
    let message = refused(SYMLINK_ERRNO).unwrap().to_string();
    assert!(message.contains("the pid file"), "{message}");
}

#[test]
fn a_dangling_symlink_at_the_path_is_refused_and_its_target_never_made() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-dangling");
    let target = dir.join("made-through-the-link");
    std::os::unix::fs::symlink(&target, dir.join("d.pid")).unwrap();
    let (got, made) = lock_then_look(&dir.c_path("d.pid"), || left(&target));
    assert_eq!(made, None, "the daemon created the link's target");
    assert_eq!(got, refused(SYMLINK_ERRNO));
}

#[test]
fn a_file_another_user_owns_and_anyone_can_write_is_refused_and_left_as_it_was() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    needs_root("give a file to uid 65534");
    let dir = TempDir::new("pidfile-theirs-0666");
    let file = file_with(&dir, "d.pid", "4242\n", 0o666);
    chown(&file, 65534);
    let before = left(&file);
    let (got, after) = lock_then_look(&dir.c_path("d.pid"), || left(&file));
    assert_eq!(after, before, "another user's file was written");
    assert_eq!(got, refused(libc::EPERM));
    assert_eq!(
        fds_open_on(&file),
        Vec::<i32>::new(),
        "an fd was left open on it"
    );
}

#[test]
fn a_file_another_user_owns_is_refused_even_when_only_its_owner_can_write_it() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    needs_root("give a file to uid 65534");
    let dir = TempDir::new("pidfile-theirs-0644");
    let file = file_with(&dir, "d.pid", "4242\n", 0o644);
    chown(&file, 65534);
    let before = left(&file);
    let (got, after) = lock_then_look(&dir.c_path("d.pid"), || left(&file));
    assert_eq!(after, before, "another user's file was written");
    assert_eq!(got, refused(libc::EPERM));
    assert_eq!(
        fds_open_on(&file),
        Vec::<i32>::new(),
        "an fd was left open on it"
    );
}

#[test]
fn a_file_of_ours_that_group_or_others_can_write_is_refused_not_repaired() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-writable");
    for mode in [0o666, 0o664, 0o646, 0o620] {
        let file = file_with(&dir, "d.pid", "4242\n", mode);
        let before = left(&file);
        let (got, after) = lock_then_look(&dir.c_path("d.pid"), || left(&file));
        // Refused, not chmod'ed: someone may hold it open for writing.
        assert_eq!(after, before, "mode {mode:o}: the file was changed");
        assert_eq!(got, refused(libc::EPERM), "mode {mode:o}");
        assert_eq!(
            fds_open_on(&file),
            Vec::<i32>::new(),
            "mode {mode:o}: an fd was left open"
        );
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn a_hard_link_to_another_file_is_refused_and_that_file_left_whole() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-hardlink");
    // Ours and 0644, so every other check passes: only its second name
    // gives it away (as root, it could be any file of root's).
    let victim = file_with(&dir, "victim", "precious, not a pid\n", 0o644);
    std::fs::hard_link(&victim, dir.join("d.pid")).unwrap();
    let before = left(&victim);
    let (got, after) = lock_then_look(&dir.c_path("d.pid"), || left(&victim));
    assert_eq!(after, before, "the linked file was written");
    assert_eq!(got, refused(libc::EMLINK));
    assert_eq!(
        fds_open_on(&victim),
        Vec::<i32>::new(),
        "an fd was left open on it"
    );
}

#[test]
fn a_fifo_at_the_path_is_refused_at_once_and_left_in_place() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-fifo");
    let fifo = dir.join("d.pid");
    let c_fifo = dir.c_path("d.pid");
    // SAFETY: `c_fifo` is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o644) }, 0);
    let before = left(&fifo);
    // In a thread, so an open that blocks (nothing reads the FIFO) fails
    // the test, naming the hang, instead of stopping it.
    let (tx, rx) = std::sync::mpsc::channel();
    let c_path = c_fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(PidFile::lock(&c_path).err());
    });
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("PidFile::lock hung on a FIFO at the path (opened without O_NONBLOCK?)");
    assert_eq!(left(&fifo), before, "the FIFO was removed or changed");
    assert_eq!(got, refused(libc::EINVAL));
    assert_eq!(
        fds_open_on(&fifo),
        Vec::<i32>::new(),
        "an fd was left open on it"
    );
}

#[test]
fn a_device_node_at_the_path_is_refused_and_left_in_place() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    needs_root("make a device node (mknod)");
    let dir = TempDir::new("pidfile-device");
    let node = dir.join("d.pid");
    let c_node = dir.c_path("d.pid");
    // The null device's numbers on Linux (1, 3), taken from /dev/null so
    // the node is harmless wherever the test runs.
    let null = std::fs::metadata("/dev/null").unwrap().rdev();
    // SAFETY: `c_node` is NUL-terminated.
    let rc = unsafe { libc::mknod(c_node.as_ptr(), libc::S_IFCHR | 0o644, null as libc::dev_t) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
    let before = left(&node);
    let (got, after) = lock_then_look(&c_node, || left(&node));
    assert_eq!(after, before, "the device node was removed or changed");
    assert_eq!(got, refused(libc::EINVAL));
    assert_eq!(
        fds_open_on(&node),
        Vec::<i32>::new(),
        "an fd was left open on it"
    );
}

#[test]
fn a_directory_at_the_path_is_refused_and_left_in_place() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-directory");
    let sub = dir.join("d.pid");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inside"), "kept\n").unwrap();
    let before = left(&sub);
    let (got, after) = lock_then_look(&dir.c_path("d.pid"), || left(&sub));
    assert_eq!(got, refused(libc::EISDIR));
    assert_eq!(after, before);
    assert_eq!(
        std::fs::read_to_string(sub.join("inside")).unwrap(),
        "kept\n"
    );
}

#[test]
fn a_new_file_and_a_stale_file_of_ours_are_still_taken_and_written() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("pidfile-ours");
    let file = dir.join("d.pid");
    let path = dir.c_path("d.pid");
    let ours = format!("{}\n", std::process::id());

    // New: made by the daemon, 0644 less the umask.
    let held = PidFile::lock(&path).expect("a new pid file is taken");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ours);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o022, 0);
    held.remove().unwrap();
    assert!(!file.exists());

    // Stale: left by a previous run (not locked), ours, 0644, longer.
    file_with(&dir, "d.pid", "2147483647\nleft over\n", 0o644);
    let held = PidFile::lock(&path).expect("a stale pid file of ours is taken over");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), ours);
    held.remove().unwrap();
    assert!(!file.exists());
}
