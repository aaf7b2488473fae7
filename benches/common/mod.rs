//! The pipes being compared: this crate, raw libc, and what a user would
//! pick instead. Each is written the way its own documentation suggests,
//! with its own error check, so the comparison is of what people would run.
//!
//! Both bench targets (`tokenpipe`, timed by criterion, and `instructions`,
//! counted by callgrind) drive these same functions, so the two measure the
//! same code.

use std::ffi::c_void;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// One way to make a pipe and move a one-byte token through it. Dropping
/// the two ends closes them.
pub trait Pipe {
    /// The name shown in tables and on the command line.
    const NAME: &'static str;
    type Reader: Send + 'static;
    type Writer: Send + 'static;
    /// Creates the pipe, close-on-exec like the crate's.
    fn make() -> (Self::Reader, Self::Writer);
    /// Writes one token; panics on any error.
    fn write(w: &Self::Writer, token: u8);
    /// Reads one token; panics on any error.
    fn read(r: &Self::Reader) -> u8;
}

/// Raw `libc::pipe2`, `write`, `read` and `close` on a bare fd: the floor.
pub struct Libc;

/// A bare fd that closes itself, as hand-written code would.
pub struct RawFd(pub libc::c_int);

impl Drop for RawFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd and never use it again.
        unsafe { libc::close(self.0) };
    }
}

impl Pipe for Libc {
    const NAME: &'static str = "raw libc";
    type Reader = RawFd;
    type Writer = RawFd;

    #[inline]
    fn make() -> (RawFd, RawFd) {
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two fds pipe2 writes.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert!(rc == 0, "pipe2 failed");
        (RawFd(fds[0]), RawFd(fds[1]))
    }

    #[inline]
    fn write(w: &RawFd, token: u8) {
        // SAFETY: `token` is valid for reads of one byte.
        let n = unsafe { libc::write(w.0, (&raw const token).cast::<c_void>(), 1) };
        assert!(n == 1, "write failed");
    }

    #[inline]
    fn read(r: &RawFd) -> u8 {
        let mut token = 0u8;
        // SAFETY: `token` is valid for writes of one byte.
        let n = unsafe { libc::read(r.0, (&raw mut token).cast::<c_void>(), 1) };
        assert!(n == 1, "read failed");
        token
    }
}

/// This crate.
pub struct ThisCrate;

impl Pipe for ThisCrate {
    const NAME: &'static str = "tokenpipe";
    type Reader = tokenpipe::TokenPipeEnd;
    type Writer = tokenpipe::TokenPipeEnd;

    #[inline]
    fn make() -> (Self::Reader, Self::Writer) {
        tokenpipe::TokenPipe::make().unwrap().split()
    }

    #[inline]
    fn write(w: &Self::Writer, token: u8) {
        w.token_write(token).unwrap();
    }

    #[inline]
    fn read(r: &Self::Reader) -> u8 {
        r.token_read().unwrap()
    }
}

/// One token through `std::io::Write::write_all`, as a std user writes it.
#[inline]
fn io_write_byte(mut w: impl Write, token: u8) {
    w.write_all(&[token]).unwrap();
}

/// One token through `std::io::Read::read_exact`.
#[inline]
fn io_read_byte(mut r: impl Read) -> u8 {
    let mut buf = [0u8; 1];
    r.read_exact(&mut buf).unwrap();
    buf[0]
}

/// `std::io::pipe` (Rust 1.87), with `write_all` / `read_exact`.
pub struct StdPipe;

impl Pipe for StdPipe {
    const NAME: &'static str = "std::io::pipe";
    type Reader = std::io::PipeReader;
    type Writer = std::io::PipeWriter;

    #[inline]
    fn make() -> (Self::Reader, Self::Writer) {
        std::io::pipe().unwrap()
    }

    #[inline]
    fn write(w: &Self::Writer, token: u8) {
        io_write_byte(w, token);
    }

    #[inline]
    fn read(r: &Self::Reader) -> u8 {
        io_read_byte(r)
    }
}

/// The `os_pipe` crate, with `write_all` / `read_exact`.
pub struct OsPipe;

impl Pipe for OsPipe {
    const NAME: &'static str = "os_pipe";
    type Reader = os_pipe::PipeReader;
    type Writer = os_pipe::PipeWriter;

    #[inline]
    fn make() -> (Self::Reader, Self::Writer) {
        os_pipe::pipe().unwrap()
    }

    #[inline]
    fn write(w: &Self::Writer, token: u8) {
        io_write_byte(w, token);
    }

    #[inline]
    fn read(r: &Self::Reader) -> u8 {
        io_read_byte(r)
    }
}

/// `rustix::pipe::pipe_with` and `rustix::io::{read, write}`. On Linux
/// rustix makes the syscalls itself (its `linux_raw` backend), not via libc.
pub struct Rustix;

impl Pipe for Rustix {
    const NAME: &'static str = "rustix";
    type Reader = OwnedFd;
    type Writer = OwnedFd;

    #[inline]
    fn make() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
    }

    #[inline]
    fn write(w: &OwnedFd, token: u8) {
        assert!(rustix::io::write(w, &[token]).unwrap() == 1);
    }

    #[inline]
    fn read(r: &OwnedFd) -> u8 {
        let mut buf = [0u8; 1];
        assert!(rustix::io::read(r, &mut buf).unwrap() == 1);
        buf[0]
    }
}

/// `nix::unistd::{pipe2, read, write}`.
pub struct Nix;

impl Pipe for Nix {
    const NAME: &'static str = "nix";
    type Reader = OwnedFd;
    type Writer = OwnedFd;

    #[inline]
    fn make() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    #[inline]
    fn write(w: &OwnedFd, token: u8) {
        assert!(nix::unistd::write(w, &[token]).unwrap() == 1);
    }

    #[inline]
    fn read(r: &OwnedFd) -> u8 {
        let mut buf = [0u8; 1];
        assert!(nix::unistd::read(r, &mut buf).unwrap() == 1);
        buf[0]
    }
}
