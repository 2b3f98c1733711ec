//! The relay's system connection: what the application sends (template, handlers' replies),
//! and the subscriptions the node shares: in-process listeners, and the clients' plain topic
//! subscriptions (auto acknowledgement, no broker-specific headers). Those are subscribed once
//! per destination and node, and each message is fanned out locally, encoded once, as the
//! in-memory broker does: the broker sends one copy per node instead of one per client.
//!
//! Which destinations are subscribed is state, not a queue of requests: changes only record
//! what is wanted and wake the connection's task, which brings the broker in line (SUBSCRIBE
//! what is missing, UNSUBSCRIBE what is no longer wanted), after each change and after each
//! reconnection. A shared subscription is confirmed by the broker's RECEIPT; clients' receipts
//! for it wait until then.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::StompBrokerRelay;
use super::upstream::{self, Upstream};
use crate::broker::Subscriber;
use crate::broker::queue::Message;
use crate::broker::subscriber::{Delivered, Pressure};
use crate::locks::lock;
use crate::stomp::{
    ByteStr, Command, Frame, Headers, HeartBeat, PreparedMessage, Version, encode, names,
};

/// Messages the system connection may hold while it writes (beyond, publishing fails).
const QUEUE: usize = 8192;

/// Shortest and longest wait between two reconnection attempts.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// A client's RECEIPT that the system connection answers once the broker has answered.
pub(crate) struct ClientReceipt {
    pub(crate) id: String,
    pub(crate) outbox: Arc<crate::outbox::Outbox>,
    pub(crate) version: Version,
}

impl ClientReceipt {
    fn answer(self) {
        self.outbox.push(encode(&Frame::receipt_for(self.id), self.version));
    }
}

/// One destination subscribed once for the node, and who receives its messages here.
struct Shared {
    id: u64,
    subscribers: Vec<Arc<Subscriber>>,
    /// Whether the broker confirmed it on the current connection.
    confirmed: bool,
    /// Clients' receipts waiting for that confirmation.
    waiting: Vec<ClientReceipt>,
}

#[derive(Default)]
struct Subscriptions {
    by_destination: HashMap<ByteStr, Shared>,
    /// Shared subscription id → its destination.
    by_id: HashMap<u64, ByteStr>,
    /// Subscriber uid → its destination (to unsubscribe).
    of_subscriber: HashMap<u64, ByteStr>,
    next_id: u64,
}

pub(super) struct System {
    options: Arc<StompBrokerRelay>,
    available: AtomicBool,
    tx: mpsc::Sender<Frame>,
    rx: Mutex<Option<mpsc::Receiver<Frame>>>,
    /// The shared subscriptions wanted: the connection's task makes the broker's match.
    subscriptions: Mutex<Subscriptions>,
    /// Wakes the task when `subscriptions` changed.
    changed: Notify,
    started: OnceLock<()>,
    /// Cancelled (and replaced) when the system connection is lost: the client sessions'
    /// broker connections end with it (Spring closes them all), even those whose own TCP
    /// connection has not noticed yet (a partition that only heart-beats reveal).
    lost: Mutex<CancellationToken>,
}

/// Frames for broker destinations keep the publisher's headers but those that describe the
/// SEND itself.
const NOT_FORWARDED: [&str; 6] = [
    names::DESTINATION,
    names::MESSAGE_ID,
    names::SUBSCRIPTION,
    names::CONTENT_LENGTH,
    names::RECEIPT,
    names::TRANSACTION,
];

impl System {
    pub(super) fn new(options: Arc<StompBrokerRelay>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        System {
            options,
            available: AtomicBool::new(false),
            tx,
            rx: Mutex::new(Some(rx)),
            subscriptions: Mutex::default(),
            changed: Notify::new(),
            started: OnceLock::new(),
            lost: Mutex::default(),
        }
    }

    /// What a client session's broker connection watches: cancelled when the system
    /// connection is next lost.
    pub(super) fn lost(&self) -> CancellationToken {
        lock(&self.lost).clone()
    }

    pub(super) fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    pub(super) fn start(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        availability: Arc<dyn Fn(bool) + Send + Sync>,
    ) {
        if tokio::runtime::Handle::try_current().is_err() || self.started.set(()).is_err() {
            return;
        }
        let Some(rx) = lock(&self.rx).take() else { return };
        tokio::spawn(self.clone().run(rx, shutdown, availability));
    }

    pub(super) fn publish(&self, destination: &ByteStr, headers: &Headers, body: Bytes) -> bool {
        if !self.is_available() {
            return false;
        }
        let mut frame = Frame::new(Command::Send).header(names::DESTINATION, destination.clone());
        for (name, value) in headers.entries() {
            if !NOT_FORWARDED.contains(&name.as_str()) {
                frame.headers.push(name.clone(), value.clone());
            }
        }
        frame.body = body;
        self.tx.try_send(frame).is_ok()
    }

