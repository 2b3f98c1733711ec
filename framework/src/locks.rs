//! Locks taken whether or not they are poisoned, and why that is safe here.
//!
//! A lock is poisoned when a thread panicked while holding it. Every lock of this crate guards
//! data that each operation changes in one step (a push, an insert, a swap-remove, a pair of
//! assignments), so a panic elsewhere (a handler's, say) cannot leave it half-changed: the
//! guard is taken as it is, rather than turning one panic into a server that panics on every
//! later use of the lock.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `lock`, poisoned or not.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `lock`, poisoned or not.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
