//! The self-pipe: a signal handler wakes the main loop by writing one token.
//!
//! ```text
//! cargo run --example self_pipe                  # works until Ctrl-C (or SIGTERM)
//! cargo run --example self_pipe -- --self-test   # sends itself SIGTERM after 300 ms
//! ```
//!
//! A signal handler may call only async-signal-safe functions, so it cannot
//! take a lock, allocate or print. It writes one token (the signal number)
//! to a pipe instead; the main loop waits on the read end, wakes up, and
//! does the real work outside the handler. Exits 0 after a clean shutdown.

#[cfg(unix)]
use bitcoin_tokenpipe::TokenPipeEnd;
#[cfg(unix)]
use std::sync::OnceLock;

/// The write end the handlers use. A `OnceLock` because it is set once,
/// before the handlers are installed, and after that `get` is one atomic
/// load: no lock, no allocation, so it is safe in a handler. (Only `set`
/// can wait, and only `main` calls it, before any signal can arrive.)
#[cfg(unix)]
static WAKE: OnceLock<TokenPipeEnd> = OnceLock::new();

#[cfg(unix)]
extern "C" fn on_signal(sig: core::ffi::c_int) {
    // The handler interrupts code that may be about to read errno, so it
    // must leave errno as it found it. token_write changes errno only when
    // the write fails, but it can fail (a full pipe), so save and restore.
    let saved = bitcoin_tokenpipe::Errno::last();
    if let Some(end) = WAKE.get() {
        // A full pipe (WouldBlock) already guarantees a wake-up, and there
        // is nothing else a handler could do about an error: ignore it.
        let _ = end.token_write(sig as u8);
    }
    saved.set_last();
}

#[cfg(unix)]
fn main() {
    use bitcoin_tokenpipe::{Error, TokenPipe};
    use std::process::exit;
    use std::time::Duration;

    let self_test = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--self-test") => true,
        Some(other) => {
            eprintln!("usage: self_pipe [--self-test]  (unknown argument {other:?})");
            exit(64);
        }
    };
    let fail = |what: &str, e: Error| -> ! {
        eprintln!("self_pipe: {what}: {e}");
        exit(1)
    };

    let (reader, writer) = match TokenPipe::make() {
        Ok(pipe) => pipe.split(),
        Err(e) => fail("cannot make the pipe", e),
    };
    // Non-blocking on both sides: a handler must never block on a full pipe,
    // and the reader's drain must stop when the pipe is empty.
    if let Err(e) = writer
        .set_nonblocking(true)
        .and(reader.set_nonblocking(true))
    {
        fail("cannot make the pipe non-blocking", e);
    }
    let _ = WAKE.set(writer); // the first and only set: cannot fail

    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is a valid value (no flags, empty
        // mask, no handler) that we then fill in.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(core::ffi::c_int) as libc::sighandler_t;
        // SAFETY: `action` is a valid, initialised sigaction; `on_signal`
        // makes only async-signal-safe calls; a null old-action is allowed.
        if unsafe { libc::sigaction(sig, &action, core::ptr::null_mut()) } != 0 {
            eprintln!("self_pipe: sigaction: {}", std::io::Error::last_os_error());
            exit(1);
        }
    }

    if self_test {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: kill takes plain integers and touches no memory.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        });
        println!("self_pipe: --self-test: sending myself SIGTERM in 300 ms");
    } else {
        println!("self_pipe: working; press Ctrl-C (or send SIGTERM) to stop");
    }

    loop {
        // The tick only shows the program busy; a token ends the wait at once.
        let first = match reader.token_read_timeout(Duration::from_secs(1)) {
            Ok(token) => token,
            Err(Error::TimedOut) => {
                println!("self_pipe: working...");
                continue;
            }
            Err(e) => fail("waiting for a signal", e),
        };
        // Drain first, then act. A signal that arrives while we act writes a
        // new token, which the next wake-up sees. Acting first and draining
        // after would swallow that token, and with it the signal.
        let more = reader.drain().unwrap_or_else(|e| fail("draining", e));
        let name = match i32::from(first) {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            _ => "an unknown signal",
        };
        println!(
            "self_pipe: got {name}, drained {} token(s), shutting down cleanly",
            1 + more
        );
        // A real program would stop its workers and flush its state here.
        exit(0);
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("self_pipe needs Unix signals and pipes: it runs on Unix only");
    std::process::exit(1);
}
