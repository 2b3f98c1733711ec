//! SockJS (protocol 0.3.3, what `sockjs-client` 1.x speaks) under an endpoint: `/ws/info`,
//! `/ws/iframe.html`, the greeting, raw WebSocket at `/ws/websocket`, and the session
//! transports at `/ws/{server}/{session}/{transport}`: `websocket`, `xhr` + `xhr_send`,
//! `xhr_streaming`, `eventsource`, `htmlfile`. No JSONP.
//!
//! Every transport ends in the same place: a [`SockJsSession`] whose
//! [`StompSide`](session::StompSide) carries an ordinary STOMP session.

pub(crate) mod frames;
mod receive;
mod session;
mod ws;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};

use self::session::{SockJsSession, StompSide};
use super::assets::Asset;
use super::body::ResponseBody;
use super::service::{RequestBody, refusal_response, refuse_origin, text};
use crate::config::{SockJsOptions, SockJsTransport};
use crate::log_throttle::LogThrottle;
use crate::runtime::Runtime;
use crate::security::{self, check_origin};
use crate::session::{self as stomp_session, Peer};
use crate::transport::connections::ConnectionSlot;

pub(crate) use ws::run as run_websocket;

/// One SockJS endpoint of a server: its options and live sessions.
pub(crate) struct SockJsEndpoint {
    pub(crate) path: String,
    pub(crate) options: SockJsOptions,
    sessions: Mutex<HashMap<String, Arc<SockJsSession>>>,
    iframe: Option<Asset>,
    /// Refusals past `max_sessions` come in floods: one warning per interval.
    refusals: LogThrottle,
    /// So do WebSocket clients let go for not reading.
    slow_clients: LogThrottle,
}

