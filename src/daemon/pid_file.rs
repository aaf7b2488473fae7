//! [`PidFile`]: the pid file a daemon holds locked for its whole life, so
//! that a second instance fails at once and names the first.

use core::ffi::{CStr, c_int};

use super::{DaemonError, SetupStep};
use crate::error::{Errno, Error, Result};
use crate::sys;

/// A pid file the daemon holds locked, written with its pid; dropping it
/// removes the file (if it is still the one this daemon wrote, and only in
/// the process that wrote it) and releases the lock.
///
/// Made by [`fork_daemon`](super::fork_daemon) when
/// [`DaemonOptions::pid_file`](super::DaemonOptions::pid_file) asks for
/// one; see there for how the lock works. `std::process::exit` runs no
/// destructors: drop it (or call [`remove`](Self::remove)) first, or the
/// file is left behind, unlocked, and the next instance takes it over.
#[derive(Debug)]
pub struct PidFile<'a> {
    /// The locked file, at fd 3 or above.
    fd: c_int,
    /// The launcher's working directory for a relative path (so removal
    /// works after `chdir("/")`), else `AT_FDCWD`.
    dir: c_int,
    path: &'a CStr,
    /// The process that locked it; a forked copy of this struct in another
    /// process never removes the file.
    owner: libc::pid_t,
}

/// Why the daemon could not take its pid file.
pub(super) enum PidFileError {
    /// Another process holds the lock: its pid (0 if it cannot be known).
    Held(libc::pid_t),
    Os(Errno),
}

impl From<Errno> for PidFileError {
    fn from(e: Errno) -> PidFileError {
        PidFileError::Os(e)
    }
}

