//! [`DaemonOptions`]: how the child detaches.

use core::ffi::CStr;

/// How the child detaches; build it with [`DaemonOptions::new`] and the
/// `const` methods, so options can be added without breaking anyone.
///
/// | option | default | what the child does |
/// |---|---|---|
/// | [`chdir_root`](Self::chdir_root) | on | `chdir("/")` |
/// | [`close_stdio`](Self::close_stdio) | on | stdin, stdout, stderr onto `/dev/null` |
/// | [`umask`](Self::umask) | `None` (inherited) | `umask(mask)` |
/// | [`double_fork`](Self::double_fork) | off | a second fork, so the daemon is not a session leader |
/// | [`pid_file`](Self::pid_file) | `None` | a locked pid file; a second instance fails with [`DaemonError::AlreadyRunning`](super::DaemonError::AlreadyRunning) |
///
/// `chdir_root` is on by default because `daemon(7)` asks for it: a daemon
/// that keeps its start directory keeps that file system busy. bitcoind
/// does **not** do it (it calls `fork_daemon(1, 0, ..)`, `nochdir = 1`,
/// because its data paths may be relative); `.chdir_root(false)` is
/// bitcoind's behaviour.
///
/// ```
/// use tokenpipe::daemon::DaemonOptions;
///
/// const BITCOIND: DaemonOptions = DaemonOptions::new().chdir_root(false);
/// assert!(!BITCOIND.chdir_root && BITCOIND.close_stdio);
/// let o = DaemonOptions::new().umask(Some(0o027)).double_fork(true).pid_file(c"app.pid");
/// assert_eq!(o.pid_file, Some(c"app.pid"));
/// assert_eq!(DaemonOptions::default(), DaemonOptions::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DaemonOptions<'a> {
    /// `chdir("/")`, so the daemon keeps no directory (or file system) busy.
    pub chdir_root: bool,
    /// Point stdin, stdout and stderr at `/dev/null`, so the daemon holds
    /// no terminal and writes to no closed one.
    pub close_stdio: bool,
    /// The file mode creation mask to set in the daemon, or `None` to keep
    /// the launcher's.
    pub umask: Option<libc::mode_t>,
    /// Fork a second time after `setsid`: the daemon is then not a session
    /// leader and can never acquire a controlling terminal. It is then not
    /// the launcher's child either; see
    /// [`DaemonParent::wait`](super::DaemonParent::wait).
    pub double_fork: bool,
    /// A pid file that the daemon creates, locks for its whole life and
    /// writes its pid into; see [`DaemonOptions::pid_file`].
    pub pid_file: Option<&'a CStr>,
}

