//! What the attributes on one function describe, once parsed and checked.

use proc_macro2::Span;
use syn::{Ident, ItemFn, LitStr, Path, Type};

/// One of the handler attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    MessageMapping,
    SubscribeMapping,
    ExceptionHandler,
    SendTo,
    SendToUser,
    RequiresRole,
}

impl Attr {
    pub(crate) const ALL: [Attr; 6] = [
        Attr::MessageMapping,
        Attr::SubscribeMapping,
        Attr::ExceptionHandler,
        Attr::SendTo,
        Attr::SendToUser,
        Attr::RequiresRole,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Attr::MessageMapping => "message_mapping",
            Attr::SubscribeMapping => "subscribe_mapping",
            Attr::ExceptionHandler => "message_exception_handler",
            Attr::SendTo => "send_to",
            Attr::SendToUser => "send_to_user",
            Attr::RequiresRole => "requires_role",
        }
    }

    /// The attribute named by the last segment of `path`, if it is one of ours.
    pub(crate) fn from_path(path: &Path) -> Option<Attr> {
        let last = path.segments.last()?;
        Attr::ALL.into_iter().find(|a| last.ident == a.name())
    }

    /// Whether the attribute makes the function a handler (rather than adding to one).
    pub(crate) fn is_kind(self) -> bool {
        matches!(self, Attr::MessageMapping | Attr::SubscribeMapping | Attr::ExceptionHandler)
    }
}

/// One attribute found on the function, with its arguments still unparsed.
pub(crate) struct Found {
    pub(crate) attr: Attr,
    /// The attribute's path (where errors about the attribute as a whole point).
    pub(crate) span: Span,
    /// The attribute's path as written, for the attributes found on the function (not the
    /// invoking one).
    pub(crate) path: Option<Path>,
    pub(crate) args: proc_macro2::TokenStream,
}

/// A checked handler, ready to generate.
pub(crate) struct Handler {
    pub(crate) kind: Attr,
    pub(crate) patterns: Vec<LitStr>,
    pub(crate) send_to: Vec<LitStr>,
    /// `#[send_to_user]` destinations.
    pub(crate) send_to_user: Vec<LitStr>,
    /// `#[send_to_user(.., broadcast = false)]` makes this false.
    pub(crate) broadcast: bool,
    /// `#[requires_role]` roles.
    pub(crate) roles: Vec<LitStr>,
    /// For an exception handler: the error types it handles (empty: all).
    pub(crate) catches: Vec<Path>,
    /// The function, with the handler and parameter attributes removed.
    pub(crate) function: ItemFn,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Shape,
    /// The paths of the attributes this one consumed: the generated code names them, so
    /// that their `use` imports count as used.
    pub(crate) consumed: Vec<Path>,
}

/// A parameter of the handler function and where its value comes from.
pub(crate) struct Arg {
    pub(crate) ty: Type,
    pub(crate) source: Source,
}

pub(crate) enum Source {
    /// An extractor (`FromMessage`), or the payload as JSON (`Deserialize`).
    Extract,
    /// `#[destination_variable]`.
    Variable(String),
    /// `#[header("name")]`; `optional` when the parameter is an `Option`.
    Header { name: String, optional: bool },
}

/// How a return value becomes a reply, read from the return type as written.
pub(crate) enum Shape {
    /// `()` or no return type: nothing is sent.
    Unit,
    /// `Option<T>`: `None` sends nothing.
    Option(Box<Shape>),
    /// `Result<T, E>`: `Err` goes to the exception handler.
    Result(Box<Shape>, Span),
    /// Anything else: `IntoReply`, or `Serialize` as JSON.
    Value(Box<Type>),
}

/// The function's name, for messages and generated items.
pub(crate) fn name(handler: &Handler) -> &Ident {
    &handler.function.sig.ident
}
