use bytes::BytesMut;

use super::{decode_all, decode_all_with, decode_one, headers_of};
use crate::stomp::{Command, DecodeErrorKind, Decoder, Limits, Version};

// --- The examples of the STOMP 1.2 specification -------------------------------------------

#[test]
fn spec_connect_frame() {
    let f = decode_one(b"CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0").unwrap();
    assert_eq!(f.command, Command::Connect);
    assert_eq!(headers_of(&f), [("accept-version", "1.2"), ("host", "stomp.github.org")]);
    assert!(f.body.is_empty());
}

#[test]
fn spec_send_frame_body_keeps_its_trailing_newline() {
    let f = decode_one(b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0")
        .unwrap();
    assert_eq!(f.command, Command::Send);
    assert_eq!(f.destination(), Some("/queue/a"));
    assert_eq!(&f.body[..], b"hello queue a\n");
}

#[test]
fn spec_subscribe_and_message_frames() {
    let frames = decode_all(
        b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0\
          MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
        Version::V1_2,
    )
    .unwrap();
    assert_eq!(frames[0].command, Command::Subscribe);
    assert_eq!(frames[0].get("ack"), Some("client"));
    assert_eq!(frames[1].command, Command::Message);
    assert_eq!(frames[1].get("message-id"), Some("007"));
    assert_eq!(&frames[1].body[..], b"hello queue a");
}

#[test]
fn spec_error_frame_with_content_length() {
    let body = "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\nHello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\nfor message propagation.\n";
    let wire = format!(
        "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:{}\nmessage:malformed frame received\n\n{body}\0",
        body.len()
    );
    let f = decode_one(wire.as_bytes()).unwrap();
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.get("message"), Some("malformed frame received"));
    assert_eq!(f.body_str(), Some(body));
}

#[test]
fn spec_repeated_header_first_entry_wins() {
    let f = decode_one(
        b"MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\nfoo:World\nfoo:Hello\n\n\0",
    )
    .unwrap();
    assert_eq!(f.get("foo"), Some("World"));
    assert_eq!(f.headers.get_all("foo").collect::<Vec<_>>(), ["World", "Hello"]);
}

// --- Framing ---------------------------------------------------------------------------------

#[test]
fn crlf_line_endings_are_accepted() {
    let f = decode_one(b"SEND\r\ndestination:/queue/a\r\nx:y\r\n\r\nbody\0").unwrap();
    assert_eq!(headers_of(&f), [("destination", "/queue/a"), ("x", "y")]);
    assert_eq!(&f.body[..], b"body");
}

#[test]
fn heart_beats_between_frames_are_skipped_and_counted() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"\n\r\n\nDISCONNECT\n\n\0\n\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().command, Command::Disconnect);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
    assert_eq!(decoder.heart_beats(), 5);
}

#[test]
fn carriage_return_split_from_its_line_feed_is_still_a_heart_beat() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"\r"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\nSEND\ndestination:/a\n\n\0");
    let f = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(f.destination(), Some("/a"));
    assert_eq!(decoder.heart_beats(), 1);
}

#[test]
fn content_length_body_may_contain_nul() {
    let f = decode_one(b"SEND\ndestination:/a\ncontent-length:5\n\na\0b\0c\0").unwrap();
    assert_eq!(&f.body[..], b"a\0b\0c");
}

#[test]
fn the_first_of_repeated_content_lengths_counts() {
    // STOMP 1.2: a repeated header's first value is the one that counts (here it holds the
    // NUL that the second would have ended the body at).
    let f =
        decode_one(b"SEND\ndestination:/a\ncontent-length:3\ncontent-length:1\n\na\0b\0").unwrap();
    assert_eq!(&f.body[..], b"a\0b");
    let err = decode_one(b"SEND\ncontent-length:x\ncontent-length:1\n\na\0").unwrap_err();
    assert!(err.to_string().contains("content-length"), "{err}");
}

#[test]
fn content_length_zero_is_an_empty_body() {
    let f = decode_one(b"SEND\ndestination:/a\ncontent-length:0\n\n\0").unwrap();
    assert!(f.body.is_empty());
}

#[test]
fn body_not_followed_by_nul_after_content_length_is_an_error() {
    let err =
        decode_one(b"SEND\ndestination:/a\ncontent-length:2\nreceipt:r1\n\nabc\0").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::MissingNul(2));
    assert_eq!(err.receipt(), Some("r1"));
    assert_eq!(err.command(), Some(Command::Send));
    assert_eq!(err.to_string(), "frame body of content-length 2 is not followed by a NUL byte");
}

