//! Header escaping (STOMP 1.1 and 1.2, "Value Encoding").
//!
//! 1.2 defines `\r`, `\n`, `\c` and `\\`; 1.1 defines the same without `\r`; 1.0 and the
//! CONNECT/CONNECTED frames of every version define none. An undefined escape sequence is a
//! fatal protocol error.

use std::mem::MaybeUninit;

use bytes::{BufMut, BytesMut};

use super::Version;

/// How header text is escaped in one frame: decided by the version and the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// Header text is taken literally (1.0, CONNECT, CONNECTED).
    None,
    /// `\n`, `\c`, `\\` (1.1).
    V1_1,
    /// `\r`, `\n`, `\c`, `\\` (1.2).
    V1_2,
}

impl Escaping {
    pub(crate) fn for_frame(version: Version, escapes_headers: bool) -> Escaping {
        match (version, escapes_headers) {
            (_, false) | (Version::V1_0, _) => Escaping::None,
            (Version::V1_1, true) => Escaping::V1_1,
            (Version::V1_2, true) => Escaping::V1_2,
        }
    }
}

/// Why an escaped header could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BadEscape {
    /// The sequence as it appeared, for the error message (`"\\t"`, or `"\\"` at the end).
    pub(crate) sequence: String,
}

/// Decodes escape sequences. Returns `Ok(None)` when `raw` needs no change, so the caller can
/// keep sharing the received bytes.
pub(crate) fn unescape(raw: &[u8], escaping: Escaping) -> Result<Option<Vec<u8>>, BadEscape> {
    if escaping == Escaping::None {
        return Ok(None);
    }
    let Some(first) = memchr::memchr(b'\\', raw) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let decoded = match raw.get(i + 1) {
            Some(b'n') => b'\n',
            Some(b'c') => b':',
            Some(b'\\') => b'\\',
            Some(b'r') if escaping == Escaping::V1_2 => b'\r',
            Some(&other) => {
                let mut sequence = String::from("\\");
                sequence.push_str(&String::from_utf8_lossy(&[other]));
                return Err(BadEscape { sequence });
            }
            None => return Err(BadEscape { sequence: "\\".to_owned() }),
        };
        out.push(decoded);
        i += 2;
    }
    Ok(Some(out))
}

/// What a NUL byte in header text is written as: no STOMP version can represent one there (a
/// NUL ends a frame), so it becomes U+FFFD, the Unicode replacement character.
const NUL_REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// The bytes each way of writing header text must replace, as bits of [`SPECIAL`].
const RAW_VALUE: u8 = 1;
const RAW_NAME: u8 = 2;
const V1_1: u8 = 4;
const V1_2: u8 = 8;

/// For every byte, the ways of writing header text that must replace it: `\n` and NUL in
/// all; `\r` where there is no escape for it (none) or there is (1.2), not in 1.1; `:` and
/// `\\` in 1.1 and 1.2, and `:` in a name where there are no escapes.
static SPECIAL: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'\n' as usize] = RAW_VALUE | RAW_NAME | V1_1 | V1_2;
    table[0] = RAW_VALUE | RAW_NAME | V1_1 | V1_2;
    table[b'\r' as usize] = RAW_VALUE | RAW_NAME | V1_2;
    table[b':' as usize] = RAW_NAME | V1_1 | V1_2;
    table[b'\\' as usize] = V1_1 | V1_2;
    table
};

/// Whether `text` holds a byte that some way of writing header text replaces (below 0x0E, a
/// colon or a backslash: a superset of every [`SPECIAL`] entry). False means nothing to
/// escape, whatever the escaping. Eight bytes at a time (a frame's header text is a few dozen
/// bytes).
pub(crate) fn may_need_escaping(text: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of the result is set where that byte of `word` is below `n`
    // (n <= 128), and only there if none is (the usual zero-byte test, widened).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let flagged = |word: u64| {
        below(word, 0x0E)
            | below(word ^ (ONES * u64::from(b':')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
    };
    let word_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&text[at..at + 8]);
        u64::from_ne_bytes(word)
    };
    if text.len() < 8 {
        // Padded with a byte that is never flagged, one byte at a time (a copy of a length
        // known only now is a call to memcpy).
        let mut word = [b'a'; 8];
        for (slot, &b) in word.iter_mut().zip(text) {
            *slot = b;
        }
        return flagged(u64::from_ne_bytes(word)) != 0;
    }
    let mut at = 0;
    while at + 8 <= text.len() {
        if flagged(word_at(at)) != 0 {
            return true;
        }
        at += 8;
    }
    // The last few bytes: the last eight, overlapping bytes already looked at.
    at < text.len() && flagged(word_at(text.len() - 8)) != 0
}

/// Appends the header line `name:value\n`, escaped for `escaping`: one room check and four
/// plain appends when neither part has anything to escape (almost always).
#[inline]
pub(crate) fn write_header(out: &mut BytesMut, name: &[u8], value: &[u8], escaping: Escaping) {
    if !may_need_escaping(name) && !may_need_escaping(value) {
        put_all(out, [name, b":", value, b"\n"]);
        return;
    }
    escape_into(out, name, escaping, true);
    out.put_u8(b':');
    escape_into(out, value, escaping, false);
    out.put_u8(b'\n');
}

