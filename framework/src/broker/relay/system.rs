//! The relay's system connection: what the application sends (template, handlers' replies)
//! and the in-process listeners, over one connection that reconnects with backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::StompBrokerRelay;
use super::upstream::{self, Upstream};
use crate::broker::Subscriber;
use crate::locks::lock;
use crate::stomp::{
    ByteStr, Command, Frame, Headers, HeartBeat, PreparedMessage, Version, encode, names,
};

/// Messages the system connection may hold while it writes (beyond, publishing fails).
const QUEUE: usize = 8192;

/// Shortest and longest wait between two reconnection attempts.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);

enum Outgoing {
    Publish(Frame),
    Subscribe(Arc<Subscriber>),
    Unsubscribe(u64),
}

pub(super) struct System {
    options: Arc<StompBrokerRelay>,
    available: AtomicBool,
    tx: mpsc::Sender<Outgoing>,
    rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    /// In-process listeners by uid: subscribed again after each reconnection.
    listeners: Mutex<HashMap<u64, Arc<Subscriber>>>,
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
            listeners: Mutex::default(),
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
        self.tx.try_send(Outgoing::Publish(frame)).is_ok()
    }

    pub(super) fn subscribe(&self, subscriber: Arc<Subscriber>) {
        lock(&self.listeners).insert(subscriber.uid, subscriber.clone());
        let _ = self.tx.try_send(Outgoing::Subscribe(subscriber));
    }

    pub(super) fn unsubscribe(&self, uid: u64) {
        if lock(&self.listeners).remove(&uid).is_some() {
            let _ = self.tx.try_send(Outgoing::Unsubscribe(uid));
        }
    }

    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Outgoing>,
        shutdown: CancellationToken,
        availability: Arc<dyn Fn(bool) + Send + Sync>,
    ) {
        let options = &self.options;
        let address = format!("{}:{}", options.host, options.port);
        let mut retry = FIRST_RETRY;
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let beat = HeartBeat {
                send: u32::try_from(options.system_heartbeat_send.as_millis()).unwrap_or(u32::MAX),
                receive: u32::try_from(options.system_heartbeat_receive.as_millis())
                    .unwrap_or(u32::MAX),
            };
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
        rx: &mut mpsc::Receiver<Outgoing>,
        shutdown: &CancellationToken,
    ) -> String {
        let theirs =
            connected.get(names::HEART_BEAT).and_then(HeartBeat::parse).unwrap_or(HeartBeat::NONE);
        // What the broker's CONNECTED asks for, in its direction: outgoing = when we send.
        // Beating at half the period keeps a broker that checks strictly (RabbitMQ) content
        // even when our timer fires a little late.
        let beat_every = ours.outgoing(theirs).map(|every| every / 2);
        let allowance = ours.incoming(theirs).map(|every| every * 3);
        let listeners: Vec<Arc<Subscriber>> = lock(&self.listeners).values().cloned().collect();
        for listener in listeners {
            if let Err(e) =
                upstream.send(&[encode(&subscribe_frame(&listener), Version::V1_2)]).await
            {
                return e.to_string();
            }
        }
        let mut last_write = Instant::now();
        let mut last_read = Instant::now();
        let far = || Instant::now() + Duration::from_secs(86_400);
        loop {
            let beat_at = beat_every.map_or_else(far, |every| last_write + every);
            let silent_at = allowance.map_or_else(far, |allowance| last_read + allowance);
            tokio::select! {
                () = shutdown.cancelled() => return "shutdown".into(),
                outgoing = rx.recv() => {
                    let Some(outgoing) = outgoing else { return "closed".into() };
                    let frame = match outgoing {
                        Outgoing::Publish(frame) => frame,
                        Outgoing::Subscribe(listener) => subscribe_frame(&listener),
                        Outgoing::Unsubscribe(uid) => {
                            Frame::new(Command::Unsubscribe).header(names::ID, listener_id(uid))
                        }
                    };
                    if let Err(e) = upstream.send(&[encode(&frame, Version::V1_2)]).await {
                        return format!("writing to the broker failed: {e}");
                    }
                    last_write = Instant::now();
                }
                frame = upstream.next() => {
                    last_read = Instant::now();
                    match frame {
                        Ok(Some(frame)) => match frame.command {
                            Command::Message => self.deliver(frame),
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
                }
                () = sleep_until(beat_at) => {
                    if let Err(e) = upstream.beat().await {
                        return format!("writing to the broker failed: {e}");
                    }
                    last_write = Instant::now();
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
            }
        }
    }

    /// A MESSAGE for an in-process listener.
    fn deliver(&self, frame: Frame) {
        let Some(uid) = frame
            .get(names::SUBSCRIPTION)
            .and_then(|id| id.strip_prefix("listener-"))
            .and_then(|uid| uid.parse::<u64>().ok())
        else {
            return;
        };
        let Some(listener) = lock(&self.listeners).get(&uid).cloned() else { return };
        let message_id = frame.get(names::MESSAGE_ID).unwrap_or_default().to_owned();
        let mut headers = Headers::with_capacity(frame.headers.len());
        for (name, value) in frame.headers.entries() {
            if name.as_str() != names::SUBSCRIPTION && name.as_str() != names::CONTENT_LENGTH {
                headers.push(name.clone(), value.clone());
            }
        }
        listener.deliver(&PreparedMessage::new(headers, frame.body), &message_id);
    }
}

fn listener_id(uid: u64) -> String {
    format!("listener-{uid}")
}

fn subscribe_frame(listener: &Subscriber) -> Frame {
    Frame::new(Command::Subscribe)
        .header(names::ID, listener_id(listener.uid))
        .header(names::DESTINATION, listener.destination.clone())
}
