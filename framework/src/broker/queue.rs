//! Messages that wait: point-to-point queues (competing consumers) and the own queue of a
//! subscription that acknowledges its messages.
//!
//! A [`Queue`] holds the messages nobody has taken yet (its backlog, bounded) and, for each
//! consumer, those delivered and not yet acknowledged (bounded by the consumer's prefetch).
//! Everything of one queue sits behind one lock, taken for a publish into it, an
//! acknowledgement, or a consumer joining or leaving; deliveries are pushes into session
//! outboxes, which never wait. Lock order: queue, then outbox.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::options::{QueueLimits, QueueOverflow};
use super::subscriber::{Delivered, Pressure, Subscriber};
use crate::locks::lock;
use crate::stomp::{ByteStr, PreparedMessage};

/// One published message, shared by every delivery of it.
pub(crate) struct Message {
    pub(crate) prepared: PreparedMessage,
    pub(crate) id: u64,
    pub(crate) destination: ByteStr,
    /// What it counts against byte limits: body and headers.
    pub(crate) size: usize,
}

impl Message {
    /// A copy to share, of a message made on a publisher's stack (see `Listed::deliver_made`).
    pub(crate) fn copy(&self) -> Message {
        Message {
            prepared: self.prepared.copy(),
            id: self.id,
            destination: self.destination.clone(),
            size: self.size,
        }
    }

    #[inline]
    pub(crate) fn new(prepared: PreparedMessage, id: u64, destination: ByteStr) -> Message {
        let headers = prepared.headers_text_len();
        // The `message-id` line, kept apart from the headers: its digits are counted, not
        // written.
        let id_line = match prepared.message_id() {
            Some(id) => "message-id:\n".len() + decimal_digits(id),
            None => 0,
        };
        let size = prepared.body().len() + headers + id_line + 16;
        Message { prepared, id, destination, size }
    }

    /// What the message counts against byte limits: its body and headers.
    pub(crate) fn bytes(&self) -> usize {
        self.size
    }
}

/// How many digits `n` has in decimal.
fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Whether a queue's messages compete (a point-to-point destination) or belong to one
/// subscription (a topic subscription that acknowledges).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// NACKed or abandoned messages go to another consumer.
    PointToPoint,
    /// NACKed or abandoned messages are dropped (RabbitMQ, for a topic subscription without
    /// a durable queue).
    Subscription,
}

/// What an ACK or NACK does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    Nack,
}

/// One ACK or NACK: of which message, whether of every earlier one too (`ack:client`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settlement {
    pub(crate) message_id: u64,
    pub(crate) cumulative: bool,
    pub(crate) how: Settle,
}

/// A message in a queue, with how often it was delivered.
struct Waiting {
    message: Arc<Message>,
    deliveries: u32,
    /// The consumer it was last delivered to (0: none), which a redelivery avoids when another
    /// consumer has room.
    last_consumer: u64,
}

struct Consumer {
    subscriber: Arc<Subscriber>,
    /// Unacknowledged messages it may hold (subscriptions that acknowledge).
    prefetch: usize,
    /// Delivered and not acknowledged, in delivery order.
    unacked: BTreeMap<u64, Waiting>,
    /// Delivery order by message id.
    order: HashMap<u64, u64>,
    /// Its session is gone (a push failed): skipped until it unsubscribes.
    gone: bool,
}

impl Consumer {
    fn has_room(&self) -> bool {
        !self.gone
            && self.subscriber.has_room()
            && (!self.subscriber.acknowledges() || self.unacked.len() < self.prefetch)
    }
}

/// The messages of one destination (or one subscription) and their consumers.
pub(crate) struct Queue {
    kind: Kind,
    backlog: VecDeque<Waiting>,
    backlog_bytes: usize,
    consumers: Vec<Consumer>,
    /// Where the round robin goes on.
    next: usize,
    next_sequence: u64,
    /// Taken out of the broker's map: a publisher holding it must look it up again.
    pub(crate) removed: bool,
    /// Messages dropped to make room (DropOldest, or a subscription's full backlog).
    pub(crate) dropped: u64,
    /// Bytes of delivered, unacknowledged messages.
    unacked_bytes: usize,
    /// The bytes all queues hold (waiting and unacknowledged), which this one counts into.
    total: Option<Arc<AtomicUsize>>,
}

/// One queue behind its lock.
pub(crate) struct QueueCell {
    pub(crate) name: ByteStr,
    state: Mutex<Queue>,
}

/// Why a message was not queued (the SEND gets an ERROR with this text).
#[derive(Debug)]
pub(crate) struct Full(pub(crate) String);

