//! The atomics under the crate's lock-free state words: `core`'s, or
//! [loom]'s in a build for the model checker (`RUSTFLAGS="--cfg
//! tokenpipe_loom"`, what `ci/loom.sh` runs). A module that takes its
//! atomics from here can be checked in every interleaving of its threads
//! and signal handlers, with the memory orderings it asks for, by
//! `sync::model` in a test module compiled only for that build, whose
//! tests' names start with `loom_` (the script runs those):
//!
//! ```text
//! #[cfg(all(test, tokenpipe_loom))]
//! mod loom_models {
//!     use loom::sync::Arc;
//!     use crate::sync::{AtomicU32, Ordering, model};
//!
//!     #[test]
//!     fn loom_two_increments_make_two() {
//!         model(|| {
//!             let word = Arc::new(AtomicU32::new(0));
//!             let other = Arc::clone(&word);
//!             let t = loom::thread::spawn(move || other.fetch_add(1, Ordering::AcqRel));
//!             word.fetch_add(1, Ordering::AcqRel);
//!             t.join().unwrap();
//!             assert_eq!(word.load(Ordering::Acquire), 2);
//!         });
//!     }
//! }
//! ```
//!
//! `ready::pipe`'s `loom_models` are real ones. A signal handler is a
//! thread there: it may run between any two atomic steps of the code it
//! interrupts, and loom tries every such point (it also lets the two
//! overlap, which a handler cannot, so a model that passes covers the
//! handler too). A system call is stood in for: a `loom::cell::UnsafeCell`
//! for an fd that one side closes (loom reports a use that the close is
//! not ordered with), a loom atomic for a pipe's contents.
//!
//! Three things differ from `core` and are wrapped here, so that the same
//! source builds both ways:
//!
//! - loom's atomics have no `const fn new` (each is made inside one run of
//!   a model): write constructors with [`const_unless_loom!`];
//! - nor `get_mut`: use [`Exclusive::exclusive`];
//! - a loop that waits for another thread must let it run, or the model
//!   never ends: call [`spin_loop`] in it (under loom, a yield).
//!
//! loom's atomics panic outside a model, so only the `loom_` tests run in
//! the model build.
//!
//! [loom]: https://docs.rs/loom/0.7

#[cfg(tokenpipe_loom)]
pub(crate) use checked::AtomicU32;
#[cfg(not(tokenpipe_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(tokenpipe_loom)]
pub(crate) use loom::sync::atomic::Ordering;
// The rest of the set (`SignalInterrupt` takes `AtomicI32`; the others are
// here for the next state word that moves over).
#[cfg(tokenpipe_loom)]
#[allow(unused_imports)]
pub(crate) use checked::{AtomicBool, AtomicI32, AtomicPtr};
#[cfg(not(tokenpipe_loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr};

/// Declares a `const fn`, which under loom (whose atomics are made at run
/// time) is a plain `fn`. Attributes and docs are kept.
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(tokenpipe_loom))]
        $(#[$attr])*
        $vis const fn $name($($args)*) -> $ret $body

        #[cfg(tokenpipe_loom)]
        $(#[$attr])*
        $vis fn $name($($args)*) -> $ret $body
    };
}
pub(crate) use const_unless_loom;

/// The value of an atomic that `&mut` proves nobody else can reach:
/// `get_mut` on `core`'s atomics, `with_mut` on loom's (which has none
/// for `AtomicBool`).
pub(crate) trait Exclusive {
    /// The value type (`u32` for `AtomicU32`).
    type Value;
    /// Runs `f` on the value.
    fn exclusive<R>(&mut self, f: impl FnOnce(&mut Self::Value) -> R) -> R;
}

#[cfg(not(tokenpipe_loom))]
macro_rules! exclusive {
    ($([$($generics:tt)*] $atomic:ty: $value:ty),*) => {$(
        impl<$($generics)*> Exclusive for $atomic {
            type Value = $value;
            #[inline(always)]
            fn exclusive<R>(&mut self, f: impl FnOnce(&mut $value) -> R) -> R {
                f(self.get_mut())
            }
        }
    )*};
}
// Not `AtomicBool`: loom's has no `with_mut`.
#[cfg(not(tokenpipe_loom))]
exclusive!([] AtomicI32: i32, [] AtomicU32: u32, [T] AtomicPtr<T>: *mut T);

/// In a loop that waits for another thread: `core::hint::spin_loop`, and
/// under loom a yield, so the model runs the thread being waited for.
#[inline(always)]
#[allow(dead_code)] // no wait uses it yet: SignalInterrupt's go through `interrupt::os`
pub(crate) fn spin_loop() {
    #[cfg(not(tokenpipe_loom))]
    core::hint::spin_loop();
    #[cfg(tokenpipe_loom)]
    loom::hint::spin_loop();
}

/// Runs a loom model: `f` once for every interleaving of the threads it
/// spawns, up to `LOOM_MAX_PREEMPTIONS` preemptions of a running thread
/// (3 when the variable is not set; `ci/loom.sh` sets 5), twice: with
/// loads as loads, then as read-modify-writes (see [`checked`]). Prints
/// how many runs each pass took (`cargo test -- --nocapture` shows it).
/// `LOOM_LOCATION=1` makes a failure name the lines that raced.
#[cfg(all(test, tokenpipe_loom))]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    extern crate std;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let f = Arc::new(f);
    for loads in [checked::Loads::AsLoads, checked::Loads::AsReadModifyWrites] {
        checked::set_loads(loads);
        let mut builder = loom::model::Builder::new();
        let bound = *builder.preemption_bound.get_or_insert(3);
        let runs = Arc::new(AtomicUsize::new(0));
        let (counted, f) = (Arc::clone(&runs), Arc::clone(&f));
        builder.check(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            f();
        });
        let runs = runs.load(Ordering::Relaxed);
        let test = std::thread::current();
        let test = test.name().unwrap_or("?");
        std::println!("loom: {test}: {runs} runs of up to {bound} preemptions, {loads:?}");
    }
}

