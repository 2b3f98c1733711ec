//! The in-memory broker: one process, every destination, no persistence.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::options::BrokerOptions;
use super::queue::{Full, Kind, Message, QueueCell, Settlement};
use super::registry::{KeptTopic, Registry, Visit};
use super::subscriber::{Delivered, Listed, Pressure, Subscriber};
use super::{Body, Pattern};
use crate::locks::lock;
use crate::stomp::{ByteStr, Headers, MessageTemplate, PreparedMessage, Version, names};

/// The SEND header that asks for the message to be retained (`retain:true`).
pub(crate) const RETAIN: &str = "retain";

/// Shards of the retained store (and of the lock that orders a subscription's retained
/// message before what is published after it).
const RETAINED_SHARDS: usize = 16;

/// The in-memory broker, Spring's "simple broker", and more where asked:
///
/// - subscriptions on exact destinations and on patterns (`*` within a segment, `**` across
///   segments, with `/` and `.` both separating segments), fan-out that encodes each message
///   once;
/// - by default `/topic` and `/queue` behave alike, as in Spring's simple broker: every
///   subscriber of a destination receives every message; prefixes made point-to-point
///   ([`ServerBuilder::point_to_point`](crate::ServerBuilder::point_to_point)) are queues whose
///   messages each go to one consumer, and wait, bounded, while nobody consumes;
/// - subscriptions with `ack:client` or `ack:client-individual` get each message until it is
///   acknowledged, at most their prefetch at a time; a NACK redelivers (queues) or drops
///   (topics), as RabbitMQ does;
/// - retained messages: the last message of a destination under a retaining prefix, or sent
///   with `retain:true`, goes to each new subscriber first.
///
/// `docs/broker.md` describes each with its limits.
#[derive(Default)]
pub struct SimpleBroker {
    registry: Registry,
    /// Subscriptions to user destinations, by their resolved name (`/queue/reply-user{session}`):
    /// apart from `registry`, so that no client subscription (a pattern such as `/queue/**`, or
    /// the resolved name itself) can ever receive another session's user messages.
    users: Registry,
    next_message_id: AtomicU64,
    options: BrokerOptions,
    /// Point-to-point queues by destination.
    queues: Mutex<HashMap<ByteStr, Arc<QueueCell>>>,
    /// The body bytes all point-to-point queues hold while waiting.
    queued_bytes: Arc<AtomicUsize>,
    retained: Retained,
    /// How many publishes had a template's headers (for the tests).
    #[cfg(test)]
    pub(crate) templated: AtomicUsize,
}

/// Why the broker refused a message: the publisher's ERROR says this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) String);

/// One shard of the retained store: the retained message of each of its destinations.
type RetainedShard = Mutex<HashMap<ByteStr, Arc<Message>>>;

/// The last retained message of each destination that has one.
struct Retained {
    shards: Box<[RetainedShard]>,
    count: AtomicUsize,
    bytes: AtomicUsize,
}

impl Default for Retained {
    fn default() -> Self {
        Retained {
            shards: (0..RETAINED_SHARDS).map(|_| Mutex::default()).collect(),
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }
}

impl Retained {
    fn shard(&self, destination: &str) -> &RetainedShard {
        &self.shards[super::shard_index(destination, RETAINED_SHARDS)]
    }

    fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }
}

impl SimpleBroker {
    /// An empty broker, with Spring's behaviour (every destination broadcast, nothing
    /// retained).
    pub fn new() -> Self {
        SimpleBroker::default()
    }

    /// An empty broker with the server's broker settings.
    pub(crate) fn with_options(options: BrokerOptions) -> Self {
        SimpleBroker { options, ..SimpleBroker::default() }
    }

