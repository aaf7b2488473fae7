//! [`DaemonError`]: why the daemon hand-shake failed, and [`SetupStep`],
//! the step of the child's set-up a failure names. `Copy` and
//! allocation-free like the core [`Error`] it wraps, so the launcher can
//! look at it right after `fork`; twelve bytes, off the token path.

use core::fmt;

use crate::error::{Errno, Error, TS_EOS, TS_ERR};
use crate::process::ChildExit;

/// Why [`fork_daemon`](super::fork_daemon), a
/// [`DaemonParent`](super::DaemonParent) method or
/// [`PidFile::lock`](super::PidFile::lock) failed.
///
/// The hand-shake's own outcomes have their own variants; a failure of the
/// token pipe or of process control underneath is the core [`Error`],
/// wrapped in [`Core`](DaemonError::Core) (`?` converts one into the
/// other). [`exit_code`](DaemonError::exit_code) gives a launcher's exit
/// status, [`core_status`](DaemonError::core_status) the original's code, and
/// [`errno`](DaemonError::errno) the OS error behind it, as on `Error`.
///
/// ```standalone_crate
/// use tokenpipe::Error;
/// use tokenpipe::daemon::{DaemonError, DaemonOptions, Forked, fork_daemon};
///
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new()) }? {
///     Forked::Parent(mut daemon) => match daemon.wait_ready() {
///         Ok(ready) => assert!(ready),
///         Err(DaemonError::DiedBeforeReady) => panic!("died: {:?}", daemon.wait()),
///         Err(DaemonError::Core(Error::Os(errno))) => panic!("read failed: {errno}"),
///         Err(e) => panic!("{e}"),
///     },
///     Forked::Child(daemon) => {
///         daemon.notifier.notify(true)?;
///         std::process::exit(0);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The token pipe or process control failed, as the core [`Error`]
    /// says: [`Os`](Error::Os) when a pipe or the fork cannot be made or a
    /// system call fails, [`TimedOut`](Error::TimedOut) from
    /// [`wait_ready_timeout`](super::DaemonParent::wait_ready_timeout),
    /// [`Closed`](Error::Closed) when the answer was taken already,
    /// [`NotAChild`](Error::NotAChild) from the process control of a
    /// double-forked daemon. Its message is the core error's.
    #[error(transparent)]
    Core(#[from] Error),
    /// [`fork_daemon`](super::fork_daemon): a step of the child's set-up
    /// failed, with this errno. The child has been reaped. Also from
    /// [`PidFile::lock`](super::PidFile::lock) (step `PidFile`), where no
    /// child is involved.
    #[error("the daemon's set-up failed at {step}: {errno}")]
    SetupFailed {
        /// The step that failed.
        step: SetupStep,
        /// Why it failed.
        errno: Errno,
    },
    /// [`fork_daemon`](super::fork_daemon): the child died (or closed the
    /// pipe) during its set-up without a report. It has been killed if it
    /// was still alive, and reaped; how it ended is here when it was our
    /// child (`None` for a double-forked daemon, whose status goes to its
    /// own parent).
    #[error("the daemon child died during set-up before reporting{}", DiedHow(*.0))]
    DiedDuringSetup(Option<ChildExit>),
    /// [`fork_daemon`](super::fork_daemon): another process holds the pid
    /// file's lock: another instance is running, with this pid (0 if it
    /// lives in another pid namespace and wrote none). Its file was not
    /// touched. Also from [`PidFile::lock`](super::PidFile::lock).
    #[error("another instance is already running (pid {0} holds the pid file's lock)")]
    AlreadyRunning(i32),
    /// [`DaemonParent::wait_ready`](super::DaemonParent::wait_ready): end
    /// of stream before the readiness token, so the daemon exited, died, or
    /// dropped its notifier without reporting.
    #[error(
        "the daemon exited, died or dropped its notifier before reporting readiness (end of stream)"
    )]
    DiedBeforeReady,
    /// A token that the protocol does not define arrived (the daemon
    /// hand-shake knows only 0 and 1).
    #[error("unexpected token {0} (the daemon hand-shake defines only 0 = failed and 1 = ready)")]
    UnexpectedToken(u8),
}

impl DaemonError {
    /// The original's status code, as Bitcoin Core's C++ returns it:
    /// [`TS_EOS`] (−2) for end of stream at a known step
    /// ([`DiedDuringSetup`](DaemonError::DiedDuringSetup),
    /// [`DiedBeforeReady`](DaemonError::DiedBeforeReady)), the core
    /// error's own for [`Core`](DaemonError::Core), [`TS_ERR`] (−1) for
    /// everything else. Not an exit code (`exit(-1)` exits 255): for that,
    /// [`exit_code`](Self::exit_code).
    ///
    /// ```
    /// use tokenpipe::daemon::DaemonError;
    /// use tokenpipe::{Error, TS_EOS, TS_ERR};
    ///
    /// assert_eq!(DaemonError::DiedBeforeReady.core_status(), TS_EOS);
    /// assert_eq!(DaemonError::AlreadyRunning(42).core_status(), TS_ERR);
    /// assert_eq!(DaemonError::from(Error::Eos).core_status(), TS_EOS);
    /// ```
    #[must_use]
    pub const fn core_status(self) -> i32 {
        match self {
            DaemonError::Core(e) => e.status(),
            // End of stream, seen at a known step of the hand-shake.
            DaemonError::DiedDuringSetup(_) | DaemonError::DiedBeforeReady => TS_EOS,
            _ => TS_ERR,
        }
    }

