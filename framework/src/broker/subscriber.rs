//! One subscription as the broker sees it: where its messages go and how they are headed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::options::{QueueLimits, SlowConsumerPolicy};
use super::queue::{Message, QueueCell};
use crate::outbox::Outbox;
use crate::stomp::{ByteStr, EncodedFrame, PreparedMessage, Version, message_head, names};

/// How a subscription acknowledges messages (the SUBSCRIBE frame's `ack` header).
///
/// With `client` or `client-individual`, the simple broker keeps each delivered message until
/// the client ACKs it, holds back more than the subscription's prefetch, and on a NACK (or when
/// the subscription ends) redelivers it to another consumer of a point-to-point queue, or drops
/// it for a topic subscription, as RabbitMQ does (`docs/broker.md`). With the relay, the
/// external broker keeps these books.
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

/// How one delivery differs from a plain one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delivered {
    /// Delivered before and not acknowledged (`redelivered:true`).
    pub(crate) redelivered: bool,
}

/// What a publish (or subscribe, ACK...) leaves for after the broker's locks are released:
/// the outboxes of subscribers with [`SlowConsumerPolicy::Backpressure`] it left over their
/// limit, which the publishing session waits on, and the calls of in-process listeners, which
/// run application code that may publish in turn (it must not run under a broker lock).
/// Dropping it makes those calls: hold it outside every lock.
#[derive(Default)]
pub(crate) struct Pressure {
    pub(crate) outboxes: Vec<Arc<Outbox>>,
    listeners: Vec<(Arc<ListenerFn>, Arc<Message>)>,
}

impl Pressure {
    fn add(&mut self, outbox: &Arc<Outbox>) {
        if !self.outboxes.iter().any(|o| Arc::ptr_eq(o, outbox)) {
            self.outboxes.push(outbox.clone());
        }
    }
}

