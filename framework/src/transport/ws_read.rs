//! A server's reading of its client's WebSocket frames (RFC 6455, section 5), by hand.
//!
//! STOMP does not care where WebSocket messages begin and end (a frame may span messages, or
//! share one), so the payload of every data frame is unmasked straight into the session's
//! buffer as it arrives, with no message assembled first, and whatever the read brought is
//! handled in one pass. What tungstenite checked on this path is checked here too: client
//! frames are masked, reserved bits and opcodes are unused, control frames are short and
//! whole, fragments follow each other in order, text is UTF-8 (across fragments), and no
//! message is larger than the limit. Every ping's pong is appended to the transport's output
//! (which writes it before reading more: a client that floods pings without reading fills its
//! own socket and is closed), pongs are ignored, and a close ends the reading.

use bytes::{Buf, BytesMut};

/// The most a control frame may carry (RFC 6455, 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: two bytes, a 64-bit length, the mask.
const MAX_HEADER: usize = 14;

/// Bytes asked of the socket per read while a connection is quiet.
const QUIET_READ: usize = 1024;

/// Bytes asked of the socket per read once reads come back full (a busy publisher): its
/// frames are then handled in one turn of its session's loop, many at a time.
const BUSY_READ: usize = 16 * 1024;

/// Why a client's frames cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A message larger than the limit.
    TooLarge,
    /// A broken rule of the protocol, said in words for the client's ERROR frame.
    Protocol(&'static str),
}

/// What one pass over the bytes read found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Payload bytes appended to the session's buffer.
    pub(crate) appended: usize,
    /// Pings were read: their pongs were appended to the output.
    pub(crate) pinged: bool,
    /// The client sent a close frame: nothing after it is read. Its status code, if it gave
    /// one.
    pub(crate) close: Option<Option<u16>>,
}

/// The data frame whose payload is being read.
struct Payload {
    /// Bytes of it not read yet.
    left: usize,
    mask: [u8; 4],
    /// Bytes of it read so far, modulo 4: where the mask continues.
    phase: usize,
    /// Whether it ends its message.
    fin: bool,
}

/// A text message's validation across frames: the start of a character the last frame cut.
#[derive(Default)]
struct Utf8Carry {
    bytes: [u8; 4],
    len: usize,
}

pub(crate) struct FrameReader {
    /// Bytes read and not parsed yet: the rest of one read, or a frame header a read cut.
    raw: BytesMut,
    /// The data frame being read.
    payload: Option<Payload>,
    /// Between a message's first frame and its last: whether it is text.
    message: Option<bool>,
    /// Bytes of that message so far.
    message_len: usize,
    carry: Utf8Carry,
    max_message: usize,
    /// Whether the last read filled what it asked for: the next one asks for more.
    busy: bool,
    /// A close was read: nothing more is.
    closed: bool,
    /// Whether a binary message was ever read: until then, every byte handed on is UTF-8
    /// (see [`text_only`](Self::text_only)).
    binary: bool,
    /// An error found after payload bytes the same pass appended: reported by the next pass,
    /// so that the frames before it are handled first (as they would have been had the bad
    /// frame arrived in a later read).
    failed: Option<FrameError>,
}