    /// The exit status a launcher gives for this failure, as the
    /// `daemon_wait` example's table has it: 1 the daemon could not be set
    /// up or its report could not be read, 2 it died before it was ready,
    /// 3 it did not report in time
    /// ([`wait_ready_timeout`](super::DaemonParent::wait_ready_timeout)),
    /// 4 another instance holds the pid file. (0 is "ready", which is no
    /// error.) For `std::process::exit(e.exit_code())`.
    ///
    /// ```
    /// use tokenpipe::daemon::DaemonError;
    /// use tokenpipe::Error;
    ///
    /// assert_eq!(DaemonError::DiedBeforeReady.exit_code(), 2);
    /// assert_eq!(DaemonError::from(Error::TimedOut).exit_code(), 3);
    /// assert_eq!(DaemonError::AlreadyRunning(42).exit_code(), 4);
    /// assert_eq!(DaemonError::UnexpectedToken(7).exit_code(), 1);
    /// ```
    #[must_use]
    pub const fn exit_code(self) -> i32 {
        match self {
            DaemonError::DiedDuringSetup(_)
            | DaemonError::DiedBeforeReady
            | DaemonError::Core(Error::Eos) => 2,
            DaemonError::Core(Error::TimedOut) => 3,
            DaemonError::AlreadyRunning(_) => 4,
            _ => 1,
        }
    }

    /// The OS error behind this error, if a system call reported one: the
    /// errno of [`SetupFailed`](DaemonError::SetupFailed), the core error's
    /// for [`Core`](DaemonError::Core); `None` for the rest.
    ///
    /// ```
    /// use tokenpipe::daemon::{DaemonError, SetupStep};
    /// use tokenpipe::{Errno, Error};
    ///
    /// let failed = DaemonError::SetupFailed { step: SetupStep::Chdir, errno: Errno::EACCES };
    /// assert_eq!(failed.errno(), Some(Errno::EACCES));
    /// assert_eq!(DaemonError::from(Error::Os(Errno::EMFILE)).errno(), Some(Errno::EMFILE));
    /// assert_eq!(DaemonError::DiedBeforeReady.errno(), None);
    /// ```
    #[must_use]
    pub const fn errno(self) -> Option<Errno> {
        match self {
            DaemonError::Core(e) => e.errno(),
            DaemonError::SetupFailed { errno, .. } => Some(errno),
            _ => None,
        }
    }
}

/// The end of [`DaemonError::DiedDuringSetup`]'s message: how the child
/// ended.
struct DiedHow(Option<ChildExit>);

impl fmt::Display for DiedHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(exit) => write!(f, " (it {exit})"),
            None => f.write_str(" (not our child: its exit status went to its own parent)"),
        }
    }
}

/// A set-up step that failed in the child, as [`DaemonError::SetupFailed`]
/// reports it.
///
/// ```
/// use tokenpipe::daemon::SetupStep;
/// assert_eq!(SetupStep::PidFile.to_string(), "the pid file");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum SetupStep {
    /// `setsid()`.
    Setsid = 1,
    /// The second `fork()` of a double fork.
    Fork = 2,
    /// Opening, checking, locking, truncating or writing the pid file
    /// (`EAGAIN`: the file at its path kept being replaced while it was
    /// locked; `ELOOP`, `EISDIR`, `EINVAL`, `EPERM`, `EMLINK`: it is not
    /// safe to write, see
    /// [`DaemonOptions::pid_file`](super::DaemonOptions::pid_file)).
    PidFile = 3,
    /// `chdir("/")`.
    Chdir = 4,
    /// Opening `/dev/null` and putting it on fds 0, 1 and 2.
    Stdio = 5,
}

impl SetupStep {
    pub(super) const ALL: [SetupStep; 5] = [
        SetupStep::Setsid,
        SetupStep::Fork,
        SetupStep::PidFile,
        SetupStep::Chdir,
        SetupStep::Stdio,
    ];

    pub(super) fn from_u8(raw: u8) -> Option<SetupStep> {
        SetupStep::ALL.into_iter().find(|s| *s as u8 == raw)
    }
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetupStep::Setsid => "setsid()",
            SetupStep::Fork => "the second fork()",
            SetupStep::PidFile => "the pid file",
            SetupStep::Chdir => "chdir(\"/\")",
            SetupStep::Stdio => "pointing stdio at /dev/null",
        })
    }
}