impl Drop for Pressure {
    fn drop(&mut self) {
        for (listener, message) in std::mem::take(&mut self.listeners) {
            listener(&message.prepared);
        }
    }
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
    /// Unacknowledged messages it may hold, when it acknowledges.
    pub(crate) prefetch: usize,
    pub(crate) policy: SlowConsumerPolicy,
    /// Messages dropped for it (DropOldest) and not yet reported.
    missed: Arc<AtomicU64>,
    /// The queue its messages go through, when it acknowledges or consumes a point-to-point
    /// destination: set by the broker when it subscribes.
    pub(crate) queue: OnceLock<Arc<QueueCell>>,
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
            prefetch: usize::MAX,
            policy: SlowConsumerPolicy::Disconnect,
            missed: Arc::default(),
            queue: OnceLock::new(),
        }
    }

    /// The same subscription, as a session's user destination.
    pub(crate) fn for_user(mut self) -> Subscriber {
        self.user = true;
        self
    }

    /// The same subscription, with its prefetch and slow-consumer policy.
    pub(crate) fn with_flow(mut self, prefetch: usize, policy: SlowConsumerPolicy) -> Subscriber {
        self.prefetch = prefetch;
        self.policy = policy;
        self
    }

    /// Whether its messages wait for an ACK (`ack:client` or `client-individual`).
    pub(crate) fn acknowledges(&self) -> bool {
        matches!(self.delivery, Delivery::Session { ack, .. } if ack != AckMode::Auto)
    }

    /// Its acknowledgement mode (`Auto` for an in-process listener).
    pub(crate) fn ack_mode(&self) -> AckMode {
        match self.delivery {
            Delivery::Session { ack, .. } => ack,
            Delivery::Local(_) => AckMode::Auto,
        }
    }

    /// Delivers a broadcast `message`: through its own queue when it acknowledges, else
    /// straight into its session's outbox. Never blocks: a session that cannot keep up is
    /// dealt with by its slow-consumer policy; with `Backpressure`, its outbox is added to
    /// `pressure` for the publisher to wait on.
    #[inline]
    pub(crate) fn deliver(
        &self,
        message: &Arc<Message>,
        limits: &QueueLimits,
        pressure: &mut Pressure,
    ) {
        if let Some(queue) = self.queue.get() {
            // A subscription's own queue drops its oldest when full: no Full comes back.
            let _ = queue.lock().offer(&queue.name, message.clone(), limits, pressure);
            return;
        }
        // The common case, inlined into the broker's fan-out loop: a session's subscription
        // that acknowledges nothing and drops nothing gets the message's shared frame.
        if let Delivery::Session { version, ack: AckMode::Auto, outbox, head } = &self.delivery {
            if self.policy != SlowConsumerPolicy::DropOldest {
                let frame = message.prepared.contiguous_for(*version, head);
                self.queue_frame(outbox, frame, pressure);
                return;
            }
        }
        self.push(message, Delivered::default(), pressure);
    }

    /// Pushes one MESSAGE into the session's outbox (or calls the listener). Returns false
    /// when the session is gone.
    pub(crate) fn push(
        &self,
        message: &Arc<Message>,
        delivered: Delivered,
        pressure: &mut Pressure,
    ) -> bool {
        self.push_marked(message, delivered, false, pressure)
    }

    /// Whether its session can take more now (a queue delivers to it only then: a burst of
    /// waiting messages must not make a healthy consumer a slow one).
    pub(crate) fn has_room(&self) -> bool {
        match &self.delivery {
            Delivery::Session { outbox, .. } => !outbox.over_limit(),
            Delivery::Local(_) => true,
        }
    }

    /// [`push`](Self::push), marked as the destination's retained message when `retained`.
    pub(crate) fn push_marked(
        &self,
        message: &Arc<Message>,
        delivered: Delivered,
        retained: bool,
        pressure: &mut Pressure,
    ) -> bool {
        let (version, ack, outbox, head) = match &self.delivery {
            Delivery::Local(listener) => {
                pressure.listeners.push((listener.clone(), message.clone()));
                return true;
            }
            Delivery::Session { version, ack, outbox, head } => (*version, *ack, outbox, head),
        };
        // A queue's consumer is never lossy: the queue holds what it cannot take yet.
        let lossy = self.policy == SlowConsumerPolicy::DropOldest
            && ack == AckMode::Auto
            && self.queue.get().is_none();
        let missed = match lossy {
            true => self.missed.swap(0, Ordering::AcqRel),
            false => 0,
        };
        let frame = if ack == AckMode::Auto && !delivered.redelivered && !retained && missed == 0 {
            message.prepared.contiguous_for(version, head)
        } else {
            // Clients acknowledge with the `ack` header (1.2) or message-id + subscription
            // (1.0, 1.1).
            let ack_id = format!("{}-{}", self.subscription_id, message.id_text());
            let missed_text = itoa::Buffer::new().format(missed).to_owned();
            let mut per_delivery: Vec<(&str, &str)> =
                vec![(names::SUBSCRIPTION, &self.subscription_id)];
            if ack != AckMode::Auto {
                per_delivery.push((names::ACK, &ack_id));
            }
            if delivered.redelivered {
                per_delivery.push(("redelivered", "true"));
            }
            if retained {
                per_delivery.push(("retained", "true"));
            }
            if missed > 0 {
                per_delivery.push(("missed-messages", &missed_text));
            }
            message.prepared.with_head(version, message_head(version, &per_delivery))
        };
        match lossy {
            true => outbox.push_lossy(frame, &self.missed, missed),
            false => self.queue_frame(outbox, frame, pressure),
        }
    }

    /// Queues `frame` in the session's outbox; with `Backpressure`, an outbox now over its
    /// limit joins `pressure`. Returns false when the session is closed.
    #[inline]
    fn queue_frame(
        &self,
        outbox: &Arc<Outbox>,
        frame: EncodedFrame,
        pressure: &mut Pressure,
    ) -> bool {
        let pushed = outbox.push(frame);
        if pushed && self.policy == SlowConsumerPolicy::Backpressure && outbox.over_limit() {
            pressure.add(outbox);
        }
        pushed
    }
}
