//! `Server`: build it from a checked configuration, start it, send through it, shut it down.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::broker::{Broker, Listener, ListenerFn, SimpleBroker, Subscriber};
use crate::config::{AllowedOrigins, ConfigError, ConfigErrorKind, Endpoint, Settings};
use crate::dispatch::{self, Handler, Router};
use crate::events::SessionEvent;
use crate::runtime::Runtime;
use crate::security::rate::FrameRate;
use crate::security::{AccessRules, ConnectAuthenticator, Csrf, HandshakeHook};
use crate::stomp::{ByteStr, Frame, HeartBeat};
use crate::template::{MessagingTemplate, SendError};
use crate::transport::Endpoints;
use crate::transport::accept;
use crate::transport::service::StompService;
use crate::users::User;

/// Builds a [`Server`]. Every setting has Spring's default; [`build`](ServerBuilder::build)
/// checks the whole configuration.
///
/// ```
/// use std::time::Duration;
/// use stompede::Server;
/// let server = Server::builder()
///     .enable_simple_broker(["/topic", "/queue"])
///     .application_destination_prefixes(["/app"])
///     .endpoint("/ws")
///     .allowed_origins(["https://chat.example.com"])
///     .heartbeat(Duration::from_secs(10), Duration::from_secs(10))
///     .message_size_limit(128 * 1024)
///     .bind("127.0.0.1:0".parse().unwrap())
///     .build()
///     .expect("a valid configuration");
/// # drop(server);
/// ```
#[must_use]
pub struct ServerBuilder {
    settings: Settings,
    discover_handlers: bool,
    handlers: Vec<&'static Handler>,
    state: http::Extensions,
}

impl ServerBuilder {
    /// Relays broker destinations to an external STOMP broker, RabbitMQ with its STOMP plugin
    /// (Spring's `enableStompBrokerRelay`), instead of the in-memory broker: several nodes
    /// then share them. See [`StompBrokerRelay`](crate::broker::StompBrokerRelay) and
    /// `docs/scaling.md`.
    pub fn enable_stomp_broker_relay(mut self, relay: crate::broker::StompBrokerRelay) -> Self {
        self.settings.broker_prefixes = relay.prefixes.clone();
        self.settings.relay = Some(relay);
        self
    }

