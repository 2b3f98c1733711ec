//! Authorization rules: who may CONNECT, SEND where and SUBSCRIBE to what (Spring Security's
//! message matchers).

use std::fmt;
use std::sync::Arc;

use super::Principal;
use crate::destination::subscription::Pattern;

/// The rules a server checks every client frame against, in order: the first rule that
/// matches the frame decides (Spring Security's `MessageMatcherDelegatingAuthorizationManager`).
///
/// They are checked after the frame is decoded and before the broker or any handler sees it,
/// on every transport. A denied frame gets the client an `ERROR` frame that names the frame
/// and its destination (`access denied: SUBSCRIBE to /topic/admin/audit`), then the
/// connection closes, and the server logs a WARN line with the principal.
///
/// A SEND or SUBSCRIBE that no rule matches is **denied**. A CONNECT, or a frame without a
/// destination (UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT, DISCONNECT), that no rule matches
/// is allowed: those reach nothing but the session's own state. Destination patterns are the
/// broker's: `*` within a segment, `**` across segments, `/` and `.` both separating them.
/// Destinations are matched as the client wrote them (`/user/queue/errors`, before a user
/// destination is resolved; `/app/chat/1`, with the application prefix).
///
/// ```
/// use stompede::Server;
/// use stompede::security::{Access, AccessRules};
///
/// let rules = AccessRules::new()
///     .connect(Access::authenticated())
///     .subscribe(["/user/queue/errors"], Access::permit_all())
///     .subscribe(["/topic/admin/**"], Access::role("admin"))
///     .send(["/topic/**", "/queue/**"], Access::deny_all()) // only the server publishes there
///     .destinations(["/app/**", "/topic/**", "/user/**"], Access::authenticated())
///     .any(Access::deny_all());
/// let server = Server::builder().access_rules(rules).build().unwrap();
/// # drop(server);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AccessRules {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    frames: Frames,
    destinations: Option<Vec<(String, Pattern)>>,
    access: Access,
}

/// Which frames a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frames {
    Connect,
    Send,
    Subscribe,
    /// SEND and SUBSCRIBE.
    WithDestination,
    /// Frames without a destination, CONNECT excepted.
    WithoutDestination,
    Any,
}

/// The kind of a client frame, as the rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Connect,
    Send,
    Subscribe,
    Other,
}

impl AccessRules {
    /// No rules: everything is allowed, as without `access_rules`.
    pub fn new() -> Self {
        AccessRules::default()
    }

    fn push(mut self, frames: Frames, destinations: Option<Vec<String>>, access: Access) -> Self {
        let destinations = destinations
            .map(|list| list.into_iter().map(|d| (d.clone(), Pattern::parse(&d))).collect());
        self.rules.push(Rule { frames, destinations, access });
        self
    }

    /// CONNECT (and STOMP) frames: who may open a session.
    pub fn connect(self, access: Access) -> Self {
        self.push(Frames::Connect, None, access)
    }

