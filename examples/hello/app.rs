//! The hello app of the guide stompede follows (a Spring Boot guide to WebSocket and STOMP):
//! a page sends a name, as plain text, to `/app/hello`; the handler answers
//! `Hello, <name>!` (`text/plain`) on `/topic/greetings`, which every connected page
//! subscribes to and shows as it is.
//!
//! This file is the whole server side; `main.rs` only reads the address and runs it. The
//! browser tests include this same file, so what they test is what the example runs: the
//! example's own page, and the guide's page served unchanged.

use stompede::{Endpoint, Server, ServerBuilder, SockJsOptions, message_mapping, send_to};

/// `/app/hello` → `/topic/greetings`: the guide's controller,
/// `public String greeting(String message) { return "Hello, " + message + "!"; }`.
///
/// A `String` argument takes the body as text and a `String` reply is sent as
/// `text/plain;charset=UTF-8`, so the guide's page (`stompClient.send("/app/hello", {}, name)`,
/// then `greeting.body`) shows the greeting verbatim.
#[message_mapping("/hello")]
#[send_to("/topic/greetings")]
pub(crate) async fn greeting(message: String) -> String {
    format!("Hello, {message}!")
}

/// The page (the guide's, with the first-party client `/stompede.js` instead of a CDN).
pub(crate) const PAGE: &str = include_str!("index.html");

/// The server of the app, configured as in the guide's `WebSocketConfig` (the prefixes are
/// stompede's defaults, spelled out to show where they are set), with SockJS on the endpoint
/// as the guide has it, serving the page at `/`. The guide's page uses stompjs 2.3.3, which
/// splits frames on NUL whatever `content-length` says, so bodies with a NUL are refused.
pub(crate) fn builder() -> ServerBuilder {
    builder_with(SockJsOptions::default())
}

/// [`builder`] with these SockJS options.
pub(crate) fn builder_with(sockjs: SockJsOptions) -> ServerBuilder {
    configured(sockjs).static_page("/", PAGE)
}

/// The app's configuration without its page (for serving another page at `/`, such as the
/// guide's own).
#[allow(dead_code)] // not every includer of this file serves another page
pub(crate) fn configured(sockjs: SockJsOptions) -> ServerBuilder {
    Server::builder()
        .enable_simple_broker(["/topic", "/queue"])
        .application_destination_prefixes(["/app"])
        .endpoint(Endpoint::new("/ws").sockjs(sockjs))
        .reject_nul_in_bodies(true)
}
