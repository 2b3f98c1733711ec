use stompede::message_mapping;

#[message_mapping]
fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

fn main() {}
