// Included by benches/signal_interrupt.rs on x86_64 Linux (so: plain
// comments, not inner doc comments).
//
// Trigger-to-wake latency of `SignalInterrupt` against what a program
// would use instead, in one run (the "Proof" benchmark; the goal:
// within 10 % of the raw pipe).
//
// # The design: a ping-pong of two wake-ups of the same kind
// A waiter thread blocks on wake-up A. The timed loop, on the main thread:
// trigger A, then block on wake-up B. The waiter wakes, takes A (so A can
// fire again), triggers B and blocks on A again; the main thread wakes and
// takes B. One iteration is two trigger-to-wake latencies, each including
// the take, and every row does exactly that with its own mechanism:
//
// | row | trigger | block until triggered, then take |
// | --- | --- | --- |
// | raw pipe | `write` 1 byte | `poll` POLLIN, `read` 1 byte |
// | SignalInterrupt | `trigger()` (one `write`) | `wait()` (`poll`), `reset()` (`read`) |
// | eventfd | `write` a u64 1 | `poll` POLLIN, `read` the u64 |
// | Mutex + Condvar | lock, set the bool, unlock, `notify_one` | lock, `wait` while clear, clear it |
// | ... by signal | `libc::raise(sig)`: the handler writes the byte | as its direct row |
//
// The pipes and the eventfd are non-blocking, as SignalInterrupt's pipe is,
// so the fd rows make the same three system calls per direction. Mutex +
// Condvar is Bitcoin Core's Windows path (no fd: futexes instead). The
// waiter blocks in `poll`, not in `read`, because that is what
// SignalInterrupt's `wait` does (its token stays in the pipe for every
// waiter and every poll loop; `reset` takes it).
//
// Two groups, each with a `raw pipe` row measured in the same run as the
// floor the others are divided by:
//
// - `wake_direct`: the trigger is a call on the main thread (and on the
//   waiter for the way back): raw pipe, SignalInterrupt, eventfd, Mutex +
//   Condvar.
// - `wake_by_signal`: the trigger is a real signal, `raise(SIGUSR1)` on the
//   main thread and `raise(SIGUSR2)` on the waiter, whose handler writes
//   the byte: SignalInterrupt `install`ed on the two signals against
//   signal-hook's `low_level::pipe::register` of two pipes' write ends.
//   `raise` runs the handler on the raising thread before it returns, so
//   the waiter, blocked in `poll`, is woken by the handler's `write`. The
//   two use the same signals one after the other: SignalInterrupt's
//   handlers are restored before signal-hook registers.
//
// The main function ends by printing each row's median and its ratio to
// the group's raw pipe (and, by signal, to signal-hook), read back from
// criterion's results of this run. No assertion on timings: a miss on a
// shared machine is a finding, not a failure.

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

use tokenpipe::SignalInterrupt;
use tokenpipe::interrupt::{SIGUSR1, SIGUSR2};
use criterion::Criterion;
use criterion::measurement::WallTime;

type Group<'a> = criterion::BenchmarkGroup<'a, WallTime>;

/// A wake-up a thread can block on. Leaked to `'static`: the bench process
/// makes a handful, and `SignalInterrupt::install` needs `'static`.
trait Wake: Sync + 'static {
    /// Wakes the thread blocked in (or next entering) `wait_take`.
    fn trigger(&self);
    /// Blocks until triggered, then takes the wake-up so the next trigger
    /// wakes again.
    fn wait_take(&self);
}

/// `poll` on one fd for POLLIN, forever, restarting after a signal (as
/// SignalInterrupt's `wait` does).
fn poll_in(fd: c_int) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid pollfd.
        let rc = unsafe { libc::poll(&raw mut p, 1, -1) };
        if rc == 1 {
            return;
        }
        let e = std::io::Error::last_os_error();
        assert!(
            rc == -1 && e.kind() == std::io::ErrorKind::Interrupted,
            "poll failed: {e}"
        );
    }
}

/// A non-blocking, close-on-exec pipe, as SignalInterrupt makes its own.
fn pipe_nonblocking() -> [c_int; 2] {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert!(rc == 0, "pipe2 failed");
    fds
}

/// Raw libc: `write` one byte, `poll` + `read` it. The floor.
struct RawPipe {
    read: c_int,
    write: c_int,
}

