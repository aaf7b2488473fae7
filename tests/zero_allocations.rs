//! Nothing on the token path allocates: make, take, write, read, close,
//! assign, split, every error and its message, counted by a global
//! allocator that records this thread's allocations.
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;

use bitcoin_tokenpipe::{Errno, Error, TokenPipe, TokenPipeEnd};

struct Counting;

thread_local! {
    // Only this thread's allocations count: the harness and the other tests
    // allocate on their own threads at any time. Both cells are
    // const-initialised without destructors, so touching them from inside
    // the allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn record_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

/// A fixed buffer to format messages into without allocating.
struct StackText {
    buf: [u8; 512],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[test]
fn the_counter_does_see_an_allocation() {
    // The control: without it, a broken counter would pass the test below.
    let n = count_allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(16);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn make_take_write_read_close_and_errors_never_allocate() {
    let n = count_allocations(|| {
        for _ in 0..if cfg!(miri) { 2 } else { 100 } {
            let mut pipe = TokenPipe::make().unwrap();
            let reader = pipe.take_read_end();
            let mut writer = pipe.take_write_end();
            assert!(!pipe.take_read_end().is_open());
            for t in 0..=u8::MAX {
                writer.token_write(t).unwrap();
                assert_eq!(reader.token_read(), Ok(t));
            }
            let mut other = TokenPipe::make().unwrap();
            pipe.assign_from(&mut other);
            let (r2, mut w2) = pipe.split();
            w2.assign_from(&mut writer);
            drop(r2);
            w2.token_write(1).unwrap();
            assert_eq!(reader.token_read(), Ok(1));
            w2.close();
            let (gone, lonely) = TokenPipe::make().unwrap().split();
            drop(gone);
            assert_eq!(lonely.token_write(1), Err(Error::BrokenPipe));
            assert_eq!(w2.token_write(1), Err(Error::Closed));
            assert_eq!(reader.token_read(), Err(Error::Eos));
            if !cfg!(miri) {
                // Miri's pipes answer the wrong direction differently.
                assert_eq!(reader.token_write(1), Err(Error::Os(Errno::EBADF)));
            }
            let raw = TokenPipe::make().unwrap().take_read_end().into_raw_fd();
            // SAFETY: `raw` came from into_raw_fd.
            drop(unsafe { TokenPipeEnd::from_raw_fd(raw) });
            let mut text = StackText {
                buf: [0; 512],
                len: 0,
            };
            for e in [Error::Eos, Error::Closed, Error::Os(Errno::EMFILE)] {
                write!(text, "{e} {}", e.status()).unwrap();
                text.len = 0;
            }
        }
    });
    assert_eq!(n, 0, "the token path allocated {n} times");
}
