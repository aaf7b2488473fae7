//! `ready::Notifier` speaks each launcher's protocol byte for byte: the
//! datagrams systemd's notify socket receives (by path and by abstract
//! name), `BARRIER=1` against a receiver that closes, keeps or has lost the
//! passed fd, what `from_env` and `from_fd` accept and refuse, this crate's
//! token pipe, the s6-style notification fd, and `fork_daemon`'s launcher
//! honouring requests for more time.
//!
//! Every test takes its turn through `SERIAL`: some change the environment
//! (`setenv` and `getenv` are not thread-safe, and even `temp_dir` reads it),
//! and some check that an fd number is closed, which another test's new
//! fds could reuse.
#![cfg(unix)]

mod common;

use std::ffi::c_int;
use std::io::Read;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::exit_now;
use tokenpipe::daemon::{DaemonOptions, Forked, fork_daemon};
use tokenpipe::ready::{Notifier, NotifyAddr, ReadyError};
use tokenpipe::{ChildExit, Errno, Error, HandoffError, TokenPipe, TokenPipeEnd};

static SERIAL: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Long enough that only a hang reaches it; never a measure of speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A notify socket of the test's own, as systemd binds one: a Unix
/// datagram socket whose address goes in `NOTIFY_SOCKET`.
struct Receiver {
    socket: UnixDatagram,
    /// The `NOTIFY_SOCKET` value: `/path` or `@name`.
    value: Vec<u8>,
    path: Option<PathBuf>,
}

fn unique(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("tokenpipe-{what}-{}-{n}", std::process::id())
}

impl Receiver {
    fn bind_path() -> Receiver {
        let path = std::env::temp_dir().join(unique("notify"));
        let socket = UnixDatagram::bind(&path).expect("bind a notify socket");
        Receiver::with(
            socket,
            path.to_str().unwrap().as_bytes().to_vec(),
            Some(path),
        )
    }

    #[cfg(target_os = "linux")]
    fn bind_abstract() -> Receiver {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::SocketAddr;
        let name = unique("abstract-notify");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("bind an abstract notify socket");
        Receiver::with(socket, format!("@{name}").into_bytes(), None)
    }

    fn with(socket: UnixDatagram, value: Vec<u8>, path: Option<PathBuf>) -> Receiver {
        socket.set_read_timeout(Some(HANG_GUARD)).unwrap();
        Receiver {
            socket,
            value,
            path,
        }
    }

    fn notifier(&self) -> Notifier {
        Notifier::from_socket(NotifyAddr::parse(&self.value).expect("a valid address"))
    }

