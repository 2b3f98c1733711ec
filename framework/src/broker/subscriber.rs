//! One subscription as the broker sees it: where its messages go and how they are headed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::options::{QueueLimits, SlowConsumerPolicy};
use super::queue::{Message, QueueCell};
use crate::locks::lock;
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

/// How many recently made subscription heads [`shared_head`] remembers.
const RECENT_HEADS: usize = 64;

/// Subscription heads made lately, for [`shared_head`].
static RECENT: Mutex<VecDeque<(Version, Bytes)>> = Mutex::new(VecDeque::new());

/// The MESSAGE head of a subscription (`MESSAGE` and its `subscription` header), shared with
/// any recent subscription that has the same one: most clients number their subscriptions
/// from the same start (stomp.js's first is `sub-0`), so thousands of subscriptions share a
/// handful of heads. The fan-out then recognises the head of a message's cached frame by its
/// address alone (see `PreparedMessage::contiguous_for`), without reading each subscription's
/// own copy: with many subscribers, that read was a cache miss per delivery (a fifth of the
/// broker's time at 1,000 subscribers). Bounded: the last [`RECENT_HEADS`] distinct heads.
fn shared_head(version: Version, subscription_id: &str) -> Bytes {
    shared_head_among(&RECENT, version, subscription_id)
}

/// [`shared_head`], remembering in `recent`.
fn shared_head_among(
    recent: &Mutex<VecDeque<(Version, Bytes)>>,
    version: Version,
    subscription_id: &str,
) -> Bytes {
    let head = message_head(version, &[(names::SUBSCRIPTION, subscription_id)]);
    let mut recent = lock(recent);
    if let Some((_, same)) = recent.iter().find(|(v, h)| *v == version && *h == head) {
        return same.clone();
    }
    if recent.len() == RECENT_HEADS {
        recent.pop_front();
    }
    recent.push_back((version, head.clone()));
    head
}

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
    /// Ends the publish: the listeners are called, as dropping it does; at once when the
    /// publish left nothing (most do: then there is not even a drop to run).
    #[inline]
    pub(crate) fn done(self) {
        if self.outboxes.capacity() == 0 && self.listeners.capacity() == 0 {
            // Two empty lists that never allocated: nothing to call, nothing to free.
            std::mem::forget(self);
        }
    }

    fn add(&mut self, outbox: &Arc<Outbox>) {
        if !self.outboxes.iter().any(|o| Arc::ptr_eq(o, outbox)) {
            self.outboxes.push(outbox.clone());
        }
    }
}

impl Drop for Pressure {
    fn drop(&mut self) {
        if self.listeners.is_empty() {
            return;
        }
        for (listener, message) in std::mem::take(&mut self.listeners) {
            // A listener sees the `message-id` among the headers (`Server::listen`).
            match message.prepared.headers_with_id() {
                std::borrow::Cow::Borrowed(_) => listener(&message.prepared),
                std::borrow::Cow::Owned(headers) => {
                    let body = message.prepared.body().clone();
                    listener(&PreparedMessage::new(headers, body));
                }
            }
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
        let head = shared_head(version, &subscription_id);
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
    pub(crate) fn deliver(
        &self,
        message: &Arc<Message>,
        limits: &QueueLimits,
        pressure: &mut Pressure,
    ) {
        match self.queue.get() {
            Some(queue) => {
                // A subscription's own queue drops its oldest when full: no Full comes back.
                let _ = queue.lock().offer(&queue.name, message.clone(), limits, pressure);
            }
            None => {
                self.push(message, Delivered::default(), pressure);
            }
        }
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
            let ack_id = format!("{}-{}", self.subscription_id, message.id);
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
            false => {
                let backpressure = self.policy == SlowConsumerPolicy::Backpressure;
                queue_frame(outbox, backpressure, frame, pressure)
            }
        }
    }

    /// What the fan-out needs to deliver a broadcast message to this subscription without
    /// looking at it again, if it takes the common path: a session's subscription that
    /// acknowledges nothing, drops nothing and has no queue of its own.
    fn direct(&self) -> Option<Direct> {
        let Delivery::Session { version, ack: AckMode::Auto, outbox, head } = &self.delivery else {
            return None;
        };
        if self.policy == SlowConsumerPolicy::DropOldest || self.queue.get().is_some() {
            return None;
        }
        Some(Direct {
            version: *version,
            backpressure: self.policy == SlowConsumerPolicy::Backpressure,
            outbox: outbox.clone(),
            head: head.clone(),
        })
    }
}

/// Queues `frame` in a session's outbox; with `Backpressure`, an outbox now over its limit
/// joins `pressure`. Returns false when the session is closed.
#[inline]
fn queue_frame(
    outbox: &Arc<Outbox>,
    backpressure: bool,
    frame: EncodedFrame,
    pressure: &mut Pressure,
) -> bool {
    let pushed = outbox.push(frame);
    pushed_into(outbox, backpressure, pushed, pressure);
    pushed
}

/// After a push into `outbox` (`pushed`: it went ahead): with `Backpressure`, an outbox now
/// over its limit joins `pressure`.
#[inline]
fn pushed_into(outbox: &Arc<Outbox>, backpressure: bool, pushed: bool, pressure: &mut Pressure) {
    if pushed && backpressure && outbox.over_limit() {
        pressure.add(outbox);
    }
}

/// A subscriber as a registry's list holds it, with what its common delivery needs beside it:
/// the fan-out reads the list in order and, for most subscriptions, touches only their
/// outboxes, not the subscribers themselves (with a thousand subscribers, reading each one's
/// fields was a cache miss per delivery, the largest single cost of a fan-out).
pub(crate) struct Listed {
    pub(crate) subscriber: Arc<Subscriber>,
    direct: Option<Direct>,
}

/// See [`Subscriber::direct`].
struct Direct {
    version: Version,
    backpressure: bool,
    outbox: Arc<Outbox>,
    head: Bytes,
}

impl Listed {
    /// Lists `subscriber`. Its path is decided now: a subscription's queue, acknowledgement
    /// mode and policy are set before it is registered, and never change.
    pub(crate) fn new(subscriber: Arc<Subscriber>) -> Listed {
        Listed { direct: subscriber.direct(), subscriber }
    }

