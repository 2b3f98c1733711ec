//! Authentication at CONNECT: an asynchronous check of the CONNECT frame's headers.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use super::Principal;
use crate::stomp::{Headers, names};

/// What a [`ConnectAuthenticator`] returns: the session's principal (`None`: anonymous), or
/// why it is refused.
pub type AuthenticationResult = Result<Option<Principal>, AuthenticationFailed>;

/// The boxed future of one authentication.
pub type AuthenticationFuture = Pin<Box<dyn Future<Output = AuthenticationResult> + Send>>;

/// Authenticates a session from its CONNECT frame (Spring's `ChannelInterceptor` on CONNECT,
/// the place for `login`/`passcode` or an `Authorization: Bearer` token).
///
/// It may be slow (a database, an identity provider): it runs on the session's own task, so it
/// never holds up another session, and it is bounded by
/// [`ServerBuilder::authentication_timeout`](crate::ServerBuilder::authentication_timeout).
/// While it runs, the session reads nothing more. A refusal (or a timeout) sends the client
/// an `ERROR` frame with `message:authentication failed` and nothing more (the reason goes to
/// the server's log, never to a possible attacker), then closes the connection, on every
/// transport.
///
/// Any `Fn(ConnectRequest) -> impl Future<Output = AuthenticationResult>` is an authenticator:
///
/// ```
/// use stompede::{AuthenticationFailed, ConnectRequest, Principal, Server};
///
/// let server = Server::builder()
///     .authenticator(|connect: ConnectRequest| async move {
///         match (connect.login(), connect.passcode()) {
///             (Some("ada"), Some("lovelace")) => Ok(Some(Principal::new("ada").with_role("admin"))),
///             // Keep what the handshake established (a cookie session), if anything.
///             (None, None) => Ok(connect.principal().cloned()),
///             _ => Err(AuthenticationFailed::new("wrong login or passcode")),
///         }
///     })
///     .build()
///     .unwrap();
/// # drop(server);
/// ```
pub trait ConnectAuthenticator: Send + Sync + 'static {
    /// Decides who the session is, from its CONNECT frame and handshake.
    fn authenticate(&self, request: ConnectRequest) -> AuthenticationFuture;
}

impl<F, Fut> ConnectAuthenticator for F
where
    F: Fn(ConnectRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthenticationResult> + Send + 'static,
{
    fn authenticate(&self, request: ConnectRequest) -> AuthenticationFuture {
        Box::pin(self(request))
    }
}

/// What a [`ConnectAuthenticator`] sees: the CONNECT frame's headers, the principal the
/// handshake established (if any), the session id and the peer's address.
#[derive(Clone)]
pub struct ConnectRequest {
    pub(crate) headers: Headers,
    pub(crate) principal: Option<Principal>,
    pub(crate) session_id: String,
    pub(crate) remote_addr: Option<SocketAddr>,
}

impl ConnectRequest {
    /// A header of the CONNECT frame (the first, if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Every header of the CONNECT frame.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The `login` header.
    pub fn login(&self) -> Option<&str> {
        self.header(names::LOGIN)
    }

    /// The `passcode` header.
    pub fn passcode(&self) -> Option<&str> {
        self.header("passcode")
    }

    /// The token of an `Authorization: Bearer <token>` header (the scheme is matched without
    /// regard to case).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("Authorization").or_else(|| self.header("authorization"))?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }

    /// The principal the handshake established: from the
    /// [`HandshakeHook`](crate::HandshakeHook), or from the host application's middleware.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The session's id (the CONNECTED frame's `session` header).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The peer's address, when the transport knows it.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("ConnectRequest")
            .field("login", &self.login())
            .field("principal", &self.principal)
            .field("session_id", &self.session_id)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// Why a [`ConnectAuthenticator`] refused a session: logged by the server (with the login and
/// peer), never sent to the client, which reads only `authentication failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticationFailed {
    reason: String,
}

impl AuthenticationFailed {
    /// A refusal, with the reason for the server's log.
    pub fn new(reason: impl Into<String>) -> Self {
        AuthenticationFailed { reason: reason.into() }
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for AuthenticationFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for AuthenticationFailed {}
