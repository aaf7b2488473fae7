//! Decides, once per target, which parts of the crate the platform can
//! carry, and tells the compiler with `cfg` flags, so that no `target_os`
//! list is repeated across the sources. Each flag below names a capability;
//! the table in `capabilities` gives each OS its set, with the reason next
//! to every departure from the POSIX baseline. The reasons come from the
//! platform's own documentation and from what the `libc` crate binds there
//! (`ci/check-targets.sh` type-checks every OS named here).
//!
//! The flags (all private to this crate):
//!
//! - `tokenpipe_sys`: the platform has pipes and this crate knows where its
//!   libc keeps `errno`: the whole core API exists. Without it the crate is
//!   an empty library (no OS, or no libc binding for one).
//! - `tokenpipe_errno = "<function>"`: the libc function that returns the
//!   calling thread's `errno` location; `errnoGet` on VxWorks, which has
//!   getter and setter functions instead.
//! - `tokenpipe_pipe2`: `pipe2(O_CLOEXEC)` makes both ends close-on-exec
//!   atomically; otherwise `pipe` then `fcntl(F_SETFD)`.
//! - `tokenpipe_cloexec`: the platform can start programs, so close-on-exec
//!   matters and can be set; where nothing can be executed (ESP-IDF,
//!   Horizon, Vita) there is no flag to set and the fallback skips it, as
//!   std does there.
//! - `tokenpipe_fionbio`: `ioctl(FIONBIO)` sets non-blocking mode in one
//!   call; otherwise `fcntl(F_GETFL)` + `fcntl(F_SETFL)`.
//! - `tokenpipe_nosigpipe`: `fcntl(F_SETNOSIGPIPE)` (Apple, NetBSD).
//! - `tokenpipe_sigmask`: SIGPIPE can be blocked per thread and a pending
//!   one taken back (`pthread_sigmask`, `sigpending`): the other way to a
//!   SIGPIPE-free write. Without either, a write to a pipe with no reader
//!   raises no signal on that platform, and `token_write_nosignal` is a
//!   plain write.
//! - `tokenpipe_sigtimedwait`: the pending SIGPIPE is taken with a
//!   zero-timeout `sigtimedwait`; otherwise with `sigwait`, reached only
//!   with one pending.
//! - `tokenpipe_pollnval`: `poll` marks an fd that is not open with
//!   `POLLNVAL`, and the libc crate binds the constant. Not on ESP-IDF,
//!   whose libc binding has no `POLLNVAL`: a timed read of a closed fd
//!   there learns it from the read's `EBADF` instead.
//! - `tokenpipe_fork`: `fork`, `setsid`, `waitpid` and `kill` exist and
//!   work: the `daemon` module, `ChildExit` and the std launcher.
//! - `tokenpipe_sigaction` (where `tokenpipe_fork` is): `sigaction`,
//!   `raise` and `pthread_atfork`, for `SignalInterrupt::install`.
//! - `tokenpipe_sa_restart`: the libc binding has `SA_RESTART` (all those
//!   but QNX Neutrino).
//! - `tokenpipe_exec`: programs can be executed, so an end can be handed to
//!   one through the environment (`from_env`, `pass_to`).
//! - `tokenpipe_unix_socket`: Unix-domain datagram sockets with
//!   `sendmsg`/`recvmsg` and `SCM_RIGHTS`: systemd's notify socket.
//! - `tokenpipe_sock_cloexec`: `socket` takes `SOCK_CLOEXEC`; otherwise
//!   (Apple, AIX) `fcntl(F_SETFD)` right after.
//! - `tokenpipe_record_locks`: `fcntl(F_SETLK)` record locks: pid files.
//! - `tokenpipe_cmsg_cloexec`: `recvmsg` takes `MSG_CMSG_CLOEXEC`, so fds
//!   passed to the launcher's socket are close-on-exec from the first
//!   instant (Linux, Android, FreeBSD, NetBSD, OpenBSD, DragonFly).
//! - `tokenpipe_heapless`: the `heapless` crate builds here (everywhere but
//!   AIX, where its dependency byteorder does not), so the two functions
//!   with `heapless` types in their signatures exist.
//! - `tokenpipe_pass_to` (with the `std` feature and `tokenpipe_exec`):
//!   handing an end to a `std::process::Command` (`pass_to`).
//! - `tokenpipe_launch` (with `std`, fork, exec and Unix sockets): the
//!   launcher, `ready::launch`, and the socket calls only it makes.
//! - `tokenpipe_linux_like`: the Linux kernel's own interfaces (pidfds,
//!   `SO_PASSCRED`, `MSG_CMSG_CLOEXEC`, vsock), on Linux and Android.
//!
//! One flag this script never sets, only declares: `tokenpipe_force_no_pidfd`,
//! given by hand (`RUSTFLAGS="--cfg tokenpipe_force_no_pidfd"`, as
//! `ci/no-pidfd.sh` does) to make Linux answer every `pidfd_open` with
//! `ENOSYS`, as a kernel before 5.3 would, so that the branches every other
//! Unix takes are run, not only type-checked.
use std::env;