impl FrameReader {
    /// A reader of messages up to `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> FrameReader {
        FrameReader {
            raw: BytesMut::new(),
            payload: None,
            message: None,
            message_len: 0,
            carry: Utf8Carry::default(),
            max_message,
            busy: false,
            closed: false,
            binary: false,
            failed: None,
        }
    }

    /// Makes room for the next read (more for a busy connection), and returns how much: what
    /// [`read_done`](Self::read_done) is told the read asked for.
    pub(crate) fn room_for_read(&mut self) -> usize {
        let room = if self.busy { BUSY_READ } else { QUIET_READ };
        self.raw.reserve(room);
        self.raw.capacity() - self.raw.len()
    }

    /// Bytes read and not parsed yet: at most what the next [`parse`](Self::parse) appends.
    pub(crate) fn unparsed(&self) -> usize {
        self.raw.len()
    }

    /// The buffer the next read appends to (after [`room_for_read`](Self::room_for_read)).
    pub(crate) fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.raw
    }

    /// Records how a read went: `wanted` bytes of room, `read` filled. A read that fills its
    /// room means more is waiting: the next one asks for more.
    pub(crate) fn read_done(&mut self, wanted: usize, read: usize) {
        self.busy = read == wanted;
    }

    /// Whether every byte handed on so far came from text messages. Text is checked as it is
    /// handed on (what is not UTF-8 is not), so the bytes handed on are UTF-8 but for the start
    /// of a character the next frame will finish, at the very end: a part of them that starts
    /// and ends beside ASCII bytes (a STOMP body, after a `\n` and before its NUL) is UTF-8.
    pub(crate) fn text_only(&self) -> bool {
        !self.binary
    }

    /// Whether a close frame was read.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Parses the bytes read: data payloads are unmasked onto the end of `out`, the pongs
    /// answering pings onto the end of `pongs`. Stops at the end of what was read, or after a
    /// close frame.
    pub(crate) fn parse(
        &mut self,
        out: &mut BytesMut,
        pongs: &mut BytesMut,
    ) -> Result<Parsed, FrameError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let mut parsed = Parsed::default();
        let result = self.parse_into(out, pongs, &mut parsed);
        self.release();
        match result {
            Ok(()) => Ok(parsed),
            // Handled first: what came before the error.
            Err(e) if parsed.appended > 0 => {
                self.failed = Some(e);
                Ok(parsed)
            }
            Err(e) => Err(e),
        }
    }

    /// A buffer larger than a quiet read's is not kept between reads: freed when empty,
    /// and a frame header a read cut is moved to a small one. (A busy connection allocates its
    /// large buffer once per read, a few instructions per frame.)
    fn release(&mut self) {
        if self.raw.capacity() <= QUIET_READ {
            return;
        }
        if self.raw.is_empty() {
            self.raw = BytesMut::new();
        } else if self.raw.len() <= MAX_HEADER + MAX_CONTROL_PAYLOAD {
            self.raw = BytesMut::from(&self.raw[..]);
        }
    }

    /// [`parse`](Self::parse)'s pass, adding to `parsed` as it goes.
    fn parse_into(
        &mut self,
        out: &mut BytesMut,
        pongs: &mut BytesMut,
        parsed: &mut Parsed,
    ) -> Result<(), FrameError> {
        while !self.closed {
            if let Some(payload) = &mut self.payload {
                let n = payload.left.min(self.raw.len());
                // (A payload still in this field always has bytes left to read.)
                if n == 0 {
                    break;
                }
                let start = out.len();
                out.extend_from_slice(&self.raw[..n]);
                let ascii = unmask(&mut out[start..], payload.mask, payload.phase);
                self.raw.advance(n);
                payload.left -= n;
                payload.phase = (payload.phase + n) % 4;
                parsed.appended += n;
                let (done, fin) = (payload.left == 0, payload.fin);
                // ASCII alone (the usual STOMP frame) is UTF-8: unmasking told.
                if self.message == Some(true) && !(ascii && self.carry.len == 0) {
                    if let Err(e) = self.carry.check(&out[start..]) {
                        // Bytes that are not UTF-8 are not handed on.
                        out.truncate(start);
                        parsed.appended -= n;
                        return Err(e);
                    }
                }
                if done {
                    self.payload = None;
                    if fin {
                        self.end_message()?;
                    }
                }
                continue;
            }
            if !self.frame_header(parsed, pongs)? {
                break;
            }
        }
        Ok(())
    }

    /// A text message ended: no character may be left unfinished.
    fn end_message(&mut self) -> Result<(), FrameError> {
        if self.message == Some(true) && self.carry.len > 0 {
            return Err(FrameError::Protocol("a text message is not valid UTF-8"));
        }
        self.message = None;
        self.message_len = 0;
        Ok(())
    }

    /// Reads the header of the next frame, and a control frame whole; false when the bytes
    /// read do not hold all of it yet.
    fn frame_header(
        &mut self,
        parsed: &mut Parsed,
        pongs: &mut BytesMut,
    ) -> Result<bool, FrameError> {
        let raw = &self.raw[..];
        let [b0, b1, ..] = *raw else { return Ok(false) };
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
        if b0 & 0x70 != 0 {
            return Err(FrameError::Protocol("reserved bits set in a WebSocket frame"));
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Protocol("an unmasked WebSocket frame from the client"));
        }
        let (len, at) = match b1 & 0x7F {
            126 => match raw.get(2..4) {
                Some(&[a, b]) => (usize::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(false),
            },
            127 => match raw.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(bytes) => {
                    let len = u64::from_be_bytes(bytes);
                    if len >> 63 != 0 {
                        return Err(FrameError::Protocol("a WebSocket frame length over 2^63"));
                    }
                    (usize::try_from(len).unwrap_or(usize::MAX), 10)
                }
                None => return Ok(false),
            },
            short => (usize::from(short), 2),
        };
        let Some(&[m0, m1, m2, m3]) = raw.get(at..at + 4) else { return Ok(false) };
        let mask = [m0, m1, m2, m3];
        let header = at + 4;
        match opcode {
            0x8..=0xA => {
                if !fin {
                    return Err(FrameError::Protocol("a fragmented WebSocket control frame"));
                }
                if len > MAX_CONTROL_PAYLOAD {
                    return Err(FrameError::Protocol(
                        "a WebSocket control frame with more than 125 bytes",
                    ));
                }
                if raw.len() < header + len {
                    return Ok(false);
                }
                let mut body = [0; MAX_CONTROL_PAYLOAD];
                let body = &mut body[..len];
                body.copy_from_slice(&raw[header..header + len]);
                unmask(body, mask, 0);
                self.raw.advance(header + len);
                match opcode {
                    0x8 => {
                        parsed.close = Some(close_code(body)?);
                        self.closed = true;
                    }
                    0x9 => {
                        // The pong: unmasked, final, the ping's payload (RFC 6455, 5.5.3).
                        pongs.extend_from_slice(&[0x8A, len as u8]);
                        pongs.extend_from_slice(body);
                        parsed.pinged = true;
                    }
                    _ => {} // A pong: nothing to do.
                }
                return Ok(true);
            }
            0x0 if self.message.is_none() => {
                return Err(FrameError::Protocol(
                    "a WebSocket continuation frame with no message to continue",
                ));
            }
            0x1 | 0x2 if self.message.is_some() => {
                return Err(FrameError::Protocol(
                    "a new WebSocket message before the last one's final fragment",
                ));
            }
            0x0 => {}
            0x1 | 0x2 => {
                self.message = Some(opcode == 0x1);
                self.binary |= opcode == 0x2;
            }
            _ => return Err(FrameError::Protocol("a reserved WebSocket opcode")),
        }
        self.message_len = self.message_len.saturating_add(len);
        if self.message_len > self.max_message {
            return Err(FrameError::TooLarge);
        }
        self.raw.advance(header);
        if len == 0 {
            if fin {
                self.end_message()?;
            }
        } else {
            self.payload = Some(Payload { left: len, mask, phase: 0, fin });
        }
        Ok(true)
    }
}

