use stompede::message_mapping;

#[message_mapping("/hello")]
struct Greeting {
    content: String,
}

fn main() {}
