//! The STOMP state machine of one session: what each client frame does, and which frames the
//! server answers with. Synchronous and transport-agnostic: it consumes frames and queues
//! replies in the session's outbox; the run loop in `mod.rs` moves bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::relay::{self, Link, UpstreamEnd};
use crate::broker::{
    AckMode, Body, Pattern, Pressure, Refused, SendTemplate, Settle, Settlement, Shared, Subscriber,
};
use crate::destination::strip_prefix;
use crate::dispatch::{Fatal, Job, Matched, MessageContext, SessionDispatch};
use crate::events::{DisconnectReason, SessionEvent};
use crate::intercept::{Inbound, SessionInfo};
use crate::outbox::Outbox;
use crate::runtime::Runtime;
use crate::security::rate::TokenBucket;
use crate::security::{ConnectRequest, CookieAuthenticated, Csrf, CsrfToken, FrameKind, Principal};
use crate::signal::Signal;
use crate::stats::Tally;
use crate::stomp::{ByteStr, Command, EncodedFrame, Frame, HeartBeat, Version, encode, names};
use crate::template::resolve_user_destination;

const SUPPORTED: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

/// Appended to a user-destination subscription's id for its second key in the external broker
/// (the user's, beside the session's).
const USER_KEY_ID: &str = "~user";

/// What the run loop must do after a frame.
#[derive(Debug)]
pub(crate) enum Flow {
    Continue,
    /// CONNECT succeeded: decode with `version` from now on and start heart-beating.
    Connected {
        version: Version,
        outgoing: Option<Duration>,
        incoming: Option<Duration>,
    },
    /// Write `last` (after everything already queued), then close.
    Close {
        last: Option<Frame>,
        reason: DisconnectReason,
    },
}

/// A frame the session cannot accept: becomes an ERROR frame, then the connection closes.
enum Violation {
    /// The client broke the protocol.
    Protocol(String),
    /// Security refused it (a rule, a role, a limit): logged with the principal.
    Denied(String),
}

type Handled = Result<Flow, Violation>;

fn violation(message: impl Into<String>) -> Violation {
    Violation::Protocol(message.into())
}

/// What a session knows of its peer when it starts: from the handshake.
pub(crate) struct PeerIdentity {
    pub(crate) principal: Option<Principal>,
    pub(crate) attributes: http::Extensions,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) transport: &'static str,
    /// When the connection reached the server (see `Peer::accepted`).
    pub(crate) accepted: tokio::time::Instant,
}

/// A frame in the inbound interceptors, and the receipt it asked for.
type Intercepting =
    (Pin<Box<dyn std::future::Future<Output = Result<Inbound, String>> + Send>>, Option<String>);

/// Why a CONNECT waiting for the authenticator or the broker relay was refused.
enum Refusal {
    /// The authenticator refused (or timed out): the text is for the log only.
    Authentication(String),
    /// The relay could not open the session's connection to the external broker.
    Broker(String),
    /// The CONNECT rule refused the principal (checked before a broker connection is opened).
    Denied,
}

/// What a CONNECT waits for: the session's principal, and its relay connection if any.
type ConnectOutcome = Result<(Option<Principal>, Option<Link>), Refusal>;

/// A CONNECT waiting for the authenticator, the broker relay, or both.
struct PendingConnect {
    outcome: Pin<Box<dyn std::future::Future<Output = ConnectOutcome> + Send>>,
    version: Version,
    client_beat: HeartBeat,
    login: Option<String>,
    receipt: Option<String>,
}

/// One subscription of the session.
struct Subscription {
    /// `None` for a subscription held by the external broker (relay).
    subscriber: Option<Arc<Subscriber>>,
    /// The destination as the client subscribed to it (for a user destination, not the
    /// resolved name the broker matches).
    destination: ByteStr,
}

/// One session's protocol state.
///
/// `repr(C)`, and what the session loop reads at every wake-up first: the flags and the four
/// pointers that say whether the session is blocked, and the handler queue's waiting list, on
/// one or two cache lines. A quiet subscriber's session is woken once per message, with its
/// state out of cache; with the compiler's order these were six lines (callgrind's cache
/// simulation: docs/benchmarks.md, eighth pass). The rarely set states are boxed to keep the
/// group small.
#[repr(C)]
pub(crate) struct Protocol {
    version: Option<Version>,
    /// Whether every byte the client sent so far is known to be UTF-8 (WebSocket text, set by
    /// the session before each decoding; the last character may be unfinished): a SEND's body,
    /// a slice of those bytes between a `\n` and a NUL, then is too.
    pub(crate) inbound_is_utf8: bool,
    /// DISCONNECT went to the external broker: nothing more is read.
    disconnecting: bool,
    /// Set while handling a frame whose receipt the external broker will answer.
    receipt_forwarded: bool,
    /// Whether the session is in the session registry (from a successful CONNECT).
    registered: bool,
    /// A CONNECT whose authentication is under way: nothing more is read meanwhile.
    pending: Option<Box<PendingConnect>>,
    /// A frame the inbound interceptors are deciding on: nothing more is read meanwhile.
    intercepting: Option<Box<Intercepting>>,
    /// Subscribers with the `Backpressure` policy that the last SEND left over their limit:
    /// nothing more is read until they have room, or the deadline passes.
    backpressure: Option<Box<(Vec<Arc<Outbox>>, tokio::time::Instant)>>,
    /// The session's connection to the external broker, with the relay.
    relay: Option<Box<Link>>,
    /// The handler queue (its list of calls waiting for room first).
    dispatch: SessionDispatch,
    runtime: Arc<Runtime>,
    session_id: ByteStr,
    outbox: Arc<Outbox>,
    /// Broker subscriptions, and subscriptions to subscribe mappings (which the broker never
    /// sees), by id.
    subscriptions: HashMap<ByteStr, Subscription>,
    transactions: HashMap<ByteStr, Vec<Frame>>,
    transaction_bytes: usize,
    /// What interceptors see of the session (renewed when CONNECT names the principal).
    session_info: Arc<SessionInfo>,
    /// Frames and bytes received since the session last added them to the server's counters.
    pub(crate) tally: Tally,
    principal: Option<Principal>,
    /// What the handshake attached (a CSRF token, the application's values).
    attributes: http::Extensions,
    addr: Option<SocketAddr>,
    /// The inbound frame rate limit, when configured.
    rate: Option<TokenBucket>,
    /// Raised to close the session from outside (`Server::disconnect_user`).
    closer: Arc<Fatal>,
    /// When its connection reached the server (see `Peer::accepted`): what a logout compares
    /// with.
    accepted: tokio::time::Instant,
    /// Raised when that connection ends.
    upstream_end: Arc<UpstreamEnd>,
    /// What the session loop waits on for the fatal error, the closer and the upstream end
    /// (and the server's shutdown).
    signal: Signal,
    /// The last destination a SEND was routed to the broker with (a copy, its room reused: a
    /// slice of the frame would keep the whole read buffer it came in). A broker route depends
    /// on the destination and the configuration only (a handler's also on the principal's
    /// roles: never kept), and a publisher usually sends to one destination again and again:
    /// the same one is routed as it was, without the prefix checks.
    last_broker_send: Option<String>,
    /// The template of a SEND head the decoder keeps (see `Decoder::recalled`), with that
    /// head's number, made at the first SEND it recalled: a SEND recalled with the same number
    /// is published with it, without the checks and routing its head passed (the same bytes
    /// pass the same ones), and its message shares the headers filtered and encoded once.
    /// `None` with the number: that head's SENDs cannot be published so (see `template`), and
    /// are handled the long way without another look.
    send_again: Option<Box<(u64, Option<SendTemplate>)>>,
}

/// Where a SEND or SUBSCRIBE goes.
enum Target {
    Broker,
    Handler(Matched),
    /// A SEND to `/user/{name}/...`: `destination` of each of `user`'s sessions.
    User {
        user: String,
        destination: String,
    },
}

