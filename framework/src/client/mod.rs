//! A Rust STOMP client over WebSocket or TCP: for integration tests, the load generator, and
//! Rust applications talking to any STOMP server.
//!
//! ```no_run
//! # async fn run() -> Result<(), stompede::client::ClientError> {
//! use stompede::client::{Client, ClientOptions};
//! let client = Client::connect_ws("ws://127.0.0.1:8080/ws", ClientOptions::default()).await?;
//! let mut greetings = client.subscribe("/topic/greetings").await?; // live once this returns
//! client.send_with_receipt("/topic/greetings", "hello").await?;
//! let message = greetings.next().await.expect("a message");
//! assert_eq!(message.body_str(), Some("hello"));
//! client.disconnect().await?;
//! # Ok(()) }
//! ```

mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::stomp::{ByteStr, Command, Frame, HeartBeat, Limits, Version, names};
use crate::transport::read_ahead::ReadAhead;
use crate::transport::tcp::TcpTransport;
use crate::transport::websocket::{self, WebSocketTransport};
use connection::{Request, Shared};

/// Settings of a client connection.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `login` header.
    pub login: Option<String>,
    /// `passcode` header.
    pub passcode: Option<String>,
    /// `host` header (default `localhost`).
    pub host: String,
    /// Heart-beats offered (default none).
    pub heartbeat: HeartBeat,
    /// `accept-version` (default `1.2`).
    pub accept_version: String,
    /// Extra CONNECT headers.
    pub headers: Vec<(String, String)>,
    /// Limits on frames from the server (default: 16 MiB frames).
    pub limits: Limits,
    /// Messages buffered per subscription before the client stops reading from the socket
    /// (default 1,024): a subscriber that is not consumed applies back-pressure to the server.
    pub subscription_buffer: usize,
    /// How long to wait for CONNECTED, receipts and the WebSocket handshake (default 10 s).
    pub timeout: Duration,
    /// Disable Nagle's algorithm on the socket (default true: latency over throughput).
    pub nodelay: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            login: None,
            passcode: None,
            host: "localhost".into(),
            heartbeat: HeartBeat::NONE,
            accept_version: "1.2".into(),
            headers: Vec::new(),
            limits: Limits {
                max_frame_size: 16 << 20,
                max_body_size: 16 << 20,
                ..Limits::default()
            },
            subscription_buffer: 1024,
            timeout: Duration::from_secs(10),
            nodelay: true,
        }
    }
}

/// What went wrong on a client connection.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made or broke.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The server answered with an ERROR frame.
    #[error("server error: {message}{}", detail(frame))]
    Server {
        /// The ERROR frame's `message` header.
        message: String,
        /// The whole ERROR frame.
        frame: Box<Frame>,
    },
    /// The server sent bytes that are not STOMP.
    #[error("bad frame from server: {0}")]
    Protocol(String),
    /// The connection is closed.
    #[error("connection closed{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    /// No answer in time.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
}

/// The ERROR frame's body, where servers put the details (RabbitMQ: "Virtual host 'x' access
/// denied"), for the error message; nothing when the body only repeats the `message` header
/// (stompede's own ERROR frames do, for clients that show only one of the two).
fn detail(frame: &Frame) -> String {
    match frame.body_str().map(str::trim) {
        Some(text) if !text.is_empty() && Some(text) != frame.get(names::MESSAGE) => {
            format!(" ({})", text.replace('\n', " "))
        }
        _ => String::new(),
    }
}

/// A connected STOMP client. Cloning gives another handle to the same connection.
#[derive(Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    connected: Arc<Frame>,
    options: Arc<ClientOptions>,
    ids: Arc<AtomicU64>,
}

