//! After "ready": the service's life as systemd's notify socket hears it
//! (sd_notify(3)): `STOPPING=1`, `RELOADING=1` with `MONOTONIC_USEC=`,
//! `WATCHDOG=1` and `WATCHDOG=trigger`, `MAINPID=`, and any other
//! `KEY=VALUE` line, checked; and the notifier for a program that no
//! manager started.
//!
//! Only the socket carries these. This crate's token pipe and a
//! notification fd carry one report, `ready` or `failed`; there every
//! report here is a no-op that returns `Ok`, before the report and after
//! it, so the same daemon code runs under every manager. What a report
//! is given (a key, a value, a pid) is checked on every channel all the
//! same, so a daemon finds a bad one whoever started it.
//!
//! Like the reports in [`super`], each builds its one datagram on the
//! stack, allocates nothing, and is async-signal-safe.

#[cfg(tokenpipe_unix_socket)]
use super::decimal;
use super::{Channel, Notifier, ReadyError, ValuePrefix};

/// The most bytes one `KEY=VALUE` line may have: the socket's whole
/// message, built in a 1024-byte stack buffer.
const LINE_MAX: usize = 1024;

impl Notifier {
    /// A notifier that does nothing: for a program that no manager
    /// started, so that it needs no `Option` at every report. Every
    /// report checks what it is given, as on any channel, and returns
    /// `Ok` without a system call; [`barrier`](Self::barrier) returns at
    /// once, [`into_end`](Self::into_end) gives `None`, and `pass_to`
    /// hands the child nothing.
    ///
    /// ```standalone_crate
    /// use tokenpipe::ready::Notifier;
    ///
    /// // SAFETY: first thing in main, before any thread reads the environment.
    /// let notifier = unsafe { Notifier::from_env() }?.unwrap_or_else(Notifier::none);
    /// notifier.status("loading")?;
    /// notifier.ready()?;
    /// notifier.watchdog()?;
    /// # Ok::<(), tokenpipe::ready::ReadyError>(())
    /// ```
    #[must_use]
    pub const fn none() -> Notifier {
        Notifier {
            channel: Channel::None,
        }
    }

    /// Whether this is [`Notifier::none`], the notifier that does nothing.
    #[must_use]
    pub fn is_none(&self) -> bool {
        matches!(self.channel, Channel::None)
    }

    /// Reports that the service is stopping: `STOPPING=1` on the socket.
    /// A no-op (`Ok`) on a pipe, a notification fd and
    /// [`none`](Self::none).
    ///
    /// Syscalls: socket: `socket`, `sendmsg`, `close`; otherwise none.
    ///
    /// # Errors
    /// [`ReadyError::SendFailed`], naming the address and the errno, for a
    /// socket that cannot be reached; [`ReadyError::Channel`] if no socket
    /// could be made.
    pub fn stopping(&self) -> Result<(), ReadyError> {
        self.on_socket(&[b"STOPPING=1"])
    }

    /// Reports that the service is reloading its configuration:
    /// `RELOADING=1` and `MONOTONIC_USEC=` (`CLOCK_MONOTONIC` now, in
    /// microseconds) in one datagram, as `Type=notify-reload` requires
    /// (systemd 253+ refuses them apart). Send [`ready`](Self::ready) when
    /// the reload is done. A no-op on a pipe, a notification fd and
    /// [`none`](Self::none).
    ///
    /// Syscalls: socket: `clock_gettime` (a vDSO call on Linux), `socket`,
    /// `sendmsg`, `close`; otherwise none.
    ///
    /// # Errors
    /// As for [`stopping`](Self::stopping), and
    /// [`ReadyError::Channel`] with the errno if the clock cannot be read.
    pub fn reloading(&self) -> Result<(), ReadyError> {
        match &self.channel {
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => {
                let now = crate::sys::monotonic_now().map_err(crate::Error::Os)?;
                let usec = i64::try_from(now.as_micros()).unwrap_or(i64::MAX);
                let mut digits = [0u8; 24];
                addr.send(&[b"RELOADING=1\nMONOTONIC_USEC=", decimal(usec, &mut digits)])
            }
            _ => Ok(()),
        }
    }

