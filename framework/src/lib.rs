//! # stompede
//!
//! STOMP over WebSocket for Rust applications, the way Spring's
//! `@EnableWebSocketMessageBroker` does it for Java: any STOMP client (browser
//! `@stomp/stompjs`, `stomp.py`, RabbitMQ tools) connects, subscribes to `/topic/...` and
//! `/queue/...`, and receives what others send, through a fast in-memory broker.
//!
//! ```no_run
//! use stompede::Server;
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     // Endpoint /ws, broker prefixes /topic and /queue, application prefix /app.
//!     let server = Server::builder()
//!         .bind("127.0.0.1:8080".parse().unwrap())
//!         .build()
//!         .expect("valid configuration")
//!         .start()
//!         .await?;
//!     println!("STOMP over WebSocket at ws://{}/ws", server.local_addr());
//!     // Publish from anywhere in the application:
//!     server.template().convert_and_send("/topic/greetings", "hello").unwrap();
//!     tokio::signal::ctrl_c().await?;
//!     server.shutdown(std::time::Duration::from_secs(5)).await;
//!     Ok(())
//! }
//! ```
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
pub mod client;
mod config;
pub mod dispatch;
pub mod events;
mod security;
mod server;
mod session;
pub mod stomp;
mod template;
mod transport;

pub use config::{AllowedOrigins, ConfigError};
pub use dispatch::{HandlerError, Message, State};
pub use security::{HandshakeHook, HandshakeRejection, Principal};
pub use server::{RunningServer, Server, ServerBuilder};
pub use stompede_macros::{
    message_exception_handler, message_mapping, send_to, send_to_user, subscribe_mapping,
};
pub use template::{MessagingTemplate, Payload, SendError};
pub use transport::http::{ResponseBody, StompService};

/// What the attribute macros' generated code uses. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::support::*;
}
