//! Ownership of the two fds: taking, moving, assigning, closing and dropping
//! close each fd exactly once and never touch a closed or reused number.
#![cfg(unix)]

mod common;

use common::{identity, still_refers_to};
use tokenpipe::{Errno, Error, TokenPipe, TokenPipeEnd};

#[test]
fn an_end_is_exactly_one_c_int_and_can_be_shared_across_threads() {
    assert_eq!(
        std::mem::size_of::<TokenPipeEnd>(),
        std::mem::size_of::<std::ffi::c_int>()
    );
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TokenPipeEnd>();
    send_sync::<TokenPipe>();
}

#[test]
fn a_second_take_gives_a_closed_end() {
    let mut pipe = TokenPipe::make().unwrap();
    let r1 = pipe.take_read_end();
    let r2 = pipe.take_read_end();
    let w1 = pipe.take_write_end();
    let w2 = pipe.take_write_end();
    assert!(r1.is_open() && w1.is_open());
    assert!(!r2.is_open() && !w2.is_open());
    assert_eq!(r2.as_raw_fd(), -1);
    assert_eq!(w2.as_raw_fd(), -1);
}

#[test]
fn a_closed_end_returns_closed_without_making_a_syscall() {
    // A syscall on fd -1 would set errno to EBADF; a closed end must not
    // make one, so errno keeps the value we plant.
    let mut pipe = TokenPipe::make().unwrap();
    let _r = pipe.take_read_end();
    let _w = pipe.take_write_end();
    let closed_reader = pipe.take_read_end();
    let closed_writer = pipe.take_write_end();
    for end in [&closed_reader, &closed_writer, &TokenPipeEnd::new()] {
        common::set_errno(0);
        assert_eq!(end.token_read(), Err(Error::Closed));
        assert_eq!(end.token_write(1), Err(Error::Closed));
        assert_eq!(common::get_errno(), 0, "a closed end made a syscall");
    }
    assert_eq!(Error::Closed.status(), tokenpipe::TS_ERR);
}

#[test]
fn close_is_idempotent_and_forgets_the_fd() {
    let (_reader, mut writer) = TokenPipe::make().unwrap().split();
    let fd = writer.as_raw_fd();
    let id = identity(fd).unwrap();
    writer.close();
    assert!(!writer.is_open());
    assert_eq!(writer.as_raw_fd(), -1);
    assert!(!still_refers_to(fd, id), "close left the fd open");
    common::set_errno(0);
    writer.close();
    writer.close();
    assert_eq!(common::get_errno(), 0, "a second close made a syscall");
}

#[test]
fn dropping_an_end_closes_its_fd() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let (rfd, wfd) = (reader.as_raw_fd(), writer.as_raw_fd());
    let (rid, wid) = (identity(rfd).unwrap(), identity(wfd).unwrap());
    drop(writer);
    assert!(!still_refers_to(wfd, wid), "drop left the write end open");
    assert!(
        still_refers_to(rfd, rid),
        "dropping the writer closed the reader"
    );
    drop(reader);
    assert!(!still_refers_to(rfd, rid), "drop left the read end open");
}

#[test]
fn dropping_a_pipe_closes_both_ends_it_still_holds() {
    let mut pipe = TokenPipe::make().unwrap();
    let reader = pipe.take_read_end();
    let rfd = reader.as_raw_fd();
    let rid = identity(rfd).unwrap();
    drop(pipe); // still held the write end
    assert_eq!(reader.token_read(), Err(Error::Eos));
    assert!(
        still_refers_to(rfd, rid),
        "the taken end must survive the pipe"
    );
}

#[test]
fn pipe_close_closes_held_ends_and_leaves_taken_ones_open() {
    let mut pipe = TokenPipe::make().unwrap();
    let writer = pipe.take_write_end();
    pipe.close();
    pipe.close(); // idempotent
    assert!(!pipe.take_read_end().is_open());
    assert!(writer.is_open());
    // The read end was closed by pipe.close(): no reader is left.
    assert_eq!(writer.token_write(1), Err(Error::BrokenPipe));
}

#[test]
fn end_assign_from_closes_the_old_fd_and_moves_the_new_one() {
    let (_r1, mut a) = TokenPipe::make().unwrap().split();
    let (r2, mut b) = TokenPipe::make().unwrap().split();
    let (a_fd, b_fd) = (a.as_raw_fd(), b.as_raw_fd());
    let a_id = identity(a_fd).unwrap();
    a.assign_from(&mut b);
    assert!(
        !still_refers_to(a_fd, a_id),
        "assign_from left the old fd open"
    );
    assert_eq!(a.as_raw_fd(), b_fd);
    assert!(!b.is_open());
    a.token_write(9).unwrap();
    assert_eq!(r2.token_read(), Ok(9));
    // b is closed now; dropping it must not close a's fd.
    drop(b);
    a.token_write(10).unwrap();
    assert_eq!(r2.token_read(), Ok(10));
}

