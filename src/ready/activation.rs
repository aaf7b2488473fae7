//! Socket activation (sd_listen_fds(3)): the fds a manager opened for the
//! service, from fd 3 on, and their names. `LISTEN_PID` says whose they
//! are, `LISTEN_FDS` how many, `LISTEN_FDNAMES` what each is called.

use core::ffi::{CStr, c_int};

use super::watchdog::{parse_pid, parse_u64};
use super::{ReadyError, ValuePrefix};
use crate::sys;

/// The first fd a manager passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: c_int = 3;

/// The most bytes of `LISTEN_FDNAMES` kept; a longer list is refused.
/// systemd lets a name have 255 bytes: this holds 16 of the longest, or
/// hundreds of ordinary ones.
pub const LISTEN_FDNAMES_MAX: usize = 4096;

const LISTEN_PID: &CStr = c"LISTEN_PID";
const LISTEN_FDS: &CStr = c"LISTEN_FDS";
const LISTEN_FDNAMES: &CStr = c"LISTEN_FDNAMES";

/// The fds a manager passed this process by socket activation: fds
/// `3..3 + len()`, each with its name when `LISTEN_FDNAMES` gave one.
/// Empty if the variables are not set, not meant for this process
/// (`LISTEN_PID` names another: they were inherited), or `LISTEN_FDS=0`.
///
/// The names are copied in (at most [`LISTEN_FDNAMES_MAX`] bytes), so the
/// set does not borrow the environment, which a later change could free;
/// nothing is allocated.
///
/// ```
/// use tokenpipe::ready::ListenFds;
///
/// let fds = ListenFds::parse(Some(b"42"), Some(b"2"), Some(b"http:admin"), 42)?;
/// let got: Vec<_> = fds.iter().collect();
/// assert_eq!(got, [(3, Some("http")), (4, Some("admin"))]);
/// // Meant for another process: none of ours.
/// assert!(ListenFds::parse(Some(b"41"), Some(b"2"), None, 42)?.is_empty());
/// # Ok::<(), tokenpipe::ready::ReadyError>(())
/// ```
#[derive(Clone)]
pub struct ListenFds {
    count: usize,
    names: [u8; LISTEN_FDNAMES_MAX],
    names_len: usize,
    named: bool,
}

impl core::fmt::Debug for ListenFds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl ListenFds {
    /// No fds.
    #[must_use]
    pub const fn empty() -> ListenFds {
        ListenFds {
            count: 0,
            names: [0; LISTEN_FDNAMES_MAX],
            names_len: 0,
            named: false,
        }
    }

