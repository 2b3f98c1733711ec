//! Errors of handler calls: an argument that cannot be extracted, a handler that returned
//! `Err` or panicked, a reply that cannot be encoded.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed error, as handlers return them.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a handler argument could not be taken from the message (a payload that is not valid
/// JSON, a destination variable that is not a number, a missing header…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractError {
    message: String,
}

impl ExtractError {
    /// An error with this message; say what was wrong and what the client should send.
    pub fn new(message: impl Into<String>) -> Self {
        ExtractError { message: message.into() }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ExtractError {}

/// How a handler call failed, before the dispatcher names the handler.
#[doc(hidden)]
#[derive(Debug)]
pub enum Failure {
    /// An argument could not be extracted.
    Extract(ExtractError),
    /// The handler returned `Err`.
    Handler(BoxError),
    /// The return value could not be made into a message.
    Reply(BoxError),
}

impl From<ExtractError> for Failure {
    fn from(e: ExtractError) -> Self {
        Failure::Extract(e)
    }
}

/// A failed handler call: which handler, for which destination, and why. Exception handlers
/// take it as an argument; without one, it is logged.
#[derive(Clone, Debug)]
pub struct HandlerError {
    pub(crate) handler: &'static str,
    pub(crate) destination: String,
    pub(crate) kind: HandlerErrorKind,
}

#[derive(Clone, Debug)]
pub(crate) enum HandlerErrorKind {
    Extract(ExtractError),
    Returned(Arc<dyn StdError + Send + Sync + 'static>),
    Reply(Arc<dyn StdError + Send + Sync + 'static>),
    Panicked(String),
}

impl HandlerError {
    pub(crate) fn new(handler: &'static str, destination: &str, failure: Failure) -> Self {
        let kind = match failure {
            Failure::Extract(e) => HandlerErrorKind::Extract(e),
            Failure::Handler(e) => HandlerErrorKind::Returned(Arc::from(e)),
            Failure::Reply(e) => HandlerErrorKind::Reply(Arc::from(e)),
        };
        HandlerError { handler, destination: destination.to_owned(), kind }
    }

    pub(crate) fn panicked(handler: &'static str, destination: &str, message: String) -> Self {
        HandlerError {
            handler,
            destination: destination.to_owned(),
            kind: HandlerErrorKind::Panicked(message),
        }
    }

    /// The handler function's path.
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// The destination of the message being handled.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Whether an argument (the payload, usually) could not be taken from the message: the
    /// client's fault, not the handler's.
    pub fn is_extraction(&self) -> bool {
        matches!(self.kind, HandlerErrorKind::Extract(_))
    }

    /// Whether the handler panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, HandlerErrorKind::Panicked(_))
    }

    /// The error the handler returned, if it returned one.
    pub fn returned(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match &self.kind {
            HandlerErrorKind::Returned(e) => Some(&**e),
            _ => None,
        }
    }

    /// The error the handler returned, if it is a `T`.
    ///
    /// ```
    /// # fn f(error: stompede::dispatch::HandlerError) {
    /// if let Some(e) = error.downcast_ref::<std::num::ParseIntError>() {
    ///     println!("not a number: {e}");
    /// }
    /// # }
    /// ```
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        let error: &(dyn StdError + 'static) = self.returned()?;
        error.downcast_ref::<T>()
    }

    /// Whether the handler returned an error of type `T`.
    pub fn is<T: StdError + 'static>(&self) -> bool {
        self.downcast_ref::<T>().is_some()
    }

    /// Why the call failed, without the handler's name.
    pub fn reason(&self) -> String {
        match &self.kind {
            HandlerErrorKind::Extract(e) => e.to_string(),
            HandlerErrorKind::Returned(e) => e.to_string(),
            HandlerErrorKind::Reply(e) => format!("its return value could not be sent: {e}"),
            HandlerErrorKind::Panicked(m) => format!("it panicked: {m}"),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            HandlerErrorKind::Extract(e) => write!(
                f,
                "handler {} cannot take the message sent to {}: {e}",
                self.handler, self.destination
            ),
            _ => write!(
                f,
                "handler {} failed on the message sent to {}: {}",
                self.handler,
                self.destination,
                self.reason()
            ),
        }
    }
}

impl StdError for HandlerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            HandlerErrorKind::Extract(e) => Some(e),
            HandlerErrorKind::Returned(e) | HandlerErrorKind::Reply(e) => Some(&**e),
            HandlerErrorKind::Panicked(_) => None,
        }
    }
}

/// Why [`Server::dispatch`](crate::Server::dispatch) did not run a handler, or what the handler
/// call ended with that a session would have answered with an `ERROR` frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchError {
    kind: DispatchErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DispatchErrorKind {
    NoDestination,
    NotApplication { destination: String },
    NoHandler { destination: String },
    Refused { destination: String, message: String },
}

impl DispatchError {
    pub(crate) fn new(kind: DispatchErrorKind) -> Self {
        DispatchError { kind }
    }

    /// Whether a handler ran and its call ended as a session would end with an `ERROR` (an
    /// argument that could not be extracted, with no exception handler to turn it into a
    /// reply); otherwise no handler was found for the frame.
    pub fn is_refused(&self) -> bool {
        matches!(self.kind, DispatchErrorKind::Refused { .. })
    }

    /// The frame's destination, when it had one.
    pub fn destination(&self) -> Option<&str> {
        match &self.kind {
            DispatchErrorKind::NotApplication { destination }
            | DispatchErrorKind::NoHandler { destination }
            | DispatchErrorKind::Refused { destination, .. } => Some(destination),
            DispatchErrorKind::NoDestination => None,
        }
    }
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DispatchErrorKind::NoDestination => f.write_str("the frame has no destination header"),
            DispatchErrorKind::NotApplication { destination } => {
                write!(f, "{destination} is not an application destination")
            }
            DispatchErrorKind::NoHandler { destination } => {
                write!(f, "no #[message_mapping] matches {destination}")
            }
            DispatchErrorKind::Refused { message, .. } => f.write_str(message),
        }
    }
}

impl StdError for DispatchError {}
