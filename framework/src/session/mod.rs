//! Sessions: one per connection, whatever the transport.
//!
//! [`run`] drives a session: it reads bytes from the transport, decodes frames and hands them
//! to the [`Protocol`](protocol::Protocol) state machine, writes what the outbox holds, keeps
//! heart-beats in both directions, and ends the session cleanly on DISCONNECT, protocol error,
//! slow consumer, silence, lost connection or server shutdown.

mod protocol;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use protocol::{Flow, Protocol};

use crate::events::{DisconnectReason, SessionEvent};
use crate::outbox::Outbox;
use crate::runtime::Runtime;
use crate::security::Principal;
use crate::stomp::{ByteStr, Decoder, EncodedFrame, Frame, HeartBeat};
use crate::transport::connections::ConnectionSlot;
use crate::transport::{Transport, TransportError};

/// Frames written per batch at most, so one busy session yields to its reads in between.
/// Larger batches mean fewer `sendto` calls per delivery (64 -> 128 took CPU per delivery with
/// 10 subscribers from 1.67x to 1.29x the baseline's, capped at 0.15 core: docs/benchmarks.md).
const WRITE_BATCH: usize = 128;

/// A batch this small means the session is not busy (see the shrink after each write).
const SMALL_BATCH: usize = 16;

/// Who is on the other end, for logs.
pub(crate) struct Peer {
    pub(crate) addr: Option<std::net::SocketAddr>,
    pub(crate) transport: &'static str,
    /// What the handshake hook attached: a [`Principal`], the application's own values.
    pub(crate) attributes: http::Extensions,
    /// The connection's slot among `max_http_connections`, released once CONNECT succeeds
    /// (until then the connection is not a session yet).
    pub(crate) slot: Option<ConnectionSlot>,
}

/// Runs a session to its end.
pub(crate) async fn run<T: Transport>(runtime: Arc<Runtime>, peer: Peer, transport: T) {
    let session_id = runtime.next_session_id();
    let span =
        tracing::debug_span!("session", %session_id, peer = ?peer.addr, transport = peer.transport);
    let principal = peer.attributes.get::<Principal>().cloned();
    let reason = drive(runtime.clone(), session_id.clone(), principal, peer.slot, transport)
        .instrument(span.clone())
        .await;
    span.in_scope(|| match &reason {
        DisconnectReason::ClientDisconnected | DisconnectReason::ServerShutdown => {
            tracing::debug!(?reason, "session ended")
        }
        DisconnectReason::ConnectionLost(why) => tracing::debug!(%why, "connection lost"),
        other => tracing::warn!(reason = ?other, "session closed"),
    });
    runtime.emit(SessionEvent::Disconnected { session_id, reason });
}

