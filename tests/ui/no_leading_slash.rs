use stompede::{message_mapping, send_to};

#[message_mapping("hello")]
#[send_to("topic/greetings")]
fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

fn main() {}
