//! Reading and checking the attributes on one function. Every problem found is collected, so
//! one build reports them all.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, Expr, ExprLit, FnArg, GenericArgument, Item, ItemFn, Lit, LitStr, Meta, Pat,
    Path, PathArguments, ReturnType, Token, Type,
};

use crate::destination::{DestinationPattern, template_placeholders};
use crate::model::{Arg, Attr, Found, Handler, Shape, Source};

/// Errors gathered while checking, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(Error::new(span, message));
    }

    /// An error covering all of `tokens` (on stable Rust, `Span::join` is not available, so
    /// `at(tokens.span())` would point at the first token only).
    fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(Error::new_spanned(tokens, message));
    }

    pub(crate) fn into_error(self) -> Option<Error> {
        self.0
    }
}

/// Why no handler could be generated, and the item to emit beside the errors (so that the
/// rest of the program still finds the function).
pub(crate) struct Failed {
    pub(crate) error: Error,
    pub(crate) item: TokenStream,
    /// The handler attributes consumed from the function (see [`Handler::consumed`]).
    pub(crate) consumed: Vec<Path>,
}

/// Parses the function `item` under the attribute `first` (invoked with `args`), with the
/// other handler attributes it carries.
pub(crate) fn handler(
    first: Attr,
    args: TokenStream,
    item: TokenStream,
) -> Result<Handler, Failed> {
    let mut function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            let (span, what) = describe(&other);
            let error = Error::new(
                span,
                format!(
                    "#[{}] goes on a function (`fn` or `async fn`), not on {what}",
                    first.name()
                ),
            );
            return Err(Failed { error, item, consumed: Vec::new() });
        }
        Err(e) => return Err(Failed { error: e, item, consumed: Vec::new() }),
    };
    let mut errors = Errors::default();
    let found = collect_attributes(first, args, &mut function, &mut errors);
    let kind = check_combination(&found, &mut errors);

    let mut patterns = Vec::new();
    let mut send_to = Vec::new();
    let mut send_to_user = Vec::new();
    let mut broadcast = true;
    let mut roles = Vec::new();
    let mut catches = Vec::new();
    for f in &found {
        match f.attr {
            Attr::MessageMapping | Attr::SubscribeMapping => {
                patterns = destinations(f, &mut errors);
            }
            Attr::SendTo => send_to = destinations(f, &mut errors),
            Attr::SendToUser => {
                let (list, flag) = user_destinations(f, &mut errors);
                send_to_user = list;
                broadcast = flag;
            }
            Attr::RequiresRole => roles = role_names(f, &mut errors),
            Attr::ExceptionHandler => catches = error_types(f, &mut errors),
        }
    }
    let variables: Vec<(&LitStr, Vec<String>)> =
        patterns.iter().map(|p| (p, mapping_variables(p, &mut errors))).collect();
    for destination in send_to.iter().chain(&send_to_user) {
        for name in template_variables(destination, &mut errors) {
            if kind == Some(Attr::ExceptionHandler) {
                errors.at(
                    destination.span(),
                    format!(
                        "an exception handler serves every mapping, so its #[send_to] cannot use the placeholder {{{name}}}"
                    ),
                );
                continue;
            }
            for (pattern, defined) in &variables {
                if !defined.contains(&name) {
                    errors.at(
                        destination.span(),
                        format!(
                            "placeholder {{{name}}} is not defined by the mapping {:?}; send_to can only use the mapping's placeholders",
                            pattern.value()
                        ),
                    );
                }
            }
        }
    }

    check_signature(&function, &mut errors);
    let args = arguments(&mut function, kind, &variables, &mut errors);
    let output = match &function.sig.output {
        ReturnType::Default => Shape::Unit,
        ReturnType::Type(_, ty) => shape(ty),
    };

    // A method cannot have `use` items beside it: leave its imports unmarked.
    let consumed = match function.sig.receiver() {
        None => found.into_iter().filter_map(|f| f.path).collect(),
        Some(_) => Vec::new(),
    };
    match (errors.into_error(), kind) {
        (None, Some(kind)) => Ok(Handler {
            kind,
            patterns,
            send_to,
            send_to_user,
            broadcast,
            roles,
            catches,
            function,
            args,
            output,
            consumed,
        }),
        (error, _) => Err(Failed {
            error: error.unwrap_or_else(|| Error::new(Span::call_site(), "not a handler")),
            item: quote::quote!(#function),
            consumed,
        }),
    }
}

