//! Generating a handler: the function as written, a wrapper that extracts its arguments and
//! converts its return value, a static `Handler` registered through `inventory`, and a marker
//! type of the function's name for `stompede::handlers![...]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{self, Arg, Attr, Handler, Shape, Source};
use crate::parse;

/// Expands the attribute `first` (invoked with `args`) on `item`.
pub(crate) fn handler(first: Attr, args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::handler(first, args, item) {
        Ok(handler) => generate(&handler),
        Err(failed) => {
            let errors = failed.error.to_compile_error();
            let item = failed.item;
            let uses = mark_used(&failed.consumed);
            quote!(#errors #item #uses)
        }
    }
}

fn generate(handler: &Handler) -> TokenStream {
    let function = &handler.function;
    let name = model::name(handler);
    let vis = &function.vis;
    let private = quote!(::stompede::__private);
    let cx = format_ident!("__stompede_context");

    let bindings: Vec<_> =
        (0..handler.args.len()).map(|i| format_ident!("__stompede_arg{i}")).collect();
    let extractions = handler.args.iter().zip(&bindings).map(|(arg, binding)| {
        let value = extraction(arg, &cx, &private);
        quote! {
            let #binding = match #value {
                ::std::result::Result::Ok(value) => value,
                ::std::result::Result::Err(failure) => return ::std::result::Result::Err(failure),
            };
        }
    });
    let call = match function.sig.asyncness {
        Some(_) => quote_spanned!(name.span()=> #name(#(#bindings),*).await),
        None => quote_spanned!(name.span()=> #name(#(#bindings),*)),
    };
    let reply = conversion(&handler.output, quote!(__stompede_returned), &private, 0);

    let kind = match handler.kind {
        Attr::SubscribeMapping => quote!(Subscribe),
        Attr::ExceptionHandler => quote!(Exception),
        _ => quote!(Message),
    };
    let patterns = &handler.patterns;
    let send_to = &handler.send_to;
    let send_to_user = &handler.send_to_user;
    let broadcast = handler.broadcast;
    let roles = &handler.roles;
    let (catches_fn, catches) = if handler.catches.is_empty() {
        (quote!(), quote!(::std::option::Option::None))
    } else {
        let tests = handler.catches.iter().map(|ty| quote_spanned!(ty.span()=> error.is::<#ty>()));
        (
            quote! {
                fn __stompede_catches(error: &#private::HandlerError) -> bool {
                    #(#tests)||*
                }
            },
            quote!(::std::option::Option::Some(__stompede_catches)),
        )
    };
    let doc = format!(
        "The `#[{}]` handler `{name}`, as a type: name it in `stompede::handlers![...]`.",
        handler.kind.name()
    );

    let uses = mark_used(&handler.consumed);
    // Each argument taken by extraction may be a `State<T>`: checked at `build()`.
    let state_checks =
        handler.args.iter().filter(|arg| matches!(arg.source, Source::Extract)).map(|arg| {
            let ty = &arg.ty;
            quote! {
                if let ::std::option::Option::Some(missing) =
                    (&&#private::Requires::<#ty>::new()).missing(state)
                {
                    return ::std::option::Option::Some(missing);
                }
            }
        });

    quote! {
        #function

        #uses

        #[doc = #doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}

        #[allow(non_snake_case, clippy::all)]
        const _: () = {
            fn __stompede_call(
                #cx: ::std::sync::Arc<#private::Context>,
            ) -> #private::HandlerFuture {
                #private::boxed(async move {
                    #[allow(unused_imports)]
                    use #private::{
                        ViaDeserialize as _, ViaFromMessage as _, ViaIntoReply as _,
                        ViaSerialize as _,
                    };
                    #(#extractions)*
                    let __stompede_returned = #call;
                    #reply
                })
            }
            #catches_fn
            fn __stompede_missing_state(
                state: &#private::Extensions,
            ) -> ::std::option::Option<&'static str> {
                #[allow(unused_imports)]
                use #private::{ViaNoState as _, ViaState as _};
                #(#state_checks)*
                ::std::option::Option::None
            }
            static __STOMPEDE_HANDLER: #private::Handler = #private::Handler::__new(
                ::std::concat!(::std::module_path!(), "::", ::std::stringify!(#name)),
                #private::HandlerKind::#kind,
                &[#(#patterns),*],
                #private::Replies {
                    send_to: &[#(#send_to),*],
                    send_to_user: &[#(#send_to_user),*],
                    broadcast: #broadcast,
                },
                &[#(#roles),*],
                #catches,
                __stompede_call,
                __stompede_missing_state,
            );
            #private::inventory::submit! {
                #private::Registration(&__STOMPEDE_HANDLER)
            }
            impl #private::HandlerMarker for #name {
                const HANDLER: &'static #private::Handler = &__STOMPEDE_HANDLER;
            }
        };
    }
}

/// The attributes one consumed never expand themselves: naming them makes their imports
/// count as used (and a missing import still an error).
fn mark_used(consumed: &[syn::Path]) -> TokenStream {
    quote! {
        #(
            #[allow(unused_imports)]
            use #consumed as _;
        )*
    }
}

/// The expression that takes one argument from the context: a `Result<T, Failure>`.
fn extraction(arg: &Arg, cx: &syn::Ident, private: &TokenStream) -> TokenStream {
    let ty = &arg.ty;
    let span = ty.span();
    match &arg.source {
        Source::Extract => quote_spanned! {span=>
            (&&#private::Extract::<#ty>::new()).extract(&#cx)
        },
        Source::Variable(name) => quote_spanned! {span=>
            #private::destination_variable::<#ty>(&#cx, #name)
        },
        Source::Header { name, optional: true } => quote_spanned! {span=>
            #private::optional_header(&#cx, #name)
        },
        Source::Header { name, optional: false } => quote_spanned! {span=>
            #private::header::<#ty>(&#cx, #name)
        },
    }
}

/// The expression that turns `value` (of the shape `shape`) into the wrapper's `Outcome`.
fn conversion(
    shape: &Shape,
    value: TokenStream,
    private: &TokenStream,
    depth: usize,
) -> TokenStream {
    let inner = format_ident!("__stompede_inner{depth}");
    match shape {
        Shape::Unit => quote! {{
            let () = #value;
            ::std::result::Result::Ok(::std::option::Option::None)
        }},
        Shape::Value(ty) => quote_spanned! {ty.span()=>
            (&&#private::Reply::new(#value)).take_message()
        },
        Shape::Option(shape) => {
            let some = conversion(shape, quote!(#inner), private, depth + 1);
            quote! {
                match #value {
                    ::std::option::Option::Some(#inner) => #some,
                    ::std::option::Option::None => {
                        ::std::result::Result::Ok(::std::option::Option::None)
                    }
                }
            }
        }
        Shape::Result(shape, span) => {
            let ok = conversion(shape, quote!(#inner), private, depth + 1);
            let failed = quote_spanned!(*span=> #private::failed(error));
            quote! {
                match #value {
                    ::std::result::Result::Ok(#inner) => #ok,
                    ::std::result::Result::Err(error) => ::std::result::Result::Err(#failed),
                }
            }
        }
    }
}
