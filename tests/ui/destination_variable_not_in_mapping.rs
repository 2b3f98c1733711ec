use stompede::message_mapping;

#[message_mapping("/chat/{room}")]
fn chat(#[destination_variable] channel: String, text: String) -> String {
    format!("{channel}: {text}")
}

fn main() {}
