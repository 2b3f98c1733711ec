//! `MessagingTemplate`: send to broker destinations from anywhere in the application.

use std::sync::Arc;

use bytes::Bytes;

use crate::broker::Broker;
use crate::destination::under;
use crate::dispatch::{BoxError, IntoReply};
use crate::stomp::{ByteStr, Headers};
use crate::users::SessionRegistry;

/// A cheap, cloneable handle that publishes to broker destinations (`/topic/...`,
/// `/queue/...`) from any task: background jobs, HTTP handlers, timers. Spring's
/// `SimpMessagingTemplate`.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use stompede::Server;
/// let server = Server::builder().bind("127.0.0.1:0".parse().unwrap()).build().unwrap().start().await?;
/// let template = server.template();
/// tokio::spawn(async move {
///     let mut tick = 0u64;
///     loop {
///         tick += 1;
///         let _ = template.convert_and_send("/topic/ticks", tick.to_string());
///         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///     }
/// });
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MessagingTemplate {
    broker: Arc<Broker>,
    /// The broker prefixes, to refuse destinations no subscriber could ever see.
    prefixes: Arc<[String]>,
    /// Who is connected, for user destinations.
    sessions: Arc<SessionRegistry>,
    /// The user destination prefix (`/user`).
    user_prefix: Arc<str>,
}

/// Why a [`MessagingTemplate`] send (or a [`Server::listen`](crate::Server::listen)) was
/// refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The destination is not under a broker prefix.
    #[error(
        "destination {destination:?} is not under a broker prefix ({prefixes}); only broker destinations can be sent to"
    )]
    NotABrokerDestination {
        /// The destination given.
        destination: String,
        /// The configured prefixes.
        prefixes: String,
    },
    /// The external broker is not available: the relay's system connection is down (it is
    /// reconnecting), or backed up. Nothing was sent.
    #[error(
        "the message broker is not available (the relay's system connection is down or backed up); nothing was sent"
    )]
    BrokerUnavailable,
    /// The payload could not be made into a message (its JSON serialization failed).
    #[error("the payload cannot be sent: {0}")]
    Payload(#[source] BoxError),
}

impl MessagingTemplate {
    pub(crate) fn new(
        broker: Arc<Broker>,
        prefixes: Arc<[String]>,
        sessions: Arc<SessionRegistry>,
        user_prefix: Arc<str>,
    ) -> Self {
        MessagingTemplate { broker, prefixes, sessions, user_prefix }
    }

    /// Sends `payload`, anything a handler may return ([`IntoReply`]): a `String` or `&str` as
    /// `text/plain;charset=UTF-8`, bytes as `application/octet-stream`, a [`Message`](crate::dispatch::Message) with the
    /// headers it carries (`Message::json(&value)?` for JSON). Returns how many subscriptions
    /// received it (0 for a payload that sends nothing, such as `()` or `None`).
    ///
    /// ```
    /// use stompede::Server;
    /// use stompede::dispatch::Message;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let template = Server::builder().build()?.template();
    /// template.convert_and_send("/topic/greetings", "Hello!")?;
    /// template.convert_and_send("/topic/prices", Message::json(&[("AAPL", 187.5)])?)?;
    /// # Ok(()) }
    /// ```
    pub fn convert_and_send(
        &self,
        destination: &str,
        payload: impl IntoReply,
    ) -> Result<usize, SendError> {
        self.require_broker_destination(destination)?;
        match payload.into_reply().map_err(SendError::Payload)? {
            Some(message) => self.send(destination, message.headers, message.body),
            None => Ok(0),
        }
    }

    /// Sends a message with the given headers and body. Returns how many subscriptions
    /// received it.
    pub fn send(
        &self,
        destination: &str,
        headers: Headers,
        body: Bytes,
    ) -> Result<usize, SendError> {
        self.publish(ByteStr::from(destination.to_owned()), &headers, body)
    }

    /// Publishes to `destination` if a broker prefix covers it: what `send` does, and what a
    /// handler's reply does (which has its destination as a `String` and its headers borrowed).
    pub(crate) fn publish(
        &self,
        destination: ByteStr,
        headers: &Headers,
        body: Bytes,
    ) -> Result<usize, SendError> {
        self.require_broker_destination(&destination)?;
        self.broker
            .try_publish(&destination, headers, body)
            .map_err(|_| SendError::BrokerUnavailable)
    }

    /// Sends `payload` to every session of `user` subscribed to the user destination
    /// `destination` (Spring's `convertAndSendToUser`): `("ada", "/queue/reply", ..)` reaches
    /// each of Ada's sessions that subscribed to `/user/queue/reply`, and only those; the
    /// MESSAGE frames say `destination:/user/queue/reply`. `destination` is a broker
    /// destination, without the user prefix. Returns how many subscriptions received it (0
    /// when the user is not connected; with the broker relay, always 0: the external broker
    /// delivers it to the user's sessions on every node, and the relay cannot count them).
    ///
    /// ```
    /// use stompede::Server;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let template = Server::builder().build()?.template();
    /// template.convert_and_send_to_user("ada", "/queue/notifications", "Your export is ready")?;
    /// # Ok(()) }
    /// ```
    pub fn convert_and_send_to_user(
        &self,
        user: &str,
        destination: &str,
        payload: impl IntoReply,
    ) -> Result<usize, SendError> {
        self.require_broker_destination(destination)?;
        if !self.broker.is_available() {
            return Err(SendError::BrokerUnavailable);
        }
        match payload.into_reply().map_err(SendError::Payload)? {
            Some(message) => {
                Ok(self.publish_to_user(user, destination, &message.headers, message.body))
            }
            None => Ok(0),
        }
    }

