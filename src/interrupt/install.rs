//! Signals that trigger a [`SignalInterrupt`]: a `sigaction` handler per
//! signal, the table it looks the interrupt up in, the handler it passes
//! each delivery on to, and putting back what was there.
//!
//! Coexisting with other signal libraries (tokio, signal-hook, a C
//! library's own): `install` chains, as signal-hook does. The handler that
//! was there before (a function, not `SIG_DFL` or `SIG_IGN`) still runs on
//! every delivery, after the interrupt is triggered, with the delivery's
//! `siginfo` and context. `restore` puts back the previous disposition
//! only while the handler installed is still ours; a library that
//! installed its own since keeps it (and, if it chains, still reaches
//! ours, which then only passes the delivery on). A signal the program
//! inherited as ignored (`nohup`, `trap '' INT`) is left ignored, as GNU
//! programs do: the one who started the program asked for that.

use core::ffi::c_int;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use super::SignalInterrupt;
use crate::error::{Errno, Error};
use crate::sys::static_ref::StaticRef;
use crate::sys::{self, Action, Disposition, PreviousHandler};

/// The most signals one [`install`](SignalInterrupt::install) call takes:
/// what [`Installed`] keeps is a fixed array, since the core does not
/// allocate. Call `install` again for more.
pub const MAX_SIGNALS: usize = 8;

/// Signal numbers the table has room for: above every platform's highest
/// (64 on Linux, 128 on Linux for MIPS, 32 to 128 elsewhere).
const TABLE_LEN: usize = 129;

/// What the handler of one signal serves.
struct Slot {
    interrupt: StaticRef<SignalInterrupt>,
    /// Whether a second delivery ends the process.
    terminates: AtomicBool,
    /// The handler that was there before ours, which every delivery is
    /// passed on to. Written before our handler is installed.
    chain: PreviousHandler,
    /// Restored while another handler had taken over: ours may still be in
    /// that one's chain, so it is not installed again (it would chain to
    /// the handler that chains to it).
    lingering: AtomicBool,
}

static SLOTS: [Slot; TABLE_LEN] = [const {
    Slot {
        interrupt: StaticRef::new(),
        terminates: AtomicBool::new(false),
        chain: PreviousHandler::new(),
        lingering: AtomicBool::new(false),
    }
}; TABLE_LEN];

/// The handler of every installed signal. Only async-signal-safe calls:
/// atomics, the trigger (`getpid`, one `write`), for a forced stop
/// `sigaction`, `pthread_sigmask` and `raise`, and the handler that was
/// there before. It leaves `errno` as it found it.
extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, context: *mut core::ffi::c_void) {
    let saved = sys::errno_now();
    let Some(slot) = usize::try_from(sig).ok().and_then(|i| SLOTS.get(i)) else {
        return;
    };
    // Empty once the signal was restored: nothing is asked of us any more
    // but to pass the delivery on.
    if let Some(interrupt) = slot.interrupt.load() {
        interrupt.deliver(sig, slot.terminates.load(Ordering::Relaxed));
    }
    sys::set_errno(saved);
    slot.chain.pass_on(sig, info, context);
}

/// Options for [`SignalInterrupt::install_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallOptions {
    second_terminates: bool,
}

impl InstallOptions {
    /// The defaults: every delivery triggers (after the first, to no
    /// further effect).
    #[must_use]
    pub const fn new() -> Self {
        InstallOptions {
            second_terminates: false,
        }
    }

    /// Whether a second delivery of any of the installed signals, before
    /// the interrupt is [`reset`](SignalInterrupt::reset), ends the process
    /// with that signal's default action: the "press Ctrl-C twice to force"
    /// convention of cargo and most daemons. The first asks for a clean
    /// stop; the second kills the process by the signal (its parent sees
    /// `SIGINT`, not an exit status). Done inside the handler with
    /// async-signal-safe calls (`sigaction(SIG_DFL)`, `pthread_sigmask`,
    /// `raise`): the second delivery gets the signal's *default action*,
    /// whatever that is. For most signals it ends the process; for a stop
    /// signal (`SIGTSTP`, `SIGTTIN`, `SIGTTOU`) it stops the process
    /// instead, and from then on the signal stops it each time; for a
    /// signal whose default action is to do nothing (`SIGCHLD`,
    /// `SIGWINCH`, `SIGURG`), that is what the second delivery does. In
    /// every case the signal is no longer handled after it.
    #[must_use]
    pub const fn second_signal_terminates(mut self, on: bool) -> Self {
        self.second_terminates = on;
        self
    }
}

