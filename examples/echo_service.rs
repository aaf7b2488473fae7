//! A line-echo server (every line it reads on a connection it writes
//! back) with the whole life of a systemd service: socket activation,
//! `Type=notify`, the watchdog, reload and a clean stop.
//!
//! ```text
//! echo_service [--listen unix:PATH | --listen tcp:HOST:PORT]...
//!
//! cargo run --example echo_service -- --listen unix:/tmp/echo.sock --listen tcp:127.0.0.1:0
//! socat - UNIX-CONNECT:/tmp/echo.sock          # each line comes back
//! # systemd: echo.socket with ListenStream=/run/echo.sock, and echo.service with
//! #   Type=notify, WatchdogSec=10, ExecReload=/bin/kill -HUP $MAINPID,
//! #   ExecStart=/path/to/echo_service
//! ```
//!
//! Sockets: those socket activation gave it (`LISTEN_FDS` and
//! `LISTEN_PID` for this process, fds from 3, read with
//! `ListenFds::from_env`), each a listening Unix or TCP stream socket;
//! when there are none, the `--listen` ones (as many as given), which it
//! binds itself: `unix:PATH` (a path that exists already is refused,
//! never removed; the socket file it made is removed when it stops) or
//! `tcp:HOST:PORT` (port 0: the kernel picks one). Given activated
//! sockets, it ignores `--listen` and says so.
//!
//! It prints `echo_service: listening on ADDR` for each socket (`ADDR` is
//! `unix:PATH` or `tcp:IP:PORT`, the port the kernel gave), then
//! `echo_service: serving (pid P)`. Each connection is served in a thread
//! of its own: every line read is written back, until the peer closes it.
//!
//! | event | what it prints | exit |
//! |---|---|---|
//! | SIGTERM or SIGINT | `echo_service: got SIGTERM; stopping; exiting 0` (or `SIGINT`) | 0 |
//! | SIGHUP | `echo_service: got SIGHUP; reload K done` | (serves on) |
//! | a socket cannot be bound or used, the handlers cannot be installed, or a readiness variable (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `LISTEN_*`) is unusable | one line saying which | 1 |
//! | usage error, or no socket at all | one `usage:` line on stderr | 64 |
//!
//! Readiness (when `NOTIFY_SOCKET` is set, as by `Type=notify`):
//! `READY=1` with `STATUS=serving on N sockets` (`1 socket`) once it
//! listens, and `STATUS=serving on N sockets; reloads: K` after a reload;
//! `STOPPING=1` when it stops; on SIGHUP `RELOADING=1` with
//! `MONOTONIC_USEC=` in one datagram, then `READY=1`; with `WatchdogSec=`
//! (`WATCHDOG_USEC` for this pid) `WATCHDOG=1` every half interval, from a
//! thread of its own.
//!
//! No `unsafe`: the activated fds are taken with `ListenFds::take_owned`,
//! which claims them once per process, and the notify socket is read with
//! `Notifier::socket_from_env`, as in the `shutdown` example. The
//! activation variables stay in the environment (removing them is not
//! thread-safe); `LISTEN_PID` tells any child they are not its own.
//!
//! Which kind each activated socket is, without `unsafe`: it is taken as
//! a `UnixListener` and asked its `local_addr()`: std's `getsockname`
//! there refuses an address that is not `AF_UNIX`, so an error means it is
//! not a Unix socket, and it is then made a `TcpListener`, whose
//! `local_addr()` in turn refuses anything but `AF_INET` and `AF_INET6`.
//! A socket that is neither is refused (exit 1).

#![forbid(unsafe_code)]

#[cfg(tokenpipe_sigaction)]
use tokenpipe::SignalInterrupt;

/// Triggered by SIGTERM or SIGINT.
#[cfg(tokenpipe_sigaction)]
static STOP: SignalInterrupt = SignalInterrupt::new();

/// Triggered by SIGHUP; reset after each reload.
#[cfg(tokenpipe_sigaction)]
static RELOAD: SignalInterrupt = SignalInterrupt::new();

