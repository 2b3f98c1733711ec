//! Destination patterns for subscriptions: `*` matches within one segment, `**` across any.
//!
//! Both `/` and `.` separate segments, so the same rules serve path-style destinations
//! (`/topic/chat/*`) and dotted ones (`/topic/stocks.*`), the two styles Spring users meet
//! (Spring's `AntPathMatcher` with its `/` default, or `.` when configured).
//!
//! | pattern | matches | does not match |
//! |---|---|---|
//! | `/topic/chat/*` | `/topic/chat/rust` | `/topic/chat/rust/beginners`, `/topic/chat.x` |
//! | `/topic/stocks.*` | `/topic/stocks.AAPL` | `/topic/stocks.AAPL.bid` |
//! | `/topic/**` | `/topic/a`, `/topic/a/b.c` | `/topic` |
//! | `/topic/*.bid` | `/topic/AAPL.bid` | `/topic/x/AAPL.bid` |

/// A parsed subscription pattern.
///
/// Cost, for a pattern of `t` tokens (at most `2w + 1` for `w` wildcards, which the session
/// bounds with `max_pattern_wildcards`) and a destination of `n` bytes: matching takes
/// O(t × n) steps with no backtracking (each literal is found with a precomputed
/// Knuth–Morris–Pratt table, never compared position by position), and the pattern holds its
/// text plus four bytes per literal byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Box<[Token]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(Literal),
    /// `*`: any run of characters without a separator.
    Segment,
    /// `**`: any run of characters.
    Any,
}

/// A literal run of a pattern with its KMP failure table: `fail[i]` is the length of the
/// longest proper prefix of `text[..=i]` that is also a suffix of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Literal {
    text: Box<[u8]>,
    fail: Box<[u32]>,
}

impl Literal {
    fn new(text: &str) -> Literal {
        let text = text.as_bytes();
        let mut fail = vec![0u32; text.len()];
        let mut k = 0usize;
        for i in 1..text.len() {
            while k > 0 && text[i] != text[k] {
                k = fail[k - 1] as usize;
            }
            if text[i] == text[k] {
                k += 1;
            }
            // Destinations are bounded by the header line limit, far below 4 GiB.
            fail[i] = u32::try_from(k).unwrap_or(u32::MAX);
        }
        Literal { text: text.into(), fail: fail.into() }
    }

    /// Calls `found(end)` for the end of every occurrence in `haystack`, overlapping ones
    /// included, in one left-to-right pass.
    fn occurrences(&self, haystack: &[u8], mut found: impl FnMut(usize)) {
        let (text, fail) = (&*self.text, &*self.fail);
        if text.is_empty() {
            return;
        }
        let mut k = 0usize;
        for (i, &b) in haystack.iter().enumerate() {
            while k > 0 && b != text[k] {
                k = fail[k - 1] as usize;
            }
            if b == text[k] {
                k += 1;
            }
            if k == text.len() {
                found(i + 1);
                k = fail[k - 1] as usize;
            }
        }
    }
}

fn is_separator(b: u8) -> bool {
    b == b'/' || b == b'.'
}

impl Pattern {
    /// Whether `destination` uses wildcards (and so needs a `Pattern`).
    pub(crate) fn is_pattern(destination: &str) -> bool {
        destination.contains('*')
    }

    /// How many wildcards (`*` or `**`, each run of stars counting once) `pattern` has: what
    /// `max_pattern_wildcards` bounds.
    pub(crate) fn wildcards(pattern: &str) -> usize {
        pattern.as_bytes().split(|&b| b != b'*').filter(|stars| !stars.is_empty()).count()
    }

