//! The daemon hand-shake, as bitcoind does it with `-daemonwait`:
//!
//! ```text
//! cargo run --example daemon_wait            # the daemon comes up: exit 0
//! cargo run --example daemon_wait -- --fail  # it reports failure:  exit 1
//! cargo run --example daemon_wait -- --crash # it dies first:       exit 2
//! ```
//!
//! The launcher makes a token pipe and forks. The child detaches (new
//! session, `/` as working directory, stdio on `/dev/null`), writes token 0
//! to say its set-up is done, "initialises", and writes 1 (ready) or 0
//! (failed). The launcher exits with success only on 1. If the child dies
//! before it reports, every write end is closed and the launcher reads end
//! of stream: a failure, never the success that bitcoind's own launcher
//! mistook it for.

#[cfg(unix)]
fn main() {
    use bitcoin_tokenpipe::{Error, TokenPipe};
    use std::process::exit;

    let mode = std::env::args().nth(1);
    let mode = match mode.as_deref() {
        None => Mode::ComeUp,
        Some("--fail") => Mode::Fail,
        Some("--crash") => Mode::Crash,
        Some(other) => {
            eprintln!("usage: daemon_wait [--fail | --crash]  (unknown argument {other:?})");
            exit(64);
        }
    };

    let mut pipe = match TokenPipe::make() {
        Ok(pipe) => pipe,
        Err(e) => {
            eprintln!("launcher: cannot make the hand-shake pipe: {e}");
            exit(1);
        }
    };

    // SAFETY: this program has one thread, so the child may do anything a
    // normal program does; it sticks to async-signal-safe calls anyway, as a
    // library-embedded daemon must.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("launcher: fork failed: {}", std::io::Error::last_os_error());
        exit(1);
    }
    if pid == 0 {
        let writer = pipe.take_write_end();
        pipe.close(); // the daemon keeps only the write end
        daemon(writer, mode);
    }

    let reader = pipe.take_read_end();
    pipe.close(); // keep only the read end, or our own write end would keep
    // the pipe alive and a dead child would look like a silent one forever.
    println!("launcher: forked daemon child {pid}, waiting for its set-up token");

    match reader.token_read() {
        Ok(0) => println!("launcher: daemon {pid} detached (set-up done), waiting for readiness"),
        Ok(t) => {
            println!("launcher: daemon {pid} sent {t} instead of the set-up token; failing");
            exit(1);
        }
        Err(Error::Eos) => {
            println!(
                "launcher: daemon {pid} died during set-up ({})",
                how_it_ended(pid)
            );
            exit(2);
        }
        Err(e) => {
            println!("launcher: could not read the set-up token: {e}");
            exit(1);
        }
    }

    match reader.token_read() {
        Ok(1) => {
            println!("launcher: daemon {pid} is ready; exiting 0 and leaving it running");
            exit(0);
        }
        Ok(0) => {
            println!(
                "launcher: daemon {pid} reported that initialisation failed ({}); exiting 1",
                how_it_ended(pid)
            );
            exit(1);
        }
        Ok(t) => {
            println!("launcher: daemon {pid} sent unknown readiness token {t}; exiting 1");
            exit(1);
        }
        Err(Error::Eos) => {
            println!(
                "launcher: daemon {pid} died before it was ready ({}); exiting 2",
                how_it_ended(pid)
            );
            exit(2);
        }
        Err(e) => {
            println!("launcher: could not read the readiness token: {e}; exiting 1");
            exit(1);
        }
    }
}

#[cfg(unix)]
#[derive(Clone, Copy)]
enum Mode {
    ComeUp,
    Fail,
    Crash,
}

/// The daemon side. Never returns.
#[cfg(unix)]
fn daemon(writer: bitcoin_tokenpipe::TokenPipeEnd, mode: Mode) -> ! {
    // SAFETY: setsid, chdir, open, dup2, close, nanosleep, kill, getpid and
    // _exit
    // are async-signal-safe; the paths are NUL-terminated literals.
    unsafe {
        // Detach as bitcoind does; any failure here means the launcher
        // reads end of stream, because _exit closes our write end.
        if libc::setsid() < 0 || libc::chdir(c"/".as_ptr()) != 0 {
            libc::_exit(1);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null < 0 {
            libc::_exit(1);
        }
        for fd in 0..3 {
            if libc::dup2(null, fd) < 0 {
                libc::_exit(1);
            }
        }
        if null > 2 {
            libc::close(null);
        }
        if writer.token_write(0).is_err() {
            libc::_exit(1);
        }

        // "Initialisation": a real daemon loads its state here.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        libc::nanosleep(&pause, core::ptr::null_mut());

        match mode {
            Mode::ComeUp => {
                let _ = writer.token_write(1);
                drop(writer); // nothing more to say
                // A real daemon would serve here; this one rests, then ends.
                let rest = libc::timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                libc::nanosleep(&rest, core::ptr::null_mut());
                libc::_exit(0)
            }
            Mode::Fail => {
                let _ = writer.token_write(0);
                libc::_exit(1)
            }
            // SIGKILL rather than abort(): the same sudden death, and no
            // core file left behind.
            Mode::Crash => {
                libc::kill(libc::getpid(), libc::SIGKILL);
                libc::_exit(3)
            }
        }
    }
}

/// Reaps the child and says how it ended.
#[cfg(unix)]
fn how_it_ended(pid: libc::pid_t) -> String {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for one int.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    if rc != pid {
        return format!("not reaped: {}", std::io::Error::last_os_error());
    }
    if libc::WIFEXITED(status) {
        format!("it exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("it was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("daemon_wait needs fork(): Unix only");
}
