//! Annotated handlers reached over real WebSockets: mappings, placeholders, extractors,
//! return values, errors and ordering.
//!
//! Every handler in this file is discovered by every server this file starts (that is what
//! discovery does). Handler sets that cannot coexist (duplicate mappings, a catch-all
//! exception handler) are in `handler_sets.rs`.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use stompede::client::{Client, ClientOptions, Subscription};
use stompede::dispatch::{Destination, HandlerError, SessionId};
use stompede::stomp::{Command, Frame, Headers};
use stompede::{
    HandshakeRejection, Message, MessagingTemplate, Principal, Server, State,
    message_exception_handler, message_mapping, send_to, subscribe_mapping,
};
use stompede_tests::{RawPeer, WAIT, start, ws_url};
use tokio::sync::Semaphore;

#[derive(Deserialize)]
struct HelloMessage {
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Greeting {
    content: String,
}

#[message_mapping("/hello")]
#[send_to("/topic/greetings")]
async fn greeting(message: HelloMessage) -> Greeting {
    Greeting { content: format!("Hello, {}!", message.name) }
}

#[send_to("/topic/chat/{room}", "/topic/chat-all")]
#[message_mapping("/chat/{room}")]
fn chat(#[destination_variable] room: String, text: String) -> String {
    format!("[{room}] {text}")
}

#[message_mapping("/count/{n}")]
#[send_to("/topic/count")]
fn double(#[destination_variable("n")] number: u32) -> String {
    (number * 2).to_string()
}

/// No `send_to`: replies go to `/topic/echo`.
#[message_mapping("/echo", "/echo-too")]
fn echo(body: Vec<u8>) -> Vec<u8> {
    body
}

#[message_mapping("/files/{*path}")]
#[send_to("/topic/files")]
fn file(#[destination_variable] path: String, Destination(sent_to): Destination) -> String {
    format!("{path} via {sent_to}")
}

#[subscribe_mapping("/snapshot")]
fn snapshot(#[header("x-client")] client: Option<String>) -> Message {
    Message::text(format!("snapshot for {}", client.as_deref().unwrap_or("anyone")))
        .header("x-snapshot", "1")
}

#[message_mapping("/maybe")]
#[send_to("/topic/maybe")]
fn maybe(text: String) -> Option<String> {
    (text != "skip").then_some(text)
}

#[message_mapping("/priority")]
#[send_to("/topic/priority")]
fn priority(#[header("x-priority")] priority: u8, headers: Headers) -> String {
    format!("{priority} {}", headers.get("x-note").unwrap_or("-"))
}

/// An error of ours, handled by [`rejected`].
#[derive(Debug)]
struct Rejected(String);

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected: {}", self.0)
    }
}

impl std::error::Error for Rejected {}

#[message_mapping("/validate")]
#[send_to("/topic/valid")]
async fn validate(text: String) -> Result<Option<String>, Rejected> {
    match text.as_str() {
        "" => Err(Rejected("empty".into())),
        "quiet" => Ok(None),
        _ => Ok(Some(text.to_uppercase())),
    }
}

#[message_exception_handler(Rejected)]
#[send_to("/topic/errors")]
fn rejected(error: HandlerError) -> String {
    format!("{} says {}", error.handler(), error.reason())
}

#[message_mapping("/parse")]
#[send_to("/topic/parsed")]
fn parse(text: String) -> Result<String, std::num::ParseIntError> {
    text.parse::<i64>().map(|n| (n + 1).to_string())
}

