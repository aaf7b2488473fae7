//! The loop that `ci/instructions.sh` counts with callgrind.
//!
//! `tokenpipe-instructions <impl> <iterations> [roundtrip|make_close]`, impl
//! one of `libc`, `crate`, `rustix`, `nix`, `std`, `os_pipe`: `roundtrip`
//! (the default) makes one pipe, then writes one token and reads it back
//! `iterations` times; `make_close` makes a pipe and closes both ends
//! `iterations` times. Counted at two iteration counts,
//! the difference divided by the difference of iterations is the exact
//! user-space cost of one round trip: start-up, pipe creation and exit
//! cancel out.
//!
//! `tokenpipe-instructions <libc|crate> <iterations> interrupt` counts
//! `SignalInterrupt` against a raw pipe: one interrupt (one non-blocking
//! pipe) made before the loop, then `iterations` times a trigger and a
//! take: `trigger` + `reset` for the crate, a one-byte `write` + `read` for
//! raw libc. Each of the four is its own `#[inline(never)]` function
//! (`trigger_crate`, `take_crate`, `trigger_libc`, `take_libc`), so the
//! script can count one of them alone with callgrind's `--toggle-collect`
//! (instructions executed inside it and what it calls, its `ret` included;
//! the caller's `call` is not), the same wrapper around each.

// The same pipes, written the same way, as the criterion benches time.
#[path = "../../../benches/common/mod.rs"]
mod common;

use std::ffi::c_void;
use std::hint::black_box;
use std::process::ExitCode;

use tokenpipe::SignalInterrupt;

use common::{Libc, Nix, OsPipe, Pipe, Rustix, StdPipe, ThisCrate};

/// The round-trip loop. `black_box` keeps the token unknown to the
/// optimiser going in and used coming out, so no iteration is folded away.
/// Prints the implementation's full name, for the script's table.
fn run<P: Pipe>(iterations: u64) {
    let (r, w) = P::make();
    for i in 0..iterations {
        P::write(&w, black_box(i as u8));
        black_box(P::read(&r));
    }
    println!("{}", P::NAME);
}

/// The make-and-close loop: a pipe made and both ends dropped (closed).
fn make_close<P: Pipe>(iterations: u64) {
    for _ in 0..iterations {
        // No black_box: pipe2 and close are calls into libc, which the
        // compiler can neither see into nor remove.
        drop(P::make());
    }
    println!("{}", P::NAME);
}

/// The crate's trigger, checked as a caller would: the first trigger on
/// an untriggered interrupt whose pipe exists, so one `write`.
#[inline(never)]
fn trigger_crate(interrupt: &SignalInterrupt) {
    assert!(interrupt.trigger().is_ok(), "trigger failed");
}

/// The crate's reset of a triggered interrupt: one `read`.
#[inline(never)]
fn take_crate(interrupt: &SignalInterrupt) {
    assert!(interrupt.reset().is_ok(), "reset failed");
}

/// Raw libc's trigger: one byte written to the pipe, checked.
#[inline(never)]
fn trigger_libc(fd: libc::c_int) {
    let token = b'x';
    // SAFETY: `token` is valid for reads of one byte.
    let n = unsafe { libc::write(fd, (&raw const token).cast::<c_void>(), 1) };
    assert!(n == 1, "write failed");
}

/// Raw libc's reset: the byte read back, checked.
#[inline(never)]
fn take_libc(fd: libc::c_int) {
    let mut token = 0u8;
    // SAFETY: `token` is valid for writes of one byte.
    let n = unsafe { libc::read(fd, (&raw mut token).cast::<c_void>(), 1) };
    assert!(n == 1, "read failed");
}

/// The interrupt loop: trigger, take, `iterations` times.
fn interrupt(name: &str, iterations: u64) -> bool {
    match name {
        "crate" => {
            let interrupt = SignalInterrupt::new();
            // Makes the pipe, so that no counted trigger is the first use.
            interrupt.as_raw_fd().unwrap();
            for _ in 0..iterations {
                trigger_crate(black_box(&interrupt));
                take_crate(black_box(&interrupt));
            }
            println!("SignalInterrupt (trigger, reset)");
        }
        "libc" => {
            // Non-blocking and close-on-exec, as SignalInterrupt's pipe.
            let mut fds = [-1; 2];
            // SAFETY: `fds` has room for the two fds pipe2 writes.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
            assert!(rc == 0, "pipe2 failed");
            for _ in 0..iterations {
                trigger_libc(black_box(fds[1]));
                take_libc(black_box(fds[0]));
            }
            println!("raw libc (write, read)");
        }
        _ => return false,
    }
    true
}

type Run = fn(u64);

const IMPLS: [(&str, Run, Run); 6] = [
    ("libc", run::<Libc>, make_close::<Libc>),
    ("crate", run::<ThisCrate>, make_close::<ThisCrate>),
    ("rustix", run::<Rustix>, make_close::<Rustix>),
    ("nix", run::<Nix>, make_close::<Nix>),
    ("std", run::<StdPipe>, make_close::<StdPipe>),
    ("os_pipe", run::<OsPipe>, make_close::<OsPipe>),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, iterations, op) = match &args[..] {
        [n, i] => (n, i, "roundtrip"),
        [n, i, op] => (n, i, op.as_str()),
        _ => return usage(),
    };
    if op == "interrupt" {
        let Ok(iterations) = iterations.parse() else {
            return usage();
        };
        return if interrupt(name, iterations) {
            ExitCode::SUCCESS
        } else {
            usage()
        };
    }
    let found = IMPLS.iter().find(|(n, _, _)| n == name);
    let (Some(&(_, roundtrip, make_close)), Ok(iterations)) = (found, iterations.parse()) else {
        return usage();
    };
    match op {
        "roundtrip" => roundtrip(iterations),
        "make_close" => make_close(iterations),
        _ => return usage(),
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    let names: Vec<&str> = IMPLS.iter().map(|(n, _, _)| *n).collect();
    eprintln!(
        "usage: tokenpipe-instructions <{}> <iterations> [roundtrip|make_close]\n       \
         tokenpipe-instructions <libc|crate> <iterations> interrupt",
        names.join("|")
    );
    ExitCode::from(2)
}