    /// SEND frames to destinations matching one of `patterns`.
    pub fn send<I, S>(self, patterns: I, access: Access) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.push(Frames::Send, Some(patterns.into_iter().map(Into::into).collect()), access)
    }

    /// SUBSCRIBE frames to destinations matching one of `patterns`.
    pub fn subscribe<I, S>(self, patterns: I, access: Access) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.push(Frames::Subscribe, Some(patterns.into_iter().map(Into::into).collect()), access)
    }

    /// SEND and SUBSCRIBE frames to destinations matching one of `patterns` (Spring's
    /// `simpDestMatchers`).
    pub fn destinations<I, S>(self, patterns: I, access: Access) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let patterns = Some(patterns.into_iter().map(Into::into).collect());
        self.push(Frames::WithDestination, patterns, access)
    }

    /// Frames without a destination, CONNECT excepted: UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT,
    /// ABORT, DISCONNECT (Spring's `nullDestMatcher`, less CONNECT).
    pub fn frames_without_destination(self, access: Access) -> Self {
        self.push(Frames::WithoutDestination, None, access)
    }

    /// Every frame (Spring's `anyMessage`): the usual last rule.
    pub fn any(self, access: Access) -> Self {
        self.push(Frames::Any, None, access)
    }

    /// Whether there are no rules (every frame is allowed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first destination pattern that does not start with `/` (a typo that would never
    /// match), for the configuration check.
    pub(crate) fn malformed_pattern(&self) -> Option<&str> {
        self.rules
            .iter()
            .flat_map(|rule| rule.destinations.iter().flatten())
            .map(|(text, _)| text.as_str())
            .find(|text| !text.starts_with('/'))
    }

    /// Whether `principal` may send a frame of `kind` to `destination`.
    pub(crate) fn allows(
        &self,
        kind: FrameKind,
        destination: Option<&str>,
        principal: Option<&Principal>,
    ) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        for rule in &self.rules {
            let frames = match rule.frames {
                Frames::Connect => kind == FrameKind::Connect,
                Frames::Send => kind == FrameKind::Send,
                Frames::Subscribe => kind == FrameKind::Subscribe,
                Frames::WithDestination => matches!(kind, FrameKind::Send | FrameKind::Subscribe),
                Frames::WithoutDestination => kind == FrameKind::Other,
                Frames::Any => true,
            };
            let destinations = match (&rule.destinations, destination) {
                (None, _) => true,
                (Some(patterns), Some(destination)) => {
                    patterns.iter().any(|(_, pattern)| pattern.matches(destination))
                }
                (Some(_), None) => false,
            };
            if frames && destinations {
                let command = match kind {
                    FrameKind::Connect => "CONNECT",
                    FrameKind::Send => "SEND",
                    FrameKind::Subscribe => "SUBSCRIBE",
                    FrameKind::Other => "",
                };
                return rule.access.grants(&AccessRequest { principal, destination, command });
            }
        }
        !matches!(kind, FrameKind::Send | FrameKind::Subscribe)
    }

    /// Whether `principal` may SUBSCRIBE to the wildcard `pattern`: only if every destination
    /// it covers would be allowed on its own. Rules are read in order: one that may overlap
    /// the pattern and denies refuses it (conservatively: overlap is assumed unless the literal
    /// beginnings differ); one that covers the whole pattern decides for the rest; one that
    /// overlaps and allows leaves the rest of the pattern to the next rules. So `/topic/**` is
    /// refused to a user whom `/topic/admin/**` is refused to.
    pub(crate) fn allows_pattern(&self, pattern: &str, principal: Option<&Principal>) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        for rule in &self.rules {
            if !matches!(rule.frames, Frames::Subscribe | Frames::WithDestination | Frames::Any) {
                continue;
            }
            let (overlaps, covers) = match &rule.destinations {
                None => (true, true),
                Some(patterns) => patterns.iter().fold((false, false), |(o, c), (text, _)| {
                    (o || overlaps(text, pattern), c || covers(text, pattern))
                }),
            };
            if !overlaps {
                continue;
            }
            let request =
                AccessRequest { principal, destination: Some(pattern), command: "SUBSCRIBE" };
            if !rule.access.grants(&request) {
                return false;
            }
            if covers {
                return true;
            }
        }
        false
    }
}

/// The text before a pattern's first wildcard.
fn literal_prefix(pattern: &str) -> &str {
    &pattern[..pattern.find('*').unwrap_or(pattern.len())]
}

/// Whether some destination may match both the rule pattern `rule` and the subscription
/// `pattern` (true unless their literal beginnings prove otherwise).
fn overlaps(rule: &str, pattern: &str) -> bool {
    if !Pattern::is_pattern(rule) {
        return Pattern::parse(pattern).matches(rule);
    }
    let (a, b) = (literal_prefix(rule), literal_prefix(pattern));
    a.starts_with(b) || b.starts_with(a)
}

/// Whether every destination the subscription `pattern` matches also matches `rule`: when
/// they are the same text, or `rule` is a literal followed by `**` that begins the pattern's
/// own literal beginning.
fn covers(rule: &str, pattern: &str) -> bool {
    if rule == pattern {
        return true;
    }
    match rule.strip_suffix("**") {
        Some(literal) if !literal.contains('*') => literal_prefix(pattern).starts_with(literal),
        _ => false,
    }
}

