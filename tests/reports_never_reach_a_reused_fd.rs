//! A `ready::Notifier` shared by threads, or used from a signal handler,
//! never writes a report into a file that was given its fd's number: a
//! one-shot report (`ready`, `failed`) claims the fd before it writes, and
//! one that finds another report still writing leaves the close to it.
//!
//! The race needs a report to stop between finding the fd and writing to
//! it, which happens about once in a thousand rounds unaided. This binary
//! makes it happen every time: it defines its own `sigpending`, which the
//! linker binds before libc's for every caller in the binary, the crate
//! included. The no-`SIGPIPE` write path of every report calls it right
//! before the `write`, so a hook run there sees the report in that window;
//! then it asks the kernel itself (`syscall(SYS_rt_sigpending)`).
//!
//! Every test takes its turn through `SERIAL`: each checks which file an
//! fd number names, which another test's new fds could change, and some
//! change the environment.
#![cfg(any(target_os = "linux", target_os = "android"))]

mod common;

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex, MutexGuard};
use std::time::Duration;

use tokenpipe::ready::Notifier;
use tokenpipe::{Error, TokenPipe, TokenPipeEnd};

thread_local! {
    /// Run once, by this thread's next `sigpending`.
    static HOOK: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    /// Slept by each of this thread's `sigpending` calls.
    static DELAY: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// How many `sigpending` calls this binary has seen.
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// The kernel's `sigset_t` is 64 bits but on MIPS, where it is 128.
const KERNEL_SIGSET_BYTES: usize = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
    16
} else {
    8
};

/// `sigpending(2)` for this whole binary: first the calling thread's hook
/// and delay, then the kernel's answer.
///
/// # Safety
/// As for libc's `sigpending`: `set` must be valid for writes of one
/// `sigset_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigpending(set: *mut libc::sigset_t) -> c_int {
    CALLS.fetch_add(1, Ordering::SeqCst);
    // try_with: a thread on its way out has no thread-locals left.
    // Taken out first, so a report the hook makes runs no hook itself.
    if let Some(hook) = HOOK.try_with(|h| h.borrow_mut().take()).ok().flatten() {
        hook();
    }
    let delay = DELAY.try_with(Cell::get).unwrap_or_default();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    // SAFETY: our caller's contract is sigpending's; the kernel writes
    // KERNEL_SIGSET_BYTES, no more than a libc sigset_t holds.
    unsafe { libc::syscall(libc::SYS_rt_sigpending, set, KERNEL_SIGSET_BYTES) as c_int }
}

/// Runs `hook` in this thread's next `sigpending`: inside the next report
/// this thread makes, right before its `write`.
fn in_the_next_report(hook: impl FnOnce() + 'static) {
    HOOK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
}

static SERIAL: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Long enough that only a hang reaches it; never a measure of speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The file that must stay empty: opened (created, truncated) right after
/// the notifier's fd may have been closed, so that it gets that number if
/// it is free.
struct Victim {
    path: PathBuf,
}

impl Victim {
    fn new(what: &str) -> Victim {
        let path =
            std::env::temp_dir().join(format!("tokenpipe-victim-{what}-{}", std::process::id()));
        Victim { path }
    }

    fn open(&self) -> File {
        File::create(&self.path).expect("create the victim file")
    }

    /// What the reports wrote into it.
    fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read the victim file")
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The two one-shot channels a notifier can hold an fd for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// This crate's token pipe, as `TOKENPIPE_READY_FD` hands it over.
    Pipe,
    /// An s6-style notification fd.
    Fd,
}

/// A notifier of `kind` on a fresh pipe, and the pipe's read end. The
/// caller holds `SERIAL` (the pipe channel goes through the environment).
fn notifier(kind: Kind) -> (Notifier, TokenPipeEnd) {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let fd = writer.into_raw_fd();
    let notifier = match kind {
        // SAFETY: we hold SERIAL, so nothing else touches the environment;
        // into_raw_fd gave up the fd's only other owner.
        Kind::Pipe => unsafe {
            std::env::set_var("TOKENPIPE_READY_FD", fd.to_string());
            Notifier::from_env()
                .expect("a usable pipe")
                .expect("the pipe channel")
        },
        // SAFETY: into_raw_fd gave up the fd's only other owner.
        Kind::Fd => unsafe { Notifier::from_fd(fd) }.expect("a usable fd"),
    };
    (notifier, reader)
}