/// Appends `parts` to `out` in order, with one check for room (`BytesMut::put_slice` checks
/// at every part, and a header line has four).
#[inline(always)]
pub(crate) fn put_all<const N: usize>(out: &mut BytesMut, parts: [&[u8]; N]) {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    out.reserve(total);
    let spare = out.spare_capacity_mut();
    let mut at = 0;
    for part in parts {
        put_uninit(&mut spare[at..], part);
        at += part.len();
    }
    // SAFETY: the first `total` bytes after the old length were just written.
    unsafe { out.set_len(out.len() + total) };
}

/// Copies `bytes` to the start of `out` (which has room for them: it panics otherwise).
#[inline(always)]
pub(crate) fn put_uninit(out: &mut [MaybeUninit<u8>], bytes: &[u8]) {
    let out = &mut out[..bytes.len()];
    // SAFETY: `out` is `bytes.len()` long and `MaybeUninit<u8>` has the layout of `u8`; the
    // two cannot overlap, `out` being borrowed mutably. (What `write_copy_of_slice` does, which
    // is newer than this crate's minimum Rust; a loop of byte writes is not made a `memcpy`.)
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), out.len())
    }
}

/// Appends `text` to `out`, escaped for `escaping`.
///
/// Where no escaping exists (1.0, CONNECT, CONNECTED) a line break inside a header cannot be
/// represented; CR and LF are written as a space so the frame stays well-formed, and a `:` in a
/// header *name* is written as `_` (`name == true`). A NUL can be represented by no version:
/// it is written as U+FFFD, so an encoded head never contains a NUL (a peer splitting frames on
/// NUL would otherwise read the rest of the header as a second frame).
pub(crate) fn escape_into(out: &mut BytesMut, text: &[u8], escaping: Escaping, name: bool) {
    let mask = match (escaping, name) {
        (Escaping::None, false) => RAW_VALUE,
        (Escaping::None, true) => RAW_NAME,
        (Escaping::V1_1, _) => V1_1,
        (Escaping::V1_2, _) => V1_2,
    };
    let special = |b: u8| SPECIAL[usize::from(b)] & mask != 0;
    // Almost all header text has nothing to escape: eight bytes at a time find out, and only
    // text with a byte that may need it is looked at byte by byte.
    if !may_need_escaping(text) || !text.iter().any(|&b| special(b)) {
        out.put_slice(text);
        return;
    }
    out.reserve(text.len() + 8);
    for &b in text {
        if !special(b) {
            out.put_u8(b);
            continue;
        }
        match (escaping, b) {
            (_, 0) => out.put_slice(NUL_REPLACEMENT),
            (Escaping::None, b':') => out.put_u8(b'_'),
            (Escaping::None, _) => out.put_u8(b' '),
            (_, b'\n') => out.put_slice(b"\\n"),
            (_, b'\r') => out.put_slice(b"\\r"),
            (_, b':') => out.put_slice(b"\\c"),
            (_, _) => out.put_slice(b"\\\\"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(text: &str, escaping: Escaping) -> String {
        let mut out = BytesMut::new();
        escape_into(&mut out, text.as_bytes(), escaping, false);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn the_fast_check_flags_every_byte_any_escaping_replaces() {
        // At every position of texts long enough for whole words and a remainder, and beside
        // the bytes the word test is most likely to confuse with them.
        for special in (0u8..=255).filter(|&b| SPECIAL[usize::from(b)] != 0) {
            for len in 1..=19 {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = special;
                    assert!(may_need_escaping(&text), "{special:#x} at {at} of {len}");
                }
            }
        }
        for clean in [
            &b"/topic/greetings"[..],
            b"message-id",
            b"text/plain;charset=utf-8",
            "h\u{e9}llo w\u{f6}rld \u{1F600}".as_bytes(),
            b"\x0e\x0f \x7f\xff;=9[]{}",
            b"",
        ] {
            assert!(!may_need_escaping(clean), "{clean:?}");
        }
    }

    #[test]
    fn v12_escapes_all_four() {
        assert_eq!(esc("a:b\nc\rd\\e", Escaping::V1_2), "a\\cb\\nc\\rd\\\\e");
    }

    #[test]
    fn v11_has_no_carriage_return_escape() {
        assert_eq!(esc("a\rb:", Escaping::V1_1), "a\rb\\c");
        assert_eq!(unescape(b"a\\rb", Escaping::V1_1), Err(BadEscape { sequence: "\\r".into() }));
    }

    #[test]
    fn no_escaping_keeps_backslashes_and_replaces_line_breaks() {
        assert_eq!(esc("a\\b:c\nd", Escaping::None), "a\\b:c d");
        assert_eq!(unescape(b"a\\tb", Escaping::None), Ok(None));
    }

    #[test]
    fn a_nul_is_never_written_into_header_text() {
        for escaping in [Escaping::None, Escaping::V1_1, Escaping::V1_2] {
            assert_eq!(esc("a\0b", escaping), "a\u{FFFD}b");
        }
    }

    #[test]
    fn undefined_and_dangling_escapes_are_errors() {
        assert_eq!(unescape(b"\\t", Escaping::V1_2), Err(BadEscape { sequence: "\\t".into() }));
        assert_eq!(unescape(b"abc\\", Escaping::V1_2), Err(BadEscape { sequence: "\\".into() }));
    }

    #[test]
    fn unescape_leaves_plain_text_shared() {
        assert_eq!(unescape(b"plain value", Escaping::V1_2), Ok(None));
        assert_eq!(unescape(b"x\\c\\\\\\n\\r", Escaping::V1_2), Ok(Some(b"x:\\\n\r".to_vec())));
    }
}