async fn drive<T: Transport>(
    runtime: Arc<Runtime>,
    session_id: ByteStr,
    principal: Option<Principal>,
    slot: Option<ConnectionSlot>,
    mut transport: T,
) -> DisconnectReason {
    let config = &runtime.config;
    let (outbox, mut outbound) = Outbox::new(config.send_buffer_size_limit, config.send_time_limit);
    let mut protocol = Protocol::new(runtime.clone(), session_id, outbox.clone(), principal);
    let mut decoder = Decoder::new(config.limits);
    let mut inbound = BytesMut::new();
    let mut batch: Vec<EncodedFrame> = Vec::new();

    // Timers are created once and re-armed lazily: reads and writes only record the time, and
    // a timer that fires early (because traffic moved its deadline) re-arms itself. Creating
    // fresh timers on every loop turn costs a timer-wheel registration per frame.
    let opened = Instant::now();
    let mut read_allowance: Option<Duration> = None;
    let mut beat_every: Option<Duration> = None;
    let mut last_read = opened;
    let mut last_write = opened;
    let read_timer = sleep_until(opened + config.time_to_first_message);
    let beat_timer = sleep_until(far_future());
    // Likewise the cancellation futures: registered once, not once per loop turn. A child
    // token per session: polling it locks only this session's node, not the server-wide one
    // every session would otherwise contend on.
    let shutdown = runtime.shutdown.child_token();
    let shutting_down = shutdown.cancelled();
    let outbox_closed = outbox.closed();
    let fatal = protocol.fatal();
    let fatal_raised = fatal.raised();
    tokio::pin!(read_timer, beat_timer, shutting_down, outbox_closed, fatal_raised);

    let (last, reason) = loop {
        // Unbiased on purpose: a session under a constant stream of outbound messages must
        // still read its client's frames (an UNSUBSCRIBE, a DISCONNECT) and heart-beats.
        tokio::select! {
            () = &mut shutting_down => {
                let error = Frame::error("server is shutting down", None, "Reconnect to another instance, or later.");
                break (Some(error), DisconnectReason::ServerShutdown);
            }
            () = &mut outbox_closed => {
                let why = outbox.close_reason().unwrap_or("closed").to_owned();
                // A slow consumer's queue is dropped, not flushed: it is why we close.
                let _ = timeout(config.send_time_limit, transport.close()).await;
                protocol.finish();
                return DisconnectReason::SlowConsumer(why.into());
            }
            () = &mut fatal_raised => {
                // The body repeats the message: some clients show only one of the two.
                let message = fatal.message().to_owned();
                let error = Frame::error(message.clone(), None, &message);
                break (Some(error), DisconnectReason::ProtocolError(message.into()));
            }
            () = protocol.unblock(), if protocol.is_blocked() => {
                // The handler queue has room again: handle the frames read before it filled.
                last_read = Instant::now();
                if let Flow::Close { last, reason } = decode_and_handle(&mut decoder, &mut inbound, &mut protocol) {
                    break (last, reason);
                }
            }
            n = outbound.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break (None, DisconnectReason::ConnectionLost("outbound queue closed".into()));
                }
                let bytes: usize = batch.iter().map(EncodedFrame::len).sum();
                match send_within(config.send_time_limit, transport.send(&batch)).await {
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
                // A session that has gone quiet gives back what a burst made the batch grow to.
                if n < SMALL_BATCH {
                    batch.shrink_to(SMALL_BATCH);
                }
                // The clock is read only when a timer needs it (a read per write showed in
                // fan-out profiles).
                if beat_every.is_some() {
                    last_write = Instant::now();
                }
            }
            received = transport.recv(&mut inbound), if !protocol.is_blocked() => {
                match received {
                    Ok(0) => break (None, DisconnectReason::ConnectionLost("the client closed the connection without DISCONNECT".into())),
                    Ok(_) => {}
                    Err(TransportError::Io(e)) => break (None, DisconnectReason::ConnectionLost(e.to_string().into())),
                    // Like a slow consumer's queue: nothing more is sent to a peer that does not read.
                    Err(TransportError::SlowConsumer(why)) => {
                        outbox.close(why.clone());
                        let _ = timeout(config.send_time_limit, transport.close()).await;
                        protocol.finish();
                        return DisconnectReason::SlowConsumer(why.into());
                    }
                    Err(e) => {
                        let message = e.to_string();
                        break (Some(Frame::error(message.clone(), None, "")), DisconnectReason::ProtocolError(message.into()));
                    }
                }
                if protocol.version().is_none() || read_allowance.is_some() {
                    last_read = Instant::now();
                }
                match decode_and_handle(&mut decoder, &mut inbound, &mut protocol) {
                    Flow::Continue => {}
                    Flow::Connected { version, outgoing, incoming } => {
                        if let Some(slot) = &slot {
                            slot.release();
                        }
                        decoder.set_version(version);
                        beat_every = outgoing;
                        read_allowance = incoming.map(HeartBeat::silence_allowance);
                        read_timer.as_mut().reset(read_deadline(true, opened, last_read, read_allowance, config.time_to_first_message));
                        if let Some(every) = beat_every {
                            beat_timer.as_mut().reset(last_write + every);
                        }
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
            () = &mut read_timer => {
                if protocol.is_blocked() {
                    // Not reading is our choice, not the client's silence.
                    last_read = Instant::now();
                }
                let deadline = read_deadline(protocol.version().is_some(), opened, last_read, read_allowance, config.time_to_first_message);
                if Instant::now() < deadline {
                    read_timer.as_mut().reset(deadline);
                    continue;
                }
                let message = match protocol.version() {
                    None => format!("no CONNECT frame within {:?} of opening the connection", config.time_to_first_message),
                    Some(_) => format!("no frame or heart-beat from the client for {:?} (more than the negotiated heart-beat interval)", read_allowance.unwrap_or_default()),
                };
                break (Some(Frame::error(message.clone(), None, "")), DisconnectReason::Timeout(message.into()));
            }
            () = &mut beat_timer, if beat_every.is_some() => {
                let due = last_write + beat_every.unwrap_or_default();
                if Instant::now() < due {
                    beat_timer.as_mut().reset(due);
                    continue;
                }
                if let Err(e) = timeout(config.send_time_limit, transport.send_heartbeat()).await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
                    break (None, DisconnectReason::ConnectionLost(e.to_string().into()));
                }
                last_write = Instant::now();
                beat_timer.as_mut().reset(last_write + beat_every.unwrap_or_default());
            }
        }
    };
    protocol.finish();
    if let Some(frame) = last {
        // Everything queued before the last frame goes first (MESSAGEs, RECEIPTs), in order.
        batch.clear();
        outbound.drain_now(&mut batch);
        batch.push(protocol.encode(&frame));
        let _ = timeout(config.send_time_limit, transport.send(&batch)).await;
    }
    let _ = timeout(config.send_time_limit, transport.close()).await;
    reason
}

/// Runs `send`, failing with `Elapsed` if it takes longer than `limit`. Most writes complete
/// on their first poll: those arm no timer and read no clock.
async fn send_within<F: std::future::Future>(
    limit: Duration,
    send: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut send = std::pin::pin!(send);
    // One poll: done at once, or handed over (waker registered) to the timed wait below.
    let quick = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match send.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    match quick {
        Some(output) => Ok(output),
        None => timeout(limit, send).await,
    }
}

/// Decodes and handles every complete frame in `inbound`, stopping at CONNECT (so the caller
/// can switch the decoder's version) or at a close.
fn decode_and_handle(
    decoder: &mut Decoder,
    inbound: &mut BytesMut,
    protocol: &mut Protocol,
) -> Flow {
    loop {
        // A full handler queue stops decoding until it has room again.
        if protocol.is_blocked() {
            return Flow::Continue;
        }
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

/// When silence from the client becomes fatal: before CONNECT, `time_to_first_message` after
/// the connection opened; after it, the heart-beat allowance after the last read, or never.
fn read_deadline(
    connected: bool,
    opened: Instant,
    last_read: Instant,
    allowance: Option<Duration>,
    time_to_first_message: Duration,
) -> Instant {
    match (connected, allowance) {
        (false, _) => opened + time_to_first_message,
        (true, Some(allowance)) => last_read + allowance,
        (true, None) => far_future(),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