impl Utf8Carry {
    /// Checks the next bytes of a text message, keeping the start of a character they cut.
    fn check(&mut self, mut bytes: &[u8]) -> Result<(), FrameError> {
        const INVALID: FrameError = FrameError::Protocol("a text message is not valid UTF-8");
        if self.len > 0 {
            // Finish the character the last bytes began.
            let width = match self.bytes[0] {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = (width - self.len).min(bytes.len());
            self.bytes[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.bytes[..self.len]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() => return Ok(()), // still unfinished
                Err(_) => return Err(INVALID),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let rest = &bytes[e.valid_up_to()..];
                self.bytes[..rest.len()].copy_from_slice(rest);
                self.len = rest.len();
                Ok(())
            }
            Err(_) => Err(INVALID),
        }
    }
}

/// The status code of a close frame's payload, if it has one (RFC 6455, 5.5.1 and 7.4): a
/// code may not be sent as one (1005, 1006, 1015, or outside the ranges in use), or a reason
/// that is not UTF-8, is a protocol error.
fn close_code(body: &[u8]) -> Result<Option<u16>, FrameError> {
    let Some((code, reason)) = body.split_first_chunk::<2>() else {
        return match body.is_empty() {
            true => Ok(None),
            false => Err(FrameError::Protocol("a WebSocket close frame with a one-byte code")),
        };
    };
    let code = u16::from_be_bytes(*code);
    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(FrameError::Protocol("a WebSocket close code that may not be sent"));
    }
    if std::str::from_utf8(reason).is_err() {
        return Err(FrameError::Protocol("a WebSocket close reason that is not UTF-8"));
    }
    Ok(Some(code))
}