    /// Makes the destinations under these prefixes point-to-point queues (say `["/queue"]`):
    /// each message goes to exactly one of the destination's subscribers, round robin among
    /// those with room, and waits (bounded by [`queue_limits`](Self::queue_limits)) while
    /// nobody consumes it. Subscriptions with `ack:client` or `ack:client-individual` get
    /// unacknowledged messages redelivered to another consumer. By default every destination
    /// is broadcast, as in Spring's simple broker. Each prefix must be under a broker prefix;
    /// see `docs/broker.md`.
    pub fn point_to_point<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.broker.point_to_point = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Retains the last message sent to each destination under these prefixes (say
    /// `["/topic/prices"]`) and delivers it first to every new subscriber, marked
    /// `retained:true` (MQTT's retained messages). A SEND with the header `retain:true`
    /// retains under any broadcast prefix; an empty-bodied retained SEND clears the
    /// destination's. Bounded by [`retained_limits`](Self::retained_limits).
    pub fn retain<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.broker.retain = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Lets a SEND retain its message with the header `retain:true`, on any broadcast
    /// destination (default off: only [`retain`](Self::retain) prefixes retain, so clients
    /// cannot make their messages stick for everyone unless the application says so; use the
    /// access rules to say who may send where).
    pub fn retain_header(mut self, allowed: bool) -> Self {
        self.settings.broker.retain_header = allowed;
        self
    }

    /// Bounds on point-to-point queues and on acknowledgement bookkeeping (default:
    /// [`QueueLimits::default`](crate::broker::QueueLimits)).
    pub fn queue_limits(mut self, limits: crate::broker::QueueLimits) -> Self {
        self.settings.broker.queue_limits = limits;
        self
    }

    /// Bounds on retained messages (default:
    /// [`RetainedLimits::default`](crate::broker::RetainedLimits)).
    pub fn retained_limits(mut self, limits: crate::broker::RetainedLimits) -> Self {
        self.settings.broker.retained_limits = limits;
        self
    }

    /// Where a point-to-point message goes once redelivered more than
    /// `QueueLimits::max_redeliveries` times (default `/queue/dead-letter`), with an
    /// `original-destination` header.
    pub fn dead_letter_destination(mut self, destination: impl Into<String>) -> Self {
        self.settings.broker.dead_letter = destination.into();
        self
    }

    /// What happens to subscribers that cannot keep up (default
    /// [`SlowConsumerPolicy::Disconnect`](crate::broker::SlowConsumerPolicy), Spring's rule).
    pub fn slow_consumer_policy(mut self, policy: crate::broker::SlowConsumerPolicy) -> Self {
        self.settings.slow_consumer_policy = policy;
        self
    }

    /// The slow-consumer policy of subscriptions under `prefix` (the longest matching prefix
    /// wins over the server's policy): say `DropOldest` for `/topic/ticker`.
    pub fn slow_consumer_policy_for(
        mut self,
        prefix: impl Into<String>,
        policy: crate::broker::SlowConsumerPolicy,
    ) -> Self {
        self.settings.slow_consumer_policies.push((prefix.into(), policy));
        self
    }

    /// Adds an inbound interceptor (Spring's `ChannelInterceptor` on the client inbound
    /// channel): it sees each frame a client sends, with the session's
    /// [`SessionInfo`](crate::intercept::SessionInfo), before the access rules, the broker or
    /// a handler do, and passes it on (changed or not), rejects it or drops it. Interceptors
    /// run in the order added; see [`intercept`](crate::intercept).
    pub fn inbound_interceptor<F, Fut>(mut self, interceptor: F) -> Self
    where
        F: Fn(crate::stomp::Frame, Arc<crate::intercept::SessionInfo>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = crate::intercept::Inbound> + Send + 'static,
    {
        self.settings.interceptors.add_inbound(interceptor);
        self
    }

    /// Adds an outbound interceptor (the client outbound channel): it sees each frame queued
    /// for a session before it is written, and passes it on (changed or not) or drops it.
    pub fn outbound_interceptor<F, Fut>(mut self, interceptor: F) -> Self
    where
        F: Fn(crate::stomp::Frame, Arc<crate::intercept::SessionInfo>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = crate::intercept::Outbound> + Send + 'static,
    {
        self.settings.interceptors.add_outbound(interceptor);
        self
    }

    /// How long one frame's chain of interceptors may take (default 5 s): past it, an inbound
    /// frame ends its session with an ERROR, an outbound one is not sent.
    pub fn interceptor_timeout(mut self, limit: Duration) -> Self {
        self.settings.interceptors.timeout = Some(limit);
        self
    }

    /// Serves a page made afresh for each GET at `path` (a metrics exporter's text, a health
    /// check), beside the endpoints: `render` runs on the request's task and must be quick.
    ///
    /// ```
    /// use stompede::Server;
    /// let server = Server::builder()
    ///     .dynamic_page("/health", "text/plain; charset=utf-8", || "ok".into())
    ///     .build()
    ///     .unwrap();
    /// # drop(server);
    /// ```
    ///
    /// # Panics
    ///
    /// If `content_type` is not a valid header value.
    pub fn dynamic_page(
        mut self,
        path: impl Into<String>,
        content_type: &'static str,
        render: impl Fn() -> Bytes + Send + Sync + 'static,
    ) -> Self {
        self.settings.dynamic_pages.push(crate::transport::assets::DynamicPage {
            path: path.into(),
            content_type: http::HeaderValue::from_static(content_type),
            render: Arc::new(render),
        });
        self
    }

    /// How often the one-line stats summary ([`Stats`](crate::Stats): sessions, frames,
    /// bytes, broker, handlers) is logged at INFO, target `stompede::stats` (default every 30
    /// minutes, as Spring's `WebSocketMessageBrokerStats`); `None` turns it off.
    /// [`Server::stats`] gives the same numbers at any time.
    pub fn stats_log_interval(mut self, every: Option<Duration>) -> Self {
        self.settings.stats_log_interval = every.filter(|d| !d.is_zero());
        self
    }

    /// Destination prefixes served by the in-memory broker (default `/topic`, `/queue`).
    pub fn enable_simple_broker<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.broker_prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Prefixes of destinations routed to application handlers (default `/app`).
    pub fn application_destination_prefixes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.app_prefixes = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// Prefix of user destinations (default `/user`).
    pub fn user_destination_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.user_prefix = prefix.into();
        self
    }

    /// Adds an endpoint: a path (`"/ws"`), or an [`Endpoint`] with SockJS
    /// (`Endpoint::new("/ws").with_sockjs()`). Without any, the endpoint is `/ws`, WebSocket
    /// only.
    pub fn endpoint(mut self, endpoint: impl Into<Endpoint>) -> Self {
        self.settings.endpoints.push(endpoint.into());
        self
    }

    /// Accepts handshakes from these origins besides the server's own.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.allowed_origins = AllowedOrigins::List(
            origins.into_iter().map(|o| o.into().trim_end_matches('/').to_owned()).collect(),
        );
        self
    }

