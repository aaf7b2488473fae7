//! A supervisor hands a pipe's write end to a program it starts, and waits
//! for that program to say it is ready.
//!
//! ```text
//! cargo run --example supervise                          # ready:     exit 0
//! cargo run --example supervise -- fail                  # failed:    exit 1
//! cargo run --example supervise -- die                   # died:      exit 2
//! cargo run --example supervise -- hang --timeout-ms 300 # timed out: exit 3
//! cargo run --example supervise -- s6                    # ready, the s6 way
//! ```
//!
//! The child is this same program, started again with a hidden `--child
//! MODE` argument. It finds its end through `TOKENPIPE_READY_FD` and writes
//! 1 (ready) or 0 (failed). This also speaks s6's readiness protocol, where
//! the daemon writes a newline to its notification fd and closes it: a
//! `b'\n'` counts as ready too, so s6-style daemons can be supervised as is.

#[cfg(all(unix, feature = "std"))]
fn main() {
    use std::process::{Command, exit};
    use std::time::Duration;
    use tokenpipe::{Error, TokenPipe};

    let usage = |why: String| -> ! {
        eprintln!("usage: supervise [ready|fail|hang|die|s6] [--timeout-ms N]  ({why})");
        exit(64)
    };
    let mut mode = "ready".to_string();
    let mut timeout_ms = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--child" => child_main(args.next().unwrap_or_default()),
            "--timeout-ms" => match args.next().map(|n| n.parse::<u64>()) {
                Some(Ok(n)) => timeout_ms = n,
                _ => usage("--timeout-ms needs a number of milliseconds".into()),
            },
            "ready" | "fail" | "hang" | "die" | "s6" => mode = arg,
            other => usage(format!("unknown argument {other:?}")),
        }
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("supervise: {what}: {e}");
        exit(71)
    };

    let exe = std::env::current_exe().unwrap_or_else(|e| fail("cannot find my own program", &e));
    let (reader, writer) = match TokenPipe::make() {
        Ok(pipe) => pipe.split(),
        Err(e) => fail("cannot make the pipe", &e),
    };
    let mut cmd = Command::new(exe);
    cmd.args(["--child", &mode]);
    if let Err(e) = writer.pass_to(&mut cmd, "TOKENPIPE_READY_FD") {
        fail("cannot hand the pipe over", &e);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| fail("cannot start the child", &e));
    // Our own copy of the write end must go now: while it is open, a child
    // that dies is indistinguishable from one that is merely slow, and we
    // would never read end of stream.
    drop(writer);
    let pid = child.id();
    println!("supervise: started child {pid} ({mode}), waiting up to {timeout_ms} ms");

    let answer = reader.token_read_timeout(Duration::from_millis(timeout_ms));
    let (code, mut verdict, kill) = match answer {
        // A real supervisor would go on watching a ready child; the demo
        // lets it finish.
        Ok(1 | b'\n') => (0, "is ready; letting it finish".to_string(), false),
        Ok(0) => (1, "failed to start".into(), false),
        Ok(t) => (1, format!("sent unknown token {t}"), true),
        Err(Error::Eos) => (2, "died before it was ready".into(), false),
        // SIGKILL (Child::kill): a hung child may ignore politer signals.
        Err(Error::TimedOut) => (3, format!("timed out after {timeout_ms} ms"), true),
        Err(e) => (71, format!("could not be waited for: {e}"), true),
    };
    if kill {
        let _ = child.kill(); // fails only if it is already dead: fine
        verdict += "; killed it";
    }
    // Reap in every case, so no zombie is left, and say how it ended.
    let ended = match child.wait() {
        Ok(status) => status.to_string(),
        Err(e) => format!("not reaped: {e}"),
    };
    println!("supervise: child {pid} {verdict} ({ended})");
    exit(code);
}

/// The supervised program. Never returns.
#[cfg(all(unix, feature = "std"))]
fn child_main(mode: String) -> ! {
    use std::process::exit;
    use std::time::Duration;
    use tokenpipe::TokenPipeEnd;

    // SAFETY: no other thread exists yet to change the environment, and the
    // fd named there was handed to this program alone: nothing else here
    // owns it.
    let end = match unsafe { TokenPipeEnd::from_env(c"TOKENPIPE_READY_FD") } {
        Ok(end) => end,
        Err(e) => {
            eprintln!("child: no readiness pipe: {e}");
            exit(70);
        }
    };
    // "Initialisation": a real daemon loads its state here.
    std::thread::sleep(Duration::from_millis(100));
    let report = |token: u8| {
        if let Err(e) = end.token_write(token) {
            eprintln!("child: cannot report to the supervisor: {e}");
            exit(70);
        }
    };
    match mode.as_str() {
        "ready" => report(1),
        "s6" => report(b'\n'),
        "fail" => {
            report(0);
            exit(1)
        }
        "hang" => std::thread::sleep(Duration::from_secs(3600)),
        "die" => exit(9),
        other => {
            eprintln!("child: unknown mode {other:?}");
            exit(64)
        }
    }
    // Readiness is said once: closing the end is the s6 way of saying so.
    drop(end);
    // A real daemon would serve here; this one works briefly, then ends.
    std::thread::sleep(Duration::from_millis(100));
    exit(0)
}

#[cfg(all(unix, not(feature = "std")))]
fn main() {
    eprintln!("supervise needs the crate's `std` feature (TokenPipeEnd::pass_to)");
    std::process::exit(1);
}

#[cfg(not(unix))]
fn main() {
    eprintln!("supervise needs Unix pipes and fds: it runs on Unix only");
    std::process::exit(1);
}