    /// The next datagram, as text.
    fn recv(&self) -> String {
        let mut buf = [0u8; 2048];
        let n = self.socket.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Receives one datagram with `recvmsg` and room for passed fds, as
/// systemd does: its bytes, and the fds that came with it (now ours).
fn recv_with_fds(socket: &UnixDatagram) -> (String, Vec<c_int>) {
    let mut buf = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    #[repr(C, align(8))]
    struct Control([u8; 128]);
    let mut control = Control([0; 128]);
    // SAFETY: msghdr is plain integers and pointers; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: the iovec and the control buffer are valid for writes of
    // their lengths for the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, RECV_FLAGS) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    let mut fds = Vec::new();
    // SAFETY: recvmsg filled `msg`; the CMSG macros walk only the control
    // bytes it reported, and an SCM_RIGHTS payload is a run of ints, read
    // unaligned.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let len = (*header).cmsg_len as usize - (data as usize - header as usize);
                for i in 0..len / std::mem::size_of::<c_int>() {
                    fds.push(data.cast::<c_int>().add(i).read_unaligned());
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    let text = String::from_utf8(buf[..n as usize].to_vec()).expect("UTF-8");
    (text, fds)
}

fn close(fd: c_int) {
    // SAFETY: the test owns `fd` and uses it no more.
    assert_eq!(unsafe { libc::close(fd) }, 0);
}

fn is_fifo(fd: c_int) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of one stat.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled `st` in.
    unsafe { st.assume_init() }.st_mode as libc::mode_t & libc::S_IFMT == libc::S_IFIFO
}

/// `MSG_CMSG_CLOEXEC` where the system has it, so a passed fd never leaks
/// into a program another test starts.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const RECV_FLAGS: c_int = libc::MSG_CMSG_CLOEXEC;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const RECV_FLAGS: c_int = 0;

/// Sets or removes the readiness variables.
///
/// # Safety
/// The caller holds `SERIAL`, so no other thread of this process reads or
/// changes the environment meanwhile.
unsafe fn set_env(ready_fd: Option<&str>, notify_socket: Option<&str>) {
    for (name, value) in [
        ("TOKENPIPE_READY_FD", ready_fd),
        ("NOTIFY_SOCKET", notify_socket),
    ] {
        // SAFETY: by our contract, nobody else touches the environment.
        unsafe {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

fn env_is_clear() -> bool {
    std::env::var_os("TOKENPIPE_READY_FD").is_none() && std::env::var_os("NOTIFY_SOCKET").is_none()
}

/// A notifier on this crate's token pipe, handed over the way a launcher
/// does it (`TOKENPIPE_READY_FD`), and the pipe's read end. Caller holds
/// `SERIAL`.
fn token_pipe_notifier() -> (Notifier, TokenPipeEnd) {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let fd = writer.into_raw_fd().to_string();
    // SAFETY: the caller holds SERIAL; into_raw_fd gave up the only other
    // owner of the fd.
    let notifier = unsafe {
        set_env(Some(&fd), None);
        Notifier::from_env()
    };
    let notifier = notifier.unwrap().expect("the token pipe channel");
    assert!(!notifier.is_socket());
    (notifier, reader)
}

// ---------------------------------------------------------------------------
// systemd's notify socket

/// What each message puts in its datagram, one datagram per message.
fn check_lines(receiver: &Receiver) {
    let notifier = receiver.notifier();
    assert!(notifier.is_socket());
    notifier.ready().unwrap();
    assert_eq!(receiver.recv(), "READY=1");
    notifier.failed(5).unwrap();
    assert_eq!(receiver.recv(), "ERRNO=5");
    notifier.status("x").unwrap();
    assert_eq!(receiver.recv(), "STATUS=x");
    notifier
        .extend_timeout(Duration::from_millis(1500))
        .unwrap();
    assert_eq!(receiver.recv(), "EXTEND_TIMEOUT_USEC=1500000");
    // The socket is not one-shot: a second READY=1 goes out too.
    notifier.ready().unwrap();
    assert_eq!(receiver.recv(), "READY=1");
    notifier.notify(false).unwrap();
    assert_eq!(receiver.recv(), "ERRNO=5");
}

#[test]
fn ready_failed_status_and_extend_timeout_send_systemds_exact_lines_to_a_path() {
    let _turn = turn();
    check_lines(&Receiver::bind_path());
}

#[test]
#[cfg(target_os = "linux")]
fn an_abstract_notify_socket_gets_the_same_lines() {
    let _turn = turn();
    check_lines(&Receiver::bind_abstract());
}

#[test]
fn status_with_a_line_break_or_a_nul_is_refused_and_sends_nothing() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    // systemd reads both \n and \r as the end of a KEY=VALUE line, so
    // either would forge a READY=1; it drops a message with a NUL whole.
    for (forged, byte) in [
        ("one\nREADY=1", b'\n'),
        ("one\rREADY=1", b'\r'),
        ("one\0two", 0),
    ] {
        assert_eq!(
            notifier.status(forged),
            Err(ReadyError::StatusByte { byte, at: 3 }),
            "{forged:?}"
        );
    }
    // The next datagram is the one sent after: nothing went out before it.
    notifier.status("after").unwrap();
    assert_eq!(receiver.recv(), "STATUS=after");
}

#[test]
fn a_message_to_a_socket_that_is_gone_names_the_socket_and_the_errno() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let addr = NotifyAddr::parse(&receiver.value).unwrap();
    drop(receiver); // closes the socket and removes its file
    assert_eq!(
        notifier.ready(),
        Err(ReadyError::SendFailed {
            addr,
            errno: Errno::from_raw(libc::ENOENT)
        })
    );
}

// ---------------------------------------------------------------------------
// Errors that say what to fix

#[test]
fn refused_status_text_names_the_byte_and_where_it_is() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    for (text, byte, at) in [
        ("one\nREADY=1", "line feed", 3),
        ("\rREADY=1", "carriage return", 0),
        ("one\0two", "NUL", 3),
    ] {
        let said = notifier.status(text).unwrap_err().to_string();
        assert!(
            said.contains(byte) && said.contains(&format!("byte {at}")),
            "{text:?}: {said:?} names the {byte} and its offset {at}"
        );
    }
}

#[test]
fn status_text_too_long_names_its_length_and_the_limit() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let said = receiver
        .notifier()
        .status(&"x".repeat(2000))
        .unwrap_err()
        .to_string();
    assert!(
        said.contains("2000") && said.contains("1017"),
        "{said:?} names the length and the limit"
    );
}

#[test]
fn a_report_that_cannot_be_sent_names_the_socket_and_the_reason() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let path = receiver.path.clone().unwrap();
    drop(receiver);
    let said = notifier.ready().unwrap_err().to_string();
    let enoent = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
    assert!(
        said.contains(path.to_str().unwrap()) && said.contains(&enoent),
        "{said:?} names {path:?} and says {enoent:?}"
    );
    #[cfg(target_os = "linux")]
    {
        let receiver = Receiver::bind_abstract();
        let notifier = receiver.notifier();
        let value = String::from_utf8(receiver.value.clone()).unwrap();
        drop(receiver);
        let said = notifier.ready().unwrap_err().to_string();
        assert!(said.contains(&value), "{said:?} names {value:?}");
    }
}

#[test]
fn a_bad_notify_socket_is_shown_in_the_error_but_only_its_start() {
    let _turn = turn();
    let said = from_env_error(None, Some("relative/notify")).to_string();
    assert!(said.contains("relative/notify"), "{said:?} shows the value");
    let long = format!("run/{}", "n".repeat(300));
    let said = from_env_error(None, Some(&long)).to_string();
    assert!(
        said.contains("run/nnnn"),
        "{said:?} shows the value's start"
    );
    assert!(
        said.len() < 250,
        "{said:?} shows a bounded prefix, not all 304 bytes"
    );
}

// ---------------------------------------------------------------------------
// BARRIER=1

