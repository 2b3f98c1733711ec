use bytes::Bytes;

use super::decode_one;
use crate::stomp::{Command, Frame, Headers, PreparedMessage, Version, encode, encode_to_bytes};

#[test]
fn connected_frame_exact_bytes() {
    let f = Frame::new(Command::Connected)
        .header("version", "1.2")
        .header("heart-beat", "10000,10000")
        .header("server", "stompede/0.1");
    assert_eq!(
        &encode_to_bytes(&f, Version::V1_2)[..],
        b"CONNECTED\nversion:1.2\nheart-beat:10000,10000\nserver:stompede/0.1\n\n\0"
    );
}

#[test]
fn v12_escapes_header_text() {
    let f = Frame::new(Command::Message).header("a:b", "x\ny\rz\\");
    assert_eq!(&encode_to_bytes(&f, Version::V1_2)[..], b"MESSAGE\na\\cb:x\\ny\\rz\\\\\n\n\0");
}

#[test]
fn v10_and_connected_cannot_escape_so_line_breaks_become_spaces() {
    let f = Frame::new(Command::Message).header("na:me", "a\nb\\c:d");
    assert_eq!(&encode_to_bytes(&f, Version::V1_0)[..], b"MESSAGE\nna_me:a b\\c:d\n\n\0");
    let c = Frame::new(Command::Connected).header("server", "a\r\nb:c");
    assert_eq!(&encode_to_bytes(&c, Version::V1_2)[..], b"CONNECTED\nserver:a  b:c\n\n\0");
}

#[test]
fn content_length_is_written_for_bodies_and_replaces_a_wrong_one() {
    let f = Frame::new(Command::Send)
        .header("content-length", "999")
        .header("destination", "/a")
        .body(&b"a\0b"[..]);
    let wire = encode_to_bytes(&f, Version::V1_2);
    assert_eq!(&wire[..], b"SEND\ndestination:/a\ncontent-length:3\n\na\0b\0");
    assert_eq!(&decode_one(&wire).unwrap().body[..], b"a\0b");
}

#[test]
fn empty_body_gets_no_content_length() {
    let f = Frame::new(Command::Receipt).header("receipt-id", "1");
    assert_eq!(&encode_to_bytes(&f, Version::V1_2)[..], b"RECEIPT\nreceipt-id:1\n\n\0");
}

#[test]
fn encoding_never_copies_the_body() {
    let body = Bytes::from(vec![7u8; 60 * 1024]);
    let f = Frame::new(Command::Send).header("destination", "/a").body(body.clone());
    let encoded = encode(&f, Version::V1_2);
    assert_eq!(encoded.body().as_ptr(), body.as_ptr());
    assert!(!encoded.is_utf8() || body.is_ascii());
    let total: usize = encoded.io_slices().iter().map(|s| s.len()).sum();
    assert_eq!(total, encoded.len());
    assert_eq!(encoded.to_bytes().len(), encoded.len());
}

#[test]
fn error_frame_helper_carries_message_receipt_and_detail() {
    let f = Frame::error("bad frame", Some("r-1"), "details here");
    let wire = encode_to_bytes(&f, Version::V1_2);
    assert_eq!(
        &wire[..],
        b"ERROR\nmessage:bad frame\nreceipt-id:r-1\ncontent-type:text/plain\ncontent-length:12\n\ndetails here\0"
    );
}

#[test]
fn prepared_message_is_encoded_once_per_version() {
    let mut headers = Headers::new();
    headers.push("destination", "/topic/a:b");
    headers.push("content-type", "text/plain");
    let m = PreparedMessage::new(headers, Bytes::from_static(b"hi"));
    let a = m.for_subscriber(Version::V1_2, &[("subscription", "0"), ("message-id", "1")]);
    let b = m.for_subscriber(Version::V1_1, &[("subscription", "1"), ("message-id", "1")]);
    let c = m.for_subscriber(Version::V1_2, &[("subscription", "2"), ("message-id", "1")]);
    let old = m.for_subscriber(Version::V1_0, &[("subscription", "3"), ("message-id", "1")]);
    let shared = m.shared_part(Version::V1_2);
    assert_eq!(shared.as_ptr(), m.shared_part(Version::V1_2).as_ptr(), "encoded once");
    // A small body travels in each frame's buffer; a large one is shared by every delivery.
    assert!(a.body().is_empty() && a.head().ends_with(b"hi\0"));
    let large = PreparedMessage::new(Headers::new(), Bytes::from(vec![b'x'; 4096]));
    let (x, y) = (
        large.for_subscriber(Version::V1_2, &[("subscription", "0")]),
        large.for_subscriber(Version::V1_2, &[("subscription", "1")]),
    );
    assert_eq!(x.body().as_ptr(), large.body().as_ptr(), "not copied");
    assert_eq!(x.body().as_ptr(), y.body().as_ptr(), "one large body for every delivery");
    assert_eq!(
        &a.to_bytes()[..],
        b"MESSAGE\nsubscription:0\nmessage-id:1\ndestination:/topic/a\\cb\ncontent-type:text/plain\ncontent-length:2\n\nhi\0"
    );
    assert_eq!(m.shared_part(Version::V1_1), shared, "1.1 and 1.2 escape ':' alike");
    // The shared part and the body ("hi" and its NUL, in the frame's one buffer) alike.
    let tail = |frame: &crate::stomp::EncodedFrame| {
        let wire = frame.to_bytes();
        wire.slice(wire.len() - 3 - shared.len()..)
    };
    assert_eq!(tail(&b), tail(&a));
    assert_eq!(tail(&c), tail(&a));
    assert!(tail(&a).starts_with(shared));
    assert_eq!(
        &old.to_bytes()[..],
        b"MESSAGE\nsubscription:3\nmessage-id:1\ndestination:/topic/a:b\ncontent-type:text/plain\ncontent-length:2\n\nhi\0"
    );
    assert!(a.is_utf8());
    let binary = PreparedMessage::new(Headers::new(), Bytes::from_static(b"\xff"));
    assert!(!binary.for_subscriber(Version::V1_2, &[]).is_utf8());
    let decoded = decode_one(&a.to_bytes()).unwrap();
    assert_eq!(decoded.get("destination"), Some("/topic/a:b"));
    assert_eq!(decoded.get("subscription"), Some("0"));
}

