use stompede::{message_mapping, send_to};

#[message_mapping("/chat/{room}", "/lobby")]
#[send_to("/topic/chat/{room}")]
fn chat(text: String) -> String {
    text
}

fn main() {}
