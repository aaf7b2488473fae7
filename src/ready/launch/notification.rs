//! What a ready program says later on its notify socket, as the
//! [`ReadyChild`](super::ReadyChild) hands it to the caller.

use std::time::Duration;

/// One thing a program said on its notify socket after the verdict, in the
/// order it was said: what [`ReadyChild::next_notification`] and, with
/// tokio, `ReadyChild::notified` give.
///
/// A datagram with several lines gives one notification per line it
/// knows, in its order (a `MONOTONIC_USEC=` line goes into the
/// `Reloading` of its datagram; `BARRIER=1` and `MONOTONIC_USEC=` give
/// none). Only the senders a launch hears are heard: this user's
/// processes and the program's descendants.
///
/// [`ReadyChild::next_notification`]: super::ReadyChild::next_notification
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// `READY=1`: ready again (after a reload), or said once more.
    Ready,
    /// `RELOADING=1`: reloading its configuration; `READY=1` follows when
    /// it is done. `monotonic_usec` is the `CLOCK_MONOTONIC` time it gave
    /// in the same datagram (`MONOTONIC_USEC=`), as `Type=notify-reload`
    /// requires.
    Reloading {
        /// `MONOTONIC_USEC=` of the same datagram, in microseconds.
        monotonic_usec: Option<u64>,
    },
    /// `STOPPING=1`: it has begun to shut down.
    Stopping,
    /// `STATUS=`: a line of status text (also what
    /// [`ReadyChild::status_text`](super::ReadyChild::status_text) gives
    /// from then on).
    Status(String),
    /// `WATCHDOG=1`: a keep-alive ping.
    Watchdog,
    /// `WATCHDOG=trigger`: it asks for the watchdog's action now, as if it
    /// had missed a ping. With [`LaunchOptions::watchdog`](super::LaunchOptions::watchdog)
    /// (or an interval it set), the watchdog fires.
    WatchdogTrigger,
    /// `WATCHDOG_USEC=`: it set the watchdog interval (zero: off).
    WatchdogInterval(Duration),
    /// `ERRNO=`: an error number, as `sd_notifyf(0, "ERRNO=%d", errno)`
    /// sends it after a failure.
    Errno(i32),
    /// `MAINPID=`, honoured: the program named another process its main
    /// one, and [`ReadyChild::pid`](super::ReadyChild::pid), `kill` and the
    /// waits follow it from now on. A `MAINPID=` the launch does not honour
    /// (pid 0 or 1, this process or an ancestor of it, a process outside
    /// the launch) gives no notification.
    MainPid(libc::pid_t),
    /// `EXTEND_TIMEOUT_USEC=`: it asks for more time for what it is doing
    /// (a reload, a stop).
    ExtendTimeout(Duration),
    /// The watchdog fired: no `WATCHDOG=1` within the interval (or a
    /// `WATCHDOG=trigger`), and the main process was sent `SIGABRT`. Made
    /// by the launcher, not said by the program.
    WatchdogExpired,
    /// Any other `KEY=VALUE` line (`FDSTORE=1`, `NOTIFYACCESS=`, one of
    /// the program's own), as sent; not acted on (fds sent with
    /// `FDSTORE=1` are closed: the launcher keeps no fd store).
    Other(String),
}

/// A notification as the notify thread reads it: a `MAINPID=` comes with
/// the process held from the moment the datagram was read, so the pid
/// cannot be reused before the owner decides whether to honour it.
#[derive(Debug)]
pub(super) enum Heard {
    Said(Notification),
    MainPid(crate::process::Process),
}

/// The notifications one datagram carries, in its order. `text` is the
/// datagram, not cut short.
pub(super) fn parse(text: &[u8], mut heard: impl FnMut(Heard)) {
    let lines = || text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let monotonic_usec = lines().find_map(|l| number(l.strip_prefix(b"MONOTONIC_USEC=")?));
    for line in lines() {
        let said = match line {
            b"READY=1" => Notification::Ready,
            b"RELOADING=1" => Notification::Reloading { monotonic_usec },
            b"STOPPING=1" => Notification::Stopping,
            b"WATCHDOG=1" => Notification::Watchdog,
            b"WATCHDOG=trigger" => Notification::WatchdogTrigger,
            b"BARRIER=1" => continue,
            _ => {
                if line.starts_with(b"MONOTONIC_USEC=") {
                    continue;
                }
                if let Some(text) = line.strip_prefix(b"STATUS=") {
                    Notification::Status(String::from_utf8_lossy(text).into())
                } else if let Some(n) = line.strip_prefix(b"ERRNO=").and_then(number) {
                    Notification::Errno(n)
                } else if let Some(n) = line.strip_prefix(b"WATCHDOG_USEC=").and_then(number) {
                    Notification::WatchdogInterval(Duration::from_micros(n))
                } else if let Some(n) = line.strip_prefix(b"EXTEND_TIMEOUT_USEC=").and_then(number)
                {
                    Notification::ExtendTimeout(Duration::from_micros(n))
                } else if let Some(pid) = line
                    .strip_prefix(b"MAINPID=")
                    .and_then(number::<libc::pid_t>)
                {
                    if pid > 1 {
                        heard(Heard::MainPid(crate::process::Process::stranger(pid)));
                    }
                    continue;
                } else {
                    Notification::Other(String::from_utf8_lossy(line).into())
                }
            }
        };
        heard(Heard::Said(said));
    }
}

/// A decimal number in a notify line.
fn number<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &[u8]) -> Vec<Notification> {
        let mut all = Vec::new();
        parse(text, |h| match h {
            Heard::Said(n) => all.push(n),
            Heard::MainPid(p) => all.push(Notification::MainPid(p.pid())),
        });
        all
    }

    #[test]
    fn each_line_a_program_says_later_is_one_notification_in_its_order() {
        assert_eq!(
            said(b"RELOADING=1\nMONOTONIC_USEC=123\nSTATUS=reloading"),
            [
                Notification::Reloading {
                    monotonic_usec: Some(123)
                },
                Notification::Status("reloading".into())
            ]
        );
        assert_eq!(
            said(b"STOPPING=1\nWATCHDOG=1\nWATCHDOG=trigger\nERRNO=5\nBARRIER=1"),
            [
                Notification::Stopping,
                Notification::Watchdog,
                Notification::WatchdogTrigger,
                Notification::Errno(5)
            ]
        );
        assert_eq!(
            said(b"WATCHDOG_USEC=2000000\nEXTEND_TIMEOUT_USEC=5\nREADY=1\nX_MINE=a\n"),
            [
                Notification::WatchdogInterval(Duration::from_secs(2)),
                Notification::ExtendTimeout(Duration::from_micros(5)),
                Notification::Ready,
                Notification::Other("X_MINE=a".into())
            ]
        );
    }

    #[test]
    fn a_malformed_number_is_passed_on_as_said_not_misread() {
        assert_eq!(
            said(b"ERRNO=x\nWATCHDOG_USEC=-1\nMAINPID=1\nMAINPID=0"),
            [
                Notification::Other("ERRNO=x".into()),
                Notification::Other("WATCHDOG_USEC=-1".into())
            ]
        );
        assert_eq!(
            said(b"RELOADING=1\nMONOTONIC_USEC=soon"),
            [Notification::Reloading {
                monotonic_usec: None
            }]
        );
    }
}