#[test]
fn content_length_must_be_a_decimal_number() {
    for bad in ["-1", "abc", "", "1e3", "0x10"] {
        let wire = format!("SEND\ndestination:/a\ncontent-length:{bad}\n\n\0");
        let err = decode_one(wire.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), &DecodeErrorKind::InvalidContentLength(bad.to_owned()), "{bad}");
    }
}

#[test]
fn content_length_may_be_padded_with_whitespace() {
    // Digits alone take a shorter path; padding is trimmed as it always was.
    for padded in ["5", " 5", "5 ", "\t5\t", "\u{a0}5"] {
        let wire = format!("SEND\ndestination:/a\ncontent-length:{padded}\n\na\0b\0c\0");
        let frame = decode_one(wire.as_bytes()).unwrap();
        assert_eq!(&frame.body[..], b"a\0b\0c", "{padded:?}");
    }
}

#[test]
fn a_frame_split_into_single_bytes_decodes_the_same() {
    let wire = b"SEND\r\ndestination:/queue/a\r\ncontent-length:3\r\n\r\na\0b\0\n";
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &b in wire {
        buf.extend_from_slice(&[b]);
        if let Some(f) = decoder.decode(&mut buf).unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(frames.len(), 1);
    assert_eq!(&frames[0].body[..], b"a\0b");
    assert!(buf.is_empty());
}

#[test]
fn many_frames_in_one_read() {
    let wire =
        b"SEND\ndestination:/a\n\n1\0SEND\ndestination:/b\n\n2\0\nSEND\ndestination:/c\n\n3\0";
    let frames = decode_all(wire, Version::V1_2).unwrap();
    let bodies: Vec<_> = frames.iter().map(|f| f.body_str().unwrap()).collect();
    assert_eq!(bodies, ["1", "2", "3"]);
}

#[test]
fn mid_frame_is_reported_until_the_frame_completes() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"\n"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(!decoder.is_mid_frame());
    buf.extend_from_slice(b"SEND\ndest");
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(decoder.is_mid_frame());
    buf.extend_from_slice(b"ination:/a\n\nx");
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(decoder.is_mid_frame());
    buf.extend_from_slice(b"\0");
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert!(!decoder.is_mid_frame());
}

#[test]
fn header_values_keep_colons_and_blanks() {
    let f = decode_one(b"SEND\ndestination:/a\nurl:http://x:80/ \n padded : v \n\n\0").unwrap();
    assert_eq!(f.get("url"), Some("http://x:80/ "));
    assert_eq!(f.get(" padded "), Some(" v "));
}

// --- Escaping --------------------------------------------------------------------------------

#[test]
fn v12_escapes_are_decoded_in_names_and_values() {
    let f = decode_one(b"SEND\ndestination:/a\nk\\cey:a\\nb\\rc\\cd\\\\e\n\n\0").unwrap();
    assert_eq!(f.get("k:ey"), Some("a\nb\rc:d\\e"));
}

#[test]
fn undefined_escape_is_an_error_with_the_receipt() {
    let err = decode_one(b"SEND\ndestination:/a\nreceipt:77\nbad:x\\ty\n\n\0").unwrap_err();
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::InvalidEscape { header: "bad".into(), sequence: "\\t".into() }
    );
    assert_eq!(err.receipt(), Some("77"));
    assert!(err.to_string().contains("invalid escape sequence \"\\\\t\" in header \"bad\""));
}

#[test]
fn v11_does_not_define_carriage_return_escape() {
    let err = decode_all(b"SEND\ndestination:/a\nh:\\r\n\n\0", Version::V1_1).unwrap_err();
    assert!(
        matches!(err.kind(), DecodeErrorKind::InvalidEscape { sequence, .. } if sequence == "\\r")
    );
    let ok = decode_all(b"SEND\ndestination:/a\nh:\\n\\c\\\\\n\n\0", Version::V1_1).unwrap();
    assert_eq!(ok[0].get("h"), Some("\n:\\"));
}

#[test]
fn v10_takes_backslashes_literally() {
    let f = decode_all(b"SEND\ndestination:/a\nh:C:\\temp\\new\n\n\0", Version::V1_0).unwrap();
    assert_eq!(f[0].get("h"), Some("C:\\temp\\new"));
}

