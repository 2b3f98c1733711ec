//! The WebSocket endpoint as an HTTP service: handshake checks (path, upgrade headers, origin,
//! the application's hook), STOMP subprotocol negotiation, then a session on the upgraded
//! connection.
//!
//! [`StompService`] implements both tower's `Service` (to mount in axum and other tower
//! stacks) and hyper's (to serve directly).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Endpoints;
use super::accept::Plain;
pub use super::body::ResponseBody;
use super::connections::ConnectionSlot;
use super::read_ahead::ReadAhead;
#[cfg(feature = "sockjs")]
use super::sockjs::{self, SockJsEndpoint};
use super::websocket::{self, WebSocketTransport};
use crate::config::Config;
use crate::log_throttle::{EVERY, LogThrottle};
use crate::runtime::Runtime;
use crate::security::{self, Refusal};
use crate::session::{self, Peer};
use crate::stomp::Version;

/// The STOMP WebSocket endpoint(s) of a [`Server`](crate::Server) as an HTTP service.
///
/// In axum, `Server::router()` (feature `axum`) routes everything to
/// it in one `merge`. Routed by hand, every path it serves must reach it: the endpoints, the
/// paths below a SockJS endpoint, the static assets. The simplest is the fallback:
///
/// ```
/// fn app(server: &stompede::Server) -> axum::Router {
///     axum::Router::new()
///         .route("/api/health", axum::routing::get(|| async { "ok" }))
///         .fallback_service(server.service())
/// }
/// # let server = stompede::Server::builder().build().unwrap();
/// # let _ = app(&server);
/// ```
///
/// (See `examples/axum_mount` for the complete program.) The service also answers the
/// server's static assets (`/stompede.js`, pages registered with
/// [`ServerBuilder::static_page`](crate::ServerBuilder::static_page)) when they are routed to
/// it. Requests whose path is neither get 404; plain GETs on an endpoint get 400
/// (`Can "Upgrade" only to "WebSocket".`).
#[derive(Clone)]
pub struct StompService {
    runtime: Arc<Runtime>,
    /// The SockJS endpoints and their sessions.
    endpoints: Arc<Endpoints>,
    peer: Option<SocketAddr>,
    /// The connection's slot among `max_http_connections`, for connections the server
    /// accepted itself.
    slot: Option<ConnectionSlot>,
}

impl StompService {
    pub(crate) fn new(runtime: Arc<Runtime>, endpoints: Arc<Endpoints>) -> Self {
        StompService { runtime, endpoints, peer: None, slot: None }
    }

    pub(crate) fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    pub(crate) fn with_slot(mut self, slot: ConnectionSlot) -> Self {
        self.slot = Some(slot);
        self
    }

    fn handle<B>(&self, mut request: Request<B>) -> ServiceFuture
    where
        B: RequestBody,
    {
        let runtime = self.runtime.clone();
        let endpoints = self.endpoints.clone();
        let peer = self.peer;
        if let Some(slot) = &self.slot {
            // Where a request becomes a session, the slot is released (see ConnectionSlot);
            // a later request on the same connection counts again.
            if !slot.reacquire() {
                let mut response = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server holds max_http_connections connections without a session; try again later",
                );
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Box::pin(async move { Ok(response) });
            }
            request.extensions_mut().insert(slot.clone());
        }
        Box::pin(async move { Ok(route(&runtime, &endpoints, request, peer).await) })
    }
}

/// A request body the service can read (`xhr_send`): any `http_body::Body` whose errors are
/// errors; axum's and hyper's are.
pub(crate) trait RequestBody:
    http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// 403 for a request (`what`) whose `Origin` is not allowed, with a throttled warning: any
/// page on the web can make browsers send such requests by the thousand.
pub(crate) fn refuse_origin(origin: &str, what: &str) -> Response<ResponseBody> {
    // One throttle for the process: a flood is a flood whichever server it reaches.
    static REFUSALS: LogThrottle = LogThrottle::new(EVERY);
    if let Some(held_back) = REFUSALS.allow() {
        tracing::warn!(
            %origin,
            held_back,
            "{what} refused: origin not allowed (add it with allowed_origins if it is yours; later refusals are counted in held_back, one line per 10 s)"
        );
    }
    text(
        StatusCode::FORBIDDEN,
        format!("origin {origin} is not allowed (add it with allowed_origins)"),
    )
}

