//! Fuzzes the STOMP decoder. The first input byte picks the version, the limits and how the
//! rest is cut into reads. Checked for every input:
//! - no panic, whatever the bytes;
//! - the buffer never holds more than one read past the frame-size limit;
//! - every frame that decodes (1.2, escaped commands) re-encodes to bytes that decode to the
//!   same frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stompede::stomp::{Decoder, Frame, Limits, Version, encode_to_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else { return };
    let version = [Version::V1_0, Version::V1_1, Version::V1_2][usize::from(control % 3)];
    let limits = if control & 0x80 != 0 {
        Limits { max_frame_size: 256, max_body_size: 128, max_header_count: 6, max_header_line: 48 }
    } else {
        Limits::default()
    };
    let chunk = 1 + usize::from((control >> 2) & 0x1f);
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => check_round_trip(&frame, version),
                Ok(None) => {
                    assert!(buf.len() <= limits.max_frame_size + chunk, "buffer overfilled");
                    break;
                }
                Err(_) => return,
            }
        }
    }
});

fn check_round_trip(frame: &Frame, version: Version) {
    if version != Version::V1_2 || !frame.command.escapes_headers() {
        return; // without escapes, CR inside a value cannot be written back faithfully
    }
    let wire = encode_to_bytes(frame, version);
    let mut decoder = Decoder::new(Limits::UNLIMITED);
    decoder.set_version(version);
    let mut buf = BytesMut::from(&wire[..]);
    let again = decoder.decode(&mut buf).expect("re-encoded frame decodes").expect("whole frame");
    assert!(buf.is_empty());
    let strip = |f: &Frame| {
        let mut f = f.clone();
        f.headers.remove("content-length");
        f
    };
    assert_eq!(strip(&again), strip(frame));
}
