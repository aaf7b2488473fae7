//! [`SignalInterrupt`]: Bitcoin Core's `util::SignalInterrupt`, the
//! self-pipe as a type that a `static`, a signal handler, any number of
//! waiting threads and a `poll` loop can share.
//!
//! # The state word
//! One `AtomicU32` holds everything a decision needs, so every decision is
//! one atomic read-modify-write and no two fields can disagree:
//!
//! - `TRIGGERED`: the flag (`operator bool`).
//! - `SIGNAL` and `DELIVERED`: the first installed signal delivered since
//!   the last reset, and whether one was: set by the handler in the same
//!   update that sets the flag, cleared by `reset` in the same update that
//!   clears it, so `is_triggered` and `signal` never disagree.
//! - `READY`: the pipe exists. Whose: `maker`, the id of the process that
//!   made it, stored before `READY` is published. A pipe whose maker is
//!   not this process (`getpid`) is a parent's, inherited through `fork`
//!   of any kind (the C library's, a raw `clone`, `vfork`, a fork before
//!   any call of ours), and is never read, written or closed here.
//! - `BUSY`: someone is making the pipe (the first use, or the first use
//!   in a fork's child); `busy_by` names the process, stored before the
//!   claim.
//! - `TAKING`: a `reset` is reading the token.
//! - `WRITERS`: how many token writes are in flight (set in the operation
//!   that decides to write, taken off after the `write`). Like `BUSY` and
//!   `TAKING`, it speaks only for the process that made the pipe: a fork's
//!   child never waits on a writer that was a thread of its parent.
//!
//! Exactly one token is in the pipe while `TRIGGERED` is set on a `READY`
//! pipe (once the trigger that set it has written), and none otherwise. Two rules keep that
//! true, each decided by the same atomic operation that sees the state:
//!
//! - whoever sets `TRIGGERED` on a `READY` word writes the token;
//! - whoever turns `BUSY` into `READY` writes it if `TRIGGERED` is set at
//!   that moment (a trigger that came while the pipe was being made, maybe
//!   from a handler that interrupted the making).
//!
//! A `reset` that finds the flag set and the pipe still empty waits on the
//! read end only while a write is in flight. With none in flight, the token
//! is not coming: its write failed, or someone read the read end against
//! the docs. Either way the reset ends instead of hanging. A count, not a
//! bit: the late "done" of one trigger must not erase the "writing" of the
//! next. A write that fails takes its writer off and clears the flag in
//! one update (while a reset is taking, it leaves the flag to that reset):
//! in between, no reset could finish and no later trigger set the flag,
//! which the failure would then clear under that trigger's token.

#[cfg(tokenpipe_sigaction)]
mod install;
mod os;

use crate::sync::{AtomicI32, AtomicU32, Exclusive, Ordering, const_unless_loom};
use core::ffi::c_int;
use core::fmt;

use core::time::Duration;

use crate::error::{Errno, Error, Result};
use crate::sys::Polled;
use crate::wait::{Deadline, poll_timeout_ms};

#[cfg(tokenpipe_sigaction)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use install::{InstallError, InstallOptions, Installed, MAX_SIGNALS};
/// `SIGKILL`, `SIGABRT`, `SIGSTOP` and `SIGCONT`, to send to a process
/// (`ReadyChild::kill`, `DaemonParent::kill`) without depending on `libc`;
/// not for [`SignalInterrupt::install`], which refuses the two that
/// cannot be caught. Where processes can be started (and so signalled).
#[cfg(tokenpipe_fork)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use libc::{SIGABRT, SIGCONT, SIGKILL, SIGSTOP};
#[cfg(tokenpipe_sigaction)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

const TRIGGERED: u32 = 1;
const READY: u32 = 1 << 1;
const BUSY: u32 = 1 << 2;
const TAKING: u32 = 1 << 3;
/// One token write in flight; `WRITERS` holds up to 4095 of them at once
/// (each is a thread or handler between deciding to write and returning
/// from `write`).
const WRITER: u32 = 1 << 4;
const WRITERS: u32 = 0xfff << 4;
/// Where the first delivered signal's number is kept (1 to 128; 0: none).
const SIGNAL_SHIFT: u32 = 16;
const SIGNAL: u32 = 0xff << SIGNAL_SHIFT;
/// An installed signal was delivered since the last reset.
const DELIVERED: u32 = 1 << 24;
/// What a trigger sets and a reset clears, all in one update.
const TRIGGER_STATE: u32 = TRIGGERED | SIGNAL | DELIVERED;