#[test]
fn a_barrier_completes_when_the_receiver_closes_the_fd_it_was_passed() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    std::thread::scope(|s| {
        let manager = s.spawn(|| {
            let (text, fds) = recv_with_fds(&receiver.socket);
            let was_a_pipe = fds.iter().all(|&fd| is_fifo(fd));
            fds.iter().copied().for_each(close);
            (text, fds.len(), was_a_pipe)
        });
        assert_eq!(notifier.barrier(HANG_GUARD), Ok(()));
        let (text, passed, was_a_pipe) = manager.join().unwrap();
        assert_eq!(text, "BARRIER=1");
        assert_eq!(passed, 1, "exactly one fd goes with BARRIER=1");
        assert!(was_a_pipe, "the passed fd is a pipe's write end");
    });
}

#[test]
fn a_barrier_times_out_while_the_receiver_keeps_the_fd_open() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let pipes = common::open_pipe_count();
    std::thread::scope(|s| {
        // Takes the message and holds on to its fd: a manager that has not
        // got that far yet.
        let manager = s.spawn(|| recv_with_fds(&receiver.socket));
        assert_eq!(
            notifier.barrier(Duration::from_millis(100)),
            Err(ReadyError::Channel(Error::TimedOut))
        );
        let (text, fds) = manager.join().unwrap();
        assert_eq!(text, "BARRIER=1");
        fds.into_iter().for_each(close);
    });
    // The barrier's own read end was closed on the way out.
    assert_eq!(common::open_pipe_count(), pipes);
}

#[test]
fn a_barrier_to_a_socket_that_is_gone_fails_at_once_and_leaks_nothing() {
    let _turn = turn();
    let pipes = common::open_pipe_count();
    // The socket closed and its file removed: ENOENT.
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let addr = NotifyAddr::parse(&receiver.value).unwrap();
    drop(receiver);
    assert_eq!(
        notifier.barrier(HANG_GUARD),
        Err(ReadyError::SendFailed {
            addr,
            errno: Errno::from_raw(libc::ENOENT)
        })
    );
    // The socket closed, its file left behind: ECONNREFUSED.
    let mut receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let addr = NotifyAddr::parse(&receiver.value).unwrap();
    let path = receiver.path.take().unwrap();
    drop(receiver); // closes the socket; its file stays
    assert_eq!(
        notifier.barrier(HANG_GUARD),
        Err(ReadyError::SendFailed {
            addr,
            errno: Errno::from_raw(libc::ECONNREFUSED)
        })
    );
    let _ = std::fs::remove_file(path);
    assert_eq!(common::open_pipe_count(), pipes);
}

#[test]
fn a_barrier_on_a_pipe_or_fd_is_immediate() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    assert_eq!(notifier.barrier(HANG_GUARD), Ok(()));
    // Nothing was written: the pipe is still empty and open.
    reader.set_nonblocking(true).unwrap();
    assert_eq!(reader.token_read(), Err(Error::WouldBlock));
}

// ---------------------------------------------------------------------------
// After "ready": stopping, reloading, the watchdog, MAINPID, checked lines

/// `CLOCK_MONOTONIC` now, in microseconds, as the test reads it itself.
fn monotonic_usec() -> u64 {
    let mut ts = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is valid for writes of one timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) },
        0
    );
    // SAFETY: clock_gettime returned 0, so it filled `ts` in.
    let ts = unsafe { ts.assume_init() };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[test]
fn stopping_watchdog_main_pid_and_checked_lines_send_systemds_exact_datagrams() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    notifier.stopping().unwrap();
    assert_eq!(receiver.recv(), "STOPPING=1");
    notifier.watchdog().unwrap();
    assert_eq!(receiver.recv(), "WATCHDOG=1");
    notifier.watchdog_trigger().unwrap();
    assert_eq!(receiver.recv(), "WATCHDOG=trigger");
    notifier.main_pid(4242).unwrap();
    assert_eq!(receiver.recv(), "MAINPID=4242");
    notifier.main_pid(i32::MAX).unwrap();
    assert_eq!(receiver.recv(), "MAINPID=2147483647");
    notifier.notify_kv("EXIT_STATUS", "3").unwrap();
    assert_eq!(receiver.recv(), "EXIT_STATUS=3");
    notifier.notify_kv("X_1", "").unwrap();
    assert_eq!(receiver.recv(), "X_1=");
    // The longest line that fits one message goes out whole.
    let longest = "v".repeat(1024 - "K=".len());
    notifier.notify_kv("K", &longest).unwrap();
    assert_eq!(receiver.recv(), format!("K={longest}"));
}

#[test]
fn reloading_sends_reloading_and_the_monotonic_clock_in_one_datagram() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let before = monotonic_usec();
    notifier.reloading().unwrap();
    let after = monotonic_usec();
    let got = receiver.recv();
    let usec = got
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{got:?} is RELOADING=1 and MONOTONIC_USEC= in one datagram"));
    let usec: u64 = usec.parse().expect("decimal microseconds, nothing after");
    assert!(
        (before..=after).contains(&usec),
        "{usec} is CLOCK_MONOTONIC between {before} and {after}"
    );
}

