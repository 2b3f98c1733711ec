//! What the simple broker can be asked to do beyond Spring's: point-to-point queues, retained
//! messages, and what happens to subscribers that cannot keep up (`docs/broker.md`).

/// What happens to a subscriber whose session's outbound queue stays over
/// `send_buffer_size_limit` (set with
/// [`ServerBuilder::slow_consumer_policy`](crate::ServerBuilder::slow_consumer_policy), per
/// prefix with [`slow_consumer_policy_for`](crate::ServerBuilder::slow_consumer_policy_for)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Spring's rule, the default: a session whose queue stays over the limit for longer than
    /// the send time limit, or reaches twice the limit, gets an `ERROR` saying so and is
    /// closed. Nobody else is slowed down.
    #[default]
    Disconnect,
    /// The subscription is lossy (a ticker): when the queue is full, its oldest undelivered
    /// messages are dropped to make room for the newest, and its next MESSAGE carries a
    /// `missed-messages` header with how many it lost. The session is not closed for it.
    DropOldest,
    /// The publishing session is not read until the subscriber has room again (RabbitMQ's
    /// flow control): nothing is lost and nobody is closed, but one slow subscriber slows
    /// every publisher of its destinations. The wait is bounded by the send time limit;
    /// then the subscriber is closed as with [`Disconnect`](Self::Disconnect).
    Backpressure,
}

impl SlowConsumerPolicy {
    /// Parses `disconnect`, `drop-oldest` or `backpressure` (command-line flags).
    pub fn parse(value: &str) -> Option<SlowConsumerPolicy> {
        match value {
            "disconnect" => Some(SlowConsumerPolicy::Disconnect),
            "drop-oldest" => Some(SlowConsumerPolicy::DropOldest),
            "backpressure" => Some(SlowConsumerPolicy::Backpressure),
            _ => None,
        }
    }
}

/// What a SEND to a full point-to-point queue gets (see [`QueueLimits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueOverflow {
    /// The SEND is refused with an `ERROR` naming the queue and the limit (the default:
    /// nothing already queued is lost).
    #[default]
    RejectSend,
    /// The oldest waiting message is dropped (and counted) to make room.
    DropOldest,
}

/// Bounds on what point-to-point queues hold while nobody takes their messages, and on the
/// bookkeeping of acknowledgements (set with
/// [`ServerBuilder::queue_limits`](crate::ServerBuilder::queue_limits)).
///
/// ```
/// use stompede::broker::{QueueLimits, QueueOverflow};
/// let limits = QueueLimits::default().max_messages(50_000).overflow(QueueOverflow::DropOldest);
/// assert_eq!(limits.get_max_messages(), 50_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_queues: usize,
    pub(crate) max_total_bytes: usize,
    pub(crate) overflow: QueueOverflow,
    pub(crate) default_prefetch: u32,
    pub(crate) max_redeliveries: u32,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_queues: 10_000,
            max_total_bytes: 256 * 1024 * 1024,
            overflow: QueueOverflow::RejectSend,
            default_prefetch: 1_000,
            max_redeliveries: 5,
        }
    }
}

impl QueueLimits {
    /// Messages one queue holds while waiting for a consumer (10,000).
    pub fn max_messages(mut self, count: usize) -> Self {
        self.max_messages = count;
        self
    }

    /// Body bytes one queue holds while waiting (16 MiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How many point-to-point queues may exist at once (10,000): a SEND that would open one
    /// more is refused.
    pub fn max_queues(mut self, count: usize) -> Self {
        self.max_queues = count;
        self
    }

    /// Body bytes all queues together hold while waiting (256 MiB).
    pub fn max_total_bytes(mut self, bytes: usize) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// What a SEND to a full queue gets.
    pub fn overflow(mut self, overflow: QueueOverflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How many unacknowledged messages a subscription with `ack:client` or
    /// `ack:client-individual` may hold when its SUBSCRIBE has no `prefetch-count` header
    /// (1,000).
    pub fn default_prefetch(mut self, count: u32) -> Self {
        self.default_prefetch = count;
        self
    }

    /// How many times a message of a point-to-point queue is redelivered (after a NACK, or
    /// its consumer leaving without acknowledging it) before it goes to the dead-letter
    /// destination instead (5). A message counts as delivered once it is queued for its
    /// consumer's connection, whether the client read it or not: a consumer that leaves with
    /// prefetched messages it never read returns them as redeliveries (as RabbitMQ counts
    /// them), so consumers that come and go often with a large `prefetch-count` need a higher
    /// limit.
    pub fn max_redeliveries(mut self, count: u32) -> Self {
        self.max_redeliveries = count;
        self
    }

    /// The most messages one queue holds while waiting.
    pub fn get_max_messages(&self) -> usize {
        self.max_messages
    }
}

/// Bounds on retained messages (set with
/// [`ServerBuilder::retained_limits`](crate::ServerBuilder::retained_limits)): how many
/// destinations may hold one, and their body bytes together. A retained SEND past either
/// bound is refused with an `ERROR` naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetainedLimits {
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: usize,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits { max_messages: 10_000, max_bytes: 64 * 1024 * 1024 }
    }
}

impl RetainedLimits {
    /// How many destinations may hold a retained message (10,000).
    pub fn max_messages(mut self, count: usize) -> Self {
        self.max_messages = count;
        self
    }

    /// The body bytes of all retained messages together (64 MiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

/// What the simple broker was configured with: the builder's broker settings, checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct BrokerOptions {
    /// Prefixes whose destinations are point-to-point queues.
    pub(crate) point_to_point: Vec<String>,
    /// Prefixes whose every SEND is retained.
    pub(crate) retain: Vec<String>,
    /// Whether a SEND's `retain:true` header retains it (on any broadcast destination).
    pub(crate) retain_header: bool,
    pub(crate) queue_limits: QueueLimits,
    pub(crate) retained_limits: RetainedLimits,
    /// Where messages redelivered too often go.
    pub(crate) dead_letter: String,
}

impl BrokerOptions {
    pub(crate) fn is_point_to_point(&self, destination: &str) -> bool {
        self.point_to_point.iter().any(|p| crate::destination::under(p, destination))
    }

    pub(crate) fn retains(&self, destination: &str) -> bool {
        self.retain.iter().any(|p| crate::destination::under(p, destination))
    }
}
