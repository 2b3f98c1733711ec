//! The server's configuration: the Rust face of Spring's `WebSocketMessageBrokerConfigurer`.
//!
//! Every setting has a default that matches Spring's (see `docs/configuration.md`), so
//! `Server::builder().build()` is a working server. `build` checks the whole configuration and
//! reports the first contradiction it finds, naming the settings involved.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::destination::under;
use crate::security::rate::FrameRate;
use crate::security::{AccessRules, ConnectAuthenticator, Csrf, HandshakeHook};
use crate::stomp::{HeartBeat, Limits};
use crate::transport::assets::{Asset, CLIENT_SCRIPT_PATH};
use crate::users::SessionLimits;

/// Which `Origin` headers the WebSocket handshake accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Only pages served by this server: the `Origin`'s host and port must equal the
    /// request's `Host`. Requests without an `Origin` (non-browser clients) are accepted.
    #[default]
    SameOrigin,
    /// Same origin, plus these exact origins (`https://app.example.com`).
    List(Vec<String>),
    /// Any origin. Only for public APIs that authenticate every CONNECT.
    Any,
}

/// A STOMP endpoint: the path clients connect to, and whether it also speaks SockJS.
///
/// `&str` and `String` convert into one, so `.endpoint("/ws")` is a plain WebSocket endpoint;
/// `.endpoint(Endpoint::new("/ws").with_sockjs())` is Spring's
/// `registry.addEndpoint("/ws").withSockJS()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) path: String,
    #[cfg(feature = "sockjs")]
    pub(crate) sockjs: Option<SockJsOptions>,
}

impl Endpoint {
    /// A WebSocket endpoint at `path`.
    pub fn new(path: impl Into<String>) -> Self {
        Endpoint {
            path: path.into(),
            #[cfg(feature = "sockjs")]
            sockjs: None,
        }
    }

    #[cfg(feature = "sockjs")]
    /// Serves the SockJS protocol under this endpoint too, with the default options
    /// (see [`SockJsOptions`]): `new SockJS("/ws")` then works, and so do plain WebSocket
    /// clients at `/ws` and `/ws/websocket`.
    pub fn with_sockjs(self) -> Self {
        self.sockjs(SockJsOptions::default())
    }

    #[cfg(feature = "sockjs")]
    /// Serves the SockJS protocol under this endpoint with these options.
    pub fn sockjs(mut self, options: SockJsOptions) -> Self {
        self.sockjs = Some(options);
        self
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl From<&str> for Endpoint {
    fn from(path: &str) -> Self {
        Endpoint::new(path)
    }
}

impl From<String> for Endpoint {
    fn from(path: String) -> Self {
        Endpoint::new(path)
    }
}

#[cfg(feature = "sockjs")]
/// A SockJS transport, to switch off with [`SockJsOptions::without`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SockJsTransport {
    /// `websocket`: SockJS framing over a WebSocket.
    WebSocket,
    /// `xhr_streaming`: one long POST response per stream.
    XhrStreaming,
    /// `xhr` (polling): one POST per batch of messages.
    XhrPolling,
    /// `eventsource`: server-sent events.
    EventSource,
    /// `htmlfile`: a streamed HTML page of script tags (in a hidden iframe).
    HtmlFile,
}

#[cfg(feature = "sockjs")]
/// How an endpoint speaks SockJS (protocol 0.3.3, what `sockjs-client` 1.x speaks). The
/// defaults are Spring's. JSONP transports are not offered at all (a security risk; Spring
/// removed them too).
///
/// ```
/// use std::time::Duration;
/// use stompede::{Endpoint, Server, SockJsOptions, SockJsTransport};
///
/// let server = Server::builder()
///     .endpoint(Endpoint::new("/ws").sockjs(
///         SockJsOptions::default()
///             .heartbeat(Duration::from_secs(20))
///             .without(SockJsTransport::HtmlFile),
///     ))
///     .build()
///     .unwrap();
/// # drop(server);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockJsOptions {
    pub(crate) client_library_url: String,
    pub(crate) heartbeat: Duration,
    pub(crate) disconnect_delay: Duration,
    pub(crate) streaming_bytes_limit: usize,
    pub(crate) message_cache_size: usize,
    pub(crate) session_cookie_needed: bool,
    pub(crate) max_sessions: usize,
    pub(crate) disabled: Vec<SockJsTransport>,
}