    /// Asks for the subscription's outbox, a few deliveries ahead (see [`crate::prefetch`]).
    #[inline(always)]
    pub(crate) fn prefetch_outbox(&self) {
        if let Some(direct) = &self.direct {
            Outbox::prefetch(&direct.outbox);
        }
    }

    /// Asks for the queue slot the delivery will fill, once the outbox is in (see
    /// [`crate::prefetch`]).
    #[inline(always)]
    pub(crate) fn prefetch_slot(&self) {
        if let Some(direct) = &self.direct {
            direct.outbox.prefetch_slot();
        }
    }

    /// The version and head of the frame a direct delivery to this subscription takes, if it
    /// takes the direct path: what a message made for this delivery builds first.
    pub(crate) fn direct_head(&self) -> Option<(Version, &Bytes)> {
        self.direct.as_ref().map(|direct| (direct.version, &direct.head))
    }

    /// [`deliver`](Self::deliver) of a broadcast's message `made` on the publisher's stack:
    /// a direct delivery takes only its frame; one that keeps the message (a subscription
    /// with its own queue, acknowledgements or a lossy policy) gets `shared`, a copy in an
    /// `Arc` made the first time one is needed (which shares the frames either builds: see
    /// `PreparedMessage::copy`).
    #[inline(always)]
    pub(crate) fn deliver_made(
        &self,
        made: &Message,
        shared: &mut Option<Arc<Message>>,
        limits: &QueueLimits,
        pressure: &mut Pressure,
    ) {
        match &self.direct {
            Some(direct) => direct.deliver(&made.prepared, pressure),
            None => {
                let message = shared.get_or_insert_with(|| Arc::new(made.copy()));
                self.subscriber.deliver(message, limits, pressure);
            }
        }
    }

