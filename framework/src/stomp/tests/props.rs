//! Properties: encode→decode round-trips any frame, and the split of the input never matters.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::decode_all;
use crate::stomp::{
    Command, DecodeError, DecodeErrorKind, Decoder, Frame, Headers, Limits, PreparedMessage,
    Version, encode, encode_to_bytes,
};

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V1_0), Just(Version::V1_1), Just(Version::V1_2)]
}

/// Header text that the given escaping can carry faithfully.
fn text(version: Version, command: Command, name: bool) -> BoxedStrategy<String> {
    let escaped = version != Version::V1_0 && command.escapes_headers();
    let pattern = match (escaped, version) {
        // Everything, colons, backslashes and line breaks included.
        (true, Version::V1_2) => "[a-z0-9:\\\\\n\r é-]{0,12}",
        // 1.1 has no escape for CR.
        (true, _) => "[a-z0-9:\\\\\n é-]{0,12}",
        // No escaping: no line breaks anywhere, no ':' in names.
        (false, _) if name => "[a-z0-9\\\\ é-]{0,12}",
        (false, _) => "[a-z0-9:\\\\ é-]{0,12}",
    };
    let pattern = if name { pattern.replace("{0,12}", "{1,12}") } else { pattern.to_owned() };
    proptest::string::string_regex(&pattern)
        .expect("the patterns above are valid regular expressions")
        .prop_filter("content-length is the encoder's", |s| s != "content-length")
        .boxed()
}