/// Why [`SignalInterrupt::install`] installed nothing. When it fails, no
/// signal's disposition has changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallError {
    /// A signal that cannot be caught (`SIGKILL`, `SIGSTOP`), or a
    /// synchronous fault (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`,
    /// `SIGTRAP`, `SIGSYS`): returning from a handler of one re-runs the
    /// faulting instruction, so a handler that only sets a flag loops
    /// forever.
    Refused {
        /// The signal.
        signal: c_int,
    },
    /// Not a signal number this crate can handle (below 1, or above 128).
    OutOfRange {
        /// The number given.
        signal: c_int,
    },
    /// More than [`MAX_SIGNALS`] signals in one call.
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A `SignalInterrupt` (this one or another) already handles the
    /// signal, through an earlier `install` not yet restored, or the
    /// signal is given twice.
    Taken {
        /// The signal.
        signal: c_int,
    },
    /// `sigaction` refused the signal (`EINVAL` for a number the C library
    /// keeps for itself, such as glibc's 32 and 33).
    Os {
        /// The signal.
        signal: c_int,
        /// What `sigaction` said.
        errno: Errno,
    },
    /// The interrupt's pipe could not be made (it is made here, so that
    /// the first signal does not have to).
    Pipe(Error),
}

impl InstallError {
    /// The OS error behind this error, as every error type of this crate
    /// gives it: `sigaction`'s for [`Os`](InstallError::Os), the pipe's for
    /// [`Pipe`](InstallError::Pipe); `None` for the rest, which no system
    /// call reported.
    ///
    /// ```
    /// use tokenpipe::interrupt::{InstallError, SIGKILL};
    /// use tokenpipe::{Errno, Error};
    ///
    /// assert_eq!(InstallError::Refused { signal: SIGKILL }.errno(), None);
    /// assert_eq!(InstallError::Pipe(Error::Os(Errno::EMFILE)).errno(), Some(Errno::EMFILE));
    /// ```
    #[must_use]
    pub const fn errno(&self) -> Option<Errno> {
        match self {
            InstallError::Os { errno, .. } => Some(*errno),
            InstallError::Pipe(e) => e.errno(),
            _ => None,
        }
    }
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InstallError::Refused { signal } => write!(
                f,
                "signal {signal} cannot be handled by a SignalInterrupt \
                 (SIGKILL and SIGSTOP cannot be caught; a fault signal would re-fault forever)"
            ),
            InstallError::OutOfRange { signal } => write!(
                f,
                "{signal} is not a signal number (1 to {})",
                TABLE_LEN - 1
            ),
            InstallError::TooMany { count } => write!(
                f,
                "{count} signals in one install; at most {MAX_SIGNALS} (call install again for more)"
            ),
            InstallError::Taken { signal } => write!(
                f,
                "signal {signal} is already handled by a SignalInterrupt (restore that first, \
                 or it is in the list twice)"
            ),
            InstallError::Os { signal, errno } => {
                write!(f, "cannot install a handler for signal {signal}: {errno}")
            }
            InstallError::Pipe(e) => write!(f, "cannot make the interrupt's pipe: {e}"),
        }
    }
}

impl core::error::Error for InstallError {}

#[cfg(feature = "std")]
impl From<InstallError> for std::io::Error {
    /// The errno where there is one; `InvalidInput` for a refused, unknown,
    /// taken or excess signal.
    fn from(e: InstallError) -> std::io::Error {
        match e {
            InstallError::Os { errno, .. } => std::io::Error::from_raw_os_error(errno.raw()),
            InstallError::Pipe(inner) => inner.into(),
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other),
        }
    }
}

/// The signals an [`install`](SignalInterrupt::install) took over, and
/// what each did before, to [`restore`](Installed::restore).
///
/// Dropping it keeps the handlers installed (a `static` interrupt usually
/// serves for the whole program); call `restore` to put back what was
/// there.
pub struct Installed {
    count: usize,
    signals: [c_int; MAX_SIGNALS],
    previous: [Disposition; MAX_SIGNALS],
    ignored_count: usize,
    ignored: [c_int; MAX_SIGNALS],
}

impl Installed {
    /// The signals this install handles, in the order given.
    #[must_use]
    pub fn signals(&self) -> &[c_int] {
        &self.signals[..self.count]
    }

    /// The signals it left alone because the program was started with
    /// them ignored (`nohup` ignores `SIGHUP`; a shell's `trap '' INT`
    /// ignores `SIGINT` for what it starts), in the order given.
    #[must_use]
    pub fn left_ignored(&self) -> &[c_int] {
        &self.ignored[..self.ignored_count]
    }