#[test]
fn end_assign_from_a_closed_end_leaves_self_closed() {
    let (_r, mut a) = TokenPipe::make().unwrap().split();
    let mut empty = TokenPipeEnd::new();
    a.assign_from(&mut empty);
    assert!(!a.is_open());
    assert!(!empty.is_open());
}

#[test]
fn pipe_assign_from_closes_the_write_end_the_target_held() {
    let mut a = TokenPipe::make().unwrap();
    let mut b = TokenPipe::make().unwrap();
    // Watch a's held write end from its read end, taken out first.
    let a_reader = a.take_read_end();
    a.assign_from(&mut b);
    assert_eq!(a_reader.token_read(), Err(Error::Eos));
}

#[test]
fn pipe_assign_from_closes_the_read_end_the_target_held() {
    let mut a = TokenPipe::make().unwrap();
    let mut b = TokenPipe::make().unwrap();
    // Watch a's held read end from its write end, taken out first.
    let a_writer = a.take_write_end();
    a.assign_from(&mut b);
    assert_eq!(a_writer.token_write(1), Err(Error::BrokenPipe));
}

#[test]
fn pipe_assign_from_moves_both_ends_and_empties_the_source() {
    let mut a = TokenPipe::make().unwrap();
    let mut b = TokenPipe::make().unwrap();
    a.assign_from(&mut b);
    assert!(!b.take_read_end().is_open());
    assert!(!b.take_write_end().is_open());
    let (r, w) = a.split();
    w.token_write(5).unwrap();
    assert_eq!(r.token_read(), Ok(5));
}

#[test]
fn into_raw_fd_releases_ownership_and_from_raw_fd_takes_it_back() {
    let (reader, writer) = TokenPipe::make().unwrap().split();
    let raw = writer.into_raw_fd();
    let id = identity(raw).unwrap();
    // into_raw_fd must not have closed it.
    assert!(still_refers_to(raw, id));
    // SAFETY: `raw` came from into_raw_fd; nothing else owns it.
    let writer = unsafe { TokenPipeEnd::from_raw_fd(raw) };
    writer.token_write(3).unwrap();
    assert_eq!(reader.token_read(), Ok(3));
    drop(writer);
    assert!(!still_refers_to(raw, id));
}

#[test]
fn from_raw_fd_of_a_negative_number_is_a_closed_end() {
    for fd in [-1, -2, i32::MIN] {
        // SAFETY: a negative fd owns nothing.
        let end = unsafe { TokenPipeEnd::from_raw_fd(fd) };
        assert!(!end.is_open());
        assert_eq!(end.as_raw_fd(), -1);
        assert_eq!(end.token_read(), Err(Error::Closed));
    }
}

#[test]
fn an_fd_number_that_is_not_open_gives_ebadf() {
    // Far above any real fd table (fds are handed out lowest first).
    let fd = std::ffi::c_int::MAX - 1;
    // SAFETY: the number is not open, so taking "ownership" of it harms
    // nobody; the end's drop will get EBADF from close, which it ignores.
    let end = unsafe { TokenPipeEnd::from_raw_fd(fd) };
    assert_eq!(end.token_read(), Err(Error::Os(Errno::EBADF)));
    assert_eq!(end.token_write(0), Err(Error::Os(Errno::EBADF)));
}

#[test]
fn a_closed_end_never_closes_a_reused_fd_number() {
    let (_reader, mut writer) = TokenPipe::make().unwrap().split();
    writer.close();
    // Another file now gets (very likely) the same number. Whatever it got,
    // dropping the closed end must leave that file open.
    let other = TokenPipe::make().unwrap();
    let (r2, w2) = other.split();
    let ids = [
        identity(r2.as_raw_fd()).unwrap(),
        identity(w2.as_raw_fd()).unwrap(),
    ];
    drop(writer);
    assert!(still_refers_to(r2.as_raw_fd(), ids[0]));
    assert!(still_refers_to(w2.as_raw_fd(), ids[1]));
    w2.token_write(1).unwrap();
    assert_eq!(r2.token_read(), Ok(1));
}
