//! Fuzzes the SockJS receive path: an `xhr_send` body (or a SockJS WebSocket message) as the
//! server reads it, then each message through the STOMP decoder as the session would. Checked
//! for every input:
//! - no panic, whatever the bytes;
//! - the messages read from a body, framed as the server frames its own (`a[...]`), read back
//!   as the same messages: SockJS's escaping and the JSON reader agree;
//! - the STOMP decoder never buffers more than one message past its frame-size limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stompede::__fuzz::{sockjs_frame, sockjs_messages};
use stompede::stomp::{Decoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some(messages) = sockjs_messages(data) else { return };
    let frame = sockjs_frame(&messages);
    let array = frame.strip_prefix('a').expect("a message frame starts with 'a'");
    assert_eq!(sockjs_messages(array.as_bytes()).as_deref(), Some(&messages[..]), "{frame}");

    let limits =
        Limits { max_frame_size: 512, max_body_size: 256, max_header_count: 8, max_header_line: 64 };
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    for message in &messages {
        buf.extend_from_slice(message.as_bytes());
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    assert!(buf.len() <= limits.max_frame_size + message.len());
                    break;
                }
                Err(_) => return,
            }
        }
    }
});
