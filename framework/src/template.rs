//! `MessagingTemplate`: send to broker destinations from anywhere in the application.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::server::Shared;
use crate::stomp::{ByteStr, Headers, names};

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
    shared: Arc<Shared>,
}

/// Why a [`MessagingTemplate`] send (or a [`Server::listen`](crate::Server::listen)) was
/// refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
}

impl MessagingTemplate {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        MessagingTemplate { shared }
    }

    /// Sends `payload` as `text/plain;charset=UTF-8` (a `String` or `&str`) or as
    /// `application/octet-stream` (bytes). Returns how many subscriptions received it.
    pub fn convert_and_send(
        &self,
        destination: &str,
        payload: impl Into<Payload>,
    ) -> Result<usize, SendError> {
        let payload = payload.into();
        let mut headers = Headers::with_capacity(1);
        headers.push(names::CONTENT_TYPE, payload.content_type);
        self.send(destination, headers, payload.body)
    }

    /// Sends a message with the given headers and body. Returns how many subscriptions
    /// received it.
    pub fn send(
        &self,
        destination: &str,
        headers: Headers,
        body: Bytes,
    ) -> Result<usize, SendError> {
        require_broker_destination(&self.shared.config, destination)?;
        let destination = ByteStr::from(destination.to_owned());
        Ok(self.shared.broker.publish(&destination, &headers, body))
    }
}

/// Refuses a destination that no broker prefix covers (sending or listening there could never
/// reach a subscriber).
pub(crate) fn require_broker_destination(
    config: &Config,
    destination: &str,
) -> Result<(), SendError> {
    match config.broker_prefix_of(destination) {
        Some(_) => Ok(()),
        None => Err(SendError::NotABrokerDestination {
            destination: destination.to_owned(),
            prefixes: config.broker_prefixes.join(", "),
        }),
    }
}

/// A message body and its content type, for [`MessagingTemplate::convert_and_send`].
#[derive(Clone, Debug)]
pub struct Payload {
    body: Bytes,
    content_type: &'static str,
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload { body: Bytes::from(s), content_type: "text/plain;charset=UTF-8" }
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload::from(s.to_owned())
    }
}

impl From<Bytes> for Payload {
    fn from(body: Bytes) -> Self {
        Payload { body, content_type: "application/octet-stream" }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(body: Vec<u8>) -> Self {
        Payload::from(Bytes::from(body))
    }
}
