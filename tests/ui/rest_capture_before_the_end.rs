use stompede::message_mapping;

// `{*rest}` captures the rest of a destination: it can only be the last segment. The
// attribute checks it with the server's own grammar, so this fails here, not at start-up.
#[message_mapping("/a/{*x}/b")]
fn handler(text: String) -> String {
    text
}

fn main() {}
