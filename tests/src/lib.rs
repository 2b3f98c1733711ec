//! Support code shared by stompede's integration tests (in `tests/tests/`): starting a real
//! server on an ephemeral port, and a raw WebSocket peer for sending exact bytes.

pub mod browser;
pub mod sockjs;

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use stompede::stomp::{Decoder, Frame, Limits};
use stompede::{RunningServer, ServerBuilder};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Why the next session to end ended (from `Server::events`), within [`WAIT`]; events of
/// other kinds, and any the receiver lagged behind on, are skipped.
pub async fn next_disconnect(
    events: &mut tokio::sync::broadcast::Receiver<stompede::events::SessionEvent>,
) -> stompede::events::DisconnectReason {
    let next = async {
        loop {
            if let Ok(stompede::events::SessionEvent::Disconnected { reason, .. }) =
                events.recv().await
            {
                return reason;
            }
        }
    };
    tokio::time::timeout(WAIT, next).await.expect("a session ended in time")
}

/// Whether every optional tool must be present: CI sets `STOMPEDE_REQUIRE_ALL=1`, which turns
/// each "skipped because X is missing" into a failure.
pub fn require_all() -> bool {
    std::env::var("STOMPEDE_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Reports that a test cannot run because `what` is missing: prints why and returns, or panics
/// when [`require_all`] is set.
pub fn skip(test: &str, what: &str) {
    assert!(!require_all(), "{test}: {what} (STOMPEDE_REQUIRE_ALL=1 forbids skipping)");
    eprintln!("SKIPPED {test}: {what}");
}

/// A server under test, whatever serves it: its HTTP address.
pub trait Addressed {
    /// The address its HTTP endpoints listen on.
    fn local_addr(&self) -> std::net::SocketAddr;
}

impl Addressed for RunningServer {
    fn local_addr(&self) -> std::net::SocketAddr {
        RunningServer::local_addr(self)
    }
}

/// Starts `builder`'s server on an ephemeral loopback port.
pub async fn start(builder: ServerBuilder) -> RunningServer {
    builder
        .bind("127.0.0.1:0".parse().expect("address"))
        .build()
        .expect("valid test configuration")
        .start()
        .await
        .expect("server starts")
}

/// Starts `builder`'s server, whose broker is the relay, on an ephemeral loopback port, and
/// waits until its system connection to the external broker is up; returns it with its
/// events from before it started.
pub async fn start_relayed(
    builder: ServerBuilder,
) -> (RunningServer, tokio::sync::broadcast::Receiver<stompede::events::SessionEvent>) {
    use stompede::events::SessionEvent;
    let server = builder
        .bind("127.0.0.1:0".parse().expect("address"))
        .build()
        .expect("valid test configuration");
    let mut events = server.events();
    let running = server.start().await.expect("server starts");
    if !running.server().broker_available() {
        tokio::time::timeout(WAIT, async {
            while !matches!(
                events.recv().await,
                Ok(SessionEvent::BrokerAvailability { available: true })
            ) {}
        })
        .await
        .expect("the relay's system connection came up");
    }
    (running, events)
}

/// The WebSocket URL of a running server's `/ws` endpoint.
pub fn ws_url(server: &RunningServer) -> String {
    format!("ws://{}/ws", server.local_addr())
}

/// A raw WebSocket peer: sends exact bytes, reads frames (and heart-beats) as they arrive.
pub struct RawPeer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    decoder: Decoder,
    buf: BytesMut,
    /// Heart-beat EOLs seen so far.
    pub heart_beats: u64,
    /// Kinds of WebSocket data messages received, in order (`true` for text).
    pub text_messages: Vec<bool>,
    /// Payloads of the WebSocket pongs received, in order.
    pub pongs: Vec<Bytes>,
}

/// What the peer observed next.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A STOMP frame.
    Frame(Frame),
    /// The server closed the connection.
    Closed,
}

impl RawPeer {
    /// Opens a WebSocket to `url` offering `v12.stomp`.
    pub async fn connect(url: &str) -> RawPeer {
        RawPeer::connect_with(url, &[]).await
    }

