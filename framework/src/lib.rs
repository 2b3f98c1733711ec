//! # stompede
//!
//! STOMP over WebSocket for Rust applications, the way Spring's
//! `@EnableWebSocketMessageBroker` does it for Java: annotate plain functions, and any STOMP
//! client (browser `@stomp/stompjs`, the built-in `/stompede.js`, `stomp.py`, RabbitMQ tools)
//! can call them and subscribe to what they send, through a fast in-memory broker.
//!
//! ```rust,standalone_crate
//! use stompede::client::{Client, ClientOptions};
//! use stompede::{Server, message_mapping, send_to};
//!
//! // A SEND to /app/hello calls this; the return value goes to /topic/greetings.
//! #[message_mapping("/hello")]
//! #[send_to("/topic/greetings")]
//! async fn greeting(name: String) -> String {
//!     format!("Hello, {name}!")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Endpoint /ws, broker prefixes /topic and /queue, application prefix /app: Spring's
//! // defaults. Handlers are found by themselves.
//! let server = Server::builder().bind("127.0.0.1:0".parse()?).build()?.start().await?;
//!
//! // Any STOMP client will do; here, the Rust one.
//! let url = format!("ws://{}/ws", server.local_addr());
//! let client = Client::connect_ws(&url, ClientOptions::default()).await?;
//! let mut greetings = client.subscribe("/topic/greetings").await?;
//! client.send("/app/hello", "Ada").await?;
//! let greeting = greetings.next().await.expect("a greeting");
//! assert_eq!(greeting.body_str(), Some("Hello, Ada!"));
//!
//! // Publish from anywhere in the application, too:
//! server.template().convert_and_send("/topic/greetings", "Hello, everyone!")?;
//! server.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! Handlers are described in [`dispatch`] and the attributes' docs ([`message_mapping`],
//! [`send_to`], [`subscribe_mapping`], [`message_exception_handler`]); the guide is in
//! `docs/` (`docs/handlers.md`). `cargo run --example hello` runs the Spring guide's app with
//! its web page.
//!
//! The wire format lives in [`stomp`] (pure, no I/O); a Rust client in [`client`].
//!
//! ```
//! use bytes::BytesMut;
//! use stompede::stomp::{Command, Decoder};
//!
//! // Two frames and a heart-beat arriving in one read.
//! let mut buf = BytesMut::from(
//!     &b"CONNECT\naccept-version:1.2\nhost:example\n\n\0\nSUBSCRIBE\nid:0\ndestination:/topic/a\n\n\0"[..],
//! );
//! let mut decoder = Decoder::default();
//! let connect = decoder.decode(&mut buf)?.expect("CONNECT");
//! let subscribe = decoder.decode(&mut buf)?.expect("SUBSCRIBE");
//! assert_eq!(connect.command, Command::Connect);
//! assert_eq!(subscribe.destination(), Some("/topic/a"));
//! # Ok::<(), stompede::stomp::DecodeError>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

// The attribute macros generate paths starting with `::stompede`; this makes them resolve
// inside this crate too (its own tests and examples).
#[allow(unused_extern_crates)]
extern crate self as stompede;

pub mod broker;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod destination;
pub mod dispatch;
pub mod events;
pub mod intercept;
mod locks;
mod log_throttle;
mod outbox;
mod prefetch;
mod ring;
mod runtime;
pub mod security;
mod server;
mod session;
mod signal;
mod stats;
pub mod stomp;
mod template;
#[cfg(feature = "testing")]
pub mod test;
mod transport;
pub mod users;

