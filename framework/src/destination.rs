//! The destination grammar, in one place: which prefix a destination falls under, the
//! patterns of handler mappings, and the reply templates of `send_to`. Both the runtime and the
//! `stompede-macros` crate use this file (the macro crate includes it by path, as
//! serde_derive shares its internals), so a pattern the attribute accepts is a pattern the
//! server accepts, and their error messages are the same.
//!
//! It depends on nothing but `std`, so that the macro crate can include it.
//!
//! **Prefixes** match at a segment boundary: `/topic` covers `/topic/a` and `/topic.a`, not
//! `/topics` ([`under`]); a handler's patterns are matched against the destination with the
//! application prefix removed ([`strip_prefix`]: `/app/chat/42` is looked up as `/chat/42`).
//!
//! **Mapping patterns** are matched segment by segment, `/` separating segments:
//! - a literal matches itself;
//! - `{name}` matches one or more characters within a segment and captures them, and may sit
//!   between literals (`room-{id}`, `chat.{room}`);
//! - `*` matches zero or more characters within a segment;
//! - `**`, a whole segment, matches zero or more segments;
//! - `{*name}`, a whole last segment, matches the rest of the destination (zero or more
//!   segments) and captures it without its leading `/`.
//!
//! **Reply templates** (`#[send_to("/topic/chat/{room}")]`) hold `{name}` placeholders that the
//! mapping captured, and nothing else that is special ([`template_placeholders`], [`fill`]).
//!
//! **Subscription patterns** ([`subscription`]) are what the broker matches published
//! destinations against: there `*` and `**` separate segments at `.` as well as `/`, because
//! brokers name destinations both ways (`/topic/stocks.*`), while a mapping's segments are
//! `/`-separated only (`chat.{room}` is one segment holding a literal and a placeholder).

use std::fmt;

/// A parsed destination pattern.
#[derive(Clone, Debug)]
pub(crate) struct DestinationPattern {
    source: Box<str>,
    segments: Vec<Segment>,
    /// The variables, in order of appearance.
    variables: Vec<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Literal text, stars and variables within one segment.
    Parts(Vec<Part>),
    /// `**`: any number of segments.
    Any,
    /// `{*name}`: the rest, captured.
    Rest(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Star,
    /// Index into `variables`.
    Var(usize),
}

/// Why a pattern is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatternError(pub(crate) String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Captured variables: `(name, value)` in pattern order.
pub(crate) type Captures = Vec<(Box<str>, String)>;

/// Whether `destination` falls under `prefix`, at a segment boundary (`/topic` covers
/// `/topic/a` and `/topic.a`, not `/topics`).
pub(crate) fn under(prefix: &str, destination: &str) -> bool {
    let prefix = prefix.trim_end_matches(['/', '.']);
    match destination.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '.']) || prefix.is_empty(),
        None => false,
    }
}

/// `destination` without `prefix` (which it falls under), as a mapping pattern sees it: with a
/// leading `/` (`/app/chat/42` and `/app.chat.42` give `/chat/42` and `/chat.42`).
pub(crate) fn strip_prefix(prefix: &str, destination: &str) -> String {
    let rest = destination.get(prefix.trim_end_matches(['/', '.']).len()..).unwrap_or_default();
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{}", rest.trim_start_matches('.'))
    }
}