impl RawPipe {
    fn make() -> &'static RawPipe {
        let [read, write] = pipe_nonblocking();
        Box::leak(Box::new(RawPipe { read, write }))
    }
}

impl Wake for RawPipe {
    fn trigger(&self) {
        let token = b'x';
        // SAFETY: `token` is valid for reads of one byte.
        let n = unsafe { libc::write(self.write, (&raw const token).cast::<c_void>(), 1) };
        assert!(n == 1, "write failed");
    }

    fn wait_take(&self) {
        poll_in(self.read);
        let mut token = 0u8;
        // SAFETY: `token` is valid for writes of one byte.
        let n = unsafe { libc::read(self.read, (&raw mut token).cast::<c_void>(), 1) };
        assert!(n == 1, "read failed");
    }
}

/// This crate.
struct Interrupt(SignalInterrupt);

impl Interrupt {
    /// Made before the clock starts, so the timed triggers are never the
    /// first use (which makes the pipe).
    fn make() -> &'static Interrupt {
        let i: &'static Interrupt = Box::leak(Box::new(Interrupt(SignalInterrupt::new())));
        i.0.as_raw_fd().unwrap();
        i
    }
}

impl Wake for Interrupt {
    fn trigger(&self) {
        self.0.trigger().unwrap();
    }

    fn wait_take(&self) {
        self.0.wait().unwrap();
        self.0.reset().unwrap();
    }
}

/// Linux's eventfd: `write` a counter of 1, `poll` + `read` it back.
struct EventFd(c_int);

impl EventFd {
    fn make() -> &'static EventFd {
        // SAFETY: no pointers; returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0, "eventfd failed");
        Box::leak(Box::new(EventFd(fd)))
    }
}

impl Wake for EventFd {
    fn trigger(&self) {
        let one = 1u64;
        // SAFETY: `one` is valid for reads of 8 bytes.
        let n = unsafe { libc::write(self.0, (&raw const one).cast::<c_void>(), 8) };
        assert!(n == 8, "eventfd write failed");
    }

    fn wait_take(&self) {
        poll_in(self.0);
        let mut count = 0u64;
        // SAFETY: `count` is valid for writes of 8 bytes.
        let n = unsafe { libc::read(self.0, (&raw mut count).cast::<c_void>(), 8) };
        assert!(n == 8, "eventfd read failed");
    }
}

/// `Mutex<bool>` + `Condvar`: Bitcoin Core's `SignalInterrupt` on Windows.
struct CondvarFlag {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl CondvarFlag {
    fn make() -> &'static CondvarFlag {
        Box::leak(Box::new(CondvarFlag {
            flag: Mutex::new(false),
            cv: Condvar::new(),
        }))
    }
}

impl Wake for CondvarFlag {
    fn trigger(&self) {
        *self.flag.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn wait_take(&self) {
        let mut set = self.flag.lock().unwrap();
        while !*set {
            set = self.cv.wait(set).unwrap();
        }
        *set = false;
    }
}

/// A wake-up triggered by a real signal: `raise(signal)`, whose handler
/// (installed by whoever made `inner`) triggers `inner`.
struct Raised<W: Wake> {
    inner: &'static W,
    signal: c_int,
}

/// Two wake-ups, each triggered by raising its signal (leaked: the
/// waiter thread holds them for the rest of the run).
fn raised_by<W: Wake>(
    sig_a: c_int,
    a: &'static W,
    sig_b: c_int,
    b: &'static W,
) -> (&'static Raised<W>, &'static Raised<W>) {
    let raised = |inner, signal| &*Box::leak(Box::new(Raised { inner, signal }));
    (raised(a, sig_a), raised(b, sig_b))
}

impl<W: Wake> Wake for Raised<W> {
    fn trigger(&self) {
        // SAFETY: raise has no memory preconditions; the signal's handler is
        // installed (a default action would end the process, visibly).
        let rc = unsafe { libc::raise(self.signal) };
        assert!(rc == 0, "raise failed");
    }

