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

// The same pipes, written the same way, as the criterion benches time.
#[path = "../../../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::process::ExitCode;

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
        "usage: tokenpipe-instructions <{}> <iterations> [roundtrip|make_close]",
        names.join("|")
    );
    ExitCode::from(2)
}
