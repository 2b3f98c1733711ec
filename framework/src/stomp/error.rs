//! Errors a peer can cause while we decode its bytes.

use super::Command;

/// A frame could not be decoded. The stream is unusable afterwards: send an `ERROR` frame with
/// [`to_string()`](ToString::to_string) as its `message` header (and
/// [`receipt`](DecodeError::receipt) as `receipt-id` when present), then close.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    command: Option<Command>,
    receipt: Option<String>,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind) -> Self {
        DecodeError { kind, command: None, receipt: None }
    }

    pub(crate) fn in_frame(mut self, command: Command, receipt: Option<&str>) -> Self {
        self.command = Some(command);
        self.receipt = receipt.map(str::to_owned);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The command of the failing frame, when its command line had been read.
    pub fn command(&self) -> Option<Command> {
        self.command
    }

    /// The failing frame's `receipt` header, when its headers had been read: the `receipt-id`
    /// of the `ERROR` frame, so the client can tell which frame failed.
    pub fn receipt(&self) -> Option<&str> {
        self.receipt.as_deref()
    }
}

/// The kinds of [`DecodeError`]. Each message is short enough for an `ERROR` frame's
/// `message` header and says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The command line names no STOMP command.
    #[error(
        "unknown command {0:?}: expected CONNECT, STOMP, SEND, SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT or DISCONNECT"
    )]
    UnknownCommand(String),
    /// A header line has no `:`.
    #[error("malformed header line {0:?}: expected name:value")]
    MalformedHeader(String),
    /// A header line starts with `:`.
    #[error("header line {0:?} has an empty name")]
    EmptyHeaderName(String),
    /// A header uses an escape sequence the version does not define.
    #[error(
        "invalid escape sequence {sequence:?} in header {header:?}: STOMP 1.1 and 1.2 define only \\n, \\c, \\\\ (and \\r in 1.2)"
    )]
    InvalidEscape {
        /// The header name (as far as it could be read).
        header: String,
        /// The sequence, such as `\t`.
        sequence: String,
    },
    /// A NUL byte in the command line or a header line: a NUL may only end a frame (or sit
    /// in a body sized by `content-length`).
    #[error(
        "NUL byte in the command or header line {0:?}: a NUL may only end a frame or sit in a body with content-length"
    )]
    NulInHead(String),
    /// The command or headers are not UTF-8.
    #[error("frame command and headers must be UTF-8")]
    InvalidUtf8,
    /// `content-length` is not a decimal number.
    #[error("content-length {0:?} is not a non-negative decimal number")]
    InvalidContentLength(String),
    /// The byte after a `content-length`-sized body is not NUL.
    #[error("frame body of content-length {0} is not followed by a NUL byte")]
    MissingNul(usize),
    /// The frame is larger than `max_frame_size`.
    #[error(
        "frame exceeds the {limit}-byte limit (raise it with the server's message_size_limit, or Limits::max_frame_size)"
    )]
    FrameTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The body is larger than `max_body_size`.
    #[error(
        "frame body exceeds the {limit}-byte limit (raise it with the server's message_size_limit, or Limits::max_body_size)"
    )]
    BodyTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// More header entries than `max_header_count`.
    #[error("frame has more than {limit} headers (set max_header_count to raise it)")]
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// A command or header line longer than `max_header_line`.
    #[error(
        "a command or header line exceeds the {limit}-byte limit (set max_header_line to raise it)"
    )]
    HeaderLineTooLong {
        /// The limit in force.
        limit: usize,
    },
}
