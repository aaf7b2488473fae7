//! The pid file: opening it relative to a held directory (never through a
//! symbolic link), what `fstat` says about the opened file, its `fcntl`
//! record lock, and reading, truncating and removing it. Only where the
//! platform can fork. Where it has no record locks (build.rs leaves
//! `tokenpipe_record_locks` unset: Redox, whose libc binding has no
//! `F_SETLK`), the lock fails with `EOPNOTSUPP`, so a daemon asking for a
//! pid file there gets a clear error instead of an unlocked file.
//!
//! Plain system calls, safe between `fork` and the daemon's set-up report
//! (POSIX's async-signal-safe list omits `pread`, a plain system call all
//! the same).

use core::ffi::{CStr, c_int};
use core::mem::MaybeUninit;

use super::SysResult;
use super::conv::{ret, ret_c_int};

/// `open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)`—The current working
/// directory, held open so a path relative to it still resolves after a
/// `chdir`.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html)
pub(crate) fn open_cwd() -> SysResult<c_int> {
    // SAFETY: the path is a NUL-terminated literal; no O_CREAT, so no mode.
    ret_c_int(unsafe {
        libc::open(
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// `openat(dir, path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC
/// | O_NOCTTY, 0644)`—Opens (or creates) a pid file *without* truncating
/// it: a running daemon's file must survive a second instance that fails
/// to lock it.
///
/// `O_NOFOLLOW`: a symbolic link at `path` (dangling or not) fails with
/// `ELOOP` (`EMLINK` on FreeBSD and DragonFly, `EFTYPE` on NetBSD) instead
/// of the link's target being created or truncated; links in the
/// directories above it are still followed. `O_NONBLOCK`: an `open` of a
/// FIFO or a device (a terminal waiting for carrier) returns at once, so
/// the caller can look at what it opened and refuse it. It is left set on
/// the regular file the daemon keeps: there it could only matter to a
/// `write` blocked by another process's mandatory lock, and the daemon
/// writes only while it holds the whole-file write lock itself.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/open.2.html)
pub(crate) fn open_pid_file(dir: c_int, path: &CStr) -> SysResult<c_int> {
    let flags = libc::O_RDWR
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_CLOEXEC
        | libc::O_NOCTTY;
    // SAFETY: `path` is NUL-terminated; O_CREAT takes the mode as a
    // variadic unsigned int, which we pass.
    ret_c_int(unsafe { libc::openat(dir, path.as_ptr(), flags, 0o644 as libc::c_uint) })
}

/// What `fstat` says about an open pid file that decides whether the
/// daemon may write into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStatus {
    /// `S_ISREG(st_mode)`: a regular file (not a FIFO, device, directory or
    /// socket).
    pub(crate) is_regular: bool,
    /// The permission bits, `st_mode & 0o7777`.
    pub(crate) mode: libc::mode_t,
    /// `st_uid`: the owner.
    pub(crate) uid: libc::uid_t,
    /// `st_nlink`: how many names the file has (0 once it is removed).
    pub(crate) links: u64,
}

/// `fstat(fd)`—The kind, permissions, owner and link count of the file
/// open as `fd`: looked at on the open file, not on the path, so what is
/// checked is what will be written. Async-signal-safe.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/fstat.2.html)
pub(crate) fn file_status(fd: c_int) -> SysResult<FileStatus> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one `stat`.
    ret(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it filled in `st` completely.
    let st = unsafe { st.assume_init() };
    // st_mode is wider than mode_t on 32-bit Android; the bits fit.
    // nlink_t is 16 to 64 bits, depending on the system.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(FileStatus {
        is_regular: st.st_mode as libc::mode_t & libc::S_IFMT == libc::S_IFREG,
        mode: st.st_mode as libc::mode_t & 0o7777,
        uid: st.st_uid,
        links: st.st_nlink as u64,
    })
}

/// `geteuid()`—This process's effective user id, the owner of the files
/// it creates. Cannot fail; async-signal-safe.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/geteuid.html)
/// - [Linux](https://man7.org/linux/man-pages/man2/geteuid.2.html)
pub(crate) fn geteuid() -> libc::uid_t {
    // SAFETY: geteuid takes nothing and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// A whole-file `flock` record of type `kind` (`F_WRLCK`, ...).
#[cfg(tokenpipe_record_locks)]
fn whole_file(kind: c_int) -> libc::flock {
    // SAFETY: flock is a plain C struct of integers, for which all-zero is
    // a valid value (and the one POSIX expects for fields we do not set).
    let mut lock: libc::flock = unsafe { MaybeUninit::zeroed().assume_init() };
    lock.l_type = kind as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 0;
    lock.l_len = 0; // 0: to the end of the file, however long it grows
    lock
}

/// `fcntl(fd, F_SETLK, {F_WRLCK, whole file})`—Takes a write lock on the
/// whole file without waiting: `EAGAIN` or `EACCES` if another process
/// holds one. The lock belongs to this process; it ends when the process
/// exits or closes *any* fd of the file.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
#[cfg(tokenpipe_record_locks)]
pub(crate) fn lock_whole_file(fd: c_int) -> SysResult<()> {
    let lock = whole_file(libc::F_WRLCK as c_int);
    // SAFETY: F_SETLK reads one flock, which `lock` is, for the call.
    ret(unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) })
}