#[cfg(feature = "sockjs")]
impl Default for SockJsOptions {
    fn default() -> Self {
        SockJsOptions {
            client_library_url:
                "https://cdn.jsdelivr.net/npm/sockjs-client@1.5.0/dist/sockjs.min.js".into(),
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            streaming_bytes_limit: 128 * 1024,
            message_cache_size: 100,
            session_cookie_needed: false,
            max_sessions: 50_000,
            disabled: Vec::new(),
        }
    }
}

#[cfg(feature = "sockjs")]
impl SockJsOptions {
    /// The SockJS client the iframe page (`/ws/iframe.html`, used by iframe-based transports)
    /// loads; default: `sockjs-client` 1.5.0 from a public CDN, as Spring. Serve a copy
    /// yourself (with [`ServerBuilder::static_asset`](crate::ServerBuilder::static_asset)) for
    /// offline use; it must be the same version as the page's client.
    pub fn client_library_url(mut self, url: impl Into<String>) -> Self {
        self.client_library_url = url.into();
        self
    }

    /// How often an idle receiving connection gets a heart-beat frame `h` (default 25 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long a session survives with no receiving request attached before it is closed
    /// (default 5 s).
    pub fn disconnect_delay(mut self, delay: Duration) -> Self {
        self.disconnect_delay = delay;
        self
    }

    /// Bytes a streaming response carries before the server ends it and the client opens a
    /// new one (default 128 KiB), so that proxies and browsers do not hold ever-growing
    /// responses.
    pub fn streaming_bytes_limit(mut self, bytes: usize) -> Self {
        self.streaming_bytes_limit = bytes;
        self
    }

    /// Messages a session holds while no receiving request is attached (default 100); past
    /// that the STOMP session waits, and its send time limit decides.
    pub fn message_cache_size(mut self, messages: usize) -> Self {
        self.message_cache_size = messages;
        self
    }

    /// Whether `/info` says a `JSESSIONID` cookie is needed, and transports set one, for load
    /// balancers that route by it (default `false`).
    pub fn session_cookie_needed(mut self, needed: bool) -> Self {
        self.session_cookie_needed = needed;
        self
    }

    /// HTTP sessions (polling and streaming) the endpoint holds at once (default 50,000); a
    /// request that would open one more gets 503. Sessions are opened by any request with a
    /// new session id, so this bounds what a flood of them can hold.
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions;
        self
    }

    /// Switches a transport off: requests for it get 404, and clients fall back to another.
    pub fn without(mut self, transport: SockJsTransport) -> Self {
        if !self.disabled.contains(&transport) {
            self.disabled.push(transport);
        }
        self
    }

    /// Whether `transport` is on.
    pub(crate) fn enabled(&self, transport: SockJsTransport) -> bool {
        !self.disabled.contains(&transport)
    }
}

/// A configuration that cannot work, found by [`ServerBuilder::build`](crate::ServerBuilder::build).
///
/// Its `Display` says what is wrong and which settings or handlers to change, once; the
/// queries give the data.
///
/// ```
/// use stompede::Server;
/// let error = Server::builder().enable_simple_broker(["topic"]).build().err().unwrap();
/// assert_eq!(error.to_string(), r#"enable_simple_broker value "topic" must start with '/'"#);
/// assert_eq!(error.setting(), Some("enable_simple_broker"));
/// assert!(!error.is_handler_mapping());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
}