#[test]
fn connect_headers_are_never_unescaped() {
    let f = decode_one(b"CONNECT\naccept-version:1.2\npasscode:p\\tss\n\n\0").unwrap();
    assert_eq!(f.get("passcode"), Some("p\\tss"));
}

// --- Peer errors -----------------------------------------------------------------------------

#[test]
fn unknown_command_is_named_in_the_error() {
    let err = decode_one(b"PUBLISH\ndestination:/a\n\n\0").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::UnknownCommand("PUBLISH".into()));
    assert!(err.to_string().starts_with("unknown command \"PUBLISH\": expected CONNECT"));
}

#[test]
fn lowercase_command_is_unknown() {
    let err = decode_one(b"send\ndestination:/a\n\n\0").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::UnknownCommand("send".into()));
}

#[test]
fn header_without_colon_is_malformed() {
    let err = decode_one(b"SEND\ndestination:/a\nreceipt:9\nnocolon\n\n\0").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::MalformedHeader("nocolon".into()));
    assert_eq!(err.receipt(), Some("9"));
}

#[test]
fn header_with_empty_name_is_an_error() {
    let err = decode_one(b"SEND\n:value\n\n\0").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::EmptyHeaderName(":value".into()));
}

#[test]
fn headers_must_be_utf8() {
    let err = decode_one(b"SEND\ndestination:/\xff\n\n\0").unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::InvalidUtf8);
}

#[test]
fn non_ascii_header_text_is_kept_and_checked_in_every_line() {
    let f = decode_one("SEND\ndestination:/topic/caf\u{e9}\nn\u{f6}te:\u{1f600}\n\n\0".as_bytes())
        .unwrap();
    assert_eq!(f.destination(), Some("/topic/caf\u{e9}"));
    assert_eq!(f.headers.get("n\u{f6}te"), Some("\u{1f600}"));
    // A bad byte in the command line or in a header name fails the same way.
    for head in [&b"SE\xffND\ndestination:/a\n\n\0"[..], b"SEND\nd\xc3est:/a\n\n\0"] {
        assert_eq!(decode_one(head).unwrap_err().kind(), &DecodeErrorKind::InvalidUtf8);
    }
}

#[test]
fn body_need_not_be_utf8() {
    let f = decode_one(b"SEND\ndestination:/a\n\n\xff\xfe\0").unwrap();
    assert_eq!(&f.body[..], b"\xff\xfe");
}

#[test]
fn errors_are_sticky() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"BOGUS\n\n\0SEND\ndestination:/a\n\n\0"[..]);
    let first = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(decoder.decode(&mut buf).unwrap_err(), first);
}

// --- Limits ----------------------------------------------------------------------------------

fn small_limits() -> Limits {
    Limits { max_frame_size: 1024, max_body_size: 512, max_header_count: 4, max_header_line: 100 }
}

#[test]
fn streaming_body_past_the_body_limit_fails_before_buffering_more() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SEND\ndestination:/a\nreceipt:r\n\n"[..]);
    let mut fed = 0;
    let err = loop {
        buf.extend_from_slice(&[b'x'; 64]);
        fed += 64;
        assert!(fed <= 512 + 64, "decoder kept buffering past the limit");
        match decoder.decode(&mut buf) {
            Ok(None) => continue,
            Ok(Some(f)) => panic!("unexpected frame {f:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), &DecodeErrorKind::BodyTooLarge { limit: 512 });
    assert_eq!(err.receipt(), Some("r"));
    assert_eq!(
        err.to_string(),
        "frame body exceeds the 512-byte limit (raise it with the server's message_size_limit, or Limits::max_body_size)"
    );
}

#[test]
fn whole_frame_limit_counts_headers_and_body() {
    let limits = Limits { max_body_size: 4096, ..small_limits() };
    let headers: String = (0..3).map(|i| format!("h{i}:{}\n", "v".repeat(90))).collect();
    let wire = format!("SEND\n{headers}\n{}\0", "b".repeat(800));
    let err = decode_all_with(wire.as_bytes(), Version::V1_2, limits).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::FrameTooLarge { limit: 1024 });
    assert_eq!(
        err.to_string(),
        "frame exceeds the 1024-byte limit (raise it with the server's message_size_limit, or Limits::max_frame_size)"
    );
}

#[test]
fn frame_of_exactly_the_limit_is_accepted() {
    let limits = Limits { max_frame_size: 64, max_body_size: 64, ..Limits::default() };
    let head = b"SEND\ndestination:/a\n\n";
    let body = vec![b'z'; 64 - head.len() - 1];
    let mut wire = head.to_vec();
    wire.extend_from_slice(&body);
    wire.push(0);
    assert_eq!(wire.len(), 64);
    let frames = decode_all_with(&wire, Version::V1_2, limits).unwrap();
    assert_eq!(frames[0].body.len(), body.len());
    wire.insert(head.len(), b'z');
    let err = decode_all_with(&wire, Version::V1_2, limits).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::FrameTooLarge { limit: 64 });
}

