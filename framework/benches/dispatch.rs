//! Dispatch of a SEND to an annotated handler: route lookup among 41 mappings, argument
//! extraction, the call, reply encoding and the publish to one subscriber, through
//! `Server::dispatch` (what a session does for each SEND to `/app/...`, minus the socket).
//! The bare broker publish of the same reply is measured beside it, so the difference is
//! the dispatch layer's cost.
//!
//! `cargo bench -p stompede --bench dispatch`; figures: docs/benchmarks.md.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use stompede::stomp::{Command, Frame, Headers};
use stompede::{Server, message_mapping, send_to};

#[message_mapping("/hello")]
#[send_to("/topic/greetings")]
async fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

#[derive(Deserialize)]
struct ChatMessage {
    user: String,
    text: String,
}

#[derive(Serialize)]
struct Posted {
    room: String,
    user: String,
    text: String,
}

#[message_mapping("/chat/{room}/post")]
#[send_to("/topic/chat/{room}")]
async fn post(#[destination_variable] room: String, message: ChatMessage) -> Posted {
    Posted { room, user: message.user, text: message.text }
}

/// Other mappings, so the lookup is not a table of two.
macro_rules! fillers {
    ($($name:ident $pattern:literal)*) => {$(
        #[message_mapping($pattern)]
        fn $name() {}
    )*};
}

fillers! {
    f0 "/a/{x}/b" f1 "/a/{x}/c" f2 "/orders/{id}" f3 "/orders/{id}/cancel" f4 "/files/**"
    f5 "/docs/{*path}" f6 "/users/{id}/profile" f7 "/users/{id}/avatar" f8 "/games/{g}/move"
    f9 "/games/{g}/chat" f10 "/chat/{room}/typing" f11 "/chat/{room}/read" f12 "/x/*.json"
    f13 "/tickers/{symbol}" f14 "/alerts/{level}" f15 "/metrics/*" f16 "/jobs/{id}/retry"
    f17 "/jobs/{id}/cancel" f18 "/boards/{b}/cards/{c}" f19 "/boards/{b}/lists/{l}"
    l0 "/ping" l1 "/status" l2 "/version" l3 "/time" l4 "/echo" l5 "/noop" l6 "/join"
    l7 "/leave" l8 "/typing" l9 "/presence" l10 "/snapshot" l11 "/config" l12 "/reset"
    l13 "/login" l14 "/logout" l15 "/subscribe" l16 "/unsubscribe" l17 "/heartbeat"
    l18 "/debug"
}

fn send(destination: &str, body: &'static str) -> Frame {
    Frame::new(Command::Send).header("destination", destination.to_owned()).body(body)
}

fn dispatch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let server = Server::builder().build().expect("handlers map");
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    let _greetings = server
        .listen("/topic/**", move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .expect("broker destination");

    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(1));

    let hello = send("/app/hello", "Ada");
    group.bench_function("text_literal_mapping", |b| {
        b.iter(|| runtime.block_on(server.dispatch(black_box(hello.clone()))).expect("handled"))
    });

    let chat = send("/app/chat/rust/post", r#"{"user":"ada","text":"hello, world"}"#);
    group.bench_function("json_with_placeholder", |b| {
        b.iter(|| runtime.block_on(server.dispatch(black_box(chat.clone()))).expect("handled"))
    });

    // The broker publish alone, for the difference.
    let template = server.template();
    let body = Bytes::from_static(b"Hello, Ada!");
    let headers = Headers::new();
    group.bench_function("bare_publish_baseline", |b| {
        b.iter(|| template.send("/topic/greetings", headers.clone(), body.clone()).expect("sent"))
    });
    group.finish();
    assert!(delivered.load(Ordering::Relaxed) > 0, "replies reached the subscriber");
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
