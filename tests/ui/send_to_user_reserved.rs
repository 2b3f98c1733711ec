use stompede::{message_mapping, send_to_user};

#[message_mapping("/whoami")]
#[send_to_user("/queue/replies")]
fn whoami() -> String {
    "you".to_owned()
}

fn main() {}
