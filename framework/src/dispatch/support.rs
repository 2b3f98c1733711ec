//! What the attribute macros' generated code calls, reached as `::stompede::__private`. Not a
//! stable API: use the attributes.
//!
//! Arguments and return values go through "autoref specialization": `(&&Extract::<T>::new())
//! .extract(cx)` resolves to the [`FromMessage`] impl when `T` has one and to the JSON payload
//! otherwise; likewise [`IntoReply`] before serde's `Serialize` for return values.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{self, FromMessage, MessageContext};
use super::error::{BoxError, ExtractError, Failure};
use super::reply::{IntoReply, Message};

pub use super::context::MessageContext as Context;
pub use super::error::HandlerError;
pub use super::handler::{
    Handler, HandlerFuture, HandlerKind, HandlerMarker, Outcome, Registration, Replies,
};
pub use inventory;

/// Boxes a handler call.
pub fn boxed(future: impl Future<Output = Outcome> + Send + 'static) -> HandlerFuture {
    Box::pin(future)
}

/// The argument extractor probe (see the module docs).
pub struct Extract<T>(PhantomData<fn() -> T>);

impl<T> Extract<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Extract(PhantomData)
    }
}

/// Arguments that implement [`FromMessage`] (preferred).
pub trait ViaFromMessage<T> {
    /// Extracts the argument.
    fn extract(&self, context: &MessageContext) -> Result<T, Failure>;
}

impl<T: FromMessage> ViaFromMessage<T> for &Extract<T> {
    fn extract(&self, context: &MessageContext) -> Result<T, Failure> {
        T::from_message(context).map_err(Failure::Extract)
    }
}

/// The fallback of argument extraction: the payload as JSON. Its impl applies to every type so
/// that a type which is neither [`FromMessage`] nor `Deserialize` fails on the
/// [`PayloadArgument`] bound of `extract`, whose message names both traits at the argument's
/// span (an impl-level bound would give rustc's raw "method exists but its trait bounds were
/// not satisfied" instead).
pub trait ViaDeserialize<T> {
    /// Extracts the argument.
    fn extract(&self, context: &MessageContext) -> Result<T, Failure>
    where
        T: PayloadArgument;
}

impl<T> ViaDeserialize<T> for Extract<T> {
    fn extract(&self, context: &MessageContext) -> Result<T, Failure>
    where
        T: PayloadArgument,
    {
        T::from_payload(context).map_err(Failure::Extract)
    }
}

/// An argument taken from the payload as JSON: every `Deserialize` type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    label = "neither `FromMessage` nor `Deserialize`",
    note = "an argument's type implements `stompede::dispatch::FromMessage` (String, Vec<u8>, Bytes, Headers, Frame, SessionId, Destination, MessagingTemplate, State<T>, Principal, Option<Principal>, HandlerError, or your own) or serde's `Deserialize` (the payload as JSON)",
    note = "a destination placeholder or a header takes `#[destination_variable]` or `#[header(\"name\")]` and any `FromStr` type"
)]
pub trait PayloadArgument: Sized {
    /// The argument, from the payload as JSON.
    fn from_payload(context: &MessageContext) -> Result<Self, ExtractError>;
}

impl<T: DeserializeOwned> PayloadArgument for T {
    fn from_payload(context: &MessageContext) -> Result<Self, ExtractError> {
        context::json_payload(context)
    }
}

/// A `#[destination_variable]` argument.
pub fn destination_variable<T>(context: &MessageContext, name: &str) -> Result<T, Failure>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    context::destination_variable(context, name).map_err(Failure::Extract)
}

/// A required `#[header("name")]` argument.
pub fn header<T>(context: &MessageContext, name: &str) -> Result<T, Failure>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    context::header(context, name)?.ok_or_else(|| {
        Failure::Extract(ExtractError::new(format!(
            "the {name} header is required (take it as an Option to make it optional)"
        )))
    })
}

