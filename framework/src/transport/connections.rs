//! The bound on HTTP connections that carry no STOMP session yet.
//!
//! Each connection the server accepts holds a slot from the moment it is accepted until it
//! carries a STOMP session (a WebSocket once its CONNECT succeeded; a SockJS receiving request
//! once attached to its session) or closes. A keep-alive connection whose receiving request
//! ended takes a slot again with its next request (or is refused with 503 when none is free);
//! in between it waits for that request under the header deadline, and there are no more such
//! connections than SockJS sessions. With
//! every slot taken the server stops accepting: new connections wait in the kernel's backlog
//! until one frees, which the HTTP deadlines guarantee: a connection that sends nothing, half a
//! request or a slow body, or does not read its responses (see `stall`), is closed when its
//! deadline passes, and a WebSocket that never sends CONNECT after `time_to_first_message`. So a
//! flood of idle or half-open connections holds bounded memory and file descriptors, and
//! established sessions never lose theirs.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::log_throttle::LogThrottle;

/// The server's slots (`max_http_connections` of them).
pub(crate) struct ConnectionSlots {
    semaphore: Arc<Semaphore>,
    max: usize,
    full: LogThrottle,
}

/// One accepted connection's slot. Clones share it; [`release`](ConnectionSlot::release)
/// gives it back once, and dropping the last clone gives it back too.
#[derive(Clone)]
pub(crate) struct ConnectionSlot {
    permit: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    semaphore: Arc<Semaphore>,
}

impl ConnectionSlots {
    pub(crate) fn new(max: usize) -> Self {
        ConnectionSlots {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            full: LogThrottle::default(),
        }
    }

    /// Waits for a free slot (logging, throttled, when there is none).
    pub(crate) async fn acquire(&self) -> ConnectionSlot {
        let permit = match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                if let Some(held_back) = self.full.allow() {
                    tracing::warn!(
                        max_http_connections = self.max,
                        held_back,
                        "{} HTTP connections are open without a STOMP session: new connections wait until one closes (raise max_http_connections if these are legitimate clients)",
                        self.max
                    );
                }
                // The semaphore is never closed; should it be, nothing is bounded anymore.
                self.semaphore.clone().acquire_owned().await.ok()
            }
        };
        ConnectionSlot { permit: Arc::new(Mutex::new(permit)), semaphore: self.semaphore.clone() }
    }

    /// Free slots now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

impl ConnectionSlot {
    /// The connection now carries a session: it no longer counts against the bound.
    pub(crate) fn release(&self) {
        self.permit().take();
    }

    /// Whether the connection still counts against the bound.
    pub(crate) fn is_held(&self) -> bool {
        self.permit().is_some()
    }

    /// Counts the connection again (a new request on a keep-alive connection whose last one
    /// carried a SockJS session's receiving side). `false` when every slot is taken.
    pub(crate) fn reacquire(&self) -> bool {
        let mut permit = self.permit();
        if permit.is_none() {
            *permit = self.semaphore.clone().try_acquire_owned().ok();
        }
        permit.is_some()
    }

    fn permit(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        crate::locks::lock(&self.permit)
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectionSlots;

    #[tokio::test]
    async fn a_slot_is_given_back_once_by_release_or_drop() {
        let slots = ConnectionSlots::new(2);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        assert_eq!(slots.available(), 0);
        let a2 = a.clone();
        a.release();
        a2.release();
        assert_eq!(slots.available(), 1);
        assert!(a.reacquire() && a2.is_held());
        assert_eq!(slots.available(), 0);
        assert!(!b.clone().reacquire() || b.is_held(), "b still holds its own");
        a.release();
        drop(b);
        assert_eq!(slots.available(), 2);
    }
}
