//! Ordered frame headers, with the standard header names.

use std::cell::Cell;
use std::fmt;

use super::ByteStr;

/// The headers of a frame, in the order they were received or added.
///
/// A name may repeat; as the specification requires, [`get`](Headers::get) returns the
/// **first** value, and the repeats are kept so a frame can be forwarded unchanged.
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(ByteStr, ByteStr)>,
}

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers { entries: Vec::new() }
    }

    /// No headers, with room for `n` without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        // The list the last headers dropped on this thread gave back, when it has room.
        if (1..=SPARE_MAX).contains(&n) {
            if let Ok(spare) = SPARE.try_with(Cell::take) {
                if spare.capacity() >= n {
                    return Headers { entries: spare };
                }
                let _ = SPARE.try_with(|kept| kept.set(spare));
            }
        }
        Headers { entries: Vec::with_capacity(n) }
    }

    /// The number of header entries, repeats included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, as a shared [`ByteStr`].
    pub fn get_shared(&self, name: &str) -> Option<&ByteStr> {
        self.entries.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.iter().filter(move |(n, _)| n.as_str() == name).map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n.as_str() == name)
    }

    /// Appends an entry, keeping earlier entries of the same name (which win).
    pub fn push(&mut self, name: impl Into<ByteStr>, value: impl Into<ByteStr>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Makes `value` the only value of `name`: replaces the first entry in place and removes
    /// any repeats, or appends when absent.
    pub fn set(&mut self, name: impl Into<ByteStr>, value: impl Into<ByteStr>) {
        let name = name.into();
        let value = value.into();
        match self.entries.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                self.entries[i].1 = value;
                let mut seen = 0usize;
                self.entries.retain(|(n, _)| {
                    if *n == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.entries.push((name, value)),
        }
    }

    /// Removes every entry of `name`, returning the first value.
    pub fn remove(&mut self, name: &str) -> Option<ByteStr> {
        let first = self.entries.iter().position(|(n, _)| n.as_str() == name)?;
        let value = self.entries.remove(first).1;
        self.entries.retain(|(n, _)| n.as_str() != name);
        Some(value)
    }

    /// The entries as `(name, value)` string pairs, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The entries with their shared storage.
    pub fn entries(&self) -> &[(ByteStr, ByteStr)] {
        &self.entries
    }

    /// Keeps the entries `keep` accepts, in order, after the entry `name:value`. When the
    /// first entry goes (a SEND's `destination`, usually its first header), `name:value` takes
    /// its place: no shift of the others, as putting it in front would take; and when the
    /// first entry already says `name:value` (the same destination), it stays as it is.
    pub(crate) fn retain_after(
        &mut self,
        name: &'static str,
        value: &ByteStr,
        mut keep: impl FnMut(&ByteStr, &ByteStr) -> bool,
    ) {
        let front = || (ByteStr::from_static(name), value.clone());
        match self.entries.first_mut() {
            Some(first) if !keep(&first.0, &first.1) => {
                if !(first.0.as_str() == name && first.1 == *value) {
                    *first = front();
                }
                let mut at_front = true;
                self.entries
                    .retain(|(name, value)| std::mem::take(&mut at_front) || keep(name, value));
            }
            _ => {
                self.entries.retain(|(name, value)| keep(name, value));
                self.entries.insert(0, front());
            }
        }
    }
}

thread_local! {
    /// One emptied list of entries, kept for the next [`Headers::with_capacity`] on this thread:
    /// a decoded frame's headers are most often dropped on the thread that decodes the next one
    /// (a broadcast's message after its fan-out), and the list's allocation and free were a
    /// sixth of what reading a SEND costs.
    static SPARE: Cell<Vec<(ByteStr, ByteStr)>> = const { Cell::new(Vec::new()) };
}

/// The largest list of entries [`SPARE`] keeps.
const SPARE_MAX: usize = 16;

impl Drop for Headers {
    fn drop(&mut self) {
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
        Headers { entries: iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect() }
    }
}

impl<N: Into<ByteStr>, V: Into<ByteStr>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        self.entries.extend(iter.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
}

impl IntoIterator for Headers {
    type Item = (ByteStr, ByteStr);
    type IntoIter = std::vec::IntoIter<(ByteStr, ByteStr)>;
    fn into_iter(mut self) -> Self::IntoIter {
        std::mem::take(&mut self.entries).into_iter()
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
        let not_x_or_d = |name: &ByteStr, _: &ByteStr| !matches!(name.as_str(), "x" | "d");
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
