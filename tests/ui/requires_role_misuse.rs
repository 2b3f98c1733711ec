use stompede::{HandlerError, message_exception_handler, message_mapping, requires_role};

#[requires_role("admin")]
fn without_mapping() {}

#[message_mapping("/a")]
#[requires_role()]
fn no_role() {}

#[message_mapping("/b")]
#[requires_role(admin)]
fn not_a_string() {}

#[message_mapping("/c")]
#[requires_role("")]
fn empty_role() {}

#[message_exception_handler]
#[requires_role("admin")]
fn on_exception_handler(_error: HandlerError) {}

#[message_mapping("/d")]
#[requires_role("admin")]
#[requires_role("moderator")]
fn twice() {}

fn main() {}