    /// Delivers a message: to one consumer of a point-to-point queue (or queued, when none
    /// has room), else to every matching subscription. Returns how many received it now.
    ///
    /// `headers` are the publisher's: all but the per-SEND ones (`receipt`, `transaction`,
    /// `content-length`…) are forwarded, `content-type` included. A message the broker
    /// refuses (a full queue, a full retained store) is logged and dropped; a client's SEND
    /// gets an ERROR instead.
    pub fn publish(&self, destination: &ByteStr, headers: &Headers, body: Bytes) -> usize {
        match self.publish_with(
            destination,
            Cow::Borrowed(headers).into(),
            body.into(),
            &mut Pressure::default(),
        ) {
            Ok(delivered) => delivered,
            Err(Refused(why)) => {
                tracing::warn!(%destination, "message dropped: {why}");
                0
            }
        }
    }

    /// [`publish`](Self::publish), reporting a refusal, and the outboxes of
    /// `Backpressure` subscribers it left over their limit.
    pub(crate) fn publish_with(
        &self,
        destination: &ByteStr,
        headers: Shared<'_>,
        body: Body,
        pressure: &mut Pressure,
    ) -> Result<usize, Refused> {
        #[cfg(test)]
        if matches!(headers, Shared::Template(_)) {
            self.templated.fetch_add(1, Ordering::Relaxed);
        }
        // The header counts only where the application allowed it (`retain_header`).
        let retain = self.options.retain_header && headers.asks_to_retain();
        if self.options.is_point_to_point(destination) {
            if retain {
                return Err(Refused(format!(
                    "{destination} is a point-to-point queue: only broadcast destinations retain messages (drop the retain header)"
                )));
            }
            let message = self.prepare_next(destination, headers, body, None);
            return self.enqueue(message, pressure);
        }
        let retain = retain || self.options.retains(destination);
        if !retain && self.retained.is_empty() {
            return Ok(self.broadcast(destination, headers, body, pressure));
        }
        let message = self.prepare_next(destination, headers, body, None);
        // Ordered with subscriptions to this destination: a new subscriber gets either the
        // old retained message and then this one, or only this one as retained.
        let mut shard = lock(self.retained.shard(destination));
        if retain {
            self.store_retained(&mut shard, &message)?;
        }
        Ok(self.fan_out(&message, pressure))
    }

    /// Delivers `message` to every matching subscription.
    fn fan_out(&self, message: &Arc<Message>, pressure: &mut Pressure) -> usize {
        let limits = &self.options.queue_limits;
        let mut delivered = 0;
        self.registry.for_each_match(&message.destination, |listed: &Listed| {
            listed.deliver(message, limits, pressure);
            delivered += 1;
        });
        delivered
    }

    /// [`fan_out`](Self::fan_out) of a message not made yet (nothing is retained): it is made
    /// at the first matching subscription, with the frame that one takes built at once (every
    /// later subscription with the same head shares it). With no subscription, it is never
    /// made.
    fn broadcast(
        &self,
        destination: &ByteStr,
        headers: Shared<'_>,
        body: Body,
        pressure: &mut Pressure,
    ) -> usize {
        let mut broadcast = Broadcast {
            broker: self,
            destination,
            parts: Some((headers, body)),
            made: None,
            shared: None,
            delivered: 0,
            pressure,
        };
        match broadcast.parts.as_ref().map(|(headers, _)| headers) {
            Some(Shared::Template(template)) => {
                let kept = &template.topic;
                self.registry.for_each_match_kept(destination, kept, &mut broadcast);
            }
            _ => self.registry.for_each_match(destination, &mut broadcast),
        }
        broadcast.delivered
    }

