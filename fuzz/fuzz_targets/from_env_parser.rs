//! The hand-off parser against a plain reference, on arbitrary bytes; and
//! `from_env` itself on every value that names no fd of this process.
#![no_main]

use tokenpipe::{HandoffError, TokenPipeEnd, parse_env_value};
use libfuzzer_sys::fuzz_target;

/// What the parser must accept: non-empty ASCII digits that fit an i32.
fn reference(data: &[u8]) -> Option<i32> {
    if data.is_empty() || !data.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(data).ok()?.parse::<i32>().ok()
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_env_value(data);
    match reference(data) {
        Some(fd) => assert_eq!(parsed, Ok(fd)),
        None => assert_eq!(parsed, Err(HandoffError::Malformed)),
    }

    // from_env on the same value, where it cannot take one of the fuzzer's
    // own fds: malformed values, and numbers far above any open fd.
    let safe = match parsed {
        Err(_) => true,
        Ok(fd) => fd >= 1_000_000,
    };
    if !safe || data.contains(&0) {
        return;
    }
    let value = os_str(data);
    // SAFETY: libFuzzer runs this single-threaded; nothing else touches the
    // environment meanwhile.
    let got = unsafe {
        std::env::set_var("TOKENPIPE_FUZZ_FD", value);
        TokenPipeEnd::from_env(c"TOKENPIPE_FUZZ_FD")
    };
    match parsed {
        Err(_) => assert_eq!(got.err(), Some(HandoffError::Malformed)),
        Ok(fd) => assert_eq!(got.err(), Some(HandoffError::NotOpen { fd })),
    }
});

/// The bytes as an OsStr (Unix OsStrs are arbitrary bytes).
fn os_str(data: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(data)
}
