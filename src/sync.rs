//! The lock-poisoning policy, in one place.
//!
//! A lock is poisoned when a thread panicked while holding it. Every lock in otsd guards shared
//! state that a panic could leave half-updated: the projection in the middle of a fold, the log's
//! durable head, a status board. Serving such state could answer wrongly (a commitment "not found"
//! that the log holds), so the policy is: **a panic while a lock is held stops the process.** The
//! helpers here log the fact and abort; `otsd` additionally aborts on any panic
//! ([`abort_on_panic`]), so a panicking fold never even unwinds. Nothing acknowledged is lost by
//! stopping: acknowledgements follow the fsync, and a restart rebuilds every projection from the
//! log (systemd's `Restart=on-failure` brings the calendar back).
//!
//! Imports nothing of ours.
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`; aborts the process if a panic poisoned it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|_| poisoned("a mutex"))
}

/// Read-locks `l`; aborts the process if a panic poisoned it.
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|_| poisoned("a read-write lock"))
}

/// Write-locks `l`; aborts the process if a panic poisoned it.
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|_| poisoned("a read-write lock"))
}

/// Logs that `what` was poisoned and aborts; for guards the helpers above cannot return (a
/// condition variable's wait).
#[cold]
pub fn poisoned(what: &str) -> ! {
    let msg = format!(
        "{what} was poisoned by a panic while it was held; the state it guards may be \
         half-updated, so otsd stops (a restart rebuilds it from the log)"
    );
    tracing::error!("{msg}");
    eprintln!("{msg}");
    std::process::abort()
}

/// Makes any panic, in any thread, stop the process after the panic message is printed and
/// logged (instead of unwinding one task while the others serve on). For the `otsd` binary.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        tracing::error!("panic: {info}; otsd stops (a restart replays the log)");
        std::process::abort();
    }));
}
