use stompede::message_mapping;

/// Neither a `FromMessage` nor a `Deserialize` type.
struct Order {
    id: u64,
}

#[message_mapping("/orders")]
fn place(order: Order) -> String {
    order.id.to_string()
}

fn main() {}
