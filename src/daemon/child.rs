//! The daemon's side of the fork: its set-up (detach, pid file, working
//! directory, stdio), reported to the launcher before anything else, and
//! what it holds afterwards, [`DaemonChild`].

use super::pid_file::{PidFile, PidFileError};
use super::report::Report;
use super::{DaemonOptions, ReadyNotifier, SetupStep, pipe_above_stdio};
use crate::end::TokenPipeEnd;
use crate::error::Errno;
use crate::sys;

/// What the daemon holds after its set-up: the notifier it reports with,
/// and its pid file, if it was asked to keep one.
///
/// ```standalone_crate
/// use tokenpipe::TokenPipe;
/// use tokenpipe::daemon::{DaemonChild, DaemonOptions, Forked, fork_daemon};
///
/// let dir = std::env::temp_dir().join(format!("tokenpipe-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = std::ffi::CString::new(dir.join("app.pid").into_os_string().into_encoded_bytes())?;
/// // The daemon "serves" until the launcher has looked at the pid file.
/// let (until_checked, checked) = TokenPipe::make()?.split();
/// // SAFETY: this program has no other threads.
/// match unsafe { fork_daemon(DaemonOptions::new().pid_file(&path)) }? {
///     Forked::Parent(mut daemon) => {
///         let written = std::fs::read_to_string(dir.join("app.pid"))?;
///         assert_eq!(written, format!("{}\n", daemon.pid()));
///         assert!(daemon.wait_ready()?);
///         drop(checked);
///         assert!(daemon.wait()?.success());
///         // The daemon removed its pid file on its way out.
///         assert!(!dir.join("app.pid").exists());
///         std::fs::remove_dir(&dir)?;
///     }
///     Forked::Child(DaemonChild { notifier, pid_file, .. }) => {
///         drop(checked);
///         notifier.notify(true)?;
///         let _ = until_checked.token_read(); // ... serve ...
///         drop(pid_file); // removes the file and releases the lock
///         std::process::exit(0);
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "the launcher waits for notifier.notify(); dropping it reports failure"]
pub struct DaemonChild<'a> {
    /// The one-shot readiness report to the launcher.
    pub notifier: ReadyNotifier,
    /// The locked pid file, if [`DaemonOptions::pid_file`] asked for one.
    /// Keep it for the daemon's life; dropping it removes the file.
    pub pid_file: Option<PidFile<'a>>,
}

/// A test's hook into the child's set-up, called at each [`Stage`] with
/// the pipe's write end; the real set-up's does nothing.
pub(super) type Fault = fn(Stage, &TokenPipeEnd);

/// The points in the child's set-up where a test can make it die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Stage {
    Setsid,
    Fork,
    PidFile,
    /// Between opening the pid file and locking it, at each try.
    PidFileLock,
    Chdir,
    Stdio,
    Report,
}

/// The child's set-up. Only async-signal-safe calls until the report; on
/// any failure it reports the step and `_exit(1)`s. Returns only in the
/// daemon, after a successful report.
///
/// # Safety
/// As for [`fork_daemon`](super::fork_daemon) (it may fork again).
#[allow(unsafe_code)]
pub(super) unsafe fn setup<'a>(
    writer: TokenPipeEnd,
    hold: Option<TokenPipeEnd>,
    options: DaemonOptions<'a>,
    fault: Fault,
) -> DaemonChild<'a> {
    let fail = |step: SetupStep, errno: Errno| -> ! {
        // If even this fails the launcher reads end of stream instead.
        let _ = Report::StepFailed(step, errno).send(&writer);
        sys::exit_now(1)
    };
    fault(Stage::Setsid, &writer);
    if let Err(e) = sys::setsid() {
        fail(SetupStep::Setsid, e);
    }
    if let Some(hold) = hold {
        fault(Stage::Fork, &writer);
        // The daemon waits on `go` until the intermediate child has sent
        // the daemon's pid, so that report is always the launcher's first.
        let (go, gone) = match pipe_above_stdio() {
            Ok(ends) => ends,
            Err(e) => fail(SetupStep::Fork, e.errno().unwrap_or(Errno::EIO)),
        };
        let intermediate = sys::getpid();
        // SAFETY: our caller's contract: this process has one thread.
        match unsafe { sys::fork() } {
            Err(e) => fail(SetupStep::Fork, e),
            Ok(0) => {
                drop((hold, gone));
                let _ = go.token_read();
                drop(go);
                if sys::getppid() != intermediate {
                    // The intermediate died before it told the launcher
                    // who we are: nobody can account for us. Leave; the
                    // launcher reads end of stream.
                    sys::exit_now(1);
                }
            }
            Ok(daemon) => {
                // The intermediate child: tell the launcher who the daemon
                // is, let the daemon go on, then wait, keeping the
                // daemon's pid reserved (it is our unreaped child), until
                // the launcher closes `hold` (or dies).
                let _ = Report::Forked(daemon).send(&writer);
                drop((go, gone, writer));
                let _ = hold.token_read();
                sys::exit_now(0);
            }
        }
    }
    if let Some(mask) = options.umask {
        sys::umask(mask);
    }
    let mut pid_file = None;
    if let Some(path) = options.pid_file {
        fault(Stage::PidFile, &writer);
        match PidFile::lock_and_write(path, || fault(Stage::PidFileLock, &writer)) {
            Ok(file) => pid_file = Some(file),
            Err(PidFileError::Held(pid)) => {
                let _ = Report::AlreadyRunning(pid).send(&writer);
                sys::exit_now(1);
            }
            Err(PidFileError::Os(e)) => fail(SetupStep::PidFile, e),
        }
    }
    // From here a failure removes the pid file it has just written.
    let fail_after_pid_file = |step: SetupStep, errno: Errno, pid_file: Option<PidFile<'a>>| -> ! {
        drop(pid_file);
        fail(step, errno)
    };
    if options.chdir_root {
        fault(Stage::Chdir, &writer);
        if let Err(e) = sys::chdir_root() {
            fail_after_pid_file(SetupStep::Chdir, e, pid_file);
        }
    }
    if options.close_stdio {
        fault(Stage::Stdio, &writer);
        if let Err(e) = sys::stdio_to_dev_null() {
            fail_after_pid_file(SetupStep::Stdio, e, pid_file);
        }
    }
    fault(Stage::Report, &writer);
    if Report::Done(sys::getpid()).send(&writer).is_err() {
        // The launcher is gone: nobody is waiting for this daemon.
        drop(pid_file);
        sys::exit_now(1);
    }
    DaemonChild {
        notifier: ReadyNotifier::from_pipe(writer),
        pid_file,
    }
}
