use stompede::{message_mapping, send_to, send_to_user, subscribe_mapping};

#[message_mapping("/whoami")]
#[send_to_user("queue/replies")]
fn no_leading_slash() -> String {
    "you".to_owned()
}

#[message_mapping("/whoami2")]
#[send_to_user("/queue/replies", broadcast = "no")]
fn broadcast_not_a_bool() -> String {
    "you".to_owned()
}

#[message_mapping("/whoami3")]
#[send_to_user("/queue/replies", fanout = false)]
fn unknown_option() -> String {
    "you".to_owned()
}

#[subscribe_mapping("/snapshot")]
#[send_to_user("/queue/snapshot")]
fn with_subscribe_mapping() -> String {
    "snapshot".to_owned()
}

#[message_mapping("/both")]
#[send_to("/topic/both")]
#[send_to_user("/queue/both")]
fn with_send_to() -> String {
    "both".to_owned()
}

#[message_mapping("/room/{id}")]
#[send_to_user("/queue/room/{room}")]
fn unknown_placeholder() -> String {
    "room".to_owned()
}

fn main() {}
