//! Handing an end to another program across `exec`: the fd number travels
//! in an environment variable, and the end is inheritable in that one child
//! only.
//!
//! This is also how s6's readiness notification works: the supervisor
//! gives the daemon a pipe's write end on a known fd; the daemon writes a
//! newline when it is ready and closes the fd. A daemon written with this
//! crate can serve s6 with `end.token_write(b'\n')` then `drop(end)`, and a
//! supervisor written with it reads that `b'\n'` (or [`Error::Eos`] if the
//! daemon died first) with [`TokenPipeEnd::token_read_timeout`].

use core::ffi::{CStr, c_int};

use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};
use crate::sys;

/// The capacity of [`TokenPipeEnd::env_value`]'s string: the longest
/// decimal `c_int` ("-2147483648").
pub const ENV_VALUE_LEN: usize = 11;

/// Why [`TokenPipeEnd::from_env`] found no usable end.
///
/// ```
/// use tokenpipe::{HandoffError, parse_env_value};
/// assert_eq!(parse_env_value(b"abc"), Err(HandoffError::Malformed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffError {
    /// The environment variable is not set: this program was not started
    /// with an end handed to it.
    #[error("the environment variable that should name the pipe fd is not set")]
    NotSet,
    /// The value is not a plain non-negative decimal fd number that fits in
    /// a `c_int` (no sign, no spaces, no other characters).
    #[error(
        "the environment variable is not a decimal fd number (expected digits only, at most 2147483647)"
    )]
    Malformed,
    /// The value names an fd that is not open in this process: the parent
    /// did not make it inheritable, or it was closed.
    #[error("the environment variable names fd {fd}, which is not open in this process")]
    NotOpen {
        /// The fd number the variable named.
        fd: c_int,
    },
    /// The value names an open fd that is not a pipe or FIFO.
    #[error("the environment variable names fd {fd}, which is open but is not a pipe")]
    NotAPipe {
        /// The fd number the variable named.
        fd: c_int,
    },
    /// A system call failed unexpectedly while checking the fd.
    #[error("checking the handed-over fd failed: {0}")]
    Os(Errno),
}

/// Parses the value of a hand-off variable: a non-negative decimal fd
/// number, digits only, that fits in a `c_int`. This is the check
/// [`TokenPipeEnd::from_env`] applies before it looks at the fd.
///
/// # Errors
/// [`HandoffError::Malformed`] for anything else: empty, signs, spaces,
/// separators, or a number above `c_int::MAX`.
///
/// ```
/// use tokenpipe::{HandoffError, parse_env_value};
///
/// assert_eq!(parse_env_value(b"7"), Ok(7));
/// for bad in [&b""[..], b"-1", b"+3", b" 3", b"3,4", b"99999999999"] {
///     assert_eq!(parse_env_value(bad), Err(HandoffError::Malformed));
/// }
/// ```
pub fn parse_env_value(value: &[u8]) -> core::result::Result<c_int, HandoffError> {
    if value.is_empty() {
        return Err(HandoffError::Malformed);
    }
    let mut fd: c_int = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(HandoffError::Malformed);
        }
        fd = fd
            .checked_mul(10)
            .and_then(|v| v.checked_add(c_int::from(b - b'0')))
            .ok_or(HandoffError::Malformed)?;
    }
    Ok(fd)
}

impl TokenPipeEnd {
    /// Makes the end inheritable across `exec` (`on = true`) or
    /// close-on-exec again (`on = false`): `fcntl(F_GETFD)` then
    /// `fcntl(F_SETFD)` with only `FD_CLOEXEC` changed.
    ///
    /// An inheritable end leaks into *every* program any thread of this
    /// process starts until it is made close-on-exec again. To hand an end
    /// to one child, prefer `pass_to` (with `std`), which never makes
    /// the parent's fd inheritable.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed end, [`Error::Os`] if `fcntl` fails.
    ///
    /// # References
    /// - [POSIX `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
    /// - [Linux `fcntl`](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (_reader, writer) = TokenPipe::make()?.split();
    /// writer.set_inheritable(true)?;
    /// // SAFETY: F_GETFD on an open fd touches no memory.
    /// let flags = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_GETFD) };
    /// assert_eq!(flags & libc::FD_CLOEXEC, 0);
    /// writer.set_inheritable(false)?;
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[doc(alias = "FD_CLOEXEC")]
    pub fn set_inheritable(&self, on: bool) -> Result<()> {
        let fd = self.open_fd()?;
        if on {
            sys::clear_cloexec(fd)
        } else {
            sys::set_cloexec(fd)
        }
        .map_err(Error::Os)
    }