    /// Adds `subscriber` to the node's shared subscription of its destination (subscribing it
    /// at the broker if it is the first); `receipt` is answered once the broker has confirmed
    /// that subscription.
    pub(super) fn subscribe(&self, subscriber: Arc<Subscriber>, receipt: Option<ClientReceipt>) {
        let mut subscriptions = lock(&self.subscriptions);
        let destination = subscriber.destination.clone();
        subscriptions.of_subscriber.insert(subscriber.uid, destination.clone());
        if let Some(shared) = subscriptions.by_destination.get_mut(&destination) {
            shared.subscribers.push(subscriber);
            match (receipt, shared.confirmed) {
                (Some(receipt), true) => receipt.answer(),
                (Some(receipt), false) => shared.waiting.push(receipt),
                (None, _) => {}
            }
            return;
        }
        subscriptions.next_id += 1;
        let id = subscriptions.next_id;
        subscriptions.by_id.insert(id, destination.clone());
        let shared = Shared {
            id,
            subscribers: vec![subscriber],
            confirmed: false,
            waiting: receipt.into_iter().collect(),
        };
        subscriptions.by_destination.insert(destination, shared);
        drop(subscriptions);
        self.changed.notify_one();
    }

    /// Removes a subscriber; the last one of a destination unsubscribes it at the broker.
    pub(super) fn unsubscribe(&self, uid: u64) {
        let mut subscriptions = lock(&self.subscriptions);
        let Some(destination) = subscriptions.of_subscriber.remove(&uid) else { return };
        let Some(shared) = subscriptions.by_destination.get_mut(&destination) else { return };
        shared.subscribers.retain(|s| s.uid != uid);
        if shared.subscribers.is_empty() {
            let id = shared.id;
            subscriptions.by_destination.remove(&destination);
            subscriptions.by_id.remove(&id);
            drop(subscriptions);
            self.changed.notify_one();
        }
    }

    /// The frames that make the broker's shared subscriptions match those wanted, given the
    /// ones this connection has (`live`, updated).
    fn reconcile(&self, live: &mut HashSet<u64>) -> Vec<Frame> {
        let subscriptions = lock(&self.subscriptions);
        let mut frames = Vec::new();
        for (destination, shared) in &subscriptions.by_destination {
            if live.insert(shared.id) {
                frames.push(
                    Frame::new(Command::Subscribe)
                        .header(names::ID, shared_id(shared.id))
                        .header(names::DESTINATION, destination.clone())
                        .header(names::RECEIPT, shared_id(shared.id)),
                );
            }
        }
        live.retain(|id| {
            let wanted = subscriptions.by_id.contains_key(id);
            if !wanted {
                frames.push(Frame::new(Command::Unsubscribe).header(names::ID, shared_id(*id)));
            }
            wanted
        });
        frames
    }

    /// The broker confirmed shared subscription `id`: the receipts waiting for it are answered.
    fn confirmed(&self, id: u64) {
        let mut subscriptions = lock(&self.subscriptions);
        let Some(destination) = subscriptions.by_id.get(&id).cloned() else { return };
        if let Some(shared) = subscriptions.by_destination.get_mut(&destination) {
            shared.confirmed = true;
            for receipt in shared.waiting.drain(..) {
                receipt.answer();
            }
        }
    }

