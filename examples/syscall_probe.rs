//! The program `ci/syscalls.sh` runs under `strace` to prove what the docs
//! promise: `make` is one `pipe2`, `token_write` one `write`, `token_read`
//! one `read`, `close` one `close`, `set_nonblocking` one `ioctl`, and a
//! closed end makes no syscall.
//!
//! Readiness too: `Notifier::ready` over systemd's notify socket is one
//! `socket`, one `sendmsg`, one `close`; over this crate's token pipe one
//! `write` and one `close` (with the `SIGPIPE` guard of
//! `token_write_nosignal`); finding `NOTIFY_SOCKET` makes no syscall.
//!
//! `SignalInterrupt` too: its first trigger is one `pipe2` and one
//! `write`, a second none, `wait` on a triggered interrupt none, `reset`
//! one `read`, an untriggered `wait_timeout(ZERO)` one `poll`.
//!
//! ```text
//! cargo run --example syscall_probe [SOCKET_PATH]   # silent; exit 0 if every call returned what it should
//! ci/syscalls.sh                                    # the same under strace, checking each call's syscalls
//! ```
//!
//! Before each call it writes a marker, `write(-1, "@phase NAME", len)`,
//! which fails with `EBADF` and touches nothing, so the trace shows which
//! syscalls belong to which call. Nothing else is printed until the end, so
//! no other syscall lands between two markers. What it sets up before the
//! first marker (a notify socket bound at `SOCKET_PATH`, default a fresh
//! name in the temporary directory, and a token pipe handed over through
//! `TOKENPIPE_READY_FD`) is not checked; the fd numbers the trace needs
//! from it are written the same way, `write(-1, "@note NAME=FD", len)`.

