//! The incremental, bounded frame decoder.
//!
//! Bytes arrive in any pieces; the caller appends them to a [`BytesMut`] and calls
//! [`Decoder::decode`] until it returns `Ok(None)`. The decoder remembers how far it has
//! scanned, so a frame that trickles in byte by byte is still read in linear time, and it fails
//! as soon as a frame exceeds a limit, so the buffer never holds more than one frame's worth.

use bytes::{Buf, Bytes, BytesMut};

use super::escape::{Escaping, unescape};
use super::{
    ByteStr, Command, DecodeError, DecodeErrorKind, Frame, Headers, Limits, Version, names,
};

/// Decodes STOMP frames from a byte stream.
///
/// ```
/// use bytes::BytesMut;
/// use stompede::stomp::{Command, Decoder};
///
/// let mut decoder = Decoder::default();
/// let mut buf = BytesMut::from(&b"\nSEND\ndestination:/queue/a\n\nhel"[..]);
/// assert!(decoder.decode(&mut buf)?.is_none()); // the body is not complete yet
/// buf.extend_from_slice(b"lo\0\n\n");
/// let frame = decoder.decode(&mut buf)?.expect("a whole frame");
/// assert_eq!(frame.command, Command::Send);
/// assert_eq!(frame.destination(), Some("/queue/a"));
/// assert_eq!(&frame.body[..], b"hello");
/// assert!(decoder.decode(&mut buf)?.is_none()); // trailing heart-beats are consumed
/// assert!(buf.is_empty());
/// # Ok::<(), stompede::stomp::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    version: Version,
    phase: Phase,
    heart_beats: u64,
    failed: Option<DecodeError>,
}

#[derive(Debug)]
enum Phase {
    /// Reading the command and header lines. Offsets are into the caller's buffer.
    Head {
        /// Bytes before this offset hold no line end we have not processed.
        scanned: usize,
        /// Start of the line being read.
        line_start: usize,
        /// Complete lines read so far (the command line included).
        lines: usize,
    },
    /// The head is parsed and removed from the buffer; waiting for the body.
    Body {
        command: Command,
        headers: Headers,
        head_len: usize,
        content_length: Option<usize>,
        /// Bytes of the body known to contain no NUL (when there is no content-length).
        scanned: usize,
    },
}

