// Included by benches/async_tokenpipe.rs on x86_64 Linux (so: plain
// comments, not inner doc comments).
//
// What the crate's `tokio` feature costs over tokio's own types, in one
// run. Every async row runs on a current-thread runtime built here
// (`enable_all`, as the crate's docs ask), timed with criterion's
// `iter_custom`: per batch, `block_on` a future that spawns the echo task,
// starts the clock, does the batch's round trips, stops the clock, then
// stops the echo task (so the spawn and the join are not timed). One
// iteration is one round trip: two hand-overs, each a wake of the other
// task.
//
// # async_round_trip: a one-byte ping-pong between two tasks over two pipes
// Task A (the timed future) writes a token on pipe 1 and awaits one on
// pipe 2; task B (spawned) awaits the token on pipe 1 and writes it back
// on pipe 2. On one thread, a hand-over is: the write, the reader's
// reactor turn (`epoll_wait`), its read.
//
// | row | write | read |
// | --- | --- | --- |
// | raw libc (baseline) | blocking `write` 1 byte | blocking `read` 1 byte, on the other OS thread |
// | AsyncTokenPipeEnd | `token_write(b).await` | `token_read().await` |
// | tokio::net::unix::pipe | `writable().await`, `try_write` until not WouldBlock | `readable().await`, `try_read` until not WouldBlock |
//
// tokio's pipe is driven the way the crate drives its own end (wait for
// readiness, one syscall, again on WouldBlock), not with `write_all` /
// `read_exact`, which would need tokio's `io-util` feature and add a
// buffer layer neither side of the crate's row has. The raw libc row is
// the blocking ping-pong of `benches/tokenpipe.rs` (`ping_pong`): two OS
// threads, so each hand-over is a cross-thread wake-up, where the async
// rows stay on one thread. It is the floor of "no runtime at all", not
// the same schedule: read the async rows against each other, and against
// it for the order of magnitude.
//
// # async_wake: trigger-to-wake, as a ping-pong of two wake-ups
// Task A triggers wake-up 1 and awaits wake-up 2; task B, awaiting 1,
// wakes, takes it, and triggers 2.
//
// | row | trigger | await, then take |
// | --- | --- | --- |
// | SignalInterrupt::triggered | `trigger()` (one `write`) | `triggered().await`, `reset()` (one `read`) |
// | tokio::sync::Notify | `notify_waiters()` | `notified().await` (nothing to take) |
//
// `triggered()` registers a duplicate of the read end with the reactor
// each call that has to wait (`fcntl(F_DUPFD_CLOEXEC)`, `epoll_ctl` ADD,
// and on drop DEL and `close`); Notify has no fd at all, so its row says
// what the fd path costs in-process. Each waiter registers (`enable()`)
// before it triggers the other side, since `notify_waiters` wakes only
// waiters already registered. SignalInterrupt is a flag that stays set
// until reset, so it needs no such care.
//
// No assertion on timings: a slow row on a shared machine is a finding,
// not a failure.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokenpipe::{AsyncTokenPipeEnd, SignalInterrupt, TokenPipe};
use common::{Libc, Pipe};
use criterion::Criterion;
use criterion::measurement::WallTime;
use tokio::net::unix::pipe;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

type Group<'a> = criterion::BenchmarkGroup<'a, WallTime>;

const ROUND_TRIP: &str = "async_round_trip";
const WAKE: &str = "async_wake";
const FLOOR: &str = "raw libc";
const CRATE_PIPE: &str = "AsyncTokenPipeEnd";
const TOKIO_PIPE: &str = "tokio::net::unix::pipe";
const CRATE_WAKE: &str = "SignalInterrupt::triggered";
const NOTIFY: &str = "tokio::sync::Notify";