    /// Opens a WebSocket to `url` offering `v12.stomp`, with these handshake headers (a
    /// cookie, say).
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> RawPeer {
        let mut request = url.into_client_request().expect("url");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "v12.stomp".parse().expect("header"));
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
            request.headers_mut().insert(name, value.parse().expect("header value"));
        }
        let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("handshake");
        assert_eq!(
            response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap_or("")),
            Some("v12.stomp")
        );
        RawPeer {
            ws,
            decoder: Decoder::new(Limits::UNLIMITED),
            buf: BytesMut::new(),
            heart_beats: 0,
            text_messages: Vec::new(),
            pongs: Vec::new(),
        }
    }

    /// Opens a WebSocket and completes CONNECT with `heart-beat:0,0`.
    pub async fn connected(url: &str) -> RawPeer {
        let mut peer = RawPeer::connect(url).await;
        peer.send_text("CONNECT\naccept-version:1.2\nhost:test\nheart-beat:0,0\n\n\0").await;
        let connected = peer.frame().await;
        assert_eq!(connected.command, stompede::stomp::Command::Connected, "{connected:?}");
        peer
    }

    /// Sends one text WebSocket message.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends `messages` in one write: they reach the server together, as from a busy client.
    pub async fn send_all(&mut self, messages: Vec<Message>) {
        for message in messages {
            self.ws.feed(message).await.expect("send");
        }
        self.ws.flush().await.expect("send");
    }

    /// Sends one binary WebSocket message.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws.send(Message::Binary(Bytes::copy_from_slice(bytes))).await.expect("send");
    }

    /// The next frame or the close, waiting at most [`WAIT`].
    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, async {
            loop {
                let before = self.decoder.heart_beats();
                if let Some(frame) =
                    self.decoder.decode(&mut self.buf).expect("server sent valid STOMP")
                {
                    self.heart_beats += self.decoder.heart_beats() - before;
                    return Event::Frame(frame);
                }
                self.heart_beats += self.decoder.heart_beats() - before;
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        self.text_messages.push(true);
                        self.buf.extend_from_slice(t.as_bytes());
                    }
                    Some(Ok(Message::Binary(b))) => {
                        self.text_messages.push(false);
                        self.buf.extend_from_slice(&b);
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Event::Closed,
                    Some(Ok(Message::Pong(payload))) => self.pongs.push(payload),
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .expect("the server answered in time")
    }

    /// Reads until `count` heart-beat EOLs have arrived in all (waiting at most [`WAIT`]);
    /// panics if a frame or the close comes first.
    pub async fn wait_heart_beats(&mut self, count: u64) {
        tokio::time::timeout(WAIT, async {
            while self.heart_beats < count {
                let before = self.decoder.heart_beats();
                let frame = self.decoder.decode(&mut self.buf).expect("server sent valid STOMP");
                assert!(
                    frame.is_none(),
                    "a frame arrived while waiting for heart-beats: {frame:?}"
                );
                self.heart_beats += self.decoder.heart_beats() - before;
                if self.heart_beats >= count {
                    break;
                }
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => self.buf.extend_from_slice(t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                    Some(Ok(_)) => {}
                    other => panic!("connection ended while waiting for heart-beats: {other:?}"),
                }
            }
        })
        .await
        .expect("heart-beats arrived in time");
    }

    /// The next frame; panics if the connection closes first.
    pub async fn frame(&mut self) -> Frame {
        match self.next().await {
            Event::Frame(frame) => frame,
            Event::Closed => panic!("connection closed while a frame was expected"),
        }
    }

    /// Expects an ERROR frame followed by the connection closing; returns the ERROR.
    pub async fn expect_error_then_close(&mut self) -> Frame {
        let error = self.frame().await;
        assert_eq!(error.command, stompede::stomp::Command::Error, "expected ERROR, got {error:?}");
        assert_eq!(self.next().await, Event::Closed, "the server must close after ERROR");
        error
    }
}
