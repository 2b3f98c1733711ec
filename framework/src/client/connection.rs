//! The client's connection task: it owns the transport, writes requests, routes MESSAGE
//! frames to their subscription, completes receipts, and sends heart-beats.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{ClientError, ClientOptions};
use crate::stomp::{Command, Decoder, Frame, HeartBeat, Version, encode, names};
use crate::transport::{Transport, TransportError};

type ReceiptWaiter = oneshot::Sender<Result<(), ClientError>>;

/// Frames written with one flush at most.
const WRITE_BATCH: usize = 64;

pub(super) enum Request {
    Frame { frame: Frame, receipt: Option<(String, ReceiptWaiter)> },
    Register { id: String, messages: mpsc::Sender<Frame> },
}

/// What the handles share with the connection task: whether it has ended, and why (the same
/// pairing the server's outbox uses).
#[derive(Default)]
pub(super) struct Shared {
    reason: OnceLock<String>,
    closed: CancellationToken,
}

impl Shared {
    pub(super) fn close_reason(&self) -> Option<String> {
        self.reason.get().cloned()
    }

    fn close(&self, reason: String) {
        let _ = self.reason.set(reason);
        self.closed.cancel();
    }

    pub(super) async fn closed(&self) {
        self.closed.cancelled().await;
    }
}

/// Sends CONNECT, waits for CONNECTED, and spawns the connection task.
pub(super) async fn open<T: Transport + 'static>(
    mut transport: T,
    connect: Frame,
    options: &ClientOptions,
) -> Result<(mpsc::Sender<Request>, Frame, Arc<Shared>), ClientError> {
    let io = |e: std::io::Error| ClientError::Connection(e.to_string());
    transport.send(&[encode(&connect, Version::V1_2)]).await.map_err(io)?;
    let mut decoder = Decoder::new(options.limits);
    let mut buf = BytesMut::new();
    let connected = tokio::time::timeout(options.timeout, async {
        loop {
            if let Some(frame) =
                decoder.decode(&mut buf).map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                return Ok(frame);
            }
            match transport.recv(&mut buf).await {
                Ok(0) => return Err(ClientError::Closed(Some("closed before CONNECTED".into()))),
                Ok(_) => {}
                Err(e) => return Err(transport_error(e)),
            }
        }
    })
    .await
    .map_err(|_| ClientError::Timeout(options.timeout))??;
    match connected.command {
        Command::Connected => {}
        Command::Error => return Err(server_error(connected)),
        other => return Err(ClientError::Protocol(format!("expected CONNECTED, got {other}"))),
    }
    let version = connected.get(names::VERSION).and_then(Version::parse).unwrap_or(Version::V1_0);
    decoder.set_version(version);
    let server_beat =
        connected.get(names::HEART_BEAT).and_then(HeartBeat::parse).unwrap_or(HeartBeat::NONE);
    let beat_every = options.heartbeat.outgoing(server_beat);
    let read_allowance = options.heartbeat.incoming(server_beat).map(HeartBeat::silence_allowance);
    let (tx, rx) = mpsc::channel(256);
    let shared = Arc::new(Shared::default());
    let task = Task {
        transport,
        decoder,
        buf,
        version,
        requests: rx,
        subscriptions: HashMap::new(),
        receipts: HashMap::new(),
        beat_every,
        read_allowance,
        shared: shared.clone(),
    };
    tokio::spawn(task.run());
    Ok((tx, connected, shared))
}

fn transport_error(e: TransportError) -> ClientError {
    match e {
        TransportError::Io(e) => ClientError::Connection(e.to_string()),
        other => ClientError::Protocol(other.to_string()),
    }
}

fn server_error(frame: Frame) -> ClientError {
    ClientError::Server {
        message: frame.get(names::MESSAGE).unwrap_or("(no message header)").to_owned(),
        frame: Box::new(frame),
    }
}

struct Task<T> {
    transport: T,
    decoder: Decoder,
    buf: BytesMut,
    version: Version,
    requests: mpsc::Receiver<Request>,
    subscriptions: HashMap<String, mpsc::Sender<Frame>>,
    receipts: HashMap<String, ReceiptWaiter>,
    beat_every: Option<std::time::Duration>,
    read_allowance: Option<std::time::Duration>,
    shared: Arc<Shared>,
}

impl<T: Transport> Task<T> {
    async fn run(mut self) {
        let reason = self.serve().await;
        let error = match &reason {
            Err(e) => e.clone(),
            Ok(()) => ClientError::Closed(Some("disconnected".into())),
        };
        for (_, waiter) in self.receipts.drain() {
            let _ = waiter.send(Err(error.clone()));
        }
        self.transport.close().await;
        self.shared.close(match reason {
            Ok(()) => "disconnected".into(),
            Err(e) => e.to_string(),
        });
    }

