//! The incremental, bounded frame decoder.
//!
//! Bytes arrive in any pieces; the caller appends them to a [`BytesMut`] and calls
//! [`Decoder::decode`] until it returns `Ok(None)`. The decoder remembers how far it has
//! scanned, so a frame that trickles in byte by byte is still read in linear time, and it fails
//! as soon as a frame exceeds a limit, so the buffer never holds more than one frame's worth.

use bytes::{Buf, Bytes, BytesMut};

use super::escape::{Escaping, unescape};
use super::headers::{RawLine, known_name};
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
    /// The lines of the head being read (command line first), found in the one pass over
    /// its bytes; reused from frame to frame.
    lines: Vec<Line>,
    heart_beats: u64,
    failed: Option<DecodeError>,
    /// The head of the last SEND read the long way, and what it was read as: a publisher
    /// sends the same head again and again (the same destination and headers, a body of the
    /// same length), and a head that is byte for byte that one is read as it was, without a
    /// scan. Made at the first plain SEND (see `remember`): a session that never publishes
    /// holds none, one that does at most about 500 bytes (`LAST_HEAD_MAX` bytes and
    /// `LAST_HEAD_LINES` lines, each list sized exactly).
    last_send: Option<Box<LastHead>>,
    /// Counts the changes of `last_send` (see [`recalled`](Decoder::recalled)).
    kept: u64,
    /// Whether the head of the frame being read (or the last one returned) was recognised as
    /// `last_send`'s.
    recalled: bool,
    /// How many heads were recognised as the last SEND's (for the tests).
    #[cfg(test)]
    pub(crate) recalls: u64,
}

/// A SEND's head the decoder read, kept to recognise it (see `Decoder::last_send`).
///
/// Invariant (`Decoder::recall` relies on it for `Headers::from_head`'s contract): `lines`
/// and `verbatim` are what `parse_head` found in `bytes`, a whole head read the long way
/// (so its lines meet that contract for these bytes); only `remember` writes them, all
/// together, from headers `parse_head` has just made.
#[derive(Debug)]
struct LastHead {
    /// The head's bytes, its blank line included.
    bytes: Vec<u8>,
    /// Its header lines (offsets into `bytes`, which hold nothing to unescape).
    lines: Vec<RawLine>,
    /// Whether every line is verbatim (see `Line::verbatim`).
    verbatim: bool,
    /// What its `content-length` said (checked against the limits then: the same bytes pass
    /// the same checks).
    content_length: Option<usize>,
}

/// The longest head the decoder keeps to recognise (a SEND's head is usually under a
/// hundred bytes; a longer one is read the long way every time).
const LAST_HEAD_MAX: usize = 256;

/// The most header lines the decoder keeps to recognise with a head (sixteen lines of a
/// head of at most `LAST_HEAD_MAX` bytes: more is unusual, and read the long way).
const LAST_HEAD_LINES: usize = 16;

/// One line of a head: offsets into the caller's buffer, found while scanning for its end.
/// 32-bit, so that what a session keeps between frames stays small (a head is never longer
/// than 4 GiB: see `MAX_HEAD`).
#[derive(Clone, Copy, Debug)]
struct Line {
    start: u32,
    /// The end, a trailing CR excluded.
    end: u32,
    /// The first `:`, or `NO_COLON`.
    colon: u32,
    /// Whether the line holds a NUL or a `\\`, which need a closer look.
    special: bool,
    /// Whether the line holds no second `:` and no `\r` but the one before its `\n`: then no
    /// way of writing header text (escaped or not) changes a byte of it.
    verbatim: bool,
}

const NO_COLON: u32 = u32::MAX;

/// The longest head the decoder reads, whatever `max_frame_size` allows: offsets in it fit
/// in a `u32`.
const MAX_HEAD: usize = u32::MAX as usize - 1;

impl Line {
    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    fn colon(&self) -> Option<usize> {
        (self.colon != NO_COLON).then_some(self.colon as usize)
    }
}

