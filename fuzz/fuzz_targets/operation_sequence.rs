//! Arbitrary bytes as a sequence of pipe operations, run on the crate and
//! on the reference model of the property test (tests/model), which must
//! agree at every step and leave no fd behind.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

use model::{Harness, Op, open_pipe_count};

fuzz_target!(
    init: {
        // libFuzzer's main is not Rust's, which would ignore SIGPIPE; the
        // model (like every Rust program) expects BrokenPipe, not death.
        // SAFETY: SIG_IGN is a valid disposition for SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    },
    |data: &[u8]| {
    // Long inputs only repeat what short ones cover, more slowly.
    let ops = Op::decode(&data[..data.len().min(256)]);
    let before = open_pipe_count();
    let mut h = Harness::new(false);
    for (i, &op) in ops.iter().enumerate() {
        if let Err(m) = h.apply(op) {
            panic!("step {i} ({op:?}): {m}");
        }
    }
    if let Err(m) = h.finish() {
        panic!("{m}");
    }
    assert_eq!(open_pipe_count(), before, "pipe fds leaked");
    }
);