/// The future of a [`StompService`] call.
type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send + 'static>>;

impl<B> tower_service::Service<Request<B>> for StompService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.handle(request)
    }
}

impl<B> hyper::service::Service<Request<B>> for StompService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.handle(request)
    }
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn header_has_token(request: &http::request::Parts, name: header::HeaderName, token: &str) -> bool {
    request.headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Routes a request: a static asset, an endpoint (WebSocket handshake, or the SockJS
/// greeting), a SockJS resource under an endpoint, or 404.
async fn route<B>(
    runtime: &Arc<Runtime>,
    endpoints: &Endpoints,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody>
where
    B: RequestBody,
{
    let config = &runtime.config;
    #[cfg_attr(not(feature = "sockjs"), allow(unused_variables))]
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if let Some(asset) = config.asset(path) {
        return asset.respond(&parts.method, &parts.headers);
    }
    if let Some(page) = config.dynamic_pages.iter().find(|p| p.path == path) {
        return page.respond(&parts.method);
    }
    if config.endpoints.iter().any(|e| e.path == path) {
        #[cfg(feature = "sockjs")]
        if endpoints.sockjs.iter().any(|s| s.path == path)
            && !header_has_token(&parts, header::UPGRADE, "websocket")
        {
            return sockjs::greeting(&parts.method);
        }
        return upgrade(runtime, parts, peer, Upgrade::Stomp);
    }
    #[cfg(feature = "sockjs")]
    {
        let under = endpoints.sockjs.iter().find_map(|endpoint| {
            let rest = path.strip_prefix(endpoint.path.as_str())?;
            rest.starts_with('/').then(|| (endpoint.clone(), rest.to_owned()))
        });
        if let Some((endpoint, rest)) = under {
            return sockjs::handle(runtime, &endpoint, &rest, parts, body, peer).await;
        }
    }
    #[cfg(not(feature = "sockjs"))]
    let _ = (endpoints, body);
    let endpoints: Vec<&str> = config.endpoints.iter().map(|e| e.path.as_str()).collect();
    text(
        StatusCode::NOT_FOUND,
        format!("no STOMP endpoint at {path} (endpoints: {})", endpoints.join(", ")),
    )
}

/// What a WebSocket carries once upgraded.
pub(crate) enum Upgrade {
    /// STOMP frames, one per message (the endpoint itself, or SockJS's `/websocket`).
    Stomp,
    /// SockJS framing (`/ws/{server}/{session}/websocket`).
    #[cfg(feature = "sockjs")]
    SockJs(Arc<SockJsEndpoint>),
}

/// A WebSocket upgrade request that passed every check (axum's `WebSocketUpgrade` as the
/// model): what [`accept`](WebSocketHandshake::accept) needs to answer it and, once hyper has
/// handed the connection over, to run its session.
pub(crate) struct WebSocketHandshake {
    key: HeaderValue,
    subprotocol: Option<Version>,
    attributes: http::Extensions,
    on_upgrade: hyper::upgrade::OnUpgrade,
    slot: Option<ConnectionSlot>,
    kind: Upgrade,
    /// When the handshake reached the server (see `Peer::accepted`).
    accepted: tokio::time::Instant,
}

/// The WebSocket handshake: checked, then accepted, with a session on the upgraded
/// connection; or the response that refuses it.
pub(crate) fn upgrade(
    runtime: &Arc<Runtime>,
    parts: http::request::Parts,
    peer: Option<SocketAddr>,
    kind: Upgrade,
) -> Response<ResponseBody> {
    match WebSocketHandshake::extract(&runtime.config, parts, kind) {
        Ok(handshake) => handshake.accept(runtime, peer),
        Err(refusal) => *refusal,
    }
}

impl WebSocketHandshake {
    /// Checks the upgrade headers, the origin and the application's hook; picks the STOMP
    /// subprotocol.
    fn extract(
        config: &Config,
        mut parts: http::request::Parts,
        kind: Upgrade,
    ) -> Result<Self, Box<Response<ResponseBody>>> {
        // Before the credentials are judged: a logout from here on refuses its CONNECT.
        let accepted = tokio::time::Instant::now();
        let refuse = |response| Err(Box::new(response));
        if parts.method != Method::GET
            || !header_has_token(&parts, header::UPGRADE, "websocket")
            || !header_has_token(&parts, header::CONNECTION, "upgrade")
        {
            return refuse(text(StatusCode::BAD_REQUEST, "Can \"Upgrade\" only to \"WebSocket\"."));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            let mut response =
                text(StatusCode::UPGRADE_REQUIRED, "Only WebSocket version 13 is supported.");
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return refuse(response);
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return refuse(text(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key header is missing."));
        };
        let attributes = match security::admit(config, &parts) {
            Ok(attributes) => attributes,
            Err(refusal) => return refuse(refusal_response(refusal, "WebSocket handshake")),
        };
        // SockJS framing is not STOMP's subprotocol.
        let subprotocol = match kind {
            Upgrade::Stomp => negotiate_subprotocol(&parts),
            #[cfg(feature = "sockjs")]
            Upgrade::SockJs(_) => None,
        };
        // hyper leaves the upgrade handle in the request's extensions (axum keeps it there too).
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return refuse(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this connection cannot be upgraded: serve StompService with hyper's upgrades enabled (serve_connection(..).with_upgrades())",
            ));
        };
        let slot = parts.extensions.remove::<ConnectionSlot>();
        Ok(WebSocketHandshake { key, subprotocol, attributes, on_upgrade, slot, kind, accepted })
    }

    /// Answers `101 Switching Protocols` and spawns what runs once hyper hands the
    /// connection over.
    fn accept(self, runtime: &Arc<Runtime>, peer: Option<SocketAddr>) -> Response<ResponseBody> {
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(self.key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(version) = self.subprotocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(version.subprotocol()),
            );
        }
        // Only what the session needs is kept: the key (like every header value) points into
        // hyper's 8 KiB read buffer, and holding it would keep that buffer for the session's
        // whole life (measured: 8 KiB of each idle connection's 19 KiB).
        let Self { key: _, subprotocol: _, attributes, on_upgrade, slot, kind, accepted } = self;
        let upgrading = Upgrading { attributes, on_upgrade, slot, kind, accepted };
        runtime.tracker.spawn(upgrading.run(runtime.clone(), peer));
        response
    }
}

/// An accepted handshake waiting for hyper to hand the connection over.
struct Upgrading {
    attributes: http::Extensions,
    on_upgrade: hyper::upgrade::OnUpgrade,
    slot: Option<ConnectionSlot>,
    kind: Upgrade,
    /// When the handshake reached the server (see `Peer::accepted`).
    accepted: tokio::time::Instant,
}

impl Upgrading {
    /// Waits for the upgraded connection (bounded: the 101 response is small, hyper hands the
    /// connection over as soon as it is written), then runs its session.
    async fn run(self, runtime: Arc<Runtime>, peer: Option<SocketAddr>) {
        let deadline = runtime.config.http_header_read_timeout;
        let upgraded = match tokio::time::timeout(deadline, self.on_upgrade).await {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(e)) => {
                tracing::debug!(?peer, "WebSocket upgrade failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(?peer, "WebSocket upgrade not completed within {deadline:?}");
                return;
            }
        };
        let limits = websocket::WebSocketLimits::server(&runtime.config);
        let limits = match self.kind {
            Upgrade::Stomp => limits,
            #[cfg(feature = "sockjs")]
            Upgrade::SockJs(_) => limits.sockjs(runtime.config.send_buffer_size_limit),
        };
        let config = match self.kind {
            // The session reads its client's frames itself (`WebSocketTransport::server`).
            Upgrade::Stomp => websocket::server_config(limits),
            #[cfg(feature = "sockjs")]
            Upgrade::SockJs(_) => websocket::config(limits),
        };
        let (attributes, slot, accepted) = (self.attributes, self.slot, self.accepted);
        match self.kind {
            Upgrade::Stomp => {
                let peer = Peer { addr: peer, transport: "websocket", attributes, slot, accepted };
                // The socket of our own listener is taken back out of hyper's box: every read
                // and write of the session then goes straight to it, not through hyper's
                // `Upgraded` (a boxed `dyn` stream behind a buffer of bytes read ahead) and the
                // HTTP connection's write deadline (the session bounds its writes itself): for
                // a quiet subscriber, about 60 instructions per message. (Connections served
                // otherwise, TLS or a mounted router's, stay as hyper hands them over.)
                match upgraded.downcast::<TokioIo<Plain>>() {
                    Ok(parts) => {
                        let socket = parts.io.into_inner().into_inner();
                        let io = ReadAhead::with_read(socket, &parts.read_buf);
                        spawn_session(&runtime, peer, io, config, limits).await;
                    }
                    Err(upgraded) => {
                        let io = ReadAhead::new(TokioIo::new(upgraded));
                        spawn_session(&runtime, peer, io, config, limits).await;
                    }
                }
            }
            #[cfg(feature = "sockjs")]
            Upgrade::SockJs(endpoint) => {
                let ws = websocket_stream(ReadAhead::new(TokioIo::new(upgraded)), config).await;
                let peer =
                    Peer { addr: peer, transport: "sockjs-websocket", attributes, slot, accepted };
                sockjs::run_websocket(runtime, endpoint, ws, peer, limits).await;
            }
        }
    }
}

/// Runs a STOMP session over the WebSocket on `io`, in a task of its own, sized to the session
/// (the upgrading task, sized to the upgrade's steps as well, ends).
async fn spawn_session<S>(
    runtime: &Arc<Runtime>,
    peer: Peer,
    io: ReadAhead<S>,
    config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
    limits: websocket::WebSocketLimits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let transport = WebSocketTransport::server(websocket_stream(io, config).await, limits);
    runtime.tracker.spawn(session::run(runtime.clone(), peer, transport));
}

/// The server's end of a WebSocket over `io`, the handshake done.
async fn websocket_stream<S>(
    io: S,
    config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> WebSocketStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    without_waker(WebSocketStream::from_raw_socket(io, Role::Server, Some(config))).await
}

/// Runs `future`, whose first poll must not leave this task's waker behind: tokio-tungstenite
/// keeps the waker of the task that creates a `WebSocketStream` until the stream is next polled
/// through it, and a server's session reads and writes its stream by hand, so the upgrade
/// task (2 KiB, done by then) would stay allocated for the connection's life. The first poll
/// gets a waker that does nothing (creating the stream does no I/O: it completes at once).
async fn without_waker<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let first = future.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop()));
    match first {
        Poll::Ready(output) => output,
        Poll::Pending => future.await,
    }
}

/// The response refusing a handshake (`what`): 403 for the origin, the hook's own otherwise.
pub(crate) fn refusal_response(refusal: Refusal, what: &str) -> Response<ResponseBody> {
    match refusal {
        Refusal::Origin(origin) => refuse_origin(&origin, what),
        Refusal::Hook(rejection) => text(rejection.status, rejection.message),
    }
}

/// The highest STOMP version the client offers as a subprotocol (`v12.stomp`…), if any.
/// A client that offers none still gets a session; CONNECT negotiates the version anyway.
fn negotiate_subprotocol(parts: &http::request::Parts) -> Option<Version> {
    parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(Version::from_subprotocol)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = Request::builder().uri("/ws");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn highest_offered_stomp_subprotocol_wins() {
        let p = parts(&[("sec-websocket-protocol", "v10.stomp, v12.stomp,v11.stomp")]);
        assert_eq!(negotiate_subprotocol(&p), Some(Version::V1_2));
        assert_eq!(negotiate_subprotocol(&parts(&[("sec-websocket-protocol", "mqtt")])), None);
    }
}