#[cfg(tokenpipe_sigaction)]
fn main() {
    use std::process::exit;
    use std::sync::Arc;
    use tokenpipe::interrupt::{SIGHUP, SIGINT, SIGTERM};
    use tokenpipe::ready::{ListenFds, Notifier};

    // The activated fds, taken once.
    let activated = match ListenFds::take_owned() {
        Ok(fds) => fds,
        Err(e) => die(format!("cannot use the socket activation variables: {e}")),
    };

    let listens = match parse(std::env::args().skip(1)) {
        Ok(listens) => listens,
        Err(why) => usage(&why),
    };

    let mut listeners = Vec::new();
    if activated.is_empty() {
        if listens.is_empty() {
            usage("no sockets: none by socket activation, and no --listen");
        }
        for listen in &listens {
            listeners.push(listen.bind().unwrap_or_else(|e| die(e)));
        }
    } else {
        if !listens.is_empty() {
            println!(
                "echo_service: {} sockets by socket activation; --listen ignored",
                activated.len()
            );
        }
        for (fd, name) in activated {
            let what = format!("activated fd {}", name.as_deref().unwrap_or("(no name)"));
            listeners
                .push(Listener::from_activated(fd).unwrap_or_else(|e| die(format!("{what}: {e}"))));
        }
    }

    let notifier = notifier_from_env().unwrap_or_else(|e| die(e));
    let watchdog = match &notifier {
        Some(_) => Notifier::watchdog_interval()
            .unwrap_or_else(|e| die(format!("cannot use the watchdog: {e}"))),
        None => None,
    };
    let notifier = Arc::new(notifier.unwrap_or_else(Notifier::none));

    if let Err(e) = STOP.install(&[SIGINT, SIGTERM]) {
        die(format!(
            "cannot install the SIGINT and SIGTERM handlers: {e}"
        ));
    }
    if let Err(e) = RELOAD.install(&[SIGHUP]) {
        die(format!("cannot install the SIGHUP handler: {e}"));
    }

    if let Some(interval) = watchdog {
        let notifier = Arc::clone(&notifier);
        std::thread::spawn(move || {
            loop {
                if let Err(e) = notifier.watchdog() {
                    eprintln!("echo_service: watchdog ping failed: {e}");
                }
                std::thread::sleep(interval / 2);
            }
        });
    }

    // Unix socket files to remove when it stops: only those it made.
    let mut made = Vec::new();
    let n = listeners.len();
    let sockets = if n == 1 {
        "1 socket".to_owned()
    } else {
        format!("{n} sockets")
    };
    for listener in listeners {
        println!("echo_service: listening on {}", listener.describe());
        if let (Listener::Unix(_, true), Some(path)) = (&listener, listener.unix_path()) {
            made.push(path);
        }
        std::thread::spawn(move || listener.serve());
    }

    if let Err(e) = notifier.ready() {
        eprintln!("echo_service: could not report ready: {e}; serving all the same");
    }
    let _ = notifier.status(&format!("serving on {sockets}"));
    println!("echo_service: serving (pid {})", std::process::id());

    {
        let notifier = Arc::clone(&notifier);
        std::thread::spawn(move || {
            let mut reloads = 0u64;
            while RELOAD.wait().is_ok() {
                let _ = RELOAD.reset();
                if STOP.is_triggered() {
                    continue; // stopping: no READY=1 after STOPPING=1
                }
                reloads += 1;
                if let Err(e) = notifier.reloading() {
                    eprintln!("echo_service: could not report reloading: {e}");
                }
                // A real service rereads its configuration here.
                println!("echo_service: got SIGHUP; reload {reloads} done");
                let _ = notifier.status(&format!("serving on {sockets}; reloads: {reloads}"));
                if let Err(e) = notifier.ready() {
                    eprintln!("echo_service: could not report ready after the reload: {e}");
                }
            }
        });
    }

    if let Err(e) = STOP.wait() {
        eprintln!("echo_service: waiting for a signal failed: {e}; stopping");
    }
    if let Err(e) = notifier.stopping() {
        eprintln!("echo_service: could not report stopping: {e}");
    }
    let name = match STOP.signal() {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        _ => "a stop",
    };
    for path in made {
        let _ = std::fs::remove_file(path);
    }
    // The connections' threads end with the process: an echo has no
    // state to flush.
    println!("echo_service: got {name}; stopping; exiting 0");
    exit(0);
}

/// One line saying what went wrong; exit 1.
#[cfg(tokenpipe_sigaction)]
fn die(why: String) -> ! {
    println!("echo_service: {why}; exiting 1");
    std::process::exit(1)
}

/// The usage line, with why, on stderr; exit 64.
#[cfg(tokenpipe_sigaction)]
fn usage(why: &str) -> ! {
    eprintln!("usage: echo_service [--listen unix:PATH | --listen tcp:HOST:PORT]...  ({why})");
    std::process::exit(64)
}

/// One `--listen` value.
#[cfg(tokenpipe_sigaction)]
enum Listen {
    Unix(std::path::PathBuf),
    Tcp(String),
}

