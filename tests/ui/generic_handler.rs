use stompede::message_mapping;

#[message_mapping("/echo")]
fn echo<T: serde::de::DeserializeOwned + serde::Serialize>(value: T) -> T {
    value
}

fn main() {}
