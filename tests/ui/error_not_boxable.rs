use stompede::message_mapping;

/// Not an `std::error::Error`.
struct Oops;

#[message_mapping("/risky")]
fn risky(text: String) -> Result<String, Oops> {
    if text.is_empty() { Err(Oops) } else { Ok(text) }
}

fn main() {}
