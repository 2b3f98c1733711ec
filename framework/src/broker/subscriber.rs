//! One subscription as the broker sees it: where its messages go and how they are headed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::outbox::Outbox;
use crate::stomp::{ByteStr, PreparedMessage, Version, message_head, names};

/// How a subscription acknowledges messages (the SUBSCRIBE frame's `ack` header).
///
/// The simple broker treats every delivery as acknowledged, whatever the mode, as Spring's
/// simple broker does; the mode is recorded so the relay to a real broker can honour it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// `auto` (the default): no ACK expected.
    #[default]
    Auto,
    /// `client`: an ACK acknowledges this message and every earlier one.
    Client,
    /// `client-individual`: an ACK acknowledges one message.
    ClientIndividual,
}

impl AckMode {
    /// Parses the `ack` header value.
    pub fn parse(value: &str) -> Option<AckMode> {
        match value {
            "auto" => Some(AckMode::Auto),
            "client" => Some(AckMode::Client),
            "client-individual" => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }
}

static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// An in-process listener's callback (see [`Server::listen`](crate::Server::listen)).
pub(crate) type ListenerFn = dyn Fn(&PreparedMessage) + Send + Sync;

/// Where a subscription's messages go.
pub(crate) enum Delivery {
    /// A client session: MESSAGE frames into its outbox.
    Session {
        version: Version,
        ack: AckMode,
        outbox: Arc<Outbox>,
        /// `MESSAGE` plus the `subscription` header, encoded once at subscribe time.
        head: Bytes,
    },
    /// An in-process listener, called on the publisher's task.
    Local(Arc<ListenerFn>),
}

/// A registered subscription.
pub(crate) struct Subscriber {
    /// Unique among all subscriptions of the process.
    pub(crate) uid: u64,
    pub(crate) subscription_id: ByteStr,
    /// What the broker matches: the destination subscribed to, or for a user destination its
    /// resolved name (`/queue/reply-user{session}`).
    pub(crate) destination: ByteStr,
    /// Whether this is a session's user destination (held apart from other subscriptions).
    pub(crate) user: bool,
    delivery: Delivery,
}

impl Subscriber {
    pub(crate) fn session(
        subscription_id: ByteStr,
        destination: ByteStr,
        version: Version,
        ack: AckMode,
        outbox: Arc<Outbox>,
    ) -> Subscriber {
        let head = message_head(version, &[(names::SUBSCRIPTION, &subscription_id)]);
        Subscriber::new(
            subscription_id,
            destination,
            Delivery::Session { version, ack, outbox, head },
        )
    }

    pub(crate) fn local(destination: ByteStr, listener: Arc<ListenerFn>) -> Subscriber {
        Subscriber::new(ByteStr::from_static("local"), destination, Delivery::Local(listener))
    }

    fn new(subscription_id: ByteStr, destination: ByteStr, delivery: Delivery) -> Subscriber {
        Subscriber {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            subscription_id,
            destination,
            user: false,
            delivery,
        }
    }

    /// The same subscription, as a session's user destination.
    pub(crate) fn for_user(mut self) -> Subscriber {
        self.user = true;
        self
    }

    /// Delivers `message`. Never blocks: a session that cannot keep up is dealt with by its
    /// outbound limits, not by slowing the publisher.
    pub(crate) fn deliver(&self, message: &PreparedMessage, message_id: &str) {
        match &self.delivery {
            Delivery::Session { version, ack: AckMode::Auto, outbox, head } => {
                outbox.push(message.contiguous_for(*version, head));
            }
            // Clients acknowledge with the `ack` header (1.2) or message-id + subscription (1.1).
            Delivery::Session { version, outbox, .. } => {
                let ack_id = format!("{}-{}", self.subscription_id, message_id);
                let head = message_head(
                    *version,
                    &[(names::SUBSCRIPTION, &self.subscription_id), (names::ACK, &ack_id)],
                );
                outbox.push(message.with_head(*version, head));
            }
            Delivery::Local(listener) => listener(message),
        }
    }
}
