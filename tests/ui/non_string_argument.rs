use stompede::{message_mapping, send_to};

const HELLO: &str = "/hello";

#[message_mapping(HELLO)]
#[send_to(42)]
fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

fn main() {}