/// What is wrong; each variant's fields are what its message shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConfigErrorKind {
    MissingSlash {
        setting: &'static str,
        value: String,
    },
    OverlappingPrefixes {
        first_setting: &'static str,
        first: String,
        second_setting: &'static str,
        second: String,
    },
    NoBrokerPrefix,
    EndpointTrailingSlash {
        path: String,
    },
    DuplicateEndpoint {
        path: String,
    },
    #[cfg_attr(not(feature = "sockjs"), allow(dead_code))]
    SockJsClientUrl {
        url: String,
    },
    Zero {
        setting: &'static str,
    },
    AssetContentType {
        path: String,
        content_type: String,
    },
    DuplicateAsset {
        path: String,
    },
    AssetIsEndpoint {
        path: String,
    },
    BadHeaderName {
        setting: &'static str,
        name: String,
    },
    /// Both the in-memory broker and the relay were configured.
    TwoBrokers,
    /// A handler's `send_to` outside the broker prefixes.
    SendToOutsideBroker {
        handler: &'static str,
        destination: &'static str,
        prefixes: String,
    },
    /// A mapping pattern that does not parse.
    BadPattern {
        handler: &'static str,
        problem: String,
    },
    /// A `send_to` placeholder that the mapping does not define.
    UndefinedPlaceholder {
        handler: &'static str,
        destination: &'static str,
        pattern: &'static str,
        variable: String,
    },
    /// Two handlers mapped to one pattern.
    DuplicateMapping {
        first: &'static str,
        second: &'static str,
        pattern: &'static str,
        attribute: &'static str,
    },
    /// A handler takes `State<T>` and no `T` was registered with `ServerBuilder::state`.
    MissingState {
        handler: &'static str,
        type_name: &'static str,
    },
    /// Two exception handlers without a list of error types.
    TwoCatchAllHandlers {
        first: &'static str,
        second: &'static str,
    },
    /// A broker setting's prefix (point_to_point, retain, a slow-consumer policy, the
    /// dead-letter destination) outside every broker prefix.
    NotUnderBroker {
        setting: &'static str,
        value: String,
        prefixes: String,
    },
    /// A simple-broker setting together with the relay, where the external broker decides.
    NotWithRelay {
        setting: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind) -> Self {
        ConfigError { kind }
    }

    /// The builder setting to change, when one setting is at fault (for two overlapping
    /// prefixes, the first one's).
    pub fn setting(&self) -> Option<&'static str> {
        use ConfigErrorKind::*;
        match &self.kind {
            MissingSlash { setting, .. }
            | Zero { setting }
            | BadHeaderName { setting, .. }
            | NotUnderBroker { setting, .. }
            | NotWithRelay { setting } => Some(setting),
            OverlappingPrefixes { first_setting, .. } => Some(first_setting),
            NoBrokerPrefix | TwoBrokers => Some("enable_simple_broker"),
            EndpointTrailingSlash { .. } | DuplicateEndpoint { .. } => Some("endpoint"),
            SockJsClientUrl { .. } => Some("SockJS client_library_url"),
            MissingState { .. } => Some("state"),
            AssetContentType { .. } | DuplicateAsset { .. } | AssetIsEndpoint { .. } => {
                Some("static_asset")
            }
            _ => None,
        }
    }

    /// Whether a handler's mapping is at fault (a pattern, a `send_to`, two handlers for one
    /// destination) rather than a builder setting.
    pub fn is_handler_mapping(&self) -> bool {
        !self.handlers().is_empty()
    }

    /// The handlers at fault (their paths, as `#[message_mapping]` names them), if any.
    pub fn handlers(&self) -> Vec<&'static str> {
        use ConfigErrorKind::*;
        match &self.kind {
            SendToOutsideBroker { handler, .. }
            | BadPattern { handler, .. }
            | UndefinedPlaceholder { handler, .. }
            | MissingState { handler, .. } => vec![handler],
            DuplicateMapping { first, second, .. } | TwoCatchAllHandlers { first, second } => {
                vec![first, second]
            }
            _ => Vec::new(),
        }
    }
}

impl std::error::Error for ConfigError {}

