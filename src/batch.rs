//! Batches: many tokens in one `write` or one `read`.

use crate::end::TokenPipeEnd;
use crate::error::{Errno, Error, Result};
use crate::sys;

/// How many bytes one `write` to a pipe delivers atomically: a write of at
/// most this many tokens is never interleaved with other writers' tokens,
/// and on a blocking end it is never split.
///
/// POSIX guarantees at least 512 (`_POSIX_PIPE_BUF`) everywhere; Linux and
/// Android give 4096. This is the guaranteed figure for the target, so code
/// that stays within it is correct wherever it runs.
///
/// ```
/// assert!(tokenpipe::PIPE_BUF >= 512);
/// if cfg!(target_os = "linux") {
///     assert_eq!(tokenpipe::PIPE_BUF, 4096);
/// }
/// ```
pub const PIPE_BUF: usize = if cfg!(tokenpipe_linux_like) {
    4096
} else {
    512
};

impl TokenPipeEnd {
    /// Writes a batch of tokens with one `write(2)`, retried only on
    /// `EINTR` before anything was written. Returns how many were written.
    ///
    /// Up to [`PIPE_BUF`] tokens are written atomically: all of them,
    /// contiguous with no other writer's tokens between them (or, on a full
    /// non-blocking end, none and [`Error::WouldBlock`]). A larger batch may
    /// be written in part, so check the count. An empty batch makes no
    /// syscall and returns `Ok(0)`.
    ///
    /// # Errors
    /// As for [`token_write`](Self::token_write).
    ///
    /// # References
    /// - [POSIX `write`, on pipes](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
    /// - [Linux `pipe(7)`, on `PIPE_BUF`](https://man7.org/linux/man-pages/man7/pipe.7.html)
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// assert_eq!(writer.write_tokens(b"abc")?, 3);
    /// let mut buf = [0u8; 8];
    /// let n = reader.read_tokens(&mut buf)?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    pub fn write_tokens(&self, tokens: &[u8]) -> Result<usize> {
        let fd = self.open_fd()?;
        if tokens.is_empty() {
            return Ok(0);
        }
        moved_or_eos(|| sys::write(fd, tokens))
    }

    /// Reads up to `buf.len()` tokens with one `read(2)`, retried only on
    /// `EINTR`. Returns how many it read: at least one, since end of stream
    /// is [`Error::Eos`], never `Ok(0)`. Blocks until at least one token
    /// arrives. An empty `buf` makes no syscall and returns `Ok(0)`.
    ///
    /// # Errors
    /// As for [`token_read`](Self::token_read).
    ///
    /// # References
    /// - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
    ///
    /// ```
    /// use tokenpipe::{Error, TokenPipe};
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// writer.write_tokens(&[1, 2])?;
    /// drop(writer);
    /// let mut buf = [0u8; 4];
    /// assert_eq!(reader.read_tokens(&mut buf)?, 2);
    /// assert_eq!(reader.read_tokens(&mut buf), Err(Error::Eos));
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn read_tokens(&self, buf: &mut [u8]) -> Result<usize> {
        let fd = self.open_fd()?;
        if buf.is_empty() {
            return Ok(0);
        }
        moved_or_eos(|| sys::read(fd, buf))
    }

    /// Reads tokens into the unused capacity of `out` with one `read(2)`
    /// (as [`read_tokens`](Self::read_tokens)), appending them. Returns how
    /// many were appended. A full `out` makes no syscall and returns `Ok(0)`.
    ///
    /// # Errors
    /// As for [`token_read`](Self::token_read); `out` is unchanged on error.
    ///
    /// ```
    /// use tokenpipe::TokenPipe;
    ///
    /// let (reader, writer) = TokenPipe::make()?.split();
    /// writer.write_tokens(b"xyz")?;
    /// let mut out: heapless::Vec<u8, 2> = heapless::Vec::new();
    /// assert_eq!(reader.read_tokens_into(&mut out)?, 2); // capacity is 2
    /// assert_eq!(&out[..], b"xy");
    /// # Ok::<(), tokenpipe::Error>(())
    /// ```
    #[inline]
    #[cfg(tokenpipe_heapless)]
    #[cfg_attr(docsrs, doc(cfg(not(target_os = "aix"))))]
    pub fn read_tokens_into<const N: usize>(
        &self,
        out: &mut heapless::Vec<u8, N>,
    ) -> Result<usize> {
        self.open_fd()?;
        let old_len = out.len();
        if old_len == N {
            return Ok(0);
        }
        // Zero the spare capacity so it can be lent as `&mut [u8]` without
        // unsafe code; at most N bytes, and N is small by design.
        if out.resize(N, 0).is_err() {
            return Ok(0); // unreachable: N is the capacity
        }
        let result = self.read_tokens(&mut out[old_len..]);
        out.truncate(old_len + *result.as_ref().unwrap_or(&0));
        result
    }

    /// Reads exactly `buf.len()` bytes: the rest of a message whose first
    /// token was just read, which the writer sent in the same `write` (so
    /// it is already in the pipe, unless the end is non-blocking and the
    /// writer was cut short). For the crate's own multi-byte messages.
    ///
    /// # Errors
    /// As for [`read_tokens`](Self::read_tokens): [`Error::Eos`] if the
    /// writer closed before all of it came.
    #[cfg(tokenpipe_fork)] // The daemon hand-shake and the launcher.
    pub(crate) fn read_exact(&self, buf: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            got += self.read_tokens(&mut buf[got..])?;
        }
        Ok(())
    }
}

/// Runs one `read` or `write` of a non-empty buffer, again if a signal
/// interrupted it before anything moved: the count, or end of stream when
/// nothing could move (`0`), or the error.
#[inline]
fn moved_or_eos(mut call: impl FnMut() -> sys::SysResult<usize>) -> Result<usize> {
    loop {
        match call() {
            Ok(0) => return Err(Error::Eos),
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::from_errno(e)),
        }
    }
}