/// The runtime every async row runs on: one thread, IO and time.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The baseline: an echo thread blocked in `read` on pipe 1 writes each
/// token back on pipe 2; each iteration writes on 1 and reads from 2. The
/// token 0 tells the echo thread to stop (after echoing it).
fn raw_libc(g: &mut Group) {
    let (r1, w1) = Libc::make();
    let (r2, w2) = Libc::make();
    let echo = std::thread::spawn(move || {
        loop {
            let t = Libc::read(&r1);
            Libc::write(&w2, t);
            if t == 0 {
                break;
            }
        }
    });
    g.bench_function(FLOOR, |b| {
        b.iter(|| {
            Libc::write(&w1, 1);
            assert_eq!(Libc::read(&r2), 1);
        })
    });
    Libc::write(&w1, 0);
    assert_eq!(Libc::read(&r2), 0);
    echo.join().unwrap();
}

/// One way to move a token between two tasks.
trait AsyncPipe: Send + Sync + 'static {
    type Reader: Send + Sync + 'static;
    type Writer: Send + Sync + 'static;
    /// Made inside the runtime, which registers the ends.
    fn make() -> (Self::Reader, Self::Writer);
    // Spelled out as `impl Future + Send`: the echo task is spawned.
    fn write(w: &Self::Writer, token: u8) -> impl Future<Output = ()> + Send;
    fn read(r: &Self::Reader) -> impl Future<Output = u8> + Send;
}

struct Crate;

impl AsyncPipe for Crate {
    type Reader = AsyncTokenPipeEnd;
    type Writer = AsyncTokenPipeEnd;

    fn make() -> (AsyncTokenPipeEnd, AsyncTokenPipeEnd) {
        let (r, w) = TokenPipe::make().unwrap().split();
        (r.into_async().unwrap(), w.into_async().unwrap())
    }

    async fn write(w: &AsyncTokenPipeEnd, token: u8) {
        w.token_write(token).await.unwrap();
    }

    async fn read(r: &AsyncTokenPipeEnd) -> u8 {
        r.token_read().await.unwrap()
    }
}

struct TokioPipe;

impl AsyncPipe for TokioPipe {
    type Reader = pipe::Receiver;
    type Writer = pipe::Sender;

    fn make() -> (pipe::Receiver, pipe::Sender) {
        let (w, r) = pipe::pipe().unwrap();
        (r, w)
    }

    async fn write(w: &pipe::Sender, token: u8) {
        loop {
            w.writable().await.unwrap();
            match w.try_write(&[token]) {
                Ok(1) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("write failed: {other:?}"),
            }
        }
    }

    async fn read(r: &pipe::Receiver) -> u8 {
        let mut buf = [0u8; 1];
        loop {
            r.readable().await.unwrap();
            match r.try_read(&mut buf) {
                Ok(1) => return buf[0],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("read failed: {other:?}"),
            }
        }
    }
}

/// The async ping-pong (see the top of this file). The pipes live for the
/// whole row; the echo task is spawned per batch and stopped by the token 0.
fn async_round_trip<P: AsyncPipe>(g: &mut Group, name: &str, rt: &Runtime) {
    let (one, two) = rt.block_on(async {
        let one = Arc::new(P::make());
        let two = Arc::new(P::make());
        (one, two)
    });
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let echo = {
                    let (one, two) = (Arc::clone(&one), Arc::clone(&two));
                    tokio::spawn(async move {
                        loop {
                            let t = P::read(&one.0).await;
                            P::write(&two.1, t).await;
                            if t == 0 {
                                break;
                            }
                        }
                    })
                };
                let start = Instant::now();
                for _ in 0..iters {
                    P::write(&one.1, 1).await;
                    assert_eq!(P::read(&two.0).await, 1);
                }
                let elapsed = start.elapsed();
                P::write(&one.1, 0).await;
                assert_eq!(P::read(&two.0).await, 0);
                echo.await.unwrap();
                elapsed
            })
        })
    });
}

fn round_trip(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group(ROUND_TRIP);
    raw_libc(&mut g);
    async_round_trip::<Crate>(&mut g, CRATE_PIPE, &rt);
    async_round_trip::<TokioPipe>(&mut g, TOKIO_PIPE, &rt);
    g.finish();
}

