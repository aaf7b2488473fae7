//! The minimal target proof for tokenpipe: a `#![no_std]`,
//! `#![no_main]` executable with no allocator, statically linked against
//! musl. It makes a pipe, writes a token, reads it back, closes the write
//! end, checks that the next read is end of stream, and exits 0; every
//! failure exits with its own non-zero code. Built, run and measured by
//! `ci/minimal.sh`, which compares its size with `c/minimal.c`.
#![no_std]
#![no_main]

use tokenpipe::{Error, TokenPipe};

// With `default-features = false` the libc crate declares the functions but
// does not link libc; this does (static musl: libc.a, which also brings the
// crt start-up code that calls `main` below).
#[link(name = "c")]
unsafe extern "C" {}

unsafe extern "C" {
    safe fn abort() -> !;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    abort()
}

/// Each step, with the exit code it gives when it fails.
fn run() -> Result<(), i32> {
    let mut pipe = TokenPipe::make().map_err(|_| 1)?;
    let reader = pipe.take_read_end();
    let mut writer = pipe.take_write_end();
    writer.token_write(42).map_err(|_| 2)?;
    match reader.token_read() {
        Ok(42) => {}
        _ => return Err(3),
    }
    writer.close();
    if writer.is_open() {
        return Err(4);
    }
    match reader.token_read() {
        Err(Error::Eos) => {}
        _ => return Err(5),
    }
    Ok(())
}

/// Called by musl's crt start-up code (`__libc_start_main`), which passes the
/// return value to `exit`.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    match run() {
        Ok(()) => 0,
        Err(code) => code,
    }
}