pub use config::{AllowedOrigins, ConfigError, Endpoint};
#[cfg(feature = "sockjs")]
pub use config::{SockJsOptions, SockJsTransport};
pub use dispatch::{HandlerError, Message, State};
pub use security::{
    AuthenticationFailed, ConnectAuthenticator, ConnectRequest, HandshakeHook, HandshakeRejection,
    Principal,
};
pub use server::{RunningServer, Server, ServerBuilder};
pub use stats::Stats;
/// Maps a function to SEND frames sent to matching application destinations (Spring's
/// `@MessageMapping`).
///
/// Takes one or more destination patterns, matched after the application prefix is removed:
/// `#[message_mapping("/hello")]` is called for SENDs to `/app/hello`. Patterns may capture
/// (`"/chat/{room}"`, `"/docs/{*path}"`) and match wildcards (`*`, `**`). The function may be
/// `async` or not; its arguments are [extracted](dispatch::FromMessage) from the message and
/// its return value is sent to the [`send_to`] destinations, or by default to the first
/// broker prefix plus the destination (`/topic/hello`).
///
/// ```rust,standalone_crate
/// use stompede::{message_mapping, send_to};
///
/// #[message_mapping("/chat/{room}", "/lobby/{room}")]
/// #[send_to("/topic/chat/{room}")]
/// fn post(#[destination_variable] room: String, text: String) -> String {
///     format!("[{room}] {text}")
/// }
/// ```
pub use stompede_macros::message_mapping;

/// Maps a function to SUBSCRIBE frames to matching application destinations (Spring's
/// `@SubscribeMapping`): its return value goes to that subscription only, once, which makes
/// it the way to send a snapshot to a client that just arrived.
///
/// ```rust,standalone_crate
/// use stompede::{State, subscribe_mapping};
///
/// #[derive(Clone)]
/// struct Scores(std::sync::Arc<std::sync::Mutex<Vec<u32>>>);
///
/// #[subscribe_mapping("/scores")]
/// fn scores(State(scores): State<Scores>) -> Vec<u32> {
///     scores.0.lock().map(|s| s.clone()).unwrap_or_default() // sent as JSON
/// }
/// ```
pub use stompede_macros::subscribe_mapping;

/// Where a handler's return value is sent (Spring's `@SendTo`): one or more broker
/// destinations, which may use the mapping's placeholders (`"/topic/chat/{room}"`). Goes with
/// [`message_mapping`], [`subscribe_mapping`] or [`message_exception_handler`].
///
/// ```rust,standalone_crate
/// use stompede::{message_mapping, send_to};
///
/// #[message_mapping("/hello")]
/// #[send_to("/topic/greetings", "/topic/audit")]
/// fn greeting(name: String) -> String {
///     format!("Hello, {name}!")
/// }
/// ```
pub use stompede_macros::send_to;

/// Turns the errors of other handlers into a reply (Spring's `@MessageExceptionHandler`).
///
/// Without arguments it handles every error (at most one such handler per server); with a
/// list of error types, the errors of those types. It takes the
/// [`HandlerError`] as an argument, plus any other extractor, and its reply goes to its
/// [`send_to`] destinations, or to the failed message's default destination. Without an
/// exception handler, a handler's `Err` or panic is logged and the session stays open, and an
/// argument that cannot be extracted gets the client an ERROR frame.
///
/// ```rust,standalone_crate
/// use stompede::{HandlerError, message_exception_handler, send_to};
///
/// #[message_exception_handler(std::num::ParseIntError)]
/// #[send_to("/topic/errors")]
/// fn not_a_number(error: HandlerError) -> String {
///     format!("{} needs a number: {}", error.destination(), error.reason())
/// }
/// ```
pub use stompede_macros::message_exception_handler;

/// Sends a handler's return value to the calling user's user destinations (Spring's
/// `@SendToUser`): `#[send_to_user("/queue/reply")]` reaches every session of the caller's
/// principal that subscribed to `/user/queue/reply`; with `broadcast = false`, the calling
/// session only. A session without a principal gets it on its own session. Destinations are
/// broker destinations written without the user prefix, and may use the mapping's
/// placeholders. Goes with [`message_mapping`] or [`message_exception_handler`]; the standard
/// way to tell a caller that its message failed:
///
/// ```rust,standalone_crate
/// use stompede::{HandlerError, message_exception_handler, message_mapping, send_to_user};
///
/// #[message_mapping("/orders")]
/// #[send_to_user("/queue/orders", broadcast = false)]
/// fn place(order: String) -> Result<String, std::num::ParseIntError> {
///     let quantity: u32 = order.parse()?;
///     Ok(format!("ordered {quantity}"))
/// }
///
/// #[message_exception_handler]
/// #[send_to_user("/queue/errors", broadcast = false)]
/// fn report(error: HandlerError) -> String {
///     format!("{} failed: {}", error.destination(), error.reason())
/// }
/// ```
pub use stompede_macros::send_to_user;

