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
    Handler, HandlerFuture, HandlerKind, HandlerMarker, Outcome, Registration,
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

/// Arguments that implement `Deserialize`: the payload as JSON.
pub trait ViaDeserialize<T> {
    /// Extracts the argument.
    fn extract(&self, context: &MessageContext) -> Result<T, Failure>;
}

impl<T: DeserializeOwned> ViaDeserialize<T> for Extract<T> {
    fn extract(&self, context: &MessageContext) -> Result<T, Failure> {
        context::json_payload(context).map_err(Failure::Extract)
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

/// Return values that implement `Serialize`: JSON.
pub trait ViaSerialize {
    /// Converts the return value.
    fn take_message(&self) -> Outcome;
}

impl<T: Serialize> ViaSerialize for Reply<T> {
    fn take_message(&self) -> Outcome {
        match self.0.take() {
            Some(value) => Message::json(&value).map(Some).map_err(|e| Failure::Reply(e.into())),
            None => Ok(None),
        }
    }
}

/// The error of a handler that returned `Err`.
pub fn failed<E: Into<BoxError>>(error: E) -> Failure {
    Failure::Handler(error.into())
}
