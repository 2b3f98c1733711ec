//! Sessions: one per connection, whatever the transport.
//!
//! [`run`] drives a session: it reads bytes from the transport, decodes frames and hands them
//! to the [`Protocol`](protocol::Protocol) state machine, writes what the outbox holds, keeps
//! heart-beats in both directions, and ends the session cleanly on DISCONNECT, protocol error,
//! slow consumer, silence, lost connection or server shutdown.

mod protocol;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep, sleep_until, timeout};

use protocol::{Flow, PeerIdentity, Protocol};

use crate::broker::relay::Ended;
use crate::events::{DisconnectReason, SessionEvent};
use crate::outbox::{Batch, Outbox, OutboxReceiver};
use crate::runtime::Runtime;
use crate::security::Principal;
use crate::signal::Gate;
use crate::stomp::{ByteStr, Decoder, EncodedFrame, Frame, HeartBeat, Version};
use crate::transport::connections::ConnectionSlot;
use crate::transport::{SentNow, Transport, TransportError};

/// Frames written per batch at most, so one busy session yields to its reads in between.
/// Larger batches mean fewer `sendto` calls per delivery (64 -> 128 took CPU per delivery with
/// 10 subscribers from 1.67x to 1.29x the baseline's, capped at 0.15 core: docs/benchmarks.md).
const WRITE_BATCH: usize = 128;

/// How long a slow consumer's ERROR frame (why it is closed) may take to write: it may not be
/// reading at all.
const SLOW_CONSUMER_ERROR_TIME: Duration = Duration::from_secs(1);

/// Who is on the other end, for logs.
pub(crate) struct Peer {
    pub(crate) addr: Option<std::net::SocketAddr>,
    pub(crate) transport: &'static str,
    /// What the handshake hook attached: a [`Principal`], the application's own values.
    pub(crate) attributes: http::Extensions,
    /// The connection's slot among `max_http_connections`, released once CONNECT succeeds
    /// (until then the connection is not a session yet).
    pub(crate) slot: Option<ConnectionSlot>,
    /// When the connection reached the server: the WebSocket handshake (or the SockJS
    /// request that opened the session) before its credentials were judged, the TCP
    /// connection when accepted. What a logout compares with (`Server::disconnect_user`
    /// refuses the CONNECT of connections accepted before it): for a WebSocket, taken before
    /// the `101` reaches the client, not when the session is set up after it. (A principal
    /// that middleware attached before the request reached the endpoint was judged earlier
    /// still.)
    pub(crate) accepted: Instant,
}

/// Runs a session to its end.
///
/// The session is set up at once (its id, its counting as open) and its state is boxed: one
/// allocation of its own size, and the future returned holds little more than that box. Held
/// inline instead, each async layer above (the transport's task) would reserve room for it
/// again (a future moved into a wrapper and awaited is laid out twice), which made an idle
/// WebSocket session's task over 30 KiB.
pub(crate) fn run<T: Transport + 'static>(
    runtime: Arc<Runtime>,
    peer: Peer,
    transport: T,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    runtime.start_broker();
    let session_id = runtime.next_session_id();
    let open = OpenSession::new(runtime.clone(), peer.transport);
    let span =
        tracing::debug_span!("session", %session_id, peer = ?peer.addr, transport = peer.transport);
    let identity = PeerIdentity {
        principal: peer.attributes.get::<Principal>().cloned(),
        attributes: peer.attributes,
        addr: peer.addr,
        transport: peer.transport,
        accepted: peer.accepted,
    };
    let drive =
        Box::pin(drive(runtime.clone(), session_id.clone(), identity, peer.slot, transport));
    SessionTask { drive: Some(drive), span, ending: Some(Ending { open, runtime, session_id }) }
}

/// A session's task: its boxed loop, polled inside its span, then the bookkeeping of its end.
///
/// Written by hand rather than as an `async` block: a quiet subscriber's session is woken
/// once per message with all of it out of cache, and the block kept its state and the span
/// it entered on two cache lines (`repr(C)`: what every poll reads, the box and the span,
/// first).
#[repr(C)]
struct SessionTask<F> {
    /// The loop, until it has ended (dropped inside the span, as when the task is dropped).
    drive: Option<Pin<Box<F>>>,
    span: tracing::Span,
    /// Taken when the loop has ended.
    ending: Option<Ending>,
}

/// What a session's end needs besides why it ended.
struct Ending {
    open: OpenSession,
    runtime: Arc<Runtime>,
    session_id: ByteStr,
}

impl<F> Future for SessionTask<F>
where
    F: Future<Output = (DisconnectReason, Option<Principal>)>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // Unpin: the loop is boxed.
        let this = self.get_mut();
        let Some(drive) = this.drive.as_mut() else {
            // Polled again after it ended: nothing more to do.
            return Poll::Ready(());
        };
        let (reason, principal) = {
            let _entered = this.span.enter();
            let ended = std::task::ready!(drive.as_mut().poll(cx));
            this.drive = None;
            ended
        };
        this.span.in_scope(|| log_end(&reason));
        if let Some(Ending { mut open, runtime, session_id }) = this.ending.take() {
            open.closed(&reason);
            runtime.emit(SessionEvent::Disconnected { session_id, reason, principal });
        }
        Poll::Ready(())
    }
}

/// A task dropped before its loop ended (the runtime shutting down) drops the session inside
/// its span, so that what its end logs says which session it was.
impl<F> Drop for SessionTask<F> {
    fn drop(&mut self) {
        if let Some(drive) = self.drive.take() {
            let _entered = self.span.enter();
            drop(drive);
        }
    }
}

/// Logs why a session ended, at the level an operator needs.
fn log_end(reason: &DisconnectReason) {
    match reason {
        DisconnectReason::ClientDisconnected
        | DisconnectReason::ServerShutdown
        | DisconnectReason::Closed(_) => {
            tracing::debug!(?reason, "session ended")
        }
        // Resets and silent clients are normal on the internet: nothing for an operator to do.
        DisconnectReason::ConnectionLost(why) => tracing::debug!(%why, "connection lost"),
        DisconnectReason::Timeout(why) => tracing::debug!(%why, "session timed out"),
        // Logged with the principal where it was decided.
        DisconnectReason::AccessDenied(_) => tracing::debug!(?reason, "session refused"),
        // A misbehaving client: worth seeing, not acting on.
        DisconnectReason::ProtocolError(why) => {
            tracing::info!(%why, "session closed after an ERROR")
        }
        // What an operator may act on: limits too low for the load, a broker down.
        other => tracing::warn!(reason = %other, "session closed"),
    }
}

