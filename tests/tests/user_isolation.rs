//! Proof that no message crosses users: many users with several sessions each subscribe and
//! unsubscribe user destinations at random, send to each other (by SEND to
//! `/user/{name}/...`, through handlers with `#[send_to_user]` in both modes, and through the
//! messaging template), disconnect and come back. A model says which sessions must receive
//! each message; in the end every session received exactly what the model says, once, and
//! nothing else. Each session also holds a `/queue/**` wildcard, which must never see a user
//! message. Run over plain WebSocket and over SockJS.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use stompede::stomp::{Command, Decoder, Frame, Limits};
use stompede::{
    ConnectRequest, Endpoint, Principal, RunningServer, Server, message_mapping, send_to_user,
};
use stompede_tests::{WAIT, start};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const USERS: usize = 5;
const SESSIONS_PER_USER: usize = 3;
const QUEUES: usize = 3;
const STEPS: usize = 400;

/// Every session of the caller subscribed to `/user/queue/q{k}`.
#[message_mapping("/echo/{k}")]
#[send_to_user("/queue/q{k}")]
fn echo(body: String) -> String {
    body
}

/// The calling session only.
#[message_mapping("/echo-here/{k}")]
#[send_to_user("/queue/q{k}", broadcast = false)]
fn echo_here(body: String) -> String {
    body
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    WebSocket,
    SockJs,
}

/// One session, driven by hand: frames out, frames in (decoded), messages recorded by
/// subscription.
struct Peer {
    user: usize,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    wire: Wire,
    decoder: Decoder,
    buf: BytesMut,
    /// Decoded frames not looked at yet.
    pending: std::collections::VecDeque<Frame>,
    /// Message bodies received, by subscription id.
    received: BTreeMap<String, Vec<String>>,
    /// The user queues subscribed to now.
    subscribed: BTreeSet<usize>,
    session: String,
    next_receipt: u64,
}

impl Peer {
    async fn open(server: &RunningServer, wire: Wire, user: usize, n: usize) -> Peer {
        let addr = server.local_addr();
        let url = match wire {
            Wire::WebSocket => format!("ws://{addr}/ws"),
            Wire::SockJs => format!("ws://{addr}/ws/000/u{user}n{n}/websocket"),
        };
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut peer = Peer {
            user,
            ws,
            wire,
            decoder: Decoder::new(Limits::UNLIMITED),
            buf: BytesMut::new(),
            pending: Default::default(),
            received: BTreeMap::new(),
            subscribed: BTreeSet::new(),
            session: String::new(),
            next_receipt: 0,
        };
        peer.send(&format!("CONNECT\naccept-version:1.2\nheart-beat:0,0\nlogin:user{user}\n\n\0"))
            .await;
        let connected = peer.next_frame().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        peer.session = connected.get("session").unwrap().to_owned();
        // The eavesdropper: a wildcard over every queue.
        peer.request("SUBSCRIBE\nid:wild\ndestination:/queue/**\n").await;
        peer
    }

    async fn send(&mut self, frame: &str) {
        let text = match self.wire {
            Wire::WebSocket => frame.to_owned(),
            Wire::SockJs => serde_json::to_string(&[frame]).unwrap(),
        };
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next frame that is not a MESSAGE (MESSAGEs are recorded on the way).
    async fn next_frame(&mut self) -> Frame {
        loop {
            let frame = self.read().await;
            if frame.command != Command::Message {
                return frame;
            }
            self.record(&frame);
        }
    }

    fn record(&mut self, frame: &Frame) {
        let subscription = frame.get("subscription").unwrap().to_owned();
        let body = frame.body_str().unwrap().to_owned();
        self.received.entry(subscription).or_default().push(body);
    }

    async fn read(&mut self) -> Frame {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(frame) = self.pending.pop_front() {
                    return frame;
                }
                let text = match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    other => {
                        panic!("user{} {}: connection ended: {other:?}", self.user, self.session)
                    }
                };
                let chunks: Vec<String> = match self.wire {
                    Wire::WebSocket => vec![text],
                    Wire::SockJs => match text.as_bytes().first() {
                        Some(b'a') => serde_json::from_str(&text[1..]).unwrap(),
                        Some(b'o' | b'h') => continue,
                        _ => panic!("unexpected SockJS frame {text:?}"),
                    },
                };
                for chunk in chunks {
                    self.buf.extend_from_slice(chunk.as_bytes());
                    while let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                        self.pending.push_back(frame);
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("user{} {}: nothing arrived in time", self.user, self.session))
    }

    /// Sends `frame` (command and headers, without the blank line) with a receipt and waits
    /// for it: the server has handled the frame once this returns.
    async fn request(&mut self, frame: &str) {
        self.next_receipt += 1;
        let id = format!("r{}", self.next_receipt);
        self.send(&format!("{frame}receipt:{id}\n\n\0")).await;
        let answer = self.next_frame().await;
        assert_eq!(answer.command, Command::Receipt, "{answer:?}");
        assert_eq!(answer.get("receipt-id"), Some(id.as_str()));
    }

    async fn request_with_body(&mut self, frame: &str, body: &str) {
        self.next_receipt += 1;
        let id = format!("r{}", self.next_receipt);
        self.send(&format!("{frame}receipt:{id}\n\n{body}\0")).await;
        let answer = self.next_frame().await;
        assert_eq!(answer.command, Command::Receipt, "{answer:?}");
    }