impl<'a> PidFile<'a> {
    /// Opens without truncating and without following a symbolic link,
    /// refuses a file that is not safe to write ([`safe_to_write`]), locks,
    /// checks that the path still names the file it locked (else starts
    /// over), then truncates and writes our pid. `before_lock` runs between
    /// each open and its lock (the unit tests' fault hook).
    /// Async-signal-safe: runs in the freshly forked daemon.
    pub(super) fn lock_and_write(
        path: &'a CStr,
        before_lock: impl Fn(),
    ) -> core::result::Result<PidFile<'a>, PidFileError> {
        let dir = if path.to_bytes().first() == Some(&b'/') {
            libc::AT_FDCWD
        } else {
            sys::above_stdio(sys::open_cwd()?)?
        };
        // From here `file`'s drop closes what it holds; until the lock is
        // ours it must not remove anything, so `owner` names nobody.
        let mut file = PidFile {
            fd: -1,
            dir,
            path,
            owner: 0,
        };
        let mut tries = 0;
        loop {
            file.fd = sys::above_stdio(sys::open_pid_file(dir, path)?)?;
            // Before the lock, so a refused file is not even locked; on
            // refusal `file`'s drop closes it, and nothing was written.
            safe_to_write(sys::file_status(file.fd)?, sys::geteuid())?;
            before_lock();
            lock_or_name_holder(file.fd)?;
            // The lock is on the file we opened, which may no longer be the
            // one at `path`: the instance that held it may have removed it
            // and exited between our open and our lock, and another may have
            // made a new file there since. A lock on a removed file excludes
            // nobody, so only a lock on the file the path names counts.
            match sys::path_names_fd(dir, path, file.fd) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) if e.raw() == libc::ENOENT => {}
                Err(e) => return Err(PidFileError::Os(e)),
            }
            // Closing it releases our lock on the file that left the path.
            sys::close(core::mem::replace(&mut file.fd, -1));
            tries += 1;
            if tries == PID_FILE_TRIES {
                return Err(PidFileError::Os(Errno::EAGAIN));
            }
        }
        file.owner = sys::getpid();
        sys::truncate(file.fd)?;
        let mut digits = [0u8; 12];
        let text = decimal_line(file.owner, &mut digits);
        if sys::write(file.fd, text)? != text.len() {
            return Err(PidFileError::Os(Errno::EIO));
        }
        Ok(file)
    }

    /// Takes the pid file at `path` for this process, as
    /// [`DaemonOptions::pid_file`](super::DaemonOptions::pid_file) does for
    /// a forked daemon: for a daemon that did not fork (one a launcher
    /// started, or that re-executed itself with
    /// [`ready::launch`](crate::ready)). Open without
    /// truncating and without following a symbolic link, refuse a file
    /// that is not safe to write, lock, check that the path still names the
    /// locked file (else open it again), then truncate and write this
    /// process's pid. Async-signal-safe and allocation-free.
    ///
    /// # Errors
    /// [`DaemonError::AlreadyRunning`] with the pid that holds the lock (the
    /// file is left as it is); [`DaemonError::SetupFailed`] with
    /// [`SetupStep::PidFile`] and the errno if it cannot be opened, locked
    /// or written, `EAGAIN` if the file at the path was replaced at every
    /// try. A file that is not safe to write is refused with one of these
    /// errnos, before it is locked, and left exactly as it was (see
    /// [`DaemonOptions::pid_file`](super::DaemonOptions::pid_file) for
    /// why):
    ///
    /// | errno | the path names |
    /// |---|---|
    /// | `ELOOP` (`EMLINK` on FreeBSD and DragonFly, `EFTYPE` on NetBSD) | a symbolic link, dangling or not |
    /// | `EISDIR` | a directory (`open` says so) |
    /// | `EINVAL` | something else that is not a regular file: a FIFO, a device (a socket: `ENXIO` on Linux, `EOPNOTSUPP` elsewhere, from `open`) |
    /// | `EPERM` | a file owned by another user than this process's effective one and not by root, or writable by its group or by others |
    /// | `EMLINK` | a file with more than one name (a hard link) |
    ///
    /// ```
    /// use tokenpipe::daemon::PidFile;
    ///
    /// let path = std::env::temp_dir().join(format!("tokenpipe-lock-{}.pid", std::process::id()));
    /// let c_path = std::ffi::CString::new(path.to_str().unwrap())?;
    /// let file = PidFile::lock(&c_path)?;
    /// assert_eq!(std::fs::read_to_string(&path)?, format!("{}\n", std::process::id()));
    /// file.remove()?;
    /// assert!(!path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(path: &'a CStr) -> core::result::Result<PidFile<'a>, DaemonError> {
        PidFile::lock_and_write(path, || {}).map_err(|e| match e {
            PidFileError::Held(pid) => DaemonError::AlreadyRunning(pid),
            PidFileError::Os(errno) => DaemonError::SetupFailed {
                step: SetupStep::PidFile,
                errno,
            },
        })
    }

    /// The path it was created at, as given in the options.
    #[must_use]
    pub fn path(&self) -> &'a CStr {
        self.path
    }

    /// Removes the file now (if it is still the one this daemon wrote) and
    /// releases the lock.
    ///
    /// # Errors
    /// [`Error::Os`] if `unlinkat` or the check before it fails; the lock
    /// is released all the same.
    pub fn remove(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let mut result = Ok(());
        if self.fd >= 0 && self.owner == sys::getpid() {
            // Someone may have deleted our file and a new instance made
            // another at the path: only remove the one we hold.
            result = match sys::path_names_fd(self.dir, self.path, self.fd) {
                Ok(true) => sys::unlink_at(self.dir, self.path).map_err(Error::Os),
                Ok(false) => Ok(()),
                Err(e) => Err(Error::Os(e)),
            };
        }
        // Closing the fd releases the lock (after the unlink, so no second
        // instance can lock the name we are about to remove).
        if self.fd >= 0 {
            sys::close(core::mem::replace(&mut self.fd, -1));
        }
        if self.dir >= 0 {
            sys::close(core::mem::replace(&mut self.dir, -1));
        }
        result
    }
}

