//! Sessions: one per connection, whatever the transport.
//!
//! [`run`] drives a session: it reads bytes from the transport, decodes frames and hands them
//! to the [`Protocol`](protocol::Protocol) state machine, writes what the outbox holds, keeps
//! heart-beats in both directions, and ends the session cleanly on DISCONNECT, protocol error,
//! slow consumer, silence, lost connection or server shutdown.

mod outbox;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

pub(crate) use outbox::Outbox;
use protocol::{Flow, Protocol};

use crate::events::{DisconnectReason, SessionEvent};
use crate::server::Shared;
use crate::stomp::{ByteStr, Decoder, EncodedFrame, Frame, Version, encode};
use crate::transport::{Transport, TransportError};

/// Frames written per batch at most, so one busy session yields to its reads in between.
const WRITE_BATCH: usize = 64;

/// How long silence may exceed the negotiated heart-beat interval before the peer is deemed
/// gone: half the interval again (network jitter, a busy client), at least one second.
fn read_grace(interval: Duration) -> Duration {
    interval + (interval / 2).max(Duration::from_secs(1))
}

/// Who is on the other end, for logs.
pub(crate) struct Peer {
    pub(crate) addr: Option<std::net::SocketAddr>,
    pub(crate) transport: &'static str,
    /// What the handshake hook attached (the security layer reads it).
    #[allow(dead_code)]
    pub(crate) attributes: http::Extensions,
}

/// Runs a session to its end.
pub(crate) async fn run<T: Transport>(shared: Arc<Shared>, peer: Peer, transport: T) {
    let session_id = shared.next_session_id();
    let span =
        tracing::debug_span!("session", %session_id, peer = ?peer.addr, transport = peer.transport);
    let reason =
        drive(shared.clone(), session_id.clone(), transport).instrument(span.clone()).await;
    span.in_scope(|| match &reason {
        DisconnectReason::ClientDisconnected | DisconnectReason::ServerShutdown => {
            tracing::debug!(?reason, "session ended")
        }
        DisconnectReason::ConnectionLost(why) => tracing::debug!(%why, "connection lost"),
        other => tracing::warn!(reason = ?other, "session closed"),
    });
    shared.emit(SessionEvent::Disconnected { session_id, reason });
}

