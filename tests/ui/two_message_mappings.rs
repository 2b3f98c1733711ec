use stompede::message_mapping;

#[message_mapping("/hello")]
#[message_mapping("/hi")]
fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

fn main() {}
