//! Procedural macros for [stompede](https://docs.rs/stompede): the handler attributes.
//!
//! Do not depend on this crate directly: `stompede` re-exports every attribute, and the code
//! they generate names `::stompede`. The attributes are documented (with examples) where
//! `stompede` re-exports them.
//!
//! How the attributes cooperate: Rust runs the attribute written first, which finds the
//! others on the same function (`#[send_to]` under `#[message_mapping]`, or the reverse),
//! removes them, checks the whole set and generates one handler. Every misuse it can see is a
//! compile error pointing at the attribute, destination or argument at fault.

/// The destination grammar, the runtime's own file (serde_derive's internals as the model):
/// the attributes check patterns and templates with the code the server runs.
#[path = "../../framework/src/destination.rs"]
#[allow(dead_code)]
mod destination;
mod expand;
mod model;
mod parse;

use proc_macro::TokenStream;

use crate::model::Attr;

/// Maps a function to SEND frames whose destination (application prefix removed) matches
/// one of the patterns.
#[proc_macro_attribute]
pub fn message_mapping(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(Attr::MessageMapping, args.into(), item.into()).into()
}

/// Maps a function to SUBSCRIBE frames whose destination (application prefix removed) matches
/// one of the patterns; its return value goes to that subscriber only.
#[proc_macro_attribute]
pub fn subscribe_mapping(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(Attr::SubscribeMapping, args.into(), item.into()).into()
}

/// Turns the errors of other handlers (all, or those of the listed types) into a reply.
#[proc_macro_attribute]
pub fn message_exception_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(Attr::ExceptionHandler, args.into(), item.into()).into()
}

/// Where a handler's return value is sent (one or more broker destinations).
#[proc_macro_attribute]
pub fn send_to(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(Attr::SendTo, args.into(), item.into()).into()
}

/// Where a handler's return value is sent among the calling user's user destinations.
#[proc_macro_attribute]
pub fn send_to_user(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(Attr::SendToUser, args.into(), item.into()).into()
}

/// The roles, one of which the caller's principal must have for the handler to be called.
#[proc_macro_attribute]
pub fn requires_role(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(Attr::RequiresRole, args.into(), item.into()).into()
}