/// `fcntl(fd, F_GETLK, {F_WRLCK, whole file})`—The pid of a process whose
/// lock would block ours, or `None` if none would. The pid is 0 where the
/// holder lives in another pid namespace.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
#[cfg(tokenpipe_record_locks)]
pub(crate) fn lock_holder(fd: c_int) -> SysResult<Option<libc::pid_t>> {
    let mut lock = whole_file(libc::F_WRLCK as c_int);
    // SAFETY: F_GETLK reads and rewrites one flock, which `lock` is.
    ret(unsafe { libc::fcntl(fd, libc::F_GETLK, &mut lock) })?;
    if c_int::from(lock.l_type) == libc::F_UNLCK as c_int {
        Ok(None)
    } else {
        Ok(Some(lock.l_pid))
    }
}

/// No record locks on this platform: `EOPNOTSUPP`, and no system call.
#[cfg(not(tokenpipe_record_locks))]
pub(crate) fn lock_whole_file(_fd: c_int) -> SysResult<()> {
    Err(super::Errno::EOPNOTSUPP)
}

/// No record locks on this platform: nothing can hold one.
#[cfg(not(tokenpipe_record_locks))]
pub(crate) fn lock_holder(_fd: c_int) -> SysResult<Option<libc::pid_t>> {
    Ok(None)
}

/// `ftruncate(fd, 0)`—Empties a file.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/ftruncate.html)
pub(crate) fn truncate(fd: c_int) -> SysResult<()> {
    // SAFETY: ftruncate takes plain integers and touches no memory of ours.
    ret(unsafe { libc::ftruncate(fd, 0) })
}

/// `pread(fd, buf, 0)`—Reads from the start of a file without moving its
/// offset.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pread.html)
pub(crate) fn read_at_start(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    super::conv::ret_usize(n)
}

/// `fstatat(dir, path, 0)` compared with `fstat(fd)`—Whether `path` (from
/// `dir`) still names the file open as `fd`; `ENOENT` if it names nothing.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstatat.html)
pub(crate) fn path_names_fd(dir: c_int, path: &CStr, fd: c_int) -> SysResult<bool> {
    let open = super::file_id(fd)?;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` is valid for one stat.
    ret(unsafe { libc::fstatat(dir, path.as_ptr(), st.as_mut_ptr(), 0) })?;
    // SAFETY: fstatat returned 0, so it filled in `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(st.st_dev as u64 == open.dev && st.st_ino as u64 == open.ino)
}

/// `unlinkat(dir, path, 0)`—Removes a file's name.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/unlink.html)
pub(crate) fn unlink_at(dir: c_int, path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated; no memory of ours is written.
    ret(unsafe { libc::unlinkat(dir, path.as_ptr(), 0) })
}