#[test]
fn a_bad_key_value_or_pid_is_refused_names_the_key_and_sends_nothing() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let (pipe_notifier, reader) = token_pipe_notifier();
    let (socket_notifier, none) = (receiver.notifier(), Notifier::none());
    // Borrowed, so that the pipe stays open until the check at the end.
    for notifier in [&socket_notifier, &pipe_notifier, &none] {
        for key in ["", "READY=1\nX", "A=B", "X\n", "lower", "A B"] {
            let got = notifier.notify_kv(key, "1");
            let Err(ReadyError::BadKey { key: kept }) = got else {
                panic!("{notifier:?}: key {key:?} gave {got:?}");
            };
            assert_eq!(kept.as_bytes(), key.as_bytes());
            let said = got.unwrap_err().to_string();
            assert!(
                said.contains(&format!("{key:?}")),
                "{said:?} names the key {key:?}"
            );
        }
        for (value, byte, at) in [
            ("x\nREADY=1", b'\n', 1),
            ("\rREADY=1", b'\r', 0),
            ("a\0", 0, 1),
        ] {
            let got = notifier.notify_kv("STATUS", value);
            assert!(
                matches!(got, Err(ReadyError::BadValue { key, byte: b, at: a })
                    if key.as_bytes() == b"STATUS" && b == byte && a == at),
                "{value:?} gave {got:?}"
            );
            let said = got.unwrap_err().to_string();
            assert!(
                said.contains("STATUS") && said.contains(&format!("byte {at}")),
                "{said:?} names the key and where"
            );
        }
        let long = "v".repeat(1024 - "K=".len() + 1);
        let got = notifier.notify_kv("K", &long);
        assert!(
            matches!(
                got,
                Err(ReadyError::ValueTooLong {
                    len: 1023,
                    max: 1022,
                    ..
                })
            ),
            "{got:?}"
        );
        for pid in [0, -1, i32::MIN] {
            assert_eq!(notifier.main_pid(pid), Err(ReadyError::BadPid { pid }));
            let said = ReadyError::BadPid { pid }.to_string();
            assert!(said.contains(&format!("MAINPID={pid}")), "{said:?}");
        }
    }
    // Nothing reached the socket: the next datagram is the one sent after.
    receiver.notifier().stopping().unwrap();
    assert_eq!(receiver.recv(), "STOPPING=1");
    // Nor the pipe.
    reader.set_nonblocking(true).unwrap();
    assert_eq!(reader.token_read(), Err(Error::WouldBlock));
}

#[test]
fn fd_store_sends_fdstore_and_the_name_with_the_fd_attached() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let notifier = receiver.notifier();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    notifier.fd_store(writer.as_raw_fd(), "conn-7").unwrap();
    let (text, fds) = recv_with_fds(&receiver.socket);
    assert_eq!(text, "FDSTORE=1\nFDNAME=conn-7");
    assert_eq!(fds.len(), 1, "exactly the one fd");
    // The copy the manager got is the same pipe: a token through it
    // reaches our read end.
    // SAFETY: recvmsg gave us this fd; nothing else owns it.
    let stored = unsafe { TokenPipeEnd::from_raw_fd(fds[0]) };
    stored.token_write(9).unwrap();
    assert_eq!(reader.token_read(), Ok(9));
    for bad in ["", "a:b", "a\nb", "caf\u{e9}", &"n".repeat(256)] {
        let got = notifier.fd_store(writer.as_raw_fd(), bad);
        assert!(
            matches!(got, Err(ReadyError::BadFdName { name }) if name.as_bytes().starts_with(&bad.as_bytes()[..bad.len().min(64)])),
            "{bad:?} gave {got:?}"
        );
    }
    notifier
        .fd_store(writer.as_raw_fd(), &"n".repeat(255))
        .unwrap();
    let (text, fds) = recv_with_fds(&receiver.socket);
    // (recv_with_fds keeps the first 256 bytes.)
    assert!(text.starts_with("FDSTORE=1\nFDNAME=nnnn"), "{text:?}");
    fds.into_iter().for_each(close);
    // On the pipe and for none: nothing, Ok.
    assert_eq!(Notifier::none().fd_store(writer.as_raw_fd(), "x"), Ok(()));
}

/// Every report that only the socket carries, each of which must be a
/// no-op returning `Ok` on `notifier`.
fn socket_only_reports(notifier: &Notifier) {
    assert_eq!(notifier.stopping(), Ok(()));
    assert_eq!(notifier.reloading(), Ok(()));
    assert_eq!(notifier.watchdog(), Ok(()));
    assert_eq!(notifier.watchdog_trigger(), Ok(()));
    assert_eq!(notifier.main_pid(4242), Ok(()));
    assert_eq!(notifier.notify_kv("EXIT_STATUS", "3"), Ok(()));
    assert_eq!(notifier.fd_store(0, "stdin"), Ok(()));
}

