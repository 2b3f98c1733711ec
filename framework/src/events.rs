//! Session lifecycle events, for presence features ("who is online", "who watches this room").

use std::sync::Arc;

use crate::security::Principal;
use crate::stomp::{ByteStr, Version};

/// Something that happened to a session. Listen with
/// [`RunningServer::events`](crate::RunningServer::events).
///
/// Events go through a bounded broadcast channel (1,024 events): a listener that falls further
/// behind than that skips the oldest events and is told how many it missed
/// (`RecvError::Lagged`), rather than slowing the server down.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A client completed CONNECT.
    Connected {
        /// The session id (also in the CONNECTED frame's `session` header).
        session_id: ByteStr,
        /// The negotiated STOMP version.
        version: Version,
        /// The CONNECT frame's `login` header, if any.
        login: Option<String>,
        /// The session's principal (`None`: anonymous).
        principal: Option<Principal>,
    },
    /// A client subscribed.
    Subscribed {
        /// The session id.
        session_id: ByteStr,
        /// The client's id for the subscription.
        subscription_id: ByteStr,
        /// The destination or pattern subscribed to.
        destination: ByteStr,
        /// The session's principal (`None`: anonymous).
        principal: Option<Principal>,
    },
    /// A subscription ended (UNSUBSCRIBE, or the session ending).
    Unsubscribed {
        /// The session id.
        session_id: ByteStr,
        /// The client's id for the subscription.
        subscription_id: ByteStr,
        /// The destination or pattern it was for.
        destination: ByteStr,
        /// The session's principal (`None`: anonymous).
        principal: Option<Principal>,
    },
    /// The external broker became available, or stopped being available (the relay's system
    /// connection connected or was lost; Spring's `BrokerAvailabilityEvent`). While it is not,
    /// CONNECTs are refused with `broker not available`.
    BrokerAvailability {
        /// Whether it is available now.
        available: bool,
    },
    /// A session ended.
    Disconnected {
        /// The session id.
        session_id: ByteStr,
        /// Why it ended.
        reason: DisconnectReason,
        /// The session's principal (`None`: anonymous).
        principal: Option<Principal>,
    },
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    ClientDisconnected,
    /// The connection closed or failed without a DISCONNECT.
    ConnectionLost(Arc<str>),
    /// The client broke the protocol; the text is the ERROR frame's message.
    ProtocolError(Arc<str>),
    /// The client did not read fast enough (see `send_buffer_size_limit`).
    SlowConsumer(Arc<str>),
    /// No frame or heart-beat arrived in time.
    Timeout(Arc<str>),
    /// The server shut down.
    ServerShutdown,
    /// The session was refused or stopped by security: authentication failed, an access rule
    /// denied a frame, a CSRF token was missing, or a limit (sessions, frame rate) was
    /// reached. The text is the ERROR frame's message.
    AccessDenied(Arc<str>),
    /// The external broker went away (the relay's connection for the session was lost), or
    /// could not be reached at CONNECT; the client got `ERROR message:broker not available`.
    BrokerUnavailable(Arc<str>),
    /// The application closed it ([`Server::disconnect_user`](crate::Server::disconnect_user));
    /// the text is the reason it gave.
    Closed(Arc<str>),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::ClientDisconnected => f.write_str("the client disconnected"),
            DisconnectReason::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            DisconnectReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
            DisconnectReason::SlowConsumer(why) => write!(f, "slow consumer: {why}"),
            DisconnectReason::Timeout(why) => write!(f, "timeout: {why}"),
            DisconnectReason::ServerShutdown => f.write_str("the server shut down"),
            DisconnectReason::AccessDenied(why) => write!(f, "refused by security: {why}"),
            DisconnectReason::Closed(why) => write!(f, "closed by the application: {why}"),
            DisconnectReason::BrokerUnavailable(why) => write!(f, "broker not available: {why}"),
        }
    }
}

impl SessionEvent {
    /// The session the event is about (`None` for the broker's availability).
    pub fn session_id(&self) -> Option<&str> {
        match self {
            SessionEvent::Connected { session_id, .. }
            | SessionEvent::Subscribed { session_id, .. }
            | SessionEvent::Unsubscribed { session_id, .. }
            | SessionEvent::Disconnected { session_id, .. } => Some(session_id),
            SessionEvent::BrokerAvailability { .. } => None,
        }
    }

    /// The session's principal (`None`: anonymous, or not about a session).
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            SessionEvent::Connected { principal, .. }
            | SessionEvent::Subscribed { principal, .. }
            | SessionEvent::Unsubscribed { principal, .. }
            | SessionEvent::Disconnected { principal, .. } => principal.as_ref(),
            SessionEvent::BrokerAvailability { .. } => None,
        }
    }
}