    async fn serve(&mut self) -> Result<(), ClientError> {
        let mut last_write = Instant::now();
        let mut last_read = Instant::now();
        let mut disconnecting: Option<String> = None;
        loop {
            let beat_at = self.beat_every.map(|every| last_write + every);
            let silent_at = self.read_allowance.map(|allowance| last_read + allowance);
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(request) = request else { return Ok(()) };
                    // Take whatever else is already queued too, and write it all at once.
                    let mut outgoing = Vec::new();
                    let mut next = Some(request);
                    while let Some(request) = next.take() {
                        match request {
                            Request::Register { id, messages } => { self.subscriptions.insert(id, messages); }
                            Request::Frame { frame, receipt } => {
                                if let Some((id, waiter)) = receipt {
                                    if frame.command == Command::Disconnect {
                                        disconnecting = Some(id.clone());
                                    }
                                    self.receipts.insert(id, waiter);
                                }
                                if frame.command == Command::Unsubscribe {
                                    if let Some(id) = frame.get(names::ID) { self.subscriptions.remove(id); }
                                }
                                outgoing.push(encode(&frame, self.version));
                            }
                        }
                        if outgoing.len() < WRITE_BATCH {
                            next = self.requests.try_recv().ok();
                        }
                    }
                    if !outgoing.is_empty() {
                        self.transport.send(&outgoing).await
                            .map_err(|e| ClientError::Connection(e.to_string()))?;
                        // Reading the clock costs a few percent of a busy client's time: only
                        // when heart-beats need it.
                        if self.beat_every.is_some() {
                            last_write = Instant::now();
                        }
                    }
                }
                received = self.transport.recv(&mut self.buf) => {
                    match received {
                        // Some servers (RabbitMQ Web-STOMP) close on DISCONNECT without the
                        // RECEIPT asked for: the outcome the client wanted, so a success.
                        Ok(0) if disconnecting.is_some() => {
                            if let Some(waiter) = disconnecting.as_ref().and_then(|id| self.receipts.remove(id)) {
                                let _ = waiter.send(Ok(()));
                            }
                            return Ok(());
                        }
                        Ok(0) => return Err(ClientError::Closed(Some("the server closed the connection".into()))),
                        Ok(_) if self.read_allowance.is_some() => last_read = Instant::now(),
                        Ok(_) => {}
                        Err(e) => return Err(transport_error(e)),
                    }
                    while let Some(frame) = self.decoder.decode(&mut self.buf).map_err(|e| ClientError::Protocol(e.to_string()))? {
                        match frame.command {
                            Command::Message => {
                                // A shared handle on the header, not a copy: this runs per message.
                                let Some(sub) = frame.headers.get_shared(names::SUBSCRIPTION).cloned() else { continue };
                                if let Some(tx) = self.subscriptions.get(sub.as_str()) {
                                    // Waiting here is the back-pressure: we stop reading.
                                    if tx.send(frame).await.is_err() {
                                        self.subscriptions.remove(sub.as_str());
                                    }
                                }
                            }
                            Command::Receipt => {
                                let id = frame.get(names::RECEIPT_ID).unwrap_or_default().to_owned();
                                if let Some(waiter) = self.receipts.remove(&id) {
                                    let _ = waiter.send(Ok(()));
                                }
                                if disconnecting.as_deref() == Some(id.as_str()) {
                                    return Ok(());
                                }
                            }
                            Command::Error => {
                                let error = server_error(frame);
                                if let ClientError::Server { frame, .. } = &error {
                                    if let Some(waiter) = frame.get(names::RECEIPT_ID).and_then(|id| self.receipts.remove(id)) {
                                        let _ = waiter.send(Err(error.clone()));
                                    }
                                }
                                return Err(error);
                            }
                            _ => {}
                        }
                    }
                }
                // select! builds every branch's future each round, enabled or not: the async
                // blocks keep the clock read (and the timer) for the rounds that use them.
                () = async { sleep_until(silent_at.unwrap_or_else(Instant::now)).await }, if silent_at.is_some() => {
                    return Err(ClientError::Connection(format!(
                        "no frame or heart-beat from the server for {:?} (more than the negotiated heart-beat interval)",
                        self.read_allowance.unwrap_or_default()
                    )));
                }
                () = async { sleep_until(beat_at.unwrap_or_else(Instant::now)).await }, if beat_at.is_some() => {
                    self.transport.send_heartbeat().await.map_err(|e| ClientError::Connection(e.to_string()))?;
                    last_write = Instant::now();
                }
            }
        }
    }
}