    /// Keeps the watchdog fed: `WATCHDOG=1` on the socket. Send it at
    /// least every `WATCHDOG_USEC` microseconds, as
    /// `Notifier::watchdog_interval` reads them (half of that is the usual
    /// advice). A no-op on a pipe, a notification fd and
    /// [`none`](Self::none).
    ///
    /// # Errors
    /// As for [`stopping`](Self::stopping).
    pub fn watchdog(&self) -> Result<(), ReadyError> {
        self.on_socket(&[b"WATCHDOG=1"])
    }

    /// Asks the manager to act as if the watchdog had timed out, at once:
    /// `WATCHDOG=trigger` (systemd then sends `WatchdogSignal=`, SIGABRT
    /// by default, and the unit ends with `Result=watchdog`). For a
    /// service that has found itself stuck. A no-op on a pipe, a
    /// notification fd and [`none`](Self::none).
    ///
    /// # Errors
    /// As for [`stopping`](Self::stopping).
    pub fn watchdog_trigger(&self) -> Result<(), ReadyError> {
        self.on_socket(&[b"WATCHDOG=trigger"])
    }

    /// Tells the manager that `pid` is the service's main process:
    /// `MAINPID=pid`, for a process that is not the main one itself (a
    /// launcher script, a process that forked the real daemon). systemd
    /// hears it only from a process of the unit, and never takes its own
    /// pid; by default (`NotifyAccess=main`) only the main process is heard
    /// at all. A no-op on a pipe, a notification fd and
    /// [`none`](Self::none); `pid` is checked there all the same.
    ///
    /// # Errors
    /// [`ReadyError::BadPid`] for a `pid` that is not positive (0, or a
    /// negative number, which would name a process group); nothing is sent
    /// then. Otherwise as for [`stopping`](Self::stopping).
    ///
    /// ```
    /// use tokenpipe::ready::{Notifier, ReadyError};
    /// assert_eq!(Notifier::none().main_pid(0), Err(ReadyError::BadPid { pid: 0 }));
    /// assert_eq!(Notifier::none().main_pid(4242), Ok(()));
    /// ```
    #[cfg_attr(not(tokenpipe_unix_socket), allow(unused_variables))]
    pub fn main_pid(&self, pid: i32) -> Result<(), ReadyError> {
        if pid <= 0 {
            return Err(ReadyError::BadPid { pid });
        }
        match &self.channel {
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => {
                let mut digits = [0u8; 12];
                addr.send(&[b"MAINPID=", decimal(i64::from(pid), &mut digits)])
            }
            _ => Ok(()),
        }
    }

    /// Sends one `KEY=VALUE` line that this type has no method for (say
    /// `NOTIFYACCESS=all`, `EXIT_STATUS=3`, `BUSERROR=…`), alone in one
    /// datagram. `key` must be one or more of `A`–`Z`, `0`–`9` and `_`
    /// (so it holds no `=` and no line break), `value` no line feed,
    /// carriage return or NUL, and the line must fit one 1024-byte
    /// message: nobody can slip a second line (a forged `READY=1`) into
    /// it. A no-op on a pipe, a notification fd and [`none`](Self::none),
    /// after the same checks.
    ///
    /// Lines that need an fd with them (`FDSTORE=1`, `BARRIER=1`) have
    /// their own methods; sent from here they carry none.
    ///
    /// # Errors
    /// [`ReadyError::BadKey`], [`ReadyError::BadValue`] (naming the byte
    /// and its offset) or [`ReadyError::ValueTooLong`], each naming the
    /// key; nothing is sent then. Otherwise as for
    /// [`stopping`](Self::stopping).
    ///
    /// ```
    /// use tokenpipe::ready::{Notifier, ReadyError};
    ///
    /// let notifier = Notifier::none();
    /// notifier.notify_kv("EXIT_STATUS", "3")?;
    /// let Err(ReadyError::BadValue { key, byte: b'\n', at: 1 }) =
    ///     notifier.notify_kv("STATUS", "x\nREADY=1")
    /// else {
    ///     panic!("a line break in a value is refused");
    /// };
    /// assert_eq!(key.as_bytes(), b"STATUS");
    /// assert!(matches!(notifier.notify_kv("READY=1\nX", "1"), Err(ReadyError::BadKey { .. })));
    /// # Ok::<(), ReadyError>(())
    /// ```
    pub fn notify_kv(&self, key: &str, value: &str) -> Result<(), ReadyError> {
        check_line(key.as_bytes(), value.as_bytes())?;
        self.on_socket(&[key.as_bytes(), b"=", value.as_bytes()])
    }

