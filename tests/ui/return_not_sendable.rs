use stompede::message_mapping;

/// Neither an `IntoReply` nor a `Serialize` type.
struct Receipt {
    id: u64,
}

#[message_mapping("/orders")]
fn place(text: String) -> Receipt {
    Receipt { id: text.len() as u64 }
}

fn main() {}
