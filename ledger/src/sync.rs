//! Locks over plain data, taken whatever a panic elsewhere left behind.
//!
//! A lock is poisoned when a thread panics while holding it. Where every
//! write under the lock is one assignment (a head, a flag, an `Option`
//! swapped, a counter bumped, a map entry inserted whole), the panic
//! cannot have left the value half written, so the value is used as it
//! is. Locks over state that a fold changes in many steps (the service's
//! projections) must not come here: a half-folded state is rebuilt.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The guard of a mutex over plain data (see the module doc).
pub fn lock_plain<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A read guard of a lock over plain data (see the module doc).
pub fn read_plain<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A write guard of a lock over plain data (see the module doc).
pub fn write_plain<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}