#[cfg(unix)]
fn main() {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;
    use tokenpipe::ready::Notifier;
    use tokenpipe::{Error, SignalInterrupt, TokenPipe, TokenPipeEnd};

    /// Marks the start of a phase in the trace. Builds the marker on the
    /// stack: an allocation could make a syscall (`brk`, `mmap`) that would
    /// land in the phase before.
    fn phase(name: &str) {
        let mut marker = [0u8; 64];
        let len = b"@phase ".len() + name.len();
        marker[..7].copy_from_slice(b"@phase ");
        marker[7..len].copy_from_slice(name.as_bytes());
        // SAFETY: `marker` is valid for reads of `len` bytes; fd -1 is never
        // open, so the call only fails with EBADF.
        let rc = unsafe { libc::write(-1, marker.as_ptr().cast(), len) };
        assert_eq!(rc, -1);
    }

    /// Tells the trace an fd number the set-up chose, the way `phase`
    /// marks a phase (and as cheaply: before the first phase, anything
    /// goes).
    fn note(name: &str, fd: i32) {
        let text = format!("@note {name}={fd}");
        // SAFETY: `text` is valid for reads of its length; fd -1 is never
        // open, so the call only fails with EBADF.
        let rc = unsafe { libc::write(-1, text.as_ptr().cast(), text.len()) };
        assert_eq!(rc, -1);
    }

    // Readiness set-up: a notify socket of our own to report to, as systemd
    // would bind it, and this crate's token pipe handed to us as a launcher
    // does, through TOKENPIPE_READY_FD (which from_env then removes).
    let socket_path = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("tokenpipe-probe-{}.sock", std::process::id())),
        std::path::PathBuf::from,
    );
    let _ = std::fs::remove_file(&socket_path);
    let notify_receiver = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let (ready_reader, ready_writer) = TokenPipe::make().expect("make").split();
    let ready_fd = ready_writer.into_raw_fd();
    note("ready_writer", ready_fd);
    // SAFETY: this program has no other thread; into_raw_fd gave up the
    // fd's other owner.
    let piped = unsafe {
        std::env::set_var("TOKENPIPE_READY_FD", ready_fd.to_string());
        Notifier::from_env()
    };
    let piped = piped.expect("from_env").expect("the token pipe");
    // SAFETY: as above.
    unsafe { std::env::set_var("NOTIFY_SOCKET", &socket_path) };

    // Made here, used after the readiness phases. The fork hook that the
    // fd accessors and waits register (once per process; the C library
    // may allocate for it) is registered now, on another interrupt.
    let si = SignalInterrupt::new();
    let warm_up = SignalInterrupt::new();
    warm_up.as_raw_fd().expect("as_raw_fd");
    drop(warm_up);

    phase("make");
    let pipe = TokenPipe::make().expect("make");
    phase("split");
    let (reader, mut writer) = pipe.split();

    phase("token_write");
    writer.token_write(b'x').expect("token_write");
    phase("token_read");
    assert_eq!(reader.token_read(), Ok(b'x'));

    phase("write_tokens");
    assert_eq!(writer.write_tokens(b"abc"), Ok(3));
    phase("read_tokens");
    let mut buf = [0u8; 8];
    assert_eq!(reader.read_tokens(&mut buf), Ok(3));

    phase("token_write_nosignal");
    writer
        .token_write_nosignal(b'y')
        .expect("token_write_nosignal");
    phase("token_read_timeout");
    assert_eq!(reader.token_read_timeout(Duration::from_secs(5)), Ok(b'y'));
    phase("set_nonblocking");
    reader.set_nonblocking(true).expect("set_nonblocking");

    phase("orphan");
    let (orphan_reader, orphan_writer) = TokenPipe::make().expect("make").split();
    drop(orphan_reader);
    phase("token_write_nosignal_epipe");
    assert_eq!(
        orphan_writer.token_write_nosignal(b'z'),
        Err(Error::BrokenPipe)
    );
    phase("orphan_drop");
    drop(orphan_writer);

    phase("close");
    writer.close();
    phase("close_again");
    writer.close();
    phase("closed_token_write");
    assert_eq!(writer.token_write(b'z'), Err(Error::Closed));
    phase("closed_token_read");
    assert_eq!(writer.token_read(), Err(Error::Closed));
    phase("closed_drop");
    drop(writer);
    phase("new_end_drop");
    drop(TokenPipeEnd::new());

    phase("token_read_eos");
    assert_eq!(reader.token_read(), Err(Error::Eos));
    phase("drop");
    drop(reader);

    phase("from_env_notify_socket");
    // SAFETY: no other thread touches the environment.
    let notifier = unsafe { Notifier::from_env() };
    let notifier = notifier.expect("from_env").expect("NOTIFY_SOCKET");
    phase("ready_notify_socket");
    notifier.ready().expect("ready over the notify socket");
    phase("ready_token_pipe");
    piped.ready().expect("ready over the token pipe");
    phase("ready_token_pipe_again");
    assert_eq!(piped.ready(), Err(Error::Closed.into()));

    // SignalInterrupt: the first trigger makes the pipe and writes the
    // token; a second writes nothing; waiting on a triggered interrupt
    // returns on its flag; reset is one read; an untriggered zero-timeout
    // look is one poll.
    phase("si_first_trigger");
    si.trigger().expect("first trigger");
    phase("si_second_trigger");
    si.trigger().expect("second trigger");
    phase("si_wait_triggered");
    si.wait().expect("wait");
    phase("si_reset");
    si.reset().expect("reset");
    phase("si_wait_timeout_zero");
    assert_eq!(si.wait_timeout(Duration::ZERO), Ok(false));
    phase("si_drop");
    drop(si);
    phase("end");

    // What they sent, outside the trace.
    let mut buf = [0u8; 64];
    let n = notify_receiver.recv(&mut buf).expect("the datagram");
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(ready_reader.token_read(), Ok(1));
    assert_eq!(ready_reader.token_read(), Err(Error::Eos));
    let _ = std::fs::remove_file(&socket_path);
}

#[cfg(not(unix))]
fn main() {}
