//! The STOMP state machine of one session: what each client frame does, and which frames the
//! server answers with. Synchronous and transport-agnostic: it consumes frames and queues
//! replies in the session's outbox; the run loop in `mod.rs` moves bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::{AckMode, Pattern, Subscriber};
use crate::destination::strip_prefix;
use crate::dispatch::{Fatal, Job, Matched, MessageContext, SessionDispatch};
use crate::events::{DisconnectReason, SessionEvent};
use crate::outbox::Outbox;
use crate::runtime::Runtime;
use crate::security::Principal;
use crate::stomp::{ByteStr, Command, EncodedFrame, Frame, HeartBeat, Version, encode, names};

const SUPPORTED: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

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

/// A protocol violation: becomes an ERROR frame, then the connection closes.
struct Violation(String);

type Handled = Result<Flow, Violation>;

fn violation(message: impl Into<String>) -> Violation {
    Violation(message.into())
}

pub(crate) struct Protocol {
    runtime: Arc<Runtime>,
    session_id: ByteStr,
    outbox: Arc<Outbox>,
    version: Option<Version>,
    /// Broker subscriptions, and subscriptions to subscribe mappings (which the broker never
    /// sees), by id.
    subscriptions: HashMap<ByteStr, Arc<Subscriber>>,
    transactions: HashMap<ByteStr, Vec<Frame>>,
    transaction_bytes: usize,
    principal: Option<Principal>,
    dispatch: SessionDispatch,
}

/// Where a SEND or SUBSCRIBE goes.
enum Target {
    Broker,
    Handler(Matched),
}

