//! Ordered frame headers, with the standard header names.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;

use super::ByteStr;

/// The headers of a frame, in the order they were received or added.
///
/// A name may repeat; as the specification requires, [`get`](Headers::get) returns the
/// **first** value, and the repeats are kept so a frame can be forwarded unchanged.
///
/// A decoded frame's headers with nothing to unescape stay lines of the bytes received
/// (names and values are read from there) until they are changed: reading such a frame makes
/// no string per header. Asked for as shared strings ([`entries`](Headers::entries),
/// [`get_shared`](Headers::get_shared)), they are made once, beside the lines.
///
/// ```
/// use stompede::stomp::Headers;
/// let mut h = Headers::new();
/// h.push("foo", "first");
/// h.push("foo", "second");
/// assert_eq!(h.get("foo"), Some("first"));
/// h.set("foo", "only");
/// assert_eq!(h.get_all("foo").collect::<Vec<_>>(), ["only"]);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// The entries, unless `raw` holds them.
    entries: Vec<(ByteStr, ByteStr)>,
    /// A decoded frame's headers as the lines of its head, until something changes them (then
    /// they move to `entries`). Boxed, so that a frame stays small to move.
    raw: Option<Box<Raw>>,
}

/// Headers read from a frame's head and kept as offsets into it: no string is made per header
/// until one is asked for as a [`ByteStr`].
#[derive(Clone)]
struct Raw {
    /// The frame's head (UTF-8).
    head: Bytes,
    lines: Vec<RawLine>,
    /// The entries, made when [`Headers::entries`] or [`Headers::get_shared`] asks for them.
    made: OnceLock<Vec<(ByteStr, ByteStr)>>,
    /// Whether no line holds a second `:` or a `\r`: then no way of writing header text
    /// changes a byte of any line, and an encoder copies the lines as they are.
    verbatim: bool,
}

/// One header line of a head: its name is `start..colon`, its value `colon + 1..end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawLine {
    pub(crate) start: u32,
    pub(crate) colon: u32,
    pub(crate) end: u32,
}

impl Raw {
    /// The text of `head` from `from` to `to`, offsets of a line of it.
    #[inline(always)]
    fn text(&self, from: u32, to: u32) -> &str {
        let (from, to) = (from as usize, to as usize);
        debug_assert!(from <= to && to <= self.head.len());
        // SAFETY: `Headers::from_head`'s contract: the offsets are within the head, which is
        // UTF-8, and each is a line start, a line's first ':' (or the byte after it) or a line
        // end: never inside a character.
        unsafe { std::str::from_utf8_unchecked(self.head.get_unchecked(from..to)) }
    }

    #[inline(always)]
    fn name(&self, line: &RawLine) -> &str {
        self.text(line.start, line.colon)
    }

    #[inline(always)]
    fn value(&self, line: &RawLine) -> &str {
        self.text(line.colon + 1, line.end)
    }

    fn value_shared(&self, line: &RawLine) -> ByteStr {
        let value = self.head.slice(line.colon as usize + 1..line.end as usize);
        // SAFETY: as for `text`.
        unsafe { ByteStr::from_utf8_unchecked(value) }
    }

    fn name_shared(&self, line: &RawLine) -> ByteStr {
        match known_name(self.name(line).as_bytes()) {
            Some(name) => ByteStr::from_static(name),
            // SAFETY: as for `text`.
            None => unsafe {
                ByteStr::from_utf8_unchecked(
                    self.head.slice(line.start as usize..line.colon as usize),
                )
            },
        }
    }

    /// The first line named `name` (the names' lengths compared first: most differ).
    #[inline(always)]
    fn find(&self, name: &str) -> Option<&RawLine> {
        self.lines.iter().find(|line| {
            (line.colon - line.start) as usize == name.len() && self.name(line) == name
        })
    }

    fn make_entries(&self) -> Vec<(ByteStr, ByteStr)> {
        self.lines.iter().map(|line| (self.name_shared(line), self.value_shared(line))).collect()
    }

    fn entries(&self) -> &[(ByteStr, ByteStr)] {
        self.made.get_or_init(|| self.make_entries())
    }
}