    fn wait_take(&self) {
        self.inner.wait_take();
    }
}

/// signal-hook's pipe registration: the write end handed to
/// `signal_hook::low_level::pipe::register`, whose handler writes one
/// byte per delivery; the waiter `poll`s and `read`s the read end, as for
/// the raw pipe.
fn signal_hook_pipe(signal: c_int) -> (&'static RawPipe, signal_hook::SigId) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let [read, write] = pipe_nonblocking();
    // SAFETY: `write` is a new fd that nothing else owns.
    let write = unsafe { OwnedFd::from_raw_fd(write) };
    let id = signal_hook::low_level::pipe::register(signal, write).unwrap();
    (Box::leak(Box::new(RawPipe { read, write: -1 })), id)
}

/// The ping-pong (see the top of this file): the waiter echoes A onto B
/// until told to stop; each timed iteration is trigger A, wait for B.
fn ping_pong<A: Wake, B: Wake>(g: &mut Group, name: &str, a: &'static A, b: &'static B) {
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let waiter = std::thread::spawn(move || {
        loop {
            a.wait_take();
            let done = stop.load(Ordering::Acquire);
            b.trigger();
            if done {
                break;
            }
        }
    });
    g.bench_function(name, |bench| {
        bench.iter(|| {
            a.trigger();
            b.wait_take();
        })
    });
    stop.store(true, Ordering::Release);
    a.trigger();
    b.wait_take();
    waiter.join().unwrap();
}

const FLOOR: &str = "raw pipe";
const DIRECT: &str = "wake_direct";
const BY_SIGNAL: &str = "wake_by_signal";
const SI: &str = "SignalInterrupt";
const SI_RAISED: &str = "SignalInterrupt (raise)";
const HOOK_RAISED: &str = "signal-hook pipe register (raise)";

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group(DIRECT);
    ping_pong(&mut g, FLOOR, RawPipe::make(), RawPipe::make());
    ping_pong(&mut g, SI, Interrupt::make(), Interrupt::make());
    ping_pong(&mut g, "eventfd", EventFd::make(), EventFd::make());
    ping_pong(
        &mut g,
        "Mutex + Condvar",
        CondvarFlag::make(),
        CondvarFlag::make(),
    );
    g.finish();
}

fn by_signal(c: &mut Criterion) {
    let mut g = c.benchmark_group(BY_SIGNAL);
    ping_pong(&mut g, FLOOR, RawPipe::make(), RawPipe::make());

    let (a, b) = (Interrupt::make(), Interrupt::make());
    let installed = [
        a.0.install(&[SIGUSR1]).unwrap(),
        b.0.install(&[SIGUSR2]).unwrap(),
    ];
    let (a, b) = raised_by(SIGUSR1, a, SIGUSR2, b);
    ping_pong(&mut g, SI_RAISED, a, b);
    for i in installed {
        i.restore().unwrap();
    }

    let ((a, id_a), (b, id_b)) = (signal_hook_pipe(SIGUSR1), signal_hook_pipe(SIGUSR2));
    let (a, b) = raised_by(SIGUSR1, a, SIGUSR2, b);
    ping_pong(&mut g, HOOK_RAISED, a, b);
    signal_hook::low_level::unregister(id_a);
    signal_hook::low_level::unregister(id_b);
    g.finish();
}

include!("medians.rs");

/// The ratios of this run, as a markdown table on stdout.
fn summary(since: SystemTime) {
    let Some(dir) = criterion_dir() else { return };
    let groups: [(&str, &[&str]); 2] = [
        (DIRECT, &[FLOOR, SI, "eventfd", "Mutex + Condvar"]),
        (BY_SIGNAL, &[FLOOR, SI_RAISED, HOOK_RAISED]),
    ];
    let mut lines = Vec::new();
    for (group, rows) in groups {
        let Some(floor) = median_ns(&dir, group, FLOOR, since) else {
            continue;
        };
        let hook = median_ns(&dir, group, HOOK_RAISED, since);
        for row in rows {
            let Some(ns) = median_ns(&dir, group, row, since) else {
                continue;
            };
            let vs_hook = match hook {
                Some(h) if group == BY_SIGNAL => format!("{:.3}", ns / h),
                _ => "".into(),
            };
            lines.push(format!(
                "| {group} | {row} | {} | {:.3} | {vs_hook} |",
                show_ns(ns),
                ns / floor
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    println!("\nMedian per round trip (two trigger-to-wake latencies), this run:\n");
    println!("| group | wake-up | median | × raw pipe | × signal-hook |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for line in lines {
        println!("{line}");
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    direct(&mut c);
    by_signal(&mut c);
    c.final_summary();
    summary(since);
}
