//! Testing handlers without writing socket code (feature `testing`): a server on an
//! ephemeral loopback port with the handlers you choose, clients that send and expect messages
//! with timeouts and readable failures, and a record of what was published.
//!
//! Everything here panics with a message that says what was expected and what happened: it is
//! meant for `#[tokio::test]` functions (multi-threaded or not). `docs/testing.md` walks
//! through it.
//!
//! ```
//! use stompede::{Server, message_mapping, send_to};
//! use stompede::test::TestServer;
//!
//! #[message_mapping("/hello")]
//! #[send_to("/topic/greetings")]
//! async fn greeting(name: String) -> String {
//!     format!("Hello, {name}!")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = TestServer::start(Server::builder()).await;
//! let client = server.client().await;
//! let mut greetings = client.subscribe("/topic/greetings").await;
//! client.send("/app/hello", "Ada").await;
//! greetings.expect_body("Hello, Ada!").await;
//! # }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::broker::Listener;
use crate::client::{Client, ClientOptions, Subscription};
use crate::stomp::{Command, Frame, Headers};
use crate::{RunningServer, Server, ServerBuilder};

/// How long an expectation waits by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A server listening on `127.0.0.1:0` (WebSocket, and TCP), shut down when dropped.
pub struct TestServer {
    running: Option<RunningServer>,
    timeout: Duration,
}

impl TestServer {
    /// Starts `builder`'s server on ephemeral loopback ports (its `bind` and `tcp` addresses
    /// are replaced), with the handlers it discovers or was given.
    ///
    /// # Panics
    ///
    /// If the configuration is invalid or the ports cannot be bound: the message says why.
    pub async fn start(builder: ServerBuilder) -> TestServer {
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let server = match builder.bind(loopback).tcp(loopback).build() {
            Ok(server) => server,
            Err(e) => panic!("the test server's configuration is invalid: {e}"),
        };
        match server.start().await {
            Ok(running) => TestServer { running: Some(running), timeout: DEFAULT_TIMEOUT },
            Err(e) => panic!("the test server could not start: {e}"),
        }
    }

    /// How long expectations of the clients made from now on wait (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn running(&self) -> &RunningServer {
        match &self.running {
            Some(running) => running,
            None => unreachable!("the server is there until the TestServer is dropped"),
        }
    }

    /// The server (its template, broker, users, stats).
    pub fn server(&self) -> &Server {
        self.running().server()
    }

    /// The WebSocket endpoint's URL (`ws://127.0.0.1:PORT/ws`).
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.running().local_addr(), self.server().first_endpoint())
    }

    /// A connected client (STOMP 1.2 over WebSocket, no heart-beats).
    pub async fn client(&self) -> TestClient {
        self.client_with(ClientOptions::default()).await
    }

    /// A client connected with these options (a login and passcode, headers).
    pub async fn client_with(&self, options: ClientOptions) -> TestClient {
        match Client::connect_ws(&self.url(), options).await {
            Ok(client) => TestClient { client, timeout: self.timeout },
            Err(e) => panic!("the test client could not connect to {}: {e}", self.url()),
        }
    }

    /// Records every message published to `destination` (a pattern is fine) from now on, by
    /// anyone: handlers' replies, the template, clients.
    pub fn record(&self, destination: &str) -> Published {
        let state = Arc::new(Recorded::default());
        let sink = state.clone();
        let listener = self
            .server()
            .listen(destination, move |message| {
                let frame = Frame {
                    command: Command::Message,
                    headers: message.headers().clone(),
                    body: message.body().clone(),
                };
                crate::locks::lock(&sink.messages).push(frame);
                sink.arrived.notify_waiters();
            })
            .unwrap_or_else(|e| panic!("cannot record {destination}: {e}"));
        Published {
            destination: destination.to_owned(),
            state,
            taken: 0,
            timeout: self.timeout,
            _listener: listener,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Stop accepting and close the sessions at once; no need to wait in a test.
            running.server().stop_now();
        }
    }
}

/// A client of a [`TestServer`].
#[derive(Clone)]
pub struct TestClient {
    client: Client,
    timeout: Duration,
}

impl TestClient {
    /// Sends `body` (text or bytes) to `destination` and waits until the server has handled it
    /// (a receipt): a handler's reply may still be on its way.
    ///
    /// # Panics
    ///
    /// If the server answers with an ERROR, or not in time.
    pub async fn send(&self, destination: &str, body: impl Into<Bytes>) {
        if let Err(e) = self.client.send_with_receipt(destination, body).await {
            panic!("SEND to {destination} failed: {e}");
        }
    }

    /// Sends `value` as JSON (`content-type:application/json`), as [`send`](Self::send).
    pub async fn send_json(&self, destination: &str, value: &impl Serialize) {
        let body = serde_json::to_vec(value)
            .unwrap_or_else(|e| panic!("cannot serialize the body for {destination}: {e}"));
        let frame = Frame::new(Command::Send)
            .header("destination", destination.to_owned())
            .header("content-type", "application/json")
            .body(body);
        if let Err(e) = self.client.send_frame_with_receipt(frame).await {
            panic!("SEND to {destination} failed: {e}");
        }
    }

    /// Subscribes (confirmed by a receipt: everything published afterwards arrives).
    pub async fn subscribe(&self, destination: &str) -> TestSubscription {
        self.subscribe_with(destination, &[]).await
    }

