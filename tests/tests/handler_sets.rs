//! Servers with explicit handler sets (`discover_handlers(false)` + `handlers![...]`):
//! start-up checks of the mapping table, and a catch-all exception handler. The handlers
//! here cannot coexist in one server, which is the point.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use stompede::client::{Client, ClientOptions};
use stompede::dispatch::HandlerError;
use stompede::stomp::Frame;
use stompede::{
    ConfigError, Server, handlers, message_exception_handler, message_mapping, send_to,
};
use stompede_tests::{WAIT, start, ws_url};

mod one {
    use stompede::message_mapping;

    #[message_mapping("/room/{id}")]
    pub(crate) fn join(#[destination_variable] id: String) -> String {
        id
    }
}

mod two {
    use stompede::message_mapping;

    #[message_mapping("/room/{id}")]
    pub(crate) fn enter(#[destination_variable] id: String) -> String {
        id
    }
}

#[message_mapping("/number")]
#[send_to("/topic/number")]
fn number(value: u64) -> u64 {
    value + 1
}

#[message_mapping("/outside")]
#[send_to("/elsewhere/x")]
fn outside() -> &'static str {
    "never"
}

/// Handles every error, extraction failures included.
#[message_exception_handler]
#[send_to("/topic/problems")]
fn problems(error: HandlerError) -> String {
    format!("{}: {}", error.handler(), error.reason())
}

#[message_exception_handler]
fn also_everything(error: HandlerError) -> String {
    error.to_string()
}

async fn next(sub: &mut stompede::client::Subscription) -> Frame {
    tokio::time::timeout(WAIT, sub.next()).await.unwrap().unwrap()
}

fn error_of(result: Result<Server, ConfigError>) -> String {
    match result {
        Ok(_) => panic!("the handler set should have been refused"),
        Err(e) => {
            // Every refusal of this file is about a handler, and names it; the only setting
            // that can be at fault is the application's state.
            assert!(e.is_handler_mapping(), "{e}");
            assert!(matches!(e.setting(), None | Some("state")), "{e}");
            assert!(e.handlers().iter().all(|h| e.to_string().contains(h)), "{e}");
            e.to_string()
        }
    }
}

#[test]
fn identical_patterns_are_a_start_up_error_naming_both_functions() {
    let error = error_of(
        Server::builder()
            .discover_handlers(false)
            .handlers(handlers![one::join, two::enter])
            .build(),
    );
    assert!(error.contains("handler_sets::one::join"), "{error}");
    assert!(error.contains("handler_sets::two::enter"), "{error}");
    assert!(error.contains("\"/room/{id}\""), "{error}");
}

#[test]
fn the_same_handler_named_twice_counts_once() {
    let built = Server::builder()
        .discover_handlers(false)
        .handlers(handlers![one::join, one::join])
        .build();
    assert!(built.is_ok());
}

#[test]
fn send_to_outside_the_broker_prefixes_is_a_start_up_error() {
    let error =
        error_of(Server::builder().discover_handlers(false).handlers(handlers![outside]).build());
    assert!(error.contains("handler_sets::outside"), "{error}");
    assert!(error.contains("/elsewhere/x"), "{error}");
    // The same handler is fine once its destination is a broker prefix.
    let built = Server::builder()
        .enable_simple_broker(["/topic", "/elsewhere"])
        .discover_handlers(false)
        .handlers(handlers![outside])
        .build();
    assert!(built.is_ok());
}

#[test]
fn two_catch_all_exception_handlers_are_a_start_up_error() {
    let error = error_of(
        Server::builder()
            .discover_handlers(false)
            .handlers(handlers![problems, also_everything])
            .build(),
    );
    assert!(error.contains("handler_sets::problems"), "{error}");
    assert!(error.contains("handler_sets::also_everything"), "{error}");
}

#[test]
fn discovery_finds_every_handler_of_the_program() {
    // This file's handlers conflict, so discovering them all must fail, naming the pair.
    let builder = Server::builder().enable_simple_broker(["/topic", "/elsewhere"]);
    let error = error_of(builder.state(stateful::Ledger).build());
    assert!(error.contains("one::join") && error.contains("two::enter"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_all_exception_handler_answers_bad_payloads_instead_of_an_error_frame() {
    let server = start(Server::builder().discover_handlers(false).handlers(handlers![
        number,
        problems,
        one::join
    ]))
    .await;
    let url = ws_url(&server);
    let c = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    let mut problems = c.subscribe("/topic/problems").await.unwrap();
    let mut numbers = c.subscribe("/topic/number").await.unwrap();
    c.send("/app/number", "not json").await.unwrap();
    c.send("/app/number", "41").await.unwrap();
    let problem: Frame = next(&mut problems).await;
    let text = problem.body_str().unwrap();
    assert!(
        text.starts_with("handler_sets::number: the payload is not valid JSON for u64"),
        "{text}"
    );
    assert_eq!(next(&mut numbers).await.body_str(), Some("42"));
    assert!(c.close_reason().is_none(), "the exception handler replaced the ERROR frame");
    // Handlers left out of the set are not mapped: a SEND there is refused, clearly.
    let other = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    assert!(other.send_with_receipt("/app/outside", "").await.is_err());
    let reason = other.closed().await.unwrap_or_default();
    assert!(
        reason.contains("no application handler is registered for destination /app/outside"),
        "{reason}"
    );
}

mod stateful {
    use stompede::dispatch::State;
    use stompede::message_mapping;

    #[derive(Clone)]
    pub(crate) struct Ledger;

    #[message_mapping("/ledger")]
    pub(crate) fn ledger(_ledger: State<Ledger>) {}
}

#[test]
fn a_state_no_handler_can_get_is_a_start_up_error_naming_handler_and_type() {
    let builder =
        || Server::builder().discover_handlers(false).handlers(handlers![stateful::ledger]);
    let error = error_of(builder().build());
    assert_eq!(
        error,
        "handler handler_sets::stateful::ledger takes State<handler_sets::stateful::Ledger>, but no handler_sets::stateful::Ledger is registered: add it with ServerBuilder::state(value)"
    );
    assert!(builder().state(stateful::Ledger).build().is_ok());
}