/// So that `Server::builder().build()?.start().await?` works in a function returning
/// `std::io::Result`, as `main` often does (kind `InvalidInput`).
impl From<ConfigError> for std::io::Error {
    fn from(error: ConfigError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ConfigErrorKind::*;
        match &self.kind {
            MissingSlash { setting, value } => {
                write!(f, "{setting} value {value:?} must start with '/'")
            }
            OverlappingPrefixes { first_setting, first, second_setting, second } => write!(
                f,
                "{first_setting} {first:?} overlaps {second_setting} {second:?}: a destination could not tell which one it belongs to"
            ),
            NoBrokerPrefix => {
                f.write_str("enable_simple_broker needs at least one prefix (such as \"/topic\")")
            }
            EndpointTrailingSlash { path } => write!(
                f,
                "endpoint {path:?} ends with '/'; write it without (\"{}\")",
                path.trim_end_matches('/')
            ),
            DuplicateEndpoint { path } => write!(f, "endpoint {path:?} is registered twice"),
            SockJsClientUrl { url } => {
                write!(f, "SockJS client_library_url {url:?} cannot contain '\"', '<' or '>'")
            }
            Zero { setting } => write!(f, "{setting} must be greater than zero"),
            AssetContentType { path, content_type } => write!(
                f,
                "static asset {path}: content type {content_type:?} is not a valid header value"
            ),
            DuplicateAsset { path } => write!(f, "static asset {path} is registered twice"),
            TwoBrokers => f.write_str(
                "enable_simple_broker and enable_stomp_broker_relay are both set: a server has one broker (call one of them)",
            ),
            BadHeaderName { setting, name } => {
                write!(f, "{setting}: {name:?} is not a valid header name")
            }
            AssetIsEndpoint { path } => {
                write!(f, "static asset {path} is also a STOMP endpoint; serve it at another path")
            }
            SendToOutsideBroker { handler, destination, prefixes } => write!(
                f,
                "handler {handler} sends to {destination:?}, which is not under a broker prefix ({prefixes})"
            ),
            BadPattern { handler, problem } => write!(f, "handler {handler}: {problem}"),
            UndefinedPlaceholder { handler, destination, pattern, variable } => write!(
                f,
                "handler {handler} sends to {destination:?}, but its mapping {pattern:?} defines no {{{variable}}}"
            ),
            DuplicateMapping { first, second, pattern, attribute } => write!(
                f,
                "handlers {first} and {second} are both mapped to {pattern:?} with #[{attribute}]; a destination must have one handler"
            ),
            MissingState { handler, type_name } => write!(
                f,
                "handler {handler} takes State<{type_name}>, but no {type_name} is registered: add it with ServerBuilder::state(value)"
            ),
            TwoCatchAllHandlers { first, second } => write!(
                f,
                "exception handlers {first} and {second} both handle every error; list the error types one of them handles (#[message_exception_handler(MyError)])"
            ),
            NotUnderBroker { setting, value, prefixes } => write!(
                f,
                "{setting} {value:?} is not under a broker prefix ({prefixes}); use a destination the broker serves, or add its prefix with enable_simple_broker"
            ),
            NotWithRelay { setting } => write!(
                f,
                "{setting} configures the in-memory broker, but the broker relay is enabled: the external broker decides this (see docs/broker.md)"
            ),
        }
    }
}