/// loom's atomics as the crate's, with one change that makes loom see
/// every interleaving of the threads: a second way to load.
///
/// loom 0.7 explores interleavings by dynamic partial-order reduction and
/// remembers only the last access to each atomic. So when a thread loads
/// and then swaps, its own load hides from the swap another thread's load
/// before it, and loom never runs the swap before that load
/// (tokio-rs/loom issues 166 and 392). That is how the state words here
/// decide, look then swap: a reset that looks and returns, a trigger that
/// looks and then sets the flag. loom misses review item 6 that way, in
/// every run and at any preemption bound.
///
/// So `model` runs each model twice. First with loads as loads: loom
/// may return a stale value, as hardware may. Then with each load done as
/// a read-modify-write that changes nothing (a compare-and-swap of the
/// zero value for itself, whose failure is the load): it reads the latest
/// value, with the same ordering, and loom counts it as a write, so every
/// access to the atomic is one that the next access is reordered against,
/// and no interleaving is lost. The two passes cover the interleavings and
/// the stale loads between them.
#[cfg(tokenpipe_loom)]
#[allow(dead_code)] // the whole set, for whichever state word uses it
mod checked {
    extern crate std;

    use core::cell::Cell;
    use core::ptr;

    use loom::sync::atomic as loom_atomic;

    use super::{Exclusive, Ordering};

    /// How `model`'s current pass loads.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Loads {
        AsLoads,
        AsReadModifyWrites,
    }

    std::thread_local! {
        // loom runs a model's threads on the thread that calls it.
        static LOADS: Cell<Loads> = const { Cell::new(Loads::AsLoads) };
    }

    pub(crate) fn set_loads(loads: Loads) {
        LOADS.with(|l| l.set(loads));
    }

    macro_rules! checked {
        ($(
            [$($generics:tt)*] $atomic:ident $(<$t:ident>)?: $value:ty = $zero:expr;
            [$($fetch:ident),*]
        )*) => {$(
            #[derive(Debug)]
            pub(crate) struct $atomic<$($generics)*>(loom_atomic::$atomic$(<$t>)?);

            impl<$($generics)*> $atomic$(<$t>)? {
                pub(crate) fn new(value: $value) -> Self {
                    $atomic(loom_atomic::$atomic::new(value))
                }

                #[track_caller]
                pub(crate) fn load(&self, order: Ordering) -> $value {
                    if LOADS.with(Cell::get) == Loads::AsLoads {
                        return self.0.load(order);
                    }
                    let zero = $zero;
                    self.0
                        .compare_exchange(zero, zero, order, order)
                        .unwrap_or_else(|value| value)
                }

                #[track_caller]
                pub(crate) fn store(&self, value: $value, order: Ordering) {
                    self.0.store(value, order);
                }

                #[track_caller]
                pub(crate) fn swap(&self, value: $value, order: Ordering) -> $value {
                    self.0.swap(value, order)
                }

                #[track_caller]
                pub(crate) fn compare_exchange(
                    &self,
                    current: $value,
                    new: $value,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$value, $value> {
                    self.0.compare_exchange(current, new, success, failure)
                }

                #[track_caller]
                pub(crate) fn compare_exchange_weak(
                    &self,
                    current: $value,
                    new: $value,
                    success: Ordering,
                    failure: Ordering,
                ) -> Result<$value, $value> {
                    self.0.compare_exchange_weak(current, new, success, failure)
                }

                /// As `core`'s: a load, then compare-and-swap until `f`
                /// says no or the swap succeeds (the load is this type's).
                #[track_caller]
                pub(crate) fn fetch_update(
                    &self,
                    set_order: Ordering,
                    fetch_order: Ordering,
                    mut f: impl FnMut($value) -> Option<$value>,
                ) -> Result<$value, $value> {
                    let mut prev = self.load(fetch_order);
                    while let Some(next) = f(prev) {
                        match self.compare_exchange_weak(prev, next, set_order, fetch_order) {
                            Ok(value) => return Ok(value),
                            Err(now) => prev = now,
                        }
                    }
                    Err(prev)
                }

                $(
                    #[track_caller]
                    pub(crate) fn $fetch(&self, value: $value, order: Ordering) -> $value {
                        self.0.$fetch(value, order)
                    }
                )*
            }
        )*};
    }

    checked! {
        [] AtomicU32: u32 = 0; [fetch_add, fetch_sub, fetch_and, fetch_or]
        [] AtomicI32: i32 = 0; [fetch_add, fetch_sub, fetch_and, fetch_or]
        [] AtomicBool: bool = false; [fetch_and, fetch_or]
        [T] AtomicPtr<T>: *mut T = ptr::null_mut(); []
    }

    macro_rules! exclusive {
        ($([$($generics:tt)*] $atomic:ty: $value:ty),*) => {$(
            impl<$($generics)*> Exclusive for $atomic {
                type Value = $value;
                fn exclusive<R>(&mut self, f: impl FnOnce(&mut $value) -> R) -> R {
                    self.0.with_mut(f)
                }
            }
        )*};
    }
    // Not `AtomicBool`: loom's has no `with_mut`.
    exclusive!([] AtomicI32: i32, [] AtomicU32: u32, [T] AtomicPtr<T>: *mut T);
}
