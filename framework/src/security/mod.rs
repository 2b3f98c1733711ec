//! Security: who a session is, and what it may do.
//!
//! - **Authentication.** At the handshake: a [`HandshakeHook`] (or, when the server is mounted
//!   in axum, the host application's own middleware putting a [`Principal`] in the request's
//!   extensions). At CONNECT: a [`ConnectAuthenticator`] that sees the frame's headers
//!   (`login`/`passcode`, `Authorization: Bearer ...`).
//! - **Authorization.** [`AccessRules`], checked for every client frame before the broker or a
//!   handler sees it, and `#[requires_role("admin")]` on handlers.
//! - **Browser safety.** The origin allow-list (WebSocket and SockJS alike) and a
//!   [`CsrfToken`] at CONNECT for cookie-authenticated sessions.
//! - **Limits.** Sessions per server, per user and per remote address, and an inbound frame
//!   rate per session (see [`ServerBuilder`](crate::ServerBuilder)).
//!
//! `docs/security.md` is the guide, with Spring Security's features side by side.

mod authenticate;
mod csrf;
mod origin;
mod principal;
pub(crate) mod rate;
mod rules;

pub use authenticate::{
    AuthenticationFailed, AuthenticationFuture, AuthenticationResult, ConnectAuthenticator,
    ConnectRequest,
};
pub(crate) use csrf::CookieAuthenticated;
pub use csrf::{Csrf, CsrfToken};
pub use principal::Principal;
pub(crate) use rules::FrameKind;
pub use rules::{Access, AccessRequest, AccessRules};

use http::StatusCode;

pub(crate) use origin::check_origin;

use crate::config::Config;

/// Why a handshake (a WebSocket upgrade, a new SockJS session) was refused.
pub(crate) enum Refusal {
    /// The page's origin is not allowed (the value of its `Origin` header).
    Origin(String),
    /// The application's hook refused it.
    Hook(HandshakeRejection),
}

/// The one place a handshake is judged: the origin policy, then the application's hook.
/// Returns the session's attributes: a [`Principal`] and a [`CsrfToken`] that the host
/// application's middleware put in the request's extensions, then whatever the hook attached
/// (which may replace them).
pub(crate) fn admit(
    config: &Config,
    request: &http::request::Parts,
) -> Result<http::Extensions, Refusal> {
    check_origin(&config.allowed_origins, request).map_err(Refusal::Origin)?;
    let mut attributes = http::Extensions::new();
    if let Some(principal) = request.extensions.get::<Principal>() {
        attributes.insert(principal.clone());
    }
    if let Some(token) = request.extensions.get::<CsrfToken>() {
        attributes.insert(token.clone());
    }
    if let Some(hook) = &config.handshake_hook {
        hook.handshake(request, &mut attributes).map_err(Refusal::Hook)?;
    }
    if attributes.get::<Principal>().is_some() && request.headers.contains_key(http::header::COOKIE)
    {
        attributes.insert(CookieAuthenticated);
    }
    Ok(attributes)
}

/// Decides whether a WebSocket handshake may proceed, and attaches attributes (a
/// [`Principal`] is the one the session keeps).
///
/// Any `Fn(&http::request::Parts, &mut http::Extensions) -> Result<(), HandshakeRejection>`
/// is a hook:
///
/// ```
/// use stompede::{HandshakeRejection, Server};
/// # #[derive(Clone)] struct Tenant(String);
/// let server = Server::builder()
///     .handshake_hook(|request: &http::request::Parts, attributes: &mut http::Extensions| {
///         let tenant = request.headers.get("x-tenant")
///             .and_then(|v| v.to_str().ok())
///             .ok_or_else(|| HandshakeRejection::new(http::StatusCode::UNAUTHORIZED, "x-tenant header required"))?;
///         attributes.insert(Tenant(tenant.to_owned()));
///         Ok(())
///     })
///     .build()
///     .unwrap();
/// ```
pub trait HandshakeHook: Send + Sync + 'static {
    /// Inspects the upgrade request; `Err` refuses it with the rejection's status and message.
    fn handshake(
        &self,
        request: &http::request::Parts,
        attributes: &mut http::Extensions,
    ) -> Result<(), HandshakeRejection>;
}

impl<F> HandshakeHook for F
where
    F: Fn(&http::request::Parts, &mut http::Extensions) -> Result<(), HandshakeRejection>
        + Send
        + Sync
        + 'static,
{
    fn handshake(
        &self,
        request: &http::request::Parts,
        attributes: &mut http::Extensions,
    ) -> Result<(), HandshakeRejection> {
        self(request, attributes)
    }
}

/// A refused handshake: the HTTP status and the text body sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRejection {
    /// The response status (401, 403…).
    pub status: StatusCode,
    /// The response body, for the client's developer.
    pub message: String,
}

impl HandshakeRejection {
    /// A rejection with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HandshakeRejection { status, message: message.into() }
    }
}