/// Calls the handler only for callers whose principal has one of the roles (Spring's
/// `@PreAuthorize("hasRole(...)")`): anyone else gets an `ERROR` frame
/// (`access denied: SEND to /app/admin/purge requires role admin`) and is disconnected, before
/// the handler is called. Goes with [`message_mapping`] or [`subscribe_mapping`].
///
/// ```rust,standalone_crate
/// use stompede::{message_mapping, requires_role, send_to};
///
/// #[message_mapping("/admin/announce")]
/// #[requires_role("admin", "moderator")]
/// #[send_to("/topic/announcements")]
/// fn announce(text: String) -> String {
///     text
/// }
/// ```
pub use stompede_macros::requires_role;
pub use template::{MessagingTemplate, SendError};
pub use transport::service::{ResponseBody, StompService};
#[cfg(feature = "tls")]
pub use transport::tls::TlsConfig;

/// The guide's pages, compiled (and where they can run, run) as doctests, so that their code
/// cannot drift from the crate's.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[cfg_attr(feature = "client", doc = include_str!("../../docs/client.md"))]
    struct Client;
    #[cfg_attr(feature = "client", doc = include_str!("../../docs/getting-started.md"))]
    struct GettingStarted;
    #[doc = include_str!("../../docs/handlers.md")]
    struct Handlers;
    // Its axum section needs the `axum` feature (the workspace's tests turn it on).
    #[cfg_attr(all(feature = "axum", feature = "sockjs"), doc = include_str!("../../docs/configuration.md"))]
    struct Configuration;
    #[doc = include_str!("../../docs/protocol.md")]
    struct Protocol;
    #[doc = include_str!("../../docs/scaling.md")]
    struct Scaling;
    #[doc = include_str!("../../docs/broker.md")]
    struct BrokerGuide;
    #[doc = include_str!("../../docs/production.md")]
    struct Production;
    #[cfg_attr(feature = "testing", doc = include_str!("../../docs/testing.md"))]
    struct Testing;
    #[cfg_attr(all(feature = "axum", feature = "sockjs"), doc = include_str!("../../docs/spring-migration.md"))]
    struct SpringMigration;
    #[cfg_attr(all(feature = "axum", feature = "tls"), doc = include_str!("../../docs/security.md"))]
    struct Security;
    #[cfg_attr(feature = "sockjs", doc = include_str!("../../docs/sockjs.md"))]
    struct SockJs;
    #[doc = include_str!("../../docs/browser-client.md")]
    struct BrowserClient;
}

/// What the attribute macros' generated code uses. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::support::*;
}

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use bytes::Bytes;

    /// The messages of a SockJS `xhr_send` body (or WebSocket message), as the server reads
    /// them; `None` for a body it answers with an error.
    pub fn sockjs_messages(body: &[u8]) -> Option<Vec<String>> {
        crate::transport::sockjs::frames::decode(body).ok()
    }

    /// The `a[...]` frame the server sends for `messages`.
    pub fn sockjs_frame(messages: &[String]) -> String {
        let messages: Vec<Bytes> = messages.iter().map(|m| Bytes::from(m.clone())).collect();
        crate::transport::sockjs::frames::messages(&messages)
    }

    /// Whether a subscription `pattern` matches `destination`, as the broker decides.
    pub fn pattern_matches(pattern: &str, destination: &str) -> bool {
        crate::broker::Pattern::parse(pattern).matches(destination)
    }
}
