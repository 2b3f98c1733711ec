//! What handlers return: [`IntoReply`] and [`Message`], a reply with headers of its own.

use bytes::Bytes;
use serde::Serialize;

use super::error::BoxError;
use crate::stomp::{ByteStr, Headers, names};

/// A reply with custom headers (Spring's `Message<T>`): return it from a handler to set
/// headers beside the payload.
///
/// ```
/// use stompede::dispatch::Message;
/// let reply = Message::text("42 online").header("x-count", "42");
/// assert_eq!(reply.headers().get("content-type"), Some("text/plain;charset=UTF-8"));
/// ```
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

impl Message {
    /// A `text/plain;charset=UTF-8` message.
    pub fn text(body: impl Into<String>) -> Self {
        Message::with_content_type(Bytes::from(body.into()), "text/plain;charset=UTF-8")
    }

    /// An `application/octet-stream` message.
    pub fn bytes(body: impl Into<Bytes>) -> Self {
        Message::with_content_type(body.into(), "application/octet-stream")
    }

    /// An `application/json` message holding `value`.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Message::with_content_type(Bytes::from(serde_json::to_vec(value)?), "application/json"))
    }

    /// A message with the given body and `content-type`.
    pub fn with_content_type(body: Bytes, content_type: &str) -> Self {
        let mut headers = Headers::with_capacity(2);
        headers.push(names::CONTENT_TYPE, content_type.to_owned());
        Message { headers, body }
    }

    /// Adds a header (replacing one of the same name). `destination`, `message-id` and
    /// `subscription` are set by the broker and cannot be overridden.
    pub fn header(mut self, name: impl Into<ByteStr>, value: impl Into<ByteStr>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A handler return type that becomes a message (axum's `IntoResponse`).
///
/// Implemented for `()` (nothing is sent), [`String`] and `&'static str` (text), [`Vec<u8>`]
/// and [`Bytes`] (binary), and [`Message`]. Any other return type that implements serde's
/// `Serialize` is sent as JSON (`content-type: application/json`); `Option<T>` sends nothing
/// for `None`; `Result<T, E>` hands `E` to the exception handlers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a handler",
    label = "not a reply",
    note = "handlers return a type that implements `stompede::dispatch::IntoReply` or serde's `Serialize`, or an Option or Result of one"
)]
pub trait IntoReply {
    /// The message to send, or `None` to send nothing.
    fn into_reply(self) -> Result<Option<Message>, BoxError>;
}

impl IntoReply for () {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        Ok(None)
    }
}

impl IntoReply for String {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        Ok(Some(Message::text(self)))
    }
}

impl IntoReply for &str {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        Ok(Some(Message::text(self)))
    }
}

impl<T: IntoReply> IntoReply for Option<T> {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        match self {
            Some(value) => value.into_reply(),
            None => Ok(None),
        }
    }
}

impl IntoReply for Vec<u8> {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        Ok(Some(Message::bytes(self)))
    }
}

impl IntoReply for Bytes {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        Ok(Some(Message::bytes(self)))
    }
}

impl IntoReply for Message {
    fn into_reply(self) -> Result<Option<Message>, BoxError> {
        Ok(Some(self))
    }
}
