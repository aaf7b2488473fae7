//! The self-pipe: a signal handler wakes the main loop by writing one token,
//! here through `tokenpipe::SignalInterrupt`, with no `unsafe`.
//!
//! ```text
//! self_pipe [--self-test]
//!
//! cargo run --example self_pipe                  # works until Ctrl-C (or SIGTERM)
//! cargo run --example self_pipe -- --self-test   # sends itself SIGTERM after 300 ms
//! ```
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | a clean shutdown after SIGINT or SIGTERM (it names the signal) |
//! | 1 | the handlers could not be installed, or waiting failed (the message says why) |
//! | 64 | usage error (one `usage:` line on stderr) |
//!
//! A signal handler may call only async-signal-safe functions, so it cannot
//! take a lock, allocate or print. `SignalInterrupt::install` puts in a
//! handler that sets a flag and writes one token to a pipe, which is all a
//! handler should do; the main loop waits on the pipe, wakes up, and does
//! the real work outside the handler. The `static` below is the whole
//! set-up: no `sigaction` struct, no `OnceLock` for the write end, no
//! `errno` to save and restore by hand.
//!
//! The main loop waits with `wait_timeout`, a 1 s tick that shows the
//! program busy. A program with sockets to watch would instead put the
//! interrupt's read end in its `poll` (or epoll, mio) set beside them:
//! `STOP.try_as_fd()` (or `AsFd::as_fd`, or `as_raw_fd`) gives it, and it
//! is readable exactly while the interrupt is triggered. With the `std`
//! feature this example shows that too, by printing the fd it would poll.

// The point of this example: signal handling with no unsafe code at all.
#![forbid(unsafe_code)]

#[cfg(tokenpipe_sigaction)]
use tokenpipe::SignalInterrupt;

/// Triggered by the handlers `main` installs for SIGINT and SIGTERM.
#[cfg(tokenpipe_sigaction)]
static STOP: SignalInterrupt = SignalInterrupt::new();

#[cfg(tokenpipe_sigaction)]
fn main() {
    use std::process::exit;
    use std::time::Duration;
    use tokenpipe::interrupt::{SIGINT, SIGTERM};

    let self_test = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--self-test") => true,
        Some(other) => {
            eprintln!("usage: self_pipe [--self-test]  (unknown argument {other:?})");
            exit(64);
        }
    };

    // Safe: the handler runs only async-signal-safe code of the crate.
    if let Err(e) = STOP.install(&[SIGINT, SIGTERM]) {
        eprintln!("self_pipe: cannot install the SIGINT and SIGTERM handlers: {e}");
        exit(1);
    }
    // The self-pipe's read end, for a poll loop (see the module doc).
    #[cfg(feature = "std")]
    match STOP.try_as_fd() {
        Ok(fd) => {
            use std::os::fd::AsRawFd;
            let fd = fd.as_raw_fd();
            println!("self_pipe: a poll loop would watch fd {fd} (readable once a signal came)");
        }
        Err(e) => {
            eprintln!("self_pipe: cannot get the interrupt's fd: {e}");
            exit(1);
        }
    }

    if self_test {
        // kill(1) rather than libc::kill: no unsafe in this example.
        let pid = std::process::id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            match std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
            {
                Ok(status) if status.success() => {}
                Ok(status) => eprintln!("self_pipe: kill -TERM {pid} failed ({status})"),
                Err(e) => eprintln!("self_pipe: cannot run kill -TERM {pid}: {e}"),
            }
        });
        println!("self_pipe: --self-test: sending myself SIGTERM in 300 ms");
    } else {
        println!("self_pipe: working; press Ctrl-C (or send SIGTERM) to stop");
    }

    loop {
        // The tick only shows the program busy; a signal ends the wait at once.
        match STOP.wait_timeout(Duration::from_secs(1)) {
            Ok(true) => break,
            Ok(false) => println!("self_pipe: working..."),
            Err(e) => {
                eprintln!("self_pipe: waiting for a signal: {e}");
                exit(1);
            }
        }
    }
    // The interrupt keeps the first signal that triggered it.
    let name = match STOP.signal() {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        _ => "a trigger",
    };
    println!("self_pipe: got {name}, shutting down cleanly");
    // A real program would stop its workers and flush its state here.
    exit(0);
}

#[cfg(not(tokenpipe_sigaction))]
fn main() {
    eprintln!("self_pipe needs POSIX signals (sigaction): it runs where processes do");
    std::process::exit(1);
}
