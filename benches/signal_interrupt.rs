//! `SignalInterrupt`'s trigger-to-wake latency against a raw pipe, eventfd,
//! `Mutex` + `Condvar` and signal-hook's pipe registration, side by side in
//! one run (the suite, and how it is built, is in
//! `common/interrupt_suite.rs`). Run with
//!
//! ```text
//! cargo bench -p tokenpipe-benches --bench signal_interrupt -- \
//!     --warm-up-time 1 --measurement-time 3
//! ```
//!
//! It ends by printing each row's median and its ratio to the raw pipe's
//! row of the same group, from criterion's results of this run. Like
//! `tokenpipe.rs`, x86_64 Linux only: the peers and criterion are
//! dependencies of this package there only (benches/Cargo.toml).

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("common/interrupt_suite.rs");

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    eprintln!("the benchmarks run on x86_64 Linux only (see benches/signal_interrupt.rs)");
}
