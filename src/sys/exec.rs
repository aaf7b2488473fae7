//! Exec from a forked child with an argument list and an environment built
//! before the fork, for what `std::process::Command` cannot express: a
//! variable whose value is the child's own pid (`LISTEN_PID`,
//! `WATCHDOG_PID`), and listening sockets placed at fds 3, 4, ….
//!
//! The plan is built (allocating) in the parent; in the child, between
//! `fork` and `exec`, [`ExecPlan::exec`] only writes digits into space the
//! plan already holds and makes async-signal-safe calls (`getpid`,
//! `fcntl`, `dup2`, `execve`).

use core::ffi::{CStr, c_char, c_int};

use super::Errno;
use super::conv::ret_c_int;

/// A NUL-terminated array of C strings, in memory the array owns, some of
/// which end in a slot filled in the child with its pid.
#[derive(Debug)]
struct CStrArray {
    /// Each string's bytes, NUL included (with room for 20 digits and a
    /// NUL after a pid slot's prefix).
    strings: Vec<Box<[u8]>>,
    /// A pointer to each of `strings` (taken once, as `*mut`, so the
    /// child's writes and `execve`'s reads go through the same pointer),
    /// then a null one.
    ptrs: Vec<*mut c_char>,
    /// Which strings are pid slots, and the length of their prefix.
    pid_slots: Vec<(usize, usize)>,
}

/// Room for the decimal digits of any `pid_t`, and a NUL.
const PID_ROOM: usize = 21;

impl CStrArray {
    fn new(strings: impl IntoIterator<Item = Vec<u8>>, pid_prefixes: &[&[u8]]) -> CStrArray {
        let mut all: Vec<Box<[u8]>> = Vec::new();
        let mut pid_slots = Vec::new();
        for mut s in strings {
            s.push(0);
            all.push(s.into_boxed_slice());
        }
        for prefix in pid_prefixes {
            let mut s = prefix.to_vec();
            s.resize(prefix.len() + PID_ROOM, 0);
            pid_slots.push((all.len(), prefix.len()));
            all.push(s.into_boxed_slice());
        }
        let mut ptrs: Vec<*mut c_char> = all.iter_mut().map(|s| s.as_mut_ptr().cast()).collect();
        ptrs.push(core::ptr::null_mut());
        CStrArray {
            strings: all,
            ptrs,
            pid_slots,
        }
    }

    /// Writes `pid` in decimal into every slot. Allocation-free.
    fn fill_pid(&mut self, pid: libc::pid_t) {
        let mut digits = [0u8; PID_ROOM];
        let mut n = pid.unsigned_abs();
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = &digits[at..];
        for &(index, prefix) in &self.pid_slots {
            let room = self.strings[index].len() - prefix;
            debug_assert!(digits.len() < room);
            let base = self.ptrs[index].cast::<u8>();
            for (i, &d) in digits.iter().enumerate() {
                // SAFETY: `base` points at the string's `prefix + PID_ROOM`
                // bytes, and `prefix + i` is below that (a pid has at most
                // 20 digits); the array alone reaches these bytes.
                unsafe { base.add(prefix + i).write(d) };
            }
            // SAFETY: as above, `prefix + digits.len()` < the length.
            unsafe { base.add(prefix + digits.len()).write(0) };
        }
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr().cast()
    }
}

/// A program to `execve` from a forked child: where to look for it, its
/// arguments, its environment (with pid slots), and fds to place at 3….
#[derive(Debug)]
pub(crate) struct ExecPlan {
    /// The paths to try, in order, as `execvp` tries `PATH`'s entries.
    candidates: Vec<Box<CStr>>,
    argv: CStrArray,
    envp: CStrArray,
    /// Fds to place at 3, 4, … in the child, in order.
    fds: Vec<c_int>,
    /// Scratch for the moves, sized before the fork.
    moved: Vec<c_int>,
    /// Where a failed exec's errno is written (close-on-exec, above every
    /// target): std's own report of it can be lost when the fd it uses sat
    /// where a socket had to go.
    report: c_int,
}