    /// Stops handling each signal, last installed first, and puts back its
    /// previous disposition where the handler installed now is still
    /// ours. Where another library has installed its own handler since, it
    /// is left in place: only ours stops triggering the interrupt (and, if
    /// that library passes deliveries on to ours, ours passes them on to
    /// what was there before it). A delivery already on its way may still
    /// trigger the interrupt.
    ///
    /// # Errors
    /// [`InstallError::Os`] for the first signal whose disposition could
    /// not be read or put back (in practice never: the kernel gave it to
    /// us); the other signals are still restored.
    pub fn restore(self) -> Result<(), InstallError> {
        let mut first_error = Ok(());
        for i in (0..self.count).rev() {
            let result = restore_one(self.signals[i], &self.previous[i]);
            if first_error.is_ok() {
                first_error = result;
            }
        }
        first_error
    }
}

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installed")
            .field("signals", &self.signals())
            .finish_non_exhaustive()
    }
}

/// Puts back one disposition if the handler there is still ours, then
/// empties the signal's slot (in that order: a delivery in between still
/// finds its interrupt). A handler that is not ours is left alone.
fn restore_one(signal: c_int, previous: &Disposition) -> Result<(), InstallError> {
    let Some(slot) = usize::try_from(signal).ok().and_then(|i| SLOTS.get(i)) else {
        return Ok(());
    };
    let os = |errno| InstallError::Os { signal, errno };
    let result = match sys::current_disposition(signal) {
        Ok(current) if current.runs(on_signal) => sys::restore(signal, previous).map_err(os),
        Ok(_) => {
            // Another handler took over; ours may be in its chain.
            slot.lingering.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(errno) => Err(os(errno)),
    };
    slot.interrupt.clear();
    slot.terminates.store(false, Ordering::Relaxed);
    if !slot.lingering.load(Ordering::Relaxed) {
        slot.chain.clear();
    }
    result
}

/// Whether `signal` is one a flag-setting handler must never take.
fn refused(signal: c_int) -> bool {
    [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGSYS,
    ]
    .contains(&signal)
}

impl SignalInterrupt {
    /// Which installed signal triggered the interrupt: the first one
    /// delivered since it was made or last [`reset`](Self::reset), or
    /// `None` if none was (a plain [`trigger`](Self::trigger) records no
    /// signal). One atomic load; async-signal-safe.
    ///
    /// ```no_run
    /// use tokenpipe::SignalInterrupt;
    /// use tokenpipe::interrupt::{SIGINT, SIGTERM};
    ///
    /// static STOP: SignalInterrupt = SignalInterrupt::new();
    ///
    /// STOP.install(&[SIGINT, SIGTERM])?;
    /// STOP.wait()?;
    /// let why = if STOP.signal() == Some(SIGINT) { "Ctrl-C" } else { "SIGTERM" };
    /// println!("stopping on {why}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn signal(&self) -> Option<c_int> {
        self.delivered_signal()
    }

    /// Makes each of `signals` trigger this interrupt: a `sigaction`
    /// handler (`SA_RESTART`, so the system calls it interrupts restart;
    /// `SA_ONSTACK`, so it runs on an alternate signal stack where a thread
    /// has one; `SA_SIGINFO`, to pass each delivery on whole) that calls
    /// [`trigger`](Self::trigger), then the handler that was there before,
    /// if there was one (it chains: another library's handler keeps
    /// working). Returns what was installed, with the previous
    /// dispositions, to [`restore`](Installed::restore). A signal the
    /// program was started with ignored is left ignored
    /// ([`Installed::left_ignored`]).
    ///
    /// Safe: the handler runs only this crate's async-signal-safe code and
    /// the handler it replaced, and leaves `errno` as it found it. It also
    /// makes the pipe now, so the first signal does not have to.
    ///
    /// ```no_run
    /// use tokenpipe::SignalInterrupt;
    /// use tokenpipe::interrupt::{SIGINT, SIGTERM};
    ///
    /// static STOP: SignalInterrupt = SignalInterrupt::new();
    ///
    /// STOP.install(&[SIGINT, SIGTERM])?;
    /// STOP.wait()?; // until Ctrl-C or SIGTERM
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Nothing is installed (every signal keeps its disposition) if any
    /// signal is refused ([`InstallError::Refused`]: `SIGKILL`, `SIGSTOP`,
    /// the synchronous faults), out of range, already handled by an
    /// interrupt, given twice, one too many ([`MAX_SIGNALS`]), or refused
    /// by `sigaction`, or if the pipe cannot be made.
    ///
    /// # References
    /// - [POSIX `sigaction`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
    /// - [Linux `signal(7)`](https://man7.org/linux/man-pages/man7/signal.7.html)
    pub fn install(&'static self, signals: &[c_int]) -> Result<Installed, InstallError> {
        self.install_with(signals, InstallOptions::new())
    }

    /// [`install`](Self::install) with options: see [`InstallOptions`]
    /// (a second signal that ends the process).
    ///
    /// ```no_run
    /// use tokenpipe::SignalInterrupt;
    /// use tokenpipe::interrupt::{InstallOptions, SIGINT, SIGTERM};
    ///
    /// static STOP: SignalInterrupt = SignalInterrupt::new();
    ///
    /// let force = InstallOptions::new().second_signal_terminates(true);
    /// STOP.install_with(&[SIGINT, SIGTERM], force)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`install`](Self::install).
    pub fn install_with(
        &'static self,
        signals: &[c_int],
        options: InstallOptions,
    ) -> Result<Installed, InstallError> {
        if signals.len() > MAX_SIGNALS {
            return Err(InstallError::TooMany {
                count: signals.len(),
            });
        }
        for (i, &signal) in signals.iter().enumerate() {
            if refused(signal) {
                return Err(InstallError::Refused { signal });
            }
            if signal < 1 || usize::try_from(signal).map_or(true, |n| n >= TABLE_LEN) {
                return Err(InstallError::OutOfRange { signal });
            }
            if signals[..i].contains(&signal) {
                return Err(InstallError::Taken { signal });
            }
        }
        self.read_end().map_err(InstallError::Pipe)?;

        let mut done = Installed {
            count: 0,
            signals: [0; MAX_SIGNALS],
            previous: [Disposition::empty(); MAX_SIGNALS],
            ignored_count: 0,
            ignored: [0; MAX_SIGNALS],
        };
        for &signal in signals {
            // In range: checked above.
            let Some(slot) = SLOTS.get(signal as usize) else {
                continue;
            };
            let fail = |done: Installed, e| {
                let _ = done.restore();
                Err(e)
            };
            let current = match sys::current_disposition(signal) {
                Ok(current) => current,
                Err(errno) => return fail(done, InstallError::Os { signal, errno }),
            };
            if current.action() == Action::Ignore {
                done.ignored[done.ignored_count] = signal;
                done.ignored_count += 1;
                continue;
            }
            if slot.lingering.load(Ordering::Relaxed) || !slot.interrupt.claim(self) {
                return fail(done, InstallError::Taken { signal });
            }
            slot.terminates
                .store(options.second_terminates, Ordering::Relaxed);
            // Before ours is installed: its first delivery passes on.
            slot.chain.set(&current);
            match sys::install_handler(signal, on_signal) {
                Ok(previous) if previous.action() == Action::Ignore => {
                    // Ignored since it was read: leave it so, as above.
                    let _ = sys::restore(signal, &previous);
                    slot.interrupt.clear();
                    slot.terminates.store(false, Ordering::Relaxed);
                    slot.chain.clear();
                    done.ignored[done.ignored_count] = signal;
                    done.ignored_count += 1;
                }
                Ok(previous) => {
                    // Changed since it was read: chain to what it was.
                    slot.chain.set(&previous);
                    done.signals[done.count] = signal;
                    done.previous[done.count] = previous;
                    done.count += 1;
                }
                Err(errno) => {
                    slot.interrupt.clear();
                    slot.terminates.store(false, Ordering::Relaxed);
                    slot.chain.clear();
                    return fail(done, InstallError::Os { signal, errno });
                }
            }
        }
        Ok(done)
    }
}

// Not in the model checker's build: its atomics make no statics.
#[cfg(all(test, not(tokenpipe_loom)))]
mod tests {
    use super::*;

    static URGENT: SignalInterrupt = SignalInterrupt::new();

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not model signal dispositions")]
    fn the_handler_runs_on_an_alternate_stack_restarts_calls_and_takes_the_signals_information() {
        // SIGURG: nothing else in this test binary touches it.
        let installed = URGENT.install(&[libc::SIGURG]).unwrap();
        let now = sys::current_disposition(libc::SIGURG).unwrap();
        assert!(now.runs(on_signal));
        for (flag, name) in [
            (libc::SA_ONSTACK, "SA_ONSTACK"),
            (libc::SA_SIGINFO, "SA_SIGINFO"),
            #[cfg(tokenpipe_sa_restart)]
            (libc::SA_RESTART, "SA_RESTART"),
        ] {
            assert_ne!(now.flags() & flag, 0, "{name} is not set");
        }
        installed.restore().unwrap();
        assert_eq!(
            sys::current_disposition(libc::SIGURG).unwrap().action(),
            Action::Default
        );
    }
}
