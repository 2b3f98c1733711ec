//! The STOMP broker relay (Spring's `enableStompBrokerRelay`): broker destinations live in an
//! external STOMP broker (RabbitMQ with its STOMP plugin), so several stompede nodes share
//! them.
//!
//! As in Spring: each client session gets a connection of its own to the broker, which
//! carries that client's SUBSCRIBE, UNSUBSCRIBE, SEND (to broker destinations), ACK and NACK,
//! with the client's own subscription ids and receipts; what the broker sends back goes to the
//! client as it is. One "system" connection carries what the application sends (the
//! messaging template, handlers' replies) and the in-process listeners; it reconnects with
//! backoff when the broker goes away, and tells the application (`Server::broker_available`
//! and `SessionEvent::BrokerAvailability`).

mod session;
mod system;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub(crate) use session::{Ended, Link, UpstreamEnd};
pub(crate) use system::ClientReceipt;
use system::System;

use super::Subscriber;
use crate::stomp::{ByteStr, Headers};

/// The relay's settings, with Spring's names and defaults (see
/// [`ServerBuilder::enable_stomp_broker_relay`](crate::ServerBuilder::enable_stomp_broker_relay)).
///
/// ```
/// use std::time::Duration;
/// use stompede::broker::StompBrokerRelay;
/// use stompede::Server;
///
/// let relay = StompBrokerRelay::new(["/topic", "/queue", "/exchange", "/amq/queue"])
///     .relay_host("rabbitmq.internal")
///     .relay_port(61613)
///     .client_login("app")
///     .client_passcode("secret")
///     .system_login("app")
///     .system_passcode("secret")
///     .virtual_host("/")
///     .system_heartbeat_send_interval(Duration::from_secs(10));
/// let server = Server::builder().enable_stomp_broker_relay(relay).build().unwrap();
/// # drop(server);
/// ```
#[derive(Clone, Debug)]
pub struct StompBrokerRelay {
    pub(crate) prefixes: Vec<String>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) client_login: String,
    pub(crate) client_passcode: String,
    pub(crate) system_login: String,
    pub(crate) system_passcode: String,
    pub(crate) virtual_host: Option<String>,
    pub(crate) system_heartbeat_send: Duration,
    pub(crate) system_heartbeat_receive: Duration,
    pub(crate) connect_timeout: Duration,
}