    /// Subscribes with extra SUBSCRIBE headers (`ack`, `prefetch-count`...).
    pub async fn subscribe_with(
        &self,
        destination: &str,
        headers: &[(&str, &str)],
    ) -> TestSubscription {
        match self.client.subscribe_with(destination, headers).await {
            Ok(subscription) => TestSubscription {
                subscription,
                destination: destination.to_owned(),
                timeout: self.timeout,
            },
            Err(e) => panic!("SUBSCRIBE to {destination} failed: {e}"),
        }
    }

    /// Waits until the server has read everything sent before and everything it had queued
    /// for this client has arrived (a receipt round trip on an empty transaction, which
    /// touches no destination): then [`TestSubscription::expect_nothing`] is meaningful for
    /// what the broker delivers. A handler's reply may still be on its way (handlers run on
    /// their own task): expect it with [`TestSubscription::expect_message`].
    pub async fn barrier(&self) {
        let tx = "stompede-test-barrier";
        let begin = Frame::new(Command::Begin).header("transaction", tx);
        let abort = Frame::new(Command::Abort).header("transaction", tx);
        let sent = match self.client.send_frame(begin).await {
            Ok(()) => self.client.send_frame_with_receipt(abort).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            panic!("the barrier's receipt did not come: {e}");
        }
    }

    /// The underlying client, for anything else.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits until the server closes the connection, and returns why (an ERROR's message).
    ///
    /// # Panics
    ///
    /// If the connection is still open after the timeout.
    pub async fn expect_closed(&self) -> String {
        match tokio::time::timeout(self.timeout, self.client.closed()).await {
            Ok(reason) => reason.unwrap_or_default(),
            Err(_) => panic!("the connection was still open after {:?}", self.timeout),
        }
    }
}

/// A subscription of a [`TestClient`].
pub struct TestSubscription {
    subscription: Subscription,
    destination: String,
    timeout: Duration,
}

impl TestSubscription {
    /// The next MESSAGE.
    ///
    /// # Panics
    ///
    /// If none arrives within the timeout, or the connection closes.
    pub async fn expect_message(&mut self) -> Frame {
        match tokio::time::timeout(self.timeout, self.subscription.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                panic!("the connection closed while a message on {} was expected", self.destination)
            }
            Err(_) => panic!("no message on {} within {:?}", self.destination, self.timeout),
        }
    }

    /// The next MESSAGE, whose body must be `expected`; returns it.
    pub async fn expect_body(&mut self, expected: &str) -> Frame {
        let message = self.expect_message().await;
        let body = String::from_utf8_lossy(&message.body);
        assert!(
            body == expected,
            "on {}: expected a message with body {expected:?}, got {body:?} (headers: {:?})",
            self.destination,
            message.headers
        );
        message
    }

    /// The next MESSAGE's JSON body, as a `T`.
    pub async fn expect_json<T: DeserializeOwned>(&mut self) -> T {
        let message = self.expect_message().await;
        serde_json::from_slice(&message.body).unwrap_or_else(|e| {
            panic!(
                "on {}: the message is not the JSON expected ({e}): {:?}",
                self.destination,
                String::from_utf8_lossy(&message.body)
            )
        })
    }

    /// Asserts that no MESSAGE has arrived: call it after [`TestClient::barrier`] (no waiting
    /// here: the barrier is what makes "nothing arrived" mean "nothing was sent").
    pub fn expect_nothing(&mut self) {
        if let Some(message) = self.subscription.try_next() {
            panic!(
                "on {}: expected no message, got {:?}",
                self.destination,
                String::from_utf8_lossy(&message.body)
            );
        }
    }
}

#[derive(Default)]
struct Recorded {
    messages: Mutex<Vec<Frame>>,
    arrived: Notify,
}

/// What was published to a destination since [`TestServer::record`]; stops recording when
/// dropped.
pub struct Published {
    destination: String,
    state: Arc<Recorded>,
    taken: usize,
    timeout: Duration,
    _listener: Listener,
}

impl Published {
    /// The next published message (in publish order).
    ///
    /// # Panics
    ///
    /// If none is published within the timeout.
    pub async fn expect_message(&mut self) -> Frame {
        let wait = async {
            loop {
                let arrived = self.state.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                if let Some(frame) =
                    crate::locks::lock(&self.state.messages).get(self.taken).cloned()
                {
                    return frame;
                }
                arrived.await;
            }
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(frame) => {
                self.taken += 1;
                frame
            }
            Err(_) => {
                panic!("nothing was published to {} within {:?}", self.destination, self.timeout)
            }
        }
    }

    /// The next published message, whose body must be `expected`.
    pub async fn expect_body(&mut self, expected: &str) -> Frame {
        let message = self.expect_message().await;
        let body = String::from_utf8_lossy(&message.body);
        assert!(
            body == expected,
            "published to {}: expected body {expected:?}, got {body:?}",
            self.destination
        );
        message
    }

    /// Every message published so far (taken or not).
    pub fn all(&self) -> Vec<Frame> {
        crate::locks::lock(&self.state.messages).clone()
    }

    /// The headers a test may want to check of a published message (a helper for
    /// `message.headers`).
    pub fn headers_of(message: &Frame) -> &Headers {
        &message.headers
    }
}