/// The `{name}` placeholders of a reply template, in order; an error for braces that do not
/// pair up, a bad name, or a capture-the-rest `{*name}` (a template only fills in).
pub(crate) fn template_placeholders(template: &str) -> Result<Vec<&str>, PatternError> {
    let fail = |why: String| Err(PatternError(format!("destination {template:?} {why}")));
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return fail("has a '}' without a matching '{'".into());
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find(['{', '}']) else {
            return fail("has an unbalanced '{': close the placeholder with '}'".into());
        };
        if after[close..].starts_with('{') {
            return fail("has a '{' inside a placeholder; placeholders do not nest".into());
        }
        let name = &after[..close];
        if let Some(rest_name) = name.strip_prefix('*') {
            return fail(format!(
                "has {{*{rest_name}}}, which captures in a mapping; a reply destination uses {{{rest_name}}}"
            ));
        }
        if let Err(why) = check_name(name, &[]) {
            return fail(why);
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// `template` with each `{name}` replaced by its captured value (a placeholder nothing
/// captured stays as written).
pub(crate) fn fill(template: &str, captures: &[(Box<str>, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + close];
        match captures.iter().find(|(n, _)| &**n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

impl DestinationPattern {
    /// Parses `source`, which must start with `/`.
    pub(crate) fn parse(source: &str) -> Result<Self, PatternError> {
        let fail = |why: String| PatternError(format!("destination pattern {source:?} {why}"));
        let err = |why: String| Err(fail(why));
        let Some(rest) = source.strip_prefix('/') else {
            return err("must start with '/'".into());
        };
        let mut variables: Vec<Box<str>> = Vec::new();
        let mut segments = Vec::new();
        let raw: Vec<&str> = rest.split('/').collect();
        for (i, segment) in raw.iter().enumerate() {
            if *segment == "**" {
                segments.push(Segment::Any);
                continue;
            }
            if let Some(name) = segment.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
                if i + 1 != raw.len() {
                    return err(format!("uses {{*{name}}} before the last segment"));
                }
                check_name(name, &variables).map_err(fail)?;
                variables.push(name.into());
                segments.push(Segment::Rest(variables.len() - 1));
                continue;
            }
            let mut parts = Vec::new();
            let mut chars = segment.char_indices().peekable();
            let mut literal = String::new();
            while let Some((at, c)) = chars.next() {
                match c {
                    '{' => {
                        let Some(close) = segment[at..].find('}') else {
                            return err(format!("has an unclosed '{{' in segment {segment:?}"));
                        };
                        let name = &segment[at + 1..at + close];
                        check_name(name, &variables).map_err(fail)?;
                        if !literal.is_empty() {
                            parts.push(Part::Literal(std::mem::take(&mut literal).into()));
                        }
                        if matches!(parts.last(), Some(Part::Var(_) | Part::Star)) {
                            return err(format!(
                                "puts {{{name}}} right after another variable or '*' in segment {segment:?}: nothing could tell where one ends"
                            ));
                        }
                        variables.push(name.into());
                        parts.push(Part::Var(variables.len() - 1));
                        while chars.next_if(|&(i, _)| i <= at + close).is_some() {}
                    }
                    '}' => return err(format!("has a '}}' without '{{' in segment {segment:?}")),
                    '*' => {
                        if !literal.is_empty() {
                            parts.push(Part::Literal(std::mem::take(&mut literal).into()));
                        }
                        if matches!(parts.last(), Some(Part::Var(_))) {
                            return err(format!(
                                "puts '*' right after a variable in segment {segment:?}"
                            ));
                        }
                        if chars.peek().is_some_and(|&(_, c)| c == '*') {
                            return err(format!(
                                "has '**' inside segment {segment:?}; '**' must be a whole segment"
                            ));
                        }
                        if parts.last() != Some(&Part::Star) {
                            parts.push(Part::Star);
                        }
                    }
                    c => literal.push(c),
                }
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.into()));
            }
            segments.push(Segment::Parts(parts));
        }
        Ok(DestinationPattern { source: source.into(), segments, variables })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// The variable names, in order.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|v| &**v)
    }

    /// Whether the pattern is a plain literal (looked up by hash, not by matching).
    pub(crate) fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| match s {
            Segment::Parts(parts) => parts.iter().all(|p| matches!(p, Part::Literal(_))),
            _ => false,
        })
    }

    /// Sort key: lower is more specific (Spring's rule, simplified): fewer `**` and rest
    /// captures, then fewer variables and stars, then more literal characters.
    pub(crate) fn specificity(&self) -> (usize, usize, std::cmp::Reverse<usize>) {
        let mut multi = 0;
        let mut wild = 0;
        let mut literal = 0;
        for segment in &self.segments {
            match segment {
                Segment::Any | Segment::Rest(_) => multi += 1,
                Segment::Parts(parts) => {
                    for part in parts {
                        match part {
                            Part::Literal(text) => literal += text.len(),
                            Part::Star | Part::Var(_) => wild += 1,
                        }
                    }
                }
            }
        }
        (multi, wild, std::cmp::Reverse(literal))
    }

    /// Matches `destination` (which starts with `/`), returning the captured variables.
    pub(crate) fn matches(&self, destination: &str) -> Option<Captures> {
        let rest = destination.strip_prefix('/')?;
        let segments: Vec<&str> = rest.split('/').collect();
        let mut values: Vec<Option<String>> = vec![None; self.variables.len()];
        if !match_segments(&self.segments, &segments, &mut values) {
            return None;
        }
        Some(
            self.variables
                .iter()
                .zip(values)
                .map(|(name, value)| (name.clone(), value.unwrap_or_default()))
                .collect(),
        )
    }
}

