//! An atomic slot that holds a `&'static T` or nothing: what a signal
//! handler uses to find the interrupt it serves, since a handler gets only
//! the signal's number.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// `Option<&'static T>`, read and set atomically. Only `'static`
/// references go in, so every pointer read out is valid forever.
pub(crate) struct StaticRef<T: 'static>(AtomicPtr<T>);

impl<T: 'static> StaticRef<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        StaticRef(AtomicPtr::new(ptr::null_mut()))
    }

    /// What the slot holds.
    #[inline]
    pub(crate) fn load(&self) -> Option<&'static T> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: the slot only ever holds null or a pointer made from a
        // `&'static T` (see `claim`), which is valid and shared-only for
        // the rest of the program.
        unsafe { p.as_ref() }
    }

    /// Puts `value` in the slot if it is empty; `false` if the slot was
    /// taken.
    pub(crate) fn claim(&self, value: &'static T) -> bool {
        let p = ptr::from_ref(value).cast_mut();
        self.0
            .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Empties the slot.
    pub(crate) fn clear(&self) {
        self.0.store(ptr::null_mut(), Ordering::Release);
    }
}
