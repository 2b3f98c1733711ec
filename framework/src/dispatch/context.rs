//! `MessageContext`, the message a handler is called with, and the extractors that take
//! handler arguments from it.

use std::any::type_name;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;

use super::error::{ExtractError, HandlerError};
use super::router::Matched;
use crate::MessagingTemplate;
use crate::runtime::Runtime;
use crate::security::Principal;
use crate::stomp::{ByteStr, Frame, Headers, names};

/// Everything a handler call can draw its arguments from: the inbound frame, the session it
/// came from, the destination variables, the server's application state, and, in an
/// exception handler, the error being handled.
///
/// Implement [`FromMessage`] to take your own argument types from it.
#[derive(Clone)]
pub struct MessageContext {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) session_id: ByteStr,
    pub(crate) principal: Option<Principal>,
    pub(crate) frame: Arc<Frame>,
    pub(crate) destination: ByteStr,
    pub(crate) lookup: Box<str>,
    pub(crate) variables: Vec<(Box<str>, String)>,
    pub(crate) handler: &'static str,
    pub(crate) error: Option<HandlerError>,
}

impl MessageContext {
    /// The context of a call to the handler `matched` found for `frame`, sent to
    /// `destination` by `session_id`.
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        session_id: ByteStr,
        principal: Option<Principal>,
        frame: Frame,
        destination: ByteStr,
        matched: Matched,
    ) -> Self {
        MessageContext {
            runtime,
            session_id,
            principal,
            frame: Arc::new(frame),
            destination,
            lookup: matched.lookup,
            variables: matched.variables,
            handler: matched.handler.name(),
            error: None,
        }
    }

    /// The destination as the client sent it (`/app/chat/42`).
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The destination with the application prefix removed (`/chat/42`): what mapping
    /// patterns match.
    pub fn lookup_destination(&self) -> &str {
        &self.lookup
    }

    /// The frame's headers.
    pub fn headers(&self) -> &Headers {
        &self.frame.headers
    }

    /// The frame's body.
    pub fn body(&self) -> &Bytes {
        &self.frame.body
    }

    /// The `content-type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.frame.get(names::CONTENT_TYPE)
    }

    /// The id of the session the frame came from.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The value a `{name}` placeholder of the mapping captured.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.iter().find(|(n, _)| &**n == name).map(|(_, v)| v.as_str())
    }

    /// The function the frame is dispatched to (`my_app::greeting`).
    pub fn handler_name(&self) -> &'static str {
        self.handler
    }

    /// Application state of type `T` registered with
    /// [`ServerBuilder::state`](crate::ServerBuilder::state).
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.runtime.state.get::<T>().cloned()
    }

    /// A template for sending to broker destinations.
    pub fn template(&self) -> MessagingTemplate {
        self.runtime.template.clone()
    }

    /// In an exception handler, the error being handled.
    pub fn error(&self) -> Option<&HandlerError> {
        self.error.as_ref()
    }
}

/// A handler argument type: built from the [`MessageContext`] of each call (axum's
/// `FromRequestParts`).
///
/// Implemented for the payload as [`String`] (UTF-8), [`Vec<u8>`] and [`Bytes`];
/// [`Headers`], [`Frame`], [`SessionId`], [`Destination`], [`MessagingTemplate`],
/// [`State<T>`], [`Principal`] (a session without one gets an ERROR frame),
/// `Option<`[`Principal`]`>` and [`HandlerError`] (in exception handlers).
/// Any other argument type that implements serde's `Deserialize` is the payload decoded as
/// JSON. Destination variables and single headers are taken with the parameter attributes
/// `#[destination_variable]` and `#[header("name")]`.
///
/// ```
/// use stompede::dispatch::{ExtractError, FromMessage, MessageContext};
///
/// /// The `x-tenant` header, required.
/// struct Tenant(String);
///
/// impl FromMessage for Tenant {
///     fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
///         context.headers().get("x-tenant").map(|t| Tenant(t.to_owned()))
///             .ok_or_else(|| ExtractError::new("the x-tenant header is required"))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "not an extractor",
    note = "handler arguments implement `stompede::dispatch::FromMessage`, or serde's `Deserialize` to take the payload as JSON"
)]
pub trait FromMessage: Sized {
    /// Takes the argument from the message, or says why it cannot.
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError>;
}

impl FromMessage for String {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        String::from_utf8(context.body().to_vec()).map_err(|e| {
            ExtractError::new(format!(
                "the payload is not UTF-8 text ({e}); take it as Vec<u8> or Bytes for binary data"
            ))
        })
    }
}

