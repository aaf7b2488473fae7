//! The benchmarks: this crate against raw libc and its peers (the suite is
//! in `common/suite.rs`). They compare against Linux's `pipe2` and were
//! measured on x86_64 Linux, where the README's figures come from; the peer
//! crates and criterion are dependencies of this package (benches/Cargo.toml)
//! on that platform only, so a workspace build for another target does not
//! build them.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod common;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
include!("common/suite.rs");

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    eprintln!("the benchmarks run on x86_64 Linux only (see benches/tokenpipe.rs)");
}
