use stompede::message_mapping;

struct Greeter {
    greeting: String,
}

impl Greeter {
    #[message_mapping("/hello")]
    fn greet(&self, name: String) -> String {
        format!("{}, {name}!", self.greeting)
    }
}

fn main() {}
