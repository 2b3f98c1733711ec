use stompede::{message_mapping, subscribe_mapping};

#[message_mapping("/snapshot")]
#[subscribe_mapping("/snapshot")]
fn snapshot() -> String {
    "state".to_owned()
}

fn main() {}
