//! Application handlers: the functions `#[message_mapping]`, `#[subscribe_mapping]` and
//! `#[message_exception_handler]` register, how frames reach them, and how their return
//! values become messages.
//!
//! A SEND to an application destination (`/app/...`) is matched, with the application prefix
//! removed, against the mapping patterns (see the [guide](https://docs.rs/stompede) and
//! `docs/handlers.md`); the handler's arguments are [extracted](FromMessage) from the
//! message, and its return value [becomes a message](IntoReply) sent to its `send_to`
//! destinations, or by default to the first broker prefix plus the destination it was sent
//! to (`/app/hello` → `/topic/hello`, Spring's rule). Calls of one session run one at a time,
//! in the order the client sent the frames.
//!
//! ```rust,standalone_crate
//! use serde::{Deserialize, Serialize};
//! use stompede::{message_mapping, send_to};
//!
//! #[derive(Deserialize)]
//! struct ChatMessage { text: String }
//!
//! #[derive(Serialize)]
//! struct Posted { room: String, text: String }
//!
//! #[message_mapping("/chat/{room}")]
//! #[send_to("/topic/chat/{room}")]
//! async fn post(#[destination_variable] room: String, message: ChatMessage) -> Posted {
//!     Posted { room, text: message.text }
//! }
//! ```

mod context;
mod error;
mod handler;
mod reply;
mod router;
#[doc(hidden)]
pub mod support;
mod worker;

pub use context::{Destination, FromMessage, MessageContext, SessionId, State};
pub use error::{BoxError, DispatchError, ExtractError, HandlerError};
pub use handler::{Handler, HandlerKind};
pub use reply::{IntoReply, Message};

pub(crate) use handler::discovered;
pub(crate) use router::{Matched, Router};
pub(crate) use worker::{Fatal, Job, SessionDispatch, dispatch_send};