/// An optional `#[header("name")]` argument.
pub fn optional_header<T>(context: &MessageContext, name: &str) -> Result<Option<T>, Failure>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    context::header(context, name).map_err(Failure::Extract)
}

/// The return value probe.
pub struct Reply<T>(Cell<Option<T>>);

impl<T> Reply<T> {
    /// Wraps a return value.
    pub fn new(value: T) -> Self {
        Reply(Cell::new(Some(value)))
    }
}

/// Return values that implement [`IntoReply`] (preferred).
pub trait ViaIntoReply {
    /// Converts the return value.
    fn take_message(&self) -> Outcome;
}

impl<T: IntoReply> ViaIntoReply for &Reply<T> {
    fn take_message(&self) -> Outcome {
        match self.0.take() {
            Some(value) => value.into_reply().map_err(Failure::Reply),
            None => Ok(None),
        }
    }
}

/// The fallback of reply conversion: JSON. Like [`ViaDeserialize`], its impl applies to every
/// type and the [`JsonReply`] bound on the method carries the message.
pub trait ViaSerialize<T> {
    /// Converts the return value.
    fn take_message(&self) -> Outcome
    where
        T: JsonReply;
}

impl<T> ViaSerialize<T> for Reply<T> {
    fn take_message(&self) -> Outcome
    where
        T: JsonReply,
    {
        match self.0.take() {
            Some(value) => value.into_json().map(Some).map_err(Failure::Reply),
            None => Ok(None),
        }
    }
}

/// A return value sent as JSON: every `Serialize` type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a handler",
    label = "neither `IntoReply` nor `Serialize`",
    note = "a handler returns a type that implements `stompede::dispatch::IntoReply` ((), String, &'static str, Vec<u8>, Bytes, Message) or serde's `Serialize` (sent as JSON), or an Option or Result of one"
)]
pub trait JsonReply {
    /// The value as an `application/json` message.
    fn into_json(self) -> Result<Message, BoxError>;
}

impl<T: Serialize> JsonReply for T {
    fn into_json(self) -> Result<Message, BoxError> {
        Message::json(&self).map_err(Into::into)
    }
}

/// An error a handler may return in `Err`: anything that converts into a boxed error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler's error",
    label = "not an error type",
    note = "a handler's `Err` holds a type that implements `std::error::Error + Send + Sync + 'static`, or a `String`, `&'static str`, `Box<dyn Error + Send + Sync>` or `anyhow::Error`"
)]
pub trait HandlerErrorType {
    /// The error, boxed.
    fn boxed(self) -> BoxError;
}

impl<E: Into<BoxError>> HandlerErrorType for E {
    fn boxed(self) -> BoxError {
        self.into()
    }
}

/// The state probe: finds the `State<T>` arguments whose `T` was not registered.
pub struct Requires<T>(PhantomData<fn() -> T>);

impl<T> Requires<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Requires(PhantomData)
    }
}

/// A `State<T>` argument: needs a `T` among the application's state.
pub trait ViaState {
    /// The type name of `T` when `state` has none.
    fn missing(&self, state: &http::Extensions) -> Option<&'static str>;
}

impl<T: Clone + Send + Sync + 'static> ViaState for &Requires<super::State<T>> {
    fn missing(&self, state: &http::Extensions) -> Option<&'static str> {
        state.get::<T>().is_none().then(std::any::type_name::<T>)
    }
}

/// Any other argument: needs no state.
pub trait ViaNoState {
    /// Always `None`.
    fn missing(&self, state: &http::Extensions) -> Option<&'static str>;
}

impl<T> ViaNoState for Requires<T> {
    fn missing(&self, _: &http::Extensions) -> Option<&'static str> {
        None
    }
}

pub use http::Extensions;

/// The error of a handler that returned `Err`.
pub fn failed<E: HandlerErrorType>(error: E) -> Failure {
    Failure::Handler(error.boxed())
}
