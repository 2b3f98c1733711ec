//! Every kind of argument and return value the attributes accept, in one program that must
//! compile (beside the compile-fail cases, which must not).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stompede::dispatch::{Destination, HandlerError, Message, SessionId, State};
use stompede::stomp::{Frame, Headers};
use stompede::{
    MessagingTemplate, Principal, message_exception_handler, message_mapping, requires_role,
    send_to, send_to_user, subscribe_mapping,
};

#[derive(Deserialize)]
struct Order {
    id: u64,
}

#[derive(Serialize)]
struct Receipt {
    id: u64,
}

#[derive(Clone)]
struct Settings;

#[derive(Debug)]
struct Rejected;

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rejected")
    }
}

impl std::error::Error for Rejected {}

#[message_mapping("/text")]
fn text(body: String) -> String {
    body
}

#[message_mapping("/bytes")]
fn binary(body: Vec<u8>, again: Bytes) -> Vec<u8> {
    let _ = again;
    body
}

#[message_mapping("/json")]
fn json(order: Order) -> Receipt {
    Receipt { id: order.id }
}

#[message_mapping("/room/{room}/{n}")]
#[send_to("/topic/room/{room}")]
async fn variables(
    #[destination_variable] room: String,
    #[destination_variable("n")] number: u32,
    #[header("x-priority")] priority: u8,
    #[header] x_note: Option<String>,
) -> &'static str {
    let _ = (room, number, priority, x_note);
    "ok"
}

#[message_mapping("/whole")]
fn whole(
    headers: Headers,
    frame: Frame,
    session: SessionId,
    destination: Destination,
    user: Option<Principal>,
    template: MessagingTemplate,
    settings: State<Settings>,
) -> Bytes {
    let _ = (headers, frame, session, destination, user, template, settings);
    Bytes::new()
}

#[message_mapping("/as/{user}/{settings}")]
fn named_like_placeholders(user: Option<Principal>, settings: State<Settings>) {
    let _ = (user, settings);
}

#[message_mapping("/message")]
fn message() -> Message {
    Message::text("hi").header("x-count", "1")
}

#[message_mapping("/nothing")]
fn nothing(_body: String) {}

#[message_mapping("/maybe")]
fn maybe(body: String) -> Option<String> {
    (!body.is_empty()).then_some(body)
}

#[message_mapping("/fallible")]
fn fallible(body: String) -> Result<Option<Receipt>, Rejected> {
    if body.is_empty() { Err(Rejected) } else { Ok(None) }
}

#[message_mapping("/fallible-text")]
async fn fallible_text(body: String) -> Result<String, String> {
    Ok(body)
}

#[message_mapping("/boxed")]
fn boxed(body: String) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(body)
}

#[subscribe_mapping("/snapshot")]
fn snapshot() -> Vec<Receipt> {
    vec![Receipt { id: 1 }]
}

#[message_exception_handler(Rejected)]
#[send_to("/topic/errors")]
fn rejected(error: HandlerError) -> String {
    format!("{} says {}", error.handler(), error.reason())
}

#[message_exception_handler]
fn everything_else(error: HandlerError) {
    let _ = error;
}

/// A required principal, a role, and a reply to the caller's sessions.
#[message_mapping("/private/{room}")]
#[requires_role("member", "admin")]
#[send_to_user("/queue/rooms/{room}")]
fn private(#[destination_variable] room: String, user: Principal) -> String {
    format!("{room}: {}", user.name())
}

/// The calling session only; a subscribe mapping guarded by a role.
#[message_mapping("/ping-me")]
#[send_to_user("/queue/pong", broadcast = false)]
fn ping_me() -> &'static str {
    "pong"
}

#[subscribe_mapping("/admin/snapshot")]
#[requires_role("admin")]
fn admin_snapshot() -> &'static str {
    "snapshot"
}

/// Errors back to the caller.
#[message_exception_handler(Rejected)]
#[send_to_user("/queue/errors", broadcast = false)]
fn rejected_to_caller(error: HandlerError) -> String {
    error.to_string()
}

fn main() {}