    /// The value to put in the environment of a program this end is handed
    /// to: the fd number in decimal, formatted on the stack. A closed end
    /// gives `"-1"`, which [`from_env`](Self::from_env) rejects.
    ///
    /// ```
    /// use tokenpipe::{TokenPipe, TokenPipeEnd};
    ///
    /// let reader = TokenPipe::make()?.take_read_end();
    /// assert_eq!(reader.env_value().as_str(), reader.as_raw_fd().to_string());
    /// assert_eq!(TokenPipeEnd::new().env_value().as_str(), "-1");
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[must_use]
    #[cfg(tokenpipe_heapless)]
    #[cfg_attr(docsrs, doc(cfg(not(target_os = "aix"))))]
    pub fn env_value(&self) -> heapless::String<ENV_VALUE_LEN> {
        let mut out = heapless::String::new();
        // core::fmt formats integers on the stack; the longest c_int has
        // ENV_VALUE_LEN characters, so this cannot run out of room.
        let _ = core::fmt::Write::write_fmt(&mut out, format_args!("{}", self.as_raw_fd()));
        out
    }

    /// Takes the end a parent handed to this program: reads the variable
    /// `name`, parses the fd number ([`parse_env_value`]), checks the fd is
    /// open (`fcntl(F_GETFD)`) and a pipe (`fstat`), and sets close-on-exec
    /// on it so it goes no further than this program. On Apple and NetBSD
    /// it also sets `F_SETNOSIGPIPE` (`fcntl`), so writes on the end never
    /// raise `SIGPIPE`; the flag belongs to the open pipe, so the parent's
    /// copy of the end gets it too, for good (see
    /// [`token_write`](Self::token_write)).
    ///
    /// The variable is left as it is; remove it (after this call, before
    /// starting other threads) if programs this one starts should not see a
    /// stale number.
    ///
    /// # Safety
    /// - The fd the variable names must belong to nobody else in this
    ///   process: call this once per variable, and not for an fd something
    ///   else (std's stdin, another library) already owns. The returned end
    ///   closes it.
    /// - No other thread may change the environment during the call
    ///   (`getenv` is not safe against a concurrent `setenv`).
    ///
    /// # Errors
    /// [`HandoffError::NotSet`], [`Malformed`](HandoffError::Malformed),
    /// [`NotOpen`](HandoffError::NotOpen),
    /// [`NotAPipe`](HandoffError::NotAPipe); nothing is closed or changed
    /// on error.
    ///
    /// # References
    /// - [POSIX `getenv`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getenv.html)
    /// - [POSIX `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
    /// - [POSIX `fstat`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
    ///
    /// ```standalone_crate
    /// use tokenpipe::{HandoffError, TokenPipeEnd};
    ///
    /// // SAFETY: single-threaded here, and nothing else owns the fd.
    /// let got = unsafe { TokenPipeEnd::from_env(c"MY_APP_NO_SUCH_VARIABLE") };
    /// assert_eq!(got.err(), Some(HandoffError::NotSet));
    /// ```
    #[allow(unsafe_code)] // Declares the ownership and environment contract.
    pub unsafe fn from_env(name: &CStr) -> core::result::Result<TokenPipeEnd, HandoffError> {
        // SAFETY: our caller keeps the environment unchanged during the call.
        let fd = unsafe { env_fd(name) }?;
        check_pipe(fd)?;
        // SAFETY: open, a pipe, and (by our caller's contract) ours alone.
        unsafe { adopt(fd) }
    }
}

// `from_env` in its three steps, for `ready::Notifier::from_env`, which
// refuses more between them (stdio, a read end) and must change nothing
// when it does.

/// The fd number the variable `name` holds (getenv, [`parse_env_value`]).
///
/// # Safety
/// No other thread may change the environment during the call.
#[allow(unsafe_code)] // getenv's contract becomes this function's.
pub(crate) unsafe fn env_fd(name: &CStr) -> core::result::Result<c_int, HandoffError> {
    // SAFETY: our caller keeps the environment unchanged during the call.
    let value = unsafe { sys::getenv(name) }.ok_or(HandoffError::NotSet)?;
    parse_env_value(value)
}