// SAFETY: the raw pointers point into the plan's own heap buffers, which
// move with it; nothing else reaches them. Only `exec` (taking `&mut self`)
// writes through them, in a forked child.
unsafe impl Send for ExecPlan {}
// SAFETY: `&ExecPlan` reads nothing through the pointers.
unsafe impl Sync for ExecPlan {}

impl ExecPlan {
    /// `candidates`: the paths to try; `argv`, `env` (`KEY=VALUE`): the
    /// strings, without NULs (the caller has checked); `pid_vars`: the
    /// names of variables whose value is the child's pid; `fds`: the fds to
    /// place at 3, 4, … (borrowed: the caller keeps them open until the
    /// child has been started).
    pub(crate) fn new(
        candidates: Vec<Box<CStr>>,
        argv: Vec<Vec<u8>>,
        env: Vec<Vec<u8>>,
        pid_vars: &[&[u8]],
        fds: Vec<c_int>,
        report: c_int,
    ) -> ExecPlan {
        let prefixes: Vec<Vec<u8>> = pid_vars.iter().map(|k| [*k, b"="].concat()).collect();
        let prefixes: Vec<&[u8]> = prefixes.iter().map(Vec::as_slice).collect();
        ExecPlan {
            candidates,
            argv: CStrArray::new(argv, &[]),
            envp: CStrArray::new(env, &prefixes),
            moved: vec![-1; fds.len()],
            fds,
            report,
        }
    }

    /// In the child, between `fork` and `exec`: fills in its pid, places
    /// the fds at 3… (not close-on-exec there), and `execve`s each
    /// candidate in turn. Returns only on failure, with the errno to
    /// report (`EACCES` if a candidate was refused so, else the last one),
    /// which it has also written to the plan's report fd.
    ///
    /// Async-signal-safe and allocation-free. Places the fds even when a
    /// source sits where another must go: each is first copied above
    /// every target (close-on-exec), then `dup2`ed into place.
    ///
    /// # References
    /// - [execve, POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/execve.html)
    /// - [execve, Linux](https://man7.org/linux/man-pages/man2/execve.2.html)
    /// - [dup2, POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
    /// - [write, POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
    pub(crate) fn exec(&mut self) -> Errno {
        let failed = self.try_exec();
        let bytes = failed.raw().to_ne_bytes();
        // SAFETY: `bytes` is valid for reads of its length. A pipe write of
        // 4 bytes is atomic; a signal before it moved anything is retried.
        while unsafe { libc::write(self.report, bytes.as_ptr().cast(), bytes.len()) } < 0
            && Errno::last().raw() == libc::EINTR
        {}
        failed
    }

    fn try_exec(&mut self) -> Errno {
        self.envp.fill_pid(super::getpid());
        let first_free = 3 + self.fds.len() as c_int;
        for (moved, &fd) in self.moved.iter_mut().zip(&self.fds) {
            // SAFETY: F_DUPFD_CLOEXEC takes an int and touches no memory of
            // ours.
            match ret_c_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free) }) {
                Ok(copy) => *moved = copy,
                Err(e) => return e,
            }
        }
        for (target, &copy) in (3..).zip(&self.moved) {
            // SAFETY: dup2 takes two ints and touches no memory of ours. The
            // target may be open in this child (a copy of the parent's fd):
            // replacing it is what placing the socket there means.
            if let Err(e) = ret_c_int(unsafe { libc::dup2(copy, target) }) {
                return e;
            }
        }
        let mut refused = false;
        let mut last = Errno::from_raw(libc::ENOENT);
        for path in &self.candidates {
            // SAFETY: `path` is NUL-terminated; `argv` and `envp` are
            // NUL-terminated arrays of pointers to NUL-terminated strings
            // that the plan owns and keeps alive across the call.
            unsafe { libc::execve(path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
            last = Errno::last();
            match last.raw() {
                // As execvp: a refused entry is remembered, a missing one
                // skipped, anything else is the answer.
                libc::EACCES => refused = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return last,
            }
        }
        if refused {
            Errno::from_raw(libc::EACCES)
        } else {
            last
        }
    }
}