/// A session counted as open: counted as closed when it ends, or when its task unwinds.
struct OpenSession {
    runtime: Arc<Runtime>,
    transport: &'static str,
    counted: bool,
}

impl OpenSession {
    fn new(runtime: Arc<Runtime>, transport: &'static str) -> Self {
        runtime.counters.session_opened(transport);
        OpenSession { runtime, transport, counted: false }
    }

    fn closed(&mut self, reason: &DisconnectReason) {
        self.counted = true;
        self.runtime.counters.session_closed(self.transport, reason);
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        if !self.counted {
            let reason =
                DisconnectReason::ConnectionLost("the session's task ended abnormally".into());
            self.runtime.counters.session_closed(self.transport, &reason);
        }
    }
}

/// What one turn of the session loop decided.
enum Step {
    Continue,
    /// Send `last` after everything queued (MESSAGEs, RECEIPTs), then close.
    Close(Option<Frame>, DisconnectReason),
    /// Close without sending anything more: the client does not read (a slow consumer).
    Abandon(DisconnectReason),
}

impl From<Flow> for Step {
    fn from(flow: Flow) -> Step {
        match flow {
            Flow::Close { last, reason } => Step::Close(last, reason),
            Flow::Continue | Flow::Connected { .. } => Step::Continue,
        }
    }
}

/// When the session last read and wrote, and what the heart-beat negotiation asked for: the
/// timers are re-armed from these lazily (reads and writes only record the time, and a timer
/// that fires early because traffic moved its deadline re-arms itself; creating fresh timers
/// on every loop turn costs a timer-wheel registration per frame).
///
/// `repr(C)`: what every wake-up reads (whether each timer is armed) first, next to the batch
/// before it in [`Session`].
#[repr(C)]
struct Clock {
    /// Whether the read timer has a deadline to keep: before CONNECT, or with a negotiated
    /// heart-beat from the client. Otherwise it is set for the far future, and the loop does
    /// not poll it (a quiet session's every wake-up polled it twice, for nothing).
    read_timer_armed: bool,
    /// How often we must send something, once negotiated.
    beat_every: Option<Duration>,
    last_write: Instant,
    /// How long the client may stay silent, once negotiated.
    read_allowance: Option<Duration>,
    last_read: Instant,
    opened: Instant,
}

impl Clock {
    /// When silence from the client becomes fatal: before CONNECT, `time_to_first_message`
    /// after the connection opened; after it, the heart-beat allowance after the last read,
    /// or never.
    fn read_deadline(&self, connected: bool, time_to_first_message: Duration) -> Instant {
        match (connected, self.read_allowance) {
            (false, _) => self.opened + time_to_first_message,
            (true, Some(allowance)) => self.last_read + allowance,
            (true, None) => far_future(),
        }
    }
}

/// One session's state between turns of its loop; each event the loop waits for has its own
/// method.
///
/// `repr(C)`, in the order a wake-up to write reads it: the runtime and the outbox, the batch,
/// the clock's flags, then the protocol (whose own first bytes are what the loop checks), so
/// that those are a few neighbouring cache lines rather than lines spread over the session
/// (a quiet subscriber's session is woken once per message with all of it out of cache:
/// docs/benchmarks.md, eighth pass).
#[repr(C)]
struct Session<T> {
    runtime: Arc<Runtime>,
    outbox: Arc<Outbox>,
    /// Frames taken from the outbox for one write.
    batch: Batch,
    clock: Clock,
    protocol: Protocol,
    transport: T,
    decoder: Decoder,
    /// Bytes read and not yet decoded.
    inbound: BytesMut,
    /// The connection's slot among `max_http_connections`, given up at CONNECT.
    slot: Option<ConnectionSlot>,
}

/// Sets up the session, and returns its loop: a future that ends with why the session ended,
/// and who it was.
///
/// Not an `async fn`: one would copy its arguments (the transport, hundreds of bytes) into
/// locals of its own and hold both. The `async move` block uses what it captures in place.
fn drive<T: Transport>(
    runtime: Arc<Runtime>,
    session_id: ByteStr,
    identity: PeerIdentity,
    slot: Option<ConnectionSlot>,
    transport: T,
) -> impl std::future::Future<Output = (DisconnectReason, Option<Principal>)> + Send {
    let config = &runtime.config;
    let (outbox, outbound) = Outbox::new(config.send_buffer_size_limit, config.send_time_limit);
    let protocol = Protocol::new(runtime.clone(), session_id, outbox.clone(), identity);
    let opened = Instant::now();
    let session = Session {
        decoder: Decoder::new(config.limits),
        runtime: runtime.clone(),
        transport,
        protocol,
        outbox,
        inbound: BytesMut::new(),
        batch: Batch::default(),
        slot,
        clock: Clock {
            opened,
            last_read: opened,
            last_write: opened,
            read_allowance: None,
            beat_every: None,
            read_timer_armed: true,
        },
    };
    session.live(outbound)
}