/// The byte in the pipe. Bitcoin Core writes `'x'`; nothing reads its value.
const TOKEN: u8 = b'x';

/// This process's id, asked once per decision that needs it.
struct Me(Option<i32>);

impl Me {
    const fn new() -> Me {
        Me(None)
    }

    #[inline]
    fn pid(&mut self) -> i32 {
        *self.0.get_or_insert_with(os::process_id)
    }
}

/// Lets another thread finish a step measured in system calls (making the
/// pipe, writing the token) without burning the core: `poll` on no fds for
/// a millisecond.
#[cold]
fn pause() {
    let _ = os::poll_many(&mut [], 1);
}

/// What [`SignalInterrupt::ensure`] found.
enum Pipe {
    /// The pipe exists: its read end.
    Ready(c_int),
    /// Another thread, or the code this handler interrupted, is making it,
    /// and will write any token owed when it is done.
    Busy,
}

/// A one-shot, resettable interrupt: Bitcoin Core's
/// `util::SignalInterrupt`, in the `no_std` core, allocation-free,
/// `Send + Sync`, and made with a `const fn` for statics.
///
/// [`trigger`](Self::trigger) sets a flag and writes one token to a pipe,
/// once however many threads and signal handlers call it;
/// [`wait`](Self::wait) blocks until the flag is set; [`is_triggered`]
/// reads it; [`reset`](Self::reset) takes the token and clears the flag so
/// it can fire again. The pipe's read end is readable exactly while the
/// interrupt is triggered, so a `poll`, `epoll` or mio loop can watch
/// [`as_raw_fd`](Self::as_raw_fd) beside its sockets. With
/// `install` (where there are processes), `SIGINT`, `SIGTERM` or any other
/// signal triggers it.
///
/// | Bitcoin Core | here |
/// |---|---|
/// | `SignalInterrupt()` (makes the pipe) | [`SignalInterrupt::new`] (`const`; the pipe is made on first use) |
/// | `operator()()` | [`trigger`](Self::trigger) |
/// | `operator bool()` | [`is_triggered`] |
/// | `wait()` (takes the token: one waiter wakes) | [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout) (every waiter wakes) |
/// | `reset()` | [`reset`](Self::reset) |
/// | a `sigaction` handler that calls it | `install` |
///
/// # Every waiter wakes
/// In Bitcoin Core `wait()` reads the token, so of two threads waiting,
/// one wakes and the other blocks until the next trigger. Here waiting
/// never takes the token: it stays in the pipe until
/// [`reset`](Self::reset), and every thread in `wait` (and every `poll` on
/// the read end) wakes on one trigger. This is a deliberate change. A
/// `reset` while threads wait clears the trigger for any of them that has
/// not looked yet: reset when the waiters are done, as Bitcoin Core does.
///
/// # A trigger racing a reset is never lost
/// In Bitcoin Core, a trigger that lands while `reset()` is between
/// reading the flag and clearing it leaves a token in the pipe with the
/// flag clear: `operator bool` says no trigger came, and the next `wait()`
/// returns at once. Here a trigger either happens before the reset, which
/// then clears it and takes its token, or after, and the interrupt stays
/// triggered with its token in the pipe: the flag and the pipe never
/// disagree.
///
/// # First use
/// [`new`](Self::new) makes nothing, so a `static` needs no set-up call.
/// The first call that needs the pipe makes it, with one `pipe2`
/// (close-on-exec and non-blocking; `pipe` and `fcntl` where there is no
/// `pipe2`), which is async-signal-safe, so that first call may be a
/// trigger in a signal handler. Two first users never share a half-made
/// pipe or leak one: one makes it, and a trigger that finds it being made
/// leaves its token to the maker. If the pipe cannot be made (no fds left),
/// that call returns the error and a later call tries again; a trigger
/// that failed so has still set the flag, so [`is_triggered`] and `wait`
/// see it.
///
/// # fork
/// A child of `fork` gets a copy of the interrupt and of its fds, so it
/// would share the pipe with its parent: a `SIGTERM` to a daemon would
/// wake the process that launched it. Instead the interrupt notes which
/// process made its pipe, and every call that would touch the pipe asks
/// `getpid()` first: in any other process (a child of the C library's
/// `fork`, of a raw `clone` or `vfork` system call, of a fork made before
/// any call of this crate, or a handler that runs in the child before the
/// C library's own fork hooks), the pipe is not its own, is never read or
/// written, and the first call that needs one makes a fresh pipe, keeping
/// the flag (and signal) it inherited. There is no window: the question is
/// asked of the kernel, not of bookkeeping that a fork, a signal or
/// another library can get between. It costs one `getpid` on a first
/// trigger and on a wait, none on a trigger that finds the flag set.
///
/// The child never closes the copies of the parent's fds it inherited: by
/// the time it uses the interrupt, their numbers may name its own files (a
/// daemon closes every fd it inherited and opens sockets and logs). They
/// stay open, close-on-exec (they are gone at the child's next `exec`),
/// two per interrupt used in the child; a child that cares closes them
/// itself, as a daemon does, before it uses the interrupt. Nor is the
/// parent's pipe closed when a child drops a non-`static` interrupt. An fd
/// borrowed before the fork ([`as_raw_fd`](Self::as_raw_fd), `try_as_fd`,
/// `AsFd`) is the parent's pipe in the child: in a child, borrow it again.
/// (A process whose pid happens to equal that of a dead ancestor that made
/// the pipe, and which inherited the interrupt through forks without using
/// it in between, cannot be told from that maker.)
///
/// # Signal safety
/// Async-signal-safe: [`trigger`](Self::trigger) and [`is_triggered`]. Not
/// for handlers: [`wait`](Self::wait) (it blocks), [`reset`](Self::reset)
/// (it waits for a trigger in flight to finish writing its token), and the
/// fd accessors (they may wait for another thread to finish making the
/// pipe).
///
/// ```
/// use tokenpipe::SignalInterrupt;
/// use std::time::Duration;
///
/// static STOP: SignalInterrupt = SignalInterrupt::new();
///
/// let workers: Vec<_> = (0..3)
///     .map(|_| std::thread::spawn(|| STOP.wait()))
///     .collect();
/// assert!(!STOP.is_triggered());
/// STOP.trigger()?; // from a thread, or a signal handler
/// STOP.trigger()?; // a second trigger writes nothing
/// for worker in workers {
///     worker.join().unwrap()?; // all three wake
/// }
/// assert!(STOP.wait_timeout(Duration::ZERO)?);
/// STOP.reset()?;
/// assert!(!STOP.wait_timeout(Duration::from_millis(10))?);
/// # Ok::<(), tokenpipe::Error>(())
/// ```
///
/// [`is_triggered`]: Self::is_triggered
pub struct SignalInterrupt {
    state: AtomicU32,
    read_fd: AtomicI32,
    write_fd: AtomicI32,
    /// The process that made the pipe `READY` names (0: none yet).
    maker: AtomicI32,
    /// The process whose thread is making the pipe while `BUSY` is set.
    busy_by: AtomicI32,
}