    /// Delivers a broadcast `message`, as [`Subscriber::deliver`] does.
    #[inline]
    pub(crate) fn deliver(
        &self,
        message: &Arc<Message>,
        limits: &QueueLimits,
        pressure: &mut Pressure,
    ) {
        match &self.direct {
            Some(direct) => direct.deliver(&message.prepared, pressure),
            None => self.subscriber.deliver(message, limits, pressure),
        }
    }
}

impl Direct {
    /// Pushes the frame of `prepared` for this subscription into its session's outbox.
    #[inline(always)]
    fn deliver(&self, prepared: &PreparedMessage, pressure: &mut Pressure) {
        let outbox = &self.outbox;
        let pushed = match prepared.made_frame(self.version, &self.head) {
            // The usual case: the frame built when the message was made.
            Some((len, make)) => outbox.push_with(len, make),
            None => outbox.push(prepared.contiguous_for(self.version, &self.head)),
        };
        pushed_into(outbox, self.backpressure, pushed, pressure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn subscriber(id: &str, ack: AckMode) -> (Subscriber, crate::outbox::OutboxReceiver) {
        let (outbox, receiver) = Outbox::new(1 << 20, Duration::from_secs(10));
        let subscriber = Subscriber::session(
            ByteStr::from(id.to_owned()),
            "/topic/t".into(),
            Version::V1_2,
            ack,
            outbox,
        );
        (subscriber, receiver)
    }

    fn head(subscriber: &Subscriber) -> &Bytes {
        match &subscriber.delivery {
            Delivery::Session { head, .. } => head,
            Delivery::Local(_) => panic!("a session's subscriber"),
        }
    }

    #[test]
    fn subscriptions_with_the_same_head_share_its_buffer() {
        // Its own list: the server-wide one is shared with the other tests.
        let recent = Mutex::new(VecDeque::new());
        let a = shared_head_among(&recent, Version::V1_2, "sub-0");
        let b = shared_head_among(&recent, Version::V1_2, "sub-0");
        let c = shared_head_among(&recent, Version::V1_2, "sub-1");
        let d = shared_head_among(&recent, Version::V1_0, "sub-0");
        assert_eq!(a.as_ptr(), b.as_ptr(), "one buffer for one head");
        assert_ne!(a.as_ptr(), c.as_ptr());
        assert_ne!(a.as_ptr(), d.as_ptr(), "one per version");
        assert_eq!(&c[..], b"MESSAGE\nsubscription:sub-1\n");
        // A session's subscription takes its head from the server-wide list.
        let (subscriber, _receiver) = subscriber("shared-head-test", AckMode::Auto);
        assert_eq!(&head(&subscriber)[..], b"MESSAGE\nsubscription:shared-head-test\n");
    }

    #[test]
    fn the_shared_heads_remembered_are_bounded() {
        // Its own list: the server-wide one is shared with the other tests.
        let recent = Mutex::new(VecDeque::new());
        let first = shared_head_among(&recent, Version::V1_2, "sub-0");
        for n in 1..=RECENT_HEADS * 3 {
            let _ = shared_head_among(&recent, Version::V1_2, &format!("sub-{n}"));
        }
        assert_eq!(lock(&recent).len(), RECENT_HEADS);
        let again = shared_head_among(&recent, Version::V1_2, "sub-0");
        assert_eq!(again, first);
        assert_ne!(again.as_ptr(), first.as_ptr(), "forgotten: a head of its own");
    }

    #[test]
    fn only_plain_session_subscriptions_are_delivered_directly() {
        let (auto, _r1) = subscriber("direct-test", AckMode::Auto);
        assert!(Listed::new(Arc::new(auto)).direct.is_some());
        let (client, _r2) = subscriber("direct-test", AckMode::Client);
        assert!(Listed::new(Arc::new(client)).direct.is_none(), "acknowledging: its own queue");
        let (lossy, _r3) = subscriber("direct-test", AckMode::Auto);
        let lossy = lossy.with_flow(usize::MAX, SlowConsumerPolicy::DropOldest);
        assert!(Listed::new(Arc::new(lossy)).direct.is_none(), "lossy: counts what it drops");
        let local = Subscriber::local("/topic/t".into(), Arc::new(|_: &PreparedMessage| {}));
        assert!(Listed::new(Arc::new(local)).direct.is_none());
    }

    #[test]
    fn a_direct_delivery_queues_the_frame_a_full_delivery_would() {
        let mut headers = crate::stomp::Headers::new();
        headers.push("destination", "/topic/t");
        let prepared = PreparedMessage::new(headers, Bytes::from_static(b"hi"));
        let message = Arc::new(Message::new(prepared, 7, "/topic/t".into()));
        let (auto, mut direct_rx) = subscriber("same-frame-test", AckMode::Auto);
        let (auto_too, mut full_rx) = subscriber("same-frame-test", AckMode::Auto);
        let limits = QueueLimits::default();
        let mut pressure = Pressure::default();
        Listed::new(Arc::new(auto)).deliver(&message, &limits, &mut pressure);
        auto_too.deliver(&message, &limits, &mut pressure);
        let (mut direct, mut full) =
            (crate::outbox::Batch::default(), crate::outbox::Batch::default());
        direct_rx.drain_now(&mut direct);
        full_rx.drain_now(&mut full);
        let bytes = |batch: &crate::outbox::Batch| -> Vec<Bytes> {
            batch.iter().map(EncodedFrame::to_bytes).collect()
        };
        assert_eq!(bytes(&direct), bytes(&full));
        assert_eq!(bytes(&direct).len(), 1);
    }

    /// A head that a direct and a keeping subscription of one broadcast share (not the first
    /// head, whose frame is built with the message) is built once, whichever comes first: both
    /// get the same buffer.
    #[test]
    fn a_head_shared_by_direct_and_keeping_subscriptions_is_built_once() {
        for keeping_first in [false, true] {
            let broker = crate::broker::SimpleBroker::default();
            // A lossy subscription keeps the message (it counts what it drops), with the same
            // head as a direct one of the same id.
            let mut subscriptions = vec![("sub-0", false)];
            let pair = [("sub-1", false), ("sub-1", true)];
            match keeping_first {
                false => subscriptions.extend(pair),
                true => subscriptions.extend(pair.into_iter().rev()),
            }
            let mut receivers = Vec::new();
            for (id, lossy) in subscriptions {
                let (mut subscriber, receiver) = subscriber(id, AckMode::Auto);
                if lossy {
                    subscriber = subscriber.with_flow(usize::MAX, SlowConsumerPolicy::DropOldest);
                }
                let subscriber = Arc::new(subscriber);
                assert_eq!(Listed::new(subscriber.clone()).direct.is_none(), lossy);
                broker.subscribe(subscriber);
                receivers.push(receiver);
            }
            let delivered =
                broker.publish(&"/topic/t".into(), &crate::stomp::Headers::new(), "hi".into());
            assert_eq!(delivered, 3);
            let frames: Vec<Bytes> = receivers
                .iter_mut()
                .map(|receiver| {
                    let mut batch = crate::outbox::Batch::default();
                    receiver.drain_now(&mut batch);
                    assert_eq!(batch.len(), 1);
                    batch.iter().next().map(|frame| frame.head().clone()).unwrap_or_default()
                })
                .collect();
            assert_eq!(frames[1], frames[2], "the same frame (keeping first: {keeping_first})");
            assert!(frames[1].starts_with(b"MESSAGE\nsubscription:sub-1\n"));
            assert_eq!(
                frames[1].as_ptr(),
                frames[2].as_ptr(),
                "one buffer, built once (keeping first: {keeping_first})"
            );
        }
    }

    #[test]
    fn a_broadcast_reaches_direct_and_keeping_subscriptions_alike() {
        // The message is made on the publisher's stack; the acknowledging subscription keeps
        // a shared copy of it. Both kinds, before and after each other.
        let broker = crate::broker::SimpleBroker::default();
        let subscriptions = [
            ("mixed-a", AckMode::Auto),
            ("mixed-b", AckMode::Client),
            ("mixed-c", AckMode::Auto),
            ("mixed-d", AckMode::ClientIndividual),
        ];
        let mut receivers = Vec::new();
        for (id, ack) in subscriptions {
            let (subscriber, receiver) = subscriber(id, ack);
            broker.subscribe(Arc::new(subscriber));
            receivers.push((id, receiver));
        }
        let mut headers = crate::stomp::Headers::new();
        headers.push("content-type", "text/plain");
        for body in ["first", "second"] {
            let delivered = broker.publish(&"/topic/t".into(), &headers, Bytes::from(body));
            assert_eq!(delivered, 4);
        }
        let mut ids = Vec::new();
        for (id, receiver) in &mut receivers {
            let mut batch = crate::outbox::Batch::default();
            receiver.drain_now(&mut batch);
            let frames: Vec<Bytes> = batch.iter().map(EncodedFrame::to_bytes).collect();
            assert_eq!(frames.len(), 2, "{id}");
            for (frame, body) in frames.iter().zip(["first", "second"]) {
                let text = std::str::from_utf8(frame).expect("UTF-8");
                assert!(text.starts_with("MESSAGE\n"), "{text}");
                assert!(text.contains(&format!("\nsubscription:{id}\n")), "{text}");
                assert!(text.contains("\ncontent-type:text/plain\n"), "{text}");
                assert!(text.ends_with(&format!("\n\n{body}\0")), "{text}");
                let message_id = text.lines().find_map(|l| l.strip_prefix("message-id:"));
                ids.push((body, message_id.expect("a message-id").to_owned()));
            }
        }
        // Every subscription saw the same id for the same message, and the two differ.
        for body in ["first", "second"] {
            let of: Vec<_> = ids.iter().filter(|(b, _)| *b == body).map(|(_, id)| id).collect();
            assert!(of.windows(2).all(|w| w[0] == w[1]), "{body}: {of:?}");
        }
        assert_ne!(ids[0].1, ids[1].1);
    }
}