impl<T: Transport> Session<T> {
    /// The session's life: its loop, then its end; ends with why it ended, and who it was.
    ///
    /// One future for both, which owns the session: a loop awaited inside a block that owned
    /// the session was two futures' states, and each wake-up read both (the outer one's state
    /// sat after the session, a cache line of its own). Not an `async fn`: one would move the
    /// session into a local of its own and hold it twice; the block uses it in place.
    #[allow(clippy::manual_async_fn, reason = "an async fn would hold the session twice")]
    fn live(
        mut self,
        mut outbound: OutboxReceiver,
    ) -> impl Future<Output = (DisconnectReason, Option<Principal>)> + Send {
        async move {
            // The loop: runs until a step closes the session.
            let step = {
                let outbound = &mut outbound;
                let runtime = self.runtime.clone();
                let config = &runtime.config;
                let read_timer = sleep_until(self.clock.opened + config.time_to_first_message);
                let beat_timer = sleep_until(far_future());
                // Everything that may end the session from outside raises one signal: a flag in
                // the outbox, looked at on every turn of the loop (four cancellation tokens, each
                // a mutex, showed in profiles).
                let _shutdown = runtime.on_shutdown(self.protocol.signal());
                let outbox = self.outbox.clone();
                // The read is polled again only once its waker fired (or it completed): most turns
                // of a subscriber's loop are writes.
                let reads = Gate::new(outbox.clone());
                tokio::pin!(read_timer, beat_timer);
                // Which of the outbox and the read goes first when both are ready: they take turns,
                // so a session under a constant stream of outbound messages still reads its
                // client's frames (an UNSUBSCRIBE, a DISCONNECT) and heart-beats, and a busy
                // publisher's session still writes.
                let mut writes_first = false;
                loop {
                    let s = &mut self;
                    writes_first = !writes_first;
                    let event = {
                        let blocked = s.protocol.is_blocked();
                        let gated = s.transport.reads_may_be_gated();
                        let (read_armed, beat_armed) =
                            (s.clock.read_timer_armed, s.clock.beat_every.is_some());
                        // Once connected, the read deadline is the heart-beat allowance after the
                        // last read: a read moves it.
                        let reads_move_deadline = s.protocol.version().is_some();
                        let mut unblock = std::pin::pin!(blocked.then(|| s.protocol.unblock()));
                        // Polled in place: no future made and dropped for it on each turn.
                        let batch = &mut s.batch;
                        let mut write = std::pin::pin!(std::future::poll_fn(|cx| {
                            outbound.poll_recv_many(cx, batch, WRITE_BATCH)
                        }));
                        let (transport, inbound) = (&mut s.transport, &mut s.inbound);
                        let mut read = std::pin::pin!(
                            (!blocked).then(|| reads.gated(gated, || transport.recv(inbound)))
                        );
                        std::future::poll_fn(|cx| {
                            next_event(
                                cx,
                                writes_first,
                                (&outbox, gated),
                                (read_armed, reads_move_deadline, read_timer.as_mut()),
                                (beat_armed, beat_timer.as_mut()),
                                unblock.as_mut().as_pin_mut(),
                                write.as_mut(),
                                read.as_mut().as_pin_mut(),
                            )
                        })
                        .await
                    };
                    let step = match event {
                        Event::Signalled => s.signalled(),
                        Event::Unblocked(flow) => {
                            let step = s.unblocked(flow, read_timer.as_mut(), beat_timer.as_mut());
                            s.runtime.counters.flush_in(&mut s.protocol.tally);
                            step
                        }
                        // Most writes are done at once, with no future made for them.
                        Event::Taken(n) => {
                            let n = gather(&mut s.batch, outbound, n, &s.runtime.gathering).await;
                            match s.outbox.close_reason() {
                                // Closed by a publisher (the only closes while the session
                                // runs), before the take or while `gather` waited: a slow
                                // consumer, written no more.
                                Some(why) => {
                                    Step::Abandon(DisconnectReason::SlowConsumer(why.into()))
                                }
                                None => match s.write_now(n) {
                                    Ok(step) => step,
                                    Err(counted) => s.write_batch(n, counted).await,
                                },
                            }
                        }
                        Event::Received(received) => {
                            let step =
                                s.received(received, read_timer.as_mut(), beat_timer.as_mut());
                            // What was decoded is counted (only decoding adds to the tally: a
                            // wake-up to write does not look at it, nor touch its cache line).
                            s.runtime.counters.flush_in(&mut s.protocol.tally);
                            step
                        }
                        Event::ReadTimer => s.read_timer_fired(read_timer.as_mut()),
                        Event::BeatTimer => s.beat_timer_fired(beat_timer.as_mut()).await,
                    };
                    // Matched, not tested: a `Continue` left to go out of scope is dropped by a
                    // call.
                    match step {
                        Step::Continue => {}
                        ended => break ended,
                    }
                }
            };
            let principal = self.protocol.principal().cloned();
            // Boxed: it runs once, and its state (a copy of the session, a last write) would
            // otherwise be reserved in every session's future for its whole life.
            (Box::pin(self.finish(step, &mut outbound)).await, principal)
        }
    }

    /// The session's signal was raised: by the shutdown, a handler's fatal error, the
    /// application closing the session, or the end of its relay connection (looked at in that
    /// order).
    fn signalled(&mut self) -> Step {
        if self.runtime.shutdown.is_cancelled() {
            let error = Frame::error(
                "server is shutting down",
                None,
                "Reconnect to another instance, or later.",
            );
            return Step::Close(Some(error), DisconnectReason::ServerShutdown);
        }
        let fatal = self.protocol.fatal();
        if fatal.is_raised() {
            // The body repeats the message: some clients show only one of the two.
            let message = fatal.message().to_owned();
            let error = Frame::error(message.clone(), None, &message);
            return Step::Close(Some(error), DisconnectReason::ProtocolError(message.into()));
        }
        let closer = self.protocol.closer();
        if closer.is_raised() {
            let message = closer.message().to_owned();
            let error = Frame::error(message.clone(), None, &message);
            return Step::Close(Some(error), DisconnectReason::Closed(message.into()));
        }
        upstream_step(self.protocol.upstream_end().take())
    }

    /// The handler queue has room again, or CONNECT's authentication completed (`flow`):
    /// handles the frames read meanwhile.
    fn unblocked(
        &mut self,
        flow: Option<Flow>,
        read_timer: Pin<&mut Sleep>,
        beat_timer: Pin<&mut Sleep>,
    ) -> Step {
        self.clock.last_read = Instant::now();
        match flow {
            Some(Flow::Connected { version, outgoing, incoming }) => {
                self.connected(version, outgoing, incoming, read_timer, beat_timer);
            }
            Some(flow @ Flow::Close { .. }) => return flow.into(),
            Some(Flow::Continue) | None => {}
        }
        let text = self.transport.inbound_is_utf8();
        decode_and_handle(&mut self.decoder, &mut self.inbound, &mut self.protocol, text).into()
    }

