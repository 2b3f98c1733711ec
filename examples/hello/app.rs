//! The hello app of Spring's guide "Using WebSocket to build an interactive web application",
//! in stompede: the page sends `{"name": ...}` to `/app/hello`; the handler answers
//! `{"content": "Hello, <name>!"}` on `/topic/greetings`, which every connected page
//! subscribes to.
//!
//! This file is the whole server side; `main.rs` only reads the address and runs it. The
//! browser tests include this same file, so what they test is what the example runs.

use serde::{Deserialize, Serialize};
use stompede::{Endpoint, Server, ServerBuilder, SockJsOptions, message_mapping, send_to};

/// What the page sends to `/app/hello`.
#[derive(Debug, Deserialize)]
pub(crate) struct HelloMessage {
    name: String,
}

/// What `/topic/greetings` receives.
#[derive(Debug, Serialize)]
pub(crate) struct Greeting {
    content: String,
}

/// `/app/hello` → `/topic/greetings`.
#[message_mapping("/hello")]
#[send_to("/topic/greetings")]
pub(crate) async fn greeting(message: HelloMessage) -> Greeting {
    Greeting { content: format!("Hello, {}!", message.name) }
}

/// The page (the guide's, with the first-party client `/stompede.js` instead of a CDN).
pub(crate) const PAGE: &str = include_str!("index.html");

/// The server of the app, configured as in the guide's `WebSocketConfig` (the prefixes are
/// stompede's defaults, spelled out to show where they are set), with SockJS on the endpoint
/// as the guide has it, serving the page at `/`.
pub(crate) fn builder() -> ServerBuilder {
    builder_with(SockJsOptions::default())
}

/// [`builder`] with these SockJS options.
pub(crate) fn builder_with(sockjs: SockJsOptions) -> ServerBuilder {
    Server::builder()
        .enable_simple_broker(["/topic", "/queue"])
        .application_destination_prefixes(["/app"])
        .endpoint(Endpoint::new("/ws").sockjs(sockjs))
        .static_page("/", PAGE)
}
