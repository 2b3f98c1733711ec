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
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    /// `*`: any run of characters without a separator.
    Segment,
    /// `**`: any run of characters.
    Any,
}

fn is_separator(b: u8) -> bool {
    b == b'/' || b == b'.'
}

impl Pattern {
    /// Whether `destination` uses wildcards (and so needs a `Pattern`).
    pub(crate) fn is_pattern(destination: &str) -> bool {
        destination.contains('*')
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
                tokens.push(Token::Literal(rest[..end].into()));
                rest = &rest[end..];
            }
        }
        Pattern { tokens }
    }

    /// Whether `destination` matches. Runs in O(tokens × length), without backtracking.
    pub(crate) fn matches(&self, destination: &str) -> bool {
        // Most patterns fail on their leading or trailing literal (`/topic/stocks.` in
        // `/topic/stocks.*`): reject those without running the general matcher.
        if let Some(Token::Literal(first)) = self.tokens.first() {
            if !destination.starts_with(&**first) {
                return false;
            }
        }
        if let Some(Token::Literal(last)) = self.tokens.last() {
            if !destination.ends_with(&**last) {
                return false;
            }
        }
        let dest = destination.as_bytes();
        let n = dest.len();
        // reachable[i]: the tokens so far can match exactly dest[..i].
        let mut reachable = vec![false; n + 1];
        reachable[0] = true;
        let mut next = vec![false; n + 1];
        for token in &self.tokens {
            next.fill(false);
            match token {
                Token::Literal(lit) => {
                    let lit = lit.as_bytes();
                    for i in 0..=n.saturating_sub(lit.len()) {
                        if reachable[i] && dest[i..].starts_with(lit) {
                            next[i + lit.len()] = true;
                        }
                    }
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
                    let mut open = false;
                    for j in 0..=n {
                        open |= reachable[j];
                        next[j] = open;
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
    fn many_wildcards_do_not_backtrack_exponentially() {
        let pattern = "/**".repeat(30) + "/x";
        let dest = "/a".repeat(500) + "/y";
        assert!(!m(&pattern, &dest));
    }
}
