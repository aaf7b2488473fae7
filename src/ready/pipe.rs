//! The fd channels: this crate's token pipe and the s6-style notification
//! fd. Both are one-shot: the report (`ready`, `failed`) is at most one
//! `write`, then the fd is closed; `extend_timeout` (and `status` on the
//! pipe) write without closing.
//!
//! The reports take `&self`, so a notifier may sit in a `static` for a
//! signal handler, and several reports can be under way at once: on other
//! threads, or in a handler that interrupted one on this thread. A report
//! must never write to the fd after another has closed it: the next `open`
//! gets the number, and the report lands in that file. So the fd number
//! never moves, and a [`Slot`] keeps, in one atomic word, who may use it:
//!
//! - `CLAIMED`, set by the one-shot report before it writes: no report
//!   starts after it, and no second one-shot report is sent;
//! - a count of the reports writing to the fd right now, the one-shot one
//!   included.
//!
//! Once it is claimed, whoever leaves last closes the fd: the one-shot
//! report, or an `extend_timeout` or `status` that was still writing. Nobody waits for
//! anybody: a signal handler that interrupts a `status` on its own thread
//! and reports `failed` writes its token and returns, and the interrupted
//! `status` closes the fd when it is done. (Waiting there would never end:
//! the interrupted write cannot go on until the handler returns.) No lock,
//! no allocation: compare-and-swap, `write` and `close`, all
//! async-signal-safe.

use core::ffi::c_int;

use super::ReadyError;
use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};
use crate::nosignal::without_sigpipe;
use crate::sync::{AtomicU32, Exclusive, Ordering, const_unless_loom};
use crate::sys;

/// Checks that `fd` is open and is a pipe (or FIFO) or a socket.
pub(super) fn check_pipe_or_socket(fd: c_int) -> core::result::Result<(), ReadyError> {
    match sys::file_id(fd) {
        Ok(id) if id.is_fifo || id.is_socket => Ok(()),
        Ok(_) => Err(ReadyError::NotAPipeOrSocket { fd }),
        Err(Errno::EBADF) => Err(ReadyError::NotOpen { fd }),
        Err(e) => Err(ReadyError::Os(e)),
    }
}

/// Checks that `fd` is open for writing: a pipe's read end (or a FIFO
/// opened read-only) would take the channel and fail every report with
/// `EBADF`. `variable` names the environment variable that gave the fd.
pub(super) fn check_writable(
    fd: c_int,
    variable: Option<&'static str>,
) -> core::result::Result<(), ReadyError> {
    match sys::access_mode(fd) {
        Ok(libc::O_RDONLY) => Err(ReadyError::ReadOnly { fd, variable }),
        Ok(_) => Ok(()),
        Err(Errno::EBADF) => Err(ReadyError::NotOpen { fd }),
        Err(e) => Err(ReadyError::Os(e)),
    }
}

/// Set once a one-shot report has claimed the fd.
const CLAIMED: u32 = 1 << 31;
/// The bits that count the reports using the fd.
const USERS: u32 = CLAIMED - 1;

/// Who may use a channel's fd: the state machine of the [module](self),
/// apart from the fd (whoever closes it is handed the `close`), so that it
/// can be tested alone and model-checked (`loom_models` below, run by
/// `ci/loom.sh`).
#[derive(Debug)]
struct Users(AtomicU32);

impl Users {
    const_unless_loom! {
        fn new() -> Users {
            Users(AtomicU32::new(0))
        }
    }

    /// Becomes one of the fd's users, and with `claim` also its one-shot
    /// report. `Closed` once it is claimed.
    fn enter(&self, claim: bool) -> Result<()> {
        let flag = if claim { CLAIMED } else { 0 };
        // Acquire: this user's write comes after the fd was made.
        self.0
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |state| {
                if state & CLAIMED != 0 || state & USERS == USERS {
                    None
                } else {
                    Some((state + 1) | flag)
                }
            })
            .map(drop)
            .map_err(|state| {
                if state & CLAIMED != 0 {
                    Error::Closed
                } else {
                    // 2^31 reports in flight at once: cannot happen, but
                    // wrapping the count would close the fd under them.
                    Error::Os(Errno::EAGAIN)
                }
            })
    }

    /// Becomes one of the fd's users as [`enter`](Self::enter) does, for as
    /// long as the returned guard lives; `close` closes the fd, and runs if
    /// this user is the last one out of a claimed fd.
    fn enter_with<C: FnOnce()>(&self, claim: bool, close: C) -> Result<InUse<'_, C>> {
        self.enter(claim)?;
        Ok(InUse {
            users: self,
            close: Some(close),
        })
    }

    /// Stops using the fd: `true` if it is claimed and this was its last
    /// user, who must close it now.
    fn leave(&self) -> bool {
        // AcqRel: the closer's `close` comes after every user's write.
        self.0.fetch_sub(1, Ordering::AcqRel) == CLAIMED | 1
    }

    /// Claims the fd with nobody else using it (which `&mut` proves):
    /// `true` if it was not claimed before, and so is the caller's now.
    fn take(&mut self) -> bool {
        self.0.exclusive(|state| {
            debug_assert_eq!(*state & USERS, 0, "a report is in flight during &mut");
            let was_claimed = *state & CLAIMED != 0;
            *state = CLAIMED;
            !was_claimed
        })
    }

    fn is_claimed(&self) -> bool {
        self.0.load(Ordering::Acquire) & CLAIMED != 0
    }
}