#[test]
fn identical_heads_share_one_contiguous_frame() {
    let mut headers = Headers::new();
    headers.push("destination", "/topic/a");
    let m = PreparedMessage::new(headers, Bytes::from_static(b"hello"));
    let head_a = crate::stomp::message_head(Version::V1_2, &[("subscription", "sub-0")]);
    let head_b = crate::stomp::message_head(Version::V1_2, &[("subscription", "sub-0")]);
    let other = crate::stomp::message_head(Version::V1_2, &[("subscription", "sub-1")]);
    let a = m.contiguous_for(Version::V1_2, &head_a);
    let b = m.contiguous_for(Version::V1_2, &head_b);
    let c = m.contiguous_for(Version::V1_2, &other);
    assert_eq!(a.to_bytes().as_ptr(), b.to_bytes().as_ptr(), "one buffer for equal heads");
    assert_ne!(a.to_bytes().as_ptr(), c.to_bytes().as_ptr());
    assert_eq!(
        a.to_bytes(),
        m.with_head(Version::V1_2, head_a).to_bytes(),
        "same bytes as the parts"
    );
    assert_eq!(a.len(), a.to_bytes().len());
    assert_eq!(
        &c.to_bytes()[..],
        b"MESSAGE\nsubscription:sub-1\ndestination:/topic/a\ncontent-length:5\n\nhello\0"
    );
    let total: usize = c.chunks().iter().map(|chunk| chunk.len()).sum();
    assert_eq!(total, c.len(), "vectored writes see the same frame");
}

#[test]
fn a_shared_contiguous_frame_is_per_version() {
    // The same subscription line in 1.2 and 1.0: the shared headers escape differently.
    let mut headers = Headers::new();
    headers.push("destination", "/topic/a");
    headers.push("note", "a:b");
    let m = PreparedMessage::new(headers, Bytes::from_static(b"hi"));
    let head = crate::stomp::message_head(Version::V1_2, &[("subscription", "sub-0")]);
    let v12 = m.contiguous_for(Version::V1_2, &head).to_bytes();
    let v10 = m.contiguous_for(Version::V1_0, &head).to_bytes();
    let contains = |frame: &Bytes, text: &[u8]| frame.windows(text.len()).any(|w| w == text);
    assert!(contains(&v12, b"\nnote:a\\cb\n"), "1.2 escapes the colon: {v12:?}");
    assert!(contains(&v10, b"\nnote:a:b\n"), "1.0 does not: {v10:?}");
}

#[test]
fn a_frame_built_when_the_message_is_made_is_the_one_deliveries_would_build() {
    let message = |first: Option<(Version, &Bytes)>| {
        let mut headers = Headers::new();
        headers.push("destination", "/topic/a");
        headers.push("note", "a:b");
        let mut m = PreparedMessage::new(headers, Bytes::from_static(b"hello")).with_message_id(7);
        if let Some((version, head)) = first {
            m.build_first_frame(version, head);
        }
        m
    };
    let head = crate::stomp::message_head(Version::V1_2, &[("subscription", "sub-0")]);
    let other = crate::stomp::message_head(Version::V1_2, &[("subscription", "sub-1")]);
    let (made, lazy) = (message(Some((Version::V1_2, &head))), message(None));
    let first = made.contiguous_for(Version::V1_2, &head).to_bytes();
    assert_eq!(first, lazy.contiguous_for(Version::V1_2, &head).to_bytes());
    assert_eq!(
        made.contiguous_for(Version::V1_2, &head).to_bytes().as_ptr(),
        first.as_ptr(),
        "every delivery with that head shares the frame built first"
    );
    // Another head, another version, the parts: built later, from the same shared headers.
    assert_eq!(
        made.contiguous_for(Version::V1_2, &other).to_bytes(),
        lazy.contiguous_for(Version::V1_2, &other).to_bytes()
    );
    assert_eq!(
        made.contiguous_for(Version::V1_0, &head).to_bytes(),
        lazy.contiguous_for(Version::V1_0, &head).to_bytes()
    );
    assert_eq!(made.with_head(Version::V1_2, head.clone()).to_bytes(), first);
    assert_eq!(
        &first[..],
        &b"MESSAGE\nsubscription:sub-0\ndestination:/topic/a\nmessage-id:7\nnote:a\\cb\ncontent-length:5\n\nhello\0"[..]
    );
}
