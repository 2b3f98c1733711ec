//! Security hooks. The handshake hook sees every WebSocket upgrade request (and every new
//! SockJS session's first request) before it is accepted: it can refuse it, or attach
//! attributes. A [`Principal`] among them becomes the session's user, which handlers take as
//! `Option<Principal>`; other attributes are not readable by handlers yet.

mod origin;

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
/// Returns the attributes the hook attached (a [`Principal`] among them, perhaps).
pub(crate) fn admit(
    config: &Config,
    request: &http::request::Parts,
) -> Result<http::Extensions, Refusal> {
    check_origin(&config.allowed_origins, request).map_err(Refusal::Origin)?;
    let mut attributes = http::Extensions::new();
    if let Some(hook) = &config.handshake_hook {
        hook.handshake(request, &mut attributes).map_err(Refusal::Hook)?;
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

/// The authenticated user of a session (Spring's `Principal`).
///
/// A [`HandshakeHook`] authenticates the upgrade request and inserts one into the session's
/// attributes; handlers then take it as an `Option<Principal>` argument (`None` for
/// anonymous sessions).
///
/// ```
/// use stompede::{HandshakeRejection, Principal, Server};
/// let server = Server::builder()
///     .handshake_hook(|request: &http::request::Parts, attributes: &mut http::Extensions| {
///         let user = request.headers.get("x-user").and_then(|v| v.to_str().ok())
///             .ok_or_else(|| HandshakeRejection::new(http::StatusCode::UNAUTHORIZED, "sign in first"))?;
///         attributes.insert(Principal::new(user));
///         Ok(())
///     })
///     .build()
///     .unwrap();
/// # drop(server);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    name: String,
}

impl Principal {
    /// A principal with this user name.
    pub fn new(name: impl Into<String>) -> Self {
        Principal { name: name.into() }
    }

    /// The user name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
