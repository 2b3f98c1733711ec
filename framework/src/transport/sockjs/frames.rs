//! SockJS framing (protocol 0.3.3): the open, heart-beat, message-array and close frames the
//! server sends, and the JSON the client sends.

use bytes::Bytes;

/// The open frame.
pub(crate) const OPEN: &str = "o";
/// The heart-beat frame.
pub(crate) const HEARTBEAT: &str = "h";

/// A close frame's code and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

impl Close {
    /// The server closed the session.
    pub(crate) const GO_AWAY: Close = Close { code: 3000, reason: "Go away!" };
    /// A second receiving request while one is attached.
    pub(crate) const ANOTHER_CONNECTION: Close =
        Close { code: 2010, reason: "Another connection still open" };

    /// `c[3000,"Go away!"]`.
    pub(crate) fn frame(self) -> String {
        format!("c[{},{}]", self.code, quote(self.reason))
    }
}

/// `a["m1","m2"]`: messages (STOMP frames, as text) in one frame. Bytes that are not UTF-8
/// are replaced (SockJS carries text only).
pub(crate) fn messages(messages: &[Bytes]) -> String {
    let mut out = String::with_capacity(messages.iter().map(|m| m.len() + 8).sum::<usize>() + 3);
    out.push_str("a[");
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quote_into(&String::from_utf8_lossy(message), &mut out);
    }
    out.push(']');
    out
}

/// `text` as a JSON string, escaped the way SockJS requires: control characters, and the
/// characters some browsers or proxies mangle (SockJS's list), as `\uXXXX`; characters outside
/// the BMP as escaped surrogate pairs.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    quote_into(text, &mut out);
    out
}

fn quote_into(text: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn needs_escape(c: char) -> bool {
    matches!(c as u32,
        0x0000..=0x001f | 0x007f..=0x009f | 0x00ad | 0x0600..=0x0604 | 0x070f | 0x17b4 | 0x17b5
        | 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfeff | 0xfff0..=0xffff
        | 0x10000..)
}

/// Why a client's message could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The body is empty.
    Empty,
    /// The body is not a JSON array of strings (nor a JSON string).
    Broken,
}

/// The messages of a client's `xhr_send` body or SockJS WebSocket message: a JSON array of
/// strings (or, over WebSocket, a single JSON string).
pub(crate) fn decode(body: &[u8]) -> Result<Vec<String>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    if let Ok(messages) = serde_json::from_slice::<Vec<String>>(body) {
        return Ok(messages);
    }
    serde_json::from_slice::<String>(body).map(|m| vec![m]).map_err(|_| BodyError::Broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(Close::GO_AWAY.frame(), r#"c[3000,"Go away!"]"#);
        assert_eq!(Close::ANOTHER_CONNECTION.frame(), r#"c[2010,"Another connection still open"]"#);
        let stomp = Bytes::from_static(b"MESSAGE\ndestination:/topic/a\n\n\"hi\"\0");
        assert_eq!(
            messages(&[stomp, Bytes::from_static(b"\n")]),
            r#"a["MESSAGE\ndestination:/topic/a\n\n\"hi\"\u0000","\n"]"#
        );
    }

    #[test]
    fn sockjs_escapes() {
        assert_eq!(quote("a\u{2028}b\u{ad}"), r#""a\u2028b\u00ad""#);
        assert_eq!(quote("\u{1f600}"), r#""\ud83d\ude00""#);
        assert_eq!(quote("é\\"), r#""é\\""#);
    }

    #[test]
    fn client_messages() {
        assert_eq!(decode(br#"["a","b\u0000"]"#), Ok(vec!["a".into(), "b\0".into()]));
        assert_eq!(decode(br#""one""#), Ok(vec!["one".into()]));
        assert_eq!(decode(b""), Err(BodyError::Empty));
        assert_eq!(decode(b"[\"x\""), Err(BodyError::Broken));
        assert_eq!(decode(b"[1]"), Err(BodyError::Broken));
    }
}