    /// The message of a [`broadcast`](Self::broadcast), made at its first subscription
    /// `listed` from `parts` (taken: once only) and put in `made` (empty), which it returns.
    /// Its first delivery's frame is built once it is in `made`, where it stays: built before,
    /// on the way, the message was moved once more (its 176 bytes of `PreparedMessage`, a
    /// `memcpy` call). Out of line, so that the fan-out's loop stays small.
    #[inline(never)]
    fn make_for<'m>(
        &self,
        listed: &Listed,
        destination: &ByteStr,
        parts: &mut Option<(Shared<'_>, Body)>,
        made: &'m mut Option<Message>,
    ) -> Option<&'m Message> {
        let (headers, body) = parts.take()?;
        let id = self.next_id();
        // Moved into the slot once (224 bytes): the compiler does not make it in place across
        // a call that may unwind.
        let message = made.get_or_insert_with(|| prepare(id, destination, headers, body));
        if let Some((version, head)) = listed.direct_head() {
            message.prepared.build_first_frame(version, head);
        }
        Some(message)
    }

    /// Keeps `message` as its destination's retained message (an empty body clears it),
    /// within the retained limits.
    fn store_retained(
        &self,
        shard: &mut HashMap<ByteStr, Arc<Message>>,
        message: &Arc<Message>,
    ) -> Result<(), Refused> {
        let retained = &self.retained;
        let old_bytes = shard.get(&message.destination).map(|m| m.bytes());
        if message.prepared.body().is_empty() {
            if let Some(old) = old_bytes {
                shard.remove(&message.destination);
                retained.count.fetch_sub(1, Ordering::AcqRel);
                retained.bytes.fetch_sub(old, Ordering::AcqRel);
            }
            return Ok(());
        }
        let limits = &self.options.retained_limits;
        let count = retained.count.load(Ordering::Acquire) + usize::from(old_bytes.is_none());
        let bytes =
            retained.bytes.load(Ordering::Acquire) - old_bytes.unwrap_or(0) + message.bytes();
        if count > limits.max_messages || bytes > limits.max_bytes {
            return Err(Refused(format!(
                "cannot retain the message for {}: retained messages would number {count} and hold {bytes} bytes, over the limits of {} messages and {} bytes (clear some with an empty retained SEND, or raise retained_limits)",
                message.destination, limits.max_messages, limits.max_bytes
            )));
        }
        if old_bytes.is_none() {
            retained.count.fetch_add(1, Ordering::AcqRel);
        }
        retained.bytes.fetch_add(message.bytes(), Ordering::AcqRel);
        retained.bytes.fetch_sub(old_bytes.unwrap_or(0), Ordering::AcqRel);
        shard.insert(message.destination.clone(), message.clone());
        Ok(())
    }

    /// Puts a message in its point-to-point queue, opening the queue if needed.
    fn enqueue(&self, message: Arc<Message>, pressure: &mut Pressure) -> Result<usize, Refused> {
        let limits = &self.options.queue_limits;
        loop {
            let cell = {
                let mut queues = lock(&self.queues);
                match queues.get(&message.destination) {
                    Some(cell) => cell.clone(),
                    None if queues.len() >= limits.max_queues => {
                        return Err(Refused(format!(
                            "cannot open queue {}: {} queues exist, the most allowed (max_queues); consume or remove queues, or raise the queue limits",
                            message.destination,
                            queues.len()
                        )));
                    }
                    None => self.open_queue(&mut queues, &message.destination),
                }
            };
            let mut queue = cell.lock();
            if queue.removed {
                continue;
            }
            let (before, _) = queue.depth();
            if let Err(Full(why)) = queue.offer(&cell.name, message, limits, pressure) {
                // A queue opened for this SEND is not left behind.
                self.remove_if_idle(&cell, &mut queue);
                return Err(Refused(why));
            }
            let (after, _) = queue.depth();
            return Ok(usize::from(after <= before));
        }
    }

    fn open_queue(
        &self,
        queues: &mut HashMap<ByteStr, Arc<QueueCell>>,
        name: &ByteStr,
    ) -> Arc<QueueCell> {
        let total = Some(self.queued_bytes.clone());
        let cell = Arc::new(QueueCell::new(name.clone(), Kind::PointToPoint, total));
        queues.insert(name.clone(), cell.clone());
        cell
    }

    /// Takes an idle queue out of the map (its lock held by the caller).
    fn remove_if_idle(
        &self,
        cell: &Arc<QueueCell>,
        queue: &mut MutexGuard<'_, super::queue::Queue>,
    ) {
        if queue.is_idle() && !queue.removed {
            queue.removed = true;
            let mut queues = lock(&self.queues);
            if queues.get(&cell.name).is_some_and(|c| Arc::ptr_eq(c, cell)) {
                queues.remove(&cell.name);
            }
        }
    }

    /// The next message id (unique within this broker; its text is written per frame).
    #[inline(always)]
    fn next_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
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
        let id = self.next_id();
        deliver_one(subscriber, id, destination, headers, body);
    }

    /// The message every subscriber of one publish shares, with the next message id; with
    /// `first`, its frame for that version and subscription head built now (see `prepare`).
    fn prepare_next(
        &self,
        destination: &ByteStr,
        headers: Shared<'_>,
        body: Body,
        first: Option<(Version, &Bytes)>,
    ) -> Arc<Message> {
        let id = self.next_id();
        let mut message = prepare(id, destination, headers, body);
        if let Some((version, head)) = first {
            message.prepared.build_first_frame(version, head);
        }
        Arc::new(message)
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
        let message = self.prepare_next(shown, Cow::Borrowed(headers).into(), body.into(), None);
        let (limits, mut pressure) = (&self.options.queue_limits, Pressure::default());
        let mut delivered = 0;
        self.users.for_each_match(resolved, |listed: &Listed| {
            listed.deliver(&message, limits, &mut pressure);
            delivered += 1;
        });
        delivered
    }

    pub(crate) fn subscribe(&self, subscriber: Arc<Subscriber>) {
        self.subscribe_with(subscriber, &mut Pressure::default());
    }

    /// Registers a subscription: a consumer of its point-to-point queue, or a subscriber of
    /// its destination or pattern, which then gets the retained messages it covers.
    pub(crate) fn subscribe_with(&self, subscriber: Arc<Subscriber>, pressure: &mut Pressure) {
        if subscriber.user {
            self.own_queue(&subscriber);
            self.users.add(subscriber);
            return;
        }
        if self.options.is_point_to_point(&subscriber.destination)
            && !Pattern::is_pattern(&subscriber.destination)
        {
            return self.consume(subscriber, pressure);
        }
        self.own_queue(&subscriber);
        if Pattern::is_pattern(&subscriber.destination) {
            // Every shard, in order: no retained message changes while the pattern joins.
            let mut shards: Vec<_> = self.retained.shards.iter().map(lock).collect();
            self.registry.add(subscriber.clone());
            if self.retained.is_empty() {
                return;
            }
            let pattern = Pattern::parse(&subscriber.destination);
            for shard in &mut shards {
                for (destination, message) in shard.iter() {
                    if pattern.matches(destination) {
                        self.deliver_retained(&subscriber, message, pressure);
                    }
                }
            }
            return;
        }
        let shard = lock(self.retained.shard(&subscriber.destination));
        self.registry.add(subscriber.clone());
        if let Some(message) = shard.get(&subscriber.destination) {
            self.deliver_retained(&subscriber, message, pressure);
        }
    }

    fn deliver_retained(
        &self,
        subscriber: &Subscriber,
        message: &Arc<Message>,
        pressure: &mut Pressure,
    ) {
        match subscriber.queue.get() {
            // An acknowledging subscription: through its queue, like any message of it.
            Some(_) => subscriber.deliver(message, &self.options.queue_limits, pressure),
            None => {
                subscriber.push_marked(message, Delivered::default(), true, pressure);
            }
        }
    }

    /// A subscription that acknowledges gets a queue of its own (unacknowledged messages,
    /// and those past its prefetch).
    fn own_queue(&self, subscriber: &Arc<Subscriber>) {
        if !subscriber.acknowledges() {
            return;
        }
        let total = Some(self.queued_bytes.clone());
        let cell = QueueCell::new(subscriber.destination.clone(), Kind::Subscription, total);
        let mut pressure = Pressure::default();
        cell.lock().add_consumer(subscriber.clone(), subscriber.prefetch, &mut pressure);
        let _ = subscriber.queue.set(Arc::new(cell));
    }

    /// A consumer joins its point-to-point queue and gets what waits there.
    fn consume(&self, subscriber: Arc<Subscriber>, pressure: &mut Pressure) {
        loop {
            let cell = {
                let mut queues = lock(&self.queues);
                match queues.get(&subscriber.destination) {
                    Some(cell) => cell.clone(),
                    None => self.open_queue(&mut queues, &subscriber.destination),
                }
            };
            let mut queue = cell.lock();
            if queue.removed {
                continue;
            }
            let _ = subscriber.queue.set(cell.clone());
            queue.add_consumer(subscriber.clone(), subscriber.prefetch, pressure);
            return;
        }
    }

    pub(crate) fn unsubscribe(&self, subscriber: &Subscriber) {
        if subscriber.user {
            self.users.remove(subscriber);
        } else if !self.options.is_point_to_point(&subscriber.destination)
            || Pattern::is_pattern(&subscriber.destination)
        {
            self.registry.remove(subscriber);
        }
        let Some(cell) = subscriber.queue.get() else { return };
        let (mut dead, mut pressure) = (Vec::new(), Pressure::default());
        {
            let mut queue = cell.lock();
            queue.remove_consumer(
                subscriber.uid,
                &self.options.queue_limits,
                &mut dead,
                &mut pressure,
            );
            if self.options.is_point_to_point(&cell.name) && !subscriber.user {
                self.remove_if_idle(cell, &mut queue);
            }
        }
        self.dead_letter(&cell.name, dead);
    }

    /// Delivers what waits for `subscriber` in its queue, now that its session has room again.
    pub(crate) fn resume(&self, subscriber: &Subscriber) {
        let Some(cell) = subscriber.queue.get() else { return };
        let mut pressure = Pressure::default();
        cell.lock().resume(&mut pressure);
    }

    /// Settles a message delivered to `subscriber` (ACK or NACK; `cumulative` for `ack:client`).
    /// Returns false when it has no such message awaiting acknowledgement.
    pub(crate) fn settle(&self, subscriber: &Subscriber, settlement: Settlement) -> bool {
        let Some(cell) = subscriber.queue.get() else { return false };
        let (mut dead, mut pressure) = (Vec::new(), Pressure::default());
        let limits = &self.options.queue_limits;
        let known =
            cell.lock().settle(subscriber.uid, settlement, limits, &mut dead, &mut pressure);
        self.dead_letter(&cell.name, dead);
        known
    }

    /// Sends messages redelivered too often to the dead-letter destination.
    fn dead_letter(&self, queue: &ByteStr, dead: Vec<Arc<Message>>) {
        let target = ByteStr::from(self.options.dead_letter.clone());
        for message in dead {
            let max = self.options.queue_limits.max_redeliveries;
            if *queue == target {
                // A dead letter nobody acknowledges: moving it into its own queue again would
                // loop for ever.
                tracing::warn!(
                    queue = %queue,
                    message_id = message.id,
                    "dead letter redelivered {max} times without being acknowledged; dropped"
                );
                continue;
            }
            tracing::warn!(
                queue = %queue,
                message_id = message.id,
                dead_letter = %target,
                "message redelivered {max} times without being acknowledged; moved to the dead-letter destination"
            );
            let mut headers = Headers::with_capacity(message.prepared.headers().len() + 1);
            for (name, value) in message.prepared.headers().entries() {
                const REPLACED: [&str; 3] =
                    [names::DESTINATION, names::MESSAGE_ID, "original-destination"];
                if !REPLACED.contains(&name.as_str()) {
                    headers.push(name.clone(), value.clone());
                }
            }
            headers.push("original-destination", queue.clone());
            let body = message.prepared.body().clone();
            if let Err(Refused(why)) = self.publish_with(
                &target,
                Shared::Given(Cow::Owned(headers)),
                body.into(),
                &mut Pressure::default(),
            ) {
                tracing::warn!(dead_letter = %target, "dead letter dropped: {why}");
            }
        }
    }

    /// How many subscriptions are registered (user destinations and queue consumers
    /// included).
    pub fn subscription_count(&self) -> usize {
        self.registry.len() + self.users.len() + self.consumer_count()
    }

    fn consumer_count(&self) -> usize {
        let queues: Vec<_> = lock(&self.queues).values().cloned().collect();
        queues.iter().map(|cell| cell.lock().consumers()).sum()
    }

    /// How many exact destinations have at least one subscriber (each session's resolved
    /// user destinations, and every point-to-point queue, included).
    pub fn destination_count(&self) -> usize {
        self.registry.destinations() + self.users.destinations() + lock(&self.queues).len()
    }

    /// Why a SUBSCRIBE to `destination` may not open its point-to-point queue (`max_queues`
    /// reached), if that is so.
    pub(crate) fn refuse_new_queue(&self, destination: &str) -> Option<String> {
        if !self.options.is_point_to_point(destination) || Pattern::is_pattern(destination) {
            return None;
        }
        let queues = lock(&self.queues);
        let max = self.options.queue_limits.max_queues;
        (!queues.contains_key(destination) && queues.len() >= max).then(|| {
            format!(
                "cannot open queue {destination}: {} queues exist, the most allowed (max_queues); consume or remove queues, or raise the queue limits",
                queues.len()
            )
        })
    }

    /// How many messages wait in a point-to-point queue for a consumer, and how many were
    /// delivered and are not yet acknowledged (`None`: no such queue).
    pub fn queue_depth(&self, destination: &str) -> Option<(usize, usize)> {
        let cell = lock(&self.queues).get(destination).cloned()?;
        let depth = cell.lock().depth();
        Some(depth)
    }

    /// How many destinations hold a retained message.
    pub fn retained_count(&self) -> usize {
        self.retained.count.load(Ordering::Acquire)
    }
}