    /// Writes the `n` frames taken from the outbox when that can be done at once (see
    /// [`Transport::send_now`]): with no outbound interceptor, the batch is counted and handed
    /// to the transport. `Err`: not done, [`write_batch`](Self::write_batch) is to finish, with
    /// what was counted, if anything.
    #[inline(always)]
    fn write_now(&mut self, n: usize) -> Result<Step, Option<Counted>> {
        if n == 0 || !self.runtime.config.interceptors.outbound.is_empty() {
            return Err(None);
        }
        let counted = Counted::of(&mut self.batch);
        match self.transport.send_now(&mut self.batch) {
            Ok(SentNow::Done) => Ok(self.written(n, counted)),
            Ok(SentNow::NotTried | SentNow::Started) => Err(Some(counted)),
            Err(e) => Ok(connection_lost(&e)),
        }
    }

    /// Writes the `n` frames taken from the outbox (or what of them
    /// [`write_now`](Self::write_now) began: `counted`, what it counted), within the send
    /// time limit.
    async fn write_batch(&mut self, n: usize, counted: Option<Counted>) -> Step {
        if n == 0 {
            // Closed without a reason (a closed outbox with one was dealt with before: a slow
            // consumer).
            return Step::Close(
                None,
                DisconnectReason::ConnectionLost("outbound queue closed".into()),
            );
        }
        let limit = self.runtime.config.send_time_limit;
        let counted = match counted {
            Some(counted) => counted,
            None => self.intercept_and_count().await,
        };
        match send_within(limit, self.transport.send_taking(&mut self.batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return connection_lost(&e);
            }
            Err(_) => {
                let why = format!(
                    "slow consumer: a write did not complete within the {limit:?} send time limit"
                );
                self.outbox.close(why.clone());
                return Step::Abandon(DisconnectReason::SlowConsumer(why.into()));
            }
        }
        self.written(n, counted)
    }

    /// Counts the batch, running it through the outbound interceptors first if there are any.
    /// What the outbox counted (`bytes`): the frames as queued, before any interceptor changed
    /// them; what the statistics count (`written`): the frames as sent. Without outbound
    /// interceptors they are the same frames, counted in one pass.
    async fn intercept_and_count(&mut self) -> Counted {
        let interceptors = &self.runtime.config.interceptors;
        let queued = if interceptors.outbound.is_empty() {
            None
        } else {
            let bytes: usize = self.batch.iter().map(EncodedFrame::len).sum();
            // One bound for the whole batch: reads and heart-beats wait meanwhile.
            let limit = interceptors.limit();
            // Boxed: most servers have no outbound interceptor, and its state would be
            // reserved in every session's future.
            if timeout(limit, Box::pin(self.intercept_outbound())).await.is_err() {
                tracing::warn!(
                    "the outbound interceptors took longer than {limit:?} (interceptor_timeout) for one batch; the frames they had not passed on were not sent"
                );
            }
            Some(bytes)
        };
        let counted = Counted::of(&mut self.batch);
        Counted { bytes: queued.unwrap_or(counted.bytes), ..counted }
    }

    /// After a write of `n` frames (`counted`): the outbox's room, the statistics, the batch
    /// emptied, the clock.
    #[inline(always)]
    fn written(&mut self, n: usize, counted: Counted) -> Step {
        if self.outbox.written(counted.bytes) {
            // Queues stopped delivering to this session while it was full.
            self.protocol.resume_queues();
        }
        self.runtime.counters.written(counted.written.0);
        // A session that has gone quiet gives back what a burst made the batch grow to.
        self.batch.written(n);
        // The clock is read only when a timer needs it (a read per write showed in fan-out
        // profiles).
        if self.clock.beat_every.is_some() {
            self.clock.last_write = Instant::now();
        }
        Step::Continue
    }

    /// Runs the batch through the outbound interceptors: each frame decoded, intercepted,
    /// and encoded again (or dropped).
    async fn intercept_outbound(&mut self) {
        let version = self.protocol.version().unwrap_or(Version::V1_2);
        let session = self.protocol.session_info();
        let runtime = self.runtime.clone();
        let frames: Vec<EncodedFrame> = self.batch.drain().collect();
        for encoded in frames {
            let mut bytes = BytesMut::with_capacity(encoded.len());
            for chunk in encoded.chunks() {
                bytes.extend_from_slice(chunk);
            }
            let mut decoder = Decoder::new(crate::stomp::Limits::UNLIMITED);
            decoder.set_version(version);
            let Ok(Some(frame)) = decoder.decode(&mut bytes) else {
                // Fail closed, as the chain does: a frame the interceptors cannot see is not
                // sent.
                tracing::error!(
                    session_id = %session.session_id,
                    "a frame for the client could not be decoded for the outbound interceptors; not sent"
                );
                continue;
            };
            if let Some(frame) = runtime.config.interceptors.run_outbound(frame, &session).await {
                self.batch.push(crate::stomp::encode(&frame, version));
            }
        }
    }

    /// Bytes arrived (or the transport ended): decodes and handles every complete frame.
    fn received(
        &mut self,
        received: Result<usize, TransportError>,
        read_timer: Pin<&mut Sleep>,
        beat_timer: Pin<&mut Sleep>,
    ) -> Step {
        match received {
            Ok(0) => {
                let why = "the client closed the connection without DISCONNECT";
                return Step::Close(None, DisconnectReason::ConnectionLost(why.into()));
            }
            Ok(_) => {}
            Err(TransportError::Io(e)) => {
                return connection_lost(&e);
            }
            // Like a slow consumer's queue: nothing more is sent to a peer that does not read.
            Err(TransportError::SlowConsumer(why)) => {
                self.outbox.close(why.clone());
                return Step::Abandon(DisconnectReason::SlowConsumer(why.into()));
            }
            Err(e) => {
                let message = e.to_string();
                let error = Frame::error(message.clone(), None, "");
                return Step::Close(Some(error), DisconnectReason::ProtocolError(message.into()));
            }
        }
        if self.protocol.version().is_none() || self.clock.read_allowance.is_some() {
            self.clock.last_read = Instant::now();
        }
        let text = self.transport.inbound_is_utf8();
        match decode_and_handle(&mut self.decoder, &mut self.inbound, &mut self.protocol, text) {
            Flow::Connected { version, outgoing, incoming } => {
                self.connected(version, outgoing, incoming, read_timer, beat_timer);
                // Frames pipelined behind CONNECT (same read) are decoded now.
                decode_and_handle(&mut self.decoder, &mut self.inbound, &mut self.protocol, text)
                    .into()
            }
            flow => flow.into(),
        }
    }