/// Every byte left in the pipe, up to end of stream.
fn drain(reader: &TokenPipeEnd) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match reader.token_read_timeout(HANG_GUARD) {
            Ok(first) => {
                got.push(first);
                reader.set_nonblocking(true).unwrap();
                loop {
                    match reader.read_tokens(&mut buf) {
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(Error::WouldBlock) => break,
                        Err(Error::Eos) => return got,
                        Err(e) => panic!("read: {e}"),
                    }
                }
                reader.set_nonblocking(false).unwrap();
            }
            Err(Error::Eos) => return got,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A report one thread starts while another ends the channel.
#[derive(Debug, Clone, Copy)]
enum First {
    Ready,
    ExtendTimeout,
    Status,
}

/// Every report that writes before its channel is closed: on a
/// notification fd only `ready` writes (a newline).
const CASES: [(Kind, First); 4] = [
    (Kind::Pipe, First::Ready),
    (Kind::Pipe, First::ExtendTimeout),
    (Kind::Pipe, First::Status),
    (Kind::Fd, First::Ready),
];

impl First {
    fn send(self, n: &Notifier) -> bool {
        match self {
            First::Ready => n.ready().is_ok(),
            First::ExtendTimeout => n.extend_timeout(Duration::from_secs(1)).is_ok(),
            First::Status => n.status("loading").is_ok(),
        }
    }
}

/// What the pipe must carry when `first` stopped before its write and
/// `failed(errno)` came meanwhile, and whether that `failed` succeeds. A
/// one-shot report that came first shuts the other out; `extend_timeout`
/// and `status` do not, and their bytes follow the failure's.
fn expected(kind: Kind, first: First, errno: c_int) -> (Vec<u8>, bool) {
    match (kind, first) {
        (Kind::Pipe, First::Ready) => (vec![1], false),
        (Kind::Pipe, First::ExtendTimeout) => {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&errno.to_ne_bytes());
            bytes.push(2);
            bytes.extend_from_slice(&1_000_000u64.to_ne_bytes());
            (bytes, true)
        }
        (Kind::Pipe, First::Status) => {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&errno.to_ne_bytes());
            bytes.push(3);
            bytes.extend_from_slice(&7u16.to_ne_bytes());
            bytes.extend_from_slice(b"loading");
            (bytes, true)
        }
        (Kind::Fd, _) => (b"\n".to_vec(), false),
    }
}