/// The `--listen` values, in order.
#[cfg(tokenpipe_sigaction)]
fn parse(mut args: impl Iterator<Item = String>) -> Result<Vec<Listen>, String> {
    let mut listens = Vec::new();
    while let Some(arg) = args.next() {
        if arg != "--listen" {
            return Err(format!("unknown argument {arg:?}"));
        }
        let value = args
            .next()
            .ok_or("--listen needs unix:PATH or tcp:HOST:PORT")?;
        let listen = if let Some(path) = value.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            Listen::Unix(path.into())
        } else if let Some(addr) = value.strip_prefix("tcp:") {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Listen::Tcp(addr.to_owned())
                }
                _ => return Err(format!("--listen tcp: takes HOST:PORT, not {addr:?}")),
            }
        } else {
            return Err(format!(
                "--listen takes unix:PATH or tcp:HOST:PORT, not {value:?}"
            ));
        };
        listens.push(listen);
    }
    Ok(listens)
}

#[cfg(tokenpipe_sigaction)]
impl Listen {
    fn bind(&self) -> Result<Listener, String> {
        match self {
            Listen::Unix(path) => std::os::unix::net::UnixListener::bind(path)
                .map(|l| Listener::Unix(l, true))
                .map_err(|e| format!("cannot listen on unix:{}: {e}", path.display())),
            Listen::Tcp(addr) => std::net::TcpListener::bind(addr.as_str())
                .map(Listener::Tcp)
                .map_err(|e| format!("cannot listen on tcp:{addr}: {e}")),
        }
    }
}

/// A listening socket; for Unix, whether it made the socket file.
#[cfg(tokenpipe_sigaction)]
enum Listener {
    Unix(std::os::unix::net::UnixListener, bool),
    Tcp(std::net::TcpListener),
}

#[cfg(tokenpipe_sigaction)]
impl Listener {
    /// An activated socket, Unix or TCP: see the module docs for how it
    /// tells them apart without `unsafe`.
    fn from_activated(fd: std::os::fd::OwnedFd) -> Result<Listener, String> {
        use std::os::fd::OwnedFd;
        let unix = std::os::unix::net::UnixListener::from(fd);
        if unix.local_addr().is_ok() {
            return Ok(Listener::Unix(unix, false));
        }
        let tcp = std::net::TcpListener::from(OwnedFd::from(unix));
        match tcp.local_addr() {
            Ok(_) => Ok(Listener::Tcp(tcp)),
            Err(e) => Err(format!("neither a Unix nor a TCP socket ({e})")),
        }
    }

    fn unix_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Listener::Unix(l, _) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Into::into)),
            Listener::Tcp(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Listener::Unix(l, _) => match l.local_addr() {
                Ok(a) => match a.as_pathname() {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix:(unnamed)".into(),
                },
                Err(e) => format!("unix:({e})"),
            },
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp:{a}"),
                Err(e) => format!("tcp:({e})"),
            },
        }
    }

    /// Accepts connections until the process ends, each served by a
    /// thread of its own.
    fn serve(self) {
        loop {
            let conn: std::io::Result<Box<dyn Conn>> = match &self {
                Listener::Unix(l, _) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>),
                Listener::Tcp(l) => l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>),
            };
            match conn {
                Ok(conn) => {
                    std::thread::spawn(move || echo(conn));
                }
                Err(e) => {
                    eprintln!("echo_service: accept on {} failed: {e}", self.describe());
                    // EMFILE and the like: let the moment pass.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }
}

/// A connection: a Unix or TCP stream.
#[cfg(tokenpipe_sigaction)]
trait Conn: std::io::Read + std::io::Write + Send {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Conn>>;
}

#[cfg(tokenpipe_sigaction)]
impl Conn for std::os::unix::net::UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
}

#[cfg(tokenpipe_sigaction)]
impl Conn for std::net::TcpStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Conn>> {
        Ok(Box::new(self.try_clone()?))
    }
}

/// Writes back every line read, until the peer closes or an error.
#[cfg(tokenpipe_sigaction)]
fn echo(conn: Box<dyn Conn>) {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut out) = conn.try_clone_box() else {
        return;
    };
    let mut lines = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

/// systemd's notify socket, if `NOTIFY_SOCKET` names one; an error
/// message if it is set but unusable.
#[cfg(all(tokenpipe_sigaction, tokenpipe_unix_socket))]
fn notifier_from_env() -> Result<Option<tokenpipe::ready::Notifier>, String> {
    tokenpipe::ready::Notifier::socket_from_env()
        .map_err(|e| format!("cannot use the notify socket: {e}"))
}

/// No Unix-domain sockets here: nothing to report to.
#[cfg(all(tokenpipe_sigaction, not(tokenpipe_unix_socket)))]
fn notifier_from_env() -> Result<Option<tokenpipe::ready::Notifier>, String> {
    Ok(None)
}

#[cfg(not(tokenpipe_sigaction))]
fn main() {
    eprintln!("echo_service needs POSIX signals (sigaction): it runs where processes do");
    std::process::exit(1);
}