/// SignalInterrupt: B awaits `triggered()` on 1, resets it, triggers 2,
/// until `stop`; A triggers 1, awaits 2, resets it.
fn wake_interrupt(g: &mut Group, rt: &Runtime) {
    let one = Arc::new(SignalInterrupt::new());
    let two = Arc::new(SignalInterrupt::new());
    // Made before the clock starts: the first use makes the pipe.
    one.as_raw_fd().unwrap();
    two.as_raw_fd().unwrap();
    g.bench_function(CRATE_WAKE, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let stop = Arc::new(AtomicBool::new(false));
                let echo = {
                    let (one, two, stop) = (Arc::clone(&one), Arc::clone(&two), Arc::clone(&stop));
                    tokio::spawn(async move {
                        loop {
                            one.triggered().await.unwrap();
                            one.reset().unwrap();
                            if stop.load(Ordering::Acquire) {
                                break;
                            }
                            two.trigger().unwrap();
                        }
                    })
                };
                let start = Instant::now();
                for _ in 0..iters {
                    one.trigger().unwrap();
                    two.triggered().await.unwrap();
                    two.reset().unwrap();
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Release);
                one.trigger().unwrap();
                echo.await.unwrap();
                elapsed
            })
        })
    });
}

/// Notify: the same ping-pong, each side registered on its own Notify
/// before it notifies the other.
fn wake_notify(g: &mut Group, rt: &Runtime) {
    let one = Arc::new(Notify::new());
    let two = Arc::new(Notify::new());
    g.bench_function(NOTIFY, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let stop = Arc::new(AtomicBool::new(false));
                let mut ready = pin!(two.notified());
                ready.as_mut().enable();
                let echo = {
                    let (one, two, stop) = (Arc::clone(&one), Arc::clone(&two), Arc::clone(&stop));
                    tokio::spawn(async move {
                        loop {
                            let mut next = pin!(one.notified());
                            next.as_mut().enable();
                            two.notify_waiters();
                            next.await;
                            if stop.load(Ordering::Acquire) {
                                break;
                            }
                        }
                    })
                };
                // The echo task is registered on `one` once it says so.
                ready.await;
                let start = Instant::now();
                for _ in 0..iters {
                    let mut back = pin!(two.notified());
                    back.as_mut().enable();
                    one.notify_waiters();
                    back.await;
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Release);
                one.notify_waiters();
                echo.await.unwrap();
                elapsed
            })
        })
    });
}

fn wake(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group(WAKE);
    wake_interrupt(&mut g, &rt);
    wake_notify(&mut g, &rt);
    g.finish();
}

include!("medians.rs");

/// The ratios of this run, as a markdown table on stdout: each row against
/// the raw libc row, and the wake rows against Notify too.
fn summary(since: SystemTime) {
    let Some(dir) = criterion_dir() else { return };
    let Some(floor) = median_ns(&dir, ROUND_TRIP, FLOOR, since) else {
        return;
    };
    let notify = median_ns(&dir, WAKE, NOTIFY, since);
    let groups: [(&str, &[&str]); 2] = [
        (ROUND_TRIP, &[FLOOR, CRATE_PIPE, TOKIO_PIPE]),
        (WAKE, &[CRATE_WAKE, NOTIFY]),
    ];
    println!("\nMedian per round trip (two hand-overs), this run:\n");
    println!("| group | row | median | × raw libc | × Notify |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (group, rows) in groups {
        for row in rows {
            let Some(ns) = median_ns(&dir, group, row, since) else {
                continue;
            };
            let vs_notify = match notify {
                Some(n) if group == WAKE => format!("{:.3}", ns / n),
                _ => String::new(),
            };
            println!(
                "| {group} | {row} | {} | {:.3} | {vs_notify} |",
                show_ns(ns),
                ns / floor
            );
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    round_trip(&mut c);
    wake(&mut c);
    c.final_summary();
    summary(since);
}