fn check_name(name: &str, seen: &[Box<str>]) -> Result<(), String> {
    if name.is_empty() {
        return Err("has an empty variable name '{}'".into());
    }
    if let Some(colon) = name.find(':') {
        return Err(format!(
            "constrains variable {:?} with a regular expression, which is not supported (match with {{{}}} and check the value in the handler)",
            &name[..colon],
            &name[..colon]
        ));
    }
    if !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("has variable name {name:?}; names are letters, digits, '_' and '-'"));
    }
    if seen.iter().any(|s| &**s == name) {
        return Err(format!("defines variable {{{name}}} twice"));
    }
    Ok(())
}

fn match_segments(pattern: &[Segment], segments: &[&str], values: &mut [Option<String>]) -> bool {
    match pattern.split_first() {
        None => segments.is_empty(),
        Some((Segment::Any, rest)) => {
            (0..=segments.len()).any(|skip| match_segments(rest, &segments[skip..], values))
        }
        Some((Segment::Rest(var), _)) => {
            values[*var] = Some(segments.join("/"));
            true
        }
        Some((Segment::Parts(parts), rest)) => {
            let Some((first, others)) = segments.split_first() else { return false };
            match_parts(parts, first, values) && match_segments(rest, others, values)
        }
    }
}

/// Matches one segment against literal/star/variable parts, backtracking over the lengths a
/// star or variable takes.
fn match_parts(parts: &[Part], text: &str, values: &mut [Option<String>]) -> bool {
    match parts.split_first() {
        None => text.is_empty(),
        Some((Part::Literal(literal), rest)) => {
            text.strip_prefix(&**literal).is_some_and(|after| match_parts(rest, after, values))
        }
        Some((part @ (Part::Star | Part::Var(_)), rest)) => {
            let min = usize::from(matches!(part, Part::Var(_)));
            let ends: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(text.len()))
                .filter(|&i| i >= min)
                .collect();
            // Longest first: `{name}.json` against `a.b.json` captures `a.b`.
            ends.into_iter().rev().any(|end| {
                if !match_parts(rest, &text[end..], values) {
                    return false;
                }
                if let Part::Var(var) = part {
                    values[*var] = Some(text[..end].to_owned());
                }
                true
            })
        }
    }
}

pub(crate) mod subscription {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captures(pattern: &str, destination: &str) -> Option<Vec<(String, String)>> {
        let pattern = DestinationPattern::parse(pattern).expect("valid pattern");
        pattern
            .matches(destination)
            .map(|c| c.into_iter().map(|(n, v)| (n.to_string(), v)).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }

