//! The watchdog's interval, as `sd_watchdog_enabled(3)` reads it:
//! `WATCHDOG_USEC`, and `WATCHDOG_PID` saying whose watchdog it is.

use core::time::Duration;

use super::{Notifier, ReadyError, ValuePrefix};
use crate::sys;

/// systemd's variable: the watchdog's interval in microseconds.
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// systemd's variable: the pid the watchdog is meant for.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";

impl Notifier {
    /// How often the manager wants [`watchdog`](Self::watchdog) pings
    /// (`WatchdogSec=`): `Some(interval)` if `WATCHDOG_USEC` is set and,
    /// when `WATCHDOG_PID` is set too, it is this process's pid; `None`
    /// if `WATCHDOG_USEC` is not set, or `WATCHDOG_PID` names another
    /// process (the variables were inherited, and the watchdog is not
    /// ours). Ping at least that often; half of it is the usual advice. As
    /// `sd_watchdog_enabled(3)` does, with `unset_environment = 0`.
    ///
    /// Reads the environment and removes nothing, so it needs no `unsafe`:
    /// every way to change the environment (`std::env::set_var`, libc's
    /// `setenv`) is itself `unsafe`, and promises that no other thread
    /// reads meanwhile. Not async-signal-safe (`getenv`); call it once at
    /// start-up. A daemon's children inherit the variables, and with
    /// `WATCHDOG_PID` set they see it is not theirs.
    ///
    /// Syscalls: `getpid`; and `getenv`, which is none.
    ///
    /// # Errors
    /// [`ReadyError::BadVariable`], naming the variable, if `WATCHDOG_USEC`
    /// is not a decimal number of microseconds, is 0 or is
    /// `u64::MAX` (systemd's "infinity", which is no interval); or if
    /// `WATCHDOG_PID` is not a positive decimal pid. systemd's
    /// `sd_watchdog_enabled` refuses the same.
    ///
    /// ```standalone_crate
    /// use tokenpipe::ready::Notifier;
    /// if let Some(interval) = Notifier::watchdog_interval()? {
    ///     // ping every interval / 2
    /// #   let _ = interval;
    /// }
    /// # Ok::<(), tokenpipe::ready::ReadyError>(())
    /// ```
    pub fn watchdog_interval() -> Result<Option<Duration>, ReadyError> {
        sys::with_env(c"WATCHDOG_USEC", |usec| {
            let Some(usec) = usec else {
                return Ok(None);
            };
            let interval = parse_usec(usec)?;
            sys::with_env(c"WATCHDOG_PID", |pid| match pid {
                None => Ok(Some(interval)),
                Some(pid) => {
                    let ours = parse_pid(WATCHDOG_PID_ENV, pid)? == sys::getpid();
                    Ok(ours.then_some(interval))
                }
            })
        })
    }
}

/// `WATCHDOG_USEC`'s value: a positive decimal number of microseconds,
/// not systemd's infinity.
fn parse_usec(value: &[u8]) -> Result<Duration, ReadyError> {
    let bad = |why| ReadyError::BadVariable {
        variable: WATCHDOG_USEC_ENV,
        value: ValuePrefix::new(value),
        why,
    };
    match parse_u64(value) {
        None => Err(bad("not a decimal number of microseconds")),
        Some(0) => Err(bad("0 is no watchdog interval")),
        Some(u64::MAX) => Err(bad("systemd's infinity is no watchdog interval")),
        Some(usec) => Ok(Duration::from_micros(usec)),
    }
}

/// A pid variable's value: a positive decimal number that fits a `pid_t`.
pub(super) fn parse_pid(variable: &'static str, value: &[u8]) -> Result<libc::pid_t, ReadyError> {
    parse_u64(value)
        .and_then(|n| libc::pid_t::try_from(n).ok())
        .filter(|&pid| pid > 0)
        .ok_or(ReadyError::BadVariable {
            variable,
            value: ValuePrefix::new(value),
            why: "not a positive decimal process id",
        })
}

/// Decimal digits, and nothing else (no sign, no blank), as a `u64`.
pub(super) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_usec_is_a_positive_finite_decimal_number() {
        assert_eq!(parse_usec(b"30000000"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_usec(b"1"), Ok(Duration::from_micros(1)));
        for bad in [
            &b""[..],
            b"0",
            b"soon",
            b"-5",
            b"+5",
            b" 5",
            b"5s",
            b"18446744073709551615",
            b"18446744073709551616",
        ] {
            assert!(
                matches!(parse_usec(bad), Err(ReadyError::BadVariable { variable: "WATCHDOG_USEC", value, .. }) if value.as_bytes() == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_pid_variable_is_a_positive_decimal_pid() {
        assert_eq!(parse_pid("WATCHDOG_PID", b"42"), Ok(42));
        for bad in [&b""[..], b"0", b"-1", b"x", b"99999999999"] {
            assert!(
                matches!(
                    parse_pid("WATCHDOG_PID", bad),
                    Err(ReadyError::BadVariable {
                        variable: "WATCHDOG_PID",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }
}