impl StompBrokerRelay {
    /// A relay for destinations under `prefixes` (RabbitMQ's are `/topic`, `/queue`,
    /// `/exchange`, `/amq/queue`, `/temp-queue`), to `127.0.0.1:61613` as `guest`/`guest`.
    pub fn new<I, S>(prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StompBrokerRelay {
            prefixes: prefixes.into_iter().map(Into::into).collect(),
            host: "127.0.0.1".into(),
            port: 61613,
            client_login: "guest".into(),
            client_passcode: "guest".into(),
            system_login: "guest".into(),
            system_passcode: "guest".into(),
            virtual_host: None,
            system_heartbeat_send: Duration::from_secs(10),
            system_heartbeat_receive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The broker's host (default `127.0.0.1`; Spring's `setRelayHost`).
    pub fn relay_host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The broker's STOMP port (default 61613; `setRelayPort`).
    pub fn relay_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The login of the connections made for client sessions (default `guest`;
    /// `setClientLogin`).
    pub fn client_login(mut self, login: impl Into<String>) -> Self {
        self.client_login = login.into();
        self
    }

    /// Their passcode (default `guest`; `setClientPasscode`).
    pub fn client_passcode(mut self, passcode: impl Into<String>) -> Self {
        self.client_passcode = passcode.into();
        self
    }

    /// The login of the system connection (default `guest`; `setSystemLogin`).
    pub fn system_login(mut self, login: impl Into<String>) -> Self {
        self.system_login = login.into();
        self
    }

    /// Its passcode (default `guest`; `setSystemPasscode`).
    pub fn system_passcode(mut self, passcode: impl Into<String>) -> Self {
        self.system_passcode = passcode.into();
        self
    }

    /// The virtual host, sent as CONNECT's `host` (default `/`, RabbitMQ's default virtual
    /// host; `setVirtualHost`).
    pub fn virtual_host(mut self, host: impl Into<String>) -> Self {
        self.virtual_host = Some(host.into());
        self
    }

    /// How often the system connection sends a heart-beat (default 10 s;
    /// `setSystemHeartbeatSendInterval`).
    pub fn system_heartbeat_send_interval(mut self, every: Duration) -> Self {
        self.system_heartbeat_send = every;
        self
    }

    /// How often the system connection expects one (default 10 s; silence for three times
    /// that means the broker is gone; `setSystemHeartbeatReceiveInterval`).
    pub fn system_heartbeat_receive_interval(mut self, every: Duration) -> Self {
        self.system_heartbeat_receive = every;
        self
    }

    /// How long connecting to the broker may take, TCP and CONNECT (default 10 s).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// The destination prefixes relayed.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }
}

/// Where user destinations live in the external broker: keys of RabbitMQ's `amq.direct`
/// exchange under a prefix no client may name. Each subscriber gets a queue of its own,
/// deleted with it; a publisher declares nothing; and a direct exchange has no wildcards, so
/// no other subscription can match a key.
pub(crate) const USER_KEYS: &str = "/exchange/amq.direct/stompede.";

/// The key of one session's user destination: `/queue/reply` of session `3fa2b1c9-7` is
/// `/exchange/amq.direct/stompede.session.3fa2b1c9-7.queue.reply`.
pub(crate) fn session_key(destination: &str, session: &str) -> String {
    format!("{USER_KEYS}session.{}.{}", encode_key_part(session), dotted(destination))
}

/// The key of a user's destination, which every session of the user (on every node)
/// subscribed to it listens to: `/queue/reply` of `ada` is
/// `/exchange/amq.direct/stompede.user.ada.queue.reply`.
pub(crate) fn user_key(destination: &str, user: &str) -> String {
    format!("{USER_KEYS}user.{}.{}", encode_key_part(user), dotted(destination))
}

fn dotted(destination: &str) -> String {
    destination.trim_start_matches('/').replace('/', ".")
}

/// Letters, digits, `-` and `_` as they are; anything else (`.` included) as `%XX`, so a
/// name can never run into the next part of a key.
fn encode_key_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The relay as the runtime holds it.
pub struct RelayBroker {
    options: Arc<StompBrokerRelay>,
    system: Arc<System>,
}

impl RelayBroker {
    pub(crate) fn new(options: StompBrokerRelay) -> Self {
        let options = Arc::new(options);
        RelayBroker { system: Arc::new(System::new(options.clone())), options }
    }

    /// Starts the system connection (once; needs a Tokio runtime). `availability` is told of
    /// each change.
    pub(crate) fn start(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
        availability: Arc<dyn Fn(bool) + Send + Sync>,
    ) {
        self.system.start(shutdown, availability);
    }

    /// Whether the system connection is up.
    pub fn is_available(&self) -> bool {
        self.system.is_available()
    }

    /// The relay's settings.
    pub fn options(&self) -> &StompBrokerRelay {
        &self.options
    }

    /// Sends a message through the system connection; `false` when the broker is not
    /// available (or the system connection is backed up).
    pub(crate) fn publish(&self, destination: &ByteStr, headers: &Headers, body: Bytes) -> bool {
        self.system.publish(destination, headers, body)
    }

    /// An in-process listener: through the node's shared subscriptions.
    pub(crate) fn subscribe(&self, subscriber: Arc<Subscriber>) {
        self.system.subscribe(subscriber, None);
    }

    /// A client's plain topic subscription, shared with the node's others to the same
    /// destination (see `system.rs`); the relay answers `receipt` once the broker has
    /// confirmed the node's subscription.
    pub(crate) fn subscribe_shared(
        &self,
        subscriber: Arc<Subscriber>,
        receipt: Option<ClientReceipt>,
    ) {
        self.system.subscribe(subscriber, receipt);
    }

    pub(crate) fn unsubscribe(&self, subscriber: &Subscriber) {
        self.system.unsubscribe(subscriber.uid);
    }

    /// Opens the broker connection of a client session.
    pub(crate) async fn open_session(
        &self,
        version: crate::stomp::Version,
        outbox: Arc<crate::outbox::Outbox>,
        end: Arc<UpstreamEnd>,
    ) -> Result<Link, String> {
        session::open(&self.options, version, outbox, end, self.system.lost()).await
    }
}
