//! Brokers: where messages sent to broker destinations (`/topic`, `/queue`) go, and who
//! receives them.
//!
//! [`Broker`] is the seam: sessions, handlers' replies and the messaging template publish and
//! subscribe through it, never through a concrete broker. The [`SimpleBroker`] keeps
//! everything in memory in one process; the [`RelayBroker`] relays to an external STOMP broker
//! (RabbitMQ) that several nodes share (`docs/scaling.md`).

mod listener;
mod options;
pub(crate) mod queue;
mod registry;
pub(crate) mod relay;
mod simple;
pub(crate) mod subscriber;

pub use listener::Listener;
pub use options::{QueueLimits, QueueOverflow, RetainedLimits, SlowConsumerPolicy};
pub use relay::{RelayBroker, StompBrokerRelay};
pub use simple::SimpleBroker;
pub use subscriber::AckMode;

pub(crate) use crate::destination::subscription::Pattern;
pub(crate) use options::BrokerOptions;
pub(crate) use queue::{Settle, Settlement};
pub(crate) use simple::{Refused, SendTemplate, Shared};
pub(crate) use subscriber::{ListenerFn, Pressure, Subscriber};

use std::sync::Arc;

use bytes::Bytes;

use crate::stomp::{ByteStr, Headers};

/// The broker a server publishes through (see [`Server::broker`](crate::Server::broker)).
#[non_exhaustive]
pub enum Broker {
    /// The in-memory broker, Spring's simple broker (and more: `docs/broker.md`).
    Simple(Box<SimpleBroker>),
    /// The relay to an external STOMP broker (RabbitMQ), Spring's broker relay.
    Relay(RelayBroker),
}

/// The external broker is not available (the relay's system connection is down), or the
/// system connection cannot take more for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// A message body on its way to the broker, and whether it is already known to be UTF-8
/// (a client's bytes read as WebSocket text): its frames may then go out as text without the
/// body being checked again.
pub(crate) struct Body {
    pub(crate) bytes: Bytes,
    pub(crate) known_utf8: bool,
}

impl From<Bytes> for Body {
    /// A body nothing is known of.
    fn from(bytes: Bytes) -> Body {
        Body { bytes, known_utf8: false }
    }
}

impl Broker {
    /// Delivers a message to every matching subscription; returns how many received it (with
    /// the relay, which cannot know: 0, and nothing is sent while the broker is unavailable).
    /// `headers` are the publisher's: all but the per-SEND ones are forwarded.
    pub fn publish(&self, destination: &ByteStr, headers: &Headers, body: Bytes) -> usize {
        self.try_publish(destination, headers, body).unwrap_or(0)
    }

    /// [`publish`](Self::publish), failing when the external broker is not available.
    pub(crate) fn try_publish(
        &self,
        destination: &ByteStr,
        headers: &Headers,
        body: Bytes,
    ) -> Result<usize, Unavailable> {
        match self {
            Broker::Simple(broker) => Ok(broker.publish(destination, headers, body)),
            Broker::Relay(relay) => match relay.publish(destination, headers, body) {
                true => Ok(0),
                false => Err(Unavailable),
            },
        }
    }

    /// Publishes a client's SEND: like [`try_publish`](Self::try_publish), but a message the
    /// simple broker refuses (a full queue) is an error for the sender, and `pressure` collects
    /// the outboxes of `Backpressure` subscribers it left over their limit.
    /// `headers`: the SEND's own, or a template's (see `SendTemplate`).
    pub(crate) fn publish_from_client(
        &self,
        destination: &ByteStr,
        headers: Shared<'_>,
        body: Body,
        pressure: &mut Pressure,
    ) -> Result<usize, Refused> {
        match self {
            Broker::Simple(broker) => broker.publish_with(destination, headers, body, pressure),
            Broker::Relay(relay) => {
                relay.publish(destination, headers.headers(), body.bytes);
                Ok(0)
            }
        }
    }

    /// The simple broker, when the server has one.
    pub(crate) fn simple(&self) -> Option<&SimpleBroker> {
        match self {
            Broker::Simple(broker) => Some(broker),
            Broker::Relay(_) => None,
        }
    }

    /// The relay, when the server has one.
    pub(crate) fn relay(&self) -> Option<&RelayBroker> {
        match self {
            Broker::Relay(relay) => Some(relay),
            Broker::Simple(_) => None,
        }
    }

    /// Whether the broker can take messages: always for the simple broker; for the relay,
    /// whether its system connection is up.
    pub fn is_available(&self) -> bool {
        match self {
            Broker::Simple(_) => true,
            Broker::Relay(relay) => relay.is_available(),
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
            // The subscription of a subscribe mapping is the session's own: no broker involved
            // (and no in-memory broker to build for it).
            Broker::Relay(_) => {
                static REPLY_IDS: std::sync::atomic::AtomicU64 =
                    std::sync::atomic::AtomicU64::new(0);
                let id = REPLY_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                simple::deliver_one(subscriber, id, destination, headers, body)
            }
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
            // The session's broker connection shows the destination it subscribed to; how many
            // receive it, the relay cannot know.
            Broker::Relay(relay) => {
                relay.publish(resolved, headers, body);
                0
            }
        }
    }

    pub(crate) fn subscribe(&self, subscriber: Arc<Subscriber>) {
        match self {
            Broker::Simple(broker) => broker.subscribe(subscriber),
            Broker::Relay(relay) => relay.subscribe(subscriber),
        }
    }

    pub(crate) fn unsubscribe(&self, subscriber: &Subscriber) {
        match self {
            Broker::Simple(broker) => broker.unsubscribe(subscriber),
            Broker::Relay(relay) => relay.unsubscribe(subscriber),
        }
    }

    /// How many subscriptions are registered (0 with the relay: they live in the external
    /// broker).
    pub fn subscription_count(&self) -> usize {
        match self {
            Broker::Simple(broker) => broker.subscription_count(),
            Broker::Relay(_) => 0,
        }
    }

    /// How many messages wait in the point-to-point queue `destination` for a consumer, and
    /// how many were delivered and are not yet acknowledged (`None`: no such queue, or the
    /// relay, whose queues live in the external broker).
    pub fn queue_depth(&self, destination: &str) -> Option<(usize, usize)> {
        self.simple()?.queue_depth(destination)
    }

    /// How many destinations hold a retained message (0 with the relay).
    pub fn retained_count(&self) -> usize {
        self.simple().map_or(0, SimpleBroker::retained_count)
    }

    /// How many exact destinations have at least one subscriber (0 with the relay).
    pub fn destination_count(&self) -> usize {
        match self {
            Broker::Simple(broker) => broker.destination_count(),
            Broker::Relay(_) => 0,
        }
    }
}

/// Which of `shards` lock shards holds `destination`: FNV-1a over its bytes, which costs a
/// few instructions per byte where SipHash cost a hundred per publish. A peer choosing its
/// destinations can only pick which lock they share; the maps inside keep std's keyed hash.
pub(crate) fn shard_index(destination: &str, shards: usize) -> usize {
    let hash = destination.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards as u64) as usize
}