    /// CONNECT succeeded: decode in its version, and start the heart-beat timers.
    fn connected(
        &mut self,
        version: Version,
        outgoing: Option<Duration>,
        incoming: Option<Duration>,
        read_timer: Pin<&mut Sleep>,
        beat_timer: Pin<&mut Sleep>,
    ) {
        // A session now: the connection no longer counts against max_http_connections.
        if let Some(slot) = &self.slot {
            slot.release();
        }
        self.decoder.set_version(version);
        self.clock.beat_every = outgoing;
        self.clock.read_allowance = incoming.map(HeartBeat::silence_allowance);
        self.clock.read_timer_armed = self.clock.read_allowance.is_some();
        let config = &self.runtime.config;
        read_timer.reset(self.clock.read_deadline(true, config.time_to_first_message));
        if let Some(every) = outgoing {
            beat_timer.reset(self.clock.last_write + every);
        }
    }

    /// The read deadline passed, or traffic moved it: closes a silent client, or re-arms.
    fn read_timer_fired(&mut self, read_timer: Pin<&mut Sleep>) -> Step {
        if self.protocol.is_authenticating() {
            // The authenticator has its own deadline (authentication_timeout).
            read_timer.reset(Instant::now() + self.runtime.config.authentication_timeout);
            return Step::Continue;
        }
        if self.protocol.is_blocked() {
            // Not reading is our choice, not the client's silence.
            self.clock.last_read = Instant::now();
        }
        let config = &self.runtime.config;
        let connected = self.protocol.version().is_some();
        let deadline = self.clock.read_deadline(connected, config.time_to_first_message);
        if Instant::now() < deadline {
            read_timer.reset(deadline);
            return Step::Continue;
        }
        let message = match connected {
            false => format!(
                "no CONNECT frame within {:?} of opening the connection",
                config.time_to_first_message
            ),
            true => format!(
                "no frame or heart-beat from the client for {:?} (more than the negotiated heart-beat interval)",
                self.clock.read_allowance.unwrap_or_default()
            ),
        };
        let error = Frame::error(message.clone(), None, "");
        Step::Close(Some(error), DisconnectReason::Timeout(message.into()))
    }

    /// A heart-beat is due, unless a write since moved it: sends one, or re-arms.
    async fn beat_timer_fired(&mut self, mut beat_timer: Pin<&mut Sleep>) -> Step {
        let every = self.clock.beat_every.unwrap_or_default();
        let due = self.clock.last_write + every;
        if Instant::now() < due {
            beat_timer.as_mut().reset(due);
            return Step::Continue;
        }
        let limit = self.runtime.config.send_time_limit;
        let sent = timeout(limit, self.transport.send_heartbeat()).await;
        if let Err(e) = sent.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
            return connection_lost(&e);
        }
        self.clock.last_write = Instant::now();
        beat_timer.reset(self.clock.last_write + every);
        Step::Continue
    }

    /// Ends the session as `step` says, and returns why it ended.
    async fn finish(mut self, step: Step, outbound: &mut OutboxReceiver) -> DisconnectReason {
        let limit = self.runtime.config.send_time_limit;
        let (last, reason) = match step {
            Step::Close(last, reason) => (last, reason),
            Step::Abandon(reason) => {
                // A slow consumer's queue is dropped, not flushed: it is why we close. It is
                // told why, so that its logs explain the close, if it reads that soon.
                if let DisconnectReason::SlowConsumer(why) = &reason {
                    let error = self.protocol.encode(&Frame::error(why.to_string(), None, why));
                    let send = self.transport.send(std::slice::from_ref(&error));
                    if let Ok(Ok(())) = timeout(SLOW_CONSUMER_ERROR_TIME, send).await {
                        count_written(&self.runtime, std::slice::from_ref(&error));
                    }
                }
                let _ = timeout(limit, self.transport.close()).await;
                self.protocol.finish();
                return reason;
            }
            Step::Continue => unreachable!("the loop ends only on a closing step"),
        };
        self.protocol.finish();
        if let Some(frame) = last {
            // Everything queued before the last frame goes first (MESSAGEs, RECEIPTs), in order.
            self.batch.clear();
            outbound.drain_now(&mut self.batch);
            self.batch.push(self.protocol.encode(&frame));
            if !self.runtime.config.interceptors.outbound.is_empty()
                && timeout(limit, self.intercept_outbound()).await.is_err()
            {
                self.batch.clear();
            }
            let frames: Vec<EncodedFrame> = self.batch.drain().collect();
            // One write with the close where the transport can (a DISCONNECT's receipt and the
            // WebSocket close frame were two: a system call and a packet more per session).
            // Frames that could not be written end the session without a clean close.
            if let Ok(Ok(())) = timeout(limit, self.transport.send_and_close(&frames)).await {
                count_written(&self.runtime, &frames);
            }
            return reason;
        }
        let _ = timeout(limit, self.transport.close()).await;
        reason
    }
}

/// Adds written frames to the server's counters, by command.
fn count_written(runtime: &Runtime, frames: &[EncodedFrame]) {
    let mut written = Tally::default();
    for frame in frames {
        written.add(frame, frame.len());
    }
    runtime.counters.written(written.0);
}

/// A batch as counted before its write: its bytes as queued (what the outbox's bound counts),
/// and the frames as sent, by command.
struct Counted {
    bytes: usize,
    written: Tally,
}

impl Counted {
    /// `batch` as it is, in one pass (which also measures it for the transport).
    #[inline(always)]
    fn of(batch: &mut Batch) -> Counted {
        // Only the frames that are not MESSAGEs are tallied one by one (few, and never in a
        // fan-out's batch); the MESSAGEs are what is left of the batch's count and bytes.
        let mut written = Tally::default();
        let frames = batch.len() as u64;
        let bytes = batch
            .measure(|frame, len| {
                if frame.first_byte() != Some(b'M') {
                    written.add(frame, len);
                }
            })
            .bytes;
        let (others, other_bytes) =
            written.0.iter().fold((0, 0), |(n, b), (count, size)| (n + count, b + size));
        written.0[crate::stats::command_out_index(Some(b'M'))] =
            (frames - others, bytes as u64 - other_bytes);
        Counted { bytes, written }
    }
}