#[test]
fn declared_content_length_over_the_limit_fails_before_the_body_arrives() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf =
        BytesMut::from(&b"SEND\ndestination:/a\ncontent-length:100000000000\nreceipt:z\n\n"[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::BodyTooLarge { limit: 512 });
    assert_eq!(err.receipt(), Some("z"));
}

#[test]
fn content_length_overflowing_usize_is_too_large_not_a_panic() {
    let err = decode_one(b"SEND\ncontent-length:99999999999999999999999999\n\n\0").unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::BodyTooLarge { .. }));
}

#[test]
fn too_many_headers() {
    let err =
        decode_all_with(b"SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0", Version::V1_2, small_limits())
            .unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::TooManyHeaders { limit: 4 });
    let ok = decode_all_with(b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0", Version::V1_2, small_limits());
    assert_eq!(ok.unwrap()[0].headers.len(), 4);
}

#[test]
fn endless_header_line_fails_once_it_passes_the_line_limit() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SEND\nx:"[..]);
    let err = loop {
        buf.extend_from_slice(&[b'y'; 10]);
        assert!(buf.len() < 200, "decoder kept buffering a line past the limit");
        if let Err(e) = decoder.decode(&mut buf) {
            break e;
        }
    };
    assert_eq!(err.kind(), &DecodeErrorKind::HeaderLineTooLong { limit: 100 });
}

