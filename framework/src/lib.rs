//! # stompede
//!
//! STOMP over WebSocket for Rust applications, the way Spring's
//! `@EnableWebSocketMessageBroker` does it for Java: annotate plain functions, and any STOMP
//! client (browser `@stomp/stompjs`, `sockjs-client`, `stomp.py`) can talk to them through a
//! fast in-memory broker, or through a relay to RabbitMQ when one machine is not enough.
//!
//! This release contains the foundation: the STOMP 1.0/1.1/1.2 wire format in [`stomp`].
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

pub mod stomp;
