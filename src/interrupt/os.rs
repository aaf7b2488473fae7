//! The system calls `SignalInterrupt` makes, in one place: `sys`'s own,
//! or, in the build for the model checker (`--cfg tokenpipe_loom`), stand-ins
//! whose state is loom's, so that `loom` runs the real state word, the real
//! trigger, reset and first use, in every interleaving. A pipe is then a
//! count of tokens, and a write can be made to fail.

#[cfg(not(tokenpipe_loom))]
pub(super) use crate::sys::{
    close, errno, errno_now, make_pipe_nonblocking, poll_many, poll_readable, process_id, read,
    set_errno, write_count,
};

#[cfg(tokenpipe_loom)]
pub(super) use model::*;

#[cfg(tokenpipe_loom)]
mod model {
    use core::ffi::c_int;

    use crate::sys::{Errno, Polled, SysResult};
    use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

    /// How many pipes one run of a model may make.
    const PIPES: usize = 4;
    /// Where the stand-in fds start: read end `BASE + 2i`, write end next.
    const BASE: c_int = 100;

    struct Pipe {
        tokens: AtomicU32,
        fail_writes: AtomicBool,
    }

    loom::lazy_static! {
        static ref MADE: AtomicUsize = AtomicUsize::new(0);
        static ref PIPES_: [Pipe; PIPES] = core::array::from_fn(|_| Pipe {
            tokens: AtomicU32::new(0),
            fail_writes: AtomicBool::new(false),
        });
    }

    fn pipe(fd: c_int) -> Option<&'static Pipe> {
        let i = usize::try_from(fd.checked_sub(BASE)? / 2).ok()?;
        PIPES_.get(i).filter(|_| i < MADE.load(Ordering::SeqCst))
    }

    /// The tokens in the pipe whose read end is `fd`, for a model's checks.
    pub(crate) fn tokens(fd: c_int) -> u32 {
        pipe(fd).map_or(0, |p| p.tokens.load(Ordering::SeqCst))
    }

    /// Makes the next write to the pipe whose read end is `fd` fail
    /// (`EBADF`, as when its fd was closed behind the interrupt's back).
    #[cfg(test)]
    pub(crate) fn fail_next_write(fd: c_int) {
        if let Some(p) = pipe(fd) {
            p.fail_writes.store(true, Ordering::SeqCst);
        }
    }

    /// How many pipes this run has made.
    #[cfg(test)]
    pub(crate) fn pipes_made() -> usize {
        MADE.load(Ordering::SeqCst)
    }

    pub(in crate::interrupt) fn make_pipe_nonblocking() -> SysResult<[c_int; 2]> {
        let i = MADE.fetch_add(1, Ordering::SeqCst);
        assert!(i < PIPES, "a model made more than {PIPES} pipes");
        let read = BASE + 2 * i as c_int;
        Ok([read, read + 1])
    }

    pub(in crate::interrupt) fn write_count(fd: c_int, buf: &[u8]) -> isize {
        match pipe(fd - 1) {
            Some(p) if !p.fail_writes.swap(false, Ordering::SeqCst) => {
                p.tokens.fetch_add(buf.len() as u32, Ordering::SeqCst);
                buf.len() as isize
            }
            _ => -1,
        }
    }

    pub(in crate::interrupt) fn read(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
        let p = pipe(fd).ok_or(Errno::EBADF)?;
        p.tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(|_| {
                buf[0] = b'x';
                1
            })
            .map_err(|_| Errno::EAGAIN)
    }

    pub(in crate::interrupt) fn poll_readable(fd: c_int, _timeout_ms: c_int) -> SysResult<Polled> {
        if tokens(fd) > 0 {
            return Ok(Polled::Ready);
        }
        // No blocking in a model: let the others run, then say "not yet".
        loom::thread::yield_now();
        Ok(Polled::TimedOut)
    }

    pub(in crate::interrupt) fn poll_many(
        _fds: &mut [libc::pollfd],
        _timeout_ms: c_int,
    ) -> SysResult<usize> {
        loom::thread::yield_now();
        Ok(0)
    }

    pub(in crate::interrupt) fn close(_fd: c_int) {}

    /// One process: a model has no fork.
    pub(in crate::interrupt) fn process_id() -> i32 {
        1
    }

    /// The only failure the stand-ins make is a write's.
    pub(in crate::interrupt) fn errno() -> Errno {
        Errno::EBADF
    }

    pub(in crate::interrupt) fn errno_now() -> Errno {
        Errno::from_raw(0)
    }

    pub(in crate::interrupt) fn set_errno(_: Errno) {}
}
