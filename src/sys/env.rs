//! The environment: reading and removing the variables through which a
//! launcher hands this process an end or a readiness channel.
//!
//! None of these calls is async-signal-safe. `getenv` and `unsetenv` are
//! reached only from the `from_env`-style functions, whose contracts forbid
//! a concurrent change of the environment; [`with_env`] reads without
//! removing anything and needs no such contract (it says why).

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

/// `getenv(name)`—Hands the value of an environment variable (bytes,
/// without the NUL) to `f`, which must not keep it: the slice lives only
/// for the call.
///
/// Safe, unlike [`getenv`], because every way to change the environment
/// is itself `unsafe` and promises not to race a reader: since Rust 2024
/// `std::env::set_var` and `remove_var` are `unsafe fn`s whose contract
/// forbids any other thread reading the environment meanwhile, by any
/// function, libc's `getenv` included; `setenv`, `putenv` and `unsetenv`
/// are foreign functions, `unsafe` to call. A concurrent change is that
/// writer's broken promise, not this read's. And no change on this thread
/// can come while `f` runs: this crate passes only closures that parse the
/// bytes.
///
/// # References
/// - [POSIX 2024](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getenv.html)
/// - [`std::env::set_var`'s safety contract](https://doc.rust-lang.org/std/env/fn.set_var.html#safety)
// Its readers (the watchdog's and socket activation's variables) exist
// where there are processes.
#[cfg(tokenpipe_fork)]
pub(crate) fn with_env<T>(name: &CStr, f: impl FnOnce(Option<&[u8]>) -> T) -> T {
    // SAFETY: `name` is NUL-terminated. The string getenv points at stays
    // valid until the environment changes, which no thread may do while we
    // read (that is every writer's own unsafe contract, see above), and
    // the slice does not outlive `f`, which changes nothing.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return f(None);
    }
    // SAFETY: getenv returned a non-null pointer to a NUL-terminated
    // string, valid for the call as said above.
    f(Some(unsafe { CStr::from_ptr(value) }.to_bytes()))
}