/// How a session ends when its connection failed (`e`).
fn connection_lost(e: &std::io::Error) -> Step {
    Step::Close(None, DisconnectReason::ConnectionLost(e.to_string().into()))
}

/// Frames written and their bytes, by command (`stats::COMMANDS_OUT`).
#[derive(Default)]
struct Tally([(u64, u64); crate::stats::COMMANDS_OUT.len()]);

impl Tally {
    fn add(&mut self, frame: &EncodedFrame, len: usize) {
        let tally = &mut self.0[crate::stats::command_out_index(frame.first_byte())];
        tally.0 += 1;
        tally.1 += len as u64;
    }
}

/// Adds to the `n` frames just taken into `batch` (up to [`WRITE_BATCH`] in all) those that
/// are queued before the runtime next polls for I/O, when the session is being fed a stream,
/// and returns how many the batch holds.
///
/// A session that found several frames yields once first (`yield_now` defers it until the
/// worker next polls for I/O, or runs out of other tasks): whatever the tasks ahead of it queue
/// (the rest of a publisher's read turn, a second publisher's frames), and usually what a read
/// that the poll finds ready then queues, goes out in this one write rather than in a write of
/// its own. Usually: tokio wakes deferred tasks last first, each into its worker's LIFO slot,
/// so on a multi-thread runtime one of them runs before the tasks the poll woke; a deferred
/// task is not stolen by another worker meanwhile; and the poll may find I/O driven by another
/// worker. What a server loop does when it writes its replies just before it waits for events
/// again; a busy fan-out then makes one `sendto` per subscriber where it made one for each part
/// of its publisher's input the reads happened to see (1.2 per subscriber for each 100
/// messages a load generator sent in two writes, against 1.0: 5-7 % less server CPU per
/// delivery, docs/benchmarks.md, twelfth pass).
///
/// Written at once: one frame (a quiet subscriber, a RECEIPT, fixed-rate traffic), where the
/// wait would only put each delivery behind the next round of reads; a full batch; and any
/// batch while [`MAX_GATHERING`] sessions of the server wait already (`gathering` counts
/// them): a turn that woke that many writers is long, and what it queued fills their writes
/// without a wait (with 1,000 subscribers, waiting every time left the `sendto` count as it
/// was), while each wait is a second poll of a session whose state may have left the cache.
#[inline(always)]
async fn gather(
    batch: &mut Batch,
    outbound: &mut OutboxReceiver,
    n: usize,
    gathering: &AtomicUsize,
) -> usize {
    if n <= 1 || n >= WRITE_BATCH {
        return n;
    }
    let Some(_waiting) = Gathering::enter(gathering) else { return n };
    tokio::task::yield_now().await;
    n + outbound.take_more(batch, WRITE_BATCH - n)
}

/// How many sessions of a server may wait at once in [`gather`].
const MAX_GATHERING: usize = 32;

/// One session counted in `Runtime::gathering` while it waits in [`gather`] (uncounted when
/// dropped, whether the wait completed or the session was dropped during it).
struct Gathering<'a>(&'a AtomicUsize);

impl<'a> Gathering<'a> {
    /// Counts one more waiting session, unless [`MAX_GATHERING`] wait already.
    fn enter(count: &'a AtomicUsize) -> Option<Gathering<'a>> {
        if count.fetch_add(1, Ordering::Relaxed) >= MAX_GATHERING {
            count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Gathering(count))
    }
}

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What ended one wait of the session loop.
enum Event {
    /// The session's signal was raised.
    Signalled,
    /// The handler queue has room again, or CONNECT's authentication completed.
    Unblocked(Option<Flow>),
    /// Frames were taken from the outbox (none: it was closed).
    Taken(usize),
    /// Bytes arrived, or the transport ended.
    Received(Result<usize, TransportError>),
    /// The read deadline passed.
    ReadTimer,
    /// A heart-beat may be due.
    BeatTimer,
}

/// One poll of everything the session loop waits for (a hand-written `select!`: a wake-up of a
/// quiet subscriber's session polled it twice, and the macro's random start and its walk over
/// six branches were a fifth of the instructions of such a delivery). The signal (a flag of
/// the `outbox`'s) first, then the timers (so that neither a constant stream of outbound
/// messages nor of inbound frames keeps a deadline from being noticed), then the handler
/// queue, then the outbox and the read, in the order `writes_first` gives: the loop
/// alternates it. A read deadline that reads move (`reads_move_deadline`: the heart-beat
/// allowance, once connected) gives way to a read that is ready: the frame or heart-beat
/// waiting in the socket moves it (a session whose loop was busy elsewhere, with a write
/// within the send time limit, is not closed for a silence that was not there). Like
/// `select!`, it yields when the task's cooperative budget is spent.
///
/// The signal and a gated read (`gated`: the read is behind the outbox's gate) wake the task
/// through the outbox, whose waker the outbox's poll registers only when the loop is about to
/// wait: both flags are looked at again after it, and a wake-up that came in between (and
/// woke nobody) has the task polled again.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn next_event<W, R, U>(
    cx: &mut std::task::Context<'_>,
    writes_first: bool,
    (outbox, gated): (&Outbox, bool),
    (read_armed, reads_move_deadline, read_timer): (bool, bool, Pin<&mut Sleep>),
    (beat_armed, beat_timer): (bool, Pin<&mut Sleep>),
    unblock: Option<Pin<&mut U>>,
    write: Pin<&mut W>,
    read: Option<Pin<&mut R>>,
) -> Poll<Event>
where
    U: Future<Output = Option<Flow>>,
    W: Future<Output = usize>,
    R: Future<Output = Result<usize, TransportError>>,
{
    // What `select!` does: a task whose budget is spent yields, and is woken once the runtime
    // has had its turn (`poll_proceed` then returns `Pending`, and defers the wake-up). Looked
    // at first without it: its guard, made and dropped on every poll, was about 50
    // instructions of each quiet delivery.
    if !tokio::task::coop::has_budget_remaining() {
        drop(std::task::ready!(tokio::task::coop::poll_proceed(cx)));
    }
    if outbox.is_raised() {
        return Poll::Ready(Event::Signalled);
    }
    let read_due = read_armed && read_timer.poll(cx).is_ready();
    if read_due && !(reads_move_deadline && read.is_some()) {
        return Poll::Ready(Event::ReadTimer);
    }
    if !read_due {
        if beat_armed && beat_timer.poll(cx).is_ready() {
            return Poll::Ready(Event::BeatTimer);
        }
        if let Some(unblock) = unblock {
            if let Poll::Ready(flow) = unblock.poll(cx) {
                return Poll::Ready(Event::Unblocked(flow));
            }
        }
    }
    // (The read is polled in one place: a second call site kept the compiler from inlining
    // the gated read, about 50 instructions of each quiet delivery.)
    let mut write = Some(write);
    if writes_first && !read_due {
        if let Some(Poll::Ready(n)) = write.take().map(|w| w.poll(cx)) {
            return Poll::Ready(Event::Taken(n));
        }
    }
    let watches_read = gated && read.is_some();
    if let Some(Poll::Ready(received)) = read.map(|r| r.poll(cx)) {
        return Poll::Ready(Event::Received(received));
    }
    if read_due {
        return Poll::Ready(Event::ReadTimer);
    }
    if let Some(Poll::Ready(n)) = write.map(|w| w.poll(cx)) {
        return Poll::Ready(Event::Taken(n));
    }
    // The outbox's waker is registered now (the write's poll did it): a raise or a read's
    // wake-up since the looks above woke nobody. Rare: polled again rather than looked at
    // here (the read would have to be polled a second time).
    if outbox.is_raised() || (watches_read && outbox.read_woken()) {
        cx.waker().wake_by_ref();
    }
    Poll::Pending
}