impl QueueCell {
    pub(crate) fn new(name: ByteStr, kind: Kind, total: Option<Arc<AtomicUsize>>) -> QueueCell {
        let queue = Queue {
            kind,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            consumers: Vec::new(),
            next: 0,
            next_sequence: 0,
            removed: false,
            dropped: 0,
            unacked_bytes: 0,
            total,
        };
        QueueCell { name, state: Mutex::new(queue) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.state)
    }
}

impl Queue {
    /// Adds a message, within `limits`, and delivers what can be delivered.
    pub(crate) fn offer(
        &mut self,
        name: &str,
        message: Arc<Message>,
        limits: &QueueLimits,
        pressure: &mut Pressure,
    ) -> Result<(), Full> {
        let bytes = message.bytes();
        // Limits bound what waits: a message a consumer takes at once is not held to them.
        if self.backlog.is_empty() && self.pick(0).is_some() {
            self.push_back(Waiting { message, deliveries: 0, last_consumer: 0 });
            self.dispatch(pressure);
            return Ok(());
        }
        let total = self.total.as_ref().map_or(0, |t| t.load(Ordering::Relaxed));
        let too_many = |q: &Queue| {
            !q.backlog.is_empty()
                && (q.backlog.len() >= limits.max_messages
                    || q.backlog_bytes + bytes > limits.max_bytes)
        };
        let lossy = self.kind == Kind::Subscription || limits.overflow == QueueOverflow::DropOldest;
        if total + bytes > limits.max_total_bytes && total > 0 {
            if self.kind == Kind::Subscription {
                self.count_dropped(name);
                return Ok(());
            }
            return Err(Full(format!(
                "queues hold {total} bytes waiting for consumers or acknowledgements; {name} cannot take {bytes} more (max_total_bytes is {}): consume and acknowledge, or raise the queue limits",
                limits.max_total_bytes
            )));
        }
        if too_many(self) && !lossy {
            return Err(Full(format!(
                "queue {name} is full: {} messages ({} bytes) wait for a consumer (max_messages {}, max_bytes {}); consume it, or raise the queue limits",
                self.backlog.len(),
                self.backlog_bytes,
                limits.max_messages,
                limits.max_bytes
            )));
        }
        while too_many(self) {
            self.pop_front();
            self.count_dropped(name);
        }
        self.push_back(Waiting { message, deliveries: 0, last_consumer: 0 });
        self.dispatch(pressure);
        Ok(())
    }

    /// Adds a consumer and gives it what waits.
    pub(crate) fn add_consumer(
        &mut self,
        subscriber: Arc<Subscriber>,
        prefetch: usize,
        pressure: &mut Pressure,
    ) {
        self.consumers.push(Consumer {
            subscriber,
            prefetch: prefetch.max(1),
            unacked: BTreeMap::new(),
            order: HashMap::new(),
            gone: false,
        });
        self.dispatch(pressure);
    }

    /// Removes a consumer: what it had not acknowledged goes to the others (point-to-point,
    /// marked redelivered) or is dropped (a subscription's own queue). Messages redelivered
    /// too often are put in `dead`.
    pub(crate) fn remove_consumer(
        &mut self,
        uid: u64,
        limits: &QueueLimits,
        dead: &mut Vec<Arc<Message>>,
        pressure: &mut Pressure,
    ) {
        let Some(index) = self.consumers.iter().position(|c| c.subscriber.uid == uid) else {
            return;
        };
        let consumer = self.consumers.remove(index);
        if index < self.next {
            self.next -= 1;
        }
        let returned: Vec<Waiting> = consumer.unacked.into_values().collect();
        self.settled(&returned);
        self.requeue(returned, uid, limits, dead);
        self.dispatch(pressure);
    }

    /// Settles the message `message_id` delivered to consumer `uid` (and with `cumulative`,
    /// every message delivered to it before). Returns false when that consumer has no such
    /// message awaiting acknowledgement.
    pub(crate) fn settle(
        &mut self,
        uid: u64,
        Settlement { message_id, cumulative, how }: Settlement,
        limits: &QueueLimits,
        dead: &mut Vec<Arc<Message>>,
        pressure: &mut Pressure,
    ) -> bool {
        let Some(consumer) = self.consumers.iter_mut().find(|c| c.subscriber.uid == uid) else {
            return false;
        };
        let Some(&sequence) = consumer.order.get(&message_id) else { return false };
        let settled: Vec<Waiting> = match cumulative {
            true => {
                let later = consumer.unacked.split_off(&(sequence + 1));
                std::mem::replace(&mut consumer.unacked, later).into_values().collect()
            }
            false => consumer.unacked.remove(&sequence).into_iter().collect(),
        };
        for waiting in &settled {
            consumer.order.remove(&waiting.message.id);
        }
        self.settled(&settled);
        if how == Settle::Nack {
            self.requeue(settled, uid, limits, dead);
        }
        self.dispatch(pressure);
        true
    }