/// A one-shot channel's fd and who may use it (see the [module](self)).
#[derive(Debug)]
pub(super) struct Slot {
    /// Set once, never changed: only [`Users`] says whether it is open.
    fd: c_int,
    users: Users,
}

/// One report's use of the fd, from [`Users::enter_with`] until it is
/// dropped (a report that panics leaves too); the last one out of a
/// claimed fd runs `close`.
struct InUse<'a, C: FnOnce()> {
    users: &'a Users,
    close: Option<C>,
}

impl<C: FnOnce()> Drop for InUse<'_, C> {
    fn drop(&mut self) {
        if self.users.leave()
            && let Some(close) = self.close.take()
        {
            close();
        }
    }
}

impl Slot {
    const_unless_loom! {
        /// A slot for `fd`, which it now owns.
        pub(super) fn new(fd: c_int) -> Slot {
            Slot {
                fd,
                users: Users::new(),
            }
        }
    }

    /// The fd, while no one-shot report has claimed it (for `Debug`).
    pub(super) fn open_fd(&self) -> Option<c_int> {
        (!self.users.is_claimed()).then_some(self.fd)
    }

    fn enter(&self, claim: bool) -> Result<InUse<'_, impl FnOnce()>> {
        let fd = self.fd;
        self.users.enter_with(claim, move || sys::close(fd))
    }

    /// Runs `f` on the fd, which nobody closes meanwhile.
    pub(super) fn with_end<T>(&self, f: impl FnOnce(&TokenPipeEnd) -> Result<T>) -> Result<T> {
        let using = self.enter(false)?;
        let result = borrowed(self.fd, f);
        drop(using);
        result
    }

    /// Writes `message` without closing the channel.
    pub(super) fn write(&self, message: &[u8]) -> Result<()> {
        self.with_end(|end| write_whole(end, message))
    }

    /// The one-shot report: claims the fd, writes `message` (nothing if it
    /// is empty), and closes the fd, or leaves that to the last report
    /// still writing to it. `Closed` if a one-shot report came first.
    pub(super) fn report(&self, message: &[u8]) -> Result<()> {
        let using = self.enter(true)?;
        let written = if message.is_empty() {
            Ok(())
        } else {
            borrowed(self.fd, |end| write_whole(end, message))
        };
        drop(using);
        written
    }

    /// `Ok` while no one-shot report has claimed the fd (a report that
    /// writes nothing on this channel), `Closed` after.
    pub(super) fn still_open(&self) -> Result<()> {
        if self.users.is_claimed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// The fd, given up to the caller, if no one-shot report claimed it.
    pub(super) fn take(&mut self) -> Option<c_int> {
        self.users.take().then_some(self.fd)
    }
}

/// Runs `f` on `fd` as an end it does not own.
fn borrowed<T>(fd: c_int, f: impl FnOnce(&TokenPipeEnd) -> Result<T>) -> Result<T> {
    // ManuallyDrop keeps this copy from closing the slot's fd.
    let end = core::mem::ManuallyDrop::new(TokenPipeEnd::from_owned(fd));
    f(&end)
}

/// Writes `message` in one `write`, raising no `SIGPIPE`. Every message is
/// at most `PIPE_BUF` bytes, so it arrives whole.
fn write_whole(end: &TokenPipeEnd, message: &[u8]) -> Result<()> {
    without_sigpipe(end, || match end.write_tokens(message) {
        Ok(n) if n == message.len() => Ok(()),
        Ok(_) => Err(Error::Os(Errno::EIO)), // cannot happen up to PIPE_BUF
        Err(e) => Err(e),
    })
}

