//! `stompede::test` (feature `testing`) on the hello app's handler and on a handler with
//! state: what docs/testing.md shows, and that its failures say what went wrong.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use stompede::test::TestServer;
use stompede::{State, message_mapping, send_to};

#[path = "../../examples/hello/app.rs"]
#[allow(dead_code)]
mod hello;

/// A counter shared by the handler's calls.
#[derive(Clone, Default)]
struct Visits(Arc<AtomicU64>);

#[derive(Deserialize)]
struct Visit {
    page: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Visited {
    page: String,
    total: u64,
}

#[message_mapping("/visit")]
#[send_to("/topic/visits")]
async fn visit(visit: Visit, State(Visits(counter)): State<Visits>) -> Visited {
    let total = counter.fetch_add(1, Ordering::Relaxed) + 1;
    Visited { page: visit.page, total }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_handler_through_test_support() {
    // Every handler of this test binary is discovered: the state of `visit` is needed too.
    let server = TestServer::start(hello::builder().state(Visits::default())).await;
    let client = server.client().await;
    let mut greetings = client.subscribe("/topic/greetings").await;
    let mut published = server.record("/topic/greetings");
    client.send("/app/hello", "Ada").await;
    let message = greetings.expect_body("Hello, Ada!").await;
    assert_eq!(message.get("content-type"), Some("text/plain;charset=UTF-8"));
    published.expect_body("Hello, Ada!").await;
    client.barrier().await;
    greetings.expect_nothing();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_with_state_through_test_support() {
    let visits = Visits::default();
    let server = TestServer::start(stompede::Server::builder().state(visits.clone())).await;
    let (alice, bob) = (server.client().await, server.client().await);
    let mut feed = bob.subscribe("/topic/visits").await;
    alice.send_json("/app/visit", &serde_json::json!({ "page": "/home" })).await;
    alice.send_json("/app/visit", &serde_json::json!({ "page": "/about" })).await;
    assert_eq!(feed.expect_json::<Visited>().await, Visited { page: "/home".into(), total: 1 });
    assert_eq!(feed.expect_json::<Visited>().await, Visited { page: "/about".into(), total: 2 });
    assert_eq!(visits.0.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_what_was_expected() {
    let server = TestServer::start(hello::builder().state(Visits::default()))
        .await
        .with_timeout(std::time::Duration::from_millis(200));
    let client = server.client().await;
    let mut greetings = client.subscribe("/topic/greetings").await;
    client.send("/app/hello", "Ada").await;
    let wrong = tokio::spawn(async move {
        greetings.expect_body("Hello, Bob!").await;
    })
    .await
    .unwrap_err();
    let message = panic_text(wrong);
    assert!(
        message.contains("expected a message with body \"Hello, Bob!\", got \"Hello, Ada!\""),
        "{message}"
    );
    let mut quiet = client.subscribe("/topic/quiet").await;
    let none = tokio::spawn(async move {
        quiet.expect_message().await;
    })
    .await
    .unwrap_err();
    assert_eq!(panic_text(none), "no message on /topic/quiet within 200ms");
}

fn panic_text(error: tokio::task::JoinError) -> String {
    let panic = error.into_panic();
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}