#[message_mapping("/panic")]
#[send_to("/topic/panic")]
fn panics(text: String) -> String {
    assert!(text != "boom", "handler asked to panic");
    text
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[message_mapping("/counter")]
#[send_to("/topic/counter")]
fn counter(State(counter): State<Counter>) -> String {
    (counter.0.fetch_add(1, Ordering::SeqCst) + 1).to_string()
}

#[message_mapping("/whoami")]
#[send_to("/topic/whoami")]
fn whoami(principal: Option<Principal>, SessionId(id): SessionId) -> String {
    let name = principal.as_ref().map_or("anonymous", Principal::name);
    format!("{name} {}", !id.is_empty())
}

#[message_mapping("/fan-out")]
fn fan_out(text: String, template: MessagingTemplate) {
    template.convert_and_send("/topic/fan-a", text.clone()).unwrap();
    template.convert_and_send("/topic/fan-b", text).unwrap();
}

/// Takes a varying while to finish, so that ordering is not an accident of timing.
#[message_mapping("/seq")]
#[send_to("/topic/seq")]
async fn seq(text: String) -> String {
    let n: u32 = text.parse().unwrap_or(0);
    for _ in 0..(n % 7) * 3 {
        tokio::task::yield_now().await;
    }
    text
}

/// A gate tests open to let `/slow` calls finish.
#[derive(Clone)]
struct Gate(Arc<Semaphore>);

#[message_mapping("/slow")]
#[send_to("/topic/slow")]
async fn slow(text: String, State(gate): State<Gate>) -> String {
    gate.0.acquire().await.unwrap().forget();
    text
}

async fn client(url: &str) -> Client {
    Client::connect_ws(url, ClientOptions::default()).await.expect("client connects")
}

async fn next(sub: &mut Subscription) -> Frame {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

fn body(frame: &Frame) -> &str {
    frame.body_str().unwrap()
}

async fn server() -> stompede::RunningServer {
    start(
        Server::builder()
            .state(Counter::default())
            .state(Gate(Arc::new(Semaphore::new(0))))
            .handshake_hook(|request: &http::request::Parts, attributes: &mut http::Extensions| {
                if let Some(user) = request.uri.query().and_then(|q| q.strip_prefix("user=")) {
                    if user == "mallory" {
                        return Err(HandshakeRejection::new(http::StatusCode::FORBIDDEN, "no"));
                    }
                    attributes.insert(Principal::new(user));
                }
                Ok(())
            }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_in_json_out_to_send_to() {
    let server = server().await;
    let url = ws_url(&server);
    let (listener, sender) = (client(&url).await, client(&url).await);
    let mut greetings = listener.subscribe("/topic/greetings").await.unwrap();
    let send = Frame::new(Command::Send)
        .header("destination", "/app/hello")
        .header("content-type", "application/json")
        .body(r#"{"name":"Ada"}"#);
    sender.send_frame_with_receipt(send).await.unwrap();
    let reply = next(&mut greetings).await;
    assert_eq!(reply.get("content-type"), Some("application/json"));
    assert_eq!(reply.get("destination"), Some("/topic/greetings"));
    let greeting: Greeting = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(greeting, Greeting { content: "Hello, Ada!".into() });
    // Without a content-type the payload is taken as JSON too (what stomp.js sends).
    sender.send("/app/hello", r#"{"name":"Grace"}"#).await.unwrap();
    assert_eq!(body(&next(&mut greetings).await), r#"{"content":"Hello, Grace!"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_are_captured_and_fill_send_to() {
    let server = server().await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut room = c.subscribe("/topic/chat/rust").await.unwrap();
    let mut all = c.subscribe("/topic/chat-all").await.unwrap();
    let mut other = c.subscribe("/topic/chat/go").await.unwrap();
    c.send("/app/chat/rust", "hi").await.unwrap();
    c.send("/app/chat/go", "hey").await.unwrap();
    assert_eq!(body(&next(&mut room).await), "[rust] hi");
    assert_eq!(body(&next(&mut all).await), "[rust] hi");
    assert_eq!(body(&next(&mut all).await), "[go] hey");
    assert_eq!(body(&next(&mut other).await), "[go] hey");

    let mut count = c.subscribe("/topic/count").await.unwrap();
    c.send("/app/count/21", "").await.unwrap();
    assert_eq!(body(&next(&mut count).await), "42");

    let mut files = c.subscribe("/topic/files").await.unwrap();
    c.send("/app/files/docs/guide.md", "").await.unwrap();
    assert_eq!(body(&next(&mut files).await), "docs/guide.md via /app/files/docs/guide.md");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_send_to_replies_go_to_the_broker_prefix_plus_destination() {
    let server = server().await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut echo = c.subscribe("/topic/echo").await.unwrap();
    let mut echo_too = c.subscribe("/topic/echo-too").await.unwrap();
    c.send("/app/echo", &b"\x00\x01binary"[..]).await.unwrap();
    let reply = next(&mut echo).await;
    assert_eq!(&reply.body[..], b"\x00\x01binary");
    assert_eq!(reply.get("content-type"), Some("application/octet-stream"));
    c.send("/app/echo-too", "second pattern").await.unwrap();
    assert_eq!(body(&next(&mut echo_too).await), "second pattern");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_mapping_answers_that_subscriber_once() {
    let server = server().await;
    let url = ws_url(&server);
    let (a, b) = (client(&url).await, client(&url).await);
    let mut first = a.subscribe("/app/snapshot").await.unwrap();
    let mut second = b.subscribe_with("/app/snapshot", &[("x-client", "b")]).await.unwrap();
    let snapshot = next(&mut first).await;
    assert_eq!(body(&snapshot), "snapshot for anyone");
    assert_eq!(snapshot.get("x-snapshot"), Some("1"));
    assert_eq!(snapshot.get("subscription"), Some(first.id()));
    assert_eq!(snapshot.get("destination"), Some("/app/snapshot"));
    assert_eq!(body(&next(&mut second).await), "snapshot for b");
    // Once: a later subscription's snapshot goes to it alone. Frames of one connection arrive
    // in order, so once the marker sent after it is in, a copy for `first` would be too.
    let mut marker = a.subscribe("/topic/marker").await.unwrap();
    let mut third = a.subscribe("/app/snapshot").await.unwrap();
    assert_eq!(body(&next(&mut third).await), "snapshot for anyone");
    a.send_with_receipt("/topic/marker", "after").await.unwrap();
    assert_eq!(body(&next(&mut marker).await), "after");
    assert!(first.try_next().is_none(), "a subscribe mapping answers its subscriber once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_none_sends_nothing_and_results_reach_the_exception_handler() {
    let server = server().await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut maybe = c.subscribe("/topic/maybe").await.unwrap();
    c.send("/app/maybe", "skip").await.unwrap();
    c.send("/app/maybe", "keep").await.unwrap();
    assert_eq!(body(&next(&mut maybe).await), "keep", "None sent nothing, in order");

    let mut valid = c.subscribe("/topic/valid").await.unwrap();
    let mut errors = c.subscribe("/topic/errors").await.unwrap();
    c.send("/app/validate", "quiet").await.unwrap();
    c.send("/app/validate", "").await.unwrap();
    c.send("/app/validate", "ok").await.unwrap();
    assert_eq!(body(&next(&mut errors).await), "handlers::validate says rejected: empty");
    assert_eq!(body(&next(&mut valid).await), "OK", "Ok(None) sent nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_and_panics_are_logged_and_the_session_stays_open() {
    let server = server().await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut parsed = c.subscribe("/topic/parsed").await.unwrap();
    let mut panicked = c.subscribe("/topic/panic").await.unwrap();
    c.send("/app/parse", "not a number").await.unwrap();
    c.send("/app/panic", "boom").await.unwrap();
    c.send("/app/parse", "41").await.unwrap();
    c.send("/app/panic", "calm").await.unwrap();
    assert_eq!(body(&next(&mut parsed).await), "42");
    assert_eq!(body(&next(&mut panicked).await), "calm");
    assert!(c.close_reason().is_none(), "the session stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_decode_gets_an_error_naming_the_handler() {
    let server = server().await;
    let url = ws_url(&server);
    let bystander = client(&url).await;
    let mut greetings = bystander.subscribe("/topic/greetings").await.unwrap();

    let mut peer = RawPeer::connected(&url).await;
    peer.send_text("SEND\ndestination:/app/hello\ncontent-type:application/json\n\n{\"nom\":1}\0")
        .await;
    let error = peer.expect_error_then_close().await;
    let message = error.get("message").unwrap();
    assert!(message.contains("handlers::greeting"), "{message}");
    assert!(body(&error).contains("missing field `name`"), "{error:?}");

    let mut peer = RawPeer::connected(&url).await;
    peer.send_text("SEND\ndestination:/app/count/many\n\n\0").await;
    let error = peer.expect_error_then_close().await;
    assert!(body(&error).contains("destination variable n = \"many\""), "{error:?}");

    let mut peer = RawPeer::connected(&url).await;
    peer.send_text("SEND\ndestination:/app/hello\ncontent-type:text/plain\n\nAda\0").await;
    let error = peer.expect_error_then_close().await;
    assert!(body(&error).contains("content-type \"text/plain\""), "{error:?}");

    let mut peer = RawPeer::connected(&url).await;
    peer.send_text("SEND\ndestination:/app/priority\n\n\0").await;
    let error = peer.expect_error_then_close().await;
    assert!(body(&error).contains("x-priority header is required"), "{error:?}");

    // Everyone else carries on.
    bystander.send("/app/hello", r#"{"name":"Bob"}"#).await.unwrap();
    assert_eq!(body(&next(&mut greetings).await), r#"{"content":"Hello, Bob!"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_state_principal_session_and_template_extractors() {
    let server = server().await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut priority = c.subscribe("/topic/priority").await.unwrap();
    let send = Frame::new(Command::Send)
        .header("destination", "/app/priority")
        .header("x-priority", "7")
        .header("x-note", "urgent");
    c.send_frame(send).await.unwrap();
    assert_eq!(body(&next(&mut priority).await), "7 urgent");

    let mut counter = c.subscribe("/topic/counter").await.unwrap();
    c.send("/app/counter", "").await.unwrap();
    c.send("/app/counter", "").await.unwrap();
    assert_eq!(body(&next(&mut counter).await), "1");
    assert_eq!(body(&next(&mut counter).await), "2");

    let ada = client(&format!("{url}?user=ada")).await;
    let mut whoami = c.subscribe("/topic/whoami").await.unwrap();
    ada.send("/app/whoami", "").await.unwrap();
    assert_eq!(body(&next(&mut whoami).await), "ada true");
    c.send("/app/whoami", "").await.unwrap();
    assert_eq!(body(&next(&mut whoami).await), "anonymous true");

    let mut a = c.subscribe("/topic/fan-a").await.unwrap();
    let mut b = c.subscribe("/topic/fan-b").await.unwrap();
    c.send("/app/fan-out", "both").await.unwrap();
    assert_eq!(body(&next(&mut a).await), "both");
    assert_eq!(body(&next(&mut b).await), "both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_one_session_run_in_order() {
    let server = server().await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut seq = c.subscribe("/topic/seq").await.unwrap();
    for i in 0..200 {
        c.send("/app/seq", i.to_string()).await.unwrap();
    }
    for i in 0..200 {
        assert_eq!(body(&next(&mut seq).await), i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_handlers_lag_is_held_back_and_loses_nothing() {
    let gate = Gate(Arc::new(Semaphore::new(0)));
    // Every discovered handler's state is required at build(), counter's too.
    let server = start(Server::builder().state(gate.clone()).state(Counter::default())).await;
    let url = ws_url(&server);
    let (busy, other) = (client(&url).await, client(&url).await);
    let mut slow = other.subscribe("/topic/slow").await.unwrap();
    let mut greetings = other.subscribe("/topic/greetings").await.unwrap();
    // Far more calls than the session's queue holds; the session stops reading meanwhile.
    let sender = tokio::spawn(async move {
        for i in 0..300 {
            busy.send("/app/slow", i.to_string()).await.unwrap();
        }
        busy
    });
    // The rest of the server is not held up.
    other.send("/app/hello", r#"{"name":"Eve"}"#).await.unwrap();
    assert_eq!(body(&next(&mut greetings).await), r#"{"content":"Hello, Eve!"}"#);
    gate.0.add_permits(300);
    for i in 0..300 {
        assert_eq!(body(&next(&mut slow).await), i.to_string());
    }
    let busy = sender.await.unwrap();
    assert!(busy.close_reason().is_none());
}
