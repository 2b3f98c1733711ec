//! CSRF protection for cookie-authenticated sessions (Spring Security's
//! `XorCsrfChannelInterceptor`).
//!
//! A browser sends its cookies with every WebSocket handshake and SockJS request, whichever
//! page opens them: a page on another site could open a session as the signed-in user. The
//! origin check stops most such pages; the CSRF token stops the rest: the application gives
//! its own page a token (in the HTML, or a readable cookie), the page sends it in a CONNECT
//! header, and the server compares it with the one the handshake attached.

use std::fmt;

/// The CSRF token the application gave its page, attached to the handshake's attributes by a
/// [`HandshakeHook`](crate::HandshakeHook) or by the host application's middleware (in the
/// request's extensions): CONNECT must then carry the same value in the CSRF header
/// (`X-CSRF-TOKEN` by default).
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// A token with this value.
    pub fn new(token: impl Into<String>) -> Self {
        CsrfToken(token.into())
    }

    /// The token's value.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(..)")
    }
}

/// When CONNECT must carry the CSRF token (see [`ServerBuilder::csrf`](crate::ServerBuilder::csrf)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Csrf {
    /// Required for cookie-authenticated sessions (the handshake carried a `Cookie` header
    /// and established a [`Principal`](crate::Principal)) and wherever the application
    /// attached a [`CsrfToken`]; not for others (a token-authenticated client, an anonymous
    /// one), which a foreign page cannot impersonate.
    #[default]
    Auto,
    /// Required of every session: a session without an attached token cannot connect.
    Required,
    /// Never checked. Only for servers without cookie authentication.
    Disabled,
}

/// Marks a handshake that carried cookies and established a principal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CookieAuthenticated;