const FRESH: Phase = Phase::Head { scanned: 0, line_start: 0, lines: 0 };

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder enforcing `limits`, reading STOMP 1.2 escapes until told otherwise.
    pub fn new(limits: Limits) -> Self {
        Decoder { limits, version: Version::V1_2, phase: FRESH, heart_beats: 0, failed: None }
    }

    /// Sets the negotiated version, which decides how header values are unescaped. Call it
    /// after CONNECT: until then (and always for CONNECT and CONNECTED) nothing is unescaped.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The version used for unescaping.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many heart-beat EOLs were consumed between frames so far.
    pub fn heart_beats(&self) -> u64 {
        self.heart_beats
    }

    /// Whether a frame has been started but not finished: bytes of it sit in the buffer.
    pub fn is_mid_frame(&self) -> bool {
        !matches!(self.phase, Phase::Head { scanned: 0, lines: 0, .. })
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes.
    ///
    /// Returns `Ok(None)` when more bytes are needed (any heart-beat EOLs at the front are
    /// consumed first). After an error the stream cannot be resynchronised and every later call
    /// returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step(buf);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Phase::Head { scanned, line_start, lines } = &mut self.phase {
            // Before the command line, EOLs are heart-beats. A lone `\r` may be the first half
            // of a `\r\n` split across reads, so this is retried until a command starts.
            if *lines == 0 {
                let skipped = skip_eols(buf);
                if skipped > 0 {
                    self.heart_beats += skipped;
                    *scanned = 0;
                }
            }
            let limits = &self.limits;
            let mut head_len = None;
            while let Some(pos) = memchr::memchr(b'\n', &buf[*scanned..]) {
                let line_end = *scanned + pos;
                if line_end - *line_start > limits.max_header_line {
                    return Err(DecodeError::new(DecodeErrorKind::HeaderLineTooLong {
                        limit: limits.max_header_line,
                    }));
                }
                let line = trim_cr(&buf[*line_start..line_end]);
                *scanned = line_end + 1;
                *line_start = line_end + 1;
                if line.is_empty() && *lines > 0 {
                    head_len = Some(line_end + 1);
                    break;
                }
                *lines += 1;
                // `lines` counts the command line too.
                if *lines > limits.max_header_count.saturating_add(1) {
                    return Err(DecodeError::new(DecodeErrorKind::TooManyHeaders {
                        limit: limits.max_header_count,
                    }));
                }
                if *line_start > limits.max_frame_size {
                    return Err(frame_too_large(limits));
                }
            }
            let Some(head_len) = head_len else {
                *scanned = buf.len();
                if buf.len() - *line_start > limits.max_header_line {
                    return Err(DecodeError::new(DecodeErrorKind::HeaderLineTooLong {
                        limit: limits.max_header_line,
                    }));
                }
                if buf.len() > limits.max_frame_size {
                    return Err(frame_too_large(limits));
                }
                return Ok(None);
            };
            if head_len > limits.max_frame_size {
                return Err(frame_too_large(limits));
            }
            let head = buf.split_to(head_len).freeze();
            let (command, headers) = parse_head(head, self.version)?;
            let content_length = content_length(&headers, limits, head_len)
                .map_err(|e| e.in_frame(command, headers.get(names::RECEIPT)))?;
            self.phase = Phase::Body { command, headers, head_len, content_length, scanned: 0 };
        }
        let Phase::Body { command, headers, head_len, content_length, scanned } = &mut self.phase
        else {
            unreachable!("the head branch above always leaves the decoder in the body phase");
        };
        let body = match *content_length {
            Some(len) => {
                if buf.len() <= len {
                    return Ok(None);
                }
                if buf[len] != 0 {
                    return Err(DecodeError::new(DecodeErrorKind::MissingNul(len))
                        .in_frame(*command, headers.get(names::RECEIPT)));
                }
                take_body(buf, len)
            }
            None => {
                let nul = memchr::memchr(0, &buf[*scanned..]).map(|pos| *scanned + pos);
                // Without a NUL yet, the body is at least what has arrived, and the frame at
                // least that plus the NUL still to come: the same checks hold either way.
                let body_len = nul.unwrap_or(buf.len());
                let limits = &self.limits;
                let too_large = if body_len > limits.max_body_size {
                    Some(DecodeErrorKind::BodyTooLarge { limit: limits.max_body_size })
                } else if *head_len + body_len + 1 > limits.max_frame_size {
                    Some(DecodeErrorKind::FrameTooLarge { limit: limits.max_frame_size })
                } else {
                    None
                };
                if let Some(kind) = too_large {
                    return Err(
                        DecodeError::new(kind).in_frame(*command, headers.get(names::RECEIPT))
                    );
                }
                match nul {
                    Some(len) => take_body(buf, len),
                    None => {
                        *scanned = buf.len();
                        return Ok(None);
                    }
                }
            }
        };
        let Phase::Body { command, headers, .. } = std::mem::replace(&mut self.phase, FRESH) else {
            unreachable!("the decoder is in the body phase until the frame is taken");
        };
        Ok(Some(Frame { command, headers, body }))
    }
}

