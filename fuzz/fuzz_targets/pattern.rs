//! Fuzzes subscription patterns: the broker's matcher against a plain, memoised one written
//! from the rules (`*` any run without `/` or `.`, `**` any run at all, other bytes literal).
//! The first input byte splits the rest into a pattern and a destination. Checked for every
//! input: no panic, and both matchers agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stompede::__fuzz::pattern_matches;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let mut at = usize::from(split) % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let (pattern, destination) = text.split_at(at);
    let expected = Reference::new(pattern.as_bytes(), destination.as_bytes()).matches(0, 0);
    assert_eq!(pattern_matches(pattern, destination), expected, "{pattern:?} on {destination:?}");
});

/// Matching by the rules, one position pair at a time, each pair decided once.
struct Reference<'a> {
    pattern: &'a [u8],
    destination: &'a [u8],
    memo: Vec<Option<bool>>,
}

impl<'a> Reference<'a> {
    fn new(pattern: &'a [u8], destination: &'a [u8]) -> Self {
        let memo = vec![None; (pattern.len() + 1) * (destination.len() + 1)];
        Reference { pattern, destination, memo }
    }

    /// Whether `pattern[p..]` matches `destination[d..]`.
    fn matches(&mut self, p: usize, d: usize) -> bool {
        let key = p * (self.destination.len() + 1) + d;
        if let Some(known) = self.memo[key] {
            return known;
        }
        let result = match &self.pattern[p..] {
            [] => d == self.destination.len(),
            [b'*', b'*', ..] => {
                let mut next = p;
                while self.pattern.get(next) == Some(&b'*') {
                    next += 1;
                }
                (d..=self.destination.len()).any(|i| self.matches(next, i))
            }
            [b'*', ..] => {
                let mut i = d;
                loop {
                    if self.matches(p + 1, i) {
                        break true;
                    }
                    match self.destination.get(i) {
                        Some(b'/' | b'.') | None => break false,
                        Some(_) => i += 1,
                    }
                }
            }
            [c, ..] => self.destination.get(d) == Some(c) && self.matches(p + 1, d + 1),
        };
        self.memo[key] = Some(result);
        result
    }
}
