//! Brokers: where messages sent to broker destinations (`/topic`, `/queue`) go, and who
//! receives them.
//!
//! [`Broker`] is the seam: sessions, handlers' replies and the messaging template publish and
//! subscribe through it, never through a concrete broker. The [`SimpleBroker`] keeps
//! everything in memory in one process; it is the only implementation today.

mod listener;
mod registry;
mod simple;
mod subscriber;

pub use listener::Listener;
pub use simple::SimpleBroker;
pub use subscriber::AckMode;

pub(crate) use crate::destination::subscription::Pattern;
pub(crate) use subscriber::{ListenerFn, Subscriber};

use std::sync::Arc;

use bytes::Bytes;

use crate::stomp::{ByteStr, Headers};

/// The broker a server publishes through (see [`Server::broker`](crate::Server::broker)).
#[non_exhaustive]
pub enum Broker {
    /// The in-memory broker, Spring's simple broker.
    Simple(SimpleBroker),
}

impl Broker {
    /// Delivers a message to every matching subscription; returns how many received it.
    /// `headers` are the publisher's: all but the per-SEND ones are forwarded.
    pub fn publish(&self, destination: &ByteStr, headers: &Headers, body: Bytes) -> usize {
        match self {
            Broker::Simple(broker) => broker.publish(destination, headers, body),
        }
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
        match self {
            Broker::Simple(broker) => broker.deliver_to(subscriber, destination, headers, body),
        }
    }

    /// Delivers a message to one session's user destination (see
    /// [`SimpleBroker::publish_to_user`]).
    pub(crate) fn publish_to_user(
        &self,
        resolved: &ByteStr,
        shown: &ByteStr,
        headers: &Headers,
        body: Bytes,
    ) -> usize {
        match self {
            Broker::Simple(broker) => broker.publish_to_user(resolved, shown, headers, body),
        }
    }

    pub(crate) fn subscribe(&self, subscriber: Arc<Subscriber>) {
        match self {
            Broker::Simple(broker) => broker.subscribe(subscriber),
        }
    }

    pub(crate) fn unsubscribe(&self, subscriber: &Subscriber) {
        match self {
            Broker::Simple(broker) => broker.unsubscribe(subscriber),
        }
    }

    /// How many subscriptions are registered.
    pub fn subscription_count(&self) -> usize {
        match self {
            Broker::Simple(broker) => broker.subscription_count(),
        }
    }

    /// How many exact destinations have at least one subscriber.
    pub fn destination_count(&self) -> usize {
        match self {
            Broker::Simple(broker) => broker.destination_count(),
        }
    }
}
