use stompede::message_mapping;

#[message_mapping("/hello")]
fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}

fn main() {}