/// The standard header names, as static strings: a decoded frame's names then share no
/// buffer (no reference count to change when a header is copied or dropped).
pub(crate) fn known_name(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"destination" => names::DESTINATION,
        b"content-length" => names::CONTENT_LENGTH,
        b"content-type" => names::CONTENT_TYPE,
        b"receipt" => names::RECEIPT,
        b"id" => names::ID,
        b"ack" => names::ACK,
        b"subscription" => names::SUBSCRIPTION,
        b"message-id" => names::MESSAGE_ID,
        b"transaction" => names::TRANSACTION,
        b"accept-version" => names::ACCEPT_VERSION,
        b"host" => names::HOST,
        b"heart-beat" => names::HEART_BEAT,
        b"login" => names::LOGIN,
        b"passcode" => names::PASSCODE,
        _ => return None,
    })
}

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers { entries: Vec::new(), raw: None }
    }

    /// No headers, with room for `n` without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        // The list the last headers dropped on this thread gave back, when it has room.
        if (1..=SPARE_MAX).contains(&n) {
            if let Ok(spare) = SPARE.try_with(Cell::take) {
                if spare.capacity() >= n {
                    return Headers { entries: spare, raw: None };
                }
                let _ = SPARE.try_with(|kept| kept.set(spare));
            }
        }
        Headers { entries: Vec::with_capacity(n), raw: None }
    }

    /// The header `lines` of `head`, kept as they are.
    ///
    /// # Safety
    /// `head` is UTF-8, and in every line `start <= colon < end <= head.len()`, where `start`
    /// is the start of a line or of the head, `colon` a `:` and `end` a line end (a `\r` or
    /// `\n`): the name and the value then start and end at ASCII bytes. No line needs
    /// unescaping. With `verbatim`, no line holds a second `:` or a `\r` (the encoder then
    /// copies them as they are).
    pub(crate) unsafe fn from_head(
        head: Bytes,
        lines: impl Iterator<Item = RawLine>,
        verbatim: bool,
    ) -> Self {
        // The box (and its list) the last headers read from a head gave back on this thread.
        let mut raw = RAW_SPARE.try_with(Cell::take).ok().flatten().unwrap_or_else(|| {
            Box::new(Raw {
                head: Bytes::new(),
                lines: Vec::new(),
                made: OnceLock::new(),
                verbatim: false,
            })
        });
        raw.lines.extend(lines);
        raw.head = head;
        raw.verbatim = verbatim;
        debug_assert!(std::str::from_utf8(&raw.head).is_ok());
        debug_assert!(raw.lines.iter().all(|l| {
            let (head, start, colon, end) =
                (&raw.head, l.start as usize, l.colon as usize, l.end as usize);
            start <= colon
                && colon < end
                && end < head.len()
                && head[colon] == b':'
                && (start == 0 || head[start - 1] == b'\n')
                && matches!(head[end], b'\r' | b'\n')
        }));
        debug_assert!(
            !verbatim
                || raw.lines.iter().all(|l| {
                    let line = &raw.head[l.start as usize..l.end as usize];
                    !line.contains(&b'\r') && line.iter().filter(|&&b| b == b':').count() == 1
                })
        );
        Headers { entries: Vec::new(), raw: Some(raw) }
    }

    /// The head, its header lines and whether they are verbatim, for headers kept as lines of
    /// a head (see [`from_head`](Self::from_head)): every line of the head until
    /// [`retain_after`](Self::retain_after) leaves some out (the head stays whole).
    pub(crate) fn raw_lines(&self) -> Option<(&Bytes, &[RawLine], bool)> {
        self.raw.as_deref().map(|raw| (&raw.head, &raw.lines[..], raw.verbatim))
    }

    /// Whether these are lines of a received head that no way of writing header text (escaped
    /// or not) changes a byte of: an encoder writes each `name:value` as it is.
    #[inline]
    pub(crate) fn is_verbatim(&self) -> bool {
        self.raw.as_deref().is_some_and(|raw| raw.verbatim)
    }

    /// The entries, moved out of `raw` first when they are there (before a change).
    fn own(&mut self) -> &mut Vec<(ByteStr, ByteStr)> {
        if let Some(mut raw) = self.raw.take() {
            self.entries = match raw.made.take() {
                Some(made) => made,
                None => raw.make_entries(),
            };
            give_back(raw);
        }
        &mut self.entries
    }

    /// The number of header entries, repeats included.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.lines.len(),
            None => self.entries.len(),
        }
    }

    /// The bytes of the headers' text as `name:value` lines, unescaped: the sum of each
    /// name's and value's length, plus two per entry.
    pub(crate) fn text_len(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.lines.iter().map(|line| (line.end - line.start) as usize + 1).sum(),
            None => self.entries.iter().map(|(name, value)| name.len() + value.len() + 2).sum(),
        }
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first value of `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&str> {
        match &self.raw {
            Some(raw) => raw.find(name).map(|line| raw.value(line)),
            None => self.entries.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v.as_str()),
        }
    }

    /// The first value of `name`, as a shared [`ByteStr`].
    pub fn get_shared(&self, name: &str) -> Option<&ByteStr> {
        self.entries().iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v)
    }

    /// The first value of `name`, as a [`ByteStr`] of its own (sharing the frame's bytes):
    /// unlike [`get_shared`](Self::get_shared), it makes no entries of headers read from a
    /// frame.
    #[inline]
    pub(crate) fn get_owned(&self, name: &str) -> Option<ByteStr> {
        match &self.raw {
            Some(raw) => raw.find(name).map(|line| raw.value_shared(line)),
            None => self.entries.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v.clone()),
        }
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends an entry, keeping earlier entries of the same name (which win).
    pub fn push(&mut self, name: impl Into<ByteStr>, value: impl Into<ByteStr>) {
        self.own().push((name.into(), value.into()));
    }

    /// Makes `value` the only value of `name`: replaces the first entry in place and removes
    /// any repeats, or appends when absent.
    pub fn set(&mut self, name: impl Into<ByteStr>, value: impl Into<ByteStr>) {
        let name = name.into();
        let value = value.into();
        let entries = self.own();
        match entries.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                entries[i].1 = value;
                let mut seen = 0usize;
                entries.retain(|(n, _)| {
                    if *n == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => entries.push((name, value)),
        }
    }

    /// Removes every entry of `name`, returning the first value.
    pub fn remove(&mut self, name: &str) -> Option<ByteStr> {
        if !self.contains(name) {
            return None;
        }
        let entries = self.own();
        let first = entries.iter().position(|(n, _)| n.as_str() == name)?;
        let value = entries.remove(first).1;
        entries.retain(|(n, _)| n.as_str() != name);
        Some(value)
    }

    /// The entries as `(name, value)` string pairs, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        match &self.raw {
            Some(raw) => Iter::Raw(raw, raw.lines.iter()),
            None => Iter::Entries(self.entries.iter()),
        }
    }

    /// The entries with their shared storage.
    pub fn entries(&self) -> &[(ByteStr, ByteStr)] {
        match &self.raw {
            Some(raw) => raw.entries(),
            None => &self.entries,
        }
    }

    /// Keeps the entries `keep` accepts, in order, after the entry `name:value`. When the
    /// first entry goes (a SEND's `destination`, usually its first header), `name:value` takes
    /// its place: no shift of the others, as putting it in front would take; and when the
    /// first entry already says `name:value` (the same destination), it stays as it is.
    /// Headers read from a frame whose first line already says `name:value` stay lines of
    /// its head. `keep` must refuse `name` (the entry put first is the only one of it).
    pub(crate) fn retain_after(
        &mut self,
        name: &'static str,
        value: &ByteStr,
        mut keep: impl FnMut(&str, &str) -> bool,
    ) {
        debug_assert!(!keep(name, value.as_str()), "retain_after keeps its own {name} first, once");
        if let Some(raw) = &mut self.raw {
            let first = raw.lines.first().map(|line| (raw.name(line), raw.value(line)));
            if first == Some((name, value.as_str())) {
                // Out of the box while they are filtered, so that the names and values are
                // read through the box's own accessors.
                let mut lines = std::mem::take(&mut raw.lines);
                let mut at_front = true;
                lines.retain(|line| {
                    std::mem::take(&mut at_front) || keep(raw.name(line), raw.value(line))
                });
                raw.lines = lines;
                raw.made = OnceLock::new();
                return;
            }
        }
        let front = || (ByteStr::from_static(name), value.clone());
        let entries = self.own();
        match entries.first_mut() {
            Some(first) if !keep(&first.0, &first.1) => {
                if !(first.0.as_str() == name && first.1 == *value) {
                    *first = front();
                }
                let mut at_front = true;
                entries.retain(|(name, value)| std::mem::take(&mut at_front) || keep(name, value));
            }
            _ => {
                entries.retain(|(name, value)| keep(name, value));
                entries.insert(0, front());
            }
        }
    }
}

/// [`Headers::iter`]'s iterator.
enum Iter<'a> {
    Entries(std::slice::Iter<'a, (ByteStr, ByteStr)>),
    Raw(&'a Raw, std::slice::Iter<'a, RawLine>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Entries(entries) => entries.next().map(|(n, v)| (n.as_str(), v.as_str())),
            Iter::Raw(raw, lines) => lines.next().map(|line| (raw.name(line), raw.value(line))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Entries(entries) => entries.size_hint(),
            Iter::Raw(_, lines) => lines.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialEq for Headers {
    /// The same entries in the same order, however each was made.
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

thread_local! {
    /// One emptied list of entries, kept for the next [`Headers::with_capacity`] on this thread:
    /// headers are most often dropped on the thread that makes the next ones (a broadcast's
    /// message after its fan-out), and the list's allocation and free cost ~140 instructions.
    static SPARE: Cell<Vec<(ByteStr, ByteStr)>> = const { Cell::new(Vec::new()) };
    /// Likewise, one emptied box of a head's lines, for [`Headers::from_head`].
    static RAW_SPARE: Cell<Option<Box<Raw>>> = const { Cell::new(None) };
}

/// The largest list of entries [`SPARE`] keeps (and of lines, [`RAW_SPARE`]).
const SPARE_MAX: usize = 16;

/// Keeps `raw`, emptied, for the next [`Headers::from_head`] on this thread.
fn give_back(mut raw: Box<Raw>) {
    if raw.lines.capacity() <= SPARE_MAX {
        raw.lines.clear();
        raw.head = Bytes::new();
        raw.made = OnceLock::new();
        let _ = RAW_SPARE.try_with(|spare| spare.replace(Some(raw)));
    }
}

impl Drop for Headers {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            give_back(raw);
        }
        if (1..=SPARE_MAX).contains(&self.entries.capacity()) {
            self.entries.clear();
            let entries = std::mem::take(&mut self.entries);
            // A list already kept is freed (the thread-local may be gone at thread exit: then
            // this one is freed instead).
            let _ = SPARE.try_with(|spare| spare.replace(entries));
        }
    }
}

impl<N: Into<ByteStr>, V: Into<ByteStr>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers {
            entries: iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect(),
            raw: None,
        }
    }
}

impl<N: Into<ByteStr>, V: Into<ByteStr>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        self.own().extend(iter.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
}

impl IntoIterator for Headers {
    type Item = (ByteStr, ByteStr);
    type IntoIter = std::vec::IntoIter<(ByteStr, ByteStr)>;
    fn into_iter(mut self) -> Self::IntoIter {
        std::mem::take(self.own()).into_iter()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Names of the headers the specification defines.
pub mod names {
    /// `accept-version`: versions a client supports (CONNECT).
    pub const ACCEPT_VERSION: &str = "accept-version";
    /// `ack`: ack mode (SUBSCRIBE) or ack id (MESSAGE, 1.2).
    pub const ACK: &str = "ack";
    /// `content-length`: body size in bytes.
    pub const CONTENT_LENGTH: &str = "content-length";
    /// `content-type`: MIME type of the body.
    pub const CONTENT_TYPE: &str = "content-type";
    /// `destination`: where a message goes or comes from.
    pub const DESTINATION: &str = "destination";
    /// `heart-beat`: heart-beat intervals (CONNECT, CONNECTED).
    pub const HEART_BEAT: &str = "heart-beat";
    /// `host`: virtual host (CONNECT).
    pub const HOST: &str = "host";
    /// `id`: subscription id (SUBSCRIBE, UNSUBSCRIBE) or ack id (ACK, NACK in 1.2).
    pub const ID: &str = "id";
    /// `login`: user name (CONNECT).
    pub const LOGIN: &str = "login";
    /// `message`: short error description (ERROR).
    pub const MESSAGE: &str = "message";
    /// `message-id`: unique id of a MESSAGE.
    pub const MESSAGE_ID: &str = "message-id";
    /// `passcode`: password (CONNECT).
    pub const PASSCODE: &str = "passcode";
    /// `receipt`: asks for a RECEIPT (any client frame but CONNECT).
    pub const RECEIPT: &str = "receipt";
    /// `receipt-id`: the `receipt` being answered (RECEIPT, ERROR).
    pub const RECEIPT_ID: &str = "receipt-id";
    /// `server`: server name and version (CONNECTED).
    pub const SERVER: &str = "server";
    /// `session`: session id (CONNECTED).
    pub const SESSION: &str = "session";
    /// `subscription`: subscription a MESSAGE is for.
    pub const SUBSCRIPTION: &str = "subscription";
    /// `transaction`: transaction a frame belongs to.
    pub const TRANSACTION: &str = "transaction";
    /// `version`: negotiated version (CONNECTED).
    pub const VERSION: &str = "version";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_list_is_reused_on_its_thread_and_only_a_small_one() {
        // On a thread of its own: no other test's headers come and go.
        std::thread::spawn(|| {
            let mut first = Headers::with_capacity(3);
            first.push("destination", "/topic/a");
            let at = first.entries().as_ptr();
            drop(first);
            // No room asked for: the kept list stays kept.
            assert_eq!(Headers::with_capacity(0).entries.capacity(), 0);
            let second = Headers::with_capacity(2);
            assert_eq!(second.entries().as_ptr(), at, "the dropped list is reused");
            assert!(second.is_empty(), "and emptied");
            // Too small for what is asked: kept for later, a new list made.
            let bigger = Headers::with_capacity(8);
            assert_ne!(bigger.entries.as_ptr(), at);
            drop(second);
            assert_eq!(Headers::with_capacity(1).entries.as_ptr(), at);
            // (That one was dropped at once, and is kept again.) A large list is not kept: the
            // small one stays.
            let large = Headers::with_capacity(SPARE_MAX + 1);
            drop(large);
            let kept = SPARE.with(|spare| {
                let kept = spare.take();
                let capacity = kept.capacity();
                spare.set(kept);
                capacity
            });
            assert_eq!(kept, 3);
            drop(bigger);
        })
        .join()
        .expect("the test thread");
    }

    /// The headers of `head` (a frame without a body), as the decoder reads them.
    fn decoded(head: &str) -> Headers {
        let mut buf = bytes::BytesMut::from(format!("{head}\n\0").as_bytes());
        let frame =
            crate::stomp::Decoder::default().decode(&mut buf).expect("valid").expect("whole");
        frame.headers
    }

    #[test]
    fn headers_read_from_a_head_behave_as_entries_do() {
        let head =
            "SEND\ndestination:/topic/a\nx-n:1:2\r\nx-n:second\nempty:\ncontent-type:text/plain\n";
        let raw = decoded(head);
        assert!(raw.raw.is_some(), "kept as lines of the head");
        let built: Headers = [
            ("destination", "/topic/a"),
            ("x-n", "1:2"),
            ("x-n", "second"),
            ("empty", ""),
            ("content-type", "text/plain"),
        ]
        .into_iter()
        .collect();
        assert_eq!(raw, built);
        assert_eq!(built, raw);
        assert_eq!(format!("{raw:?}"), format!("{built:?}"));
        assert_eq!(raw.len(), 5);
        assert_eq!(raw.get("x-n"), Some("1:2"));
        assert_eq!(raw.get_all("x-n").collect::<Vec<_>>(), ["1:2", "second"]);
        assert_eq!(raw.get("empty"), Some(""));
        assert_eq!(raw.get("x"), None);
        assert!(raw.contains("content-type") && !raw.contains("content"));
        assert_eq!(raw.get_owned("destination").as_deref(), Some("/topic/a"));
        assert_eq!(raw.text_len(), built.text_len());
        assert_eq!(raw.iter().len(), 5);
        // As shared strings: made once, equal to the built ones, the names static.
        assert_eq!(raw.entries(), built.entries());
        assert_eq!(raw.get_shared("x-n").map(ByteStr::as_str), Some("1:2"));
        assert_eq!(raw.entries().as_ptr(), raw.entries().as_ptr());
        assert_eq!(raw.clone(), built);
    }

    #[test]
    fn a_change_moves_headers_read_from_a_head_to_entries() {
        let head = "SEND\ndestination:/topic/a\nreceipt:r-1\nx:1\nx:2\n";
        let mut headers = decoded(head);
        headers.push("y", "3");
        assert!(headers.raw.is_none());
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("destination", "/topic/a"), ("receipt", "r-1"), ("x", "1"), ("x", "2"), ("y", "3")]
        );
        let mut headers = decoded(head);
        let _ = headers.entries();
        headers.set("x", "only");
        assert_eq!(headers.get_all("x").collect::<Vec<_>>(), ["only"]);
        let mut headers = decoded(head);
        assert_eq!(headers.remove("nothing"), None);
        assert!(headers.raw.is_some(), "nothing removed, nothing changed");
        assert_eq!(headers.remove("receipt").as_deref(), Some("r-1"));
        assert_eq!(headers.len(), 3);
        let all: Vec<(ByteStr, ByteStr)> = decoded(head).into_iter().collect();
        assert_eq!(all.len(), 4);
        assert_eq!((all[1].0.as_str(), all[1].1.as_str()), ("receipt", "r-1"));
    }

    #[test]
    fn retain_after_keeps_a_head_whose_first_line_is_the_one_wanted() {
        let not_r = |name: &str, _: &str| !matches!(name, "receipt" | "destination");
        let destination = ByteStr::from("/topic/a");
        let mut headers = decoded("SEND\ndestination:/topic/a\nreceipt:1\nx:2\n");
        headers.retain_after("destination", &destination, not_r);
        assert!(headers.raw.is_some(), "the lines filtered in place");
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("destination", "/topic/a"), ("x", "2")]);
        assert_eq!(headers.entries().len(), 2);
        assert_eq!(headers.text_len(), "destination:/topic/a\nx:2\n".len());
        // Another first line: entries, as for built headers.
        let mut headers = decoded("SEND\nx:2\ndestination:/topic/b\nreceipt:1\n");
        headers.retain_after("destination", &destination, not_r);
        assert!(headers.raw.is_none());
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("destination", "/topic/a"), ("x", "2")]);
    }

    #[test]
    fn a_head_with_escapes_is_read_into_entries() {
        let headers = decoded("SEND\ndestination:/topic/a\nnote:a\\cb\n");
        assert!(headers.raw.is_none());
        assert_eq!(headers.get("note"), Some("a:b"));
    }

    #[test]
    fn a_dropped_head_leaves_its_box_for_the_next_on_its_thread() {
        std::thread::spawn(|| {
            let first = decoded("SEND\ndestination:/topic/a\n");
            let at: *const Raw = &**first.raw.as_ref().expect("raw");
            drop(first);
            let second = decoded("SEND\ndestination:/topic/b\nx:1\n");
            let again: *const Raw = &**second.raw.as_ref().expect("raw");
            assert_eq!(at, again, "the box is reused");
            assert_eq!(
                second.iter().collect::<Vec<_>>(),
                [("destination", "/topic/b"), ("x", "1")]
            );
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn raw_and_built_headers_agree_on_text_values_and_encoding() {
        use crate::stomp::{Command, Frame, Version, encode_to_bytes};
        // Values the encoder must escape (a ':' after the first, a '\r' inside), and text
        // outside ASCII.
        let head = "SEND\ndestination:/topic/a\nx:1:2\ny:a\rb\nz:\u{e9}\u{20ac}\n";
        let raw = decoded(head);
        assert!(raw.raw.is_some());
        let built: Headers =
            [("destination", "/topic/a"), ("x", "1:2"), ("y", "a\rb"), ("z", "\u{e9}\u{20ac}")]
                .into_iter()
                .collect();
        assert_eq!(raw, built);
        assert_eq!(raw.get("z"), Some("\u{e9}\u{20ac}"));
        assert_eq!(raw.text_len(), built.text_len());
        assert_eq!(raw.entries(), built.entries());
        for command in [Command::Message, Command::Connected] {
            for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
                let frame = |headers: &Headers| Frame {
                    command,
                    headers: headers.clone(),
                    body: bytes::Bytes::from_static(b"body"),
                };
                assert_eq!(
                    encode_to_bytes(&frame(&raw), version),
                    encode_to_bytes(&frame(&built), version),
                    "{command} in {version:?}"
                );
            }
        }
        // Moved to entries, the same text.
        let mut moved = raw.clone();
        moved.push("w", "1");
        assert_eq!(moved.text_len(), raw.text_len() + "w:1\n".len());
        // The clone changed, not the original.
        assert_eq!(raw, built);
        assert!(raw.raw.is_some());
    }

    #[test]
    fn a_frame_without_headers_and_one_with_many_lines() {
        std::thread::spawn(|| {
            let none = decoded("DISCONNECT\n");
            assert!(none.raw.is_none() && none.is_empty());
            let many: String = (0..SPARE_MAX + 4).map(|i| format!("h{i}:{i}\n")).collect();
            let headers = decoded(&format!("SEND\n{many}"));
            assert_eq!(headers.len(), SPARE_MAX + 4);
            assert_eq!(headers.get("h17"), Some("17"));
            drop(headers);
            // Its box, with room for more lines than kept, is not kept.
            assert!(RAW_SPARE.with(|spare| {
                let kept = spare.take();
                let none = kept.is_none();
                spare.set(kept);
                none
            }));
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn a_reused_box_forgets_the_entries_made_for_the_last_headers() {
        std::thread::spawn(|| {
            let first = decoded("SEND\ndestination:/topic/a\nx:1\n");
            assert_eq!(first.get_shared("x").map(ByteStr::as_str), Some("1"));
            drop(first);
            let second = decoded("SEND\ndestination:/topic/b\ny:2\n");
            assert_eq!(second.get_shared("x"), None);
            assert_eq!(second.get_shared("y").map(ByteStr::as_str), Some("2"));
            assert_eq!(second.entries().len(), 2);
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn set_replaces_first_in_place_and_drops_repeats() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        h.set("a", "x");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("a", "x"), ("b", "2")]);
    }

    #[test]
    fn remove_takes_every_repeat_and_returns_the_first() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(h.remove("a").as_deref(), Some("1"));
        assert_eq!(h.len(), 1);
        assert_eq!(h.remove("a"), None);
    }

    #[test]
    fn retain_after_puts_front_first_whether_or_not_the_first_entry_stays() {
        let value = ByteStr::from("/topic/t");
        let not_x_or_d = |name: &str, _: &str| !matches!(name, "x" | "d");
        type Entries<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Entries<'_>, Entries<'_>); 7] = [
            (&[("x", "1"), ("a", "2"), ("x", "3"), ("b", "4")], &[("a", "2"), ("b", "4")]),
            (&[("a", "1"), ("x", "2"), ("b", "3")], &[("a", "1"), ("b", "3")]),
            (&[("x", "1")], &[]),
            (&[("a", "1")], &[("a", "1")]),
            (&[], &[]),
            // The first entry already the one wanted, or the same name with another value.
            (&[("d", "/topic/t"), ("a", "1")], &[("a", "1")]),
            (&[("d", "/topic/other"), ("d", "/topic/t")], &[]),
        ];
        for (given, kept) in cases {
            let mut h: Headers = given.iter().copied().collect();
            h.retain_after("d", &value, not_x_or_d);
            let mut expected = vec![("d", "/topic/t")];
            expected.extend_from_slice(kept);
            assert_eq!(h.iter().collect::<Vec<_>>(), expected, "{given:?}");
        }
    }
}