impl Drop for Slot {
    /// Closes an fd that no report claimed (the launcher reads end of
    /// stream: no report).
    fn drop(&mut self) {
        if let Some(fd) = self.take() {
            sys::close(fd);
        }
    }
}

// On `core`'s atomics: loom's exist only inside a model.
#[cfg(all(test, not(tokenpipe_loom)))]
mod tests {
    extern crate std;

    use core::sync::atomic::{AtomicBool, AtomicUsize};

    use super::*;

    #[test]
    fn a_claim_shuts_out_every_later_report_and_the_last_out_closes() {
        let users = Users::new();
        assert_eq!(users.enter(false), Ok(()));
        assert_eq!(users.enter(true), Ok(()), "a claim while another writes");
        assert_eq!(users.enter(false), Err(Error::Closed));
        assert_eq!(users.enter(true), Err(Error::Closed), "one claim only");
        assert!(!users.leave(), "the claim leaves first: not its to close");
        assert!(users.leave(), "the last user out of a claimed fd closes it");
        assert_eq!(users.enter(false), Err(Error::Closed));
        assert!(users.is_claimed());
    }

    #[test]
    fn a_claim_alone_closes_on_its_way_out_and_users_alone_never_do() {
        let users = Users::new();
        assert_eq!(users.enter(false), Ok(()));
        assert_eq!(users.enter(false), Ok(()));
        assert!(!users.leave());
        assert!(!users.leave(), "unclaimed: nobody closes");
        assert_eq!(users.enter(true), Ok(()));
        assert!(users.leave());
    }

    #[test]
    fn take_gives_the_fd_once_and_never_after_a_claim() {
        let mut users = Users::new();
        assert!(users.take());
        assert!(!users.take(), "taken already");
        let mut users = Users::new();
        users.enter(true).unwrap();
        assert!(users.leave());
        assert!(!users.take(), "the claim closed it");
    }

    #[test]
    fn a_full_count_is_refused_not_wrapped_into_the_claim_bit() {
        let users = Users(AtomicU32::new(USERS));
        assert_eq!(users.enter(false), Err(Error::Os(Errno::EAGAIN)));
        assert!(!users.is_claimed());
    }