/// Every flag this script may set, for `rustc --check-cfg`, and
/// `tokenpipe_loom`, which it never sets: `RUSTFLAGS="--cfg tokenpipe_loom"`
/// builds the crate on loom's atomics for the model checker (ci/loom.sh).
const FLAGS: &[&str] = &[
    "tokenpipe_loom",
    "tokenpipe_sys",
    "tokenpipe_pipe2",
    "tokenpipe_cloexec",
    "tokenpipe_fionbio",
    "tokenpipe_nosigpipe",
    "tokenpipe_sigmask",
    "tokenpipe_sigtimedwait",
    "tokenpipe_pollnval",
    "tokenpipe_fork",
    "tokenpipe_sigaction",
    "tokenpipe_sa_restart",
    "tokenpipe_exec",
    "tokenpipe_unix_socket",
    "tokenpipe_sock_cloexec",
    "tokenpipe_record_locks",
    "tokenpipe_cmsg_cloexec",
    "tokenpipe_linux_like",
    "tokenpipe_heapless",
    "tokenpipe_pass_to",
    "tokenpipe_launch",
];

/// The values `tokenpipe_errno` may take.
const ERRNO_FNS: &[&str] = &[
    "__errno_location",
    "__errno",
    "__error",
    "___errno",
    "_errnop",
    "__get_errno_ptr",
    "_Errno",
    "errnoGet",
];

/// What one platform offers. `None` for `errno` means no core at all.
struct Caps {
    errno: Option<&'static str>,
    pipe2: bool,
    cloexec: bool,
    fionbio: bool,
    nosigpipe: bool,
    sigmask: bool,
    sigtimedwait: bool,
    pollnval: bool,
    fork: bool,
    exec: bool,
    unix_socket: bool,
    sock_cloexec: bool,
    record_locks: bool,
}

impl Caps {
    /// The POSIX baseline: everything but the optional extensions.
    const fn posix(errno: &'static str) -> Self {
        Caps {
            errno: Some(errno),
            pipe2: false,
            cloexec: true,
            fionbio: false,
            nosigpipe: false,
            sigmask: true,
            sigtimedwait: true,
            pollnval: true,
            fork: true,
            exec: true,
            unix_socket: true,
            sock_cloexec: true,
            record_locks: true,
        }
    }

    const NONE: Caps = Caps {
        errno: None,
        ..Caps::posix("")
    };

    /// No processes at all (one program on a microcontroller or console):
    /// no fork, no exec, no signals to mask.
    const fn single_program(self) -> Self {
        Caps {
            cloexec: false,
            sigmask: false,
            sigtimedwait: false,
            fork: false,
            exec: false,
            ..self
        }
    }
}