/// Removes heart-beat EOLs (`\n` or `\r\n`) from the front of `buf`; returns how many.
fn skip_eols(buf: &mut BytesMut) -> u64 {
    let mut count = 0;
    loop {
        match buf.first() {
            Some(b'\n') => buf.advance(1),
            Some(b'\r') if buf.get(1) == Some(&b'\n') => buf.advance(2),
            _ => return count,
        }
        count += 1;
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn take_body(buf: &mut BytesMut, len: usize) -> Bytes {
    let body = buf.split_to(len).freeze();
    buf.advance(1); // the NUL
    body
}

fn frame_too_large(limits: &Limits) -> DecodeError {
    DecodeError::new(DecodeErrorKind::FrameTooLarge { limit: limits.max_frame_size })
}

/// Parses the command line and header lines of `head` (which ends with the blank line).
fn parse_head(head: Bytes, version: Version) -> Result<(Command, Headers), DecodeError> {
    if std::str::from_utf8(&head).is_err() {
        return Err(DecodeError::new(DecodeErrorKind::InvalidUtf8));
    }
    let mut lines = head[..head.len() - 1].split(|&b| b == b'\n').map(trim_cr);
    let command_line = lines.next().unwrap_or_default();
    // A NUL ends a frame: inside a command or header it would let a peer smuggle a second
    // frame to every client that splits frames on NUL (stompjs 2.3.3 among them).
    if command_line.contains(&0) {
        return Err(DecodeError::new(DecodeErrorKind::NulInHead(lossy_prefix(command_line))));
    }
    let command = Command::parse(command_line).ok_or_else(|| {
        DecodeError::new(DecodeErrorKind::UnknownCommand(lossy_prefix(command_line)))
    })?;
    let escaping = Escaping::for_frame(version, command.escapes_headers());
    let mut headers = Headers::with_capacity(4);
    let mut pending_error = None;
    let base = head.as_ptr() as usize;
    for line in lines.filter(|line| !line.is_empty()) {
        let start = line.as_ptr() as usize - base;
        if line.contains(&0) {
            pending_error.get_or_insert(DecodeErrorKind::NulInHead(lossy_prefix(line)));
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            pending_error.get_or_insert(DecodeErrorKind::MalformedHeader(lossy_prefix(line)));
            continue;
        };
        if colon == 0 {
            pending_error.get_or_insert(DecodeErrorKind::EmptyHeaderName(lossy_prefix(line)));
            continue;
        }
        let name = header_text(&head, start, &line[..colon], escaping);
        let value = header_text(&head, start + colon + 1, &line[colon + 1..], escaping);
        match (name, value) {
            (Ok(name), Ok(value)) => headers.push(name, value),
            (Err(sequence), _) | (_, Err(sequence)) => {
                pending_error.get_or_insert(DecodeErrorKind::InvalidEscape {
                    header: lossy_prefix(&line[..colon]),
                    sequence,
                });
            }
        }
    }
    // Errors are raised after every header is read so the ERROR frame can carry the receipt.
    match pending_error {
        Some(kind) => Err(DecodeError::new(kind).in_frame(command, headers.get(names::RECEIPT))),
        None => Ok((command, headers)),
    }
}

/// One unescaped header name or value, sharing `head` when nothing was escaped.
fn header_text(
    head: &Bytes,
    start: usize,
    raw: &[u8],
    escaping: Escaping,
) -> Result<ByteStr, String> {
    match unescape(raw, escaping) {
        Ok(None) => {
            let shared = head.slice(start..start + raw.len());
            // SAFETY: `parse_head` checked that the whole head is UTF-8, and `raw` starts and
            // ends at ASCII bytes (line ends and the first ':'), which never fall inside a
            // multi-byte character, so the slice is UTF-8 too.
            Ok(unsafe { ByteStr::from_utf8_unchecked(shared) })
        }
        Ok(Some(owned)) => {
            // Unescaping replaces ASCII sequences by ASCII bytes, so UTF-8 is preserved.
            Ok(String::from_utf8(owned).map(ByteStr::from).unwrap_or_default())
        }
        Err(bad) => Err(bad.sequence),
    }
}

fn content_length(
    headers: &Headers,
    limits: &Limits,
    head_len: usize,
) -> Result<Option<usize>, DecodeError> {
    let Some(value) = headers.get(names::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let trimmed = value.trim();
    let invalid =
        || DecodeError::new(DecodeErrorKind::InvalidContentLength(lossy_prefix(value.as_bytes())));
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    // Digits only, so a parse failure is an overflow: certainly over any limit.
    let len = trimmed.parse::<usize>().unwrap_or(usize::MAX);
    if len > limits.max_body_size {
        return Err(DecodeError::new(DecodeErrorKind::BodyTooLarge {
            limit: limits.max_body_size,
        }));
    }
    if head_len.saturating_add(len).saturating_add(1) > limits.max_frame_size {
        return Err(frame_too_large(limits));
    }
    Ok(Some(len))
}

/// The start of a peer's bytes, made printable for an error message.
fn lossy_prefix(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let mut text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned();
    if bytes.len() > MAX {
        text.push('…');
    }
    text
}