    /// Reads until `body` has arrived on subscription `q{queue}`.
    async fn wait_for(&mut self, queue: usize, body: &str) {
        let key = format!("q{queue}");
        while !self.received.get(&key).is_some_and(|b| b.iter().any(|x| x == body)) {
            let frame = self.read().await;
            assert_eq!(frame.command, Command::Message, "{frame:?}");
            self.record(&frame);
        }
    }
}

/// What each session must receive: bodies by subscription id.
type Expected = BTreeMap<String, Vec<String>>;

async fn scenario(wire: Wire, seed: u64) {
    let server =
        start(Server::builder().endpoint(Endpoint::new("/ws").with_sockjs()).authenticator(
            |connect: ConnectRequest| async move { Ok(connect.login().map(Principal::new)) },
        ))
        .await;
    let template = server.template();
    let mut rng = Rng(seed);
    let mut opened = 0;
    let mut live: Vec<(Peer, Expected)> = Vec::new();
    for user in 0..USERS {
        for _ in 0..SESSIONS_PER_USER {
            opened += 1;
            live.push((Peer::open(&server, wire, user, opened).await, Expected::new()));
        }
    }
    let mut finished: Vec<(Peer, Expected)> = Vec::new();
    let mut next_message = 0u64;
    for _ in 0..STEPS {
        let i = rng.below(live.len());
        let queue = rng.below(QUEUES);
        next_message += 1;
        let body = format!("m{next_message}");
        match rng.below(10) {
            // Subscribe or unsubscribe a user queue.
            0..=2 => {
                let (peer, _) = &mut live[i];
                if peer.subscribed.remove(&queue) {
                    peer.request(&format!("UNSUBSCRIBE\nid:q{queue}\n")).await;
                } else {
                    peer.request(&format!(
                        "SUBSCRIBE\nid:q{queue}\ndestination:/user/queue/q{queue}\n"
                    ))
                    .await;
                    peer.subscribed.insert(queue);
                }
            }
            // A client sends to another user's destination.
            3..=4 => {
                let target = rng.below(USERS);
                for (peer, expected) in &mut live {
                    if peer.user == target && peer.subscribed.contains(&queue) {
                        expected.entry(format!("q{queue}")).or_default().push(body.clone());
                    }
                }
                let frame = format!("SEND\ndestination:/user/user{target}/queue/q{queue}\n");
                live[i].0.request_with_body(&frame, &body).await;
            }
            // The application sends to a user.
            5 => {
                let target = rng.below(USERS);
                let mut expected_count = 0;
                for (peer, expected) in &mut live {
                    if peer.user == target && peer.subscribed.contains(&queue) {
                        expected.entry(format!("q{queue}")).or_default().push(body.clone());
                        expected_count += 1;
                    }
                }
                let delivered = template
                    .convert_and_send_to_user(
                        &format!("user{target}"),
                        &format!("/queue/q{queue}"),
                        body.as_str(),
                    )
                    .unwrap();
                assert_eq!(delivered, expected_count, "deliveries of {body}");
            }
            // A handler replies to the caller's sessions (or the calling one): only when
            // someone is to receive it, who is then waited for (the reply is asynchronous).
            6..=7 => {
                let broadcast = rng.below(2) == 0;
                let user = live[i].0.user;
                let recipients: Vec<usize> = (0..live.len())
                    .filter(|&j| {
                        (j == i || broadcast && live[j].0.user == user)
                            && live[j].0.subscribed.contains(&queue)
                    })
                    .collect();
                if recipients.is_empty() {
                    continue;
                }
                let path = if broadcast { "echo" } else { "echo-here" };
                let frame = format!("SEND\ndestination:/app/{path}/{queue}\n");
                live[i].0.request_with_body(&frame, &body).await;
                for j in recipients {
                    live[j].1.entry(format!("q{queue}")).or_default().push(body.clone());
                    live[j].0.wait_for(queue, &body).await;
                }
            }
            // A session ends; the user comes back on a new one.
            _ => {
                let (mut peer, expected) = live.swap_remove(i);
                peer.request("DISCONNECT\n").await;
                let user = peer.user;
                finished.push((peer, expected));
                opened += 1;
                live.push((Peer::open(&server, wire, user, opened).await, Expected::new()));
            }
        }
    }
    // A last message to each user queue: once a session has it, everything sent to that
    // session before has arrived too (one ordered stream per session).
    for user in 0..USERS {
        for queue in 0..QUEUES {
            let marker = format!("end-user{user}-q{queue}");
            for (peer, expected) in &mut live {
                if peer.user == user && peer.subscribed.contains(&queue) {
                    expected.entry(format!("q{queue}")).or_default().push(marker.clone());
                }
            }
            let destination = format!("/queue/q{queue}");
            template
                .convert_and_send_to_user(&format!("user{user}"), &destination, marker.as_str())
                .unwrap();
        }
    }
    for (peer, _) in &mut live {
        for queue in peer.subscribed.clone() {
            let marker = format!("end-user{}-q{queue}", peer.user);
            peer.wait_for(queue, &marker).await;
        }
    }
    let mut messages = 0;
    for (peer, expected) in live.iter().chain(finished.iter()) {
        messages += expected.values().map(Vec::len).sum::<usize>();
        assert_eq!(
            &peer.received, expected,
            "user{} {} ({wire:?}, seed {seed}): what it received (left) is not what the model says (right)",
            peer.user, peer.session
        );
    }
    assert!(messages > STEPS / 4, "the scenario exercised too little: {messages} deliveries");
    server.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_crosses_users_over_websocket() {
    scenario(Wire::WebSocket, 0x5EED_0001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_crosses_users_over_sockjs() {
    scenario(Wire::SockJs, 0x5EED_0002).await;
}