impl Protocol {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        session_id: ByteStr,
        outbox: Arc<Outbox>,
        peer: PeerIdentity,
    ) -> Self {
        let rate = runtime.config.inbound_frame_rate.map(TokenBucket::new);
        let signal = Signal::new(outbox.clone());
        let session_info = Arc::new(SessionInfo {
            session_id: session_id.to_string(),
            principal: peer.principal.clone(),
            attributes: peer.attributes.clone(),
            transport: peer.transport,
        });
        Protocol {
            dispatch: SessionDispatch::new(runtime.clone(), signal.clone()),
            runtime,
            session_id,
            outbox,
            version: None,
            inbound_is_utf8: false,
            subscriptions: HashMap::new(),
            transactions: HashMap::new(),
            transaction_bytes: 0,
            backpressure: None,
            session_info,
            intercepting: None,
            tally: Tally::default(),
            principal: peer.principal,
            attributes: peer.attributes,
            addr: peer.addr,
            pending: None,
            rate,
            closer: Arc::new(Fatal::new(signal.clone())),
            registered: false,
            accepted: peer.accepted,
            relay: None,
            upstream_end: Arc::new(UpstreamEnd::new(signal.clone())),
            signal,
            receipt_forwarded: false,
            disconnecting: false,
            last_broker_send: None,
            send_again: None,
        }
    }

    /// The flag the session loop waits on: raised by [`fatal`](Self::fatal),
    /// [`closer`](Self::closer) and [`upstream_end`](Self::upstream_end).
    pub(crate) fn signal(&self) -> Signal {
        self.signal.clone()
    }

    /// The signal of the session's relay connection ending.
    pub(crate) fn upstream_end(&self) -> Arc<UpstreamEnd> {
        self.upstream_end.clone()
    }

    /// The signal of a handler call that must end the session.
    pub(crate) fn fatal(&self) -> Arc<Fatal> {
        self.dispatch.fatal()
    }

    /// The signal of the application closing the session (a logout).
    pub(crate) fn closer(&self) -> Arc<Fatal> {
        self.closer.clone()
    }

    /// The session's principal, once known.
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Whether no frame may be read until [`unblock`](Self::unblock) completes: handler
    /// calls wait for room in the session's queue, or CONNECT waits for its authentication.
    pub(crate) fn is_blocked(&self) -> bool {
        self.pending.is_some()
            || self.intercepting.is_some()
            || self.backpressure.is_some()
            || self.disconnecting
            || self.dispatch.is_blocked()
            || self.relay.as_ref().is_some_and(|link| link.is_blocked())
    }

    /// Whether CONNECT (or any frame) waits for the authenticator or the interceptors: time
    /// the application takes, not the client's silence.
    pub(crate) fn is_authenticating(&self) -> bool {
        self.pending.is_some() || self.intercepting.is_some()
    }

    /// Waits until the authentication of CONNECT completes (returning how the session goes
    /// on), or until the waiting handler calls are queued. Cancel-safe.
    pub(crate) async fn unblock(&mut self) -> Option<Flow> {
        if let Some(intercepting) = &mut self.intercepting {
            let (decision, _) = &mut **intercepting;
            let outcome = decision.as_mut().await;
            let (_, receipt) = *self.intercepting.take()?;
            return Some(match outcome {
                Ok(Inbound::Pass(frame)) => self.handle(frame),
                Ok(Inbound::Reject(message)) | Err(message) => {
                    self.error(message, receipt.as_deref())
                }
                Ok(Inbound::Drop) => {
                    if let Some(id) = receipt {
                        self.reply(&Frame::receipt_for(id));
                    }
                    Flow::Continue
                }
            });
        }
        if let Some(pending) = &mut self.pending {
            let outcome = pending.outcome.as_mut().await;
            let pending = self.pending.take()?;
            return Some(self.authenticated(*pending, outcome));
        }
        if let Some(pressure) = &mut self.backpressure {
            let (waiting, deadline) = &mut **pressure;
            // Cancel-safe: an outbox leaves the list only once it has room.
            while let Some(outbox) = waiting.last() {
                // Over the limit for the whole wait: a slow consumer.
                if tokio::time::timeout_at(*deadline, outbox.under_limit()).await.is_err() {
                    let limit = self.runtime.config.send_time_limit;
                    let why = format!(
                        "slow consumer: outbound queue stayed over the {}-byte send buffer limit while its publishers waited {limit:?} (backpressure, bounded by the send time limit)",
                        self.runtime.config.send_buffer_size_limit
                    );
                    for outbox in waiting.iter().filter(|o| o.over_limit()) {
                        outbox.close(why.clone());
                    }
                    break;
                }
                // Back under the limit: resume once it has drained to half (room for many
                // messages, not one), within the same deadline, which closes nobody.
                let _ = tokio::time::timeout_at(*deadline, outbox.room()).await;
                waiting.pop();
            }
            self.backpressure = None;
            return None;
        }
        if self.dispatch.is_blocked() {
            self.dispatch.unblock().await;
            return None;
        }
        if let Some(link) = self.relay.as_mut().filter(|link| link.is_blocked()) {
            link.unblock().await;
            return None;
        }
        if self.disconnecting {
            // The broker's RECEIPT for DISCONNECT ends the session (`upstream_end`).
            std::future::pending::<()>().await;
        }
        None
    }

    pub(crate) fn version(&self) -> Option<Version> {
        self.version
    }

    /// Encodes a frame for this client: in its negotiated version, 1.2 before CONNECT.
    pub(crate) fn encode(&self, frame: &Frame) -> EncodedFrame {
        encode(frame, self.version.unwrap_or(Version::V1_2))
    }

    /// Queues a frame for the client.
    pub(crate) fn reply(&self, frame: &Frame) {
        self.outbox.push(self.encode(frame));
    }

    /// What interceptors see of this session.
    pub(crate) fn session_info(&self) -> Arc<SessionInfo> {
        self.session_info.clone()
    }

    /// Takes one client frame: through the inbound interceptors, if there are any (the
    /// session then waits for their decision), else straight to [`handle`](Self::handle).
    ///
    /// `recalled`: the number of the head the decoder kept that the frame's is, byte for byte
    /// (see `Decoder::recalled`).
    pub(crate) fn receive(&mut self, frame: Frame, recalled: Option<u64>) -> Flow {
        // The rate limit comes first: a flood costs no interceptor calls.
        if let Some(bucket) = &mut self.rate {
            if !bucket.take() {
                let rate = self
                    .runtime
                    .config
                    .inbound_frame_rate
                    .unwrap_or(crate::security::rate::FrameRate { per_second: 0, burst: 0 });
                let message = format!(
                    "inbound frame rate exceeded: more than {} frames per second (bursts of {}) from this session (inbound_frame_rate)",
                    rate.per_second, rate.burst
                );
                return self.denied(message, frame.receipt());
            }
        }
        let interceptors = &self.runtime.config.interceptors;
        if interceptors.inbound.is_empty() {
            if frame.command == Command::Send {
                return self.handle_send(frame, recalled);
            }
            return self.handle(frame);
        }
        let receipt = frame.receipt().map(str::to_owned);
        let decision = interceptors.run_inbound(frame, self.session_info.clone());
        self.intercepting = Some(Box::new((decision, receipt)));
        Flow::Continue
    }

    /// The number of the kept head (see `Decoder::recalled`) whose template the session holds:
    /// a SEND with that head needs no headers decoded (see `Decoder::decode_knowing`).
    pub(crate) fn known_head(&self) -> Option<u64> {
        self.send_again.as_ref().filter(|again| again.1.is_some()).map(|again| again.0)
    }

    /// Handles a SEND straight from the decoder (`recalled`: see [`receive`](Self::receive)).
    fn handle_send(&mut self, frame: Frame, recalled: Option<u64>) -> Flow {
        let Some(head) = recalled else { return self.handle(frame) };
        if let Some(again) = self.send_again.take_if(|again| again.0 == head) {
            let flow = match &again.1 {
                Some(template) => self.publish_again(template, frame.body),
                None => self.handle(frame),
            };
            self.send_again = Some(again);
            return flow;
        }
        let template = self.template(&frame);
        let flow = self.handle(frame);
        if matches!(flow, Flow::Continue) {
            match &mut self.send_again {
                // Its room reused.
                Some(again) => **again = (head, template),
                None => self.send_again = Some(Box::new((head, template))),
            }
        }
        flow
    }

    /// The template of a SEND about to be handled, for the SENDs with the same head after it
    /// (see `send_again`), when its handling can be repeated that way: one to the simple
    /// broker, with no receipt and no transaction (each SEND's own), from a session with no
    /// access rules (a rule is the application's code), no external broker and no inbound
    /// interceptors (which may change a frame: `receive` comes here only without them). What
    /// else it is checked for is its head's alone: the version, the destination and its route
    /// are the session's until it ends. `None` also when it fails them: it is then refused.
    fn template(&mut self, frame: &Frame) -> Option<SendTemplate> {
        let config = &self.runtime.config;
        if self.version.is_none()
            || self.relay.is_some()
            || self.runtime.broker.simple().is_none()
            || !config.access_rules.is_empty()
            || frame.headers.contains(names::RECEIPT)
            || frame.headers.contains(names::TRANSACTION)
        {
            return None;
        }
        let destination = self.destination(frame).ok()?;
        if !matches!(self.send_target(&destination), Ok(Target::Broker)) {
            return None;
        }
        Some(SendTemplate::new(&destination, &frame.headers))
    }

    /// Publishes the body of a SEND whose head is `template`'s (see `send_again`): what
    /// [`handle`](Self::handle) does with it, less what its head decided already.
    fn publish_again(&mut self, template: &SendTemplate, body: Bytes) -> Flow {
        let published = self
            .check_body(&body)
            .map_err(violation)
            .and_then(|()| self.publish(template.destination(), Shared::Template(template), body));
        // (A template's head has no receipt.)
        match published {
            Ok(()) => Flow::Continue,
            Err(Violation::Protocol(message)) => self.error(message, None),
            Err(Violation::Denied(message)) => self.denied(message, None),
        }
    }

    /// Handles one client frame.
    pub(crate) fn handle(&mut self, frame: Frame) -> Flow {
        let receipt = frame.receipt().map(str::to_owned);
        if self.version.is_some() {
            if let Err(message) = self.authorize(&frame) {
                return self.denied(message, receipt.as_deref());
            }
        }
        let result = match (self.version, frame.command) {
            (None, Command::Connect | Command::Stomp) => return self.connect(&frame, receipt),
            (None, command) => Err(violation(format!(
                "expected CONNECT or STOMP as the first frame, got {command}"
            ))),
            (Some(_), Command::Connect | Command::Stomp) => {
                Err(violation("already connected: CONNECT may be sent only once per connection"))
            }
            (Some(_), Command::Send) => self.send(frame),
            (Some(_), Command::Subscribe) => self.subscribe(&frame),
            (Some(_), Command::Unsubscribe) => self.unsubscribe(&frame),
            (Some(v), Command::Ack | Command::Nack) => self.ack(&frame, v),
            (Some(_), Command::Begin) => self.begin(&frame),
            (Some(_), Command::Commit) => self.commit(&frame),
            (Some(_), Command::Abort) => self.abort(&frame),
            (Some(_), Command::Disconnect) => {
                if let Some(link) = &mut self.relay {
                    // Everything sent before reaches the broker first; its RECEIPT ends the
                    // session.
                    link.disconnect(receipt.as_deref());
                    self.disconnecting = true;
                    return Flow::Continue;
                }
                return Flow::Close {
                    last: receipt.map(Frame::receipt_for),
                    reason: DisconnectReason::ClientDisconnected,
                };
            }
            (Some(_), command) => {
                Err(violation(format!("{command} is a server frame; a client may not send it")))
            }
        };
        let forwarded = std::mem::take(&mut self.receipt_forwarded);
        match result {
            Ok(flow) => {
                if let Some(id) = receipt {
                    if !matches!(flow, Flow::Close { .. }) && !forwarded {
                        self.reply(&Frame::receipt_for(id));
                    }
                }
                flow
            }
            Err(Violation::Protocol(message)) => self.error(message, receipt.as_deref()),
            Err(Violation::Denied(message)) => self.denied(message, receipt.as_deref()),
        }
    }

    /// Checks a frame against the access rules: `Err` is the ERROR frame's message.
    fn authorize(&self, frame: &Frame) -> Result<(), String> {
        let rules = &self.runtime.config.access_rules;
        if rules.is_empty() {
            return Ok(());
        }
        let kind = match frame.command {
            Command::Connect | Command::Stomp => FrameKind::Connect,
            Command::Send => FrameKind::Send,
            Command::Subscribe => FrameKind::Subscribe,
            _ => FrameKind::Other,
        };
        let destination = match kind {
            FrameKind::Send | FrameKind::Subscribe => frame.destination(),
            _ => None,
        };
        // The rules judge the form routing uses: `/user.bob/x` is routed as `/user/bob/x`, and
        // an empty segment (`/user//bob`) has no single meaning, so it is refused.
        let canonical = destination.map(|d| self.canonical(d));
        if canonical.as_deref().is_some_and(|d| d.contains("//")) {
            let destination = destination.unwrap_or_default();
            return Err(format!(
                "access denied: {} to {destination} (a destination with an empty segment)",
                frame.command
            ));
        }
        let allowed = match (kind, canonical.as_deref()) {
            // A broker's own wildcard (RabbitMQ's `#`) is judged as `**`.
            (FrameKind::Subscribe, Some(pattern))
                if Pattern::is_pattern(pattern) || pattern.contains('#') =>
            {
                rules.allows_pattern(&pattern.replace('#', "**"), self.principal.as_ref())
            }
            (FrameKind::Send, Some(d)) if d.contains('#') => {
                rules.allows_pattern(&d.replace('#', "**"), self.principal.as_ref())
                    && rules.allows(kind, Some(d), self.principal.as_ref())
            }
            _ => rules.allows(kind, canonical.as_deref(), self.principal.as_ref()),
        };
        if allowed {
            return Ok(());
        }
        Err(match destination {
            Some(destination) => format!("access denied: {} to {destination}", frame.command),
            None => format!("access denied: {}", frame.command),
        })
    }

    /// `destination` with a `.` right after a configured prefix written as `/` (the two are
    /// the same segment boundary to routing).
    fn canonical(&self, destination: &str) -> String {
        let config = &self.runtime.config;
        let prefixes = config
            .broker_prefixes
            .iter()
            .chain(&config.app_prefixes)
            .chain(std::iter::once(&config.user_prefix));
        for prefix in prefixes {
            if destination.len() > prefix.len()
                && destination.starts_with(prefix.as_str())
                && destination.as_bytes()[prefix.len()] == b'.'
            {
                return format!("{prefix}/{}", &destination[prefix.len() + 1..]);
            }
        }
        destination.to_owned()
    }

    /// The flow for a frame security refused: an ERROR frame, then close, and a WARN line
    /// with the principal.
    fn denied(&self, message: String, receipt: Option<&str>) -> Flow {
        let principal = self.principal.as_ref().map(Principal::name);
        tracing::warn!(session_id = %self.session_id, principal, peer = ?self.addr, "{message}");
        let frame = Frame::error(message.clone(), receipt, "");
        Flow::Close { last: Some(frame), reason: DisconnectReason::AccessDenied(message.into()) }
    }

    /// The flow for a protocol error: an ERROR frame, then close.
    pub(crate) fn error(&self, message: String, receipt: Option<&str>) -> Flow {
        // The session's end is logged at INFO with this message.
        tracing::debug!(session_id = %self.session_id, "protocol error: {message}");
        let frame = Frame::error(message.clone(), receipt, "");
        Flow::Close { last: Some(frame), reason: DisconnectReason::ProtocolError(message.into()) }
    }

    fn connect(&mut self, frame: &Frame, receipt: Option<String>) -> Flow {
        let accept = frame.get(names::ACCEPT_VERSION);
        let Some(version) = Version::negotiate(accept, &SUPPORTED) else {
            // The specification's reply: the versions we do speak, in a `version` header.
            let mut error = Frame::error(
                "Supported protocol versions are 1.0, 1.1, 1.2",
                None,
                &format!("accept-version was {:?}", accept.unwrap_or_default()),
            );
            error.headers.push(names::VERSION, "1.2,1.1,1.0");
            return Flow::Close {
                last: Some(error),
                reason: DisconnectReason::ProtocolError("no common protocol version".into()),
            };
        };
        let client_beat = match (version, frame.get(names::HEART_BEAT)) {
            (Version::V1_0, _) | (_, None) => HeartBeat::NONE,
            (_, Some(value)) => match HeartBeat::parse(value) {
                Some(beat) => beat,
                None => {
                    let message = format!(
                        "heart-beat header {value:?} must be two comma-separated non-negative numbers (such as 10000,10000)"
                    );
                    return self.error(message, receipt.as_deref());
                }
            },
        };
        if let Err(message) = self.check_csrf(frame) {
            return self.denied(message, receipt.as_deref());
        }
        let login = frame.get(names::LOGIN).map(str::to_owned);
        let authenticator = self.runtime.config.authenticator.clone();
        if authenticator.is_none() && self.runtime.broker.relay().is_none() {
            let principal = self.principal.clone();
            return self.complete_connect(version, client_beat, login, principal, None, receipt);
        }
        let request = ConnectRequest {
            headers: frame.headers.clone(),
            principal: self.principal.clone(),
            session_id: self.session_id.to_string(),
            remote_addr: self.addr,
        };
        let (runtime, outbox, end) =
            (self.runtime.clone(), self.outbox.clone(), self.upstream_end.clone());
        let outcome = async move {
            let principal = match authenticator {
                None => request.principal.clone(),
                Some(authenticator) => {
                    let limit = runtime.config.authentication_timeout;
                    match tokio::time::timeout(limit, authenticator.authenticate(request)).await {
                        Ok(Ok(principal)) => principal,
                        Ok(Err(failed)) => return Err(Refusal::Authentication(failed.to_string())),
                        Err(_) => {
                            return Err(Refusal::Authentication(format!(
                                "the authenticator did not answer within {limit:?} (authentication_timeout)"
                            )));
                        }
                    }
                }
            };
            let rules = &runtime.config.access_rules;
            if !rules.allows(FrameKind::Connect, None, principal.as_ref()) {
                return Err(Refusal::Denied);
            }
            let link = match runtime.broker.relay() {
                // As Spring: no client sessions while the system connection is down (shared
                // subscriptions and the template would not work).
                Some(relay) if !relay.is_available() => {
                    return Err(Refusal::Broker(
                        "the relay's system connection to the broker is down".into(),
                    ));
                }
                Some(relay) => {
                    Some(relay.open_session(version, outbox, end).await.map_err(Refusal::Broker)?)
                }
                None => None,
            };
            Ok((principal, link))
        };
        self.pending = Some(Box::new(PendingConnect {
            outcome: Box::pin(outcome),
            version,
            client_beat,
            login,
            receipt,
        }));
        Flow::Continue
    }

    /// The authenticator answered (or timed out): the session connects, or is refused with
    /// `authentication failed` and nothing more.
    fn authenticated(&mut self, pending: PendingConnect, outcome: ConnectOutcome) -> Flow {
        let PendingConnect { version, client_beat, login, receipt, .. } = pending;
        let why = match outcome {
            Ok((principal, link)) => {
                return self.complete_connect(
                    version,
                    client_beat,
                    login,
                    principal,
                    link,
                    receipt,
                );
            }
            Err(Refusal::Authentication(why)) => why,
            Err(Refusal::Denied) => {
                return self.denied("access denied: CONNECT".to_owned(), receipt.as_deref());
            }
            Err(Refusal::Broker(why)) => {
                tracing::warn!(session_id = %self.session_id, peer = ?self.addr, "CONNECT refused: broker not available: {why}");
                let message = "broker not available";
                let frame = Frame::error(
                    message,
                    receipt.as_deref(),
                    "The message broker cannot be reached; try again later.",
                );
                return Flow::Close {
                    last: Some(frame),
                    reason: DisconnectReason::BrokerUnavailable(why.into()),
                };
            }
        };
        tracing::warn!(
            session_id = %self.session_id,
            login,
            peer = ?self.addr,
            "authentication failed: {why}"
        );
        let message = "authentication failed";
        let frame = Frame::error(message, receipt.as_deref(), "");
        Flow::Close { last: Some(frame), reason: DisconnectReason::AccessDenied(message.into()) }
    }

    /// The CSRF check of CONNECT (see [`Csrf`]): `Err` is the ERROR frame's message.
    fn check_csrf(&self, frame: &Frame) -> Result<(), String> {
        let config = &self.runtime.config;
        let expected = self.attributes.get::<CsrfToken>();
        let required = match config.csrf {
            Csrf::Disabled => false,
            Csrf::Required => true,
            _ => expected.is_some() || self.attributes.get::<CookieAuthenticated>().is_some(),
        };
        if !required {
            return Ok(());
        }
        let header = &config.csrf_header;
        let given = frame.get(header).or_else(|| frame.get(&header.to_ascii_lowercase()));
        match (expected, given) {
            (Some(expected), Some(given)) if expected.matches(given) => Ok(()),
            (None, _) => {
                tracing::error!(
                    session_id = %self.session_id,
                    "CONNECT refused: the session needs a CSRF token (csrf is Required, or the session was authenticated by a cookie), but its handshake attached none: insert a stompede::security::CsrfToken in the handshake hook or the request's extensions, or set csrf(Csrf::Disabled) if no cookie authenticates sessions"
                );
                Err(format!(
                    "CSRF token missing or invalid: CONNECT must carry the {header} header that the page was given"
                ))
            }
            _ => Err(format!(
                "CSRF token missing or invalid: CONNECT must carry the {header} header that the page was given"
            )),
        }
    }

    /// CONNECT succeeded as far as authentication goes: checks the CONNECT rule and the
    /// session limits, then answers CONNECTED.
    fn complete_connect(
        &mut self,
        version: Version,
        client_beat: HeartBeat,
        login: Option<String>,
        principal: Option<Principal>,
        link: Option<Link>,
        receipt: Option<String>,
    ) -> Flow {
        self.principal = principal;
        self.relay = link.map(Box::new);
        let config = &self.runtime.config;
        if !config.access_rules.allows(FrameKind::Connect, None, self.principal.as_ref()) {
            return self.denied("access denied: CONNECT".to_owned(), receipt.as_deref());
        }
        let registered = self.runtime.sessions.register(
            self.session_id.clone(),
            self.principal.clone(),
            self.addr.map(|a| a.ip()),
            self.closer.clone(),
            config.session_limits,
            self.accepted,
        );
        if let Err(message) = registered {
            return self.denied(message, receipt.as_deref());
        }
        self.registered = true;
        let server_beat = if version == Version::V1_0 { HeartBeat::NONE } else { config.heartbeat };
        self.version = Some(version);
        let mut connected = Frame::new(Command::Connected)
            .header(names::VERSION, version.as_str())
            .header(names::HEART_BEAT, server_beat.to_header_value())
            .header(names::SESSION, self.session_id.clone())
            .header(names::SERVER, config.server_name.clone());
        // Spring's header: the authenticated user's name (never an unverified `login`).
        if let Some(principal) = &self.principal {
            connected.headers.push("user-name", principal.name().to_owned());
        }
        self.reply(&connected);
        if let Some(id) = receipt {
            self.reply(&Frame::receipt_for(id));
        }
        self.runtime.counters.connected();
        if self.principal != self.session_info.principal {
            let mut info = SessionInfo::clone(&self.session_info);
            info.principal = self.principal.clone();
            self.session_info = Arc::new(info);
        }
        self.runtime.emit(SessionEvent::Connected {
            session_id: self.session_id.clone(),
            version,
            login,
            principal: self.principal.clone(),
        });
        Flow::Connected {
            version,
            outgoing: server_beat.outgoing(client_beat),
            incoming: server_beat.incoming(client_beat),
        }
    }

    /// The frame's destination, required and no longer than `max_destination_length` (which
    /// bounds the work of matching it against wildcard subscriptions).
    fn destination(&self, frame: &Frame) -> Result<ByteStr, Violation> {
        let destination = required(frame, names::DESTINATION)?;
        let max = self.runtime.config.max_destination_length;
        if destination.len() > max {
            return Err(violation(format!(
                "destination is {} bytes long, more than the {max} allowed (set max_destination_length to raise it)",
                destination.len()
            )));
        }
        Ok(destination)
    }

    fn send(&mut self, frame: Frame) -> Handled {
        let destination = self.destination(&frame)?;
        self.check_body(&frame.body).map_err(violation)?;
        // Route now, so a bad SEND inside a transaction fails at once.
        let target = self.send_target(&destination)?;
        if let Some(tx) = frame.headers.get_owned(names::TRANSACTION) {
            self.buffer(&tx, frame)?;
            return Ok(Flow::Continue);
        }
        if let (Target::Broker, Some(link)) = (&target, &mut self.relay) {
            // The broker answers the receipt, once it has the message; the destination it
            // gets is the one checked (a repeated header is not passed on).
            let mut frame = frame;
            frame.headers.set(names::DESTINATION, destination);
            self.receipt_forwarded = frame.receipt().is_some();
            link.forward(frame);
            return Ok(Flow::Continue);
        }
        if let (Target::User { user, destination }, Some(link)) = (&target, &mut self.relay) {
            // To the user's key, through the session's own connection: the broker answers
            // the receipt.
            let mut frame = frame;
            frame.headers.set(names::DESTINATION, relay::user_key(destination, user));
            self.receipt_forwarded = frame.receipt().is_some();
            link.forward(frame);
            return Ok(Flow::Continue);
        }
        self.deliver_send(target, destination, frame)?;
        Ok(Flow::Continue)
    }

    /// Holds a SEND, ACK or NACK of transaction `tx` until it ends.
    fn buffer(&mut self, tx: &ByteStr, frame: Frame) -> Result<(), Violation> {
        let size = buffered_size(&frame);
        let limit = self.runtime.config.max_transaction_bytes;
        let Some(buffered) = self.transactions.get_mut(tx) else {
            return Err(violation(format!(
                "{} names transaction {tx:?}, which was not begun",
                frame.command
            )));
        };
        if self.transaction_bytes + size > limit {
            return Err(violation(format!(
                "transactions of this session buffer more than {limit} bytes (commit sooner, or raise max_transaction_bytes)"
            )));
        }
        self.transaction_bytes += size;
        buffered.push(frame);
        Ok(())
    }

    fn deliver_send(
        &mut self,
        target: Target,
        destination: ByteStr,
        mut frame: Frame,
    ) -> Result<(), Violation> {
        match target {
            Target::Broker if self.relay.is_some() => {
                // A SEND of a committed transaction: its receipt was answered when it was
                // buffered.
                frame.headers.remove(names::RECEIPT);
                frame.headers.remove(names::TRANSACTION);
                if let Some(link) = &mut self.relay {
                    link.forward(frame);
                }
            }
            Target::Broker => {
                self.publish(&destination, Shared::Given(Cow::Owned(frame.headers)), frame.body)?
            }
            Target::User { user, destination } if self.relay.is_some() => {
                frame.headers.remove(names::RECEIPT);
                frame.headers.remove(names::TRANSACTION);
                frame.headers.set(names::DESTINATION, relay::user_key(&destination, &user));
                if let Some(link) = &mut self.relay {
                    link.forward(frame);
                }
            }
            Target::User { user, destination } => {
                let template = &self.runtime.template;
                let delivered =
                    template.publish_to_user(&user, &destination, &frame.headers, frame.body);
                tracing::debug!(session_id = %self.session_id, user, destination, delivered, "sent to user");
            }
            Target::Handler(matched) => {
                let handler = matched.handler;
                let context = self.context(frame, destination, matched);
                self.dispatch.submit(Job { handler, context, subscriber: None });
            }
        }
        Ok(())
    }

    fn context(&self, frame: Frame, destination: ByteStr, matched: Matched) -> Arc<MessageContext> {
        let (session_id, principal) = (self.session_id.clone(), self.principal.clone());
        let runtime = self.runtime.clone();
        Arc::new(MessageContext::new(runtime, session_id, principal, frame, destination, matched))
    }

    /// [`target`](Self::target) of a SEND: the broker at once for the destination the last
    /// SEND routed to the broker had.
    fn send_target(&mut self, destination: &str) -> Result<Target, Violation> {
        if self.last_broker_send.as_deref() == Some(destination) {
            return Ok(Target::Broker);
        }
        let target = self.target(false, destination)?;
        if matches!(target, Target::Broker) {
            let last = self.last_broker_send.get_or_insert_with(String::new);
            last.clear();
            last.push_str(destination);
        }
        Ok(target)
    }

    /// Routes a SEND (`subscribe` false) or a SUBSCRIBE: to the broker, or to the handler
    /// mapped to its application destination.
    fn target(&self, subscribe: bool, destination: &str) -> Result<Target, Violation> {
        let config = &self.runtime.config;
        if config.broker_prefix_of(destination).is_some() {
            // Another session's user destination, by its resolved name: in the external
            // broker that is a shared queue, which must stay that session's alone.
            if crate::template::is_resolved_user_destination(destination)
                || destination.starts_with(relay::USER_KEYS)
            {
                return Err(Violation::Denied(format!(
                    "access denied: {destination} is reserved for user destinations (use {}/queue/...)",
                    config.user_prefix
                )));
            }
            return Ok(Target::Broker);
        }
        if let Some(prefix) = config.app_prefix_of(destination) {
            let target = self.handler_target(subscribe, prefix, destination).ok_or_else(|| {
                let (what, attribute) = match subscribe {
                    false => ("application", "message_mapping"),
                    true => ("subscription", "subscribe_mapping"),
                };
                violation(format!(
                    "no {what} handler is registered for destination {destination} (no #[{attribute}] matches {})",
                    strip_prefix(prefix, destination)
                ))
            })?;
            if let Target::Handler(matched) = &target {
                self.check_roles(matched.handler.roles, subscribe, destination)?;
            }
            return Ok(target);
        }
        if !subscribe && config.is_user_destination(destination) {
            return self.user_target(destination);
        }
        let what = if subscribe { "cannot subscribe to" } else { "destination" };
        Err(self.outside_prefixes(destination, what))
    }

    /// `#[requires_role]`: the handler's roles against the session's principal.
    fn check_roles(
        &self,
        roles: &[&str],
        subscribe: bool,
        destination: &str,
    ) -> Result<(), Violation> {
        if roles.is_empty()
            || self.principal.as_ref().is_some_and(|p| roles.iter().any(|r| p.has_role(r)))
        {
            return Ok(());
        }
        let command = if subscribe { "SUBSCRIBE" } else { "SEND" };
        Err(Violation::Denied(format!(
            "access denied: {command} to {destination} requires role {}",
            roles.join(" or ")
        )))
    }

    /// A SEND to `/user/{name}/queue/x`: to `/queue/x` of each of `name`'s sessions.
    fn user_target(&self, destination: &str) -> Result<Target, Violation> {
        let config = &self.runtime.config;
        let rest = strip_prefix(&config.user_prefix, destination);
        let (user, inner) = match rest.strip_prefix('/').and_then(|r| r.split_once('/')) {
            Some((user, inner)) if !user.is_empty() && !inner.is_empty() => {
                (user, format!("/{inner}"))
            }
            _ => {
                return Err(violation(format!(
                    "user destination {destination} names no user: send to {}/{{user}}/queue/..., as in {}/ada/queue/messages",
                    config.user_prefix, config.user_prefix
                )));
            }
        };
        if config.broker_prefix_of(&inner).is_none() {
            return Err(violation(format!(
                "user destination {destination}: {inner} is not under a broker prefix ({})",
                config.broker_prefixes.join(", ")
            )));
        }
        Ok(Target::User { user: user.to_owned(), destination: inner })
    }

    fn handler_target(&self, subscribe: bool, prefix: &str, destination: &str) -> Option<Target> {
        self.runtime.router.find(subscribe, prefix, destination).map(Target::Handler)
    }

    fn outside_prefixes(&self, destination: &str, what: &str) -> Violation {
        violation(format!(
            "{what} {destination} is not covered by any configured prefix ({})",
            self.runtime.config.describe_prefixes()
        ))
    }

    /// A SEND's body refused for what it holds (`reject_nul_in_bodies`): the ERROR's message.
    fn check_body(&self, body: &[u8]) -> Result<(), &'static str> {
        if self.runtime.config.reject_nul_in_bodies && memchr::memchr(0, body).is_some() {
            return Err(
                "SEND body contains a NUL byte, which this server refuses (reject_nul_in_bodies): clients that split frames on NUL, such as stompjs 2.3.3, would read the rest as another frame",
            );
        }
        Ok(())
    }

    /// A SEND's body, to publish.
    fn client_body(&self, bytes: Bytes) -> Body {
        // The body is the client's bytes as read, unless an interceptor could have changed it.
        let known_utf8 =
            self.inbound_is_utf8 && self.runtime.config.interceptors.inbound.is_empty();
        Body { bytes, known_utf8 }
    }

    /// Publishes a SEND's body with `headers` (its own, or its template's).
    fn publish(
        &mut self,
        destination: &ByteStr,
        headers: Shared<'_>,
        body: Bytes,
    ) -> Result<(), Violation> {
        let mut pressure = Pressure::default();
        let body = self.client_body(body);
        let delivered = self
            .runtime
            .broker
            .publish_from_client(destination, headers, body, &mut pressure)
            .map_err(|Refused(why)| violation(why))?;
        tracing::debug!(session_id = %self.session_id, %destination, delivered, "published");
        self.held_back(pressure);
        Ok(())
    }

    /// Waits, before reading on, for the subscribers a publish left over their limit (the
    /// `Backpressure` policy's).
    fn held_back(&mut self, mut pressure: Pressure) {
        if pressure.outboxes.is_empty() {
            return pressure.done();
        }
        let full = std::mem::take(&mut pressure.outboxes);
        // Added to what an earlier SEND of the same COMMIT left, if any.
        let deadline = tokio::time::Instant::now() + self.runtime.config.send_time_limit;
        let (waiting, _) =
            &mut **self.backpressure.get_or_insert_with(|| Box::new((Vec::new(), deadline)));
        waiting.extend(full);
    }

    fn subscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, names::ID)?;
        let destination = self.destination(frame)?;
        let ack = match frame.get(names::ACK) {
            None => AckMode::Auto,
            Some(value) => AckMode::parse(value).ok_or_else(|| {
                violation(format!("ack mode {value:?} is not auto, client or client-individual"))
            })?,
        };
        let prefetch = self.prefetch(frame)?;
        if self.subscriptions.contains_key(&id) {
            return Err(violation(format!(
                "subscription id {id:?} is already in use in this session"
            )));
        }
        let max = self.runtime.config.max_subscriptions;
        if self.subscriptions.len() >= max {
            return Err(Violation::Denied(format!(
                "a session may hold at most {max} subscriptions (unsubscribe first, or set max_subscriptions to raise it)"
            )));
        }
        if self.runtime.config.is_user_destination(&destination) {
            return self.subscribe_user(frame, id, destination, ack, prefetch);
        }
        let target = self.target(true, &destination)?;
        if matches!(target, Target::Broker) && Pattern::is_pattern(&destination) {
            let (wildcards, max) =
                (Pattern::wildcards(&destination), self.runtime.config.max_pattern_wildcards);
            if wildcards > max {
                return Err(violation(format!(
                    "subscription pattern has {wildcards} wildcards, more than the {max} allowed (set max_pattern_wildcards to raise it)"
                )));
            }
            let options = &self.runtime.config.broker;
            if self.relay.is_none() && options.is_point_to_point(&destination) {
                return Err(violation(format!(
                    "cannot subscribe to the pattern {destination}: its destinations are point-to-point queues (point_to_point), and a queue's consumers name it exactly"
                )));
            }
        }
        if let (Target::Broker, Some(relay)) = (&target, self.runtime.broker.relay()) {
            if shareable(frame) {
                // A plain topic subscription: the node subscribes once per destination and
                // fans out here, encoded once; the broker answers the receipt of the first.
                let subscriber = self.session_subscriber(&id, &destination, ack, prefetch);
                let receipt = frame.receipt().map(|receipt| relay::ClientReceipt {
                    id: receipt.to_owned(),
                    outbox: self.outbox.clone(),
                    version: self.version.unwrap_or(Version::V1_2),
                });
                self.receipt_forwarded = receipt.is_some();
                relay.subscribe_shared(subscriber.clone(), receipt);
                self.subscribed(id, destination, Some(subscriber));
                return Ok(Flow::Continue);
            }
        }
        if let (Target::Broker, Some(link)) = (&target, &mut self.relay) {
            // The broker holds the subscription, with the client's id and ack mode, and
            // answers the receipt.
            let mut upstream = frame.clone();
            upstream.headers.set(names::DESTINATION, destination.clone());
            self.receipt_forwarded = frame.receipt().is_some();
            link.forward(upstream);
            self.subscribed(id, destination, None);
            return Ok(Flow::Continue);
        }
        if let (Target::Broker, Some(broker)) = (&target, self.runtime.broker.simple()) {
            if let Some(why) = broker.refuse_new_queue(&destination) {
                return Err(violation(why));
            }
        }
        let subscriber = self.session_subscriber(&id, &destination, ack, prefetch);
        match target {
            Target::Broker => self.runtime.broker.subscribe(subscriber.clone()),
            // Spring's @SubscribeMapping: the handler's reply goes to this subscription once;
            // the broker never holds it.
            Target::Handler(matched) => {
                let handler = matched.handler;
                let context = self.context(frame.clone(), destination.clone(), matched);
                let job = Job { handler, context, subscriber: Some(subscriber.clone()) };
                self.dispatch.submit(job);
            }
            // Routed by `subscribe_user`; `target` gives it for SENDs only.
            Target::User { .. } => {}
        }
        self.subscribed(id, destination, Some(subscriber));
        Ok(Flow::Continue)
    }

    /// A subscription of this session to `destination`: MESSAGE frames into its outbox, in
    /// its version.
    fn session_subscriber(
        &self,
        id: &ByteStr,
        destination: &ByteStr,
        ack: AckMode,
        prefetch: usize,
    ) -> Arc<Subscriber> {
        let version = self.version.unwrap_or(Version::V1_2);
        let policy = self.runtime.config.slow_consumer_policy_of(destination);
        let subscriber =
            Subscriber::session(id.clone(), destination.clone(), version, ack, self.outbox.clone());
        Arc::new(subscriber.with_flow(prefetch, policy))
    }

    /// How many unacknowledged messages a SUBSCRIBE may hold: its `prefetch-count` header
    /// (RabbitMQ's; 0 means no limit, which here is 65,535), else the server's default.
    fn prefetch(&self, frame: &Frame) -> Result<usize, Violation> {
        const MAX: usize = 65_535;
        let default = self.runtime.config.broker.queue_limits.default_prefetch as usize;
        match frame.get("prefetch-count") {
            None => Ok(default.min(MAX)),
            Some(value) => match value.parse::<usize>() {
                Ok(0) => Ok(MAX),
                Ok(count) if count <= MAX => Ok(count),
                _ => Err(violation(format!(
                    "prefetch-count {value:?} is not a number from 0 to {MAX} (0 means no limit but {MAX})"
                ))),
            },
        }
    }

    /// A SUBSCRIBE to `/user/queue/x`: the broker holds it under a name unique to this
    /// session (`/queue/x-user{session}`), apart from every other subscription, and its
    /// MESSAGEs say `destination:/user/queue/x`.
    fn subscribe_user(
        &mut self,
        frame: &Frame,
        id: ByteStr,
        destination: ByteStr,
        ack: AckMode,
        prefetch: usize,
    ) -> Handled {
        let config = &self.runtime.config;
        if Pattern::is_pattern(&destination) {
            return Err(violation(format!(
                "user destination {destination} cannot be a pattern: subscribe to each destination ({}/queue/...) by its name",
                config.user_prefix
            )));
        }
        let inner = strip_prefix(&config.user_prefix, &destination);
        if config.broker_prefix_of(&inner).is_none() {
            return Err(violation(format!(
                "cannot subscribe to user destination {destination}: {inner} is not under a broker prefix ({}); to receive what is sent to your user, subscribe to {}/queue/... without a user name",
                config.broker_prefixes.join(", "),
                config.user_prefix
            )));
        }
        let resolved = ByteStr::from(resolve_user_destination(&inner, &self.session_id));
        if let Some(link) = &mut self.relay {
            // Two keys in the external broker: the session's own (replies to it alone), and,
            // with a principal, the user's, which a node that sends to the user publishes to
            // once, whichever node the user's sessions are on. The receipt rides on the last.
            let mut keys = vec![(id.clone(), relay::session_key(&inner, &self.session_id))];
            if let Some(user) = &self.principal {
                let upstream = ByteStr::from(format!("{id}{USER_KEY_ID}"));
                keys.push((upstream, relay::user_key(&inner, user.name())));
            }
            let last = keys.len() - 1;
            for (n, (upstream_id, key)) in keys.into_iter().enumerate() {
                // Only the plain headers: a client may not make its user queues durable (they
                // would outlive the session and gather the user's messages).
                let mut upstream = Frame::new(Command::Subscribe)
                    .header(names::ID, upstream_id.clone())
                    .header(names::DESTINATION, key);
                for name in [names::ACK, "prefetch-count"] {
                    if let Some(value) = frame.headers.get_shared(name) {
                        upstream.headers.push(name, value.clone());
                    }
                }
                if let (Some(receipt), true) = (frame.headers.get_shared(names::RECEIPT), n == last)
                {
                    upstream.headers.push(names::RECEIPT, receipt.clone());
                }
                link.user_subscription(upstream_id, id.clone(), destination.clone());
                link.forward(upstream);
            }
            self.receipt_forwarded = frame.receipt().is_some();
            self.subscribed(id, destination, None);
            return Ok(Flow::Continue);
        }
        let version = self.version.unwrap_or(Version::V1_2);
        let policy = config.slow_consumer_policy_of(&inner);
        let subscriber =
            Subscriber::session(id.clone(), resolved, version, ack, self.outbox.clone());
        let subscriber = Arc::new(subscriber.for_user().with_flow(prefetch, policy));
        self.runtime.broker.subscribe(subscriber.clone());
        self.subscribed(id, destination, Some(subscriber));
        Ok(Flow::Continue)
    }

    /// Records a new subscription, for the session, the user registry and the events.
    fn subscribed(
        &mut self,
        id: ByteStr,
        destination: ByteStr,
        subscriber: Option<Arc<Subscriber>>,
    ) {
        self.runtime.sessions.subscribed(&self.session_id, id.clone(), destination.clone());
        self.runtime.emit(SessionEvent::Subscribed {
            session_id: self.session_id.clone(),
            subscription_id: id.clone(),
            destination: destination.clone(),
            principal: self.principal.clone(),
        });
        self.subscriptions.insert(id, Subscription { subscriber, destination });
    }

    fn unsubscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, names::ID)?;
        // An unknown id is not an error: the client may race its own UNSUBSCRIBE with a
        // server-side clean-up, and the outcome it wants holds either way.
        if let Some(subscription) = self.subscriptions.remove(id.as_str()) {
            if let (None, Some(link)) = (&subscription.subscriber, &mut self.relay) {
                if self.runtime.config.is_user_destination(&subscription.destination) {
                    let second = ByteStr::from(format!("{id}{USER_KEY_ID}"));
                    link.forget_user_subscription(&[&id, &second]);
                    // Its second key (only sessions with a principal have one), without the
                    // receipt: the first answers it.
                    if self.principal.is_some() {
                        link.forward(Frame::new(Command::Unsubscribe).header(names::ID, second));
                    }
                }
                self.receipt_forwarded = frame.receipt().is_some();
                link.forward(frame.clone());
            }
            self.drop_subscription(&id, &subscription);
        }
        Ok(Flow::Continue)
    }

    /// Forgets a subscription (the external broker's end is the caller's business).
    fn drop_subscription(&self, id: &ByteStr, subscription: &Subscription) {
        if let Some(subscriber) = &subscription.subscriber {
            if subscriber.user
                || self.runtime.config.broker_prefix_of(&subscriber.destination).is_some()
            {
                self.runtime.broker.unsubscribe(subscriber);
            }
        }
        self.runtime.sessions.unsubscribed(&self.session_id, id);
        self.runtime.emit(SessionEvent::Unsubscribed {
            session_id: self.session_id.clone(),
            subscription_id: id.clone(),
            destination: subscription.destination.clone(),
            principal: self.principal.clone(),
        });
    }

    fn ack(&mut self, frame: &Frame, version: Version) -> Handled {
        if frame.command == Command::Nack && version == Version::V1_0 {
            return Err(violation("NACK is not part of STOMP 1.0"));
        }
        match version {
            Version::V1_2 => present(frame, names::ID)?,
            Version::V1_1 => {
                present(frame, names::MESSAGE_ID)?;
                present(frame, names::SUBSCRIPTION)?;
            }
            Version::V1_0 => present(frame, names::MESSAGE_ID)?,
        }
        if let Some(tx) = frame.get(names::TRANSACTION) {
            if !self.transactions.contains_key(tx) {
                return Err(violation(format!(
                    "{} names transaction {tx:?}, which was not begun",
                    frame.command
                )));
            }
        }
        if let Some(link) = &mut self.relay {
            // The external broker keeps the acknowledgement books (a transaction's ACKs go
            // at once: transactions are the session's own, not the broker's).
            let mut ack = frame.clone();
            ack.headers.remove(names::TRANSACTION);
            // The broker connection speaks 1.2, which acknowledges by `id`: a 1.0/1.1 client
            // names the message by `message-id` (RabbitMQ's `ack` ids are its message ids).
            if version != Version::V1_2 {
                if let Some(message_id) = frame.headers.get_shared(names::MESSAGE_ID).cloned() {
                    ack.headers.set(names::ID, message_id);
                }
            }
            self.receipt_forwarded = ack.receipt().is_some();
            link.forward(ack);
            return Ok(Flow::Continue);
        }
        if let Some(tx) = frame.headers.get_shared(names::TRANSACTION).cloned() {
            // Takes effect at COMMIT; dropped by ABORT.
            self.buffer(&tx, frame.clone())?;
            return Ok(Flow::Continue);
        }
        self.settle(frame, version);
        Ok(Flow::Continue)
    }

    /// Applies an ACK or NACK in the simple broker. One that names no message awaiting
    /// acknowledgement (acknowledged already, its subscription ended, an `auto` subscription)
    /// is ignored, as the outcome the client wants holds or cannot be had.
    fn settle(&mut self, frame: &Frame, version: Version) {
        let Some(broker) = self.runtime.broker.simple() else { return };
        let how = match frame.command {
            Command::Nack => Settle::Nack,
            _ => Settle::Ack,
        };
        // 1.2 names the delivery by the `ack` header we gave: `{subscription}-{message id}`.
        let (subscription, message_id) = match version {
            Version::V1_2 => match frame.get(names::ID).and_then(|id| id.rsplit_once('-')) {
                Some((subscription, message_id)) => (Some(subscription), message_id),
                None => (None, ""),
            },
            _ => (frame.get(names::SUBSCRIPTION), frame.get(names::MESSAGE_ID).unwrap_or("")),
        };
        let settled = message_id.parse::<u64>().is_ok_and(|message_id| {
            let candidates: Vec<&Arc<Subscriber>> = match subscription {
                Some(id) => self
                    .subscriptions
                    .get(id)
                    .and_then(|s| s.subscriber.as_ref())
                    .into_iter()
                    .collect(),
                // 1.0 names the message only: whichever subscription holds it.
                None => self.subscriptions.values().filter_map(|s| s.subscriber.as_ref()).collect(),
            };
            // Every subscription holding it (1.0 cannot say which one it means).
            candidates.into_iter().filter(|s| s.acknowledges()).fold(false, |done, subscriber| {
                let cumulative = subscriber.ack_mode() == AckMode::Client;
                broker.settle(subscriber, Settlement { message_id, cumulative, how }) || done
            })
        });
        if !settled {
            tracing::debug!(
                session_id = %self.session_id,
                command = %frame.command,
                "ignored: it names no message awaiting acknowledgement in this session (acknowledged already, or its subscription ended)"
            );
        }
    }

    fn begin(&mut self, frame: &Frame) -> Handled {
        let tx = required(frame, names::TRANSACTION)?;
        if self.transactions.contains_key(&tx) {
            return Err(violation(format!("transaction {tx:?} is already in progress")));
        }
        let max = self.runtime.config.max_transactions;
        if self.transactions.len() >= max {
            return Err(violation(format!(
                "a session may have at most {max} transactions open (commit or abort first, or set max_transactions to raise it)"
            )));
        }
        self.transactions.insert(tx, Vec::new());
        Ok(Flow::Continue)
    }

    fn commit(&mut self, frame: &Frame) -> Handled {
        let frames = self.end_transaction(frame)?;
        let version = self.version.unwrap_or(Version::V1_2);
        for send in frames {
            if matches!(send.command, Command::Ack | Command::Nack) {
                self.settle(&send, version);
                continue;
            }
            if let Some(destination) = send.headers.get_shared(names::DESTINATION).cloned() {
                // Routed when buffered; the routing table never changes.
                if let Ok(target) = self.target(false, &destination) {
                    self.deliver_send(target, destination, send)?;
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn abort(&mut self, frame: &Frame) -> Handled {
        self.end_transaction(frame)?;
        Ok(Flow::Continue)
    }

    fn end_transaction(&mut self, frame: &Frame) -> Result<Vec<Frame>, Violation> {
        let tx = required(frame, names::TRANSACTION)?;
        let frames = self.transactions.remove(tx.as_str()).ok_or_else(|| {
            violation(format!("{} names transaction {tx:?}, which was not begun", frame.command))
        })?;
        let size: usize = frames.iter().map(buffered_size).sum();
        self.transaction_bytes -= size;
        Ok(frames)
    }

    /// Its outbox drained below the limit: queues holding messages for its subscriptions
    /// deliver them now.
    pub(crate) fn resume_queues(&self) {
        let Some(broker) = self.runtime.broker.simple() else { return };
        for subscription in self.subscriptions.values() {
            if let Some(subscriber) =
                subscription.subscriber.as_ref().filter(|s| s.queue.get().is_some())
            {
                broker.resume(subscriber);
            }
        }
    }

    /// Releases everything the session holds in the broker. Called when it ends (and again,
    /// doing nothing, when it is dropped: a session task that panicked releases it there).
    pub(crate) fn finish(&mut self) {
        for (id, subscription) in std::mem::take(&mut self.subscriptions) {
            self.drop_subscription(&id, &subscription);
        }
        // Its broker connection closes when the link goes.
        self.relay = None;
        self.transactions.clear();
        if std::mem::take(&mut self.registered) {
            self.runtime.sessions.unregister(&self.session_id);
        }
    }
}

impl Drop for Protocol {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether a relayed SUBSCRIBE may share the node's subscription to its destination: a topic
/// (every subscriber gets every message), acknowledged automatically, with no header that
/// asks the broker for something of its own (`durable`, `prefetch-count`, `selector`...).
fn shareable(frame: &Frame) -> bool {
    const PLAIN: [&str; 4] = [names::ID, names::DESTINATION, names::ACK, names::RECEIPT];
    frame.destination().is_some_and(|d| d.starts_with("/topic/"))
        && frame.get(names::ACK).is_none_or(|ack| ack == "auto")
        && frame.headers.iter().all(|(name, _)| PLAIN.contains(&name))
}

/// What a SEND held in a transaction counts against `max_transaction_bytes`: its body and a
/// flat allowance per header. Used when it is buffered and when the transaction ends, so the
/// two always agree.
fn buffered_size(frame: &Frame) -> usize {
    frame.body.len() + frame.headers.text_len() + 32
}

/// The value of header `name`, which `frame` must have.
fn required(frame: &Frame, name: &str) -> Result<ByteStr, Violation> {
    frame.headers.get_owned(name).ok_or_else(|| missing(frame, name))
}

/// Whether `frame` has header `name`, as it must.
fn present(frame: &Frame, name: &str) -> Result<(), Violation> {
    match frame.headers.contains(name) {
        true => Ok(()),
        false => Err(missing(frame, name)),
    }
}

fn missing(frame: &Frame, name: &str) -> Violation {
    violation(format!("{} frame has no {name} header, which is required", frame.command))
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::Server;
    use crate::stomp::{Command, Frame, Headers, names};
    use crate::test::{TestClient, TestServer, TestSubscription};

    /// How many publishes of `server`'s broker had a template's headers.
    fn templated(server: &TestServer) -> usize {
        let broker = server.server().broker().simple().expect("the simple broker");
        broker.templated.load(Ordering::Relaxed)
    }

    fn send(destination: &str, headers: &[(&str, &str)], body: &str) -> Frame {
        let mut frame =
            Frame::new(Command::Send).header(names::DESTINATION, destination.to_owned());
        for (name, value) in headers {
            frame = frame.header(name.to_string(), value.to_string());
        }
        frame.body(body.to_owned())
    }

    /// The next MESSAGE's headers but its `message-id` (each message's own), and its body.
    async fn next(subscription: &mut TestSubscription) -> (Headers, String) {
        let message = subscription.expect_message().await;
        assert!(message.get(names::SUBSCRIPTION).is_some(), "{message:?}");
        let each_own = [names::MESSAGE_ID, names::SUBSCRIPTION];
        let headers = message
            .headers
            .iter()
            .filter(|(name, _)| !each_own.contains(name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        (headers, String::from_utf8_lossy(&message.body).into_owned())
    }

    /// Sends `frame` with the bodies `b0`, `b1`... and expects each MESSAGE as the first
    /// one's, but for its body.
    async fn repeat(
        publisher: &TestClient,
        subscription: &mut TestSubscription,
        frame: &Frame,
        times: usize,
    ) -> Headers {
        let mut first = None;
        for n in 0..times {
            let mut sent = frame.clone();
            sent.body = format!("b{n}").into();
            publisher.client().send_frame(sent).await.expect("sent");
            let (headers, body) = next(subscription).await;
            assert_eq!(body, format!("b{n}"));
            let first = first.get_or_insert_with(|| headers.clone());
            assert_eq!(headers, *first, "message {n} of {frame:?}");
        }
        first.unwrap_or_default()
    }

    /// A publisher repeating a head: from its third SEND on (the second is recognised, and
    /// makes the template) its messages are published with the template, and they are the
    /// messages the long way gives, header for header; a SEND with a receipt between them
    /// does not stop it, a head with an escape is never kept, another head starts another
    /// template.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repeated_send_head_is_published_with_its_template_and_delivers_the_same() {
        let server = TestServer::start(Server::builder()).await;
        let (publisher, subscriber) = (server.client().await, server.client().await);
        let mut subscription = subscriber.subscribe("/topic/t").await;
        let plain = send("/topic/t", &[("content-type", "text/plain"), ("x", "1")], "");
        let headers = repeat(&publisher, &mut subscription, &plain, 5).await;
        let shown: Vec<_> = headers.iter().collect();
        assert_eq!(
            shown,
            [
                ("destination", "/topic/t"),
                ("content-type", "text/plain"),
                ("x", "1"),
                ("content-length", "2"),
            ]
        );
        assert_eq!(templated(&server), 3);

        let mut with_receipt = plain.clone();
        with_receipt.body = "b0".into();
        publisher.client().send_frame_with_receipt(with_receipt).await.expect("receipt");
        assert_eq!(next(&mut subscription).await, (headers.clone(), "b0".to_owned()));
        assert_eq!(repeat(&publisher, &mut subscription, &plain, 2).await, headers);
        assert_eq!(templated(&server), 5, "the receipt left the template as it was");

        // A head with an escape (the client writes `1:2` as `1\c2`) is read the long way
        // every time: never kept, never templated.
        let colon = send("/topic/t", &[("x", "1:2")], "");
        let escaped = repeat(&publisher, &mut subscription, &colon, 4).await;
        assert_eq!(escaped.get("x"), Some("1:2"));
        assert_eq!(templated(&server), 5);
        // Another plain head: another template, from its third SEND on.
        let other = send("/topic/t", &[("x", "2")], "");
        assert_eq!(repeat(&publisher, &mut subscription, &other, 4).await.get("x"), Some("2"));
        assert_eq!(templated(&server), 7);
    }

    /// A templated publisher keeps its destination's subscriber list: once every subscriber
    /// has left, it finds the list of whoever subscribes next (a new one), and reaches them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_templated_send_reaches_whoever_subscribes_after_the_last_one_left() {
        use crate::client::{Client, ClientOptions};
        let server = TestServer::start(Server::builder()).await;
        let publisher = server.client().await;
        let frame = send("/topic/t", &[], "");
        for round in 0..3 {
            let client = Client::connect_ws(&server.url(), ClientOptions::default()).await.unwrap();
            let mut subscription = client.subscribe("/topic/t").await.unwrap();
            for n in 0..4 {
                let mut sent = frame.clone();
                sent.body = format!("{round}-{n}").into();
                publisher.client().send_frame(sent).await.unwrap();
                let message =
                    tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
                        .await
                        .expect("a message within 10 s")
                        .expect("connected");
                assert_eq!(&message.body[..], format!("{round}-{n}").as_bytes());
            }
            subscription.unsubscribe().await.unwrap();
            assert_eq!(server.server().broker().subscription_count(), 0);
        }
        assert_eq!(templated(&server), 10, "all but the first two SENDs");
    }

    /// What a template cannot stand for is published the long way every time: a SEND in a
    /// transaction (delivered at its COMMIT), and every SEND of a session with access rules.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactions_are_never_templated() {
        let server = TestServer::start(Server::builder()).await;
        let (publisher, subscriber) = (server.client().await, server.client().await);
        let mut subscription = subscriber.subscribe("/topic/t").await;
        let client = publisher.client();
        client.send_frame(Frame::new(Command::Begin).header("transaction", "tx")).await.unwrap();
        for n in 0..4 {
            let frame = send("/topic/t", &[("transaction", "tx")], &format!("b{n}"));
            client.send_frame(frame).await.unwrap();
        }
        subscription.expect_nothing();
        let commit = Frame::new(Command::Commit).header("transaction", "tx");
        client.send_frame_with_receipt(commit).await.unwrap();
        for n in 0..4 {
            assert_eq!(next(&mut subscription).await.1, format!("b{n}"));
        }
        assert_eq!(templated(&server), 0);
    }

    /// The checks a body needs are made for every templated SEND: a NUL refused by
    /// `reject_nul_in_bodies` closes the session with its ERROR; the subscriber carries on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_templated_send_still_has_its_body_checked() {
        let server = TestServer::start(Server::builder().reject_nul_in_bodies(true)).await;
        let (publisher, subscriber) = (server.client().await, server.client().await);
        let mut subscription = subscriber.subscribe("/topic/t").await;
        let frame = send("/topic/t", &[], "");
        repeat(&publisher, &mut subscription, &frame, 3).await;
        assert_eq!(templated(&server), 1);
        let mut bad = frame.clone();
        bad.body = "b\0".into();
        publisher.client().send_frame(bad).await.unwrap();
        let reason = publisher.expect_closed().await;
        assert!(reason.contains("NUL"), "{reason}");
        subscription.expect_nothing();
        let other = server.client().await;
        other.send("/topic/t", "still here").await;
        subscription.expect_body("still here").await;
    }

    /// A point-to-point queue takes templated SENDs as it takes the first: each message once,
    /// in order, queued while no consumer is there and handed over when one comes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_point_to_point_queue_takes_templated_sends_in_order() {
        let server = TestServer::start(Server::builder().point_to_point(["/queue"])).await;
        let publisher = server.client().await;
        let frame = send("/queue/jobs", &[("x", "1")], "");
        for n in 0..6 {
            let mut sent = frame.clone();
            sent.body = format!("b{n}").into();
            publisher.client().send_frame(sent).await.unwrap();
        }
        publisher.barrier().await;
        assert_eq!(templated(&server), 4);
        let consumer = server.client().await;
        let mut jobs = consumer.subscribe("/queue/jobs").await;
        for n in 0..6 {
            let (headers, body) = next(&mut jobs).await;
            assert_eq!((body, headers.get("x")), (format!("b{n}"), Some("1")));
        }
        jobs.expect_nothing();
    }

    /// `retain:true` (allowed by `retain_header`) is not forwarded, yet a templated SEND is
    /// retained as the first was: a late subscriber gets the last body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_templated_send_is_retained_as_its_head_asks() {
        let server = TestServer::start(Server::builder().retain_header(true)).await;
        let (publisher, subscriber) = (server.client().await, server.client().await);
        let mut subscription = subscriber.subscribe("/topic/r").await;
        let frame = send("/topic/r", &[("retain", "true")], "");
        let headers = repeat(&publisher, &mut subscription, &frame, 4).await;
        assert_eq!(headers.get("retain"), None);
        assert_eq!(templated(&server), 2);
        let late = server.client().await;
        let mut retained = late.subscribe("/topic/r").await;
        let message = retained.expect_body("b3").await;
        assert_eq!(message.get("retained"), Some("true"));
    }
}