    /// Accepts handshakes from any origin.
    pub fn allow_any_origin(mut self) -> Self {
        self.settings.allowed_origins = AllowedOrigins::Any;
        self
    }

    /// The heart-beats the server offers: how often it can send, how often it wants to hear
    /// from clients (default 10 s, 10 s; zero disables a direction).
    pub fn heartbeat(mut self, send: Duration, receive: Duration) -> Self {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        self.settings.heartbeat = HeartBeat { send: ms(send), receive: ms(receive) };
        self
    }

    /// Largest inbound frame in bytes, headers included (default 64 KiB). The body limit
    /// follows it.
    pub fn message_size_limit(mut self, bytes: usize) -> Self {
        self.settings.limits.max_frame_size = bytes;
        self.settings.limits.max_body_size = bytes;
        self
    }

    /// Most header entries in one inbound frame, repeats included (default 128). A frame with
    /// more is an `ERROR` naming this setting.
    pub fn max_header_count(mut self, count: usize) -> Self {
        self.settings.limits.max_header_count = count;
        self
    }

    /// Longest command or header line of an inbound frame, in bytes (default 16 KiB, room
    /// for large tokens in a CONNECT frame). A longer one is an `ERROR` naming this setting.
    pub fn max_header_line(mut self, bytes: usize) -> Self {
        self.settings.limits.max_header_line = bytes;
        self
    }

    /// Bytes a session may have waiting to be sent before it counts as a slow consumer
    /// (default 512 KiB).
    pub fn send_buffer_size_limit(mut self, bytes: usize) -> Self {
        self.settings.send_buffer_size_limit = bytes;
        self
    }

    /// How long a session may stay over its send buffer limit, or take to complete one write,
    /// before it is closed (default 10 s).
    pub fn send_time_limit(mut self, limit: Duration) -> Self {
        self.settings.send_time_limit = limit;
        self
    }

    /// Most transactions one session may have open at once (default 16). One more `BEGIN`
    /// is an `ERROR`.
    pub fn max_transactions(mut self, count: usize) -> Self {
        self.settings.max_transactions = count;
        self
    }