/// Checks that `fd` is open (`fcntl(F_GETFD)`) and a pipe (`fstat`),
/// changing nothing.
pub(crate) fn check_pipe(fd: c_int) -> core::result::Result<(), HandoffError> {
    match sys::fcntl_get(fd, libc::F_GETFD) {
        Ok(_) => {}
        Err(Errno::EBADF) => return Err(HandoffError::NotOpen { fd }),
        Err(e) => return Err(HandoffError::Os(e)),
    }
    match sys::file_id(fd) {
        Ok(id) if id.is_fifo => Ok(()),
        Ok(_) => Err(HandoffError::NotAPipe { fd }),
        Err(e) => Err(HandoffError::Os(e)),
    }
}

/// Takes a checked fd as an end: close-on-exec, and on Apple and NetBSD
/// `F_SETNOSIGPIPE`.
///
/// # Safety
/// `fd` must be open, a pipe, and owned by nothing else: the end closes it.
#[allow(unsafe_code)] // Declares the ownership contract.
pub(crate) unsafe fn adopt(fd: c_int) -> core::result::Result<TokenPipeEnd, HandoffError> {
    sys::set_cloexec(fd).map_err(HandoffError::Os)?;
    #[cfg(not(tokenpipe_nosigpipe))]
    let end = TokenPipeEnd::from_owned(fd);
    // Apple and NetBSD: no SIGPIPE from an end taken here, set once.
    #[cfg(tokenpipe_nosigpipe)]
    let end = {
        sys::fcntl_set_nosigpipe(fd).map_err(HandoffError::Os)?;
        TokenPipeEnd::from_owned_nosigpipe(fd)
    };
    Ok(end)
}

#[cfg(tokenpipe_pass_to)]
impl TokenPipeEnd {
    /// Hands this end to the program `cmd` will start: sets the variable
    /// `env_name` to the fd number and, in the child only (between `fork`
    /// and `exec`, with `pre_exec`), clears close-on-exec on the fd.
    ///
    /// The parent's fd stays close-on-exec throughout, so programs that
    /// other threads start at the same moment never inherit it. The child
    /// takes the end with [`from_env`](Self::from_env).
    ///
    /// Keep this end open until `spawn` returns. The `Command` remembers
    /// the fd's number, the pipe it names (`fstat`'s device and inode) and
    /// which end it is (its access mode, `fcntl(F_GETFL) & O_ACCMODE`: the
    /// two ends of a Linux pipe share one inode, so only the mode tells the
    /// write end from the read end). If the end was closed by then and its
    /// number given to another file, even the other end of the same pipe,
    /// `spawn` fails with `EBADF` instead of handing the child the wrong
    /// file. The `Command` holds no fd of its own, so dropping this end
    /// after `spawn` is all it takes for the parent to see end of stream
    /// when the child dies.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed end, [`Error::Os`] if `fstat` or
    /// `fcntl` fails. In the child, a changed fd or an `fcntl` failure
    /// makes `spawn` fail.
    ///
    /// # References
    /// - [`CommandExt::pre_exec`](std::os::unix::process::CommandExt::pre_exec)
    /// - [POSIX `fcntl`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
    /// - [POSIX `fstat`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    /// use std::process::Command;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// let mut cmd = Command::new("/bin/sh");
    /// cmd.args(["-c", r#"printf '\001' >"/dev/fd/$READY_FD""#]);
    /// writer.pass_to(&mut cmd, "READY_FD")?;
    /// let status = cmd.status()?;
    /// drop(writer);
    /// assert!(status.success());
    /// assert_eq!(reader.token_read()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pass_to(&self, cmd: &mut std::process::Command, env_name: &str) -> Result<()> {
        use std::os::unix::process::CommandExt;

        let fd = self.open_fd()?;
        let handed = sys::file_id(fd).map_err(Error::Os)?;
        let handed_mode = sys::access_mode(fd).map_err(Error::Os)?;
        cmd.env(env_name, fd.to_string());
        let make_inheritable = move || {
            let os_err = |e: Errno| std::io::Error::from_raw_os_error(e.raw());
            // Still the same end of the pipe we were given? If the end was
            // closed before spawn, the number is gone or names another file
            // now, or the pipe's other end (same inode on Linux).
            if sys::file_id(fd).map_err(os_err)? != handed
                || sys::access_mode(fd).map_err(os_err)? != handed_mode
            {
                return Err(os_err(Errno::EBADF));
            }
            sys::clear_cloexec(fd).map_err(os_err)
        };
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec. It makes
        // fstat and fcntl calls (async-signal-safe), allocates nothing (it
        // captures only integers and a plain struct), and builds io::Errors
        // from raw errnos (no allocation either).
        unsafe {
            cmd.pre_exec(make_inheritable);
        }
        Ok(())
    }
}
