//! Nothing on the token path allocates: make, take, write, read, close,
//! assign, split, every error and its message, and the daemon's readiness
//! reports over every channel, counted by a global allocator that records
//! this thread's allocations.
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;

use tokenpipe::{Errno, Error, TokenPipe, TokenPipeEnd};

struct Counting;

/// Held by the tests that touch the environment: `temp_dir` reads `TMPDIR`,
/// while the readiness test sets and removes variables and
/// `Notifier::from_env` unsets them, and `getenv` is not safe against a
/// concurrent `setenv`/`unsetenv`.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    // Only this thread's allocations count: the harness and the other tests
    // allocate on their own threads at any time. Both cells are
    // const-initialised without destructors, so touching them from inside
    // the allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn record_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

/// A fixed buffer to format messages into without allocating.
struct StackText {
    buf: [u8; 512],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[test]
fn the_counter_does_see_an_allocation() {
    // The control: without it, a broken counter would pass the test below.
    let n = count_allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(16);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn make_take_write_read_close_and_errors_never_allocate() {
    let n = count_allocations(|| {
        for _ in 0..if cfg!(miri) { 2 } else { 100 } {
            let mut pipe = TokenPipe::make().unwrap();
            let reader = pipe.take_read_end();
            let mut writer = pipe.take_write_end();
            assert!(!pipe.take_read_end().is_open());
            for t in 0..=u8::MAX {
                writer.token_write(t).unwrap();
                assert_eq!(reader.token_read(), Ok(t));
            }
            let mut other = TokenPipe::make().unwrap();
            pipe.assign_from(&mut other);
            let (r2, mut w2) = pipe.split();
            w2.assign_from(&mut writer);
            drop(r2);
            w2.token_write(1).unwrap();
            assert_eq!(reader.token_read(), Ok(1));
            w2.close();
            let (gone, lonely) = TokenPipe::make().unwrap().split();
            drop(gone);
            assert_eq!(lonely.token_write(1), Err(Error::BrokenPipe));
            assert_eq!(w2.token_write(1), Err(Error::Closed));
            assert_eq!(reader.token_read(), Err(Error::Eos));
            if !cfg!(miri) {
                // Miri's pipes answer the wrong direction differently.
                assert_eq!(reader.token_write(1), Err(Error::Os(Errno::EBADF)));
            }
            let raw = TokenPipe::make().unwrap().take_read_end().into_raw_fd();
            // SAFETY: `raw` came from into_raw_fd.
            drop(unsafe { TokenPipeEnd::from_raw_fd(raw) });
            let mut text = StackText {
                buf: [0; 512],
                len: 0,
            };
            for e in [Error::Eos, Error::Closed, Error::Os(Errno::EMFILE)] {
                write!(text, "{e} {}", e.status()).unwrap();
                text.len = 0;
            }
        }
    });
    assert_eq!(n, 0, "the token path allocated {n} times");
}

/// Readiness reports allocate nothing either: a daemon sends them from
/// wherever it is (a signal handler, a forked child), and `Notifier` is in
/// the `no_std` core. Over systemd's notify socket: parsing the address and
/// every message. The receiving socket is made and read outside the count.
#[test]
#[cfg_attr(miri, ignore = "Miri has no sockets")]
fn readiness_reports_over_the_notify_socket_never_allocate() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;
    use tokenpipe::ready::{Notifier, NotifyAddr};

    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join(format!("tokenpipe-alloc-{}", std::process::id()));
    // A file left by an earlier run that died here (same pid, reused)
    // would make bind fail with EADDRINUSE.
    let _ = std::fs::remove_file(&path);
    let receiver = UnixDatagram::bind(&path).unwrap();
    let n = count_allocations(|| {
        let addr = NotifyAddr::parse(path.as_os_str().as_bytes()).unwrap();
        let socket = Notifier::from_socket(addr);
        socket.status("loaded 3 wallets").unwrap();
        socket.extend_timeout(Duration::from_secs(90)).unwrap();
        socket.ready().unwrap();
        socket.failed(5).unwrap();
    });
    let _ = std::fs::remove_file(&path);
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..4 {
        let len = receiver.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
    }
    assert_eq!(
        got,
        [
            "STATUS=loaded 3 wallets",
            "EXTEND_TIMEOUT_USEC=90000000",
            "READY=1",
            "ERRNO=5"
        ]
    );
    assert_eq!(n, 0, "readiness reports allocated {n} times");
}

/// The same over this crate's token pipe (found by `from_env`) and an
/// s6-style notification fd (`from_fd`), finding the channel included.
#[test]
#[cfg_attr(miri, ignore = "Miri has no signal masks (held for SIGPIPE)")]
fn readiness_reports_over_a_pipe_or_fd_never_allocate() {
    use std::time::Duration;
    use tokenpipe::ready::Notifier;

    let (pipe_reader, pipe_writer) = TokenPipe::make().unwrap().split();
    let pipe_fd = pipe_writer.into_raw_fd().to_string();
    let (fd_reader, fd_writer) = TokenPipe::make().unwrap().split();
    let fd = fd_writer.into_raw_fd();
    let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: every test in this binary that reads or changes the
    // environment (this one, and the notify-socket one through temp_dir)
    // holds ENV, and into_raw_fd gave up the fd's other owner.
    unsafe {
        std::env::remove_var("NOTIFY_SOCKET");
        std::env::set_var("TOKENPIPE_READY_FD", &pipe_fd);
    }
    let n = count_allocations(|| {
        // SAFETY: as above.
        let pipe = unsafe { Notifier::from_env() }.unwrap().unwrap();
        pipe.status("loaded").unwrap();
        pipe.extend_timeout(Duration::from_secs(90)).unwrap();
        pipe.ready().unwrap();
        assert_eq!(pipe.ready(), Err(Error::Closed.into()));

        // SAFETY: into_raw_fd gave up the fd's other owner.
        let s6 = unsafe { Notifier::from_fd(fd) }.unwrap();
        s6.ready().unwrap();
        drop((pipe, s6));
    });
    let mut buf = [0u8; 32];
    assert_eq!(
        pipe_reader.read_tokens(&mut buf),
        Ok(9 + 9 + 1),
        "status, extend, then ready"
    );
    assert_eq!(buf[0], 3, "status");
    assert_eq!(buf[1..3], 6u16.to_ne_bytes());
    assert_eq!(&buf[3..9], b"loaded");
    assert_eq!(buf[9], 2, "extend");
    assert_eq!(buf[18], 1);
    assert_eq!(fd_reader.token_read(), Ok(b'\n'));
    assert_eq!(n, 0, "readiness reports allocated {n} times");
}

/// `SignalInterrupt` allocates nothing: it lives in the `no_std` core and
/// its trigger runs in signal handlers. The first use (which makes the
/// pipe), triggers, looks, a wait that returns on the flag, and resets.
#[test]
fn signal_interrupt_new_trigger_wait_reset_and_fd_never_allocate() {
    use std::time::Duration;
    use tokenpipe::SignalInterrupt;

    let n = count_allocations(|| {
        for _ in 0..if cfg!(miri) { 2 } else { 100 } {
            let si = SignalInterrupt::new();
            assert!(!si.is_triggered());
            si.trigger().unwrap();
            si.trigger().unwrap();
            assert!(si.is_triggered());
            si.wait().unwrap();
            assert_eq!(si.wait_timeout(Duration::from_secs(1)), Ok(true));
            assert!(si.as_raw_fd().unwrap() >= 0);
            si.reset().unwrap();
            si.reset().unwrap();
            assert!(!si.is_triggered());
            let mut text = StackText {
                buf: [0; 512],
                len: 0,
            };
            write!(text, "{si:?}").unwrap();
        }
    });
    assert_eq!(n, 0, "SignalInterrupt allocated {n} times");
}

/// The same for waiting that reaches `poll`, and for `install` and
/// `restore` (and every `install` error and its message).
#[test]
#[cfg_attr(miri, ignore = "Miri has no poll and no signals")]
fn signal_interrupt_polling_waits_install_and_restore_never_allocate() {
    use std::time::Duration;
    use tokenpipe::SignalInterrupt;
    use tokenpipe::interrupt::InstallError;

    static SI: SignalInterrupt = SignalInterrupt::new();
    // No other test in this binary handles signals.
    let sig = libc::SIGUSR2;
    let n = count_allocations(|| {
        for _ in 0..20 {
            assert_eq!(SI.wait_timeout(Duration::ZERO), Ok(false));
            assert_eq!(SI.wait_timeout(Duration::from_millis(1)), Ok(false));
            let installed = SI.install(&[sig]).unwrap();
            // SAFETY: raise has no memory preconditions; the handler is
            // installed.
            assert_eq!(unsafe { libc::raise(sig) }, 0);
            assert!(SI.is_triggered());
            let mut text = StackText {
                buf: [0; 512],
                len: 0,
            };
            write!(text, "{installed:?}").unwrap();
            for bad in [
                &[libc::SIGKILL][..],
                &[0],
                &[sig],
                &[1, 2, 3, 4, 5, 6, 10, 12, 14],
            ] {
                let err: InstallError = SI.install(bad).unwrap_err();
                text.len = 0;
                write!(text, "{err} {err:?}").unwrap();
            }
            installed.restore().unwrap();
            SI.reset().unwrap();
        }
    });
    assert_eq!(n, 0, "SignalInterrupt allocated {n} times");
}