impl SignalInterrupt {
    const_unless_loom! {
    /// An untriggered interrupt with no pipe yet: usable as
    /// `static STOP: SignalInterrupt = SignalInterrupt::new();`.
    #[must_use]
    pub fn new() -> SignalInterrupt {
        SignalInterrupt {
            state: AtomicU32::new(0),
            read_fd: AtomicI32::new(-1),
            write_fd: AtomicI32::new(-1),
            maker: AtomicI32::new(0),
            busy_by: AtomicI32::new(0),
        }
    }
    }

    /// Whether `s` (just loaded) has a pipe this process made.
    #[inline]
    fn ready_here(&self, s: u32, me: &mut Me) -> bool {
        s & READY != 0 && self.maker.load(Ordering::Relaxed) == me.pid()
    }

    /// Whether `s` says a thread of this process is making the pipe (a
    /// `BUSY` copied from a fork's parent names a thread that is not here).
    #[inline]
    fn busy_here(&self, s: u32, me: &mut Me) -> bool {
        s & BUSY != 0 && self.busy_by.load(Ordering::Relaxed) == me.pid()
    }

    /// Sets the flag and, if it was not set yet, writes one token
    /// (Bitcoin Core's `operator()`).
    ///
    /// Async-signal-safe, reentrant and lock-free: call it from any thread
    /// or signal handler, any number of times; the token is written once
    /// until [`reset`](Self::reset). It never blocks (the pipe is
    /// non-blocking and holds at most one token), never raises `SIGPIPE`
    /// (this interrupt holds the read end), and leaves `errno` as it found
    /// it. The first trigger is one `write(2)`; later ones make no system
    /// call. On the very first use of the interrupt it also makes the pipe
    /// (see [First use](Self#first-use)).
    ///
    /// # Errors
    /// [`Error::Os`] if the pipe could not be made on first use (`EMFILE`,
    /// `ENFILE`): the flag is set even so, [`is_triggered`](Self::is_triggered)
    /// and `wait` see the trigger, and the token is written when a later
    /// call makes the pipe. Or if the write failed (its fd was closed
    /// behind this interrupt's back: `EBADF`): the flag is then clear
    /// again, as in Bitcoin Core, so a later trigger tries again.
    ///
    /// # References
    /// - [POSIX `write`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
    /// - [POSIX, async-signal-safe functions](https://pubs.opengroup.org/onlinepubs/9799919799/functions/V2_chap02.html#tag_16_04_03_03)
    #[inline]
    pub fn trigger(&self) -> Result<()> {
        let s = self.state.load(Ordering::Acquire);
        // Set already: nothing to write, no system call.
        if s & TRIGGERED != 0 {
            return Ok(());
        }
        // The usual first trigger: a pipe of this process (one getpid),
        // the flag set and the writer counted in one update, one write.
        if s & READY != 0
            && self.maker.load(Ordering::Relaxed) == os::process_id()
            && self
                .state
                .compare_exchange(
                    s,
                    (s | TRIGGERED) + WRITER,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            return self.write_token();
        }
        self.raise(0, 0).1
    }