/// A [`SimpleBroker::broadcast`] under way: what its fan-out's loop carries from one
/// subscription to the next.
struct Broadcast<'a, 'h> {
    broker: &'a SimpleBroker,
    destination: &'a ByteStr,
    /// The publisher's headers and body, until the message is made of them.
    parts: Option<(Shared<'h>, Body)>,
    /// The message, made at the first matching subscription, on the stack.
    made: Option<Message>,
    /// A copy of it in an `Arc`, for the deliveries that keep it (see `Listed::deliver_made`).
    shared: Option<Arc<Message>>,
    delivered: usize,
    pressure: &'a mut Pressure,
}

impl Visit for &mut Broadcast<'_, '_> {
    #[inline(always)]
    fn visit(&mut self, listed: &Listed) {
        let message = match &mut self.made {
            Some(message) => &*message,
            made @ None => {
                match self.broker.make_for(listed, self.destination, &mut self.parts, made) {
                    Some(message) => message,
                    None => return,
                }
            }
        };
        let limits = &self.broker.options.queue_limits;
        listed.deliver_made(message, &mut self.shared, limits, self.pressure);
        self.delivered += 1;
    }
}

/// The message every subscriber of one publish shares, with message id `id`. Not shared yet:
/// a broadcast keeps it on its stack (see `Broadcast`), the other paths put it in an `Arc`;
/// either may then build the frame of its first delivery in it
/// (`PreparedMessage::build_first_frame`), where it stays (building it here, on the way,
/// moved the message's 176 bytes of `PreparedMessage`, a `memcpy` call, once more).
#[inline]
fn prepare(id: u64, destination: &ByteStr, headers: Shared<'_>, body: Body) -> Message {
    // The id is kept apart from the headers (`PreparedMessage::with_message_id`): the frames
    // write it after the destination, and no text of it is made for every message.
    let prepared = match headers {
        Shared::Given(headers) => {
            let shared = shared_headers(destination, headers);
            PreparedMessage::with_known_utf8(shared, body.bytes, body.known_utf8)
        }
        Shared::Template(template) => {
            debug_assert_eq!(
                template.destination, *destination,
                "a template of another destination"
            );
            PreparedMessage::from_template(template.message.clone(), body.bytes, body.known_utf8)
        }
    };
    Message::new(prepared.with_message_id(id), id, destination.clone())
}

/// What every subscriber of a message gets of the publisher's `headers`: `destination` first,
/// then the [`forwarded`] ones.
fn shared_headers(destination: &ByteStr, headers: Cow<'_, Headers>) -> Headers {
    match headers {
        // A client's SEND gives its headers up: they are filtered in place, no copy.
        Cow::Owned(mut shared) => {
            shared.retain_after(names::DESTINATION, destination, |name, _| forwarded(name));
            shared
        }
        Cow::Borrowed(headers) => {
            let mut shared = Headers::with_capacity(headers.len() + 1);
            shared.push(ByteStr::from_static(names::DESTINATION), destination.clone());
            for (name, value) in headers.entries() {
                if forwarded(name) {
                    shared.push(name.clone(), value.clone());
                }
            }
            shared
        }
    }
}

/// The shared headers of a publish: the publisher's (a client's SEND gives its own up), or a
/// [`SendTemplate`]'s, made of the same headers earlier.
pub(crate) enum Shared<'a> {
    Given(Cow<'a, Headers>),
    Template(&'a SendTemplate),
}

impl<'a> From<Cow<'a, Headers>> for Shared<'a> {
    fn from(headers: Cow<'a, Headers>) -> Self {
        Shared::Given(headers)
    }
}

impl Shared<'_> {
    /// The publisher's headers, or the template's (those subscribers get).
    pub(crate) fn headers(&self) -> &Headers {
        match self {
            Shared::Given(headers) => headers,
            Shared::Template(template) => template.message.headers(),
        }
    }