/// XORs `bytes` with `mask`, starting at `phase` within it (RFC 6455, 5.3). Returns whether
/// the unmasked bytes are all ASCII (then valid UTF-8 on their own: a text message needs no
/// other check of them), found on the way for one OR per eight bytes.
fn unmask(bytes: &mut [u8], mask: [u8; 4], phase: usize) -> bool {
    let mut mask = mask;
    mask.rotate_left(phase % 4);
    // Eight bytes at a time: the mask twice over.
    let [a, b, c, d] = mask;
    let word = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut seen = 0u64;
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut eight = [0; 8];
        eight.copy_from_slice(chunk);
        let clear = u64::from_ne_bytes(eight) ^ word;
        seen |= clear;
        chunk.copy_from_slice(&clear.to_ne_bytes());
    }
    // A multiple of eight bytes went by: the mask's phase is where it was.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
        seen |= u64::from(*byte);
    }
    seen & 0x8080_8080_8080_8080 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client's frame: `first` is the FIN/opcode byte.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    /// Feeds `wire` in pieces of `piece` bytes; returns the payload bytes, the pongs and what
    /// was found.
    #[allow(clippy::type_complexity)]
    fn read_all(wire: &[u8], piece: usize) -> Result<(Vec<u8>, Vec<u8>, Vec<Parsed>), FrameError> {
        let mut reader = FrameReader::new(1 << 20);
        let (mut out, mut pongs) = (BytesMut::new(), BytesMut::new());
        let mut found = Vec::new();
        for bytes in wire.chunks(piece) {
            reader.room_for_read();
            reader.read_buffer().extend_from_slice(bytes);
            let unparsed = reader.unparsed();
            let parsed = reader.parse(&mut out, &mut pongs)?;
            // What the transport reserves before a pass is room enough.
            assert!(parsed.appended <= unparsed, "{} appended of {unparsed}", parsed.appended);
            if parsed != Parsed::default() {
                found.push(parsed);
            }
        }
        // An error found after good frames is reported by the next pass.
        reader.parse(&mut out, &mut pongs)?;
        Ok((out.to_vec(), pongs.to_vec(), found))
    }

    #[test]
    fn payloads_are_unmasked_in_order_however_the_reads_cut_them() {
        let long = vec![b'x'; 70_000];
        let mut wire = frame(0x81, b"SEND\ndestination:/a\n\nhello\0");
        wire.extend(frame(0x82, &[0, 1, 2, 255]));
        wire.extend(frame(0x81, &[b'y'; 300]));
        wire.extend(frame(0x81, &long));
        wire.extend(frame(0x81, b""));
        let mut expected = b"SEND\ndestination:/a\n\nhello\0".to_vec();
        expected.extend([0, 1, 2, 255]);
        expected.extend([b'y'; 300]);
        expected.extend(&long);
        for piece in [1, 2, 3, 5, 7, 13, 64, 1000, wire.len()] {
            let (out, _, found) = read_all(&wire, piece).unwrap();
            assert!(out == expected, "cut every {piece} bytes");
            let appended: usize = found.iter().map(|p| p.appended).sum();
            assert_eq!(appended, expected.len());
        }
    }

    #[test]
    fn fragments_join_and_a_ping_between_them_is_reported() {
        let mut wire = frame(0x01, "caf".as_bytes());
        wire.extend(frame(0x89, b"are you there"));
        wire.extend(frame(0x8A, b"an unasked pong"));
        wire.extend(frame(0x89, b""));
        // "é" cut between two fragments.
        let e_acute = "é".as_bytes();
        wire.extend(frame(0x00, &[b"e ".as_slice(), &e_acute[..1]].concat()));
        wire.extend(frame(0x80, &e_acute[1..]));
        for piece in [1, 4, wire.len()] {
            let (out, pongs, found) = read_all(&wire, piece).unwrap();
            assert_eq!(out, "cafe é".as_bytes(), "cut every {piece} bytes");
            // Each ping answered, in order, with its payload; the pong needs no answer.
            assert_eq!(pongs, [&[0x8A, 13][..], b"are you there", &[0x8A, 0]].concat());
            assert!(found.iter().any(|p| p.pinged));
        }
    }

    #[test]
    fn a_close_ends_the_reading_with_its_code() {
        let mut wire = frame(0x81, b"bye");
        wire.extend(frame(0x88, &1000u16.to_be_bytes()));
        wire.extend(frame(0x81, b"after the close"));
        let (out, _, found) = read_all(&wire, wire.len()).unwrap();
        assert_eq!(out, b"bye");
        assert_eq!(found[0].close, Some(Some(1000)));
        let (_, _, found) = read_all(&frame(0x88, b""), 64).unwrap();
        assert_eq!(found[0].close, Some(None), "a close without a code");
    }

    #[test]
    fn a_close_frame_must_carry_a_code_that_may_be_sent_and_a_utf8_reason() {
        let refused = |body: &[u8]| match read_all(&frame(0x88, body), 64) {
            Err(FrameError::Protocol(why)) => why,
            other => panic!("{body:?}: {other:?}"),
        };
        assert!(refused(&[0x03]).contains("one-byte"));
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(refused(&code.to_be_bytes()).contains("may not be sent"), "{code}");
        }
        assert!(refused(&[0x03, 0xE8, 0xC3, 0x28]).contains("not UTF-8"));
        let (_, _, found) = read_all(&[&frame(0x88, &[0x0F, 0xA0]), &b"ok"[..]].concat(), 64)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(found[0].close, Some(Some(4000)), "an application's code");
    }

    #[test]
    fn the_frames_before_a_bad_one_are_handled_first() {
        let mut unmasked = frame(0x81, b"x");
        unmasked[1] &= 0x7F;
        let wire = [frame(0x81, b"SEND\n\n\0"), unmasked].concat();
        let mut reader = FrameReader::new(1 << 20);
        let (mut out, mut pongs) = (BytesMut::new(), BytesMut::new());
        reader.room_for_read();
        reader.read_buffer().extend_from_slice(&wire);
        let first = reader.parse(&mut out, &mut pongs).expect("the good frame first");
        assert_eq!((first.appended, &out[..]), (7, &b"SEND\n\n\0"[..]));
        let second = reader.parse(&mut out, &mut pongs);
        assert!(matches!(second, Err(FrameError::Protocol(why)) if why.contains("unmasked")));
    }

    #[test]
    fn an_idle_reader_keeps_no_large_buffer() {
        let mut reader = FrameReader::new(1 << 20);
        let (mut out, mut pongs) = (BytesMut::new(), BytesMut::new());
        let wire = frame(0x82, &[b'x'; 4000]);
        // A read that fills its room makes the next one large...
        let wanted = reader.room_for_read();
        reader.read_buffer().extend_from_slice(&wire[..wanted]);
        reader.read_done(wanted, wanted);
        reader.parse(&mut out, &mut pongs).unwrap();
        let large = reader.room_for_read();
        assert!(large >= BUSY_READ, "{large}");
        // ...and once it has been parsed, only a cut frame header stays, in a small buffer.
        reader.read_buffer().extend_from_slice(&wire[wanted..]);
        reader.read_buffer().extend_from_slice(&frame(0x81, b"next")[..3]);
        reader.read_done(large, wire.len() - wanted + 3);
        reader.parse(&mut out, &mut pongs).unwrap();
        assert_eq!(out.len(), 4000);
        assert_eq!(reader.raw.len(), 3);
        assert!(reader.raw.capacity() <= QUIET_READ, "{}", reader.raw.capacity());
    }

    #[test]
    fn broken_frames_are_refused_with_a_reason() {
        let protocol = |wire: Vec<u8>| match read_all(&wire, wire.len()) {
            Err(FrameError::Protocol(why)) => why,
            other => panic!("{other:?}"),
        };
        let mut unmasked = frame(0x81, b"x");
        unmasked[1] &= 0x7F;
        assert!(protocol(unmasked).contains("unmasked"));
        assert!(protocol(frame(0xC1, b"x")).contains("reserved bits"));
        assert!(protocol(frame(0x83, b"x")).contains("reserved WebSocket opcode"));
        assert!(protocol(frame(0x80, b"x")).contains("no message to continue"));
        assert!(
            protocol([frame(0x01, b"x"), frame(0x81, b"y")].concat()).contains("new WebSocket")
        );
        assert!(protocol(frame(0x09, b"x")).contains("fragmented"));
        assert!(protocol(frame(0x89, &[0; 126])).contains("125 bytes"));
        assert!(protocol(frame(0x81, &[0xC3, 0x28])).contains("UTF-8"));
        // A character left unfinished by the message's last fragment.
        assert!(protocol(frame(0x81, &[b'a', 0xC3])).contains("UTF-8"));
        assert!(
            protocol([frame(0x01, &[0xE2, 0x82]), frame(0x80, &[0x28])].concat()).contains("UTF-8")
        );
        let mut huge = vec![0x81, 0xFF];
        huge.extend(u64::MAX.to_be_bytes());
        huge.extend(MASK);
        assert!(protocol(huge).contains("2^63"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_not_handed_on() {
        let mut reader = FrameReader::new(1 << 20);
        let (mut out, mut pongs) = (BytesMut::new(), BytesMut::new());
        let wire = [frame(0x81, b"SEND\n\n\0"), frame(0x81, &[b'S', 0xC3, 0x28])].concat();
        reader.room_for_read();
        reader.read_buffer().extend_from_slice(&wire);
        assert_eq!(reader.parse(&mut out, &mut pongs).map(|parsed| parsed.appended), Ok(7));
        assert_eq!(&out[..], b"SEND\n\n\0", "only the good frame");
        assert!(matches!(reader.parse(&mut out, &mut pongs), Err(FrameError::Protocol(_))));
        assert_eq!(out.len(), 7);
    }

    #[test]
    fn binary_messages_need_not_be_utf8() {
        let (out, _, _) = read_all(&frame(0x82, &[0xC3, 0x28, 0xFF]), 2).unwrap();
        assert_eq!(out, [0xC3, 0x28, 0xFF]);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_before_its_payload_is_read() {
        let mut reader = FrameReader::new(100);
        let mut out = BytesMut::new();
        // Two fragments of 60 bytes: the second takes the message over 100.
        let wire = [frame(0x01, &[b'a'; 60]), frame(0x80, &[b'b'; 60])].concat();
        reader.read_buffer().extend_from_slice(&wire[..wire.len() - 60]);
        let first = reader.parse(&mut out, &mut BytesMut::new());
        assert_eq!(first.map(|parsed| parsed.appended), Ok(60), "the first fragment first");
        assert_eq!(reader.parse(&mut out, &mut BytesMut::new()), Err(FrameError::TooLarge));
        assert_eq!(out.len(), 60, "the first fragment only");
        let mut reader = FrameReader::new(100);
        reader.read_buffer().extend_from_slice(&frame(0x81, &[b'c'; 101])[..14]);
        let (mut out, mut pongs) = (BytesMut::new(), BytesMut::new());
        assert_eq!(reader.parse(&mut out, &mut pongs), Err(FrameError::TooLarge));
    }

    #[test]
    fn unmasking_tells_whether_the_bytes_are_ascii() {
        let masked = |clear: &[u8], phase: usize| -> Vec<u8> {
            let mut bytes = clear.to_vec();
            unmask(&mut bytes, MASK, phase);
            bytes
        };
        for len in 0..40 {
            for phase in 0..4 {
                let ascii = vec![b'a'; len];
                // Against the RFC's definition, one byte at a time.
                let by_rfc: Vec<u8> =
                    ascii.iter().enumerate().map(|(i, b)| b ^ MASK[(phase + i) % 4]).collect();
                assert_eq!(masked(&ascii, phase), by_rfc, "{len} bytes from phase {phase}");
                let mut bytes = masked(&ascii, phase);
                assert!(unmask(&mut bytes, MASK, phase), "{len} ASCII bytes");
                assert_eq!(bytes, ascii);
                for at in 0..len {
                    let mut clear = ascii.clone();
                    clear[at] = 0xC3;
                    let mut bytes = masked(&clear, phase);
                    assert!(!unmask(&mut bytes, MASK, phase), "a high byte at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn unmasking_continues_the_mask_across_pieces() {
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        unmask(&mut whole, MASK, 0);
        for cut in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            unmask(a, MASK, 0);
            unmask(b, MASK, cut);
            assert_eq!(pieces, whole, "cut at {cut}");
        }
    }
}