/// An error for the first setting whose value is zero (`0`, `Duration::ZERO`).
fn nonzero<T: Default + PartialEq>(
    settings: impl IntoIterator<Item = (&'static str, T)>,
) -> Result<(), ConfigError> {
    match settings.into_iter().find(|(_, value)| *value == T::default()) {
        Some((setting, _)) => Err(ConfigError::new(ConfigErrorKind::Zero { setting })),
        None => Ok(()),
    }
}

/// The settings as the builder collects them: every field has Spring's default, nothing is
/// checked yet. [`Settings::check`] turns them into the [`Config`] a server runs with.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) broker_prefixes: Vec<String>,
    pub(crate) app_prefixes: Vec<String>,
    pub(crate) user_prefix: String,
    /// Empty means the default endpoint, `/ws`.
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) allowed_origins: AllowedOrigins,
    pub(crate) heartbeat: HeartBeat,
    pub(crate) limits: Limits,
    pub(crate) send_buffer_size_limit: usize,
    pub(crate) send_time_limit: Duration,
    pub(crate) time_to_first_message: Duration,
    pub(crate) addr: SocketAddr,
    pub(crate) tcp_addr: Option<SocketAddr>,
    pub(crate) server_name: String,
    pub(crate) handshake_hook: Option<Arc<dyn HandshakeHook>>,
    pub(crate) max_transactions: usize,
    pub(crate) max_transaction_bytes: usize,
    pub(crate) max_subscriptions: usize,
    pub(crate) max_destination_length: usize,
    pub(crate) max_pattern_wildcards: usize,
    pub(crate) http_header_read_timeout: Duration,
    pub(crate) http_body_read_timeout: Duration,
    pub(crate) max_http_connections: usize,
    pub(crate) reject_nul_in_bodies: bool,
    pub(crate) authenticator: Option<Arc<dyn ConnectAuthenticator>>,
    pub(crate) authentication_timeout: Duration,
    pub(crate) access_rules: AccessRules,
    pub(crate) csrf: Csrf,
    pub(crate) csrf_header: String,
    pub(crate) session_limits: SessionLimits,
    pub(crate) inbound_frame_rate: Option<FrameRate>,
    /// Inbound and outbound interceptors, in order, and their time limit.
    pub(crate) interceptors: crate::intercept::Interceptors,
    /// How often the stats summary is logged at INFO (`None`: never).
    pub(crate) stats_log_interval: Option<Duration>,
    /// The in-memory broker's queues, retained messages and limits.
    pub(crate) broker: crate::broker::BrokerOptions,
    /// What happens to subscribers that cannot keep up, and per prefix.
    pub(crate) slow_consumer_policy: crate::broker::SlowConsumerPolicy,
    pub(crate) slow_consumer_policies: Vec<(String, crate::broker::SlowConsumerPolicy)>,
    /// The broker relay, when broker destinations live in an external broker.
    pub(crate) relay: Option<crate::broker::StompBrokerRelay>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::transport::tls::TlsConfig>,
    /// Static assets as registered: path, content type, body.
    pub(crate) asset_sources: Vec<(String, String, Bytes)>,
    /// Pages rendered per request.
    pub(crate) dynamic_pages: Vec<crate::transport::assets::DynamicPage>,
    /// Whether `/stompede.js` is served.
    pub(crate) serve_client_script: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            broker_prefixes: vec!["/topic".into(), "/queue".into()],
            app_prefixes: vec!["/app".into()],
            user_prefix: "/user".into(),
            endpoints: vec![],
            allowed_origins: AllowedOrigins::SameOrigin,
            heartbeat: HeartBeat { send: 10_000, receive: 10_000 },
            limits: Limits::default(),
            send_buffer_size_limit: 512 * 1024,
            send_time_limit: Duration::from_secs(10),
            time_to_first_message: Duration::from_secs(60),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tcp_addr: None,
            server_name: concat!("stompede/", env!("CARGO_PKG_VERSION")).into(),
            handshake_hook: None,
            max_transactions: 16,
            max_transaction_bytes: 1024 * 1024,
            max_subscriptions: 1024,
            max_destination_length: 1024,
            max_pattern_wildcards: 8,
            http_header_read_timeout: Duration::from_secs(20),
            http_body_read_timeout: Duration::from_secs(20),
            max_http_connections: 10_000,
            reject_nul_in_bodies: false,
            authenticator: None,
            authentication_timeout: Duration::from_secs(10),
            access_rules: AccessRules::default(),
            csrf: Csrf::Auto,
            csrf_header: "X-CSRF-TOKEN".into(),
            session_limits: SessionLimits::default(),
            inbound_frame_rate: None,
            stats_log_interval: Some(Duration::from_secs(30 * 60)),
            interceptors: crate::intercept::Interceptors::default(),
            broker: crate::broker::BrokerOptions {
                dead_letter: "/queue/dead-letter".into(),
                ..Default::default()
            },
            slow_consumer_policy: crate::broker::SlowConsumerPolicy::Disconnect,
            slow_consumer_policies: Vec::new(),
            relay: None,
            #[cfg(feature = "tls")]
            tls: None,
            asset_sources: Vec::new(),
            dynamic_pages: Vec::new(),
            serve_client_script: true,
        }
    }
}

/// The checked configuration a running server reads: the [`Settings`] (read through `Deref`)
/// with their defaults filled in, and what checking them built. Only [`Settings::check`] makes
/// one, so holding a `Config` means the settings were checked.
#[derive(Clone)]
pub(crate) struct Config {
    settings: Settings,
    /// The static assets, the built-in client included.
    assets: Vec<Asset>,
}