/// What a rule requires of the session's principal.
#[derive(Clone)]
pub struct Access(AccessKind);

/// A custom access decision.
type Decide = dyn Fn(&AccessRequest<'_>) -> bool + Send + Sync;

/// What an [`Access::custom`] rule decides on: the session's principal, the frame's command
/// and its destination.
#[derive(Clone, Copy, Debug)]
pub struct AccessRequest<'a> {
    principal: Option<&'a Principal>,
    destination: Option<&'a str>,
    command: &'static str,
}

impl<'a> AccessRequest<'a> {
    /// The session's principal (`None`: anonymous).
    pub fn principal(&self) -> Option<&'a Principal> {
        self.principal
    }

    /// The destination of a SEND or SUBSCRIBE, as the client wrote it: for a wildcard
    /// SUBSCRIBE, the pattern itself (`/topic/acme/**`), so a rule that allows a subtree must
    /// check that the pattern stays inside it.
    pub fn destination(&self) -> Option<&'a str> {
        self.destination
    }

    /// `CONNECT`, `SEND` or `SUBSCRIBE`; empty for the frames without a destination.
    pub fn command(&self) -> &'static str {
        self.command
    }
}

#[derive(Clone)]
enum AccessKind {
    PermitAll,
    DenyAll,
    Authenticated,
    AnyRole(Vec<String>),
    Custom(Arc<Decide>),
}

impl Access {
    /// Everyone, anonymous sessions included.
    pub fn permit_all() -> Self {
        Access(AccessKind::PermitAll)
    }

    /// Nobody.
    pub fn deny_all() -> Self {
        Access(AccessKind::DenyAll)
    }

    /// Sessions with a principal.
    pub fn authenticated() -> Self {
        Access(AccessKind::Authenticated)
    }

    /// Sessions whose principal has `role`.
    pub fn role(role: impl Into<String>) -> Self {
        Access(AccessKind::AnyRole(vec![role.into()]))
    }