#[test]
fn the_services_life_is_a_no_op_on_the_token_pipe_before_and_after_the_report() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    socket_only_reports(&notifier);
    reader.set_nonblocking(true).unwrap();
    assert_eq!(
        reader.token_read(),
        Err(Error::WouldBlock),
        "nothing written"
    );
    reader.set_nonblocking(false).unwrap();
    notifier.ready().unwrap();
    socket_only_reports(&notifier);
    assert_eq!(reader.token_read(), Ok(1));
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
fn the_services_life_is_a_no_op_on_a_notification_fd_before_and_after_the_report() {
    let _turn = turn();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    // SAFETY: into_raw_fd gave up the only other owner.
    let notifier = unsafe { Notifier::from_fd(writer.into_raw_fd()) }.unwrap();
    socket_only_reports(&notifier);
    notifier.ready().unwrap();
    socket_only_reports(&notifier);
    assert_eq!(
        reader.token_read(),
        Ok(b'\n'),
        "the newline and nothing before it"
    );
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
fn the_notifier_that_does_nothing_takes_every_report_and_hands_on_nothing() {
    let _turn = turn();
    let notifier = Notifier::none();
    assert!(notifier.is_none() && !notifier.is_socket());
    assert_eq!(format!("{notifier:?}"), "Notifier::None");
    socket_only_reports(&notifier);
    assert_eq!(notifier.status("loading"), Ok(()));
    assert_eq!(
        notifier.status("a\nREADY=1"),
        Err(ReadyError::StatusByte { byte: b'\n', at: 1 }),
        "checked as on every channel"
    );
    assert_eq!(notifier.extend_timeout(Duration::from_secs(1)), Ok(()));
    assert_eq!(notifier.ready(), Ok(()));
    assert_eq!(notifier.failed(5), Ok(()));
    assert_eq!(
        notifier.ready(),
        Ok(()),
        "not one-shot: there is nothing to close"
    );
    assert_eq!(notifier.barrier(HANG_GUARD), Ok(()));
    assert!(notifier.into_end().is_none());
    // What from_env's users write when nothing was offered.
    // SAFETY: we hold SERIAL.
    let found = unsafe {
        set_env(None, None);
        Notifier::from_env()
    };
    assert!(found.unwrap().unwrap_or_else(Notifier::none).is_none());
}

// ---------------------------------------------------------------------------
// from_env

#[test]
fn from_env_prefers_the_token_pipe_over_notify_socket_and_unsets_both() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.set_inheritable(true).unwrap();
    let fd = writer.into_raw_fd();
    let value = std::str::from_utf8(&receiver.value).unwrap();
    // SAFETY: we hold SERIAL; into_raw_fd gave up the other owner.
    let notifier = unsafe {
        set_env(Some(&fd.to_string()), Some(value));
        Notifier::from_env()
    };
    let notifier = notifier.unwrap().expect("a channel");
    assert!(!notifier.is_socket(), "the token pipe wins");
    assert!(env_is_clear(), "both variables are removed");
    assert_eq!(
        common::fd_flags(fd).map(|f| f & libc::FD_CLOEXEC),
        Ok(libc::FD_CLOEXEC),
        "the pipe is close-on-exec again"
    );
    notifier.ready().unwrap();
    assert_eq!(reader.token_read(), Ok(1));
    // The socket heard nothing: the next datagram is one we send now.
    receiver.notifier().status("only this").unwrap();
    assert_eq!(receiver.recv(), "STATUS=only this");
}

#[test]
fn from_env_takes_notify_socket_when_alone_and_unsets_it() {
    let _turn = turn();
    let receiver = Receiver::bind_path();
    let value = std::str::from_utf8(&receiver.value).unwrap();
    // SAFETY: we hold SERIAL.
    let notifier = unsafe {
        set_env(None, Some(value));
        Notifier::from_env()
    };
    let notifier = notifier.unwrap().expect("a channel");
    assert!(notifier.is_socket());
    assert!(env_is_clear());
    notifier.ready().unwrap();
    assert_eq!(receiver.recv(), "READY=1");
}

#[test]
fn from_env_is_none_when_neither_variable_is_set() {
    let _turn = turn();
    // SAFETY: we hold SERIAL.
    let found = unsafe {
        set_env(None, None);
        Notifier::from_env()
    };
    assert!(matches!(found, Ok(None)));
}

/// `from_env` with these values: its error, having checked that the
/// variables are still set and every fd still open.
fn from_env_error(ready_fd: Option<&str>, notify_socket: Option<&str>) -> ReadyError {
    // SAFETY: our callers hold SERIAL.
    let found = unsafe {
        set_env(ready_fd, notify_socket);
        Notifier::from_env()
    };
    let error = found.expect_err("an error");
    assert_eq!(
        std::env::var("TOKENPIPE_READY_FD").ok().as_deref(),
        ready_fd,
        "left as it was"
    );
    assert_eq!(
        std::env::var("NOTIFY_SOCKET").ok().as_deref(),
        notify_socket,
        "left as it was"
    );
    // SAFETY: as above.
    unsafe { set_env(None, None) };
    error
}

