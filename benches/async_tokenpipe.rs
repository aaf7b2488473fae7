//! `AsyncTokenPipeEnd`'s one-byte round trip against tokio's own pipe, and
//! `SignalInterrupt::triggered()` against `tokio::sync::Notify`, on a
//! current-thread tokio runtime, with a blocking ping-pong of raw libc
//! between two threads as the baseline (the suite, and how it is built, is
//! in `common/async_suite.rs`). Run with
//!
//! ```text
//! cargo bench -p tokenpipe-benches --bench async_tokenpipe -- \
//!     --warm-up-time 1 --measurement-time 3
//! ```
//!
//! It ends by printing each row's median and its ratio to the raw libc
//! row, from criterion's results of this run. Like the other benches,
//! x86_64 Linux only: tokio, the peers and criterion are dependencies of
//! this package there only (benches/Cargo.toml).

// The raw libc pipe of the baseline is the one the other benches time
// (`common::Libc`); the rest of the module serves them.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[allow(dead_code)]
mod common;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("common/async_suite.rs");

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    eprintln!("the benchmarks run on x86_64 Linux only (see benches/async_tokenpipe.rs)");
}
