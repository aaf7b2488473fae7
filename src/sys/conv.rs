//! One conversion per return shape, so each wrapper says which shape its
//! call has instead of spelling out the same `if`/`errno()` again (the way
//! rustix's `backend/libc/conv.rs` does). Every one reads `errno` only on
//! failure, in the cold [`errno()`](fn@super::errno).

use core::ffi::c_int;

use super::{SysResult, errno};

/// A call that returns `0` on success and `-1` with `errno` on failure.
#[inline]
pub(super) fn ret(rc: c_int) -> SysResult<()> {
    if rc == 0 { Ok(()) } else { Err(errno()) }
}

/// A call that returns a non-negative value (an fd, a pid, flags) on
/// success and `-1` with `errno` on failure.
#[inline]
pub(super) fn ret_c_int(rc: c_int) -> SysResult<c_int> {
    if rc >= 0 { Ok(rc) } else { Err(errno()) }
}

/// A call that returns a byte count (`ssize_t`) on success and `-1` with
/// `errno` on failure.
#[inline]
pub(super) fn ret_usize(n: isize) -> SysResult<usize> {
    // A non-negative ssize_t always fits in usize.
    if n >= 0 { Ok(n as usize) } else { Err(errno()) }
}

/// A pthread-style call that returns `0` or the error number itself and
/// leaves `errno` alone. (Only the signal-mask path uses one.)
#[cfg(tokenpipe_sigmask)]
#[inline]
pub(super) fn ret_pthread(rc: c_int) -> SysResult<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(super::Errno::from_raw(rc))
    }
}