impl std::ops::Deref for Config {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

fn error(kind: ConfigErrorKind) -> ConfigError {
    ConfigError::new(kind)
}

impl Settings {
    /// Checks every setting (the first problem found is the error), fills in the defaults
    /// that depend on the rest, and builds the static assets.
    pub(crate) fn check(mut self) -> Result<Config, ConfigError> {
        use ConfigErrorKind::*;
        if self.endpoints.is_empty() {
            self.endpoints.push(Endpoint::new("/ws"));
        }
        if self.broker_prefixes.is_empty() {
            return Err(error(NoBrokerPrefix));
        }
        let mut all: Vec<(&'static str, &String)> = Vec::new();
        all.extend(self.broker_prefixes.iter().map(|p| ("enable_simple_broker", p)));
        all.extend(self.app_prefixes.iter().map(|p| ("application_destination_prefixes", p)));
        all.push(("user_destination_prefix", &self.user_prefix));
        for (setting, value) in &all {
            if !value.starts_with('/') {
                return Err(error(MissingSlash { setting, value: value.to_string() }));
            }
        }
        for (i, (first_setting, first)) in all.iter().enumerate() {
            for (second_setting, second) in &all[i + 1..] {
                if under(first, second) || under(second, first) {
                    return Err(error(OverlappingPrefixes {
                        first_setting,
                        first: first.to_string(),
                        second_setting,
                        second: second.to_string(),
                    }));
                }
            }
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let path = &endpoint.path;
            if !path.starts_with('/') {
                return Err(error(MissingSlash { setting: "endpoint", value: path.clone() }));
            }
            if path.len() > 1 && path.ends_with('/') {
                return Err(error(EndpointTrailingSlash { path: path.clone() }));
            }
            if self.endpoints[..i].iter().any(|e| e.path == *path) {
                return Err(error(DuplicateEndpoint { path: path.clone() }));
            }
            #[cfg(feature = "sockjs")]
            if let Some(options) = &endpoint.sockjs {
                nonzero([
                    ("SockJS heartbeat", options.heartbeat),
                    ("SockJS disconnect_delay", options.disconnect_delay),
                ])?;
                nonzero([
                    ("SockJS streaming_bytes_limit", options.streaming_bytes_limit),
                    ("SockJS message_cache_size", options.message_cache_size),
                    ("SockJS max_sessions", options.max_sessions),
                ])?;
                if options.client_library_url.contains(['"', '<', '>']) {
                    return Err(error(SockJsClientUrl { url: options.client_library_url.clone() }));
                }
            }
        }
        nonzero([
            ("message_size_limit", self.limits.max_frame_size),
            ("max_header_count", self.limits.max_header_count),
            ("max_header_line", self.limits.max_header_line),
            ("send_buffer_size_limit", self.send_buffer_size_limit),
            ("max_transactions", self.max_transactions),
            ("max_transaction_bytes", self.max_transaction_bytes),
            ("max_subscriptions", self.max_subscriptions),
            ("max_destination_length", self.max_destination_length),
            ("max_pattern_wildcards", self.max_pattern_wildcards),
            ("max_http_connections", self.max_http_connections),
        ])?;
        nonzero([
            ("send_time_limit", self.send_time_limit),
            ("time_to_first_message", self.time_to_first_message),
            ("http_header_read_timeout", self.http_header_read_timeout),
            ("http_body_read_timeout", self.http_body_read_timeout),
            ("authentication_timeout", self.authentication_timeout),
            (
                "interceptor_timeout",
                self.interceptors.timeout.unwrap_or(crate::intercept::DEFAULT_TIMEOUT),
            ),
        ])?;
        let limits = &self.session_limits;
        nonzero(
            [
                ("max_sessions", limits.total),
                ("max_sessions_per_user", limits.per_user),
                ("max_sessions_per_address", limits.per_address),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
        )?;
        if let Some(rate) = self.inbound_frame_rate {
            nonzero([
                ("inbound_frame_rate (frames per second)", rate.per_second),
                ("inbound_frame_rate (burst)", rate.burst),
            ])?;
        }
        if let Some(relay) = &self.relay {
            if relay.prefixes != self.broker_prefixes {
                return Err(error(TwoBrokers));
            }
        }
        self.check_broker_options()?;
        if let Some(pattern) = self.access_rules.malformed_pattern() {
            return Err(error(MissingSlash { setting: "access_rules", value: pattern.to_owned() }));
        }
        if http::HeaderName::from_bytes(self.csrf_header.as_bytes()).is_err() {
            return Err(error(BadHeaderName {
                setting: "csrf_header",
                name: self.csrf_header.clone(),
            }));
        }
        let assets = self.assets()?;
        Ok(Config { settings: self, assets })
    }

    /// Checks the simple broker's settings: prefixes under the broker's, limits above zero,
    /// nothing the relay would ignore.
    fn check_broker_options(&self) -> Result<(), ConfigError> {
        use ConfigErrorKind::*;
        let options = &self.broker;
        let mut prefixes: Vec<(&'static str, &str)> = Vec::new();
        prefixes.extend(options.point_to_point.iter().map(|p| ("point_to_point", p.as_str())));
        prefixes.extend(options.retain.iter().map(|p| ("retain", p.as_str())));
        prefixes.extend(
            self.slow_consumer_policies
                .iter()
                .map(|(p, _)| ("slow_consumer_policy_for", p.as_str())),
        );
        if !options.point_to_point.is_empty() {
            prefixes.push(("dead_letter_destination", options.dead_letter.as_str()));
        }
        for (setting, value) in &prefixes {
            if !value.starts_with('/') {
                return Err(error(MissingSlash { setting, value: value.to_string() }));
            }
            if !self.broker_prefixes.iter().any(|p| under(p, value)) {
                return Err(error(NotUnderBroker {
                    setting,
                    value: value.to_string(),
                    prefixes: self.broker_prefixes.join(", "),
                }));
            }
        }
        if self.relay.is_some() {
            if let Some((setting, _)) = prefixes.first() {
                return Err(error(NotWithRelay { setting }));
            }
        }
        let queues = &options.queue_limits;
        nonzero([
            ("queue_limits (max_messages)", queues.max_messages),
            ("queue_limits (max_bytes)", queues.max_bytes),
            ("queue_limits (max_queues)", queues.max_queues),
            ("queue_limits (max_total_bytes)", queues.max_total_bytes),
            ("retained_limits (max_messages)", options.retained_limits.max_messages),
            ("retained_limits (max_bytes)", options.retained_limits.max_bytes),
        ])?;
        nonzero([("queue_limits (default_prefetch)", queues.default_prefetch)])?;
        Ok(())
    }

    /// The static assets, checked: the application's, then the built-in client unless the
    /// application serves its own at that path or turned it off.
    fn assets(&self) -> Result<Vec<Asset>, ConfigError> {
        use ConfigErrorKind::*;
        let mut assets = Vec::with_capacity(self.asset_sources.len() + 1);
        for (path, content_type, body) in &self.asset_sources {
            if !path.starts_with('/') {
                return Err(error(MissingSlash { setting: "static_asset", value: path.clone() }));
            }
            let asset = Asset::new(path.clone(), content_type, body.clone()).ok_or_else(|| {
                error(AssetContentType { path: path.clone(), content_type: content_type.clone() })
            })?;
            assets.push(asset);
        }
        if self.serve_client_script && !assets.iter().any(|a| a.path == CLIENT_SCRIPT_PATH) {
            assets.extend(Asset::client_script());
        }
        for page in &self.dynamic_pages {
            if !page.path.starts_with('/') {
                return Err(error(MissingSlash {
                    setting: "dynamic_page",
                    value: page.path.clone(),
                }));
            }
            // Below an endpoint, a page would hide what SockJS serves there.
            if self.endpoints.iter().any(|e| page.path.starts_with(&format!("{}/", e.path))) {
                return Err(error(AssetIsEndpoint { path: page.path.clone() }));
            }
        }
        let mut paths: Vec<&str> = assets.iter().map(|a| a.path.as_str()).collect();
        paths.extend(self.dynamic_pages.iter().map(|p| p.path.as_str()));
        for (i, path) in paths.iter().enumerate() {
            if paths[..i].contains(path) || self.endpoints.iter().any(|e| e.path == *path) {
                let path = path.to_string();
                return Err(error(match self.endpoints.iter().any(|e| e.path == path) {
                    true => AssetIsEndpoint { path },
                    false => DuplicateAsset { path },
                }));
            }
        }
        for (i, asset) in assets.iter().enumerate() {
            if assets[..i].iter().any(|a| a.path == asset.path) {
                return Err(error(DuplicateAsset { path: asset.path.clone() }));
            }
            if self.endpoints.iter().any(|e| e.path == asset.path) {
                return Err(error(AssetIsEndpoint { path: asset.path.clone() }));
            }
        }
        Ok(assets)
    }
}

impl Config {
    /// The static asset at `path`, if any.
    pub(crate) fn asset(&self, path: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.path == path)
    }

    /// Every static asset, the built-in client included.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn assets(&self) -> &[Asset] {
        &self.assets
    }

    pub(crate) fn broker_prefix_of(&self, destination: &str) -> Option<&str> {
        self.broker_prefixes.iter().map(String::as_str).find(|p| under(p, destination))
    }

    pub(crate) fn app_prefix_of(&self, destination: &str) -> Option<&str> {
        self.app_prefixes.iter().map(String::as_str).find(|p| under(p, destination))
    }

    /// Where replies go when a handler names no destination: `/topic` when it is a broker
    /// prefix (Spring's fixed default), else the first broker prefix.
    pub(crate) fn default_reply_prefix(&self) -> &str {
        let prefixes = &self.broker_prefixes;
        let prefix = prefixes.iter().find(|p| p.as_str() == "/topic").or(prefixes.first());
        prefix.map_or("/topic", |p| p.trim_end_matches('/'))
    }

    /// What happens to a subscriber of `destination` that cannot keep up: the policy of the
    /// longest prefix given one, else the server's.
    pub(crate) fn slow_consumer_policy_of(
        &self,
        destination: &str,
    ) -> crate::broker::SlowConsumerPolicy {
        self.slow_consumer_policies
            .iter()
            .filter(|(prefix, _)| under(prefix, destination))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.slow_consumer_policy, |(_, policy)| *policy)
    }

