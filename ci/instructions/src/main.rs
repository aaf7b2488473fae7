//! The loop that `ci/instructions.sh` counts with callgrind.
//!
//! `tokenpipe-instructions <impl> <iterations>`, impl one of `libc`, `crate`,
//! `rustix`, `nix`, `std`, `os_pipe`: makes one pipe, then writes one token
//! and reads it back `iterations` times. Counted at two iteration counts,
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

type Run = fn(u64);

const IMPLS: [(&str, Run); 6] = [
    ("libc", run::<Libc>),
    ("crate", run::<ThisCrate>),
    ("rustix", run::<Rustix>),
    ("nix", run::<Nix>),
    ("std", run::<StdPipe>),
    ("os_pipe", run::<OsPipe>),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [name, iterations] = &args[..] {
        let found = IMPLS.iter().find(|(n, _)| n == name);
        if let (Some((_, run)), Ok(iterations)) = (found, iterations.parse()) {
            run(iterations);
            return ExitCode::SUCCESS;
        }
    }
    let names: Vec<&str> = IMPLS.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "usage: tokenpipe-instructions <{}> <iterations>",
        names.join("|")
    );
    ExitCode::from(2)
}