    /// Threads race to use and to claim one fd, stood in for by a flag:
    /// exactly one claim wins, the fd is closed exactly once, and never
    /// while a user is inside.
    #[test]
    fn racing_users_and_claims_close_exactly_once_and_never_under_a_user() {
        let rounds = if cfg!(miri) { 3 } else { 200 };
        for _ in 0..rounds {
            let users = Users::new();
            let open = AtomicBool::new(true);
            let claims = AtomicUsize::new(0);
            let closes = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for thread in 0..4 {
                    let (users, open, claims, closes) = (&users, &open, &claims, &closes);
                    s.spawn(move || {
                        for i in 0..8 {
                            // Threads 0 and 1 try to claim half-way; every
                            // try after the first claim is refused.
                            let claim = thread < 2 && i == 4;
                            if users.enter(claim).is_err() {
                                continue;
                            }
                            if claim {
                                claims.fetch_add(1, Ordering::Relaxed);
                            }
                            assert!(open.load(Ordering::Relaxed), "used after close");
                            std::thread::yield_now();
                            assert!(open.load(Ordering::Relaxed), "closed under a user");
                            if users.leave() {
                                assert!(open.swap(false, Ordering::Relaxed), "closed twice");
                                closes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            });
            assert_eq!(claims.load(Ordering::Relaxed), 1);
            assert_eq!(closes.load(Ordering::Relaxed), 1);
            assert!(!open.load(Ordering::Relaxed));
        }
    }
}

/// The claim word under loom (`ci/loom.sh`): every interleaving of reports
/// on threads and in a signal handler (a thread that runs one report to
/// its end), with the orderings `Users` asks for. The fd is a loom cell
/// that each write reads and the close writes: a write that the close is
/// not ordered after (happens-before) is a race to loom, and a write or a
/// close after the close fails an assertion.
#[cfg(all(test, tokenpipe_loom))]
mod loom_models {
    extern crate std;

    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::sync::model;

    /// A channel as `Slot` is one, with a model fd: the cell stands for
    /// it, and counts of closes and of one-shot reports sent.
    struct Channel {
        users: Users,
        fd: UnsafeCell<()>,
        closes: AtomicU32,
        sent: AtomicU32,
    }

    // SAFETY: the cell holds nothing, and loom checks every access to it
    // (that is its purpose here); the rest is atomics.
    #[allow(unsafe_code)]
    unsafe impl Sync for Channel {}

    impl Channel {
        fn new() -> Arc<Channel> {
            Arc::new(Channel {
                users: Users::new(),
                fd: UnsafeCell::new(()),
                closes: AtomicU32::new(0),
                sent: AtomicU32::new(0),
            })
        }

        /// A cell access and nothing else, so no other thread runs
        /// during it.
        fn write(&self) {
            self.fd.with(|_| ());
            // Relaxed: a close ordered before this write is seen by it;
            // one not ordered either way was loom's race.
            let closes = self.closes.load(Ordering::Relaxed);
            assert_eq!(closes, 0, "a write after the close");
        }

        fn close(&self) {
            self.fd.with_mut(|_| ());
            let before = self.closes.fetch_add(1, Ordering::Relaxed);
            assert_eq!(before, 0, "a second close");
        }

        /// `Slot::write` (`status`, `extend_timeout`).
        fn status(&self) -> Result<()> {
            let using = self.users.enter_with(false, || self.close())?;
            self.write();
            drop(using);
            Ok(())
        }

        /// `Slot::report` (`ready`, `failed`).
        fn report(&self) -> Result<()> {
            let using = self.users.enter_with(true, || self.close())?;
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.write();
            drop(using);
            Ok(())
        }

        /// After every thread is joined: `Slot`'s drop, then the checks
        /// that hold in every interleaving.
        fn drop_and_check(mut channel: Arc<Channel>) {
            let channel = Arc::get_mut(&mut channel).expect("every thread joined");
            if channel.users.take() {
                channel.close();
            }
            assert_eq!(channel.closes.load(Ordering::Relaxed), 1, "closed once");
            assert!(
                channel.sent.load(Ordering::Relaxed) <= 1,
                "one one-shot report"
            );
        }
    }

    /// A `status` on another thread, and one on this thread interrupted by
    /// a handler that reports `failed`: the report is sent, and the fd is
    /// closed once, after every write, by whoever left last.
    #[test]
    fn loom_a_report_in_a_handler_amid_status_writes_closes_once_after_them() {
        model(|| {
            let channel = Channel::new();
            let other = Arc::clone(&channel);
            let status = thread::spawn(move || other.status());
            let handler_channel = Arc::clone(&channel);
            let handler = thread::spawn(move || handler_channel.report());
            let mine = channel.status();
            assert_eq!(handler.join().unwrap(), Ok(()), "the only claim wins");
            for result in [status.join().unwrap(), mine] {
                assert!(matches!(result, Ok(()) | Err(Error::Closed)), "{result:?}");
            }
            assert_eq!(channel.sent.load(Ordering::Relaxed), 1);
            Channel::drop_and_check(channel);
        });
    }

    /// `ready` on a thread and `failed` from a handler that interrupted a
    /// `status`: exactly one report is sent, the other is `Closed`, and
    /// the fd is closed once.
    #[test]
    fn loom_two_reports_race_and_exactly_one_is_sent() {
        model(|| {
            let channel = Channel::new();
            let other = Arc::clone(&channel);
            let ready = thread::spawn(move || other.report());
            let handler_channel = Arc::clone(&channel);
            let failed = thread::spawn(move || handler_channel.report());
            let status = channel.status();
            let reports = [ready.join().unwrap(), failed.join().unwrap()];
            assert!(matches!(status, Ok(()) | Err(Error::Closed)), "{status:?}");
            assert_eq!(
                reports.iter().filter(|r| r.is_ok()).count(),
                1,
                "{reports:?}"
            );
            assert!(reports.contains(&Err(Error::Closed)), "{reports:?}");
            assert_eq!(channel.sent.load(Ordering::Relaxed), 1);
            Channel::drop_and_check(channel);
        });
    }

    /// No one-shot report: status writes never close the fd, the drop
    /// does, once.
    #[test]
    fn loom_status_writes_alone_leave_the_close_to_the_drop() {
        model(|| {
            let channel = Channel::new();
            let other = Arc::clone(&channel);
            let status = thread::spawn(move || other.status());
            assert_eq!(channel.status(), Ok(()));
            assert_eq!(status.join().unwrap(), Ok(()));
            assert_eq!(channel.closes.load(Ordering::Relaxed), 0);
            Channel::drop_and_check(channel);
        });
    }
}