    /// Sessions whose principal has at least one of `roles`.
    pub fn any_role<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Access(AccessKind::AnyRole(roles.into_iter().map(Into::into).collect()))
    }

    /// Whatever `decide` says of the request: its principal, command and destination. A
    /// tenant's own topics, say:
    ///
    /// ```
    /// use stompede::security::{Access, AccessRequest, AccessRules};
    ///
    /// // /topic/tenant/{id}/** for the users whose `tenant` attribute is {id}.
    /// let own_tenant = Access::custom(|request: &AccessRequest<'_>| {
    ///     let (Some(user), Some(destination)) = (request.principal(), request.destination()) else {
    ///         return false;
    ///     };
    ///     let Some(tenant) = user.attribute("tenant") else { return false };
    ///     destination.strip_prefix("/topic/tenant/").and_then(|rest| rest.strip_prefix(tenant))
    ///         .is_some_and(|rest| rest.starts_with('/'))
    /// });
    /// let rules = AccessRules::new().destinations(["/topic/tenant/**"], own_tenant);
    /// # drop(rules);
    /// ```
    pub fn custom(decide: impl Fn(&AccessRequest<'_>) -> bool + Send + Sync + 'static) -> Self {
        Access(AccessKind::Custom(Arc::new(decide)))
    }

    fn grants(&self, request: &AccessRequest<'_>) -> bool {
        let principal = request.principal;
        match &self.0 {
            AccessKind::PermitAll => true,
            AccessKind::DenyAll => false,
            AccessKind::Authenticated => principal.is_some(),
            AccessKind::AnyRole(roles) => {
                principal.is_some_and(|p| roles.iter().any(|r| p.has_role(r)))
            }
            AccessKind::Custom(decide) => decide(request),
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            AccessKind::PermitAll => f.write_str("permit_all"),
            AccessKind::DenyAll => f.write_str("deny_all"),
            AccessKind::Authenticated => f.write_str("authenticated"),
            AccessKind::AnyRole(roles) => write!(f, "any_role({roles:?})"),
            AccessKind::Custom(_) => f.write_str("custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AccessRules {
        AccessRules::new()
            .connect(Access::authenticated())
            .subscribe(["/user/queue/errors"], Access::permit_all())
            .subscribe(["/topic/admin/**"], Access::role("admin"))
            .send(["/topic/**"], Access::deny_all())
            .destinations(["/app/**", "/topic/**", "/user/**"], Access::authenticated())
            .any(Access::deny_all())
    }

    #[test]
    fn first_matching_rule_decides() {
        let (rules, ada, bob) =
            (rules(), Principal::new("ada").with_role("admin"), Principal::new("bob"));
        use FrameKind::*;
        assert!(!rules.allows(Connect, None, None));
        assert!(rules.allows(Connect, None, Some(&bob)));
        assert!(rules.allows(Subscribe, Some("/user/queue/errors"), None));
        assert!(rules.allows(Subscribe, Some("/topic/admin/audit"), Some(&ada)));
        assert!(!rules.allows(Subscribe, Some("/topic/admin/audit"), Some(&bob)));
        assert!(!rules.allows(Send, Some("/topic/chat"), Some(&ada)));
        assert!(rules.allows(Subscribe, Some("/topic/chat"), Some(&bob)));
        assert!(!rules.allows(Subscribe, Some("/topic/chat"), None));
        assert!(rules.allows(Send, Some("/app/hello"), Some(&bob)));
        assert!(!rules.allows(Send, Some("/queue/x"), Some(&ada)));
        // `any` is the last rule: it catches frames without a destination too.
        assert!(!rules.allows(Other, None, Some(&ada)));
    }

    #[test]
    fn wildcard_subscriptions_cannot_reach_past_a_rule() {
        let (rules, ada, bob) =
            (rules(), Principal::new("ada").with_role("admin"), Principal::new("bob"));
        assert!(!rules.allows_pattern("/topic/**", Some(&bob)), "covers /topic/admin/**");
        assert!(
            !rules.allows_pattern("/topic/*/audit", Some(&bob)),
            "may reach /topic/admin/audit"
        );
        assert!(!rules.allows_pattern("/**", Some(&ada)), "reaches past every rule");
        assert!(rules.allows_pattern("/topic/**", Some(&ada)));
        assert!(rules.allows_pattern("/topic/chat/*", Some(&bob)), "disjoint from the admin area");
        assert!(!rules.allows_pattern("/topic/chat/*", None), "needs a user");
        assert!(!rules.allows_pattern("/queue/*", Some(&ada)), "no rule allows /queue");
        assert!(AccessRules::new().allows_pattern("/**", None), "no rules, no limits");
    }

    #[test]
    fn custom_rules_see_the_destination() {
        let rules = AccessRules::new()
            .destinations(
                ["/topic/tenant/**"],
                Access::custom(|request| {
                    let tenant = request.principal().and_then(|p| p.attribute("tenant"));
                    match (tenant, request.destination()) {
                        (Some(t), Some(d)) => d.starts_with(&format!("/topic/tenant/{t}/")),
                        _ => false,
                    }
                }),
            )
            .any(Access::deny_all());
        let acme = Principal::new("ada").with_attribute("tenant", "acme");
        use FrameKind::*;
        assert!(rules.allows(Subscribe, Some("/topic/tenant/acme/orders"), Some(&acme)));
        assert!(!rules.allows(Subscribe, Some("/topic/tenant/globex/orders"), Some(&acme)));
        assert!(rules.allows_pattern("/topic/tenant/acme/**", Some(&acme)));
        assert!(!rules.allows_pattern("/topic/tenant/**", Some(&acme)), "reaches other tenants");
        assert!(!rules.allows(Send, Some("/topic/tenant/acme/x"), None));
    }

    #[test]
    fn unmatched_frames() {
        let rules = AccessRules::new().subscribe(["/topic/*"], Access::permit_all());
        use FrameKind::*;
        assert!(rules.allows(Subscribe, Some("/topic/a"), None));
        assert!(!rules.allows(Subscribe, Some("/queue/a"), None), "unmatched SUBSCRIBE denied");
        assert!(!rules.allows(Send, Some("/topic/a"), None), "unmatched SEND denied");
        assert!(rules.allows(Connect, None, None));
        assert!(rules.allows(Other, None, None));
        assert!(AccessRules::new().allows(Send, Some("/anything"), None));
    }
}