    pub(crate) fn is_user_destination(&self, destination: &str) -> bool {
        under(&self.user_prefix, destination)
    }

    /// The prefixes, for error messages: `broker: /topic, /queue; application: /app`.
    pub(crate) fn describe_prefixes(&self) -> String {
        format!(
            "broker: {}; application: {}; user: {}",
            self.broker_prefixes.join(", "),
            if self.app_prefixes.is_empty() { "none".into() } else { self.app_prefixes.join(", ") },
            self.user_prefix
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_add_the_ws_endpoint() {
        let config = Settings::default().check().map_err(|e| e.to_string());
        assert_eq!(config.map(|c| c.endpoints.clone()), Ok(vec![Endpoint::new("/ws")]));
    }

    fn error_of(settings: Settings) -> ConfigError {
        match settings.check() {
            Ok(_) => panic!("the settings were accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_config_error_becomes_an_io_error_for_io_result_mains() {
        let error = error_of(Settings { broker_prefixes: vec![], ..Settings::default() });
        let message = error.to_string();
        let io: std::io::Error = error.into();
        assert_eq!((io.kind(), io.to_string()), (std::io::ErrorKind::InvalidInput, message));
    }

    #[test]
    fn overlapping_prefixes_are_refused_naming_both_settings() {
        let err =
            error_of(Settings { app_prefixes: vec!["/topic/app".into()], ..Settings::default() });
        assert_eq!(
            err.to_string(),
            "enable_simple_broker \"/topic\" overlaps application_destination_prefixes \"/topic/app\": a destination could not tell which one it belongs to"
        );
        assert_eq!(err.setting(), Some("enable_simple_broker"));
    }

    #[test]
    fn contradictions_are_refused() {
        let cases: Vec<(Settings, &str, &str)> = vec![
            (
                Settings { broker_prefixes: vec![], ..Settings::default() },
                "at least one prefix",
                "enable_simple_broker",
            ),
            (
                Settings { user_prefix: "user".into(), ..Settings::default() },
                "must start with '/'",
                "user_destination_prefix",
            ),
            (
                Settings { endpoints: vec!["/ws".into(), "/ws".into()], ..Settings::default() },
                "twice",
                "endpoint",
            ),
            (
                Settings { endpoints: vec!["/ws/".into()], ..Settings::default() },
                "ends with '/'",
                "endpoint",
            ),
            (
                Settings { send_time_limit: Duration::ZERO, ..Settings::default() },
                "send_time_limit must be",
                "send_time_limit",
            ),
        ];
        for (settings, expected, setting) in cases {
            let err = error_of(settings);
            assert!(err.to_string().contains(expected), "{err} should contain {expected:?}");
            assert_eq!(err.setting(), Some(setting), "{err}");
            assert!(!err.is_handler_mapping());
        }
    }
}
