use stompede::send_to;

#[send_to("/topic/greetings")]
fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

fn main() {}
