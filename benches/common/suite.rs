// Included by benches/tokenpipe.rs on x86_64 Linux (so: plain comments,
// not inner doc comments).
//
// Wall-clock comparison of this crate with raw libc and its peers, in one
// `cargo bench` run (issue 5). `ci/bench.sh` runs it and turns the results
// into `docs/bench.md` and `docs/bench.svg`.
//
// - `roundtrip`: write one token and read it back, same thread.
// - `ping_pong`: a token bounced off an echo thread over two pipes.
// - `make_close`: create a pipe and close both ends.
// - `batch`: 4096 tokens in one write and one read.
// - `extras`: the opt-in calls beside the plain ones.
//
// Every group has a `raw libc` row, the floor the others are divided by.


use std::ffi::c_void;
use std::hint::black_box;
use std::time::Duration;

use common::{Libc, Nix, OsPipe, Pipe, Rustix, StdPipe, ThisCrate};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn roundtrip_one<P: Pipe>(g: &mut Group) {
    let (r, w) = P::make();
    g.bench_function(P::NAME, |b| {
        b.iter(|| {
            P::write(&w, black_box(1));
            black_box(P::read(&r))
        })
    });
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    roundtrip_one::<Libc>(&mut g);
    roundtrip_one::<ThisCrate>(&mut g);
    roundtrip_one::<StdPipe>(&mut g);
    roundtrip_one::<OsPipe>(&mut g);
    roundtrip_one::<Rustix>(&mut g);
    roundtrip_one::<Nix>(&mut g);
    g.finish();
}

/// The token that tells the echo thread to stop (after echoing it).
const STOP: u8 = 0;

fn ping_pong_one<P: Pipe>(g: &mut Group) {
    let (to_echo_r, to_echo) = P::make();
    let (from_echo, from_echo_w) = P::make();
    let echo = std::thread::spawn(move || {
        loop {
            let t = P::read(&to_echo_r);
            P::write(&from_echo_w, t);
            if t == STOP {
                break;
            }
        }
    });
    g.bench_function(P::NAME, |b| {
        b.iter(|| {
            P::write(&to_echo, black_box(1));
            black_box(P::read(&from_echo))
        })
    });
    P::write(&to_echo, STOP);
    assert_eq!(P::read(&from_echo), STOP);
    echo.join().unwrap();
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong");
    ping_pong_one::<Libc>(&mut g);
    ping_pong_one::<ThisCrate>(&mut g);
    ping_pong_one::<StdPipe>(&mut g);
    g.finish();
}

fn make_close_one<P: Pipe>(g: &mut Group) {
    g.bench_function(P::NAME, |b| b.iter(|| drop(black_box(P::make()))));
}

fn make_close(c: &mut Criterion) {
    let mut g = c.benchmark_group("make_close");
    make_close_one::<Libc>(&mut g);
    make_close_one::<ThisCrate>(&mut g);
    make_close_one::<StdPipe>(&mut g);
    make_close_one::<OsPipe>(&mut g);
    make_close_one::<Rustix>(&mut g);
    make_close_one::<Nix>(&mut g);
    g.finish();
}

/// Tokens per batch: Linux's `PIPE_BUF`, the most one write delivers
/// atomically there, and well within a pipe's 64 KiB buffer.
const BATCH: usize = 4096;

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(BATCH as u64));
    let out = [7u8; BATCH];
    let mut back = [0u8; BATCH];

    let (r, w) = Libc::make();
    g.bench_function(Libc::NAME, |b| {
        b.iter(|| {
            let out = black_box(&out);
            // SAFETY: `out` is valid for reads of BATCH bytes.
            let n = unsafe { libc::write(w.0, out.as_ptr().cast::<c_void>(), BATCH) };
            assert!(n == BATCH as isize, "write failed");
            // SAFETY: `back` is valid for writes of BATCH bytes.
            let n = unsafe { libc::read(r.0, back.as_mut_ptr().cast::<c_void>(), BATCH) };
            assert!(n == BATCH as isize, "read failed");
            black_box(&back);
        })
    });

    let (r, w) = ThisCrate::make();
    g.bench_function(ThisCrate::NAME, |b| {
        b.iter(|| {
            assert_eq!(w.write_tokens(black_box(&out)).unwrap(), BATCH);
            assert_eq!(r.read_tokens(&mut back).unwrap(), BATCH);
            black_box(&back);
        })
    });
    g.finish();
}

fn extras(c: &mut Criterion) {
    let mut g = c.benchmark_group("extras");
    roundtrip_one::<Libc>(&mut g);
    let (r, w) = ThisCrate::make();
    g.bench_function("token_write + token_read", |b| {
        b.iter(|| {
            w.token_write(black_box(1)).unwrap();
            black_box(r.token_read().unwrap())
        })
    });
    g.bench_function("token_write_nosignal + token_read", |b| {
        b.iter(|| {
            w.token_write_nosignal(black_box(1)).unwrap();
            black_box(r.token_read().unwrap())
        })
    });
    g.bench_function("token_write + token_read_timeout", |b| {
        b.iter(|| {
            w.token_write(black_box(1)).unwrap();
            black_box(r.token_read_timeout(Duration::from_secs(1)).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, roundtrip, ping_pong, make_close, batch, extras);
criterion_main!(benches);