    #[test]
    fn templates_name_their_placeholders_and_fill_them() {
        assert_eq!(template_placeholders("/topic/{a}/x-{b}"), Ok(vec!["a", "b"]));
        assert_eq!(template_placeholders("/topic/plain"), Ok(vec![]));
        for bad in ["/t/{a", "/t/a}", "/t/{a{b}}", "/t/{}", "/t/{*rest}", "/t/{a:\\d+}"] {
            assert!(template_placeholders(bad).is_err(), "{bad}");
        }
        let captures = vec![("room".into(), "42".to_owned())];
        assert_eq!(fill("/topic/chat/{room}", &captures), "/topic/chat/42");
        assert_eq!(fill("/topic/{room}.{room}", &captures), "/topic/42.42");
        assert_eq!(fill("/topic/plain", &captures), "/topic/plain");
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(under("/topic", "/topic/a"));
        assert!(under("/topic/", "/topic/a"));
        assert!(under("/topic", "/topic.prices"));
        assert!(under("/topic", "/topic"));
        assert!(!under("/topic", "/topics/a"));
        assert!(!under("/topic", "/queue/a"));
        assert_eq!(strip_prefix("/app", "/app/chat/42"), "/chat/42");
        assert_eq!(strip_prefix("/app/", "/app/chat"), "/chat");
        assert_eq!(strip_prefix("/app", "/app.chat.42"), "/chat.42");
    }

    #[test]
    fn literals_match_exactly() {
        assert_eq!(captures("/hello", "/hello"), pairs(&[]));
        assert_eq!(captures("/hello", "/hello/"), None);
        assert_eq!(captures("/hello", "/hell"), None);
        assert!(DestinationPattern::parse("/a/b").expect("valid").is_literal());
    }

    #[test]
    fn variables_capture_within_a_segment() {
        assert_eq!(captures("/chat/{room}", "/chat/42"), pairs(&[("room", "42")]));
        assert_eq!(captures("/chat/{room}", "/chat/"), None);
        assert_eq!(captures("/chat/{room}", "/chat/4/2"), None);
        assert_eq!(
            captures("/chat.{room}/{user}", "/chat.rust/ann"),
            pairs(&[("room", "rust"), ("user", "ann")])
        );
        assert_eq!(captures("/f/{name}.json", "/f/a.b.json"), pairs(&[("name", "a.b")]));
    }

    #[test]
    fn stars_and_double_stars() {
        assert_eq!(captures("/files/*.json", "/files/x.json"), pairs(&[]));
        assert_eq!(captures("/files/*.json", "/files/.json"), pairs(&[]));
        assert_eq!(captures("/files/*.json", "/files/x.txt"), None);
        assert_eq!(captures("/audit/**", "/audit"), pairs(&[]));
        assert_eq!(captures("/audit/**", "/audit/a/b/c"), pairs(&[]));
        assert_eq!(captures("/**/end", "/a/b/end"), pairs(&[]));
        assert_eq!(captures("/**/end", "/a/b/ending"), None);
        assert_eq!(captures("/docs/{*path}", "/docs/a/b"), pairs(&[("path", "a/b")]));
        assert_eq!(captures("/docs/{*path}", "/docs"), pairs(&[("path", "")]));
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let error = |p: &str| DestinationPattern::parse(p).expect_err(p).0;
        assert!(error("hello").contains("must start with '/'"));
        assert!(error("/chat/{room").contains("unclosed '{'"));
        assert!(error("/chat/room}").contains("'}' without '{'"));
        assert!(error("/chat/{}").contains("empty variable name"));
        assert!(error("/a/{x}/{x}").contains("defines variable {x} twice"));
        assert!(error("/a/{x}{y}").contains("nothing could tell"));
        assert!(error("/a/x**").contains("'**' must be a whole segment"));
        assert!(error("/a/{*rest}/b").contains("before the last segment"));
        assert!(error("/a/{id:\\d+}").contains("not supported"));
    }

    #[test]
    fn specificity_prefers_literals() {
        let key = |p: &str| DestinationPattern::parse(p).expect("valid").specificity();
        assert!(key("/chat/general") < key("/chat/{room}"));
        assert!(key("/chat/{room}") < key("/chat/**"));
        assert!(key("/chat/room-{id}") < key("/chat/{room}"));
    }
}