    /// Most bytes of SENDs one session may hold in its open transactions (default 1 MiB). A
    /// SEND past it is an `ERROR`.
    pub fn max_transaction_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_transaction_bytes = bytes;
        self
    }

    /// Most subscriptions one session may hold (default 1,024). One more is an `ERROR`.
    pub fn max_subscriptions(mut self, count: usize) -> Self {
        self.settings.max_subscriptions = count;
        self
    }

    /// Longest destination a client may SEND or SUBSCRIBE to, in bytes (default 1,024; RabbitMQ
    /// allows 255). It bounds the work of matching a published destination against wildcard
    /// subscriptions; a longer one is an `ERROR` naming this setting.
    pub fn max_destination_length(mut self, bytes: usize) -> Self {
        self.settings.max_destination_length = bytes;
        self
    }

    /// Most wildcards (`*` or `**`) in one subscription pattern (default 8; `/topic/stocks.*`
    /// has one). Matching costs time in proportion to the pattern's wildcards times the
    /// destination's length; a pattern with more is an `ERROR` naming this setting.
    pub fn max_pattern_wildcards(mut self, count: usize) -> Self {
        self.settings.max_pattern_wildcards = count;
        self
    }

    /// Refuses SENDs whose body contains a NUL byte (default off: STOMP allows any bytes in a
    /// body that `content-length` sizes). Turn it on when subscribers may use a client that
    /// splits frames on NUL whatever `content-length` says, as the legacy `stompjs` 2.3.3 (the
    /// Spring guide's) does: a publisher could otherwise make it read the rest of a body as a
    /// frame of the publisher's choosing. A refused SEND is an `ERROR` naming this setting.
    pub fn reject_nul_in_bodies(mut self, reject: bool) -> Self {
        self.settings.reject_nul_in_bodies = reject;
        self
    }

    /// How long an HTTP connection may take to send a request's head (default 20 s, Tomcat's
    /// `connectionTimeout`): from its opening, and again after each response, so it is also
    /// how long an idle keep-alive connection is kept. A connection that sends half a request
    /// line and stops is closed when it passes.
    pub fn http_header_read_timeout(mut self, limit: Duration) -> Self {
        self.settings.http_header_read_timeout = limit;
        self
    }

    /// How long a request body may take to arrive whole (default 20 s): SockJS `xhr_send`
    /// bodies. A slower one is answered `408 Request Timeout` and its connection closed.
    pub fn http_body_read_timeout(mut self, limit: Duration) -> Self {
        self.settings.http_body_read_timeout = limit;
        self
    }

    /// Most HTTP connections open at once that carry no STOMP session yet (default 10,000):
    /// connections still sending a request, idle between requests, or waiting for a response.
    /// A connection stops counting once it is upgraded to a WebSocket session or carries a
    /// SockJS session's receiving request. With all taken, new connections wait in the
    /// listen backlog until one closes (the HTTP deadlines see to that).
    pub fn max_http_connections(mut self, count: usize) -> Self {
        self.settings.max_http_connections = count;
        self
    }

    /// How long a new connection has to send CONNECT (default 60 s).
    pub fn time_to_first_message(mut self, limit: Duration) -> Self {
        self.settings.time_to_first_message = limit;
        self
    }

    /// The HTTP/WebSocket listening address (default `127.0.0.1:8080`; port 0 picks one).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.settings.addr = addr;
        self
    }

    /// Also serve STOMP over plain TCP at `addr` (off by default), for non-browser clients.
    #[cfg(feature = "tcp")]
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.settings.tcp_addr = Some(addr);
        self
    }

    /// Runs `hook` on every WebSocket handshake and on the request that opens each SockJS
    /// session (see [`HandshakeHook`]).
    pub fn handshake_hook(mut self, hook: impl HandshakeHook) -> Self {
        self.settings.handshake_hook = Some(Arc::new(hook));
        self
    }

    /// Authenticates every session at CONNECT (see [`ConnectAuthenticator`]): its result is
    /// the session's principal. Without one, a session keeps the principal of its handshake.
    pub fn authenticator(mut self, authenticator: impl ConnectAuthenticator) -> Self {
        self.settings.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// How long the [`authenticator`](Self::authenticator) may take for one CONNECT (default
    /// 10 s). Past it the session is refused as if the authenticator had refused it, and the
    /// server logs the timeout.
    pub fn authentication_timeout(mut self, limit: Duration) -> Self {
        self.settings.authentication_timeout = limit;
        self
    }

    /// The authorization rules every client frame is checked against (see [`AccessRules`]).
    /// Default: none, everything is allowed.
    pub fn access_rules(mut self, rules: AccessRules) -> Self {
        self.settings.access_rules = rules;
        self
    }

    /// When CONNECT must carry a CSRF token (default [`Csrf::Auto`]: for cookie-authenticated
    /// sessions). See [`CsrfToken`](crate::security::CsrfToken).
    pub fn csrf(mut self, csrf: Csrf) -> Self {
        self.settings.csrf = csrf;
        self
    }

    /// The CONNECT header that carries the CSRF token (default `X-CSRF-TOKEN`, Spring
    /// Security's).
    pub fn csrf_header(mut self, name: impl Into<String>) -> Self {
        self.settings.csrf_header = name.into();
        self
    }

    /// Most sessions connected at once (default: no limit beyond the operating system's). A
    /// CONNECT past it gets an `ERROR` naming this setting.
    pub fn max_sessions(mut self, count: usize) -> Self {
        self.settings.session_limits.total = Some(count);
        self
    }

    /// Most sessions one user (principal name) may have connected at once (default: no
    /// limit). A CONNECT past it gets an `ERROR` naming this setting.
    pub fn max_sessions_per_user(mut self, count: usize) -> Self {
        self.settings.session_limits.per_user = Some(count);
        self
    }

    /// Most sessions one remote IP address may have connected at once (default: no limit;
    /// behind a reverse proxy every client shares the proxy's address, so set it there). A
    /// CONNECT past it gets an `ERROR` naming this setting.
    pub fn max_sessions_per_address(mut self, count: usize) -> Self {
        self.settings.session_limits.per_address = Some(count);
        self
    }

    /// Most frames a session may send: `per_second` on average, `burst` at once (a token
    /// bucket; default: no limit, as Spring). A session that sends faster gets an `ERROR`
    /// naming this setting and is closed. Heart-beats do not count.
    pub fn inbound_frame_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.settings.inbound_frame_rate = Some(FrameRate { per_second, burst });
        self
    }

    /// Serves TLS on the built-in listener (feature `tls`): `wss://` WebSocket endpoints and
    /// `https://` SockJS. The STOMP-over-TCP listener ([`tcp`](Self::tcp)) stays plain. A
    /// server mounted in your own HTTP server uses that server's TLS instead.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::transport::tls::TlsConfig) -> Self {
        self.settings.tls = Some(tls);
        self
    }

    /// The `server` header of CONNECTED (default `stompede/VERSION`).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.settings.server_name = name.into();
        self
    }

    /// Serves `body` at `path` with this `content-type` (GET and HEAD, with an ETag): a page
    /// and its scripts beside the endpoint, so a small app needs no other web server.
    pub fn static_asset(
        mut self,
        path: impl Into<String>,
        content_type: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        self.settings.asset_sources.push((path.into(), content_type.into(), body.into()));
        self
    }

    /// Serves an HTML page at `path` (`text/html; charset=utf-8`): the hello example serves
    /// its page at `/` this way.
    ///
    /// ```
    /// let server = stompede::Server::builder()
    ///     .static_page("/", "<!doctype html><script type=module src=/stompede.js></script>")
    ///     .build()
    ///     .unwrap();
    /// # drop(server);
    /// ```
    pub fn static_page(self, path: impl Into<String>, html: &'static str) -> Self {
        self.static_asset(path, "text/html; charset=utf-8", html)
    }

    /// Whether the server serves the browser client at `/stompede.js` (default `true`; see
    /// `docs/browser-client.md`). An asset registered at that path replaces it.
    pub fn serve_client_script(mut self, serve: bool) -> Self {
        self.settings.serve_client_script = serve;
        self
    }

    /// Whether the server takes every handler the attributes registered in this program
    /// (default `true`). Turn it off to run a server with only the handlers given to
    /// [`handlers`](ServerBuilder::handlers): in tests, or for two servers with different
    /// handler sets in one process.
    pub fn discover_handlers(mut self, discover: bool) -> Self {
        self.discover_handlers = discover;
        self
    }

    /// Adds handlers by name, with [`handlers!`](crate::handlers). A handler both discovered
    /// and named counts once.
    pub fn handlers(mut self, handlers: impl IntoIterator<Item = &'static Handler>) -> Self {
        self.handlers.extend(handlers);
        self
    }

    /// Registers application state that handlers take with a
    /// [`State<T>`](crate::dispatch::State) argument (one value per type; a second of the same
    /// type replaces the first).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Checks the configuration and the handler mappings, and makes the server (not yet
    /// listening).
    pub fn build(self) -> Result<Server, ConfigError> {
        let config = self.settings.check()?;
        let discovered = self.discover_handlers.then(dispatch::discovered).into_iter().flatten();
        let handlers: Vec<&'static Handler> = discovered.chain(self.handlers).collect();
        // A handler's State<T> with no T registered would fail at its first call: fail now.
        for handler in &handlers {
            if let Some(type_name) = (handler.missing_state)(&self.state) {
                let kind = ConfigErrorKind::MissingState { handler: handler.name, type_name };
                return Err(ConfigError::new(kind));
            }
        }
        let router = Router::new(handlers, &config)?;
        let endpoints = Arc::new(Endpoints::new(&config));
        let broker = match config.relay.clone() {
            Some(relay) => Broker::Relay(crate::broker::RelayBroker::new(relay)),
            None => Broker::Simple(Box::new(SimpleBroker::with_options(config.broker.clone()))),
        };
        let runtime = Runtime::new(config, broker, router, self.state);
        Ok(Server { runtime: Arc::new(runtime), endpoints })
    }
}