impl<'a> DaemonOptions<'a> {
    /// The defaults: `chdir("/")`, stdio on `/dev/null`, nothing else.
    #[must_use]
    pub const fn new() -> DaemonOptions<'a> {
        DaemonOptions {
            chdir_root: true,
            close_stdio: true,
            umask: None,
            double_fork: false,
            pid_file: None,
        }
    }

    /// Whether the child does `chdir("/")` (default on; bitcoind: off).
    #[must_use]
    pub const fn chdir_root(mut self, on: bool) -> DaemonOptions<'a> {
        self.chdir_root = on;
        self
    }

    /// Whether the child points stdin, stdout and stderr at `/dev/null`
    /// (default on).
    #[must_use]
    pub const fn close_stdio(mut self, on: bool) -> DaemonOptions<'a> {
        self.close_stdio = on;
        self
    }

    /// The umask the daemon sets before it creates anything (its pid file
    /// among them); `None` (the default) keeps the launcher's.
    #[must_use]
    pub const fn umask(mut self, mask: Option<libc::mode_t>) -> DaemonOptions<'a> {
        self.umask = mask;
        self
    }

    /// Whether to fork twice (default off). The intermediate child calls
    /// `setsid`, forks the daemon, reports its pid, and keeps it unreaped
    /// (so the pid cannot be reused) until the launcher has the daemon's own
    /// set-up report; then it exits and the launcher reaps it. The launcher still
    /// learns the daemon's own pid and its readiness.
    #[must_use]
    pub const fn double_fork(mut self, on: bool) -> DaemonOptions<'a> {
        self.double_fork = on;
        self
    }

    /// Keep a pid file at `path`. A relative path is relative to the
    /// launcher's working directory at the call, whatever `chdir_root`
    /// does.
    ///
    /// The daemon itself (after the second fork, if any) opens the file
    /// without truncating it or following a symbolic link, checks that it
    /// is safe to write (below), takes an `fcntl` write lock on it, checks
    /// that `path` still names the file it locked, and only then truncates
    /// it and writes its pid and a newline, all before its set-up report.
    /// So a second instance fails at once, with
    /// [`DaemonError::AlreadyRunning`](super::DaemonError::AlreadyRunning)
    /// naming the running daemon's pid, and never truncates the running
    /// daemon's file; a stale file whose daemon is gone (nobody holds the
    /// lock) is taken over. The lock lasts as long as the daemon keeps the
    /// [`PidFile`](super::PidFile) it is given, and ends when it exits.
    ///
    /// The check matters when the previous daemon exits just as this one
    /// starts: it removes its file, and this one's lock on the file it had
    /// already opened would exclude nobody. The daemon then opens the path
    /// again (a few times at most; then
    /// [`DaemonError::SetupFailed`](super::DaemonError::SetupFailed) with
    /// [`SetupStep::PidFile`](super::SetupStep::PidFile) and `EAGAIN`: the
    /// path keeps changing).
    ///
    /// The daemon writes only into a file that is safe to write, as
    /// systemd requires of a `PIDFile=`, and refuses anything else with
    /// [`DaemonError::SetupFailed`](super::DaemonError::SetupFailed) and
    /// [`SetupStep::PidFile`](super::SetupStep::PidFile), before locking
    /// it and leaving it exactly as it was:
    /// - a symbolic link at `path` (opened with `O_NOFOLLOW`): `ELOOP`
    ///   (`EMLINK` on FreeBSD and DragonFly, `EFTYPE` on NetBSD). Followed, `d.pid -> victim` would truncate `victim`, and a dangling
    ///   link would create its target. Links in the directories above the
    ///   file are followed: keep the pid file in a directory only trusted
    ///   users can write, such as `/run`;
    /// - a directory: `EISDIR`; a FIFO or a device: `EINVAL` (a socket:
    ///   `ENXIO` on Linux, `EOPNOTSUPP` elsewhere, from `open`). It is
    ///   opened with `O_NONBLOCK`, so a FIFO or a terminal cannot make the
    ///   set-up hang;
    /// - a file owned by a user other than the daemon's effective user and
    ///   other than root: `EPERM`. Its owner could rewrite the pid, and
    ///   whoever signals that pid (a root launcher, an init script) would
    ///   signal the process it names;
    /// - a file writable by its group or by others (`mode & 0o022`):
    ///   `EPERM`. It is refused, not `chmod`ed, because an fd opened while
    ///   it was writable stays writable; the daemon creates its file `0644`
    ///   less the umask, so such a file is someone else's doing. Fix it by
    ///   hand (`chmod 644`, or remove it);
    /// - a file with a second name (a hard link): `EMLINK`, because the link
    ///   could name any file of root's on the same file system.
    ///
    /// A file this daemon created passes, and so does a stale one a
    /// previous run left (the daemon's user's or root's, `0644` or
    /// stricter, one name). A file system that does not keep
    /// owners and modes (NFS squashing root to `nobody`, FAT) can make even
    /// a new file fail these checks: keep the pid file on a local one.
    ///
    /// `fcntl` locks belong to a process and end when it closes *any* fd of
    /// the file: the daemon must not open its own pid file again. They are
    /// not inherited by children, and end at `exec`.
    #[must_use]
    pub const fn pid_file<'b>(self, path: &'b CStr) -> DaemonOptions<'b> {
        DaemonOptions {
            chdir_root: self.chdir_root,
            close_stdio: self.close_stdio,
            umask: self.umask,
            double_fork: self.double_fork,
            pid_file: Some(path),
        }
    }

    /// [`pid_file`](Self::pid_file) named by a [`PidFilePath`]: a `Path`
    /// converted before the fork (feature `std`).
    ///
    /// ```
    /// use tokenpipe::daemon::{DaemonOptions, PidFilePath};
    /// use std::path::Path;
    ///
    /// let path = PidFilePath::new(Path::new("/run/app.pid"))?;
    /// let o = DaemonOptions::new().pid_file_path(&path);
    /// assert_eq!(o.pid_file, Some(c"/run/app.pid"));
    /// # Ok::<(), tokenpipe::daemon::DaemonError>(())
    /// ```
    #[cfg(feature = "std")]
    #[must_use]
    pub fn pid_file_path<'b>(self, path: &'b PidFilePath) -> DaemonOptions<'b> {
        self.pid_file(&path.0)
    }
}

/// A pid file's path for [`DaemonOptions::pid_file_path`] (feature `std`):
/// a `Path` (or `&str`, `PathBuf`) turned into the C string the daemon's
/// set-up opens, before the fork, where allocating is still allowed.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PidFilePath(std::ffi::CString);

#[cfg(feature = "std")]
impl PidFilePath {
    /// Converts `path`.
    ///
    /// # Errors
    /// [`DaemonError::SetupFailed`](super::DaemonError::SetupFailed) at
    /// step [`PidFile`](super::SetupStep::PidFile) with `EINVAL` for a path
    /// with a NUL byte (no file can have that name), and with `ENOENT` for
    /// an empty one, as `open` would say; nothing is started.
    pub fn new(path: impl AsRef<std::path::Path>) -> Result<PidFilePath, super::DaemonError> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_ref().as_os_str().as_bytes();
        let refused = |errno| super::DaemonError::SetupFailed {
            step: super::SetupStep::PidFile,
            errno,
        };
        if bytes.is_empty() {
            return Err(refused(crate::Errno::from_raw(libc::ENOENT)));
        }
        std::ffi::CString::new(bytes)
            .map(PidFilePath)
            .map_err(|_| refused(crate::Errno::from_raw(libc::EINVAL)))
    }

    /// The path as the C string the set-up opens.
    #[must_use]
    pub fn as_c_str(&self) -> &CStr {
        &self.0
    }
}

impl Default for DaemonOptions<'_> {
    /// The same as [`DaemonOptions::new`].
    fn default() -> Self {
        DaemonOptions::new()
    }
}
