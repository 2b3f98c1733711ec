//! A client session's own connection to the external broker: the session forwards its
//! broker frames through a bounded queue; a task writes them, and sends what the broker
//! answers (MESSAGE, RECEIPT) straight to the session's outbox.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::StompBrokerRelay;
use super::upstream::{self, Upstream};
use crate::locks::lock;
use crate::outbox::Outbox;
use crate::signal::Signal;
use crate::stomp::{ByteStr, Command, Frame, HeartBeat, Version, encode, names};

/// Frames a session may have on their way to the broker before it stops reading its client.
const QUEUE: usize = 256;

/// How a session's broker connection ended.
pub(crate) enum Ended {
    /// After the client's DISCONNECT: the broker's RECEIPT for it, if the client asked for one.
    Disconnected(Option<Frame>),
    /// The broker went away: the session must end with `broker not available`; the text says
    /// why, for the log.
    Lost(String),
    /// The broker sent this ERROR (a destination it refuses, say): the client gets it.
    Refused(Frame),
}

/// Raised once, when the session's broker connection ends.
pub(crate) struct UpstreamEnd {
    /// The session's signal (raised after `outcome` is set).
    signal: Signal,
    outcome: OnceLock<Ended>,
}

impl UpstreamEnd {
    /// The end of a connection, told by raising `signal` (the session's).
    pub(crate) fn new(signal: Signal) -> Self {
        UpstreamEnd { signal, outcome: OnceLock::new() }
    }

    fn raise(&self, ended: Ended) {
        let _ = self.outcome.set(ended);
        self.signal.raise();
    }

    /// How it ended (once it has).
    pub(crate) fn take(&self) -> Option<&Ended> {
        self.outcome.get()
    }
}

/// The session's side of its broker connection.
pub(crate) struct Link {
    tx: mpsc::Sender<Frame>,
    /// Frames that did not fit in the queue; while any wait, the session reads nothing.
    waiting: VecDeque<Frame>,
    /// Subscriptions to user destinations, by the id the broker knows: the client's id and
    /// the destination the client subscribed to, which their MESSAGEs must show.
    user_destinations: Arc<Mutex<HashMap<ByteStr, (ByteStr, ByteStr)>>>,
}

/// The receipt id the relay gives a client's DISCONNECT that asked for none.
const DISCONNECT_RECEIPT: &str = "stompede-relay-disconnect";

pub(super) async fn open(
    options: &StompBrokerRelay,
    version: Version,
    outbox: Arc<Outbox>,
    end: Arc<UpstreamEnd>,
    system_lost: CancellationToken,
) -> Result<Link, String> {
    // Heart-beats as the system connection's, so a connection that dies silently (a NAT or
    // load balancer forgetting it) is noticed.
    let beat = upstream::heartbeat(options);
    let (upstream, connected) =
        upstream::connect(options, &options.client_login, &options.client_passcode, beat).await?;
    let theirs =
        connected.get(names::HEART_BEAT).and_then(HeartBeat::parse).unwrap_or(HeartBeat::NONE);
    // Beats at half the period (a broker may check strictly); silence for three periods is
    // death.
    let beat_every = beat.outgoing(theirs).map(|every| every / 2);
    let allowance = beat.incoming(theirs).map(|every| every * 3);
    let (tx, rx) = mpsc::channel(QUEUE);
    let user_destinations = Arc::new(Mutex::new(HashMap::new()));
    let user_destinations_of_task = user_destinations.clone();
    let task = Task {
        upstream,
        rx,
        outbox,
        version,
        end,
        user_destinations: user_destinations_of_task,
        system_lost,
        beat_every,
        allowance,
    };
    tokio::spawn(task.run());
    Ok(Link { tx, waiting: VecDeque::new(), user_destinations })
}

impl Link {
    /// Sends a frame to the broker, in order with the session's others.
    pub(crate) fn forward(&mut self, frame: Frame) {
        if !self.waiting.is_empty() {
            self.waiting.push_back(frame);
            return;
        }
        match self.tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(frame)) => self.waiting.push_back(frame),
            // The task has ended: the session hears of it through its `UpstreamEnd`.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Forwards a client's DISCONNECT: the broker's RECEIPT ends the connection.
    pub(crate) fn disconnect(&mut self, receipt: Option<&str>) {
        let receipt = receipt.unwrap_or(DISCONNECT_RECEIPT).to_owned();
        self.forward(Frame::new(Command::Disconnect).header(names::RECEIPT, receipt));
    }

    /// Records that the broker's subscription `upstream` is the client's subscription `id` to
    /// the user destination `shown`.
    pub(crate) fn user_subscription(&self, upstream: ByteStr, id: ByteStr, shown: ByteStr) {
        lock(&self.user_destinations).insert(upstream, (id, shown));
    }

    /// Forgets user-destination subscriptions by the ids the broker knows.
    pub(crate) fn forget_user_subscription(&self, upstream_ids: &[&ByteStr]) {
        let mut map = lock(&self.user_destinations);
        for id in upstream_ids {
            map.remove(id.as_str());
        }
    }