/// Where to point at a non-function item, and what to call it.
fn describe(item: &Item) -> (Span, &'static str) {
    match item {
        Item::Struct(i) => (i.ident.span(), "a struct"),
        Item::Enum(i) => (i.ident.span(), "an enum"),
        Item::Union(i) => (i.ident.span(), "a union"),
        Item::Const(i) => (i.ident.span(), "a constant"),
        Item::Static(i) => (i.ident.span(), "a static"),
        Item::Mod(i) => (i.ident.span(), "a module"),
        Item::Trait(i) => (i.ident.span(), "a trait"),
        Item::Type(i) => (i.ident.span(), "a type alias"),
        Item::Impl(i) => (i.impl_token.span, "an impl block"),
        Item::Use(i) => (i.use_token.span, "a use declaration"),
        other => (other.span(), "this item"),
    }
}

/// The invoking attribute and the other handler attributes on the function, which are
/// removed from it.
fn collect_attributes(
    first: Attr,
    args: TokenStream,
    function: &mut ItemFn,
    errors: &mut Errors,
) -> Vec<Found> {
    let mut found = vec![Found { attr: first, span: Span::call_site(), path: None, args }];
    function.attrs.retain(|attribute| {
        let Some(attr) = Attr::from_path(attribute.path()) else { return true };
        let args = match &attribute.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(nv) => {
                errors.at(
                    nv.eq_token.span,
                    format!("write #[{}(...)], with parentheses", attr.name()),
                );
                TokenStream::new()
            }
        };
        let path = attribute.path().clone();
        found.push(Found { attr, span: path.span(), path: Some(path), args });
        false
    });
    found
}

/// The kind of handler the attributes make, reporting attributes that do not go together.
fn check_combination(found: &[Found], errors: &mut Errors) -> Option<Attr> {
    let mut kind: Option<Attr> = None;
    for f in found.iter().filter(|f| f.attr.is_kind()) {
        match kind {
            None => kind = Some(f.attr),
            Some(k) if k == f.attr => errors.at(
                f.span,
                format!(
                    "a function takes one #[{0}]; list several destinations in it: #[{0}(\"/a\", \"/b\")]",
                    k.name()
                ),
            ),
            Some(k) if f.attr == Attr::ExceptionHandler || k == Attr::ExceptionHandler => {
                errors.at(
                    f.span,
                    format!(
                        "#[{}] cannot be combined with #[{}]: an exception handler handles other handlers' errors, not messages (make two functions)",
                        f.attr.name(),
                        k.name()
                    ),
                )
            }
            Some(k) => errors.at(
                f.span,
                format!(
                    "#[{}] cannot be combined with #[{}]: a handler answers either SEND or SUBSCRIBE frames (make two functions)",
                    f.attr.name(),
                    k.name()
                ),
            ),
        }
    }
    let mut send_to_seen = false;
    let mut send_to_user_seen = false;
    let mut roles_seen = false;
    for f in found.iter().filter(|f| f.attr == Attr::RequiresRole) {
        if roles_seen {
            errors.at(
                f.span,
                "a function takes one #[requires_role]; list the roles in it (any one of them is enough): #[requires_role(\"admin\", \"moderator\")]",
            );
        }
        roles_seen = true;
        match kind {
            None => errors.at(
                f.span,
                "#[requires_role] needs #[message_mapping] or #[subscribe_mapping] on the same function: it guards that handler",
            ),
            Some(Attr::ExceptionHandler) => errors.at(
                f.span,
                "#[requires_role] cannot guard a #[message_exception_handler]: it runs for errors of handlers the caller was already allowed to call",
            ),
            _ => {}
        }
    }
    let has = |attr: Attr| found.iter().any(|f| f.attr == attr);
    if has(Attr::SendTo) && has(Attr::SendToUser) {
        if let Some(f) = found.iter().find(|f| f.attr == Attr::SendToUser) {
            errors.at(
                f.span,
                "#[send_to_user] cannot be combined with #[send_to]: a reply goes either to broker destinations or to the caller's user destinations (publish the other with a MessagingTemplate argument)",
            );
        }
    }
    for f in found.iter().filter(|f| f.attr == Attr::SendToUser) {
        if send_to_user_seen {
            errors.at(
                f.span,
                "a function takes one #[send_to_user]; list several destinations in it: #[send_to_user(\"/queue/a\", \"/queue/b\")]",
            );
        }
        send_to_user_seen = true;
        if kind == Some(Attr::SubscribeMapping) {
            errors.at(
                f.span,
                "#[send_to_user] cannot be combined with #[subscribe_mapping]: a subscribe mapping's reply already goes to the subscribing session only",
            );
        }
    }
    for f in found.iter().filter(|f| matches!(f.attr, Attr::SendTo | Attr::SendToUser)) {
        if kind.is_none() {
            errors.at(
                f.span,
                format!(
                    "#[{}] needs #[message_mapping], #[subscribe_mapping] or #[message_exception_handler] on the same function: it says where that handler's replies go",
                    f.attr.name()
                ),
            );
        }
        if f.attr == Attr::SendTo {
            if send_to_seen {
                errors.at(
                    f.span,
                    "a function takes one #[send_to]; list several destinations in it: #[send_to(\"/topic/a\", \"/topic/b\")]",
                );
            }
            send_to_seen = true;
        }
    }
    kind
}