/// A configured STOMP server. [`start`](Server::start) listens on the configured address;
/// [`service`](Server::service) instead gives a tower/hyper service to mount in your own HTTP
/// server (an axum router, say).
#[derive(Clone)]
pub struct Server {
    runtime: Arc<Runtime>,
    /// The SockJS endpoints and their sessions (the transport's state, not the runtime's).
    endpoints: Arc<Endpoints>,
}

impl Server {
    /// A builder with every default.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            settings: Settings::default(),
            discover_handlers: true,
            handlers: Vec::new(),
            state: http::Extensions::new(),
        }
    }

    /// The WebSocket endpoint(s) as a service, for mounting in an existing HTTP server.
    pub fn service(&self) -> StompService {
        self.runtime.start_broker();
        StompService::new(self.runtime.clone(), self.endpoints.clone())
    }

    /// Everything the server serves over HTTP, as an axum [`Router`](axum::Router) to merge
    /// into an application (feature `axum`): the endpoints, everything SockJS needs below them,
    /// `/stompede.js` and the static pages. Mounting is one line:
    ///
    /// ```
    /// use axum::routing::get;
    /// use stompede::Server;
    ///
    /// let server = Server::builder().build()?;
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/api/health", get(|| async { "ok" }))
    ///     .merge(server.router());
    /// # Ok::<(), stompede::ConfigError>(())
    /// ```
    ///
    /// Serve the app with `axum::serve` (which supports the WebSocket upgrade); call
    /// [`shutdown`](Server::shutdown) when it stops.
    #[cfg(feature = "axum")]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        crate::transport::mount::router(&self.runtime.config, self.service())
    }

    /// Dispatches `frame`, a SEND to an application destination, as if a client had sent it:
    /// its handler runs and its reply is published to the broker. Resolves once done, with
    /// the error a session would have sent in an ERROR frame, if any (an argument that cannot
    /// be extracted, with no exception handler). For benchmarks and for testing handlers
    /// without a socket.
    ///
    /// ```rust,standalone_crate
    /// use stompede::stomp::{Command, Frame};
    /// use stompede::{Server, message_mapping, send_to};
    ///
    /// #[message_mapping("/double")]
    /// #[send_to("/topic/doubled")]
    /// fn double(n: u64) -> u64 { n * 2 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = Server::builder().build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let _listener = server.listen("/topic/doubled", move |message| {
    ///     let _ = tx.send(message.body().to_vec());
    /// }).unwrap();
    /// let frame = Frame::new(Command::Send).header("destination", "/app/double").body("21");
    /// server.dispatch(frame).await.unwrap();
    /// assert_eq!(rx.recv().unwrap(), b"42");
    /// # }
    /// ```
    pub async fn dispatch(&self, frame: Frame) -> Result<(), dispatch::DispatchError> {
        dispatch::dispatch_send(&self.runtime, frame).await
    }

    /// A handle for sending to broker destinations.
    pub fn template(&self) -> MessagingTemplate {
        self.runtime.template.clone()
    }

    /// Session lifecycle events from now on.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.runtime.events()
    }

    /// The path of the first STOMP endpoint (`/ws` unless configured otherwise).
    #[cfg(feature = "testing")]
    pub(crate) fn first_endpoint(&self) -> String {
        self.runtime.config.endpoints.first().map_or_else(|| "/ws".to_owned(), |e| e.path.clone())
    }

    /// Stops accepting and asks every session to close, without waiting (a test server
    /// dropped).
    #[cfg(feature = "testing")]
    pub(crate) fn stop_now(&self) {
        self.runtime.begin_shutdown();
    }

    /// The server's numbers since it started: sessions by transport, connects, disconnects
    /// by reason, frames and bytes in and out by command, deliveries, the broker's
    /// subscriptions and destinations, slow-consumer closes, handler calls and failures
    /// (Spring's `WebSocketMessageBrokerStats`). The same figures go to the
    /// [`metrics`](https://docs.rs/metrics) facade; `docs/production.md` lists them. Install
    /// the metrics recorder before [`build`](ServerBuilder::build): the per-command frame and
    /// byte counters are registered with it then, once.
    ///
    /// ```
    /// let server = stompede::Server::builder().build().unwrap();
    /// let stats = server.stats();
    /// assert_eq!((stats.sessions, stats.deliveries), (0, 0));
    /// println!("{stats}");
    /// ```
    pub fn stats(&self) -> crate::Stats {
        self.runtime.stats()
    }

    /// Calls `listener` with every message published to `destination` (a pattern is fine),
    /// until the returned [`Listener`] is dropped.
    ///
    /// The callback runs on the publisher's task, in publish order, and must not block: hand
    /// the message to a channel or spawn if the work is slow. It sees the shared headers
    /// (`destination`, `message-id`, `content-type`, the publisher's own) and the body. It runs
    /// once the broker's locks are released, so it may publish in turn. On a point-to-point
    /// destination, the listener is one of the queue's competing consumers.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use stompede::Server;
    /// let server = Server::builder().build().unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let listener = server.listen("/topic/orders.*", move |message| {
    ///     log.lock().unwrap().push(message.headers().get("destination").unwrap().to_owned());
    /// }).unwrap();
    /// server.template().convert_and_send("/topic/orders.eu", "order 1").unwrap();
    /// drop(listener);
    /// server.template().convert_and_send("/topic/orders.eu", "order 2").unwrap();
    /// assert_eq!(*seen.lock().unwrap(), ["/topic/orders.eu"]);
    /// ```
    pub fn listen(
        &self,
        destination: &str,
        listener: impl Fn(&crate::stomp::PreparedMessage) + Send + Sync + 'static,
    ) -> Result<Listener, SendError> {
        self.runtime.template.require_broker_destination(destination)?;
        let callback: Arc<ListenerFn> = Arc::new(listener);
        let subscriber =
            Arc::new(Subscriber::local(ByteStr::from(destination.to_owned()), callback));
        Ok(Listener::new(self.runtime.broker.clone(), subscriber))
    }

    /// The broker (for its statistics).
    pub fn broker(&self) -> &Broker {
        &self.runtime.broker
    }

    /// Whether the broker can take messages: always with the in-memory broker; with the relay,
    /// whether its system connection to the external broker is up (see also
    /// `SessionEvent::BrokerAvailability`).
    pub fn broker_available(&self) -> bool {
        self.runtime.broker.is_available()
    }

    /// The connected users (sessions with a principal), by name, each with its sessions and
    /// their subscriptions (Spring's `SimpUserRegistry`).
    pub fn users(&self) -> Vec<User> {
        self.runtime.sessions.users()
    }

    /// How many sessions are connected (anonymous ones included).
    pub fn session_count(&self) -> usize {
        self.runtime.sessions.session_count()
    }

    /// Closes every session of `user`: each gets an `ERROR` frame whose message is `reason`
    /// (say, `"logged out"`), then its connection closes. Returns how many sessions it closed.
    /// Connections of the user opened before this call that have not completed CONNECT yet are
    /// refused at CONNECT with the same message (for ten minutes). Call it when the user logs
    /// out, or when their rights change.
    pub fn disconnect_user(&self, user: &str, reason: &str) -> usize {
        self.runtime.sessions.close_user(user, reason)
    }

    /// Closes every session (each gets an ERROR frame, "server is shutting down"), stops any
    /// listener started by [`start`](Server::start), and waits up to `grace` for sessions to
    /// finish. Returns whether everything finished in time. For a service mounted in your own
    /// HTTP server, call this when that server stops.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.runtime.begin_shutdown();
        self.runtime.tracker.close();
        tokio::time::timeout(grace, self.runtime.tracker.wait()).await.is_ok()
    }

    /// Starts listening: HTTP/WebSocket on the bound address, and TCP when configured.
    pub async fn start(self) -> io::Result<RunningServer> {
        let config = &self.runtime.config;
        let http = accept::bind(config.addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {} ({e}); choose another address with bind()",
                    config.addr
                ),
            )
        })?;
        let local_addr = http.local_addr()?;
        let tcp = match config.tcp_addr {
            Some(addr) => Some(accept::bind(addr).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen for STOMP over TCP on {addr} ({e}); choose another address with tcp()"))
            })?),
            None => None,
        };
        let tcp_addr = tcp.as_ref().map(TcpListener::local_addr).transpose()?;
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| {
                #[cfg(feature = "sockjs")]
                if e.sockjs.is_some() {
                    return format!("{} (+SockJS)", e.path);
                }
                e.path.clone()
            })
            .collect();
        #[cfg(feature = "tls")]
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        #[cfg(not(feature = "tls"))]
        let scheme = "http";
        tracing::info!(%local_addr, scheme, ?endpoints, ?tcp_addr, "stompede listening");
        let runtime = &self.runtime;
        runtime.start_broker();
        runtime.tracker.spawn(accept::http(runtime.clone(), self.endpoints.clone(), http));
        #[cfg(feature = "tcp")]
        if let Some(listener) = tcp {
            runtime.tracker.spawn(accept::tcp(runtime.clone(), listener));
        }
        Ok(RunningServer { server: self, local_addr, tcp_addr })
    }
}