    /// Reads the three variables' values, as `sd_listen_fds_with_names`
    /// does, for a process whose pid is `our_pid`; touches no fd.
    ///
    /// # Errors
    /// [`ReadyError::BadVariable`], naming the variable: `LISTEN_PID` not
    /// a positive pid; `LISTEN_FDS` not a decimal number, or more fds than
    /// an `int` can number from 3; `LISTEN_FDNAMES` longer than
    /// [`LISTEN_FDNAMES_MAX`], not UTF-8, or with more or fewer names
    /// than `LISTEN_FDS` says (sd_listen_fds_with_names refuses that too,
    /// with `EINVAL`).
    pub fn parse(
        listen_pid: Option<&[u8]>,
        listen_fds: Option<&[u8]>,
        listen_fdnames: Option<&[u8]>,
        our_pid: i32,
    ) -> Result<ListenFds, ReadyError> {
        let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
            return Ok(ListenFds::empty());
        };
        if parse_pid("LISTEN_PID", pid)? != our_pid {
            return Ok(ListenFds::empty());
        }
        let bad = |variable, value: &[u8], why| ReadyError::BadVariable {
            variable,
            value: ValuePrefix::new(value),
            why,
        };
        let count = parse_u64(fds).ok_or(bad("LISTEN_FDS", fds, "not a decimal number of fds"))?;
        if count > (c_int::MAX - LISTEN_FDS_START) as u64 {
            return Err(bad(
                "LISTEN_FDS",
                fds,
                "more fds than an int can number from 3",
            ));
        }
        let mut set = ListenFds::empty();
        set.count = count as usize;
        if count == 0 {
            return Ok(set);
        }
        if let Some(names) = listen_fdnames {
            if names.len() > LISTEN_FDNAMES_MAX {
                return Err(bad(
                    "LISTEN_FDNAMES",
                    names,
                    "longer than the 4096 bytes this crate keeps",
                ));
            }
            if core::str::from_utf8(names).is_err() {
                return Err(bad("LISTEN_FDNAMES", names, "not UTF-8"));
            }
            let given = names.split(|&b| b == b':').count();
            if given as u64 != count {
                return Err(bad(
                    "LISTEN_FDNAMES",
                    names,
                    "the number of names is not LISTEN_FDS",
                ));
            }
            set.names[..names.len()].copy_from_slice(names);
            set.names_len = names.len();
            set.named = true;
        }
        Ok(set)
    }

    /// The fds this process was passed, read from the environment without
    /// removing anything, each made close-on-exec (as `sd_listen_fds`
    /// does, so no program this one starts inherits them).
    ///
    /// Safe, like [`Notifier::watchdog_interval`](super::Notifier::watchdog_interval):
    /// every way to change the environment is itself `unsafe` and promises
    /// not to race a read. The variables stay, so a child started later
    /// inherits them; `LISTEN_PID` tells it they are not its own.
    ///
    /// # Errors
    /// As for [`parse`](Self::parse), and [`ReadyError::Os`] if an fd
    /// could not be made close-on-exec (`EBADF`: the variables promised
    /// an fd that is not open).
    pub fn from_env() -> Result<ListenFds, ReadyError> {
        let set = sys::with_env(LISTEN_PID, |pid| {
            sys::with_env(LISTEN_FDS, |fds| {
                sys::with_env(LISTEN_FDNAMES, |names| {
                    ListenFds::parse(pid, fds, names, sys::getpid())
                })
            })
        })?;
        for (fd, _) in set.iter() {
            sys::set_cloexec(fd).map_err(ReadyError::Os)?;
        }
        Ok(set)
    }

    /// As [`from_env`](Self::from_env), then removes `LISTEN_PID`,
    /// `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment (as
    /// `sd_listen_fds(1)` does), whether or not they were ours.
    ///
    /// # Safety
    /// No other thread may read or change the environment during the
    /// call: `unsetenv` is not thread-safe (systemd issue 36899). In a
    /// program with threads, call it before the first one starts, or use
    /// [`from_env`](Self::from_env), which removes nothing.
    ///
    /// # Errors
    /// As for [`from_env`](Self::from_env); nothing is removed then.
    #[allow(unsafe_code)] // Declares the environment contract.
    pub unsafe fn take_from_env() -> Result<ListenFds, ReadyError> {
        let set = ListenFds::from_env()?;
        for name in [LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES] {
            // SAFETY: our caller keeps every other thread away from the
            // environment for the call.
            let _ = unsafe { sys::unsetenv(name) };
        }
        Ok(set)
    }

    /// How many fds there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each fd with its name (`None` without `LISTEN_FDNAMES`), in order:
    /// `(3, …)`, `(4, …)` and on. Allocates nothing.
    pub fn iter(&self) -> impl Iterator<Item = (c_int, Option<&str>)> + '_ {
        // Checked to be UTF-8 when it was kept.
        let names = core::str::from_utf8(&self.names[..self.names_len]).unwrap_or("");
        let mut split = self.named.then(|| names.split(':'));
        (0..self.count).map(move |i| {
            let name = split.as_mut().and_then(Iterator::next);
            (LISTEN_FDS_START + i as c_int, name)
        })
    }

    /// The fds this process was passed, taken as `OwnedFd`s with their
    /// names, safely: at most once per process. Read as
    /// [`from_env`](Self::from_env) reads them (nothing removed, each made
    /// close-on-exec); turn one into a listener with `UnixListener::from`
    /// or `TcpListener::from`.
    ///
    /// Why this may be safe when [`into_owned`](Self::into_owned) is not:
    /// fds `3..3+LISTEN_FDS` are handed to the process whose pid is
    /// `LISTEN_PID` for it to own, and this call claims them once, so no
    /// two `OwnedFd`s of this crate's ever name one of them. (Other code in
    /// the process that claims them too breaks that hand-over; claim them
    /// in one place.) A second call, anywhere in the process, is an error.
    ///
    /// # Errors
    /// As for [`from_env`](Self::from_env); [`ReadyError::BadVariable`]
    /// naming `LISTEN_FDS` for a second call.
    #[cfg(feature = "std")]
    pub fn take_owned()
    -> Result<std::vec::Vec<(std::os::fd::OwnedFd, Option<std::string::String>)>, ReadyError> {
        use core::sync::atomic::{AtomicBool, Ordering};
        static TAKEN: AtomicBool = AtomicBool::new(false);
        let set = ListenFds::from_env()?;
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(ReadyError::BadVariable {
                variable: "LISTEN_FDS",
                value: super::error::ValuePrefix::new(b""),
                why: "its fds were taken once already in this process",
            });
        }
        #[allow(unsafe_code)]
        // SAFETY: the manager handed fds 3.. to this process (LISTEN_PID is
        // ours, or the set is empty), from_env found each open, and the
        // swap above lets this happen once per process.
        Ok(unsafe { set.into_owned() })
    }

    /// Takes each fd as an `OwnedFd`, with its name; turn one into a
    /// listener with `UnixListener::from` or `TcpListener::from`.
    ///
    /// # Safety
    /// Each fd must belong to nothing else in this process, and be taken
    /// only once: what [`take_from_env`](Self::take_from_env) returns
    /// (the variables are gone, so no later read finds the fds again)
    /// taken here once is.
    #[cfg(feature = "std")]
    #[allow(unsafe_code)] // Declares the ownership contract.
    pub unsafe fn into_owned(
        self,
    ) -> std::vec::Vec<(std::os::fd::OwnedFd, Option<std::string::String>)> {
        use std::os::fd::FromRawFd;
        self.iter()
            .map(|(fd, name)| {
                // SAFETY: open (close-on-exec was set on it) and ours
                // alone, by our caller's contract.
                let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
                (owned, name.map(std::string::String::from))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn parse(
        pid: &str,
        fds: &str,
        names: Option<&str>,
    ) -> Result<std::vec::Vec<(c_int, Option<std::string::String>)>, ReadyError> {
        ListenFds::parse(
            Some(pid.as_bytes()),
            Some(fds.as_bytes()),
            names.map(str::as_bytes),
            7,
        )
        .map(|set| set.iter().map(|(fd, n)| (fd, n.map(Into::into))).collect())
    }

    #[test]
    fn fds_start_at_3_and_take_their_names_in_order() {
        assert_eq!(parse("7", "3", None).unwrap().len(), 3);
        let got = parse("7", "2", Some("a:")).unwrap();
        assert_eq!(got, [(3, Some("a".into())), (4, Some("".into()))]);
        assert_eq!(parse("7", "0", Some("x")).unwrap(), []);
        assert_eq!(parse("8", "2", Some("x")).unwrap(), [], "another's");
    }

    #[test]
    fn bad_counts_and_names_are_refused_by_name() {
        for (pid, fds, names, variable) in [
            ("x", "1", None, "LISTEN_PID"),
            ("0", "1", None, "LISTEN_PID"),
            ("7", "one", None, "LISTEN_FDS"),
            ("7", "-1", None, "LISTEN_FDS"),
            ("7", "2147483645", None, "LISTEN_FDS"),
            ("7", "2", Some("a"), "LISTEN_FDNAMES"),
            ("7", "1", Some("a:b"), "LISTEN_FDNAMES"),
        ] {
            assert!(
                matches!(parse(pid, fds, names), Err(ReadyError::BadVariable { variable: v, .. }) if v == variable),
                "{pid} {fds} {names:?}"
            );
        }
        // The most fds an int numbers from 3 is accepted (not collected).
        let most = ListenFds::parse(Some(b"7"), Some(b"2147483644"), None, 7);
        assert_eq!(most.map(|set| set.len()), Ok(2147483644));
    }
}
