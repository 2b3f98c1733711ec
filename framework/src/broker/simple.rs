//! The in-memory broker: one process, every destination, no persistence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::registry::Registry;
use super::subscriber::Subscriber;
use crate::stomp::{ByteStr, Headers, PreparedMessage, names};

/// Headers of a SEND that never travel on to subscribers: they describe the SEND itself, or
/// are set per delivery.
const NOT_FORWARDED: [&str; 7] = [
    names::DESTINATION,
    names::MESSAGE_ID,
    names::SUBSCRIPTION,
    names::ACK,
    names::CONTENT_LENGTH,
    names::RECEIPT,
    names::TRANSACTION,
];

/// The in-memory broker, Spring's "simple broker": subscriptions on exact destinations and on
/// patterns (`*` within a segment, `**` across segments, with `/` and `.` both separating
/// segments), fan-out that encodes each message once, and no acknowledgement bookkeeping
/// (every delivery counts as acknowledged).
///
/// `/topic` and `/queue` behave alike here, as in Spring's simple broker: every subscriber of
/// a destination receives every message.
#[derive(Default)]
pub struct SimpleBroker {
    registry: Registry,
    /// Subscriptions to user destinations, by their resolved name (`/queue/reply-user{session}`):
    /// apart from `registry`, so that no client subscription (a pattern such as `/queue/**`, or
    /// the resolved name itself) can ever receive another session's user messages.
    users: Registry,
    next_message_id: AtomicU64,
}

impl SimpleBroker {
    /// An empty broker.
    pub fn new() -> Self {
        SimpleBroker::default()
    }

    /// Delivers a message to every matching subscription; returns how many received it.
    ///
    /// `headers` are the publisher's: all but the per-SEND ones (`receipt`, `transaction`,
    /// `content-length`…) are forwarded, `content-type` included.
    pub fn publish(&self, destination: &ByteStr, headers: &Headers, body: Bytes) -> usize {
        let (message, message_id) = self.prepare(destination, headers, body);
        let mut delivered = 0;
        self.registry.for_each_match(destination, |subscriber| {
            subscriber.deliver(&message, &message_id);
            delivered += 1;
        });
        delivered
    }

    /// Delivers a message to one subscription only, as if published to `destination` (the
    /// reply of a subscribe mapping).
    pub(crate) fn deliver_to(
        &self,
        subscriber: &Subscriber,
        destination: &ByteStr,
        headers: &Headers,
        body: Bytes,
    ) {
        let (message, message_id) = self.prepare(destination, headers, body);
        subscriber.deliver(&message, &message_id);
    }

    /// The message every subscriber of one publish shares, and its id.
    fn prepare(
        &self,
        destination: &ByteStr,
        headers: &Headers,
        body: Bytes,
    ) -> (PreparedMessage, String) {
        let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
        let message_id = itoa::Buffer::new().format(id).to_owned();
        let mut shared = Headers::with_capacity(headers.len() + 2);
        shared.push(names::DESTINATION, destination.clone());
        shared.push(names::MESSAGE_ID, message_id.clone());
        for (name, value) in headers.entries() {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                shared.push(name.clone(), value.clone());
            }
        }
        (PreparedMessage::new(shared, body), message_id)
    }

    /// Delivers a message to the subscriptions of one session's user destination: `resolved`
    /// is its resolved name (`/queue/reply-user{session}`), `shown` the destination its
    /// MESSAGE frames carry (`/user/queue/reply`).
    pub(crate) fn publish_to_user(
        &self,
        resolved: &ByteStr,
        shown: &ByteStr,
        headers: &Headers,
        body: Bytes,
    ) -> usize {
        let (message, message_id) = self.prepare(shown, headers, body);
        let mut delivered = 0;
        self.users.for_each_match(resolved, |subscriber| {
            subscriber.deliver(&message, &message_id);
            delivered += 1;
        });
        delivered
    }

    pub(crate) fn subscribe(&self, subscriber: Arc<Subscriber>) {
        match subscriber.user {
            true => self.users.add(subscriber),
            false => self.registry.add(subscriber),
        }
    }

    pub(crate) fn unsubscribe(&self, subscriber: &Subscriber) {
        match subscriber.user {
            true => self.users.remove(subscriber),
            false => self.registry.remove(subscriber),
        }
    }

    /// How many subscriptions are registered (user destinations included).
    pub fn subscription_count(&self) -> usize {
        self.registry.len() + self.users.len()
    }

    /// How many exact destinations have at least one subscriber (each session's resolved
    /// user destinations included).
    pub fn destination_count(&self) -> usize {
        self.registry.destinations() + self.users.destinations()
    }
}