impl Protocol {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        session_id: ByteStr,
        outbox: Arc<Outbox>,
        principal: Option<Principal>,
    ) -> Self {
        Protocol {
            dispatch: SessionDispatch::new(runtime.clone()),
            runtime,
            session_id,
            outbox,
            version: None,
            subscriptions: HashMap::new(),
            transactions: HashMap::new(),
            transaction_bytes: 0,
            principal,
        }
    }

    /// The signal of a handler call that must end the session.
    pub(crate) fn fatal(&self) -> Arc<Fatal> {
        self.dispatch.fatal()
    }

    /// Whether handler calls wait for room in the session's queue: no frame may be read
    /// until [`unblock`](Self::unblock) completes.
    pub(crate) fn is_blocked(&self) -> bool {
        self.dispatch.is_blocked()
    }

    /// Waits until the waiting handler calls are queued.
    pub(crate) async fn unblock(&mut self) {
        self.dispatch.unblock().await;
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

    /// Handles one client frame.
    pub(crate) fn handle(&mut self, frame: Frame) -> Flow {
        let receipt = frame.receipt().map(str::to_owned);
        let result = match (self.version, frame.command) {
            (None, Command::Connect | Command::Stomp) => self.connect(&frame),
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
                return Flow::Close {
                    last: receipt.map(Frame::receipt_for),
                    reason: DisconnectReason::ClientDisconnected,
                };
            }
            (Some(_), command) => {
                Err(violation(format!("{command} is a server frame; a client may not send it")))
            }
        };
        match result {
            Ok(flow) => {
                if let Some(id) = receipt {
                    if !matches!(flow, Flow::Close { .. }) {
                        self.reply(&Frame::receipt_for(id));
                    }
                }
                flow
            }
            Err(Violation(message)) => self.error(message, receipt.as_deref()),
        }
    }

    /// The flow for a protocol error: an ERROR frame, then close.
    pub(crate) fn error(&self, message: String, receipt: Option<&str>) -> Flow {
        tracing::warn!(session_id = %self.session_id, "protocol error: {message}");
        let frame = Frame::error(message.clone(), receipt, "");
        Flow::Close { last: Some(frame), reason: DisconnectReason::ProtocolError(message.into()) }
    }

    fn connect(&mut self, frame: &Frame) -> Handled {
        let accept = frame.get(names::ACCEPT_VERSION);
        let Some(version) = Version::negotiate(accept, &SUPPORTED) else {
            // The specification's reply: the versions we do speak, in a `version` header.
            let mut error = Frame::error(
                "Supported protocol versions are 1.0, 1.1, 1.2",
                None,
                &format!("accept-version was {:?}", accept.unwrap_or_default()),
            );
            error.headers.push(names::VERSION, "1.2,1.1,1.0");
            return Ok(Flow::Close {
                last: Some(error),
                reason: DisconnectReason::ProtocolError("no common protocol version".into()),
            });
        };
        let client_beat = match (version, frame.get(names::HEART_BEAT)) {
            (Version::V1_0, _) | (_, None) => HeartBeat::NONE,
            (_, Some(value)) => HeartBeat::parse(value).ok_or_else(|| {
                violation(format!(
                    "heart-beat header {value:?} must be two comma-separated non-negative numbers (such as 10000,10000)"
                ))
            })?,
        };
        let server_beat =
            if version == Version::V1_0 { HeartBeat::NONE } else { self.runtime.config.heartbeat };
        self.version = Some(version);
        let mut connected = Frame::new(Command::Connected)
            .header(names::VERSION, version.as_str())
            .header(names::HEART_BEAT, server_beat.to_header_value())
            .header(names::SESSION, self.session_id.clone())
            .header(names::SERVER, self.runtime.config.server_name.clone());
        if let Some(login) = frame.get(names::LOGIN) {
            connected.headers.push("user-name", login.to_owned());
        }
        self.reply(&connected);
        self.runtime.emit(SessionEvent::Connected {
            session_id: self.session_id.clone(),
            version,
            login: frame.get(names::LOGIN).map(str::to_owned),
        });
        Ok(Flow::Connected {
            version,
            outgoing: server_beat.outgoing(client_beat),
            incoming: server_beat.incoming(client_beat),
        })
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
        Ok(destination.clone())
    }

    fn send(&mut self, frame: Frame) -> Handled {
        let destination = self.destination(&frame)?;
        if self.runtime.config.reject_nul_in_bodies && memchr::memchr(0, &frame.body).is_some() {
            return Err(violation(
                "SEND body contains a NUL byte, which this server refuses (reject_nul_in_bodies): clients that split frames on NUL, such as stompjs 2.3.3, would read the rest as another frame",
            ));
        }
        // Route now, so a bad SEND inside a transaction fails at once.
        let target = self.target(false, &destination)?;
        if let Some(tx) = frame.headers.get_shared(names::TRANSACTION).cloned() {
            let size = buffered_size(&frame);
            let limit = self.runtime.config.max_transaction_bytes;
            let Some(buffered) = self.transactions.get_mut(&tx) else {
                return Err(violation(format!(
                    "SEND names transaction {tx:?}, which was not begun"
                )));
            };
            if self.transaction_bytes + size > limit {
                return Err(violation(format!(
                    "transactions of this session buffer more than {limit} bytes (commit sooner, or raise max_transaction_bytes)"
                )));
            }
            self.transaction_bytes += size;
            buffered.push(frame);
            return Ok(Flow::Continue);
        }
        self.deliver_send(target, destination, frame);
        Ok(Flow::Continue)
    }

    fn deliver_send(&mut self, target: Target, destination: ByteStr, frame: Frame) {
        match target {
            Target::Broker => self.publish(&destination, frame),
            Target::Handler(matched) => {
                let handler = matched.handler;
                let context = self.context(frame, destination, matched);
                self.dispatch.submit(Job { handler, context, subscriber: None });
            }
        }
    }

    fn context(&self, frame: Frame, destination: ByteStr, matched: Matched) -> Arc<MessageContext> {
        let (session_id, principal) = (self.session_id.clone(), self.principal.clone());
        let runtime = self.runtime.clone();
        Arc::new(MessageContext::new(runtime, session_id, principal, frame, destination, matched))
    }

    /// Routes a SEND (`subscribe` false) or a SUBSCRIBE: to the broker, or to the handler
    /// mapped to its application destination.
    fn target(&self, subscribe: bool, destination: &str) -> Result<Target, Violation> {
        let config = &self.runtime.config;
        if config.broker_prefix_of(destination).is_some() {
            return Ok(Target::Broker);
        }
        if let Some(prefix) = config.app_prefix_of(destination) {
            return self.handler_target(subscribe, prefix, destination).ok_or_else(|| {
                let (what, attribute) = match subscribe {
                    false => ("application", "message_mapping"),
                    true => ("subscription", "subscribe_mapping"),
                };
                violation(format!(
                    "no {what} handler is registered for destination {destination} (no #[{attribute}] matches {})",
                    strip_prefix(prefix, destination)
                ))
            });
        }
        let what = if subscribe { "cannot subscribe to" } else { "destination" };
        Err(self.outside_prefixes(destination, what))
    }

    fn handler_target(&self, subscribe: bool, prefix: &str, destination: &str) -> Option<Target> {
        self.runtime.router.find(subscribe, prefix, destination).map(Target::Handler)
    }

    fn outside_prefixes(&self, destination: &str, what: &str) -> Violation {
        let config = &self.runtime.config;
        if config.is_user_destination(destination) {
            violation(format!(
                "user destinations ({}) are not enabled on this server",
                config.user_prefix
            ))
        } else {
            violation(format!(
                "{what} {destination} is not covered by any configured prefix ({})",
                config.describe_prefixes()
            ))
        }
    }

    fn publish(&self, destination: &ByteStr, frame: Frame) {
        let delivered = self.runtime.broker.publish(destination, &frame.headers, frame.body);
        tracing::debug!(session_id = %self.session_id, %destination, delivered, "published");
    }

    fn subscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, names::ID)?.clone();
        let destination = self.destination(frame)?;
        let ack = match frame.get(names::ACK) {
            None => AckMode::Auto,
            Some(value) => AckMode::parse(value).ok_or_else(|| {
                violation(format!("ack mode {value:?} is not auto, client or client-individual"))
            })?,
        };
        if self.subscriptions.contains_key(&id) {
            return Err(violation(format!(
                "subscription id {id:?} is already in use in this session"
            )));
        }
        let max = self.runtime.config.max_subscriptions;
        if self.subscriptions.len() >= max {
            return Err(violation(format!(
                "a session may hold at most {max} subscriptions (unsubscribe first, or set max_subscriptions to raise it)"
            )));
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
        }
        let version = self.version.unwrap_or(Version::V1_2);
        let subscriber = Arc::new(Subscriber::session(
            id.clone(),
            destination.clone(),
            version,
            ack,
            self.outbox.clone(),
        ));
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
        }
        self.subscriptions.insert(id.clone(), subscriber);
        self.runtime.emit(SessionEvent::Subscribed {
            session_id: self.session_id.clone(),
            subscription_id: id,
            destination,
        });
        Ok(Flow::Continue)
    }

    fn unsubscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, names::ID)?;
        // An unknown id is not an error: the client may race its own UNSUBSCRIBE with a
        // server-side clean-up, and the outcome it wants holds either way.
        if let Some(subscriber) = self.subscriptions.remove(id.as_str()) {
            self.drop_subscription(&subscriber);
        }
        Ok(Flow::Continue)
    }

    fn drop_subscription(&self, subscriber: &Subscriber) {
        if self.runtime.config.broker_prefix_of(&subscriber.destination).is_some() {
            self.runtime.broker.unsubscribe(subscriber);
        }
        self.runtime.emit(SessionEvent::Unsubscribed {
            session_id: self.session_id.clone(),
            subscription_id: subscriber.subscription_id.clone(),
            destination: subscriber.destination.clone(),
        });
    }

    fn ack(&mut self, frame: &Frame, version: Version) -> Handled {
        if frame.command == Command::Nack && version == Version::V1_0 {
            return Err(violation("NACK is not part of STOMP 1.0"));
        }
        match version {
            Version::V1_2 => {
                required(frame, names::ID)?;
            }
            Version::V1_1 => {
                required(frame, names::MESSAGE_ID)?;
                required(frame, names::SUBSCRIPTION)?;
            }
            Version::V1_0 => {
                required(frame, names::MESSAGE_ID)?;
            }
        }
        if let Some(tx) = frame.get(names::TRANSACTION) {
            if !self.transactions.contains_key(tx) {
                return Err(violation(format!(
                    "{} names transaction {tx:?}, which was not begun",
                    frame.command
                )));
            }
        }
        // The simple broker counts every delivery as acknowledged (as Spring's does).
        Ok(Flow::Continue)
    }

    fn begin(&mut self, frame: &Frame) -> Handled {
        let tx = required(frame, names::TRANSACTION)?.clone();
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
        for send in frames {
            if let Some(destination) = send.headers.get_shared(names::DESTINATION).cloned() {
                // Routed when buffered; the routing table never changes.
                if let Ok(target) = self.target(false, &destination) {
                    self.deliver_send(target, destination, send);
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

    /// Releases everything the session holds in the broker. Called once, when it ends.
    pub(crate) fn finish(&mut self) {
        for (_, subscriber) in std::mem::take(&mut self.subscriptions) {
            self.drop_subscription(&subscriber);
        }
        self.transactions.clear();
    }
}

/// What a SEND held in a transaction counts against `max_transaction_bytes`: its body and a
/// flat allowance per header. Used when it is buffered and when the transaction ends, so the
/// two always agree.
fn buffered_size(frame: &Frame) -> usize {
    frame.body.len() + frame.headers.len() * 32
}

fn required<'f>(frame: &'f Frame, name: &str) -> Result<&'f ByteStr, Violation> {
    frame.headers.get_shared(name).ok_or_else(|| {
        violation(format!("{} frame has no {name} header, which is required", frame.command))
    })
}