#[test]
fn the_crate_calls_this_binarys_sigpending() {
    // The control: if the crate's reports did not reach the sigpending
    // above, the tests below would prove nothing.
    let _turn = turn();
    let (n, reader) = notifier(Kind::Fd);
    let before = CALLS.load(Ordering::SeqCst);
    let ran = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = ran.clone();
    in_the_next_report(move || {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    assert!(n.ready().is_ok());
    assert!(CALLS.load(Ordering::SeqCst) > before);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the hook ran in the report");
    assert_eq!(drain(&reader), b"\n");
}

/// One thread's report stops right before its `write`; meanwhile another
/// thread reports failure and opens a file, which gets the notifier's fd
/// number if the failure closed it. The stopped report must not land in
/// that file.
#[test]
fn a_report_from_another_thread_never_lands_in_a_file_opened_after_failed() {
    let _turn = turn();
    let mut wrong = Vec::new();
    for (kind, first) in CASES {
        let victim = Victim::new("thread");
        let (n, reader) = notifier(kind);
        let (in_window, wait_in_window) = mpsc::channel();
        let (go, wait_go) = mpsc::channel::<()>();
        let (victim_fd, first_ok, failed_ok) = std::thread::scope(|s| {
            let reporter = s.spawn(|| {
                in_the_next_report(move || {
                    in_window.send(()).unwrap();
                    // Until the other thread has reported and opened
                    // the victim (or given up).
                    let _ = wait_go.recv_timeout(HANG_GUARD);
                });
                first.send(&n)
            });
            wait_in_window
                .recv_timeout(HANG_GUARD)
                .expect("the first report reached its write");
            let failed_ok = n.failed(0).is_ok();
            let file = victim.open();
            let victim_fd = file.as_raw_fd();
            go.send(()).unwrap();
            let first_ok = reporter.join().unwrap();
            drop(file);
            (victim_fd, first_ok, failed_ok)
        });
        let leaked = victim.contents();
        if !leaked.is_empty() {
            wrong.push(format!(
                "{kind:?}, {first:?}: the report wrote {leaked:?} into the victim \
                 file (fd {victim_fd}), which took the number the notifier's fd had"
            ));
        }
        if !first_ok {
            wrong.push(format!("{kind:?}, {first:?}: the first report failed"));
        }
        drop(n);
        // The fd was closed once both reports were done: the pipe ends.
        let got = drain(&reader);
        if (got.clone(), failed_ok) != expected(kind, first, 0) {
            wrong.push(format!(
                "{kind:?}, {first:?}: the pipe carried {got:?} (failed() was ok: \
                 {failed_ok}), not {:?}",
                expected(kind, first, 0)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The notifier a signal handler reports through, as a daemon keeps it in
/// a `static`.
static IN_HANDLER: AtomicPtr<Notifier> = AtomicPtr::new(std::ptr::null_mut());
/// What the handler's report gave: 1 for `Ok`, 2 for an error.
static HANDLER_GOT: AtomicI32 = AtomicI32::new(0);

extern "C" fn report_failure(_: c_int) {
    let saved = common::get_errno();
    let n = IN_HANDLER.load(Ordering::SeqCst);
    // SAFETY: the test stores a notifier that outlives the signal, and
    // clears the pointer before it goes.
    if let Some(n) = unsafe { n.as_ref() } {
        let got = if n.failed(libc::EINTR).is_ok() { 1 } else { 2 };
        HANDLER_GOT.store(got, Ordering::SeqCst);
    }
    common::set_errno(saved);
}

/// A signal handler on the same thread reports failure while a report is
/// stopped right before its `write`, then the interrupted code opens a
/// file. Neither a deadlock nor a write into that file.
#[test]
fn a_signal_handler_reporting_in_the_middle_of_a_report_closes_nothing_under_it() {
    let _turn = turn();
    common::install_handler(libc::SIGUSR1, report_failure);
    let mut wrong = Vec::new();
    for (kind, first) in CASES {
        let victim = std::sync::Arc::new(Victim::new("handler"));
        let (n, reader) = notifier(kind);
        let n = Box::new(n);
        IN_HANDLER.store(std::ptr::from_ref(&*n).cast_mut(), Ordering::SeqCst);
        HANDLER_GOT.store(0, Ordering::SeqCst);
        let opened: std::sync::Arc<Mutex<Option<File>>> = Default::default();
        let (to_open, keep) = (victim.clone(), opened.clone());
        in_the_next_report(move || {
            // SAFETY: raise is async-signal-safe; the handler runs on
            // this thread before raise returns.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
            *keep.lock().unwrap() = Some(to_open.open());
        });
        let first_ok = first.send(&n);
        IN_HANDLER.store(std::ptr::null_mut(), Ordering::SeqCst);
        let victim_fd = opened.lock().unwrap().take().map(|f| f.into_raw_fd());
        let leaked = victim.contents();
        if let Some(fd) = victim_fd {
            // SAFETY: into_raw_fd made the fd ours to close.
            unsafe { libc::close(fd) };
        }
        let handler_got = HANDLER_GOT.load(Ordering::SeqCst);
        assert_ne!(handler_got, 0, "the handler ran");
        if !leaked.is_empty() {
            wrong.push(format!(
                "{kind:?}, {first:?}: the interrupted report wrote {leaked:?} into \
                 the victim file (fd {victim_fd:?}), opened after the handler's failed()"
            ));
        }
        if !first_ok {
            wrong.push(format!(
                "{kind:?}, {first:?}: the interrupted report failed"
            ));
        }
        drop(n);
        let got = drain(&reader);
        let failed_ok = handler_got == 1;
        if (got.clone(), failed_ok) != expected(kind, first, libc::EINTR) {
            wrong.push(format!(
                "{kind:?}, {first:?}: the pipe carried {got:?} (the handler's \
                 failed() was ok: {failed_ok}), not {:?}",
                expected(kind, first, libc::EINTR)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Many rounds of the race as it happens in a daemon: one thread reports
/// ready while another reports failure and opens a file, started together.
/// Each report sleeps a little in `sigpending`, as under `strace`, so the
/// race is lost in most rounds where the ready report found the fd first.
#[test]
fn racing_reports_never_reach_a_file_opened_after_failed_in_many_rounds() {
    let _turn = turn();
    let rounds = 300;
    let mut leaks = 0;
    let victim = Victim::new("race");
    for _ in 0..rounds {
        let (n, reader) = notifier(Kind::Fd);
        let start = Barrier::new(2);
        let victim_file = std::thread::scope(|s| {
            let reporter = s.spawn(|| {
                DELAY.with(|d| d.set(Duration::from_micros(300)));
                start.wait();
                let _ = n.ready();
            });
            start.wait();
            let _ = n.failed(0);
            let file = victim.open();
            reporter.join().unwrap();
            file
        });
        if !victim.contents().is_empty() {
            leaks += 1;
        }
        drop((victim_file, n));
        let got = drain(&reader);
        assert!(got.is_empty() || got == b"\n", "{got:?}");
    }
    assert_eq!(
        leaks, 0,
        "in {leaks} of {rounds} rounds the ready report went into the file \
         opened after failed()"
    );
}