/// While more bytes wait, the decoder keeps room for this many lines between frames (a CONNECT
/// has about six); a frame with more gives the rest back. With nothing left to decode it keeps
/// none: an idle session holds no line table.
const KEPT_LINES: usize = 8;

#[derive(Debug)]
enum Phase {
    /// Reading the command and header lines. Offsets are into the caller's buffer.
    Head {
        /// Bytes before this offset have been scanned.
        scanned: usize,
        /// Start of the line being read.
        line_start: usize,
        /// The first `:` of the line being read, if seen.
        colon: Option<usize>,
        /// Whether the line being read holds a NUL or a `\\`.
        special: bool,
        /// Whether the line being read holds a second `:`, or a `\r` not followed by `\n`
        /// (see `Line::verbatim`).
        odd: bool,
        /// Whether the head holds a byte outside ASCII (then it is checked to be UTF-8).
        non_ascii: bool,
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

const FRESH: Phase = Phase::Head {
    scanned: 0,
    line_start: 0,
    colon: None,
    special: false,
    odd: false,
    non_ascii: false,
};

/// What the head scan must notice in a byte: [`CLASS`] maps each byte to these bits.
const EOL: u8 = 1;
const COLON: u8 = 2;
const SPECIAL: u8 = 4;
const NON_ASCII: u8 = 8;
const CR: u8 = 16;

/// Every byte's class: most are 0, so the scan's inner loop is one table load and a test.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0x80;
    while b < 256 {
        table[b] = NON_ASCII;
        b += 1;
    }
    table[b'\n' as usize] = EOL;
    table[b':' as usize] = COLON;
    table[b'\\' as usize] = SPECIAL;
    table[b'\r' as usize] = CR;
    table[0] = SPECIAL;
    table
};

/// How many bytes [`next_with_class_wide`] looks at at once: sixteen where SSE2 is there
/// (every x86-64 processor), else eight.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const WIDE: usize = 16;
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
const WIDE: usize = 8;

/// [`next_with_class`] for [`WIDE`] bytes: with SSE2, sixteen bytes compared with each of the
/// five ASCII bytes that have a class, and their top bits (bytes of 0x80 and up), in about a
/// dozen instructions (the eight-byte word took twenty-two).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn next_with_class_wide(chunk: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is enabled (the `cfg` above), and the load reads the sixteen bytes the
    // assertion guarantees (unaligned loads are allowed).
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let found = _mm_or_si128(
            _mm_or_si128(_mm_or_si128(is(b'\n'), is(b':')), is(b'\r')),
            _mm_or_si128(is(b'\\'), _mm_cmpeq_epi8(v, _mm_setzero_si128())),
        );
        // The top bit of each byte: the found ones, and those of 0x80 and up.
        (_mm_movemask_epi8(found) | _mm_movemask_epi8(v)) as u32
    };
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn next_with_class_wide(chunk: &[u8]) -> Option<usize> {
    next_with_class(&chunk[..8])
}