    /// A delivery of the installed signal `sig`: records it and triggers,
    /// in one update; with `terminates`, a delivery after an earlier one
    /// (since the last reset) gets the signal's default action instead.
    #[cfg(tokenpipe_sigaction)]
    pub(crate) fn deliver(&self, sig: c_int, terminates: bool) {
        let marks = DELIVERED | ((sig as u32 & 0xff) << SIGNAL_SHIFT);
        // Nothing a handler could do about an error: the flag is set anyway.
        let _ = self.raise(marks, if terminates { sig } else { 0 });
    }

    /// The first installed signal delivered since the last reset.
    #[cfg(tokenpipe_sigaction)]
    pub(crate) fn delivered_signal(&self) -> Option<c_int> {
        match (self.state.load(Ordering::Acquire) & SIGNAL) >> SIGNAL_SHIFT {
            0 => None,
            sig => Some(sig as c_int),
        }
    }

    /// Sets the flag and, with `marks` (a handler's `DELIVERED` and
    /// signal), records the delivery in the same update; then writes the
    /// token this caller owes, if it owes one. With `die_on_second` (a
    /// signal), a delivery that finds an earlier one recorded gets that
    /// signal's default action first. Returns the state before the update.
    /// Async-signal-safe.
    #[cold]
    fn raise(&self, marks: u32, die_on_second: c_int) -> (u32, Result<()>) {
        // Only handlers, which exist where there are signals, ask it.
        #[cfg(not(tokenpipe_sigaction))]
        let _ = die_on_second;
        let mut me = Me::new();
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let untriggered = s & TRIGGERED == 0;
            if !untriggered && marks == 0 {
                return (s, Ok(()));
            }
            // Only the first delivery's number is kept.
            let marks = if s & SIGNAL == 0 {
                marks
            } else {
                marks & !SIGNAL
            };
            let here = untriggered && self.ready_here(s, &mut me);
            let writer = if here { WRITER } else { 0 };
            match self.state.compare_exchange_weak(
                s,
                (s | TRIGGERED | marks) + writer,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                #[cfg(tokenpipe_sigaction)]
                Ok(_) if die_on_second != 0 && s & DELIVERED != 0 => {
                    crate::sys::die_by_default_action(die_on_second);
                    // Returned: the default action does not end the
                    // process (SIGCHLD, SIGCONT...). Go on as a trigger.
                    return (s, if here { self.write_token() } else { Ok(()) });
                }
                Ok(_) if here => return (s, self.write_token()),
                Ok(_) if untriggered => return (s, self.owe_token(&mut me)),
                Ok(_) => return (s, Ok(())),
                Err(now) => s = now,
            }
        }
    }

    /// The flag is set, and this process has no pipe: make it (whoever
    /// publishes it writes the token the flag owes), or leave the token to
    /// the thread of this process making it.
    #[cold]
    fn owe_token(&self, me: &mut Me) -> Result<()> {
        let saved = os::errno_now();
        let made = self.ensure(me);
        os::set_errno(saved);
        made.map(drop)
    }

    /// Writes the token this caller owes (it set the flag on a made pipe).
    #[inline]
    fn write_token(&self) -> Result<()> {
        // Saved before the write: a failed write overwrites it. (The C
        // libraries leave errno alone when a call succeeds.)
        let saved = os::errno_now();
        let fd = self.write_fd.load(Ordering::Relaxed);
        if os::write_count(fd, &[TOKEN]) == 1 {
            self.state.fetch_sub(WRITER, Ordering::Release);
            return Ok(());
        }
        self.write_failed(saved)
    }

    #[cold]
    fn write_failed(&self, saved: Errno) -> Result<()> {
        let e = os::errno();
        os::set_errno(saved);
        if e == Errno::EAGAIN {
            // A full pipe is readable already: every waiter wakes.
            self.state.fetch_sub(WRITER, Ordering::Release);
            return Ok(());
        }
        // No token will come for this flag: clear it (as Bitcoin Core
        // does), so a later trigger tries again, in the same update that
        // takes this writer off. While a reset is taking, the flag is left
        // to it: it sees no writer and no token, and clears the flag itself.
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                let s = s - WRITER;
                Some(if s & TAKING != 0 {
                    s
                } else {
                    s & !TRIGGER_STATE
                })
            });
        Err(Error::Os(e))
    }

    /// Whether the interrupt has been triggered since it was made or last
    /// reset (Bitcoin Core's `operator bool`). One atomic load;
    /// async-signal-safe.
    #[inline]
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        self.state.load(Ordering::Acquire) & TRIGGERED != 0
    }

    /// Blocks until the interrupt is triggered (Bitcoin Core's `wait()`,
    /// except that it leaves the token in the pipe, so every waiter wakes;
    /// see [Every waiter wakes](Self#every-waiter-wakes)).
    ///
    /// Returns at once, with no system call, if the interrupt is triggered
    /// already; otherwise waits in `poll(2)` on the read end, restarting
    /// after a signal. Not for signal handlers.
    ///
    /// # Errors
    /// [`Error::Os`] if the pipe cannot be made or `poll` fails.
    ///
    /// # References
    /// - [POSIX `poll`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
    pub fn wait(&self) -> Result<()> {
        self.wait_for(None).map(drop)
    }

    /// Waits at most `timeout` for the interrupt: `true` if it is
    /// triggered, `false` if the time ran out first. A zero timeout looks
    /// once without blocking. The time left after a signal interrupts the
    /// wait is measured on `CLOCK_MONOTONIC`, as in
    /// [`TokenPipeEnd::token_read_timeout`](crate::TokenPipeEnd::token_read_timeout).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_for(Some(timeout))
    }

    fn wait_for(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.is_triggered() {
            return Ok(true);
        }
        let fd = self.read_end()?;
        let deadline = timeout.map(Deadline::start).transpose()?;
        let mut remaining = timeout;
        loop {
            // The flag, not the pipe, is the answer: readable with the flag
            // clear means a reset took the token in between.
            if self.is_triggered() {
                return Ok(true);
            }
            match os::poll_readable(fd, remaining.map_or(-1, poll_timeout_ms)) {
                Ok(Polled::Ready | Polled::TimedOut) | Err(Errno::EINTR) => {}
                Ok(Polled::NotOpen) => return Err(Error::Os(Errno::EBADF)),
                Err(e) => return Err(Error::Os(e)),
            }
            if let Some(deadline) = &deadline {
                match deadline.left()? {
                    Some(left) => remaining = Some(left),
                    // The last look, after the poll that used up the time.
                    None => return Ok(self.is_triggered()),
                }
            }
        }
    }

    /// Takes the token and clears the flag, so the interrupt can fire
    /// again (Bitcoin Core's `reset()`). Does nothing if it is not
    /// triggered. A trigger racing it is never lost (see
    /// [A trigger racing a reset](Self#a-trigger-racing-a-reset-is-never-lost)).
    ///
    /// One non-blocking `read(2)` when triggered, none otherwise. It may
    /// wait for a trigger in another thread to finish writing its token
    /// (one system call), so it is not for signal handlers. Also forgets
    /// which signal came (`signal()`) and the count of deliveries that the
    /// second-signal option of `install` keeps.
    ///
    /// # Errors
    /// [`Error::Os`] if the read fails with anything but "no token"; the
    /// flag is cleared either way. A token that is not coming (its write
    /// failed, or someone read the read end against the docs of
    /// [`as_raw_fd`](Self::as_raw_fd)) ends the reset, never hangs it.
    pub fn reset(&self) -> Result<()> {
        let mut me = Me::new();
        loop {
            let s = self.state.load(Ordering::Acquire);
            // The signal bits are set only with the flag, and cleared with
            // it: nothing to forget when it is clear.
            if s & TRIGGERED == 0 {
                return Ok(());
            }
            if !self.ready_here(s, &mut me) {
                if self.busy_here(s, &mut me) {
                    pause(); // its maker will write the token: let it finish
                    continue;
                }
                // No pipe of this process: the token is owed, not written
                // (and a parent's pipe is never read). Clearing the flag
                // clears the debt.
                if self
                    .state
                    .compare_exchange(s, s & !TRIGGER_STATE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if s & TAKING != 0 {
                pause(); // another reset is taking the token
                continue;
            }
            if self
                .state
                .compare_exchange(s, s | TAKING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let fd = self.read_fd.load(Ordering::Relaxed);
            let mut token = [0u8; 1];
            // Empty pipe: wait on it while a write is in flight; once none
            // is, one more read decides (a write may have landed just
            // after the last one), and no token then means none is coming.
            // (While this reset takes, a failed write leaves the flag set.)
            let mut last_look = false;
            let taken = loop {
                match os::read(fd, &mut token) {
                    Ok(_) => break Ok(()),
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) if last_look => break Ok(()),
                    Err(Errno::EAGAIN) => {
                        if self.state.load(Ordering::Acquire) & WRITERS == 0 {
                            last_look = true;
                        } else if let Err(e) = os::poll_readable(fd, 10)
                            && e != Errno::EINTR
                        {
                            break Err(e);
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            // A trigger between the read and here found the flag set and
            // wrote nothing: it happened before this reset, which clears it
            // with the signal it recorded, in one update.
            self.state
                .fetch_and(!(TRIGGER_STATE | TAKING), Ordering::AcqRel);
            return taken.map_err(Error::Os);
        }
    }

    /// The read end's fd, for a `poll`, `epoll`, kqueue or mio loop: it is
    /// readable exactly while the interrupt is triggered. Makes the pipe if
    /// this is the first use. Do not read from it, or close it: the token
    /// belongs to [`reset`](Self::reset) (a token read elsewhere leaves the
    /// fd unreadable while the interrupt is still triggered), and the fd to
    /// the interrupt (it is closed when a non-`static` interrupt is
    /// dropped).
    ///
    /// (Readable a moment after [`is_triggered`](Self::is_triggered) turns
    /// true: the trigger sets the flag, then writes.)
    ///
    /// # Errors
    /// [`Error::Os`] if the pipe cannot be made.
    pub fn as_raw_fd(&self) -> Result<c_int> {
        self.read_end()
    }

    /// The read end, making the pipe if needed and waiting out another
    /// thread that is making it. Not for signal handlers.
    fn read_end(&self) -> Result<c_int> {
        let mut me = Me::new();
        loop {
            match self.ensure(&mut me)? {
                Pipe::Ready(fd) => return Ok(fd),
                Pipe::Busy => pause(),
            }
        }
    }

    /// Makes sure this process has the pipe, making it if nobody here is
    /// (first use, or first use in a fork's child). Async-signal-safe.
    fn ensure(&self, me: &mut Me) -> Result<Pipe> {
        loop {
            let s = self.state.load(Ordering::Acquire);
            if self.ready_here(s, me) {
                return Ok(Pipe::Ready(self.read_fd.load(Ordering::Relaxed)));
            }
            if self.busy_here(s, me) {
                return Ok(Pipe::Busy);
            }
            // Before the claim, so that whoever sees this claim's BUSY sees
            // whose it is. Every thread here stores the same value.
            self.busy_by.store(me.pid(), Ordering::Relaxed);
            // Claim the making, keeping the flag and its signal, and
            // dropping whatever a fork's parent was doing (READY, BUSY,
            // TAKING, WRITERS).
            let claimed = (s & TRIGGER_STATE) | BUSY;
            if self
                .state
                .compare_exchange(s, claimed, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // A pipe made by a fork's parent is not closed: its fds are
            // copies this process inherited, but their numbers may name
            // other files by now (a daemon closes every fd it inherited and
            // opens its own). They stay open, close-on-exec, forgotten.
            let [read, write] = match os::make_pipe_nonblocking() {
                Ok(fds) => fds,
                Err(e) => {
                    // Give the making back. The flag stays: the token it
                    // owes is written by whoever makes the pipe next.
                    self.state.fetch_and(TRIGGER_STATE, Ordering::AcqRel);
                    return Err(Error::Os(e));
                }
            };
            self.read_fd.store(read, Ordering::Relaxed);
            self.write_fd.store(write, Ordering::Relaxed);
            self.maker.store(me.pid(), Ordering::Relaxed);
            // Only this caller clears BUSY, so the update always applies;
            // its Release publishes the fds and the maker with READY.
            let before = self
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    let owed = s & TRIGGERED;
                    let writer = if owed != 0 { WRITER } else { 0 };
                    Some((s & TRIGGER_STATE) | READY | writer)
                })
                .unwrap_or_else(|s| s);
            if before & TRIGGERED != 0 {
                // A trigger that came while the pipe was being made left
                // its token to us. A fresh, empty pipe takes one byte.
                let _ = os::write_count(write, &[TOKEN]);
                self.state.fetch_sub(WRITER, Ordering::Release);
            }
            return Ok(Pipe::Ready(read));
        }
    }
}

impl Default for SignalInterrupt {
    fn default() -> Self {
        SignalInterrupt::new()
    }
}

impl Drop for SignalInterrupt {
    /// Closes the pipe, if this process made one (a `static` is never
    /// dropped; a fork's child never closes the copies it inherited).
    fn drop(&mut self) {
        let ready = self.state.exclusive(|s| *s & READY != 0);
        if ready && self.maker.exclusive(|m| *m) == os::process_id() {
            os::close(self.read_fd.exclusive(|fd| *fd));
            os::close(self.write_fd.exclusive(|fd| *fd));
        }
    }
}

impl fmt::Debug for SignalInterrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Acquire);
        let mut d = f.debug_struct("SignalInterrupt");
        d.field("triggered", &(s & TRIGGERED != 0));
        if self.ready_here(s, &mut Me::new()) {
            d.field("read_fd", &self.read_fd.load(Ordering::Relaxed));
        }
        d.finish_non_exhaustive()
    }
}

/// The real state word, trigger, reset and first use under loom, every
/// interleaving, with the pipe a count of tokens (`os`'s stand-ins) and a
/// signal handler modelled as a thread that runs one delivery to its end.
/// `ci/loom.sh` runs them.
#[cfg(all(test, tokenpipe_loom))]
mod loom_models {
    use super::*;
    use crate::sync::model;
    use loom::sync::Arc;
    use loom::thread;

    /// At rest (every thread done): no writer is counted, the flag is set
    /// exactly when one token is in the pipe, and a signal is recorded
    /// only with the flag.
    fn agree(si: &SignalInterrupt) {
        let s = si.state.load(Ordering::SeqCst);
        assert_eq!(
            s & WRITERS,
            0,
            "a writer still counted at rest: state {s:#x}"
        );
        assert_eq!(s & TAKING, 0, "a reset still taking at rest: state {s:#x}");
        if s & READY != 0 {
            let tokens = os::tokens(si.read_fd.load(Ordering::SeqCst));
            let want = u32::from(s & TRIGGERED != 0);
            assert_eq!(
                tokens, want,
                "flag and pipe disagree: state {s:#x}, {tokens} token(s)"
            );
        }
        if s & TRIGGERED == 0 {
            assert_eq!(
                s & (SIGNAL | DELIVERED),
                0,
                "a signal without the flag: state {s:#x}"
            );
        }
    }

    fn spawn(si: &Arc<SignalInterrupt>, f: fn(&SignalInterrupt)) -> thread::JoinHandle<()> {
        let si = Arc::clone(si);
        thread::spawn(move || f(&si))
    }

    /// A handler's delivery of signal 10.
    fn deliver(si: &SignalInterrupt) {
        let _ = si.raise(DELIVERED | (10 << SIGNAL_SHIFT), 0);
    }

    fn trigger(si: &SignalInterrupt) {
        let _ = si.trigger();
    }

    fn reset(si: &SignalInterrupt) {
        si.reset().expect("reset");
    }

    #[test]
    fn loom_a_trigger_and_a_delivery_racing_a_reset_leave_flag_pipe_and_signal_agreeing() {
        model(|| {
            let si = Arc::new(SignalInterrupt::new());
            si.as_raw_fd().expect("the pipe");
            let threads = [spawn(&si, trigger), spawn(&si, deliver)];
            reset(&si);
            threads.into_iter().for_each(|t| t.join().unwrap());
            agree(&si);
        });
    }

    #[test]
    fn loom_first_users_make_one_pipe_and_the_token_a_trigger_owes_is_written() {
        model(|| {
            let si = Arc::new(SignalInterrupt::new());
            let threads = [spawn(&si, trigger), spawn(&si, deliver)];
            let fd = si.as_raw_fd().expect("the pipe");
            threads.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(os::pipes_made(), 1, "two first users made two pipes");
            assert_eq!(si.as_raw_fd(), Ok(fd));
            agree(&si);
            assert!(si.is_triggered());
        });
    }

    #[test]
    fn loom_a_failed_write_never_clears_a_later_triggers_flag_under_its_token() {
        model(|| {
            let si = Arc::new(SignalInterrupt::new());
            let fd = si.as_raw_fd().expect("the pipe");
            // The first write fails: whichever trigger makes it.
            os::fail_next_write(fd);
            let threads = [spawn(&si, trigger), spawn(&si, trigger)];
            reset(&si);
            threads.into_iter().for_each(|t| t.join().unwrap());
            agree(&si);
        });
    }

    #[test]
    fn loom_two_resets_and_a_trigger_take_the_token_once() {
        model(|| {
            let si = Arc::new(SignalInterrupt::new());
            si.as_raw_fd().expect("the pipe");
            si.trigger().expect("trigger");
            let threads = [spawn(&si, reset), spawn(&si, trigger)];
            reset(&si);
            threads.into_iter().for_each(|t| t.join().unwrap());
            agree(&si);
        });
    }
}
