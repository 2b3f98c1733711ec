//! The STOMP 1.0, 1.1 and 1.2 wire format: frames, an incremental bounded decoder, and an
//! encoder that never copies a large body.
//!
//! This module is pure: no I/O, no async runtime. The session and transport layers feed it
//! bytes and write out what it encodes.
//!
//! ```
//! use bytes::BytesMut;
//! use stompede::stomp::{encode, Command, Decoder, Frame, Version};
//!
//! let frame = Frame::new(Command::Send)
//!     .header("destination", "/app/hello")
//!     .header("note", "a:b") // escaped on the wire as a\cb
//!     .body(r#"{"name":"Ada"}"#);
//! let wire = encode(&frame, Version::V1_2).to_bytes();
//!
//! let mut buf = BytesMut::from(&wire[..]);
//! let decoded = Decoder::default().decode(&mut buf)?.expect("one whole frame");
//! assert_eq!(decoded.headers.get("note"), Some("a:b"));
//! assert_eq!(decoded.body, frame.body);
//! # Ok::<(), stompede::stomp::DecodeError>(())
//! ```
//!
//! # Rules the decoder follows
//! - Frames may arrive in any pieces; EOLs between frames are heart-beats and are skipped.
//! - Lines end with LF or CRLF, in every version (clients in the wild send CRLF to 1.1 servers).
//! - A body ends at the first NUL, or after `content-length` bytes (which may include NULs)
//!   followed by a NUL.
//! - A repeated header keeps every entry; the first one is the value.
//! - Header names and values are unescaped per version (1.2: `\r \n \c \\`; 1.1: `\n \c \\`;
//!   1.0, CONNECT and CONNECTED: none); an undefined escape is an error.
//! - Headers are not trimmed; a value may contain `:` after the first one.
//! - Every limit in [`Limits`] is checked while bytes arrive, before they are buffered further.
//!
//! # What the encoder writes
//! Header text is escaped per version. STOMP 1.0 (and CONNECT/CONNECTED in every version) has
//! no escapes, so a CR or LF inside a header there is written as a space and a `:` inside a
//! header name as `_`: the frame stays well-formed rather than being cut short.

mod bytestr;
mod command;
mod decoder;
mod encoder;
mod error;
mod escape;
mod frame;
mod headers;
mod limits;
mod version;

pub use bytestr::ByteStr;
pub use command::Command;
pub use decoder::Decoder;
pub(crate) use encoder::MessageTemplate;
pub use encoder::{
    EncodedFrame, INLINE_BODY, PreparedMessage, encode, encode_to_bytes, message_head,
};
pub use error::{DecodeError, DecodeErrorKind};
pub(crate) use escape::put_uninit;
pub use frame::Frame;
pub use headers::{Headers, names};
pub use limits::Limits;
pub use version::{HeartBeat, Version};

#[cfg(test)]
mod tests;
