//! The program `ci/syscalls.sh` runs under `strace` to prove what the docs
//! promise: `make` is one `pipe2`, `token_write` one `write`, `token_read`
//! one `read`, `close` one `close`, `set_nonblocking` one `ioctl`, and a
//! closed end makes no syscall.
//!
//! ```text
//! cargo run --example syscall_probe   # silent; exit 0 if every call returned what it should
//! ci/syscalls.sh                      # the same under strace, checking each call's syscalls
//! ```
//!
//! Before each call it writes a marker, `write(-1, "@phase NAME", len)`,
//! which fails with `EBADF` and touches nothing, so the trace shows which
//! syscalls belong to which call. Nothing else is printed until the end, so
//! no other syscall lands between two markers.

#[cfg(unix)]
fn main() {
    use bitcoin_tokenpipe::{Error, TokenPipe, TokenPipeEnd};
    use std::time::Duration;

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
    phase("end");
}

#[cfg(not(unix))]
fn main() {}
