//! `ByteStr`: an immutable, cheaply cloned UTF-8 string backed by [`Bytes`].
//!
//! Header names and values are slices of the frame the decoder received, so decoding a frame
//! allocates no string per header. The UTF-8 check happens once, when a `ByteStr` is made.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// An immutable UTF-8 string that shares its storage with the frame it came from.
///
/// Cloning is a reference-count increment. Build one from a `&'static str` (no allocation),
/// a `String`, or checked [`Bytes`](ByteStr::from_utf8).
///
/// ```
/// use stompede::stomp::ByteStr;
/// let s = ByteStr::from_static("/topic/news");
/// assert_eq!(s, "/topic/news");
/// assert_eq!(s.len(), 11);
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteStr {
    // Invariant: `bytes` is valid UTF-8. Every constructor checks it or starts from a `str`.
    bytes: Bytes,
}

impl ByteStr {
    /// Wraps a static string without copying it.
    pub const fn from_static(s: &'static str) -> Self {
        ByteStr { bytes: Bytes::from_static(s.as_bytes()) }
    }

    /// Wraps `bytes` if they are valid UTF-8, giving them back otherwise.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, Bytes> {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(ByteStr { bytes }),
            Err(_) => Err(bytes),
        }
    }

    /// Wraps bytes the caller has already proven to be UTF-8.
    ///
    /// # Safety
    /// `bytes` must be valid UTF-8.
    pub(crate) unsafe fn from_utf8_unchecked(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        ByteStr { bytes }
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees that `bytes` is valid UTF-8, and `Bytes` is
        // immutable, so the guarantee holds for the life of the value.
        unsafe { std::str::from_utf8_unchecked(&self.bytes) }
    }

    /// The underlying bytes (shared, not copied).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Gives up the wrapper and returns the shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

// Hashes exactly as `str` does, as `Borrow<str>` requires: a map keyed by `ByteStr` can then be
// searched with a `&str`.
impl std::hash::Hash for ByteStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for ByteStr {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for ByteStr {
    fn from(s: &'static str) -> Self {
        ByteStr::from_static(s)
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        ByteStr { bytes: Bytes::from(s) }
    }
}

impl From<&String> for ByteStr {
    fn from(s: &String) -> Self {
        ByteStr { bytes: Bytes::copy_from_slice(s.as_bytes()) }
    }
}

impl From<Box<str>> for ByteStr {
    fn from(s: Box<str>) -> Self {
        ByteStr::from(String::from(s))
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ByteStr> for str {
    fn eq(&self, other: &ByteStr) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<ByteStr> for &str {
    fn eq(&self, other: &ByteStr) -> bool {
        *self == other.as_str()
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_refused_and_returned() {
        let bad = Bytes::from_static(b"\xff\xfe");
        assert_eq!(ByteStr::from_utf8(bad.clone()), Err(bad));
    }

    #[test]
    fn hashes_like_str_so_maps_can_be_searched_by_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(ByteStr::from(String::from("/topic/a")), 1);
        assert_eq!(map.get("/topic/a"), Some(&1));
    }

    #[test]
    fn compares_with_str_both_ways() {
        let s = ByteStr::from(String::from("héllo"));
        assert_eq!(s, "héllo");
        assert_eq!("héllo", s);
        assert_eq!(s.as_bytes().len(), 6);
    }
}