    /// Hands the manager a copy of `fd` to keep across a restart of the
    /// service (systemd's fd store, `FileDescriptorStoreMax=`): `FDSTORE=1`
    /// and `FDNAME=name` in one datagram, the fd attached by
    /// `SCM_RIGHTS`. After a restart it comes back by socket activation,
    /// named `name` in `LISTEN_FDNAMES`, so no connection is lost. A no-op
    /// on a pipe, a notification fd and [`none`](Self::none), after the
    /// same check of `name`. `fd` stays open here.
    ///
    /// # Errors
    /// [`ReadyError::BadFdName`] for a name systemd refuses (empty, longer
    /// than 255 bytes, with `:` or a byte that is not printable ASCII);
    /// nothing is sent then. Otherwise as for [`stopping`](Self::stopping)
    /// (`EBADF` in [`ReadyError::SendFailed`] for an fd that is not open).
    #[cfg_attr(not(tokenpipe_unix_socket), allow(unused_variables))]
    pub fn fd_store(&self, fd: core::ffi::c_int, name: &str) -> Result<(), ReadyError> {
        let bytes = name.as_bytes();
        if bytes.is_empty()
            || bytes.len() > 255
            || bytes
                .iter()
                .any(|&b| b == b':' || !(b' '..=b'~').contains(&b))
        {
            return Err(ReadyError::BadFdName {
                name: ValuePrefix::new(bytes),
            });
        }
        match &self.channel {
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => addr.send_passing(&[b"FDSTORE=1\nFDNAME=", bytes], fd),
            _ => Ok(()),
        }
    }

    /// Sends the concatenation of `parts` as one datagram on the socket;
    /// `Ok` and nothing else on every other channel.
    #[cfg_attr(not(tokenpipe_unix_socket), allow(unused_variables))]
    fn on_socket(&self, parts: &[&[u8]]) -> Result<(), ReadyError> {
        match &self.channel {
            #[cfg(tokenpipe_unix_socket)]
            Channel::Socket(addr) => addr.send(parts),
            _ => Ok(()),
        }
    }
}

/// Refuses a `KEY=VALUE` line that is not one well-formed line of at most
/// [`LINE_MAX`] bytes (see [`Notifier::notify_kv`]).
fn check_line(key: &[u8], value: &[u8]) -> Result<(), ReadyError> {
    let key_ok = !key.is_empty()
        && key
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !key_ok {
        return Err(ReadyError::BadKey {
            key: ValuePrefix::new(key),
        });
    }
    if let Some(at) = value.iter().position(|b| matches!(b, b'\n' | b'\r' | 0)) {
        return Err(ReadyError::BadValue {
            key: ValuePrefix::new(key),
            byte: value[at],
            at,
        });
    }
    let max = LINE_MAX.saturating_sub(key.len() + 1);
    if value.len() > max {
        return Err(ReadyError::ValueTooLong {
            key: ValuePrefix::new(key),
            len: value.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_upper_case_letters_digits_and_underscores_and_nothing_else() {
        for good in [&b"X"[..], b"EXIT_STATUS", b"X_1", b"_"] {
            assert_eq!(check_line(good, b"v"), Ok(()), "{good:?}");
        }
        for bad in [
            &b""[..],
            b"A=B",
            b"A\nB",
            b"lower",
            b"A B",
            b"A\0",
            b"\xc3\x89",
        ] {
            assert!(
                matches!(check_line(bad, b"v"), Err(ReadyError::BadKey { key }) if key.as_bytes() == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_line_fills_one_message_and_no_more() {
        let key = b"K";
        let longest = [b'v'; LINE_MAX - 2];
        assert_eq!(check_line(key, &longest), Ok(()));
        let over = [b'v'; LINE_MAX - 1];
        assert!(matches!(
            check_line(key, &over),
            Err(ReadyError::ValueTooLong { len, max, .. }) if len == LINE_MAX - 1 && max == LINE_MAX - 2
        ));
    }
}
