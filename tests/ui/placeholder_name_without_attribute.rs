use stompede::message_mapping;

// `room` is the mapping's placeholder, but without #[destination_variable] the parameter would
// take the payload: a compile error, with the fix.
#[message_mapping("/chat/{room}")]
fn post(room: String) -> String {
    room
}

fn main() {}