/// A listening server.
pub struct RunningServer {
    server: Server,
    local_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
}

impl RunningServer {
    /// The HTTP/WebSocket address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The STOMP-over-TCP address, when enabled.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The server this runs.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// A handle for sending to broker destinations.
    pub fn template(&self) -> MessagingTemplate {
        self.server.template()
    }

    /// Session lifecycle events from now on.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.server.events()
    }

    /// The connected users (see [`Server::users`]).
    pub fn users(&self) -> Vec<User> {
        self.server.users()
    }

    /// The server's numbers (see [`Server::stats`]).
    pub fn stats(&self) -> crate::Stats {
        self.server.stats()
    }

    /// Closes every session of `user` (see [`Server::disconnect_user`]).
    pub fn disconnect_user(&self, user: &str, reason: &str) -> usize {
        self.server.disconnect_user(user, reason)
    }

    /// How many sessions are connected (see [`Server::session_count`]).
    pub fn session_count(&self) -> usize {
        self.server.session_count()
    }

    /// Whether the broker can take messages (see [`Server::broker_available`]).
    pub fn broker_available(&self) -> bool {
        self.server.broker_available()
    }

    /// Stops accepting connections, sends every session an ERROR frame ("server is shutting
    /// down") and closes it, then waits up to `grace` for sessions to finish. Returns whether
    /// everything finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.server.shutdown(grace).await
    }
}
