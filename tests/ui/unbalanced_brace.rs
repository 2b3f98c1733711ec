use stompede::message_mapping;

#[message_mapping("/chat/{room")]
fn chat(text: String) -> String {
    text
}

#[message_mapping("/chat/room}")]
fn chat2(text: String) -> String {
    text
}

fn main() {}