    /// The connection is gone: every shared subscription must be confirmed again.
    fn unconfirm_all(&self) {
        for shared in lock(&self.subscriptions).by_destination.values_mut() {
            shared.confirmed = false;
        }
    }

    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Frame>,
        shutdown: CancellationToken,
        availability: Arc<dyn Fn(bool) + Send + Sync>,
    ) {
        let options = &self.options;
        let address = format!("{}:{}", options.host, options.port);
        let mut retry = FIRST_RETRY;
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let beat = upstream::heartbeat(options);
            let connecting =
                upstream::connect(options, &options.system_login, &options.system_passcode, beat);
            let connected = tokio::select! {
                () = shutdown.cancelled() => return,
                connected = connecting => connected,
            };
            match connected {
                Ok((mut upstream, frame)) => {
                    tracing::info!(broker = %address, attempt, "broker relay: system connection established");
                    retry = FIRST_RETRY;
                    attempt = 0;
                    self.available.store(true, Ordering::Release);
                    availability(true);
                    let why = self.serve(&mut upstream, &frame, beat, &mut rx, &shutdown).await;
                    self.available.store(false, Ordering::Release);
                    self.unconfirm_all();
                    upstream.close().await;
                    if shutdown.is_cancelled() {
                        return;
                    }
                    std::mem::take(&mut *lock(&self.lost)).cancel();
                    availability(false);
                    tracing::warn!(broker = %address, "broker relay: system connection lost ({why}); client sessions of this node are closed with 'broker not available' and reconnecting starts");
                }
                Err(why) => tracing::warn!(
                    broker = %address,
                    attempt,
                    retry_in = ?retry,
                    "broker relay: system connection failed: {why}"
                ),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// Serves one system connection until it fails; returns why.
    async fn serve(
        &self,
        upstream: &mut Upstream,
        connected: &Frame,
        ours: HeartBeat,
        rx: &mut mpsc::Receiver<Frame>,
        shutdown: &CancellationToken,
    ) -> String {
        let theirs =
            connected.get(names::HEART_BEAT).and_then(HeartBeat::parse).unwrap_or(HeartBeat::NONE);
        // What the broker's CONNECTED asks for, in its direction: outgoing = when we send.
        // Beating at half the period keeps a broker that checks strictly (RabbitMQ) content
        // even when our timer fires a little late.
        let beat_every = ours.outgoing(theirs).map(|every| every / 2);
        let allowance = ours.incoming(theirs).map(|every| every * 3);
        let mut live = HashSet::new();
        let mut last_write = Instant::now();
        let mut last_read = Instant::now();
        let far = || Instant::now() + Duration::from_secs(86_400);
        // Subscribe everything wanted at once (the first round of the loop would too).
        self.changed.notify_one();
        loop {
            let beat_at = beat_every.map_or_else(far, |every| last_write + every);
            let silent_at = allowance.map_or_else(far, |allowance| last_read + allowance);
            let outgoing: Vec<Frame> = tokio::select! {
                () = shutdown.cancelled() => return "shutdown".into(),
                () = self.changed.notified() => self.reconcile(&mut live),
                frame = rx.recv() => match frame {
                    Some(frame) => vec![frame],
                    None => return "closed".into(),
                },
                frame = upstream.next() => {
                    last_read = Instant::now();
                    match frame {
                        Ok(Some(frame)) => match frame.command {
                            Command::Message => self.deliver(frame),
                            Command::Receipt => {
                                let shared = frame
                                    .get(names::RECEIPT_ID)
                                    .and_then(|id| id.strip_prefix("shared-"))
                                    .and_then(|id| id.parse::<u64>().ok());
                                if let Some(id) = shared {
                                    self.confirmed(id);
                                }
                            }
                            Command::Error => {
                                return format!(
                                    "the broker sent ERROR: {}",
                                    frame.get(names::MESSAGE).unwrap_or("(no message)")
                                );
                            }
                            _ => {}
                        },
                        Ok(None) => return "the broker closed the connection".into(),
                        Err(why) => return why,
                    }
                    Vec::new()
                }
                () = sleep_until(beat_at) => {
                    if let Err(why) = upstream.beat_bounded().await {
                        return why;
                    }
                    last_write = Instant::now();
                    Vec::new()
                }
                () = sleep_until(silent_at) => {
                    // Heart-beats arrive inside `next`, which returns frames only.
                    if let Some(allowance) = allowance {
                        if upstream.last_received() + allowance > Instant::now() {
                            last_read = upstream.last_received();
                            continue;
                        }
                    }
                    return format!("no heart-beat from the broker for {:?}", allowance.unwrap_or_default());
                }
            };
            if outgoing.is_empty() {
                continue;
            }
            let encoded: Vec<_> = outgoing.iter().map(|f| encode(f, Version::V1_2)).collect();
            if let Err(why) = upstream.send_bounded(&encoded).await {
                return why;
            }
            last_write = Instant::now();
        }
    }

    /// A MESSAGE of a shared subscription: to each of its subscribers on this node, encoded
    /// once.
    fn deliver(&self, frame: Frame) {
        let Some(id) = frame
            .get(names::SUBSCRIPTION)
            .and_then(|id| id.strip_prefix("shared-"))
            .and_then(|id| id.parse::<u64>().ok())
        else {
            return;
        };
        let subscribers: Vec<Arc<Subscriber>> = {
            let subscriptions = lock(&self.subscriptions);
            let Some(destination) = subscriptions.by_id.get(&id) else { return };
            match subscriptions.by_destination.get(destination) {
                Some(shared) => shared.subscribers.clone(),
                None => return,
            }
        };
        let mut headers = Headers::with_capacity(frame.headers.len());
        for (name, value) in frame.headers.entries() {
            if name.as_str() != names::SUBSCRIPTION && name.as_str() != names::CONTENT_LENGTH {
                headers.push(name.clone(), value.clone());
            }
        }
        let destination = frame.headers.get_shared(names::DESTINATION).cloned().unwrap_or_default();
        let prepared = PreparedMessage::new(headers, frame.body);
        // Shared subscriptions acknowledge automatically: the message id is never parsed.
        let message = Arc::new(Message::new(prepared, 0, destination));
        let mut pressure = Pressure::default();
        for subscriber in subscribers {
            subscriber.push(&message, Delivered::default(), &mut pressure);
        }
    }
}

fn shared_id(id: u64) -> String {
    format!("shared-{id}")
}