/// Where the first byte of `word` (eight bytes) with a [`CLASS`] other than 0 is, if any: a
/// NUL, `\n`, `\r`, `:`, `\\` or a byte of 0x80 or more. Whole words at once (SWAR): the usual
/// zero-byte test marks the lowest zero byte exactly (the bits it may set wrongly are all
/// above it), so the lowest mark of all is the first such byte.
#[inline]
fn next_with_class(word: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(word);
    // Little-endian whatever the machine: the first byte is the lowest.
    let w = u64::from_le_bytes(bytes);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let marks = zero(w)
        | zero(w ^ (ONES * u64::from(b'\n')))
        | zero(w ^ (ONES * u64::from(b':')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | zero(w ^ (ONES * u64::from(b'\r')))
        | (w & HIGHS);
    (marks != 0).then(|| (marks.trailing_zeros() / 8) as usize)
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder enforcing `limits`, reading STOMP 1.2 escapes until told otherwise.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            version: Version::V1_2,
            phase: FRESH,
            lines: Vec::new(),
            heart_beats: 0,
            failed: None,
            last_send: None,
            kept: 0,
            recalled: false,
            #[cfg(test)]
            recalls: 0,
        }
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
        !matches!(self.phase, Phase::Head { scanned: 0, .. }) || !self.lines.is_empty()
    }

    /// When the head of the frame [`decode`](Self::decode) returned last was byte for byte a
    /// head the decoder keeps (a SEND's it read before), which one: a number that is another
    /// for every head it keeps. Frames with the same number have the same command and
    /// headers: a caller may keep what it made of one for the others.
    pub(crate) fn recalled(&self) -> Option<u64> {
        self.recalled.then_some(self.kept)
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes.
    ///
    /// Returns `Ok(None)` when more bytes are needed (any heart-beat EOLs at the front are
    /// consumed first). After an error the stream cannot be resynchronised and every later call
    /// returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        self.decode_knowing(buf, None)
    }

    /// [`decode`](Self::decode), for a caller that keeps what it made of the head numbered
    /// `known` (see [`recalled`](Self::recalled)): a frame whose head is that one comes with
    /// no headers (they are the known head's; none are made to be dropped unread).
    pub(crate) fn decode_knowing(
        &mut self,
        buf: &mut BytesMut,
        known: Option<u64>,
    ) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step(buf, known == Some(self.kept));
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut, known: bool) -> Result<Option<Frame>, DecodeError> {
        // A fresh frame whose head is the last SEND's, byte for byte, is read as that one was
        // (heart-beats in front of it are consumed and counted first, as below).
        if matches!(self.phase, Phase::Head { scanned: 0, .. })
            && self.lines.is_empty()
            && self.last_send.is_some()
        {
            self.heart_beats += skip_eols(buf);
            if let Some(phase) = self.recall(buf, known) {
                self.phase = phase;
                self.recalled = true;
                #[cfg(test)]
                {
                    self.recalls += 1;
                }
            }
        }
        if let Phase::Head { scanned, line_start, colon, special, odd, non_ascii } = &mut self.phase
        {
            // Before the command line, EOLs are heart-beats. A lone `\r` may be the first half
            // of a `\r\n` split across reads, so this is retried until a command starts.
            if self.lines.is_empty() {
                let skipped = skip_eols(buf);
                if skipped > 0 {
                    self.heart_beats += skipped;
                    (*scanned, *line_start, *colon, *special, *odd) = (0, 0, None, false, false);
                }
            }
            let limits = &self.limits;
            // Offsets in a head fit in 32 bits (`Line`), whatever `max_frame_size` allows.
            let max_head = limits.max_frame_size.min(MAX_HEAD);
            let mut head_len = None;
            let bytes = &buf[..];
            let mut i = *scanned;
            // A `\r` that ended the last bytes scanned, inside a line: followed by a `\n` it
            // ends the line, otherwise it is part of it (see `Line::verbatim`).
            if i > *line_start
                && bytes.get(i - 1) == Some(&b'\r')
                && bytes.get(i).is_some_and(|&b| b != b'\n')
            {
                *odd = true;
            }
            // One pass over the head: line ends, each line's first colon, and the bytes that
            // need a closer look, so parsing the head scans nothing again.
            while i < bytes.len() {
                // Eight bytes at a time up to the next byte with a class (most header text
                // has none), then that byte.
                if let Some(chunk) = bytes.get(i..i + WIDE) {
                    match next_with_class_wide(chunk) {
                        None => {
                            i += WIDE;
                            continue;
                        }
                        Some(at) => i += at,
                    }
                } else if let Some(word) = bytes.get(i..i + 8) {
                    match next_with_class(word) {
                        None => {
                            i += 8;
                            continue;
                        }
                        Some(at) => i += at,
                    }
                }
                let class = CLASS[usize::from(bytes[i])];
                if class == 0 {
                    i += 1;
                    continue;
                }
                if class & EOL == 0 {
                    if class & COLON != 0 {
                        match colon {
                            Some(_) => *odd = true,
                            None => *colon = Some(i),
                        }
                    }
                    // A `\r` last in the bytes so far is decided when the next one arrives
                    // (at the top of the loop).
                    if class & CR != 0 && bytes.get(i + 1).is_some_and(|&next| next != b'\n') {
                        *odd = true;
                    }
                    *special |= class & SPECIAL != 0;
                    *non_ascii |= class & NON_ASCII != 0;
                    i += 1;
                    continue;
                }
                if i - *line_start > limits.max_header_line {
                    return Err(DecodeError::new(DecodeErrorKind::HeaderLineTooLong {
                        limit: limits.max_header_line,
                    }));
                }
                let end = if i > *line_start && bytes[i - 1] == b'\r' { i - 1 } else { i };
                if end == *line_start && !self.lines.is_empty() {
                    head_len = Some(i + 1);
                    break;
                }
                // Every offset is at most `MAX_HEAD` (checked below, a line at a time).
                let offset = |at: usize| u32::try_from(at).unwrap_or(NO_COLON - 1);
                self.lines.push(Line {
                    start: offset(*line_start),
                    end: offset(end),
                    colon: colon.take().map_or(NO_COLON, offset),
                    special: std::mem::take(special),
                    verbatim: !std::mem::take(odd),
                });
                i += 1;
                *line_start = i;
                // `lines` counts the command line too.
                if self.lines.len() > limits.max_header_count.saturating_add(1) {
                    return Err(DecodeError::new(DecodeErrorKind::TooManyHeaders {
                        limit: limits.max_header_count,
                    }));
                }
                if i > max_head {
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
                if buf.len() > max_head {
                    return Err(frame_too_large(limits));
                }
                return Ok(None);
            };
            if head_len > max_head {
                return Err(frame_too_large(limits));
            }
            let non_ascii = *non_ascii;
            let head = buf.split_to(head_len).freeze();
            let parsed = parse_head(head, &self.lines, non_ascii, self.version);
            self.lines.clear();
            self.lines.shrink_to(KEPT_LINES);
            let (command, headers) = parsed?;
            let content_length = content_length(&headers, limits, head_len)
                .map_err(|e| e.in_frame(command, headers.get(names::RECEIPT)))?;
            if command == Command::Send && remember(&mut self.last_send, &headers, content_length) {
                self.kept += 1;
            }
            self.recalled = false;
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
        if buf.is_empty() {
            self.lines = Vec::new();
        }
        Ok(Some(Frame { command, headers, body }))
    }
}

impl Decoder {
    /// The body phase of the frame at the front of `buf`, when its head is the last SEND's
    /// (taken off `buf`); `None` leaves `buf` as it was. With `known`, the caller knows the
    /// head already, and the frame gets no headers.
    #[inline]
    fn recall(&self, buf: &mut BytesMut, known: bool) -> Option<Phase> {
        let last = self.last_send.as_deref()?;
        if !buf.starts_with(&last.bytes) {
            return None;
        }
        let head_len = last.bytes.len();
        if known {
            // (A head with a receipt is never kept: the body's errors name none either way.)
            buf.advance(head_len);
            return Some(Phase::Body {
                command: Command::Send,
                headers: Headers::new(),
                head_len,
                content_length: last.content_length,
                scanned: 0,
            });
        }
        let head = buf.split_to(head_len).freeze();
        // The same bytes as a head read the long way, so the same checks pass: limits (the
        // decoder's own, which never change), UTF-8, the lines and the content-length. Where
        // a head ends depends on its bytes alone, so no other head starts with a whole one.
        // SAFETY: `buf` started with `last.bytes`, so `head` is exactly those bytes, whose
        // lines met `from_head`'s contract when they were read (see `LastHead`).
        let headers =
            unsafe { Headers::from_head(head, last.lines.iter().copied(), last.verbatim) };
        Some(Phase::Body {
            command: Command::Send,
            headers,
            head_len,
            content_length: last.content_length,
            scanned: 0,
        })
    }
}

/// Keeps the head of a SEND just read the long way in `last` (reusing its room), when it is
/// kept as lines (nothing to unescape) and short enough; otherwise forgets the last one. A
/// head with a `receipt` changes nothing: its receipt id is each SEND's own (a publisher
/// asking for a receipt now and then keeps its plain head recognised), nor does the kept head
/// read the long way again. Returns whether `last` changed. `headers` come straight from `parse_head`: their lines are all the head's (a
/// later `retain_after` leaves out some).
fn remember(
    last: &mut Option<Box<LastHead>>,
    headers: &Headers,
    content_length: Option<usize>,
) -> bool {
    if headers.contains(names::RECEIPT) {
        return false;
    }
    match headers.raw_lines() {
        Some((head, lines, verbatim))
            if head.len() <= LAST_HEAD_MAX && lines.len() <= LAST_HEAD_LINES =>
        {
            // The same head read the long way (it came in pieces, so it was not recognised
            // at its start): kept as it is, with its number.
            if last.as_ref().is_some_and(|last| last.bytes == head[..]) {
                return false;
            }
            let last = last.get_or_insert_with(|| {
                Box::new(LastHead {
                    bytes: Vec::new(),
                    lines: Vec::new(),
                    verbatim: false,
                    content_length: None,
                })
            });
            // Sized exactly: the room kept is the longest head's, not a doubling past it.
            last.bytes.clear();
            last.bytes.reserve_exact(head.len());
            last.bytes.extend_from_slice(head);
            last.lines.clear();
            last.lines.reserve_exact(lines.len());
            last.lines.extend_from_slice(lines);
            last.verbatim = verbatim;
            last.content_length = content_length;
            true
        }
        _ => last.take().is_some(),
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

fn take_body(buf: &mut BytesMut, len: usize) -> Bytes {
    let body = buf.split_to(len).freeze();
    buf.advance(1); // the NUL
    body
}

fn frame_too_large(limits: &Limits) -> DecodeError {
    DecodeError::new(DecodeErrorKind::FrameTooLarge { limit: limits.max_frame_size })
}

/// Parses the command line and header lines of `head` (which ends with the blank line), whose
/// `lines` the scan for its end has found.
///
/// A header line with no NUL and no `\\`, the common case, becomes two slices of `head` (a
/// well-known name becomes a static string) without looking at its bytes again.
fn parse_head(
    head: Bytes,
    lines: &[Line],
    non_ascii: bool,
    version: Version,
) -> Result<(Command, Headers), DecodeError> {
    if non_ascii && std::str::from_utf8(&head).is_err() {
        return Err(DecodeError::new(DecodeErrorKind::InvalidUtf8));
    }
    let Some((first, header_lines)) = lines.split_first() else {
        return Err(DecodeError::new(DecodeErrorKind::UnknownCommand(String::new())));
    };
    let command_line = &head[first.range()];
    // A NUL ends a frame: inside a command or header it would let a peer smuggle a second
    // frame to every client that splits frames on NUL (stompjs 2.3.3 among them).
    if first.special && command_line.contains(&0) {
        return Err(DecodeError::new(DecodeErrorKind::NulInHead(lossy_prefix(command_line))));
    }
    let command = Command::parse(command_line).ok_or_else(|| {
        DecodeError::new(DecodeErrorKind::UnknownCommand(lossy_prefix(command_line)))
    })?;
    // The usual head: every line a name, a colon and a value, with nothing to unescape. Its
    // headers stay lines of the head; no string is made for them.
    let plain = |line: &Line| !line.special && line.colon().is_some_and(|c| c > line.range().start);
    if !header_lines.is_empty() && header_lines.iter().all(plain) {
        let lines = header_lines.iter().map(|line| RawLine {
            start: line.start,
            colon: line.colon,
            end: line.end,
        });
        let verbatim = header_lines.iter().all(|line| line.verbatim);
        // SAFETY: the head is UTF-8 (all ASCII, or checked above); each line runs from a line
        // start to a line end within the head, its first ':' after its start; no line holds a
        // NUL or a `\\` (`special`), so nothing needs unescaping; `verbatim` is what the scan
        // found of every line.
        return Ok((command, unsafe { Headers::from_head(head, lines, verbatim) }));
    }
    let escaping = Escaping::for_frame(version, command.escapes_headers());
    let mut headers = Headers::with_capacity(header_lines.len());
    let mut pending_error = None;
    for line in header_lines {
        let raw = &head[line.range()];
        if line.special && raw.contains(&0) {
            pending_error.get_or_insert(DecodeErrorKind::NulInHead(lossy_prefix(raw)));
            continue;
        }
        let Some(colon) = line.colon() else {
            pending_error.get_or_insert(DecodeErrorKind::MalformedHeader(lossy_prefix(raw)));
            continue;
        };
        let start = line.range().start;
        if colon == start {
            pending_error.get_or_insert(DecodeErrorKind::EmptyHeaderName(lossy_prefix(raw)));
            continue;
        }
        let (raw_name, raw_value) = (&head[start..colon], &head[colon + 1..line.range().end]);
        if !line.special {
            // SAFETY: the whole head is UTF-8 (all ASCII, or checked above), and both slices
            // start and end at ASCII bytes (line ends and the first ':'), which never fall
            // inside a multi-byte character, so they are UTF-8 too.
            let name = match known_name(raw_name) {
                Some(name) => ByteStr::from_static(name),
                None => unsafe { ByteStr::from_utf8_unchecked(head.slice_ref(raw_name)) },
            };
            let value = unsafe { ByteStr::from_utf8_unchecked(head.slice_ref(raw_value)) };
            headers.push(name, value);
            continue;
        }
        let name = header_text(&head, start, raw_name, escaping);
        let value = header_text(&head, colon + 1, raw_value, escaping);
        match (name, value) {
            (Ok(name), Ok(value)) => headers.push(name, value),
            (Err(sequence), _) | (_, Err(sequence)) => {
                pending_error.get_or_insert(DecodeErrorKind::InvalidEscape {
                    header: lossy_prefix(raw_name),
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
    // Almost always a few digits and nothing else, read in one pass (a Unicode-aware trim
    // cost more than the rest of the check); otherwise trimmed first.
    let len = match digits_value(value.as_bytes()) {
        Some(len) => len,
        None => match digits_value(value.trim().as_bytes()) {
            Some(len) => len,
            None => {
                let text = lossy_prefix(value.as_bytes());
                return Err(DecodeError::new(DecodeErrorKind::InvalidContentLength(text)));
            }
        },
    };
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

/// The value of decimal `digits` (at least one, nothing else); one too large for a `usize` is
/// `usize::MAX` (certainly over any limit).
fn digits_value(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    let mut value = 0usize;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.saturating_mul(10).saturating_add(usize::from(digit));
    }
    Some(value)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wide_scan_finds_the_first_byte_with_a_class() {
        for at in 0..WIDE {
            for special in [b'\n', b'\r', b':', b'\\', 0, 0x80, 0xC3, 0xFF] {
                let mut chunk = [b'a'; 24];
                chunk[at] = special;
                assert_eq!(next_with_class_wide(&chunk), Some(at), "{special:#x} at {at}");
                // A later one does not hide it.
                chunk[WIDE - 1] = b':';
                assert_eq!(next_with_class_wide(&chunk), Some(at));
            }
        }
        // Bytes after the scanned ones do not count.
        let mut chunk = [b'z'; 24];
        chunk[WIDE] = b'\n';
        assert_eq!(next_with_class_wide(&chunk), None);
    }

    #[test]
    fn the_word_scan_finds_the_first_byte_with_a_class() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let expected = (CLASS[usize::from(b)] != 0).then_some(at);
                assert_eq!(next_with_class(&word), expected, "{b:#x} at {at}");
                // With another such byte after it (which the zero test may blur): still `at`.
                for later in [0u8, b'\n', b'\r', b':', b'\\', 0x80, 0x01] {
                    for after in at + 1..8 {
                        let mut word = word;
                        word[after] = later;
                        let first = expected.unwrap_or(after);
                        let first = if CLASS[usize::from(later)] == 0 && expected.is_none() {
                            None
                        } else {
                            Some(first)
                        };
                        assert_eq!(next_with_class(&word), first, "{b:#x}@{at} {later:#x}@{after}");
                    }
                }
            }
        }
    }
}