    /// Whether frames wait for room in the queue.
    pub(crate) fn is_blocked(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Moves waiting frames into the queue as room frees up. Cancel-safe.
    pub(crate) async fn unblock(&mut self) {
        while !self.waiting.is_empty() {
            let Ok(permit) = self.tx.reserve().await else {
                self.waiting.clear();
                return;
            };
            if let Some(frame) = self.waiting.pop_front() {
                permit.send(frame);
            }
        }
    }
}

struct Task {
    upstream: Upstream,
    rx: mpsc::Receiver<Frame>,
    outbox: Arc<Outbox>,
    version: Version,
    end: Arc<UpstreamEnd>,
    user_destinations: Arc<Mutex<HashMap<ByteStr, (ByteStr, ByteStr)>>>,
    system_lost: CancellationToken,
    /// How often to send a heart-beat, and how long the broker may stay silent.
    beat_every: Option<std::time::Duration>,
    allowance: Option<std::time::Duration>,
}

impl Task {
    async fn run(mut self) {
        let ended = self.serve().await;
        if matches!(ended, Ended::Lost(_)) {
            // Still polite to the broker if it is there.
            let bye = encode(&Frame::new(Command::Disconnect), Version::V1_2);
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.upstream.send(&[bye]))
                    .await;
        }
        self.upstream.close().await;
        self.end.raise(ended);
    }

    async fn serve(&mut self) -> Ended {
        let mut disconnect: Option<String> = None;
        // How long the broker has to answer DISCONNECT before the session closes anyway.
        let mut disconnect_by: Option<tokio::time::Instant> = None;
        let mut batch = Vec::new();
        let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
        let mut last_write = tokio::time::Instant::now();
        loop {
            let deadline = disconnect_by.unwrap_or_else(far);
            let beat_at = self.beat_every.map_or_else(far, |every| last_write + every);
            let silent_at = self
                .allowance
                .map_or_else(far, |allowance| self.upstream.last_received() + allowance);
            tokio::select! {
                () = tokio::time::sleep_until(deadline), if disconnect_by.is_some() => {
                    return Ended::Disconnected(None);
                }
                () = tokio::time::sleep_until(beat_at), if self.beat_every.is_some() => {
                    if let Err(why) = self.upstream.beat_bounded().await {
                        return Ended::Lost(why);
                    }
                    last_write = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(silent_at), if self.allowance.is_some() => {
                    // Re-checked: bytes may have arrived since `silent_at` was computed.
                    let allowance = self.allowance.unwrap_or_default();
                    if self.upstream.last_received() + allowance <= tokio::time::Instant::now() {
                        return Ended::Lost(format!("no heart-beat from the broker for {allowance:?}"));
                    }
                }
                () = self.system_lost.cancelled() => {
                    return Ended::Lost("the relay's system connection to the broker was lost".into());
                }
                frame = self.rx.recv() => {
                    // The session ended without DISCONNECT: leave quietly.
                    let Some(frame) = frame else { return Ended::Disconnected(None) };
                    batch.clear();
                    let mut next = Some(frame);
                    while let Some(frame) = next.take() {
                        if frame.command == Command::Disconnect {
                            disconnect = frame.get(names::RECEIPT).map(str::to_owned);
                            disconnect_by =
                                Some(tokio::time::Instant::now() + upstream::WRITE_LIMIT);
                        }
                        batch.push(encode(&frame, Version::V1_2));
                        if batch.len() < 64 {
                            next = self.rx.try_recv().ok();
                        }
                    }
                    if let Err(why) = self.upstream.send_bounded(&batch).await {
                        return Ended::Lost(why);
                    }
                    last_write = tokio::time::Instant::now();
                }
                frame = self.upstream.next() => match frame {
                    Ok(Some(frame)) => {
                        if let Some(ended) = self.received(frame, disconnect.as_deref()) {
                            return ended;
                        }
                    }
                    Ok(None) => return Ended::Lost("the broker closed the connection".into()),
                    Err(why) => return Ended::Lost(why),
                },
            }
        }
    }

    /// A frame from the broker: to the client, in the client's version.
    fn received(&mut self, mut frame: Frame, disconnect: Option<&str>) -> Option<Ended> {
        match frame.command {
            Command::Message => {
                let user = frame
                    .get(names::SUBSCRIPTION)
                    .and_then(|id| lock(&self.user_destinations).get(id).cloned());
                if let Some((id, shown)) = user {
                    frame.headers.set(names::SUBSCRIPTION, id);
                    frame.headers.set(names::DESTINATION, shown);
                }
                frame.headers.remove(names::CONTENT_LENGTH);
                self.outbox.push(encode(&frame, self.version));
                None
            }
            Command::Receipt => {
                let id = frame.get(names::RECEIPT_ID).map(str::to_owned);
                if id.is_some() && id.as_deref() == disconnect {
                    let receipt = (id.as_deref() != Some(DISCONNECT_RECEIPT)).then_some(frame);
                    return Some(Ended::Disconnected(receipt));
                }
                self.outbox.push(encode(&frame, self.version));
                None
            }
            Command::Error => {
                frame.headers.remove(names::CONTENT_LENGTH);
                Some(Ended::Refused(frame))
            }
            _ => None,
        }
    }
}