impl FromMessage for Vec<u8> {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(context.body().to_vec())
    }
}

impl FromMessage for Bytes {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(context.body().clone())
    }
}

impl FromMessage for Headers {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(context.headers().clone())
    }
}

impl FromMessage for Frame {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok((*context.frame).clone())
    }
}

impl FromMessage for MessagingTemplate {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(context.template())
    }
}

impl FromMessage for Principal {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        context.principal.clone().ok_or_else(|| {
            ExtractError::new(format!(
                "{} needs an authenticated user, and this session has none (sign in before connecting)",
                context.destination
            ))
        })
    }
}

impl FromMessage for Option<Principal> {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(context.principal.clone())
    }
}

impl FromMessage for HandlerError {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        context.error.clone().ok_or_else(|| {
            ExtractError::new(
                "a HandlerError argument exists only in a #[message_exception_handler]",
            )
        })
    }
}

/// The id of the session a message came from (Spring's `simpSessionId`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub String);

impl FromMessage for SessionId {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(SessionId(context.session_id().to_owned()))
    }
}

/// The destination a message was sent to, as the client wrote it (`/app/chat/42`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Destination(pub String);

impl FromMessage for Destination {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        Ok(Destination(context.destination().to_owned()))
    }
}

/// Application state registered with [`ServerBuilder::state`](crate::ServerBuilder::state):
/// a database pool, a cache, configuration. Cloned for each call, so wrap large or mutable
/// state in an `Arc`.
///
/// ```rust,standalone_crate
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use stompede::{Server, State, message_mapping};
///
/// #[derive(Clone, Default)]
/// struct Counter(Arc<AtomicU64>);
///
/// #[message_mapping("/count")]
/// fn count(State(counter): State<Counter>) -> String {
///     (counter.0.fetch_add(1, Ordering::Relaxed) + 1).to_string()
/// }
///
/// let server = Server::builder().state(Counter::default()).build().unwrap();
/// # drop(server);
/// ```
#[derive(Clone, Debug)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromMessage for State<T> {
    fn from_message(context: &MessageContext) -> Result<Self, ExtractError> {
        context.state::<T>().map(State).ok_or_else(|| {
            ExtractError::new(format!(
                "no application state of type {} is registered (add it with ServerBuilder::state)",
                type_name::<T>()
            ))
        })
    }
}

/// `#[destination_variable]` arguments: the captured text parsed with `FromStr`.
pub(crate) fn destination_variable<T>(
    context: &MessageContext,
    name: &str,
) -> Result<T, ExtractError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = context.variable(name).ok_or_else(|| {
        ExtractError::new(format!("the mapping of this handler has no variable {{{name}}}"))
    })?;
    text.parse().map_err(|e| {
        ExtractError::new(format!(
            "destination variable {name} = {text:?} is not a valid {}: {e}",
            type_name::<T>()
        ))
    })
}

/// `#[header("name")]` arguments: the header's value parsed with `FromStr`; `None` when
/// absent for an `Option`.
pub(crate) fn header<T>(context: &MessageContext, name: &str) -> Result<Option<T>, ExtractError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let Some(text) = context.headers().get(name) else { return Ok(None) };
    text.parse().map(Some).map_err(|e| {
        ExtractError::new(format!(
            "header {name} = {text:?} is not a valid {}: {e}",
            type_name::<T>()
        ))
    })
}

/// Payloads of `Deserialize` types: JSON when the content type says so or says nothing.
pub(crate) fn json_payload<T: serde::de::DeserializeOwned>(
    context: &MessageContext,
) -> Result<T, ExtractError> {
    match context.content_type() {
        Some(ct) if !is_json(ct) => Err(ExtractError::new(format!(
            "a payload of content-type {ct:?} cannot be decoded into {} (send application/json, or take the payload as String or Bytes)",
            type_name::<T>()
        ))),
        _ => serde_json::from_slice(context.body()).map_err(|e| {
            ExtractError::new(format!(
                "the payload is not valid JSON for {}: {e}",
                type_name::<T>()
            ))
        }),
    }
}

/// `application/json`, `application/vnd.x+json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.len() > 5
            && essence.is_char_boundary(essence.len() - 5)
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json")
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_content_types() {
        assert!(super::is_json("application/json"));
        assert!(super::is_json("Application/JSON; charset=utf-8"));
        assert!(super::is_json("application/vnd.chat+json"));
        assert!(!super::is_json("text/plain"));
        assert!(!super::is_json("json"));
    }
}