impl Drop for PidFile<'_> {
    /// Removes the file and releases the lock; see [`PidFile::remove`].
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// How many times the daemon opens its pid file afresh because the path
/// no longer named the file it had just locked. Each retry means another
/// instance removed the file between our `open` and our check, a window of
/// microseconds; a path replaced that often is being fought over, and the
/// daemon gives up with `EAGAIN` rather than spin.
pub(super) const PID_FILE_TRIES: u32 = 5;

/// Whether the daemon, running as `euid`, may lock, truncate and write the
/// pid file `file` describes: systemd's rule for an unsafe `PIDFile=`,
/// checked on the open file. `Err` with the errno to report when not:
/// - not a regular file: `EINVAL`, what `ftruncate` says of one (a FIFO,
///   a device; a directory never gets here: `open` fails with `EISDIR`);
/// - owned by neither `euid` nor root: `EPERM`. Its owner could rewrite
///   the pid at will, and a root daemon's launcher would then signal
///   whatever process it names;
/// - writable by group or others (`mode & 0o022`): `EPERM`, refused rather
///   than repaired, because `fchmod` cannot take back an fd someone opened
///   for writing while it was writable. The daemon creates its file `0644`
///   less the umask, so such a file was made or changed by someone else;
/// - more than one name: `EMLINK`. A hard link can make the path name any
///   file of root's on the same file system (where `protected_hardlinks`
///   is off), which passes every other check; no pid file needs two names.
///   (No names at all means it was removed since the open: the caller's
///   path check then opens the path again.)
pub(super) fn safe_to_write(
    file: sys::FileStatus,
    euid: libc::uid_t,
) -> core::result::Result<(), Errno> {
    let someone_elses = file.uid != euid && file.uid != 0;
    let others_can_write = file.mode & 0o022 != 0;
    if !file.is_regular {
        Err(Errno::EINVAL)
    } else if someone_elses || others_can_write {
        Err(Errno::EPERM)
    } else if file.links > 1 {
        Err(Errno::EMLINK)
    } else {
        Ok(())
    }
}

/// Takes the write lock on the open pid file `fd`, or names the process
/// that holds it.
fn lock_or_name_holder(fd: c_int) -> core::result::Result<(), PidFileError> {
    let mut attempts = 0;
    loop {
        match sys::lock_whole_file(fd) {
            Ok(()) => return Ok(()),
            Err(e) if e == Errno::EAGAIN || e == Errno::EACCES => {
                attempts += 1;
                match sys::lock_holder(fd)? {
                    // Released between our two calls: try again.
                    None if attempts < 3 => continue,
                    None => return Err(PidFileError::Os(e)),
                    Some(pid) if pid > 0 => return Err(PidFileError::Held(pid)),
                    // The holder is in another pid namespace: the pid it
                    // wrote is the best we have.
                    Some(_) => return Err(PidFileError::Held(read_pid(fd))),
                }
            }
            Err(e) => return Err(PidFileError::Os(e)),
        }
    }
}

/// The pid written at the start of a pid file, or 0 if it has none.
fn read_pid(fd: c_int) -> libc::pid_t {
    let mut buf = [0u8; 12];
    let n = sys::read_at_start(fd, &mut buf).unwrap_or(0);
    let mut pid: libc::pid_t = 0;
    for &b in buf[..n].iter().take_while(|b| b.is_ascii_digit()) {
        pid = match pid
            .checked_mul(10)
            .and_then(|p| p.checked_add(libc::pid_t::from(b - b'0')))
        {
            Some(p) => p,
            None => return 0,
        };
    }
    pid
}

/// `pid` in decimal and a newline, formatted into `buf` without `core::fmt`
/// (which is not documented as async-signal-safe).
pub(super) fn decimal_line(pid: libc::pid_t, buf: &mut [u8; 12]) -> &[u8] {
    let digits = crate::ready::decimal(i64::from(pid), &mut buf[..11]).len();
    buf[11] = b'\n';
    &buf[11 - digits..]
}