    pub(crate) fn parse(pattern: &str) -> Pattern {
        let mut tokens = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("**") {
                // `***` and longer mean the same as `**`.
                if tokens.last() != Some(&Token::Any) {
                    tokens.push(Token::Any);
                }
                rest = after.trim_start_matches('*');
            } else if let Some(after) = rest.strip_prefix('*') {
                tokens.push(Token::Segment);
                rest = after;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                tokens.push(Token::Literal(Literal::new(&rest[..end])));
                rest = &rest[end..];
            }
        }
        Pattern { tokens: tokens.into() }
    }

    /// Whether `destination` matches, in O(tokens × length) steps.
    pub(crate) fn matches(&self, destination: &str) -> bool {
        // Most patterns fail on their leading or trailing literal (`/topic/stocks.` in
        // `/topic/stocks.*`): reject those without running the general matcher.
        if let Some(Token::Literal(first)) = self.tokens.first() {
            if !destination.as_bytes().starts_with(&first.text) {
                return false;
            }
        }
        if let Some(Token::Literal(last)) = self.tokens.last() {
            if !destination.as_bytes().ends_with(&last.text) {
                return false;
            }
        }
        let dest = destination.as_bytes();
        let n = dest.len();
        // reachable[i]: the tokens so far can match exactly dest[..i].
        let mut reachable = vec![false; n + 1];
        reachable[0] = true;
        let mut next = vec![false; n + 1];
        for token in &*self.tokens {
            next.fill(false);
            match token {
                Token::Literal(literal) => {
                    let len = literal.text.len();
                    literal.occurrences(dest, |end| {
                        if reachable[end - len] {
                            next[end] = true;
                        }
                    });
                }
                Token::Segment => {
                    let mut open = false;
                    for j in 0..=n {
                        open |= reachable[j];
                        next[j] = open;
                        if j < n && is_separator(dest[j]) {
                            open = false;
                        }
                    }
                }
                Token::Any => {
                    // Everything from the first reachable position on.
                    if let Some(first) = reachable.iter().position(|&r| r) {
                        next[first..].fill(true);
                    }
                }
            }
            std::mem::swap(&mut reachable, &mut next);
            if !reachable.contains(&true) {
                return false;
            }
        }
        reachable[n]
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(pattern: &str, dest: &str) -> bool {
        Pattern::parse(pattern).matches(dest)
    }

    #[test]
    fn single_star_stays_within_a_segment() {
        assert!(m("/topic/chat/*", "/topic/chat/rust"));
        assert!(m("/topic/chat/*", "/topic/chat/"));
        assert!(!m("/topic/chat/*", "/topic/chat/rust/beginners"));
        assert!(!m("/topic/chat/*", "/topic/chat.rust"));
        assert!(m("/topic/stocks.*", "/topic/stocks.AAPL"));
        assert!(!m("/topic/stocks.*", "/topic/stocks.AAPL.bid"));
        assert!(m("/topic/*.bid", "/topic/AAPL.bid"));
        assert!(!m("/topic/*.bid", "/topic/x/AAPL.bid"));
        assert!(m("/topic/a*c", "/topic/abbbc"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(m("/topic/**", "/topic/a"));
        assert!(m("/topic/**", "/topic/a/b.c/d"));
        assert!(!m("/topic/**", "/topic"));
        assert!(!m("/topic/**", "/queue/a"));
        assert!(m("/**/prices", "/topic/x/y/prices"));
        assert!(!m("/**/prices", "/topic/x/y/prices/old"));
        assert!(m("/topic/***", "/topic/x/y"));
    }

    #[test]
    fn literals_must_match_exactly() {
        assert!(m("/topic/a", "/topic/a"));
        assert!(!m("/topic/a", "/topic/ab"));
        assert!(!m("/topic/a*", "/queue/a"));
    }

    #[test]
    fn literals_are_found_where_occurrences_overlap() {
        assert!(m("**a/a*b", "a/a/ab"));
        assert!(m("/t/**aa", "/t/aaa"));
        assert!(m("/t/**aba*c", "/t/ababac"));
        assert!(!m("/t/**aba*c", "/t/aba/c"));
        assert!(m("**", ""));
        assert!(m("*", "abc"));
        assert!(!m("*", "a/b"));
    }

    #[test]
    fn wildcards_are_counted_per_run_of_stars() {
        assert_eq!(Pattern::wildcards("/topic/a"), 0);
        assert_eq!(Pattern::wildcards("/topic/*"), 1);
        assert_eq!(Pattern::wildcards("/topic/**"), 1);
        assert_eq!(Pattern::wildcards("*"), 1);
        assert_eq!(Pattern::wildcards("***"), 1);
        assert_eq!(Pattern::wildcards("*/a/*"), 2);
        assert_eq!(Pattern::wildcards("/a/*.b.**/c*"), 3);
        assert_eq!(Pattern::wildcards(&"*a".repeat(8000)), 8000);
    }

    /// The matcher agrees with a plain backtracking one on every small case.
    #[test]
    fn agrees_with_a_naive_matcher() {
        fn naive(p: &[u8], d: &[u8]) -> bool {
            match p {
                [] => d.is_empty(),
                [b'*', b'*', rest @ ..] => {
                    let rest = {
                        let mut r = rest;
                        while let [b'*', t @ ..] = r {
                            r = t;
                        }
                        r
                    };
                    (0..=d.len()).any(|i| naive(rest, &d[i..]))
                }
                [b'*', rest @ ..] => (0..=d.len())
                    .take_while(|&i| i == 0 || !super::is_separator(d[i - 1]))
                    .any(|i| naive(rest, &d[i..])),
                [c, rest @ ..] => d.first() == Some(c) && naive(rest, &d[1..]),
            }
        }
        let alphabet = [b'a', b'b', b'/', b'*'];
        let mut patterns = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = patterns
                .iter()
                .flat_map(|p| alphabet.iter().map(move |&c| [p.clone(), vec![c]].concat()))
                .collect();
            patterns.extend(longer);
            patterns.dedup();
        }
        let dests: Vec<&str> =
            vec!["", "a", "ab", "a/b", "aab", "a/a/ab", "ab/ab", "b/a/", "aaa/b"];
        for p in &patterns {
            let text = std::str::from_utf8(p).expect("ASCII");
            for d in &dests {
                assert_eq!(m(text, d), naive(p, d.as_bytes()), "pattern {text:?} on {d:?}");
            }
        }
    }

    /// The reported attack: a 16 KB pattern of 8,000 wildcards against a 16,000-byte
    /// destination. Matching does a bounded number of steps per token and byte (it took
    /// 0.34-0.6 s per match before the KMP literals); the session refuses such a pattern
    /// anyway (`max_pattern_wildcards`).
    #[test]
    fn long_literals_cost_linear_time() {
        let pattern = format!("/topic/**{}**{}", "a".repeat(4000), "ab".repeat(2000));
        let dest = format!("/topic/{}", "a".repeat(16_000));
        assert!(!m(&pattern, &dest));
        let dest = format!("/topic/{}{}", "a".repeat(16_000), "ab".repeat(2000));
        assert!(m(&pattern, &dest));
    }

    #[test]
    fn many_wildcards_do_not_backtrack_exponentially() {
        let pattern = "/**".repeat(30) + "/x";
        let dest = "/a".repeat(500) + "/y";
        assert!(!m(&pattern, &dest));
    }
}