fn capabilities(os: &str, env: &str, vendor: &str, arch: &str) -> Caps {
    use Caps as C;
    match os {
        // Linux: pipe2 since 2.6.27, FIONBIO as std uses it. The Linux
        // target without a libc (`*-linux-none`) has no libc binding at all.
        "linux" if env.is_empty() => C::NONE,
        "linux" => Caps {
            pipe2: true,
            fionbio: true,
            ..C::posix("__errno_location")
        },
        // Bionic: as Linux, errno through __errno.
        "android" => Caps {
            pipe2: true,
            fionbio: true,
            ..C::posix("__errno")
        },
        // Apple: pipe2 only on the newest releases (not at run time on older
        // ones, as std notes), so pipe + fcntl; F_SETNOSIGPIPE instead of
        // masking. tvOS and watchOS forbid fork (the libc crate binds none),
        // so no daemon and no launcher there.
        _ if vendor == "apple" => Caps {
            fionbio: true,
            nosigpipe: true,
            sigmask: false,
            sigtimedwait: false,
            fork: !matches!(os, "tvos" | "watchos"),
            exec: !matches!(os, "tvos" | "watchos"),
            sock_cloexec: false,
            ..C::posix("__error")
        },
        "freebsd" => Caps {
            pipe2: true,
            fionbio: true,
            ..C::posix("__error")
        },
        "dragonfly" => Caps {
            pipe2: true,
            fionbio: true,
            ..C::posix("__errno_location")
        },
        // NetBSD: F_SETNOSIGPIPE, as Apple.
        "netbsd" => Caps {
            pipe2: true,
            fionbio: true,
            nosigpipe: true,
            sigmask: false,
            sigtimedwait: false,
            ..C::posix("__errno")
        },
        // OpenBSD has no sigtimedwait (sigwait only).
        "openbsd" => Caps {
            pipe2: true,
            fionbio: true,
            sigtimedwait: false,
            ..C::posix("__errno")
        },
        // illumos and Solaris: FIONBIO sets FNDELAY (the old System V
        // non-blocking mode, where read returns 0, not EAGAIN), so fcntl;
        // the libc crate binds no sigtimedwait there.
        "illumos" | "solaris" => Caps {
            pipe2: true,
            sigtimedwait: false,
            ..C::posix("___errno")
        },
        // Hurd (glibc): pipe2 and sigtimedwait as on Linux; FIONBIO is left
        // to fcntl, which glibc implements with the same io_set_some_openmodes
        // RPC, so it costs nothing more.
        "hurd" => Caps {
            pipe2: true,
            ..C::posix("__errno_location")
        },
        // Redox (relibc): pipe2, no record locks in the libc binding.
        "redox" => Caps {
            pipe2: true,
            record_locks: false,
            ..C::posix("__errno_location")
        },
        // Haiku: no pipe2 in the libc binding; signals, fork and AF_UNIX
        // datagram sockets with SCM_RIGHTS as POSIX asks.
        "haiku" => C::posix("_errnop"),
        // QNX Neutrino: POSIX; no pipe2. libc 0.2 does not build for QNX
        // 8.0 or for 32-bit x86 QNX (as Cargo.toml's condition on it).
        "nto" if env == "nto80" || arch == "x86" => C::NONE,
        "nto" => C::posix("__get_errno_ptr"),
        // Cygwin: pipe2 and fork (emulated), POSIX signals and AF_UNIX.
        "cygwin" => Caps {
            pipe2: true,
            ..C::posix("__errno")
        },
        // AIX: POSIX; the libc crate binds neither pipe2 nor SOCK_CLOEXEC
        // there.
        "aix" => Caps {
            sock_cloexec: false,
            ..C::posix("_Errno")
        },
        // Fuchsia: no fork (processes are made with fdio_spawn, which the
        // libc crate does not bind), no record locks; pipes and signals
        // emulated by fdio.
        "fuchsia" => Caps {
            pipe2: true,
            fork: false,
            exec: false,
            unix_socket: false,
            record_locks: false,
            ..C::posix("__errno_location")
        },
        // Emscripten: pipes in the JS runtime; fork and Unix sockets are
        // stubs that fail, so neither the daemon nor the notify socket.
        "emscripten" => Caps {
            pipe2: true,
            fork: false,
            exec: false,
            unix_socket: false,
            ..C::posix("__errno_location")
        },
        // L4Re (uClibc): pipes and signals, but the libc crate binds
        // neither pipe2 nor sigtimedwait there; no fork (L4Re starts tasks
        // through its loader).
        "l4re" => Caps {
            sigtimedwait: false,
            fork: false,
            exec: false,
            ..C::posix("__errno_location")
        },
        // VxWorks: pipes are pipeDrv devices, message queues that outlive
        // their readers, so a write never meets "no reader" and no SIGPIPE
        // is ever raised (no mask needed, and the libc crate binds neither
        // sigtimedwait nor sigwait there); no fork (rtpSpawn); errno
        // through errnoGet/errnoSet.
        "vxworks" => Caps {
            sigmask: false,
            fork: false,
            exec: false,
            unix_socket: false,
            record_locks: false,
            ..C::posix("errnoGet")
        },
        // ESP-IDF (newlib on FreeRTOS), Horizon (3DS) and Vita (newlib):
        // one program, no signals, no Unix-domain sockets, no record locks.
        // ESP-IDF's libc binding also lacks POLLNVAL.
        "espidf" | "horizon" | "vita" => Caps {
            unix_socket: false,
            record_locks: false,
            pollnval: os != "espidf",
            ..C::posix("__errno").single_program()
        },
        // RTEMS (newlib): one program of threads. Its pipe write raises
        // SIGPIPE with kill(getpid()), a process-directed signal that any
        // thread not blocking it takes, so no per-thread mask can hold it
        // back: `token_write_nosignal` is a plain write there, as its docs
        // say, and an RTEMS program that needs EPIPE sets SIG_IGN.
        "rtems" => Caps {
            unix_socket: false,
            record_locks: false,
            ..C::posix("__errno").single_program()
        },
        // NuttX: pipes; tasks, not processes (no fork in the libc binding);
        // its pipe write fails with EPIPE and raises no SIGPIPE.
        "nuttx" => Caps {
            pipe2: true,
            unix_socket: false,
            record_locks: false,
            ..C::posix("__errno").single_program()
        },
        // Anything else (a Unix Rust learned after this crate was written,
        // or one whose libc binding lacks pipes: managarm, LynxOS-178, QuRT):
        // the empty library, and a warning that says so.
        _ => C::NONE,
    }
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for f in FLAGS {
        println!("cargo::rustc-check-cfg=cfg({f})");
    }
    // Set by hand, never here (see the module docs): declared so that a
    // `-D warnings` build with it is clean.
    println!("cargo::rustc-check-cfg=cfg(tokenpipe_force_no_pidfd)");
    // Set by docs.rs (Cargo.toml's docs.rs metadata) and ci/docsrs.sh.
    println!("cargo::rustc-check-cfg=cfg(docsrs)");
    let values: Vec<String> = ERRNO_FNS.iter().map(|v| format!("\"{v}\"")).collect();
    println!(
        "cargo::rustc-check-cfg=cfg(tokenpipe_errno, values({}))",
        values.join(", ")
    );

    let var = |k: &str| env::var(k).unwrap_or_default();
    let os = var("CARGO_CFG_TARGET_OS");
    // As Cargo.toml's condition on the heapless dependency.
    if os != "aix" {
        println!("cargo::rustc-cfg=tokenpipe_heapless");
    }
    let family = var("CARGO_CFG_TARGET_FAMILY");
    if !family.split(',').any(|f| f == "unix") {
        return; // Windows, WASI, bare metal: the empty library.
    }
    let caps = capabilities(
        &os,
        &var("CARGO_CFG_TARGET_ENV"),
        &var("CARGO_CFG_TARGET_VENDOR"),
        &var("CARGO_CFG_TARGET_ARCH"),
    );
    let Some(errno) = caps.errno else {
        println!(
            "cargo::warning=tokenpipe has no pipe support for target_os \"{os}\": \
             it builds as an empty library here"
        );
        return;
    };
    println!("cargo::rustc-cfg=tokenpipe_sys");
    println!("cargo::rustc-cfg=tokenpipe_errno=\"{errno}\"");
    let std = env::var_os("CARGO_FEATURE_STD").is_some();
    let set = [
        ("tokenpipe_pipe2", caps.pipe2),
        ("tokenpipe_cloexec", caps.cloexec),
        ("tokenpipe_fionbio", caps.fionbio),
        ("tokenpipe_nosigpipe", caps.nosigpipe),
        ("tokenpipe_sigmask", caps.sigmask),
        ("tokenpipe_sigtimedwait", caps.sigmask && caps.sigtimedwait),
        ("tokenpipe_pollnval", caps.pollnval),
        ("tokenpipe_fork", caps.fork),
        // Every system that can fork has POSIX signals and sigaction.
        ("tokenpipe_sigaction", caps.fork),
        // The libc binding for QNX Neutrino has no SA_RESTART.
        ("tokenpipe_sa_restart", caps.fork && os != "nto"),
        ("tokenpipe_exec", caps.exec),
        ("tokenpipe_unix_socket", caps.unix_socket),
        ("tokenpipe_sock_cloexec", caps.sock_cloexec),
        ("tokenpipe_record_locks", caps.record_locks),
        (
            "tokenpipe_cmsg_cloexec",
            matches!(
                os.as_str(),
                "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
            ),
        ),
        (
            "tokenpipe_linux_like",
            matches!(os.as_str(), "linux" | "android"),
        ),
        ("tokenpipe_pass_to", std && caps.exec),
        (
            "tokenpipe_launch",
            std && caps.fork && caps.exec && caps.unix_socket,
        ),
    ];
    for (flag, on) in set {
        if on {
            println!("cargo::rustc-cfg={flag}");
        }
    }
}