    /// Delivers what waits to consumers that have room again (their session's outbox drained).
    pub(crate) fn resume(&mut self, pressure: &mut Pressure) {
        self.dispatch(pressure);
    }

    /// Takes acknowledged (or returned) messages off the unacknowledged bytes.
    fn settled(&mut self, messages: &[Waiting]) {
        let bytes: usize = messages.iter().map(|w| w.message.bytes()).sum();
        self.unacked_bytes -= bytes;
        if let Some(total) = &self.total {
            total.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Whether nothing waits and nobody consumes: the queue can go.
    pub(crate) fn is_idle(&self) -> bool {
        self.consumers.is_empty() && self.backlog.is_empty()
    }

    /// How many messages wait for a consumer, and how many are delivered and unacknowledged.
    pub(crate) fn depth(&self) -> (usize, usize) {
        (self.backlog.len(), self.consumers.iter().map(|c| c.unacked.len()).sum())
    }

    /// Counts a message dropped to make room (logged at DEBUG, and as the metric
    /// `stompede_messages_dropped_total`).
    fn count_dropped(&mut self, name: &str) {
        self.dropped += 1;
        let queue = match self.kind {
            Kind::PointToPoint => "queue",
            Kind::Subscription => "subscription",
        };
        metrics::counter!("stompede_messages_dropped_total", "where" => queue).increment(1);
        tracing::debug!(
            destination = name,
            dropped = self.dropped,
            "{queue} full: its oldest message was dropped"
        );
    }

    /// How many consumers it has.
    pub(crate) fn consumers(&self) -> usize {
        self.consumers.len()
    }

    /// Puts returned messages back at the front, in their order (point-to-point), or drops
    /// them (a subscription's queue).
    fn requeue(
        &mut self,
        returned: Vec<Waiting>,
        from: u64,
        limits: &QueueLimits,
        dead: &mut Vec<Arc<Message>>,
    ) {
        if self.kind == Kind::Subscription {
            return;
        }
        for mut waiting in returned.into_iter().rev() {
            if waiting.deliveries > limits.max_redeliveries {
                dead.push(waiting.message);
                continue;
            }
            waiting.last_consumer = from;
            self.push_front(waiting);
        }
    }

    /// Delivers waiting messages, round robin among the consumers with room.
    fn dispatch(&mut self, pressure: &mut Pressure) {
        while let Some(front) = self.backlog.front() {
            let Some(index) = self.pick(front.last_consumer) else { break };
            let Some(mut waiting) = self.pop_front() else { break };
            let sequence = self.next_sequence;
            let consumer = &mut self.consumers[index];
            let redelivered = waiting.deliveries > 0;
            match consumer.subscriber.push(&waiting.message, Delivered { redelivered }, pressure) {
                true => {
                    waiting.deliveries += 1;
                    self.next = index + 1;
                    if consumer.subscriber.acknowledges() {
                        self.next_sequence += 1;
                        let bytes = waiting.message.bytes();
                        consumer.order.insert(waiting.message.id, sequence);
                        consumer.unacked.insert(sequence, waiting);
                        // Unacknowledged messages count against the total until settled.
                        self.unacked_bytes += bytes;
                        if let Some(total) = &self.total {
                            total.fetch_add(bytes, Ordering::Relaxed);
                        }
                    }
                }
                false => {
                    // Its session ended: it unsubscribes soon; the message waits for another.
                    consumer.gone = true;
                    self.push_front(waiting);
                }
            }
        }
    }

    /// The next consumer with room, round robin from `next`, avoiding `avoid` when another has
    /// room.
    fn pick(&self, avoid: u64) -> Option<usize> {
        let n = self.consumers.len();
        let mut fallback = None;
        for k in 0..n {
            let i = (self.next + k) % n;
            let consumer = &self.consumers[i];
            if consumer.has_room() {
                if consumer.subscriber.uid != avoid {
                    return Some(i);
                }
                fallback = Some(i);
            }
        }
        fallback
    }

    fn push_back(&mut self, waiting: Waiting) {
        self.count_in(waiting.message.bytes());
        self.backlog.push_back(waiting);
    }

    fn push_front(&mut self, waiting: Waiting) {
        self.count_in(waiting.message.bytes());
        self.backlog.push_front(waiting);
    }

    fn pop_front(&mut self) -> Option<Waiting> {
        let waiting = self.backlog.pop_front()?;
        let bytes = waiting.message.bytes();
        self.backlog_bytes -= bytes;
        if let Some(total) = &self.total {
            total.fetch_sub(bytes, Ordering::Relaxed);
        }
        Some(waiting)
    }

    fn count_in(&mut self, bytes: usize) {
        self.backlog_bytes += bytes;
        if let Some(total) = &self.total {
            total.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(total) = &self.total {
            total.fetch_sub(self.backlog_bytes + self.unacked_bytes, Ordering::Relaxed);
        }
    }
}
