//! The environment: reading and removing the variables through which a
//! launcher hands this process an end or a readiness channel.
//!
//! Neither call is async-signal-safe; both are reached only from the
//! `from_env` functions, whose contracts forbid a concurrent change of the
//! environment.

use core::ffi::CStr;

use super::SysResult;
use super::conv::ret;

/// `getenv(name)`—The value of an environment variable, as bytes without
/// the NUL.
///
/// # Safety
/// No other thread may change the environment (`setenv`, `putenv`,
/// `unsetenv`) while this runs or while the returned slice is in use.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getenv.html)
pub(crate) unsafe fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated. The caller keeps the environment
    // unchanged while the result is used, so the pointer stays valid.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a non-null pointer to a NUL-terminated string
    // that lives until the environment changes.
    Some(unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes())
}

/// `unsetenv(name)`—Removes an environment variable, so programs this one
/// starts do not inherit it.
///
/// # Safety
/// No other thread may read or change the environment meanwhile.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/unsetenv.html)
pub(crate) unsafe fn unsetenv(name: &CStr) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated; the caller keeps other threads
    // away from the environment.
    ret(unsafe { libc::unsetenv(name.as_ptr()) })
}
