//! `Handler`: the static descriptor an annotated function becomes, and how a server collects
//! them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::context::MessageContext;
use super::error::{Failure, HandlerError};
use super::reply::Message;

/// What a handler's generated wrapper returns: the reply to send (if any) or why it failed.
#[doc(hidden)]
pub type Outcome = Result<Option<Message>, Failure>;

/// The boxed future of a handler call.
#[doc(hidden)]
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// The generated wrapper of a handler: extracts the arguments, calls the function, converts
/// its return value.
pub(crate) type CallFn = fn(Arc<MessageContext>) -> HandlerFuture;

/// Which attribute made the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandlerKind {
    /// `#[message_mapping]`: called for SENDs to matching application destinations.
    Message,
    /// `#[subscribe_mapping]`: called once for each SUBSCRIBE to a matching application
    /// destination; the reply goes to that subscriber only.
    Subscribe,
    /// `#[message_exception_handler]`: turns another handler's error into a reply.
    Exception,
}

impl HandlerKind {
    /// The attribute that makes a handler of this kind (`message_mapping`...).
    pub fn attribute(self) -> &'static str {
        match self {
            HandlerKind::Message => "message_mapping",
            HandlerKind::Subscribe => "subscribe_mapping",
            HandlerKind::Exception => "message_exception_handler",
        }
    }
}

impl fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.attribute())
    }
}

/// An annotated function, as the server sees it: its name, the destinations it is mapped to,
/// where its replies go, and the generated code that calls it.
///
/// You never build one by hand: `#[message_mapping]`, `#[subscribe_mapping]` and
/// `#[message_exception_handler]` make a `static` one for each function and register it, so
/// [`Server::builder`](crate::Server::builder) finds it. Name handlers with
/// [`handlers!`](crate::handlers) to register them explicitly (for a server with its own
/// handler set, see [`ServerBuilder::discover_handlers`](crate::ServerBuilder::discover_handlers)).
pub struct Handler {
    pub(crate) name: &'static str,
    pub(crate) kind: HandlerKind,
    pub(crate) patterns: &'static [&'static str],
    pub(crate) send_to: &'static [&'static str],
    /// `#[send_to_user]`: user destinations of the calling user (or session).
    pub(crate) send_to_user: &'static [&'static str],
    /// `#[send_to_user(.., broadcast = false)]` makes this false: the calling session only.
    pub(crate) broadcast: bool,
    /// `#[requires_role]`: the roles, one of which the caller's principal must have.
    pub(crate) roles: &'static [&'static str],
    pub(crate) catches: Option<fn(&HandlerError) -> bool>,
    pub(crate) call: CallFn,
    /// The type name of a `State<T>` argument whose `T` the given state lacks, if any.
    pub(crate) missing_state: fn(&http::Extensions) -> Option<&'static str>,
}

impl Handler {
    /// Used by the attribute macros; not a stable API.
    #[doc(hidden)]
    #[allow(private_interfaces, clippy::too_many_arguments)]
    pub const fn __new(
        name: &'static str,
        kind: HandlerKind,
        patterns: &'static [&'static str],
        replies: Replies,
        roles: &'static [&'static str],
        catches: Option<fn(&HandlerError) -> bool>,
        call: CallFn,
        missing_state: fn(&http::Extensions) -> Option<&'static str>,
    ) -> Self {
        let Replies { send_to, send_to_user, broadcast } = replies;
        Handler {
            name,
            kind,
            patterns,
            send_to,
            send_to_user,
            broadcast,
            roles,
            catches,
            call,
            missing_state,
        }
    }

    /// The function's path (`my_app::chat::send`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Which attribute made it.
    pub fn kind(&self) -> HandlerKind {
        self.kind
    }

    /// The destination patterns it is mapped to (empty for exception handlers).
    pub fn patterns(&self) -> &'static [&'static str] {
        self.patterns
    }

    /// The `send_to` destinations of its replies (empty: the default destination).
    pub fn send_to(&self) -> &'static [&'static str] {
        self.send_to
    }

    /// The `send_to_user` destinations of its replies.
    pub fn send_to_user(&self) -> &'static [&'static str] {
        self.send_to_user
    }

    /// The roles of `#[requires_role]` (empty: anyone the access rules let through).
    pub fn required_roles(&self) -> &'static [&'static str] {
        self.roles
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("patterns", &self.patterns)
            .field("send_to", &self.send_to)
            .field("send_to_user", &self.send_to_user)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Where a handler's replies go, as the attributes say. Not a stable API.
#[doc(hidden)]
pub struct Replies {
    /// `#[send_to]`.
    pub send_to: &'static [&'static str],
    /// `#[send_to_user]`.
    pub send_to_user: &'static [&'static str],
    /// `#[send_to_user]`'s `broadcast` (true without one).
    pub broadcast: bool,
}

/// The registration an attribute submits through `inventory`.
#[doc(hidden)]
pub struct Registration(pub &'static Handler);

inventory::collect!(Registration);

/// Every handler the attribute macros registered in this program.
pub(crate) fn discovered() -> impl Iterator<Item = &'static Handler> {
    inventory::iter::<Registration>.into_iter().map(|r| r.0)
}

/// Implemented by the marker type an attribute generates beside each handler function, so
/// [`handlers!`](crate::handlers) can name the handler by the function's path.
#[doc(hidden)]
pub trait HandlerMarker {
    /// The handler.
    const HANDLER: &'static Handler;
}

/// Names annotated functions as a list of [`Handler`]s, for
/// [`ServerBuilder::handlers`](crate::ServerBuilder::handlers).
///
/// ```rust,standalone_crate
/// use stompede::{Server, handlers, message_mapping};
///
/// #[message_mapping("/ping")]
/// fn ping() -> &'static str { "pong" }
///
/// let server = Server::builder()
///     .discover_handlers(false)
///     .handlers(handlers![ping])
///     .build()
///     .unwrap();
/// # drop(server);
/// ```
#[macro_export]
macro_rules! handlers {
    ($($handler:path),* $(,)?) => {
        [$(<$handler as $crate::__private::HandlerMarker>::HANDLER),*]
    };
}
