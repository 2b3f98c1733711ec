//! `Frame`: one STOMP frame, as decoded or about to be encoded.

use bytes::Bytes;

use super::{ByteStr, Command, Headers, names};

/// A STOMP frame: a command, ordered headers and a body.
///
/// The body is [`Bytes`], so a decoded body is a view of the received buffer and an encoded
/// one larger than [`INLINE_BODY`](super::INLINE_BODY) is never copied.
///
/// ```
/// use stompede::stomp::{Command, Frame};
/// let frame = Frame::new(Command::Send)
///     .header("destination", "/topic/greetings")
///     .header("content-type", "text/plain")
///     .body("hello");
/// assert_eq!(frame.headers.get("destination"), Some("/topic/greetings"));
/// assert_eq!(frame.body_str(), Some("hello"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// The headers, in order. Repeated names are kept; the first wins.
    pub headers: Headers,
    /// The body (empty for most commands).
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Self {
        Frame { command, headers: Headers::new(), body: Bytes::new() }
    }

    /// Appends a header (builder style).
    #[must_use]
    pub fn header(mut self, name: impl Into<ByteStr>, value: impl Into<ByteStr>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the body (builder style).
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The `receipt` header, if the sender asked for one.
    pub fn receipt(&self) -> Option<&str> {
        self.headers.get(names::RECEIPT)
    }

    /// The `destination` header.
    pub fn destination(&self) -> Option<&str> {
        self.headers.get(names::DESTINATION)
    }

    /// The body as text, when it is UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// An `ERROR` frame with `message` set, `receipt-id` when the failing frame asked for a
    /// receipt, and the detail as a `text/plain` body.
    pub fn error(message: impl Into<String>, receipt_id: Option<&str>, detail: &str) -> Frame {
        let mut frame = Frame::new(Command::Error).header(names::MESSAGE, message.into());
        if let Some(id) = receipt_id {
            frame.headers.push(names::RECEIPT_ID, id.to_owned());
        }
        if !detail.is_empty() {
            frame.headers.push(names::CONTENT_TYPE, "text/plain");
            frame.body = Bytes::copy_from_slice(detail.as_bytes());
        }
        frame
    }

    /// A `RECEIPT` frame answering `receipt_id`.
    pub fn receipt_for(receipt_id: impl Into<ByteStr>) -> Frame {
        Frame::new(Command::Receipt).header(names::RECEIPT_ID, receipt_id)
    }
}
