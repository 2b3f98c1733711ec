//! The bound on HTTP connections that carry no STOMP session yet.
//!
//! Each connection the server accepts holds a slot from the moment it is accepted until it
//! becomes a session's transport (a WebSocket upgrade, a SockJS receiving request) or closes.
//! With every slot taken the server stops accepting: new connections wait in the kernel's
//! backlog until one frees, which the HTTP deadlines guarantee (a connection that sends
//! nothing, half a request or a slow body is closed when its deadline passes). So a flood of
//! idle or half-open connections holds bounded memory and file descriptors, and established
//! sessions never lose theirs.

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
pub(crate) struct ConnectionSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

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
            Ok(permit) => permit,
            Err(_) => {
                if let Some(held_back) = self.full.allow() {
                    tracing::warn!(
                        max_http_connections = self.max,
                        held_back,
                        "{} HTTP connections are open without a STOMP session: new connections wait until one closes (raise max_http_connections if these are legitimate clients)",
                        self.max
                    );
                }
                match self.semaphore.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    // The semaphore is never closed; should it be, nothing is bounded anymore.
                    Err(_) => return ConnectionSlot(Arc::new(Mutex::new(None))),
                }
            }
        };
        ConnectionSlot(Arc::new(Mutex::new(Some(permit))))
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
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Releases the slot stored in a request's extensions, if the connection has one (a
    /// service mounted in another server's router has none).
    pub(crate) fn release_for(extensions: &http::Extensions) {
        if let Some(slot) = extensions.get::<ConnectionSlot>() {
            slot.release();
        }
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
        drop(b);
        assert_eq!(slots.available(), 2);
    }
}