impl Client {
    /// Connects over WebSocket to `url` (`ws://host:port/path`), offering the STOMP
    /// subprotocols.
    pub async fn connect_ws(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let mut request =
            url.into_client_request().map_err(|e| ClientError::Connection(e.to_string()))?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v12.stomp, v11.stomp, v10.stomp"),
        );
        let uri = request.uri();
        if uri.scheme_str() != Some("ws") {
            return Err(ClientError::Connection(format!(
                "{url}: only ws:// URLs are supported (no TLS in this client)"
            )));
        }
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let addr = (host.to_owned(), uri.port_u16().unwrap_or(80));
        let max_message = options.limits.max_frame_size.saturating_add(4096);
        let limits = websocket::WebSocketLimits {
            max_message,
            max_outbound_frame: max_message,
            pong_time_limit: options.timeout,
        };
        let config = websocket::config(limits);
        let connect = async {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(options.nodelay);
            // Large socket reads when busy, no extra buffer when idle (see ReadAhead).
            tokio_tungstenite::client_async_with_config(
                request,
                ReadAhead::new(stream),
                Some(config),
            )
            .await
            .map_err(websocket::into_io)
        };
        let (ws, _) = tokio::time::timeout(options.timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout(options.timeout))?
            .map_err(|e| ClientError::Connection(format!("{url}: {e}")))?;
        Client::start(WebSocketTransport::new(ws, limits), options).await
    }

    /// Connects over plain TCP to a STOMP server.
    pub async fn connect_tcp(
        addr: SocketAddr,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(options.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(options.timeout))?
            .map_err(|e| ClientError::Connection(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(options.nodelay);
        Client::start(TcpTransport::new(stream), options).await
    }

    async fn start<T: crate::transport::Transport + 'static>(
        transport: T,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let mut connect = Frame::new(Command::Connect)
            .header(names::ACCEPT_VERSION, options.accept_version.clone())
            .header(names::HOST, options.host.clone())
            .header(names::HEART_BEAT, options.heartbeat.to_header_value());
        if let Some(login) = &options.login {
            connect.headers.push(names::LOGIN, login.clone());
        }
        if let Some(passcode) = &options.passcode {
            connect.headers.push(names::PASSCODE, passcode.clone());
        }
        for (name, value) in &options.headers {
            connect.headers.push(name.clone(), value.clone());
        }
        let (requests, connected, shared) = connection::open(transport, connect, &options).await?;
        Ok(Client {
            requests,
            shared,
            connected: Arc::new(connected),
            options: Arc::new(options),
            ids: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The CONNECTED frame the server answered with.
    pub fn connected_frame(&self) -> &Frame {
        &self.connected
    }

    /// The negotiated version.
    pub fn version(&self) -> Version {
        self.connected.get(names::VERSION).and_then(Version::parse).unwrap_or(Version::V1_0)
    }

    fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.ids.fetch_add(1, Ordering::Relaxed))
    }

    async fn request(&self, request: Request) -> Result<(), ClientError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| ClientError::Closed(self.shared.close_reason()))
    }

    /// Sends a frame as is, without waiting for anything.
    pub async fn send_frame(&self, frame: Frame) -> Result<(), ClientError> {
        self.request(Request::Frame { frame, receipt: None }).await
    }

    /// Sends a frame with a fresh `receipt` header and waits for the RECEIPT.
    pub async fn send_frame_with_receipt(&self, mut frame: Frame) -> Result<(), ClientError> {
        let id = self.next_id("receipt");
        frame.headers.set(names::RECEIPT, id.clone());
        let (tx, rx) = oneshot::channel();
        self.request(Request::Frame { frame, receipt: Some((id, tx)) }).await?;
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => Err(ClientError::Closed(self.shared.close_reason())),
            Ok(Ok(result)) => result,
        }
    }

    /// Sends `body` to `destination` (no receipt).
    pub async fn send(&self, destination: &str, body: impl Into<Bytes>) -> Result<(), ClientError> {
        self.send_frame(send_frame(destination, body.into())).await
    }

    /// Sends `body` to `destination` and waits until the server confirms it processed it.
    pub async fn send_with_receipt(
        &self,
        destination: &str,
        body: impl Into<Bytes>,
    ) -> Result<(), ClientError> {
        self.send_frame_with_receipt(send_frame(destination, body.into())).await
    }

    /// Subscribes to `destination` and waits for the server's receipt, so messages published
    /// after this returns are received.
    pub async fn subscribe(&self, destination: &str) -> Result<Subscription, ClientError> {
        self.subscribe_with(destination, &[]).await
    }

    /// Subscribes with extra SUBSCRIBE headers (such as `ack`).
    pub async fn subscribe_with(
        &self,
        destination: &str,
        headers: &[(&str, &str)],
    ) -> Result<Subscription, ClientError> {
        let id = self.next_id("sub");
        let (tx, rx) = mpsc::channel(self.options.subscription_buffer.max(1));
        self.request(Request::Register { id: id.clone(), messages: tx }).await?;
        let mut frame = Frame::new(Command::Subscribe)
            .header(names::ID, id.clone())
            .header(names::DESTINATION, destination.to_owned());
        for (name, value) in headers {
            frame.headers.push((*name).to_owned(), (*value).to_owned());
        }
        self.send_frame_with_receipt(frame).await?;
        Ok(Subscription {
            id: ByteStr::from(id),
            messages: rx,
            taken: std::collections::VecDeque::new(),
            scratch: Vec::with_capacity(TAKE),
            client: self.clone(),
        })
    }

    /// Sends DISCONNECT, waits for its receipt, and closes the connection.
    pub async fn disconnect(self) -> Result<(), ClientError> {
        self.send_frame_with_receipt(Frame::new(Command::Disconnect)).await
    }

    /// Why the connection closed, once it has (an ERROR frame's message, or the I/O error).
    pub fn close_reason(&self) -> Option<String> {
        self.shared.close_reason()
    }

    /// Waits until the connection is closed; returns why.
    pub async fn closed(&self) -> Option<String> {
        self.shared.closed().await;
        self.shared.close_reason()
    }
}

fn send_frame(destination: &str, body: Bytes) -> Frame {
    Frame::new(Command::Send).header(names::DESTINATION, destination.to_owned()).body(body)
}

/// The messages of one subscription, in order.
pub struct Subscription {
    id: ByteStr,
    messages: mpsc::Receiver<Frame>,
    /// Messages taken from the channel in one go, handed out one by one (one wake-up per
    /// batch instead of per message).
    taken: std::collections::VecDeque<Frame>,
    scratch: Vec<Frame>,
    client: Client,
}

/// Messages taken from the channel at once.
const TAKE: usize = 64;

impl Subscription {
    /// The subscription id (the SUBSCRIBE frame's `id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next MESSAGE frame; `None` once the connection is closed and every message has
    /// been taken.
    pub async fn next(&mut self) -> Option<Frame> {
        if self.taken.is_empty() {
            self.messages.recv_many(&mut self.scratch, TAKE).await;
            self.taken.extend(self.scratch.drain(..));
        }
        self.taken.pop_front()
    }

    /// The next MESSAGE frame if one has already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Frame> {
        self.taken.pop_front().or_else(|| self.messages.try_recv().ok())
    }

    /// Sends UNSUBSCRIBE and waits for the receipt.
    pub async fn unsubscribe(self) -> Result<(), ClientError> {
        let frame = Frame::new(Command::Unsubscribe).header(names::ID, self.id.clone());
        self.client.send_frame_with_receipt(frame).await
    }
}