#[test]
fn from_env_names_what_is_wrong_with_each_bad_value_and_changes_nothing() {
    let _turn = turn();
    for bad in ["relative/notify", ""] {
        match from_env_error(None, Some(bad)) {
            ReadyError::BadNotifySocket(value) => assert_eq!(value.as_bytes(), bad.as_bytes()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let long = format!("/{}", "n".repeat(200));
    assert_eq!(from_env_error(None, Some(&long)), ReadyError::PathTooLong);

    assert_eq!(
        from_env_error(Some("three"), None),
        ReadyError::Handoff(HandoffError::Malformed)
    );
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let closed = writer.into_raw_fd();
    close(closed);
    assert_eq!(
        from_env_error(Some(&closed.to_string()), None),
        ReadyError::Handoff(HandoffError::NotOpen { fd: closed })
    );
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = file.as_raw_fd();
    assert_eq!(
        from_env_error(Some(&fd.to_string()), None),
        ReadyError::Handoff(HandoffError::NotAPipe { fd })
    );
    let id = common::identity(fd).unwrap();
    // A bad token pipe is an error even beside a good NOTIFY_SOCKET: the
    // launcher that set it is waiting on the pipe, not the socket.
    assert_eq!(
        from_env_error(Some(&fd.to_string()), Some("/run/systemd/notify")),
        ReadyError::Handoff(HandoffError::NotAPipe { fd })
    );
    assert!(common::still_refers_to(fd, id), "the file was not closed");
    drop((reader, file));
}

/// Run normally, this does nothing. Re-run by the test below with
/// `TOKENPIPE_TEST_STDIO` set and its stdin, stdout and stderr on pipes,
/// it offers `from_env` each of them through `TOKENPIPE_READY_FD`, as a
/// stale variable would.
#[test]
fn child_mode_offers_its_stdio_to_from_env() {
    if std::env::var_os("TOKENPIPE_TEST_STDIO").is_none() {
        return;
    }
    let _turn = turn();
    let mut wrong = Vec::new();
    for fd in 0..=2 {
        let flags = common::fd_flags(fd);
        let id = common::identity(fd).expect("stdio is open");
        // SAFETY: we hold SERIAL and run alone (--exact); if from_env took
        // the fd (the bug), the notifier is forgotten below, not dropped.
        let found = unsafe {
            set_env(Some(&fd.to_string()), None);
            Notifier::from_env()
        };
        match found {
            Ok(notifier) => {
                wrong.push(format!("fd {fd} was taken as the channel"));
                // Never closed: the harness still writes to stdout.
                std::mem::forget(notifier);
            }
            Err(e) => {
                if e != (ReadyError::StdioFd { fd }) {
                    wrong.push(format!("fd {fd}: refused as {e:?}"));
                }
                let text = e.to_string();
                if !text.contains("TOKENPIPE_READY_FD") || !text.contains(&fd.to_string()) {
                    wrong.push(format!(
                        "fd {fd}: {text:?} names neither the variable nor the fd"
                    ));
                }
            }
        }
        if std::env::var("TOKENPIPE_READY_FD").ok() != Some(fd.to_string()) {
            wrong.push(format!("fd {fd}: the variable was changed"));
        }
        if common::fd_flags(fd) != flags || !common::still_refers_to(fd, id) {
            wrong.push(format!("fd {fd}: the fd was changed or closed"));
        }
    }
    // SAFETY: as above.
    unsafe { set_env(None, None) };
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn from_env_refuses_stdin_stdout_and_stderr_even_when_they_are_pipes() {
    let _turn = turn();
    // A fresh process whose stdio are all pipes (stdin a read end, stdout
    // and stderr write ends), the way a launcher's pipeline starts one.
    let out = common::this_test_binary("child_mode_offers_its_stdio_to_from_env")
        .env("TOKENPIPE_TEST_STDIO", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run this test binary again");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn from_env_and_from_fd_refuse_a_read_end_and_change_nothing() {
    let _turn = turn();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    // Inheritable, so that "nothing changed" can see close-on-exec not set.
    reader.set_inheritable(true).unwrap();
    let fd = reader.as_raw_fd();
    let id = common::identity(fd).unwrap();
    let flags = common::fd_flags(fd);

    let refused = from_env_error(Some(&fd.to_string()), None);
    assert_eq!(
        refused,
        ReadyError::ReadOnly {
            fd,
            variable: Some("TOKENPIPE_READY_FD")
        }
    );
    let refused = refused.to_string();
    assert!(
        refused.contains("TOKENPIPE_READY_FD") && refused.contains(&fd.to_string()),
        "{refused:?} names the variable and the fd"
    );
    assert!(
        refused.contains("read"),
        "{refused:?} says it is a read end"
    );
    // SAFETY: on error from_fd takes nothing; on success (the bug) the
    // notifier is forgotten, so the reader still owns the fd.
    match unsafe { Notifier::from_fd(fd) } {
        Ok(notifier) => {
            std::mem::forget(notifier);
            panic!("from_fd took a read end");
        }
        Err(e) => {
            assert_eq!(e, ReadyError::ReadOnly { fd, variable: None });
            let text = e.to_string();
            assert!(
                text.contains(&fd.to_string()) && text.contains("read"),
                "{text:?} names the fd and says it is a read end"
            );
        }
    }
    assert!(
        common::still_refers_to(fd, id),
        "the read end was not closed"
    );
    assert_eq!(common::fd_flags(fd), flags, "its fd flags were not changed");
    drop((reader, writer));
}

// ---------------------------------------------------------------------------
// from_fd: the s6-style notification fd

#[test]
fn from_fd_rejects_a_closed_fd_and_a_regular_file_and_closes_neither() {
    let _turn = turn();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let closed = writer.into_raw_fd();
    close(closed);
    // SAFETY: the number is closed; from_fd must only look at it.
    let got = unsafe { Notifier::from_fd(closed) };
    assert_eq!(got.err(), Some(ReadyError::NotOpen { fd: closed }));

    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = file.as_raw_fd();
    let id = common::identity(fd).unwrap();
    // SAFETY: on error from_fd takes nothing; on success (a bug) the
    // notifier's drop would close the file's fd, which the check below
    // would see.
    let got = unsafe { Notifier::from_fd(fd) };
    assert_eq!(got.err(), Some(ReadyError::NotAPipeOrSocket { fd }));
    assert!(common::still_refers_to(fd, id), "the file was not closed");
    drop((reader, file));
}

#[test]
fn from_fd_accepts_a_pipe_and_a_socketpair_end_and_makes_them_close_on_exec() {
    let _turn = turn();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    writer.set_inheritable(true).unwrap();
    let fd = writer.into_raw_fd();
    // SAFETY: into_raw_fd gave up the only other owner.
    let notifier = unsafe { Notifier::from_fd(fd) }.expect("a pipe is accepted");
    assert_eq!(
        common::fd_flags(fd).map(|f| f & libc::FD_CLOEXEC),
        Ok(libc::FD_CLOEXEC)
    );
    notifier.ready().unwrap();
    assert_eq!(reader.token_read(), Ok(b'\n'));
    assert_eq!(reader.token_read(), Err(Error::Eos));

    let (mut supervisor, daemon) = UnixStream::pair().unwrap();
    // SAFETY: into_raw_fd gave up the only other owner.
    let notifier =
        unsafe { Notifier::from_fd(daemon.into_raw_fd()) }.expect("a socket is accepted");
    notifier.ready().unwrap();
    let mut got = Vec::new();
    supervisor.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"\n", "a newline, then end of stream");
}

#[test]
fn a_notification_fd_gets_a_newline_then_end_of_stream_on_ready() {
    let _turn = turn();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    // SAFETY: into_raw_fd gave up the only other owner.
    let notifier = unsafe { Notifier::from_fd(writer.into_raw_fd()) }.unwrap();
    // No text and no timeouts on this channel: no-ops that write nothing.
    assert_eq!(notifier.status("loading"), Ok(()));
    assert_eq!(notifier.extend_timeout(Duration::from_secs(9)), Ok(()));
    notifier.ready().unwrap();
    assert_eq!(reader.token_read(), Ok(b'\n'));
    assert_eq!(reader.token_read(), Err(Error::Eos));
    // One-shot: every report after is Closed; a status is a no-op.
    assert_eq!(notifier.ready(), Err(ReadyError::Channel(Error::Closed)));
    assert_eq!(notifier.failed(5), Err(ReadyError::Channel(Error::Closed)));
    assert_eq!(notifier.status("x"), Ok(()));
}

#[test]
fn a_notification_fd_gets_only_end_of_stream_on_failed() {
    let _turn = turn();
    let (reader, writer) = TokenPipe::make().unwrap().split();
    // SAFETY: into_raw_fd gave up the only other owner.
    let notifier = unsafe { Notifier::from_fd(writer.into_raw_fd()) }.unwrap();
    notifier.failed(libc::EIO).unwrap();
    assert_eq!(
        reader.token_read(),
        Err(Error::Eos),
        "no newline, just the close"
    );
    assert_eq!(notifier.ready(), Err(ReadyError::Channel(Error::Closed)));
}

// ---------------------------------------------------------------------------
// This crate's token pipe

#[test]
fn the_token_pipe_gets_token_1_then_end_of_stream_on_ready() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    notifier.ready().unwrap();
    assert_eq!(reader.token_read(), Ok(1));
    assert_eq!(reader.token_read(), Err(Error::Eos));
    assert_eq!(notifier.ready(), Err(ReadyError::Channel(Error::Closed)));
    assert_eq!(notifier.failed(5), Err(ReadyError::Channel(Error::Closed)));
    assert_eq!(
        notifier.extend_timeout(Duration::from_secs(1)),
        Err(ReadyError::Channel(Error::Closed))
    );
}

#[test]
fn the_token_pipe_gets_token_0_and_the_errno_then_end_of_stream_on_failed() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    notifier.failed(5).unwrap();
    let mut got = [0u8; 16];
    let mut n = 0;
    loop {
        match reader.read_tokens(&mut got[n..]) {
            Ok(k) => n += k,
            Err(Error::Eos) => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    let mut want = vec![0u8];
    want.extend_from_slice(&5i32.to_ne_bytes());
    assert_eq!(&got[..n], &want[..]);
    assert_eq!(notifier.failed(5), Err(ReadyError::Channel(Error::Closed)));
}

#[test]
fn the_token_pipe_gets_token_2_and_the_microseconds_and_stays_open_on_extend_timeout() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    notifier
        .extend_timeout(Duration::from_millis(1500))
        .unwrap();
    let mut got = [0u8; 9];
    assert_eq!(reader.read_tokens(&mut got), Ok(9), "one write, read whole");
    let mut want = vec![2u8];
    want.extend_from_slice(&1_500_000u64.to_ne_bytes());
    assert_eq!(&got[..], &want[..]);
    // Still open: the report comes after.
    notifier.ready().unwrap();
    assert_eq!(reader.token_read(), Ok(1));
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

/// `status` on this crate's pipe: token 3, the text's length as a native
/// `u16`, the text, in one `write`, so a reader sees it whole.
fn status_message(text: &str) -> Vec<u8> {
    let mut message = vec![3u8];
    message.extend_from_slice(&(text.len() as u16).to_ne_bytes());
    message.extend_from_slice(text.as_bytes());
    message
}

/// The next message of `len` bytes: its first byte as soon as it comes
/// (`TimedOut` after a second if none does), then the rest in one read,
/// which gets all of it only if it was written in one go.
fn next_message(reader: &TokenPipeEnd, len: usize) -> Result<Vec<u8>, Error> {
    let first = reader.token_read_timeout(Duration::from_secs(1))?;
    let mut got = vec![0u8; len + 8];
    got[0] = first;
    let n = if len > 1 {
        reader.read_tokens(&mut got[1..])?
    } else {
        0
    };
    got.truncate(1 + n);
    Ok(got)
}

#[test]
fn the_token_pipe_gets_token_3_the_length_and_the_text_in_one_write_on_status() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    for text in ["loaded 3 wallets", "", "caf\u{e9} \u{2713}"] {
        notifier.status(text).unwrap();
        let want = status_message(text);
        assert_eq!(
            next_message(&reader, want.len()),
            Ok(want),
            "{text:?}: one write, read whole"
        );
    }
    // Still open: the report comes after.
    notifier.ready().unwrap();
    assert_eq!(reader.token_read(), Ok(1));
    assert_eq!(reader.token_read(), Err(Error::Eos));
    // After the report: a status is a no-op, and writes nothing anywhere.
    assert_eq!(notifier.status("late"), Ok(()));
    assert_eq!(reader.token_read(), Err(Error::Eos));
}

#[test]
fn status_on_the_token_pipe_refuses_what_the_socket_refuses_and_writes_nothing() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    assert_eq!(
        notifier.status("one\nREADY=1"),
        Err(ReadyError::StatusByte { byte: b'\n', at: 3 })
    );
    assert_eq!(
        notifier.status("\r"),
        Err(ReadyError::StatusByte { byte: b'\r', at: 0 })
    );
    assert_eq!(
        notifier.status("a\0"),
        Err(ReadyError::StatusByte { byte: 0, at: 1 })
    );
    // The most a pipe carries whole, less the token and the length; never
    // more than the socket's 1017.
    let max = 1017.min(tokenpipe::PIPE_BUF - 3);
    assert_eq!(
        notifier.status(&"x".repeat(max + 1)),
        Err(ReadyError::StatusTooLong { len: max + 1, max })
    );
    reader.set_nonblocking(true).unwrap();
    assert_eq!(
        reader.token_read(),
        Err(Error::WouldBlock),
        "nothing written"
    );
    reader.set_nonblocking(false).unwrap();
    let longest = "y".repeat(max);
    notifier.status(&longest).unwrap();
    let want = status_message(&longest);
    assert_eq!(next_message(&reader, want.len()), Ok(want));
}

#[test]
fn into_end_gives_the_pipe_once_and_nothing_for_a_socket() {
    let _turn = turn();
    let (notifier, reader) = token_pipe_notifier();
    let end = notifier.into_end().expect("the pipe's write end");
    end.token_write(1).unwrap();
    assert_eq!(reader.token_read(), Ok(1));
    let receiver = Receiver::bind_path();
    assert!(receiver.notifier().into_end().is_none());
}

// ---------------------------------------------------------------------------
// fork_daemon's launcher and requests for more time

#[test]
fn wait_ready_timeout_sees_a_daemon_that_asked_twice_for_more_time_as_ready() {
    let _turn = turn();
    // The daemon asks for `extra` twice, `pause` apart, and reports `pause`
    // after the second request: about 2 × pause = 700 ms after the first
    // one. The first extension alone ends at about `extra` = 500 ms after
    // it, so the report is heard only if the second (ending ~850 ms) was
    // honoured too; and each pause outlasts `original`, so neither request
    // can be dropped.
    let original = Duration::from_millis(100);
    let extra = Duration::from_millis(500);
    let pause = Duration::from_millis(350);
    let (asked_reader, asked_writer) = TokenPipe::make().unwrap().split();
    // SAFETY: the harness has other threads, but the child makes only
    // async-signal-safe calls (write, nanosleep, close) and leaves with
    // _exit, as tests/daemon_module_handshake.rs explains.
    let mut daemon = match unsafe { fork_daemon(DaemonOptions::new()) } {
        Ok(Forked::Parent(daemon)) => daemon,
        Ok(Forked::Child(child)) => {
            let n = child.notifier;
            // The first request is in the pipe before the launcher starts
            // its clock; the report comes well after the original timeout.
            let ok = n.extend_timeout(extra).is_ok()
                && asked_writer.token_write(1).is_ok()
                && {
                    std::thread::sleep(pause);
                    n.extend_timeout(extra).is_ok()
                }
                && {
                    std::thread::sleep(pause);
                    n.ready().is_ok()
                };
            exit_now(if ok { 0 } else { 1 })
        }
        Err(e) => panic!("fork_daemon: {e}"),
    };
    drop(asked_writer);
    assert_eq!(asked_reader.token_read(), Ok(1), "the daemon asked once");
    assert_eq!(daemon.wait_ready_timeout(original), Ok(true));
    assert_eq!(daemon.wait(), Ok(ChildExit::Exited(0)));
}
