//! The launch's private notify socket: a path in a fresh directory whose
//! name only the program is told, removed with it.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::super::NotifyAddr;
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error};
use crate::sys::{self, UnixAddr};

/// This launch's private notify socket; removed with its directory when
/// dropped.
#[derive(Debug)]
pub(super) struct NotifySocket {
    pub(super) fd: TokenPipeEnd,
    pub(super) addr: NotifyAddr,
    dir: PathBuf,
}

/// Tells this process's launches apart.
static LAUNCHES: AtomicU32 = AtomicU32::new(0);

impl NotifySocket {
    /// Binds a socket in the first of the candidate directories where that
    /// works: the temporary directory (`TMPDIR`), `XDG_RUNTIME_DIR`, then
    /// `/tmp`. A long `TMPDIR` whose paths do not fit a socket address
    /// (about 108 bytes), one that is not writable, or one that is gone,
    /// costs the launch nothing. `None` when no candidate works: the launch
    /// then offers the token pipe alone, which is better than no launch.
    pub(super) fn bind() -> Option<NotifySocket> {
        let mut tried: Vec<PathBuf> = Vec::new();
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let candidates = [
            Some(std::env::temp_dir()),
            runtime,
            Some(PathBuf::from("/tmp")),
        ];
        for base in candidates.into_iter().flatten() {
            if !base.is_absolute() || tried.contains(&base) {
                continue;
            }
            if let Ok(socket) = NotifySocket::bind_in(&base) {
                return Some(socket);
            }
            tried.push(base);
        }
        None
    }

    /// A socket at `base/tokenpipe-PID.N.NANOS/notify`: short, so that it
    /// fits a socket address under most bases.
    pub(super) fn bind_in(base: &Path) -> Result<NotifySocket, Error> {
        let n = LAUNCHES.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("tokenpipe-{}.{n}.{nanos:x}", std::process::id()));
        let path = dir.join("notify");
        // Check the length before making anything that would need removing.
        let unix = UnixAddr::new(path.as_os_str().as_bytes(), false)
            .ok_or(Error::Os(Errno::from_raw(libc::ENAMETOOLONG)))?;
        let fd = TokenPipeEnd::from_owned(sys::unix_datagram_socket().map_err(Error::Os)?)
            .above_stdio()?;
        // On Linux the kernel names each sender (its pid and uid), and the
        // launch hears only this user's processes and the ones it
        // contains, whatever their user: a program started with
        // `Command::uid` speaks as another. So the directory can be entered
        // (not listed) by anyone, and the socket written by anyone: who is
        // heard is decided by who sent, not by who could reach the path.
        // Elsewhere no sender is named: the directory is this user's alone.
        #[cfg(tokenpipe_linux_like)]
        sys::pass_credentials(fd.as_raw_fd()).map_err(Error::Os)?;
        #[cfg(tokenpipe_linux_like)]
        const DIR_MODE: u32 = 0o711;
        #[cfg(not(tokenpipe_linux_like))]
        const DIR_MODE: u32 = 0o700;
        // A path rather than a Linux abstract name: an abstract name can be
        // found in /proc/net/unix by anyone, and some senders (the
        // sd-notify crate 0.5) connect to paths only.
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(os_error)?;
        // From here dropping `socket` removes the directory.
        let socket = NotifySocket {
            fd,
            addr: NotifyAddr::from_unix(unix),
            dir,
        };
        sys::bind(socket.fd.as_raw_fd(), &unix).map_err(Error::Os)?;
        #[cfg(tokenpipe_linux_like)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                .map_err(os_error)?;
        }
        Ok(socket)
    }
}

fn os_error(e: io::Error) -> Error {
    Error::Os(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

impl Drop for NotifySocket {
    /// Removes the socket's path and its directory with `unlink` and
    /// `rmdir`, which need no fd: with the fd table full, a walk of the
    /// directory (`remove_dir_all`) could not even start, and left both
    /// behind. The directory holds nothing else.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("notify"));
        let _ = std::fs::remove_dir(&self.dir);
    }
}