/// How a session ends when its connection to the external broker (relay) ended.
fn upstream_step(ended: Option<&Ended>) -> Step {
    match ended {
        Some(Ended::Disconnected(receipt)) => {
            Step::Close(receipt.clone(), DisconnectReason::ClientDisconnected)
        }
        Some(Ended::Refused(error)) => {
            let message = error.get(crate::stomp::names::MESSAGE).unwrap_or("broker error");
            let reason =
                DisconnectReason::ProtocolError(format!("the broker refused: {message}").into());
            Step::Close(Some(error.clone()), reason)
        }
        Some(Ended::Lost(why)) => {
            tracing::warn!("broker not available: {why}");
            let error = Frame::error(
                "broker not available",
                None,
                "The connection to the message broker was lost; reconnect to try again.",
            );
            Step::Close(Some(error), DisconnectReason::BrokerUnavailable(why.as_str().into()))
        }
        None => Step::Continue,
    }
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
/// can switch the decoder's version) or at a close. `text`: whether every byte in `inbound`
/// is known to be UTF-8 ([`Transport::inbound_is_utf8`]).
fn decode_and_handle(
    decoder: &mut Decoder,
    inbound: &mut BytesMut,
    protocol: &mut Protocol,
    text: bool,
) -> Flow {
    protocol.inbound_is_utf8 = text;
    loop {
        // A full handler queue stops decoding until it has room again.
        if protocol.is_blocked() {
            return Flow::Continue;
        }
        let before = inbound.len();
        match decoder.decode_knowing(inbound, protocol.known_head()) {
            Ok(None) => {
                // Heart-beats skipped, or a frame's head decoded ahead of its body.
                protocol.tally.carry(before - inbound.len());
                return Flow::Continue;
            }
            Ok(Some(frame)) => {
                protocol.tally.received(frame.command, before - inbound.len());
                match protocol.receive(frame, decoder.recalled()) {
                    Flow::Continue => continue,
                    other => return other,
                }
            }
            Err(e) => return protocol.error(e.to_string(), e.receipt()),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::{pending, ready};
    use std::pin::pin;
    use std::task::{Context, Waker};

    type Read = std::future::Ready<Result<usize, TransportError>>;

    #[test]
    fn at_most_max_gathering_sessions_wait_and_each_is_uncounted_when_dropped() {
        let count = AtomicUsize::new(0);
        let waiting: Vec<_> =
            (0..MAX_GATHERING).map(|_| Gathering::enter(&count).expect("room")).collect();
        assert!(Gathering::enter(&count).is_none(), "one more than the bound");
        assert_eq!(count.load(Ordering::Relaxed), MAX_GATHERING, "a refusal counts nothing");
        drop(waiting);
        assert_eq!(count.load(Ordering::Relaxed), 0);
        assert!(Gathering::enter(&count).is_some(), "room again");
        assert_eq!(count.load(Ordering::Relaxed), 0, "the guard dropped at once");
    }

    #[test]
    fn a_batch_is_counted_by_command_whatever_its_mix() {
        use crate::stomp::{Command, Frame, Version, encode};
        let frame =
            |command, body: &'static str| encode(&Frame::new(command).body(body), Version::V1_2);
        let frames = [
            frame(Command::Message, "a"),
            frame(Command::Receipt, ""),
            frame(Command::Message, "bb"),
            frame(Command::Error, "ccc"),
            frame(Command::Message, ""),
            frame(Command::Connected, ""),
        ];
        for n in 0..=frames.len() {
            let mut batch = Batch::from(frames[..n].to_vec());
            let counted = Counted::of(&mut batch);
            let mut want = Tally::default();
            for frame in &frames[..n] {
                want.add(frame, frame.len());
            }
            assert_eq!(counted.written.0, want.0, "the first {n} frames");
            assert_eq!(counted.bytes, frames[..n].iter().map(EncodedFrame::len).sum::<usize>());
        }
    }

    /// What is ready when the session's wait is polled once.
    #[derive(Clone, Copy, Default)]
    struct Ready {
        signal: bool,
        read_due: bool,
        /// Whether a read moves the read deadline (connected, with a heart-beat allowance).
        reads_move_deadline: bool,
        beat_due: bool,
        /// Whether a read is ready (the outbox always is).
        read: bool,
        writes_first: bool,
    }

    /// What one poll of the session's wait gives (a timer that is not due is set an hour
    /// ahead).
    fn first_event(ready_now: Ready) -> Event {
        let mut cx = Context::from_waker(Waker::noop());
        let at = |due: bool| match due {
            // Before the runtime started: its timer has passed that at once.
            true => Instant::now() - Duration::from_secs(1),
            false => Instant::now() + Duration::from_secs(3600),
        };
        let (outbox, _receiver) = Outbox::new(1 << 20, Duration::from_secs(10));
        if ready_now.signal {
            outbox.raise();
        }
        let (read_timer, beat_timer) =
            (pin!(sleep_until(at(ready_now.read_due))), pin!(sleep_until(at(ready_now.beat_due))));
        let unblock: Option<Pin<&mut std::future::Pending<Option<Flow>>>> = None;
        let read = pin!(std::future::poll_fn(|_| match ready_now.read {
            true => Poll::Ready(Ok::<usize, TransportError>(5)),
            false => Poll::Pending,
        }));
        match next_event(
            &mut cx,
            ready_now.writes_first,
            (&outbox, true),
            (true, ready_now.reads_move_deadline, read_timer),
            (true, beat_timer),
            unblock,
            pin!(ready(3)),
            Some(read),
        ) {
            Poll::Ready(event) => event,
            Poll::Pending => panic!("something was ready"),
        }
    }

    #[tokio::test]
    async fn the_outbox_and_the_read_take_turns_after_the_signal_and_the_timers() {
        let busy = Ready { read: true, ..Ready::default() };
        assert!(matches!(first_event(Ready { writes_first: true, ..busy }), Event::Taken(3)));
        assert!(matches!(
            first_event(Ready { writes_first: false, ..busy }),
            Event::Received(Ok(5))
        ));
        // A deadline is noticed however busy both directions are.
        assert!(matches!(first_event(Ready { read_due: true, ..busy }), Event::ReadTimer));
        assert!(matches!(first_event(Ready { beat_due: true, ..busy }), Event::BeatTimer));
        let all = Ready { signal: true, read_due: true, beat_due: true, ..busy };
        assert!(matches!(first_event(all), Event::Signalled));
    }

    #[tokio::test]
    async fn a_read_waiting_moves_a_heart_beat_deadline_before_it_is_judged() {
        let due = Ready { read_due: true, reads_move_deadline: true, ..Ready::default() };
        // The client's heart-beat is in the socket: read, not judged silent.
        assert!(matches!(first_event(Ready { read: true, ..due }), Event::Received(Ok(5))));
        // Nothing to read: the deadline fires.
        assert!(matches!(first_event(due), Event::ReadTimer));
        // Before CONNECT the deadline is fixed: bytes arriving do not put it off.
        let fixed = Ready { reads_move_deadline: false, read: true, ..due };
        assert!(matches!(first_event(fixed), Event::ReadTimer));
    }

    #[tokio::test]
    async fn a_disarmed_timer_and_a_closed_read_are_not_polled() {
        let mut cx = Context::from_waker(Waker::noop());
        let past = Instant::now() - Duration::from_secs(1);
        let (read_timer, beat_timer) = (pin!(sleep_until(past)), pin!(sleep_until(past)));
        let unblock: Option<Pin<&mut std::future::Pending<Option<Flow>>>> = None;
        let (outbox, _receiver) = Outbox::new(1 << 20, Duration::from_secs(10));
        let polled = next_event(
            &mut cx,
            false,
            (&outbox, true),
            (false, true, read_timer),
            (false, beat_timer),
            unblock,
            pin!(pending::<usize>()),
            None::<Pin<&mut Read>>,
        );
        assert!(polled.is_pending(), "the due timers are disarmed, nothing else is ready");
    }

    #[tokio::test]
    async fn a_blocked_handler_queue_is_polled_before_the_outbox() {
        let mut cx = Context::from_waker(Waker::noop());
        let far = Instant::now() + Duration::from_secs(3600);
        let (read_timer, beat_timer) = (pin!(sleep_until(far)), pin!(sleep_until(far)));
        let (outbox, _receiver) = Outbox::new(1 << 20, Duration::from_secs(10));
        let polled = next_event(
            &mut cx,
            true,
            (&outbox, true),
            (true, true, read_timer),
            (true, beat_timer),
            Some(pin!(ready(None::<Flow>))),
            pin!(ready(1)),
            None::<Pin<&mut Read>>,
        );
        assert!(matches!(polled, Poll::Ready(Event::Unblocked(None))));
    }

    /// Polls the session's wait once with nothing ready, where `meanwhile` happens while the
    /// outbox is polled (after the looks at its flags, before its waker is registered); returns
    /// how often the task was woken.
    fn woken_after_a_wait(gated: bool, meanwhile: impl Fn(&Outbox)) -> usize {
        let (outbox, mut receiver) = Outbox::new(1 << 20, Duration::from_secs(10));
        // What the gate's first poll does (the read here stands behind no gate).
        assert!(outbox.take_read_wake(), "a new outbox lets the first read through");
        let task = Arc::new(crate::signal::WakeCount::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let far = Instant::now() + Duration::from_secs(3600);
        let (read_timer, beat_timer) = (pin!(sleep_until(far)), pin!(sleep_until(far)));
        let unblock: Option<Pin<&mut std::future::Pending<Option<Flow>>>> = None;
        let mut batch = Batch::default();
        let write = pin!(std::future::poll_fn(|cx| {
            meanwhile(&outbox);
            receiver.poll_recv_many(cx, &mut batch, WRITE_BATCH)
        }));
        let polled = next_event(
            &mut cx,
            false,
            (&outbox, gated),
            (true, true, read_timer),
            (true, beat_timer),
            unblock,
            write,
            Some(pin!(pending::<Result<usize, TransportError>>())),
        );
        assert!(polled.is_pending(), "nothing was ready when looked at");
        task.count()
    }

    #[tokio::test]
    async fn a_raise_or_a_reads_wake_up_before_the_outbox_registered_the_task_has_it_polled_again()
    {
        assert_eq!(woken_after_a_wait(true, |_| {}), 0, "nothing happened: the task waits");
        assert_eq!(woken_after_a_wait(true, Outbox::raise), 1, "a raise is not missed");
        let read_woken = |outbox: &Outbox| outbox.reopen_read();
        assert_eq!(woken_after_a_wait(true, read_woken), 1, "nor a gated read's wake-up");
        // An ungated read is polled with the task's own waker: the gate's flag means nothing
        // then (and is left set), so it must not have the task polled again and again.
        assert_eq!(woken_after_a_wait(false, read_woken), 0);
    }
}