fn frame() -> impl Strategy<Value = (Version, Frame)> {
    (version(), proptest::sample::select(Command::ALL.to_vec())).prop_flat_map(|(v, command)| {
        let header = (text(v, command, true), text(v, command, false));
        let body = if command.allows_body() {
            proptest::collection::vec(any::<u8>(), 0..200).boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        (proptest::collection::vec(header, 0..6), body).prop_map(move |(headers, body)| {
            let frame = Frame {
                command,
                headers: headers.into_iter().collect::<Headers>(),
                body: Bytes::from(body),
            };
            (v, frame)
        })
    })
}

fn without_length(frame: &Frame) -> Frame {
    let mut f = frame.clone();
    f.headers.remove("content-length");
    f
}

/// Feeds `wire` to a decoder in pieces cut at `cuts`, collecting frames.
fn decode_in_pieces(
    wire: &[u8],
    cuts: &[usize],
    version: Version,
) -> Result<Vec<Frame>, DecodeError> {
    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    let mut at = 0;
    for point in points {
        buf.extend_from_slice(&wire[at..point]);
        at = point;
        while let Some(frame) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_same_frame((v, frame) in frame()) {
        let wire = encode_to_bytes(&frame, v);
        let decoded = decode_all(&wire, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.len(), 1);
        prop_assert_eq!(without_length(&decoded[0]), without_length(&frame));
    }

    #[test]
    fn splitting_the_stream_never_changes_the_frames(
        frames in proptest::collection::vec(frame(), 1..5),
        heart_beats in proptest::collection::vec(0usize..3, 5),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        // One stream speaks one version: re-tag every frame with the first one's.
        let v = frames[0].0;
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (i, (fv, frame)) in frames.iter().enumerate() {
            if *fv != v { continue; }
            wire.extend(std::iter::repeat_n(&b"\r\n"[..], heart_beats[i]).flatten());
            wire.extend_from_slice(&encode_to_bytes(frame, v));
            expected.push(frame.clone());
        }
        let whole = decode_in_pieces(&wire, &[], v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let split = decode_in_pieces(&wire, &cuts, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(
            whole.iter().map(without_length).collect::<Vec<_>>(),
            expected.iter().map(without_length).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_stream_repeating_send_heads_decodes_as_each_frame_alone(
        picks in proptest::collection::vec((0usize..10, 0usize..3, 0usize..3, any::<u8>()), 1..16),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        // Heads, some alike but for a byte or a line or their content-length, each sent again
        // and again; an escaped SEND and frames of other commands; heart-beats in between. A
        // head is recognised when it is the last plain SEND head read, byte for byte (other
        // commands between, and SENDs with a receipt, leave that one remembered; an escaped
        // SEND forgets it). Cut
        // anywhere, every frame decodes as it does alone, its lines copied as they came
        // (verbatim) or not alike.
        // Whether a SEND head is kept (`Some(true)`), forgets the one kept (`Some(false)`) or
        // leaves it (`None`).
        const HEADS: [(&str, Option<bool>); 10] = [
            ("SEND\ndestination:/topic/a\ncontent-length:LEN\n\n", Some(true)),
            ("SEND\ndestination:/topic/b\ncontent-length:LEN\n\n", Some(true)),
            ("SEND\ndestination:/topic/a\ncontent-length:LEN\nreceipt:r\n\n", None),
            ("SEND\r\ndestination:/topic/a\r\ncontent-length:LEN\r\n\r\n", Some(true)),
            ("SEND\ndestination:/topic/a\ncontent-length:LEN\nx:1:2\n\n", Some(true)),
            ("SEND\ndestination:/topic/a\ny:a\rb\r\n\n", Some(true)),
            ("SEND\ndestination:/topic/a\n\n", Some(true)),
            ("SEND\ndestination:/topic/a\nk:a\\cb\n\n", Some(false)),
            ("SUBSCRIBE\nid:0\ndestination:/topic/a\n\n", None),
            ("ACK\nid:1\n\n", None),
        ];
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let (mut last, mut recognised) = (None, 0);
        for (pick, heart_beats, len, byte) in picks {
            let (template, kept) = HEADS[pick];
            let head = template.replace("LEN", &len.to_string());
            let mut frame = head.clone().into_bytes();
            // Any byte where a content-length says how many; otherwise no NUL, and no body
            // for the commands that take none.
            let body = match (template.contains("LEN"), template.starts_with("SEND")) {
                (true, _) => byte,
                (false, true) => b'y',
                (false, false) => 0,
            };
            if body != 0 || template.contains("LEN") {
                frame.extend(std::iter::repeat_n(body, len));
            }
            frame.push(0);
            wire.extend(std::iter::repeat_n(&b"\n"[..], heart_beats).flatten());
            wire.extend_from_slice(&frame);
            expected.extend(decode_all(&frame, Version::V1_2).map_err(|e| TestCaseError::fail(e.to_string()))?);
            if template.starts_with("SEND") {
                recognised += u64::from(last.as_ref() == Some(&head));
                match kept {
                    Some(true) => last = Some(head),
                    Some(false) => last = None,
                    None => {}
                }
            }
        }
        let mut decoder = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&wire[..]);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
            frames.push(frame);
        }
        prop_assert_eq!(decoder.recalls, recognised);
        let verbatim = |frames: &[Frame]| {
            frames.iter().map(|f| f.headers.is_verbatim()).collect::<Vec<_>>()
        };
        prop_assert_eq!(verbatim(&frames), verbatim(&expected));
        let split = decode_in_pieces(&wire, &cuts, Version::V1_2).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(verbatim(&split), verbatim(&expected));
        prop_assert_eq!(&split, &expected);
        prop_assert_eq!(frames, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_overfill(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let limits = Limits { max_frame_size: 256, max_body_size: 200, max_header_count: 8, max_header_line: 64 };
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.push(data.len());
        points.sort_unstable();
        let mut at = 0;
        'feed: for point in points {
            buf.extend_from_slice(&data[at..point]);
            at = point;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        prop_assert!(buf.len() <= limits.max_frame_size, "buffered {} bytes", buf.len());
                        break;
                    }
                    Err(_) => break 'feed,
                }
            }
        }
    }

    /// Whatever text headers carry, NULs and line breaks included, no encoded head holds a
    /// NUL, and the bytes decode as exactly one frame of the same command.
    #[test]
    fn the_encoder_never_writes_a_nul_before_the_body(
        v in version(),
        command in proptest::sample::select(Command::ALL.to_vec()),
        headers in proptest::collection::vec(("[\\PC\0\n\r:\\\\]{1,8}", "[\\PC\0\n\r:\\\\]{0,8}"), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let body = if command.allows_body() { Bytes::from(body) } else { Bytes::new() };
        let headers: Headers = headers.into_iter().filter(|(n, _)| n != "content-length").collect();
        let frame = Frame { command, headers: headers.clone(), body: body.clone() };
        let encoded = encode(&frame, v);
        // The command and headers: what precedes the body and its NUL (a small body travels
        // in the head's buffer).
        let body_len = body.len();
        let head = |wire: &Bytes| wire.slice(..wire.len() - body_len - 1);
        let wire = encoded.to_bytes();
        prop_assert!(!head(&wire).contains(&0), "NUL in {:?}", head(&wire));
        let decoded = decode_all(&wire, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.len(), 1);
        prop_assert_eq!(decoded[0].command, command);
        prop_assert_eq!(&decoded[0].body, &body);

        let message = PreparedMessage::new(headers, body);
        let delivery = message.for_subscriber(v, &[("subscription", "s\0b"), ("message-id", "1")]);
        let wire = delivery.to_bytes();
        prop_assert!(!head(&wire).contains(&0));
        let decoded = decode_all(&wire, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.len(), 1);
    }

    /// A NUL anywhere in a frame's command or header lines is an error, never a frame.
    #[test]
    fn a_nul_in_the_head_is_an_error(
        (v, frame) in frame(),
        at in any::<usize>(),
    ) {
        let wire = encode_to_bytes(&frame, v);
        let head_len = memchr::memmem::find(&wire, b"\n\n").map_or(0, |end| end + 1);
        // At a character boundary: splitting a UTF-8 character would be an error of its own.
        let head = std::str::from_utf8(&wire[..head_len]).expect("encoded heads are UTF-8");
        let mut at = at % head_len;
        while !head.is_char_boundary(at) {
            at -= 1;
        }
        let mut poisoned = wire.to_vec();
        poisoned.insert(at, 0);
        match decode_all(&poisoned, v) {
            Err(e) => prop_assert!(
                matches!(e.kind(), DecodeErrorKind::NulInHead(_)),
                "expected a NUL error, got {e}"
            ),
            Ok(frames) => prop_assert!(false, "decoded {frames:?}"),
        }
    }
}