impl SockJsEndpoint {
    pub(crate) fn new(path: String, options: SockJsOptions) -> Self {
        let iframe = Asset::new(
            format!("{path}/iframe.html"),
            "text/html; charset=UTF-8",
            Bytes::from(iframe_page(&options.client_library_url)),
        );
        SockJsEndpoint {
            path,
            options,
            sessions: Mutex::new(HashMap::new()),
            iframe,
            refusals: LogThrottle::default(),
            slow_clients: LogThrottle::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SockJsSession>>> {
        crate::locks::lock(&self.sessions)
    }

    fn session(&self, id: &str) -> Option<Arc<SockJsSession>> {
        self.sessions().get(id).cloned()
    }
}

/// The page iframe-based transports load: the SockJS client from `url`, bootstrapped.
fn iframe_page(url: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script>\n    document.domain = document.domain;\n    _sockjs_onload = function(){{SockJS.bootstrap_iframe();}};\n  </script>\n  <script src=\"{url}\"></script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>"
    )
}

/// `GET /ws` and `/ws/`.
pub(crate) fn greeting(method: &Method) -> Response<ResponseBody> {
    if *method != Method::GET && *method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let mut response = text(StatusCode::OK, "Welcome to SockJS!\n");
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    response
}

/// A request under a SockJS endpoint; `rest` is the path after the endpoint's (`/info`).
pub(crate) async fn handle<B>(
    runtime: &Arc<Runtime>,
    endpoint: &Arc<SockJsEndpoint>,
    rest: &str,
    parts: http::request::Parts,
    body: B,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody>
where
    B: RequestBody,
{
    let options = &endpoint.options;
    match rest {
        "" | "/" => return greeting(&parts.method),
        "/info" => return info(runtime, options, &parts),
        "/websocket" if options.enabled(SockJsTransport::WebSocket) => {
            // Plain WebSocket, no SockJS framing (what Spring offers native clients).
            return super::service::upgrade(runtime, parts, peer, super::service::Upgrade::Stomp);
        }
        _ => {}
    }
    if rest.starts_with("/iframe") && rest.ends_with(".html") {
        return match &endpoint.iframe {
            Some(iframe) => cacheable(iframe.respond(&parts.method, &parts.headers)),
            None => text(StatusCode::INTERNAL_SERVER_ERROR, "the iframe page could not be built"),
        };
    }
    let mut segments = rest.trim_start_matches('/').split('/');
    let (Some(server), Some(session), Some(transport), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return not_found(rest);
    };
    if [server, session].iter().any(|s| s.is_empty() || s.contains('.')) {
        return text(
            StatusCode::NOT_FOUND,
            "SockJS server and session ids must be non-empty and contain no '.'",
        );
    }
    let Some((kind, method)) = transport_of(transport) else { return not_found(rest) };
    if !options.enabled(kind) {
        return text(StatusCode::NOT_FOUND, format!("the SockJS transport {transport} is off"));
    }
    let cors = transport != "websocket";
    if parts.method != method {
        if parts.method == Method::OPTIONS && cors {
            return preflight(runtime, &parts, method.as_str());
        }
        let allow = if cors { format!("{method}, OPTIONS") } else { method.to_string() };
        return method_not_allowed(&allow);
    }
    if let Err(origin) = check_origin(&runtime.config.allowed_origins, &parts) {
        return refuse_origin(&origin, "SockJS request");
    }
    if transport == "websocket" {
        let kind = super::service::Upgrade::SockJs(endpoint.clone());
        return super::service::upgrade(runtime, parts, peer, kind);
    }
    let response = match transport {
        "xhr_send" => receive::xhr_send(runtime, endpoint, session, body).await,
        _ => {
            let Some(flavor) = receive::Flavor::of(transport, &parts) else {
                return receive::bad_callback(&parts);
            };
            let label = match transport {
                "xhr" => "sockjs-xhr",
                "xhr_streaming" => "sockjs-xhr_streaming",
                "eventsource" => "sockjs-eventsource",
                _ => "sockjs-htmlfile",
            };
            let target = match open_session(runtime, endpoint, session, &parts, peer, label) {
                Ok(target) => target,
                Err(response) => return *response,
            };
            let slot = parts.extensions.get::<ConnectionSlot>();
            receive::respond(runtime, endpoint, target, flavor, slot).await
        }
    };
    with_transport_headers(response, &parts, options)
}

/// The transport named by the last path segment, and its method.
fn transport_of(name: &str) -> Option<(SockJsTransport, Method)> {
    Some(match name {
        "websocket" => (SockJsTransport::WebSocket, Method::GET),
        "xhr" | "xhr_send" => (SockJsTransport::XhrPolling, Method::POST),
        "xhr_streaming" => (SockJsTransport::XhrStreaming, Method::POST),
        "eventsource" => (SockJsTransport::EventSource, Method::GET),
        "htmlfile" => (SockJsTransport::HtmlFile, Method::GET),
        _ => return None,
    })
}

/// The session `id` for a receiving request: the existing one, or a new one (with its STOMP
/// session started) after the origin and handshake hook checks.
fn open_session(
    runtime: &Arc<Runtime>,
    endpoint: &Arc<SockJsEndpoint>,
    id: &str,
    parts: &http::request::Parts,
    peer: Option<SocketAddr>,
    transport: &'static str,
) -> Result<Arc<SockJsSession>, Box<Response<ResponseBody>>> {
    if let Some(session) = endpoint.session(id) {
        return Ok(session);
    }
    // Before the credentials are judged (see `Peer::accepted`).
    let accepted = tokio::time::Instant::now();
    // The same judgement as a WebSocket handshake (the origin was checked for every SockJS
    // request already, and passes again here).
    let attributes = security::admit(&runtime.config, parts)
        .map_err(|refusal| Box::new(refusal_response(refusal, "SockJS session")))?;
    let (session, inbound) = SockJsSession::new(
        id.to_owned(),
        endpoint.options.message_cache_size,
        runtime.config.send_buffer_size_limit,
    );
    {
        let mut sessions = endpoint.sessions();
        if let Some(existing) = sessions.get(id) {
            // Another request created it meanwhile.
            return Ok(existing.clone());
        }
        if sessions.len() >= endpoint.options.max_sessions {
            if let Some(held_back) = endpoint.refusals.allow() {
                tracing::warn!(
                    limit = endpoint.options.max_sessions,
                    held_back,
                    "SockJS session refused: the endpoint holds max_sessions already (later refusals are counted in held_back, one line per 10 s; raise max_sessions if the clients are legitimate)"
                );
            }
            return Err(Box::new(text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "this endpoint holds {} SockJS sessions already (its max_sessions); try again later",
                    endpoint.options.max_sessions
                ),
            )));
        }
        sessions.insert(id.to_owned(), session.clone());
    }
    // The session outlives this request's connection: it holds no connection slot.
    let peer = Peer { addr: peer, transport, attributes, slot: None, accepted };
    let transport = StompSide::new(session.clone(), inbound);
    runtime.tracker.spawn(stomp_session::run(runtime.clone(), peer, transport));
    // Released once no receiver has been attached for the disconnect delay; at shutdown, as
    // soon as no receiver is attached (a polling one is answered first; a streaming one ends
    // with the shutdown), so a server with polling clients between two polls stops at once
    // rather than after the delay (the client's next poll finds no session, and it reconnects
    // elsewhere).
    let reaper_endpoint = endpoint.clone();
    let reaped = session.clone();
    let delay = endpoint.options.disconnect_delay;
    let shutdown = runtime.shutdown.clone();
    runtime.tracker.spawn(async move {
        tokio::select! {
            idle = reaped.idle_for(delay) => if idle {
                tracing::debug!(session = %reaped.id, "SockJS session released: no receiving request for the disconnect delay");
            },
            () = shutdown.cancelled() => {
                reaped.idle_for(std::time::Duration::ZERO).await;
            }
        }
        reaped.expire();
        let mut sessions = reaper_endpoint.sessions();
        if sessions.get(&reaped.id).is_some_and(|s| Arc::ptr_eq(s, &reaped)) {
            sessions.remove(&reaped.id);
        }
    });
    Ok(session)
}