/// The destination strings of a mapping or `send_to` attribute, each checked.
fn destinations(found: &Found, errors: &mut Errors) -> Vec<LitStr> {
    let example = match found.attr {
        Attr::SendTo => "\"/topic/greetings\"",
        Attr::SendToUser => "\"/queue/reply\"",
        _ => "\"/hello\"",
    };
    let list = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(found.args.clone()) {
        Ok(list) => list,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    if list.is_empty() {
        errors.at(
            found.span,
            format!("#[{0}] needs a destination: #[{0}({example})]", found.attr.name()),
        );
    }
    let mut out = Vec::new();
    for mut expr in list {
        // A literal passed through a `macro_rules!` fragment arrives in an invisible group.
        while let Expr::Group(group) = expr {
            expr = *group.expr;
        }
        let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = expr else {
            errors.at(
                expr.span(),
                format!("expected a destination as a string literal, like {example}"),
            );
            continue;
        };
        let value = lit.value();
        if !value.starts_with('/') {
            let why = match found.attr {
                Attr::SendTo | Attr::SendToUser => {
                    format!("a destination starts with '/', like {example}")
                }
                _ => format!(
                    "a mapping starts with '/' and leaves out the application prefix: {example} maps \"/app/hello\""
                ),
            };
            errors.at(lit.span(), format!("destination {value:?} does not start with '/': {why}"));
        }
        out.push(lit);
    }
    out
}

/// The destinations of `#[send_to_user]` and its `broadcast` flag (true when absent).
fn user_destinations(found: &Found, errors: &mut Errors) -> (Vec<LitStr>, bool) {
    let list = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(found.args.clone()) {
        Ok(list) => list,
        Err(e) => {
            errors.push(e);
            return (Vec::new(), true);
        }
    };
    let mut broadcast = None;
    let mut rest = Punctuated::<Expr, Token![,]>::new();
    for expr in list {
        let Expr::Assign(assign) = &expr else {
            rest.push(expr);
            continue;
        };
        let is_broadcast = matches!(&*assign.left, Expr::Path(p) if p.path.is_ident("broadcast"));
        if !is_broadcast {
            errors.spanned(
                &assign.left,
                "#[send_to_user] takes destinations and `broadcast = true` or `broadcast = false`",
            );
            continue;
        }
        match &*assign.right {
            Expr::Lit(ExprLit { lit: Lit::Bool(flag), .. }) => {
                if broadcast.is_some() {
                    errors.spanned(&assign.left, "`broadcast` is given twice");
                }
                broadcast = Some(flag.value);
            }
            other => errors.spanned(
                other,
                "`broadcast` is `true` (every session of the user, the default) or `false` (the calling session only)",
            ),
        }
    }
    let found =
        Found { attr: found.attr, span: found.span, path: None, args: quote::quote!(#rest) };
    (destinations(&found, errors), broadcast.unwrap_or(true))
}

/// The roles of `#[requires_role]`: string literals, at least one.
fn role_names(found: &Found, errors: &mut Errors) -> Vec<LitStr> {
    let list = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(found.args.clone()) {
        Ok(list) => list,
        Err(e) => {
            errors.push(e);
            return Vec::new();
        }
    };
    if list.is_empty() {
        errors.at(found.span, "#[requires_role] needs a role: #[requires_role(\"admin\")]");
    }
    let mut roles = Vec::new();
    for expr in list {
        match expr {
            Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) if !lit.value().is_empty() => {
                roles.push(lit)
            }
            Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => {
                errors.at(lit.span(), "a role cannot be empty")
            }
            other => errors.spanned(
                other,
                "expected a role as a string literal, like #[requires_role(\"admin\")]",
            ),
        }
    }
    roles
}

/// The variables a mapping pattern captures, or nothing after reporting why it is not a
/// pattern: parsed by the runtime's own grammar (`framework/src/destination.rs`), so the
/// attribute accepts exactly what the server does.
fn mapping_variables(pattern: &LitStr, errors: &mut Errors) -> Vec<String> {
    let value = pattern.value();
    if !value.starts_with('/') {
        return Vec::new(); // reported with its own advice by `destinations`
    }
    match DestinationPattern::parse(&value) {
        Ok(parsed) => parsed.variables().map(str::to_owned).collect(),
        Err(e) => {
            errors.at(pattern.span(), e.to_string());
            Vec::new()
        }
    }
}

/// The placeholders of a reply template, or nothing after reporting why it is not one (the
/// runtime's grammar again).
fn template_variables(template: &LitStr, errors: &mut Errors) -> Vec<String> {
    match template_placeholders(&template.value()) {
        Ok(names) => names.into_iter().map(str::to_owned).collect(),
        Err(e) => {
            errors.at(template.span(), e.to_string());
            Vec::new()
        }
    }
}

/// The error types an exception handler lists.
fn error_types(found: &Found, errors: &mut Errors) -> Vec<Path> {
    match Punctuated::<Path, Token![,]>::parse_terminated.parse2(found.args.clone()) {
        Ok(list) => list.into_iter().collect(),
        Err(e) => {
            errors.push(Error::new(
                e.span(),
                "expected the error types this handler handles, like #[message_exception_handler(std::num::ParseIntError)], or nothing to handle every error",
            ));
            Vec::new()
        }
    }
}

/// What a handler function cannot be.
fn check_signature(function: &ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    if let Some(receiver) = sig.receiver() {
        errors.spanned(
            receiver,
            "a handler is a free function: no `self` exists when a message arrives; move it out of the impl block and share data with ServerBuilder::state",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "a handler cannot be generic: the server calls it with concrete types (write one handler per type)",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic.span(), "a handler cannot be variadic");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety.span, "a handler cannot be an `unsafe fn`: the server calls it with no way to uphold its contract");
    }
}

/// The parameters and where their values come from; parameter attributes are removed.
fn arguments(
    function: &mut ItemFn,
    kind: Option<Attr>,
    variables: &[(&LitStr, Vec<String>)],
    errors: &mut Errors,
) -> Vec<Arg> {
    let mut args = Vec::new();
    for input in &mut function.sig.inputs {
        let FnArg::Typed(param) = input else { continue };
        let mut source = Source::Extract;
        let mut sourced: Option<Span> = None;
        let attrs = std::mem::take(&mut param.attrs);
        for attribute in attrs {
            let is = |name: &str| attribute.path().is_ident(name);
            let new = if is("destination_variable") {
                destination_variable(&attribute, &param.pat, kind, variables, errors)
            } else if is("header") {
                header(&attribute, &param.pat, &param.ty, errors)
            } else {
                param.attrs.push(attribute);
                continue;
            };
            if sourced.is_some() {
                errors.at(
                    attribute.path().span(),
                    "an argument takes one of #[destination_variable] and #[header]",
                );
            }
            sourced = Some(attribute.path().span());
            if let Some(new) = new {
                source = new;
            }
        }
        // A parameter named like a placeholder almost always means the placeholder: taking the
        // payload instead would be a silent surprise (`fn post(room: String, m: M)`).
        if let (Source::Extract, Pat::Ident(ident), false) =
            (&source, &*param.pat, is_known_extractor(&param.ty))
        {
            let name = ident.ident.to_string();
            if let Some((pattern, _)) =
                variables.iter().find(|(_, defined)| defined.contains(&name))
            {
                errors.at(
                    ident.ident.span(),
                    format!(
                        "the parameter `{name}` is named like the placeholder {{{name}}} of {:?} but would take the payload; mark it #[destination_variable] to take the placeholder, or rename it to take the payload",
                        pattern.value()
                    ),
                );
            }
        }
        match &*param.ty {
            Type::ImplTrait(ty) => errors.spanned(
                ty,
                "a handler argument needs a concrete type, not `impl Trait`",
            ),
            Type::Reference(ty) => errors.spanned(
                ty,
                "a handler argument cannot borrow from the message: take an owned type (String instead of &str, Vec<u8> instead of &[u8])",
            ),
            _ => {}
        }
        args.push(Arg { ty: (*param.ty).clone(), source });
    }
    args
}

fn destination_variable(
    attribute: &Attribute,
    pat: &Pat,
    kind: Option<Attr>,
    variables: &[(&LitStr, Vec<String>)],
    errors: &mut Errors,
) -> Option<Source> {
    let span = attribute.path().span();
    let name = parameter_name(attribute, pat, "room", errors, |ident| ident)?;
    if kind == Some(Attr::ExceptionHandler) {
        errors.at(
            span,
            "an exception handler serves every mapping, so it has no destination variables",
        );
        return None;
    }
    for (pattern, defined) in variables {
        if !defined.contains(&name) {
            errors.at(
                span,
                format!("the mapping {:?} defines no placeholder {{{name}}}", pattern.value()),
            );
        }
    }
    Some(Source::Variable(name))
}

fn header(attribute: &Attribute, pat: &Pat, ty: &Type, errors: &mut Errors) -> Option<Source> {
    let name =
        parameter_name(attribute, pat, "x-request-id", errors, |ident| ident.replace('_', "-"))?;
    Some(Source::Header { name, optional: generic_of(ty, "Option").is_some() })
}

/// The name a parameter attribute gives (`#[header("x-id")]`), or else the one it takes from
/// the parameter (`#[header] x_id: String`, through `from_ident`).
fn parameter_name(
    attribute: &Attribute,
    pat: &Pat,
    example: &str,
    errors: &mut Errors,
    from_ident: impl FnOnce(String) -> String,
) -> Option<String> {
    let span = attribute.path().span();
    let attr = attribute.path().get_ident().map(ToString::to_string).unwrap_or_default();
    match (&attribute.meta, pat) {
        (Meta::Path(_), Pat::Ident(ident)) => Some(from_ident(ident.ident.to_string())),
        (Meta::Path(_), _) => {
            errors.at(span, format!("name it: #[{attr}(\"{example}\")]"));
            None
        }
        _ => match attribute.parse_args::<LitStr>() {
            Ok(lit) => Some(lit.value()),
            Err(_) => {
                errors.at(span, format!("expected #[{attr}] or #[{attr}(\"{example}\")]"));
                None
            }
        },
    }
}

/// The first type argument of `ty` when its last path segment is `wrapper` (`Option<T>`).
fn generic_of<'a>(ty: &'a Type, wrapper: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != wrapper {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Where an error about a `Result`'s error type points: at `E` in `Result<T, E>`, or at the
/// whole type for an alias such as `anyhow::Result<T>`.
fn error_span(ty: &Type) -> proc_macro2::Span {
    let Type::Path(path) = ty else { return ty.span() };
    let Some(PathArguments::AngleBracketed(args)) = path.path.segments.last().map(|s| &s.arguments)
    else {
        return ty.span();
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    types.nth(1).map_or_else(|| ty.span(), Spanned::span)
}

/// Whether `ty` is one of stompede's extractors that take something other than the payload
/// (`State<T>`, `Option<Principal>`...): a parameter of such a type named like a placeholder is
/// not a mistake. Matched by name, the only thing a macro can see.
fn is_known_extractor(ty: &Type) -> bool {
    const KNOWN: [&str; 8] = [
        "State",
        "Principal",
        "Headers",
        "Frame",
        "SessionId",
        "Destination",
        "MessagingTemplate",
        "HandlerError",
    ];
    let ty = generic_of(ty, "Option").unwrap_or(ty);
    let Type::Path(path) = ty else { return false };
    path.path.segments.last().is_some_and(|s| KNOWN.iter().any(|k| s.ident == k))
}

/// How the return type is turned into a reply.
fn shape(ty: &Type) -> Shape {
    match ty {
        Type::Paren(inner) => shape(&inner.elem),
        Type::Tuple(tuple) if tuple.elems.is_empty() => Shape::Unit,
        _ => {
            if let Some(inner) = generic_of(ty, "Option") {
                Shape::Option(Box::new(shape(inner)))
            } else if let Some(inner) = generic_of(ty, "Result") {
                Shape::Result(Box::new(shape(inner)), error_span(ty))
            } else {
                Shape::Value(Box::new(ty.clone()))
            }
        }
    }
}