    /// Publishes to the user destination `destination` (checked to be a broker destination)
    /// of every session of `user`.
    pub(crate) fn publish_to_user(
        &self,
        user: &str,
        destination: &str,
        headers: &Headers,
        body: Bytes,
    ) -> usize {
        let shown = self.shown(destination);
        if self.broker.relay().is_some() {
            // One message to the user's key reaches their sessions on every node.
            let key = ByteStr::from(crate::broker::relay::user_key(destination, user));
            return self.broker.publish_to_user(&key, &shown, headers, body);
        }
        self.sessions
            .sessions_of(user)
            .iter()
            .map(|session| {
                self.deliver_to_session(session, destination, &shown, headers, body.clone())
            })
            .sum()
    }

    /// Publishes to the user destination `destination` of one session only.
    pub(crate) fn publish_to_session(
        &self,
        session: &str,
        destination: &str,
        headers: &Headers,
        body: Bytes,
    ) -> usize {
        let shown = self.shown(destination);
        self.deliver_to_session(session, destination, &shown, headers, body)
    }

    fn shown(&self, destination: &str) -> ByteStr {
        ByteStr::from(format!("{}{destination}", self.user_prefix))
    }

    fn deliver_to_session(
        &self,
        session: &str,
        destination: &str,
        shown: &ByteStr,
        headers: &Headers,
        body: Bytes,
    ) -> usize {
        let resolved = match self.broker.relay() {
            Some(_) => crate::broker::relay::session_key(destination, session),
            None => resolve_user_destination(destination, session),
        };
        self.broker.publish_to_user(&ByteStr::from(resolved), shown, headers, body)
    }

    /// Refuses a destination that no broker prefix covers (sending or listening there could
    /// never reach a subscriber).
    pub(crate) fn require_broker_destination(&self, destination: &str) -> Result<(), SendError> {
        if self.prefixes.iter().any(|prefix| under(prefix, destination)) {
            return Ok(());
        }
        Err(SendError::NotABrokerDestination {
            destination: destination.to_owned(),
            prefixes: self.prefixes.join(", "),
        })
    }
}

/// The broker-side name of a session's user destination (Spring's): `/queue/reply` of session
/// `3fa2b1c9-7` is `/queue/reply-user3fa2b1c9-7`.
pub(crate) fn resolve_user_destination(destination: &str, session: &str) -> String {
    format!("{destination}-user{session}")
}

/// Whether `destination` is such a name (`...-user` then a session id: 8 hex digits, `-`,
/// digits), which clients may not use directly.
pub(crate) fn is_resolved_user_destination(destination: &str) -> bool {
    // Read from the end, where the session id is (`-user{8 hex digits}-{digits}`): most
    // destinations end in a letter and are ruled out at once (this runs for every SEND to
    // the broker). The `-user` found this way is the last one, as the id holds no `u`.
    let bytes = destination.as_bytes();
    let digits = bytes.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let Some(rest) = bytes.len().checked_sub(digits).filter(|_| digits > 0) else {
        return false;
    };
    let Some(rest) = bytes[..rest].strip_suffix(b"-") else { return false };
    let Some(node_at) = rest.len().checked_sub(8) else { return false };
    let (rest, node) = rest.split_at(node_at);
    node.iter().all(u8::is_ascii_hexdigit) && rest.ends_with(b"-user")
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolved_user_destinations_are_recognised() {
        let resolved = super::resolve_user_destination("/queue/reply", "3fa2b1c9-7");
        assert!(super::is_resolved_user_destination(&resolved));
        assert!(!super::is_resolved_user_destination("/queue/power-users"));
        assert!(!super::is_resolved_user_destination("/queue/reply-userX-7"));
        assert!(!super::is_resolved_user_destination("/queue/reply"));
        for not_resolved in [
            "",
            "-user3fa2b1c9-",
            "-user3fa2b1c-7",
            "/queue/a-usar3fa2b1c9-7",
            "/queue/a-user3fa2b1cg-7",
            "/queue/a-user3fa2b1c9_7",
            "/queue/a-user3fa2b1c9-7x",
            "3fa2b1c9-7",
        ] {
            assert!(!super::is_resolved_user_destination(not_resolved), "{not_resolved}");
        }
        for resolved in
            ["-user3fa2b1c9-7", "/q/a-user-userABCDEF01-1234", "/queue/x-user00000000-0"]
        {
            assert!(super::is_resolved_user_destination(resolved), "{resolved}");
        }
    }
}