#[test]
fn endless_heart_beats_are_consumed_not_buffered() {
    let mut decoder = Decoder::new(small_limits());
    let mut buf = BytesMut::new();
    for _ in 0..1000 {
        buf.extend_from_slice(b"\n\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }
    assert_eq!(decoder.heart_beats(), 2000);
}

// --- A SEND's head seen again ----------------------------------------------------------------

/// Decodes `wire` whole with `decoder` (which keeps what it remembered between calls).
fn decode_with(decoder: &mut Decoder, wire: &[u8]) -> Vec<crate::stomp::Frame> {
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "bytes left over: {buf:?}");
    frames
}

#[test]
fn a_send_head_seen_again_is_read_as_it_was() {
    let mut decoder = Decoder::default();
    let head = "SEND\ndestination:/topic/a\ncontent-type:text/plain\ncontent-length:5\n\n";
    let first = decode_with(&mut decoder, format!("{head}hello\0").as_bytes());
    assert_eq!(decoder.recalls, 0);
    // The same head, another body of the same length; twice in one read, heart-beats between.
    let again = decode_with(&mut decoder, format!("{head}world\0\n\r\n{head}again\0").as_bytes());
    assert_eq!(decoder.recalls, 2);
    assert_eq!(decoder.heart_beats(), 2);
    for (frame, body) in first.iter().chain(&again).zip(["hello", "world", "again"]) {
        assert_eq!(frame.command, Command::Send);
        assert_eq!(
            headers_of(frame),
            [("destination", "/topic/a"), ("content-type", "text/plain"), ("content-length", "5")]
        );
        assert_eq!(frame.body_str(), Some(body));
    }
    // What a recalled frame holds is its own: the same as a fresh decoder makes of it.
    let fresh = decode_one(format!("{head}world\0").as_bytes()).unwrap();
    assert_eq!(again[0], fresh);
}

#[test]
fn a_head_that_differs_by_one_byte_is_read_anew() {
    let mut decoder = Decoder::default();
    decode_with(&mut decoder, b"SEND\ndestination:/topic/a\n\nx\0");
    let frames = decode_with(&mut decoder, b"SEND\ndestination:/topic/b\n\ny\0");
    assert_eq!(decoder.recalls, 0);
    assert_eq!(frames[0].destination(), Some("/topic/b"));
    // The last head read is the one remembered now.
    let frames = decode_with(&mut decoder, b"SEND\ndestination:/topic/b\n\nz\0");
    assert_eq!((decoder.recalls, frames[0].destination()), (1, Some("/topic/b")));
    // A head with one more line: the two part where the remembered blank line was (where a
    // head ends depends on its bytes alone, so no head starts with another whole one).
    let frames = decode_with(&mut decoder, b"SEND\ndestination:/topic/b\nreceipt:7\n\nw\0");
    assert_eq!(decoder.recalls, 1);
    assert_eq!(frames[0].receipt(), Some("7"));
}

#[test]
fn a_recalled_head_without_content_length_finds_its_body_by_the_nul() {
    let mut decoder = Decoder::default();
    let frames =
        decode_with(&mut decoder, b"SEND\ndestination:/a\n\none\0SEND\ndestination:/a\n\nlonger\0");
    assert_eq!(decoder.recalls, 1);
    let bodies: Vec<_> = frames.iter().map(|f| f.body_str().unwrap()).collect();
    assert_eq!(bodies, ["one", "longer"]);
}

#[test]
fn a_recalled_head_waits_for_its_body_across_reads() {
    let mut decoder = Decoder::default();
    let wire = b"SEND\ndestination:/a\ncontent-length:3\n\nabc\0";
    decode_with(&mut decoder, wire);
    // Cut everywhere: a head cut short is read the long way (once scanning has started);
    // nothing yet, or a whole head, is recognised.
    for cut in 0..wire.len() {
        let recalled = decoder.recalls;
        let mut buf = BytesMut::from(&wire[..cut]);
        assert!(decoder.decode(&mut buf).unwrap().is_none(), "cut at {cut}");
        buf.extend_from_slice(&wire[cut..]);
        let frame = decoder.decode(&mut buf).unwrap().expect("the frame, once complete");
        assert_eq!((frame.destination(), &frame.body[..]), (Some("/a"), &b"abc"[..]));
        assert!(buf.is_empty());
        let head_len = wire.len() - 4;
        let whole_or_none = cut == 0 || cut >= head_len;
        assert_eq!(decoder.recalls - recalled, u64::from(whole_or_none), "cut at {cut}");
    }
}

#[test]
fn a_recalled_head_still_needs_its_nul() {
    let mut decoder = Decoder::default();
    decode_with(&mut decoder, b"SEND\ndestination:/a\ncontent-length:1\nx:9\n\nx\0");
    let mut buf = BytesMut::from(&b"SEND\ndestination:/a\ncontent-length:1\nx:9\n\nxy"[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(decoder.recalls, 1);
    assert_eq!(err.kind(), &DecodeErrorKind::MissingNul(1));
}

/// Decodes `wire`, one SEND, twice: read the long way, then recognised. Returns the number of
/// the head kept.
fn kept_head(decoder: &mut Decoder, wire: &[u8]) -> u64 {
    decode_with(decoder, wire);
    assert_eq!(decoder.recalled(), None, "read the long way");
    decode_with(decoder, wire);
    decoder.recalled().expect("recognised")
}

/// A caller that knows the kept head (by its number) gets its frames without headers; one
/// that knows another number, or none, gets them with theirs.
#[test]
fn a_known_head_is_recalled_without_headers() {
    let mut decoder = Decoder::default();
    let wire = b"SEND\ndestination:/a\ncontent-length:2\n\nab\0";
    let kept = kept_head(&mut decoder, wire);
    let decode = |decoder: &mut Decoder, known: Option<u64>, wire: &[u8]| {
        let mut buf = BytesMut::from(wire);
        let frame = decoder.decode_knowing(&mut buf, known).unwrap().expect("whole");
        assert!(buf.is_empty());
        frame
    };
    for known in [None, Some(kept + 1)] {
        let frame = decode(&mut decoder, known, wire);
        assert_eq!((frame.destination(), decoder.recalled()), (Some("/a"), Some(kept)));
    }
    let frame = decode(&mut decoder, Some(kept), wire);
    assert_eq!((frame.command, &frame.body[..]), (Command::Send, &b"ab"[..]));
    assert!(frame.headers.is_empty());
    assert_eq!(decoder.recalled(), Some(kept));
    // Its body still has to end with a NUL, in one read or across two.
    let mut buf = BytesMut::from(&wire[..wire.len() - 2]);
    assert!(decoder.decode_knowing(&mut buf, Some(kept)).unwrap().is_none());
    buf.extend_from_slice(b"b\0");
    let frame = decoder.decode_knowing(&mut buf, Some(kept)).unwrap().expect("whole");
    assert_eq!((&frame.body[..], frame.headers.len()), (&b"ab"[..], 0));
    let mut buf = BytesMut::from(&b"SEND\ndestination:/a\ncontent-length:2\n\nabc\0"[..]);
    let err = decoder.decode_knowing(&mut buf, Some(kept)).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::MissingNul(2));
}

/// The kept head read the long way again (it came in pieces, so it was not recognised at its
/// start) keeps its number: what a caller made of it stays good.
#[test]
fn the_kept_head_read_again_in_pieces_keeps_its_number() {
    let mut decoder = Decoder::default();
    let wire = b"SEND\ndestination:/a\ncontent-length:2\n\nab\0";
    let kept = kept_head(&mut decoder, wire);
    let mut buf = BytesMut::from(&wire[..10]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&wire[10..]);
    let frame = decoder.decode(&mut buf).unwrap().expect("whole");
    assert_eq!((frame.destination(), decoder.recalled()), (Some("/a"), None), "read the long way");
    decode_with(&mut decoder, wire);
    assert_eq!(decoder.recalled(), Some(kept));
}

/// A head with a `receipt` is each SEND's own: it is not kept, and the plain head kept before
/// it is still recognised after it, with the same number.
#[test]
fn a_head_with_a_receipt_leaves_the_kept_head_as_it_was() {
    let mut decoder = Decoder::default();
    let plain = b"SEND\ndestination:/a\ncontent-length:1\n\nx\0";
    let with_receipt = b"SEND\ndestination:/a\ncontent-length:1\nreceipt:7\n\nx\0";
    let kept = kept_head(&mut decoder, plain);
    for _ in 0..2 {
        let frames = decode_with(&mut decoder, with_receipt);
        assert_eq!((decoder.recalled(), frames[0].receipt()), (None, Some("7")));
    }
    decode_with(&mut decoder, plain);
    assert_eq!(decoder.recalled(), Some(kept));
    // Another plain head is kept in its place, with another number.
    decode_with(&mut decoder, b"SEND\ndestination:/b\n\ny\0");
    decode_with(&mut decoder, b"SEND\ndestination:/b\n\ny\0");
    assert!(decoder.recalled().is_some_and(|other| other != kept));
    decode_with(&mut decoder, plain);
    assert_eq!(decoder.recalled(), None);
}

#[test]
fn only_plain_send_heads_are_remembered() {
    let mut decoder = Decoder::default();
    // Not a SEND: never remembered.
    let subscribe = b"SUBSCRIBE\nid:0\ndestination:/a\n\n\0";
    decode_with(&mut decoder, subscribe);
    decode_with(&mut decoder, subscribe);
    assert_eq!(decoder.recalls, 0);
    // A SEND with something to unescape: read the long way every time, and it makes the
    // decoder forget the plain head it had.
    decode_with(&mut decoder, b"SEND\ndestination:/a\n\n\0");
    let escaped = b"SEND\ndestination:/a\nk:a\\cb\n\n\0";
    for _ in 0..2 {
        let frames = decode_with(&mut decoder, escaped);
        assert_eq!(frames[0].get("k"), Some("a:b"));
    }
    decode_with(&mut decoder, b"SEND\ndestination:/a\n\n\0");
    assert_eq!(decoder.recalls, 0);
    // A head longer than the decoder keeps: read the long way every time.
    let long = format!("SEND\ndestination:/a\nk:{}\n\n\0", "v".repeat(600));
    decode_with(&mut decoder, long.as_bytes());
    decode_with(&mut decoder, long.as_bytes());
    assert_eq!(decoder.recalls, 0);
}

#[test]
fn a_recalled_head_is_mid_frame_until_its_body_arrives() {
    let mut decoder = Decoder::default();
    let wire = b"SEND\ndestination:/a\ncontent-length:3\n\nabc\0";
    decode_with(&mut decoder, wire);
    let mut buf = BytesMut::from(&wire[..wire.len() - 2]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert_eq!(decoder.recalls, 1);
    assert!(decoder.is_mid_frame());
    buf.extend_from_slice(&wire[wire.len() - 2..]);
    assert_eq!(&decoder.decode(&mut buf).unwrap().expect("whole").body[..], b"abc");
    assert!(!decoder.is_mid_frame());
}

#[test]
fn a_recalled_head_without_content_length_keeps_the_body_limits() {
    let mut decoder = Decoder::new(small_limits());
    let head = b"SEND\ndestination:/a\nx:r-1\n\n";
    decode_with(&mut decoder, &[&head[..], b"ok\0"].concat());
    // A body longer than the 512 bytes allowed, with no NUL yet.
    let mut buf = BytesMut::from(&[&head[..], &[b'x'; 600][..]].concat()[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(decoder.recalls, 1);
    assert_eq!(err.kind(), &DecodeErrorKind::BodyTooLarge { limit: 512 });
}

#[test]
fn a_recalled_head_reads_alike_in_every_version() {
    let mut decoder = Decoder::default();
    let wire = b"SEND\ndestination:/a\nk:v\n\nx\0";
    let first = decode_with(&mut decoder, wire);
    for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
        decoder.set_version(version);
        let again = decode_with(&mut decoder, wire);
        assert_eq!(again, first, "{version:?}");
    }
    assert_eq!(decoder.recalls, 3);
}

#[test]
fn a_head_with_more_lines_than_kept_is_read_anew_every_time() {
    let mut decoder = Decoder::default();
    let lines: String = (0..17).map(|i| format!("h{i}:{i}\n")).collect();
    let wire = format!("SEND\ndestination:/a\n{lines}\n\0");
    for _ in 0..2 {
        let frames = decode_with(&mut decoder, wire.as_bytes());
        assert_eq!(frames[0].get("h16"), Some("16"));
    }
    assert_eq!(decoder.recalls, 0);
}

#[test]
fn a_carriage_return_at_the_end_of_a_read_is_judged_by_the_next_byte() {
    // Whether a head's lines can be copied as they are (no '\r' inside a line) must not
    // depend on where the reads were cut.
    for (wire, verbatim) in [
        (&b"SEND\r\ndestination:/a\r\nx:1\r\n\r\nb\0"[..], true),
        (&b"SEND\ndestination:/a\nx:1\r2\n\nb\0"[..], false),
    ] {
        for cut in 1..wire.len() {
            let mut decoder = Decoder::default();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut frame = decoder.decode(&mut buf).unwrap();
            buf.extend_from_slice(&wire[cut..]);
            if frame.is_none() {
                frame = decoder.decode(&mut buf).unwrap();
            }
            let frame = frame.expect("the whole frame");
            assert!(frame.headers.raw_lines().is_some(), "kept as lines of the head");
            assert_eq!(frame.headers.is_verbatim(), verbatim, "cut at {cut}");
        }
    }
}

#[test]
fn a_read_that_brings_nothing_new_judges_nothing() {
    // A head cut after a '\r', decoded again before more bytes come: still one line.
    let wire = b"SEND\ndestination:/a\nx:1\r\n\nb\0";
    let cut = wire.iter().position(|&b| b == b'\r').expect("a CR") + 1;
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&wire[..cut]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&wire[cut..]);
    let frame = decoder.decode(&mut buf).unwrap().expect("the whole frame");
    assert_eq!(frame.get("x"), Some("1"));
    assert!(frame.headers.is_verbatim());
}

#[test]
fn a_recalled_head_with_lines_to_escape_is_still_escaped() {
    use crate::stomp::{PreparedMessage, message_head};
    let mut decoder = Decoder::default();
    let wire = b"SEND\ndestination:/a\nx:1:2\n\nb\0";
    decode_with(&mut decoder, wire);
    let frame = decode_with(&mut decoder, wire).remove(0);
    assert_eq!(decoder.recalls, 1);
    assert!(frame.headers.raw_lines().is_some() && !frame.headers.is_verbatim());
    let message = PreparedMessage::new(frame.headers, frame.body);
    let head = message_head(Version::V1_2, &[("subscription", "s")]);
    let encoded = message.contiguous_for(Version::V1_2, &head).to_bytes();
    let text = std::str::from_utf8(&encoded).unwrap();
    assert!(text.contains("\nx:1\\c2\n"), "{text:?}");
}