    /// Whether the publisher asked for the message to be retained (`retain:true`).
    fn asks_to_retain(&self) -> bool {
        match self {
            Shared::Given(headers) => headers.get(RETAIN).is_some_and(|v| v == "true"),
            Shared::Template(template) => template.retain,
        }
    }
}

/// A client's SEND made ready to be published again: a publisher that sends the same head
/// again and again (the same destination and headers; see the session's repeated SENDs)
/// publishes each body with it, and its messages share headers filtered and encoded once.
/// Publishing with it is publishing a SEND with those headers: every check that depends on
/// more than the headers (retained messages, queues, the subscriptions) is made each time.
pub(crate) struct SendTemplate {
    destination: ByteStr,
    /// Whether the SEND asked to be retained (its `retain` header is not forwarded).
    retain: bool,
    message: Arc<MessageTemplate>,
    /// The destination's subscriber list, from the last publish.
    topic: KeptTopic,
}

impl SendTemplate {
    /// The template of a SEND to `destination` with `headers` (its own, as received: a copy
    /// is kept, not the buffer they were read into).
    pub(crate) fn new(destination: &ByteStr, headers: &Headers) -> SendTemplate {
        let retain = Shared::Given(Cow::Borrowed(headers)).asks_to_retain();
        let shared = shared_headers(destination, Cow::Borrowed(headers));
        let message = Arc::new(MessageTemplate::new(&shared));
        let destination = ByteStr::from(destination.as_str().to_owned());
        SendTemplate { destination, retain, message, topic: KeptTopic::default() }
    }

    /// The destination.
    pub(crate) fn destination(&self) -> &ByteStr {
        &self.destination
    }
}

/// Whether a publisher's header reaches subscribers: not the per-SEND ones, nor the ones the
/// broker sets per delivery (a publisher may not fake them).
fn forwarded(name: &str) -> bool {
    !matches!(
        name,
        names::DESTINATION
            | names::MESSAGE_ID
            | names::SUBSCRIPTION
            | names::ACK
            | names::CONTENT_LENGTH
            | names::RECEIPT
            | names::TRANSACTION
            | RETAIN
            | "redelivered"
            | "retained"
            | "missed-messages"
    )
}

/// Delivers a message, with message id `id`, to one subscription only, as if published to
/// `destination` (the reply of a subscribe mapping: no broker involved).
pub(crate) fn deliver_one(
    subscriber: &Subscriber,
    id: u64,
    destination: &ByteStr,
    headers: &Headers,
    body: Bytes,
) {
    let message = Arc::new(prepare(id, destination, Cow::Borrowed(headers).into(), body.into()));
    let mut pressure = Pressure::default();
    subscriber.push(&message, Delivered::default(), &mut pressure);
}