/// `GET /ws/info` (and its preflight).
fn info(
    runtime: &Runtime,
    options: &SockJsOptions,
    parts: &http::request::Parts,
) -> Response<ResponseBody> {
    if parts.method == Method::OPTIONS {
        return preflight(runtime, parts, "GET");
    }
    if parts.method != Method::GET {
        return method_not_allowed("GET, OPTIONS");
    }
    if let Err(origin) = check_origin(&runtime.config.allowed_origins, parts) {
        return refuse_origin(&origin, "SockJS info request");
    }
    let entropy = RandomState::new().hash_one(std::time::SystemTime::now()) as u32;
    let body = format!(
        "{{\"entropy\":{entropy},\"origins\":[\"*:*\"],\"cookie_needed\":{},\"websocket\":{}}}",
        options.session_cookie_needed,
        options.enabled(SockJsTransport::WebSocket)
    );
    let mut response = Response::new(ResponseBody::full(body));
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    no_cache(headers);
    cors(headers, parts);
    response
}

/// The answer to a CORS preflight (`OPTIONS`) for a resource served with `method`.
fn preflight(
    runtime: &Runtime,
    parts: &http::request::Parts,
    method: &str,
) -> Response<ResponseBody> {
    if let Err(origin) = check_origin(&runtime.config.allowed_origins, parts) {
        return refuse_origin(&origin, "SockJS preflight");
    }
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    if let Ok(methods) = HeaderValue::from_str(&format!("OPTIONS, {method}")) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    if let Some(requested) = parts.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("31536000"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000"));
    cors(headers, parts);
    response
}

/// CORS headers: the request's origin (with credentials) or `*`.
fn cors(headers: &mut HeaderMap, parts: &http::request::Parts) {
    match parts.headers.get(header::ORIGIN) {
        Some(origin) if origin.as_bytes() != b"null" => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers
                .insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        _ => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
}

fn no_cache(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, no-transform, must-revalidate, max-age=0"),
    );
}

/// The iframe page is cached for a year (its ETag changes with the client URL).
fn cacheable(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000"));
    response
}

/// No-cache, CORS and (when asked for) the `JSESSIONID` cookie on a transport response.
fn with_transport_headers(
    mut response: Response<ResponseBody>,
    parts: &http::request::Parts,
    options: &SockJsOptions,
) -> Response<ResponseBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let headers = response.headers_mut();
    no_cache(headers);
    cors(headers, parts);
    if options.session_cookie_needed {
        let value = cookie(&parts.headers, "JSESSIONID").unwrap_or("dummy");
        if let Ok(cookie) = HeaderValue::from_str(&format!("JSESSIONID={value};path=/")) {
            headers.insert(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The value of cookie `name` in the request, if sent.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn not_found(rest: &str) -> Response<ResponseBody> {
    text(
        StatusCode::NOT_FOUND,
        format!("no SockJS resource at {rest} (JSONP transports are not offered)"),
    )
}

fn method_not_allowed(allow: &str) -> Response<ResponseBody> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, format!("allowed methods: {allow}"));
    if let Ok(allow) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; JSESSIONID=xyz; b=2"));
        assert_eq!(cookie(&headers, "JSESSIONID"), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn transports_and_their_methods() {
        assert_eq!(transport_of("xhr_send"), Some((SockJsTransport::XhrPolling, Method::POST)));
        assert_eq!(transport_of("eventsource"), Some((SockJsTransport::EventSource, Method::GET)));
        assert_eq!(transport_of("jsonp"), None);
    }
}