async fn drive<T: Transport>(
    shared: Arc<Shared>,
    session_id: ByteStr,
    mut transport: T,
) -> DisconnectReason {
    let config = &shared.config;
    let (outbox, mut outbound) = Outbox::new(config.send_buffer_size_limit, config.send_time_limit);
    let mut protocol = Protocol::new(shared.clone(), session_id, outbox.clone());
    let mut decoder = Decoder::new(config.limits);
    let mut inbound = BytesMut::new();
    let mut batch: Vec<EncodedFrame> = Vec::new();

    let mut read_deadline = Instant::now() + config.time_to_first_message;
    let mut read_allowance: Option<Duration> = None;
    let mut beat_every: Option<Duration> = None;
    let mut last_write = Instant::now();
    let shutdown = shared.shutdown.clone();

    let (last, reason) = loop {
        let beat_at = beat_every.map(|every| last_write + every);
        // Unbiased on purpose: a session under a constant stream of outbound messages must
        // still read its client's frames (an UNSUBSCRIBE, a DISCONNECT) and heart-beats.
        tokio::select! {
            () = shutdown.cancelled() => {
                let error = Frame::error("server is shutting down", None, "Reconnect to another instance, or later.");
                break (Some(error), DisconnectReason::ServerShutdown);
            }
            () = outbox.closed() => {
                let why = outbox.close_reason().unwrap_or("closed").to_owned();
                // A slow consumer's queue is dropped, not flushed: it is why we close.
                let _ = timeout(config.send_time_limit, transport.close()).await;
                protocol.finish();
                return DisconnectReason::SlowConsumer(why.into());
            }
            n = outbound.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break (None, DisconnectReason::ConnectionLost("outbound queue closed".into()));
                }
                let bytes: usize = batch.iter().map(EncodedFrame::len).sum();
                match timeout(config.send_time_limit, transport.send(&batch)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break (None, DisconnectReason::ConnectionLost(e.to_string().into())),
                    Err(_) => {
                        let why = format!(
                            "slow consumer: a write did not complete within the {:?} send time limit",
                            config.send_time_limit
                        );
                        outbox.close(why.clone());
                        break (None, DisconnectReason::SlowConsumer(why.into()));
                    }
                }
                outbox.written(bytes);
                batch.clear();
                last_write = Instant::now();
            }
            received = transport.recv(&mut inbound) => {
                match received {
                    Ok(0) => break (None, DisconnectReason::ConnectionLost("the client closed the connection without DISCONNECT".into())),
                    Ok(_) => {}
                    Err(TransportError::Io(e)) => break (None, DisconnectReason::ConnectionLost(e.to_string().into())),
                    Err(e) => {
                        let message = e.to_string();
                        break (Some(Frame::error(message.clone(), None, "")), DisconnectReason::ProtocolError(message.into()));
                    }
                }
                if let Some(allowance) = read_allowance {
                    read_deadline = Instant::now() + allowance;
                }
                match decode_and_handle(&mut decoder, &mut inbound, &mut protocol) {
                    Flow::Continue => {}
                    Flow::Connected { version, outgoing, incoming } => {
                        decoder.set_version(version);
                        beat_every = outgoing;
                        read_allowance = incoming.map(read_grace);
                        read_deadline = match read_allowance {
                            Some(allowance) => Instant::now() + allowance,
                            None => far_future(),
                        };
                        // Frames pipelined behind CONNECT (same read) are decoded now.
                        if let Flow::Close { last, reason } =
                            decode_and_handle(&mut decoder, &mut inbound, &mut protocol)
                        {
                            break (last, reason);
                        }
                    }
                    Flow::Close { last, reason } => break (last, reason),
                }
            }
            () = sleep_until(read_deadline) => {
                let message = match protocol.version() {
                    None => format!("no CONNECT frame within {:?} of opening the connection", config.time_to_first_message),
                    Some(_) => format!("no frame or heart-beat from the client for {:?} (more than the negotiated heart-beat interval)", read_allowance.unwrap_or_default()),
                };
                break (Some(Frame::error(message.clone(), None, "")), DisconnectReason::Timeout(message.into()));
            }
            () = sleep_until(beat_at.unwrap_or_else(far_future)), if beat_at.is_some() => {
                if let Err(e) = timeout(config.send_time_limit, transport.send_heartbeat()).await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
                    break (None, DisconnectReason::ConnectionLost(e.to_string().into()));
                }
                last_write = Instant::now();
            }
        }
    };
    protocol.finish();
    if let Some(frame) = last {
        // Everything queued before the last frame goes first (MESSAGEs, RECEIPTs), in order.
        batch.clear();
        outbound.drain_now(&mut batch);
        batch.push(encode(&frame, protocol.version().unwrap_or(Version::V1_2)));
        let _ = timeout(config.send_time_limit, transport.send(&batch)).await;
    }
    let _ = timeout(config.send_time_limit, transport.close()).await;
    reason
}

/// Decodes and handles every complete frame in `inbound`, stopping at CONNECT (so the caller
/// can switch the decoder's version) or at a close.
fn decode_and_handle(
    decoder: &mut Decoder,
    inbound: &mut BytesMut,
    protocol: &mut Protocol,
) -> Flow {
    loop {
        match decoder.decode(inbound) {
            Ok(None) => return Flow::Continue,
            Ok(Some(frame)) => match protocol.handle(frame) {
                Flow::Continue => continue,
                other => return other,
            },
            Err(e) => return protocol.error(e.to_string(), e.receipt()),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
