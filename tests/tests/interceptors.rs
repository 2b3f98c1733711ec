//! Inbound and outbound interceptors: each outcome (pass changed, reject, drop; outbound pass
//! changed, drop) over WebSocket, SockJS (XHR polling) and TCP; a slow or panicking
//! interceptor; interceptors run before the access rules; what they see of the session.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use stompede::intercept::{Inbound, Outbound, SessionInfo};
use stompede::security::{Access, AccessRules, AuthenticationFailed, ConnectRequest};
use stompede::stomp::{Command, Frame, Version, encode_to_bytes};
use stompede::{Endpoint, Principal, RunningServer, Server, ServerBuilder};
use stompede_tests::sockjs::{connected_polling, fetch, json, messages};
use stompede_tests::{RawPeer, WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client on one of the transports, seen as the text of the frames it received.
enum Raw {
    Ws(Box<RawPeer>),
    Tcp(TcpStream),
    SockJs(&'static str, RunningServerAddr),
}

/// The server's address, for SockJS requests.
struct RunningServerAddr(std::net::SocketAddr);

impl stompede_tests::Addressed for RunningServerAddr {
    fn local_addr(&self) -> std::net::SocketAddr {
        self.0
    }
}

const CONNECT: &str = "CONNECT\naccept-version:1.2\nhost:test\nheart-beat:0,0\n\n\0";

impl Raw {
    async fn open(transport: &str, server: &RunningServer) -> (Raw, String) {
        match transport {
            "websocket" => {
                let mut peer = RawPeer::connect(&ws_url(server)).await;
                peer.send_text(CONNECT).await;
                let connected = text(&peer.frame().await);
                (Raw::Ws(Box::new(peer)), connected)
            }
            "tcp" => {
                let mut stream = TcpStream::connect(server.tcp_addr().unwrap()).await.unwrap();
                stream.write_all(CONNECT.as_bytes()).await.unwrap();
                let mut raw = Raw::Tcp(stream);
                let connected = raw.until("\0").await;
                (raw, connected)
            }
            _ => {
                let addr = RunningServerAddr(server.local_addr());
                let connected = connected_polling(&addr, "s1").await;
                (Raw::SockJs("s1", addr), connected)
            }
        }
    }

    async fn send(&mut self, frame: &str) {
        match self {
            Raw::Ws(peer) => peer.send_text(frame).await,
            Raw::Tcp(stream) => stream.write_all(frame.as_bytes()).await.unwrap(),
            Raw::SockJs(session, addr) => {
                let path = format!("/ws/000/{session}/xhr_send");
                let (status, _, body) =
                    fetch(addr, Method::POST, &path, &[], &json(&[frame])).await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            }
        }
    }

    /// Reads until what arrived contains `want`; returns all of it (frames as text; `CLOSED`
    /// at the end if the server closed).
    async fn until(&mut self, want: &str) -> String {
        let mut seen = String::new();
        tokio::time::timeout(WAIT, async {
            while !seen.contains(want) {
                match self {
                    Raw::Ws(peer) => match peer.next().await {
                        stompede_tests::Event::Frame(frame) => seen.push_str(&text(&frame)),
                        stompede_tests::Event::Closed => seen.push_str("CLOSED"),
                    },
                    Raw::Tcp(stream) => {
                        let mut chunk = [0u8; 4096];
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        match n {
                            0 => seen.push_str("CLOSED"),
                            n => seen.push_str(&String::from_utf8_lossy(&chunk[..n])),
                        }
                    }
                    Raw::SockJs(session, addr) => {
                        let path = format!("/ws/000/{session}/xhr");
                        let (_, _, body) = fetch(addr, Method::POST, &path, &[], "").await;
                        for message in messages(&body) {
                            seen.push_str(&message);
                        }
                        if body.starts_with('c') {
                            seen.push_str("CLOSED");
                        }
                    }
                }
                if seen.ends_with("CLOSED") && !want.contains("CLOSED") {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{want:?} did not arrive"));
        seen
    }
}

fn text(frame: &Frame) -> String {
    String::from_utf8_lossy(&encode_to_bytes(frame, Version::V1_2)).into_owned()
}

/// The chain under test: SENDs to `/topic/secret` are rejected, SENDs with `drop:yes`
/// dropped, others stamped with the transport and moved from `/topic/old` to `/topic/new`;
/// MESSAGEs with `hide:yes` are not sent, others get `x-out:1`.
fn intercepted(builder: ServerBuilder) -> ServerBuilder {
    builder
        .inbound_interceptor(|mut frame, session| async move {
            if frame.command != Command::Send {
                return Inbound::Pass(frame);
            }
            if frame.destination() == Some("/topic/secret") {
                return Inbound::Reject("no secrets here".into());
            }
            if frame.get("drop") == Some("yes") {
                return Inbound::Drop;
            }
            assert!(!session.session_id.is_empty());
            frame.headers.set("x-seen-by", session.transport);
            if frame.destination() == Some("/topic/old") {
                frame.headers.set("destination", "/topic/new");
            }
            Inbound::Pass(frame)
        })
        .outbound_interceptor(|mut frame, _session| async move {
            if frame.command == Command::Message && frame.get("hide") == Some("yes") {
                return Outbound::Drop;
            }
            if frame.command == Command::Message {
                frame.headers.set("x-out", "1");
            }
            Outbound::Pass(frame)
        })
}

async fn every_outcome(transport: &str, label: &str) {
    let builder = intercepted(
        Server::builder()
            .tcp("127.0.0.1:0".parse().unwrap())
            .endpoint(Endpoint::new("/ws").with_sockjs()),
    );
    let server = start(builder).await;
    let (mut client, connected) = Raw::open(transport, &server).await;
    assert!(connected.contains("CONNECTED"), "{connected}");
    client.send("SUBSCRIBE\nid:0\ndestination:/topic/new\nreceipt:sub\n\n\0").await;
    client.until("receipt-id:sub").await;

    // Passed on, changed: moved to /topic/new, stamped; the MESSAGE stamped on the way out.
    client.send("SEND\ndestination:/topic/old\n\nmoved\0").await;
    let seen = client.until("moved").await;
    assert!(seen.contains("destination:/topic/new"), "{seen}");
    assert!(seen.contains(&format!("x-seen-by:{label}")), "{seen}");
    assert!(seen.contains("x-out:1"), "{seen}");

    // Dropped inbound (its receipt answered), and dropped outbound: neither arrives before
    // the next message.
    client.send("SEND\ndestination:/topic/new\ndrop:yes\nreceipt:dropped\n\nnot-published\0").await;
    client.send("SEND\ndestination:/topic/new\nhide:yes\n\nnot-sent\0").await;
    client.send("SEND\ndestination:/topic/new\n\nafter\0").await;
    let seen = client.until("after").await;
    assert!(seen.contains("receipt-id:dropped"), "{seen}");
    assert!(!seen.contains("not-published") && !seen.contains("not-sent"), "{seen}");

    // Rejected: an ERROR with the interceptor's message, then the close.
    client.send("SEND\ndestination:/topic/secret\n\nclassified\0").await;
    let seen = client.until("CLOSED").await;
    assert!(seen.contains("ERROR") && seen.contains("message:no secrets here"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_over_websocket() {
    every_outcome("websocket", "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_over_tcp() {
    every_outcome("tcp", "tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_over_sockjs() {
    every_outcome("sockjs", "sockjs-xhr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_panicking_interceptor_ends_only_its_session() {
    let builder = Server::builder()
        .interceptor_timeout(Duration::from_millis(200))
        .inbound_interceptor(|frame, _session| async move {
            match frame.destination() {
                Some("/topic/slow") => std::future::pending().await,
                Some("/topic/panic") => panic!("the interceptor broke"),
                _ => Inbound::Pass(frame),
            }
        });
    let server = start(builder).await;
    let url = ws_url(&server);
    let mut healthy = RawPeer::connected(&url).await;
    for (destination, expected) in [
        ("/topic/slow", "the server could not process the frame within 200ms"),
        ("/topic/panic", "the server could not process the frame (an interceptor failed)"),
    ] {
        let mut peer = RawPeer::connected(&url).await;
        peer.send_text(&format!("SEND\ndestination:{destination}\n\nx\0")).await;
        let error = peer.expect_error_then_close().await;
        assert_eq!(error.get("message"), Some(expected));
    }
    healthy.send_text("SEND\ndestination:/topic/ok\nreceipt:fine\n\nx\0").await;
    assert_eq!(healthy.frame().await.get("receipt-id"), Some("fine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_run_before_the_access_rules_and_see_the_principal() {
    type Seen = Vec<(String, Option<String>, &'static str)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let rules = AccessRules::new()
        .send(["/topic/public/**"], Access::permit_all())
        .send(["/topic/admin/**"], Access::role("admin"))
        .subscribe(["/topic/**"], Access::authenticated());
    let builder = Server::builder()
        .authenticator(|request: ConnectRequest| async move {
            match request.login() {
                Some(login) => Ok(Some(Principal::new(login))),
                None => Err(AuthenticationFailed::new("no login")),
            }
        })
        .access_rules(rules)
        .inbound_interceptor(move |mut frame, session: Arc<SessionInfo>| {
            let record = record.clone();
            async move {
                if frame.command == Command::Send {
                    let name = session.principal.as_ref().map(|p| p.name().to_owned());
                    record.lock().unwrap().push((
                        session.session_id.clone(),
                        name,
                        session.transport,
                    ));
                    // Rewritten into a destination the rules allow, and one they deny.
                    match frame.destination() {
                        Some("/topic/admin/ok") => {
                            frame.headers.set("destination", "/topic/public/ok")
                        }
                        Some("/topic/public/no") => {
                            frame.headers.set("destination", "/topic/admin/no")
                        }
                        _ => {}
                    }
                }
                Inbound::Pass(frame)
            }
        });
    let server = start(builder).await;
    let url = ws_url(&server);
    let mut peer = RawPeer::connect(&url).await;
    peer.send_text("CONNECT\naccept-version:1.2\nhost:test\nlogin:ada\nheart-beat:0,0\n\n\0").await;
    let connected = peer.frame().await;
    let session_id = connected.get("session").unwrap().to_owned();
    peer.send_text("SEND\ndestination:/topic/admin/ok\nreceipt:allowed\n\nx\0").await;
    assert_eq!(
        peer.frame().await.get("receipt-id"),
        Some("allowed"),
        "the rules saw the rewritten destination"
    );
    peer.send_text("SEND\ndestination:/topic/public/no\n\nx\0").await;
    let error = peer.expect_error_then_close().await;
    assert_eq!(error.get("message"), Some("access denied: SEND to /topic/admin/no"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(session_id.clone(), Some("ada".into()), "websocket"); 2]);
}

/// A server built from `builder`, and a WebSocket client subscribed to `/topic/t` (the
/// subscription's receipt read).
async fn subscribed_to_t(builder: ServerBuilder) -> (RunningServer, RawPeer) {
    let server = start(builder).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text("SUBSCRIBE\nid:0\ndestination:/topic/t\nreceipt:sub\n\n\0").await;
    assert_eq!(peer.frame().await.get("receipt-id"), Some("sub"));
    (server, peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_outbound_interceptor_drops_the_frame_and_the_session_goes_on() {
    let builder = Server::builder()
        .interceptor_timeout(Duration::from_millis(200))
        .outbound_interceptor(|frame, _session| async move {
            if frame.body.as_ref() == b"stall" {
                std::future::pending::<()>().await;
            }
            Outbound::Pass(frame)
        });
    let (_server, mut peer) = subscribed_to_t(builder).await;
    peer.send_text("SEND\ndestination:/topic/t\n\nstall\0").await;
    peer.send_text("SEND\ndestination:/topic/t\nreceipt:after\n\nfine\0").await;
    let mut seen = Vec::new();
    while !seen.iter().any(|f: &Frame| f.get("receipt-id") == Some("after")) {
        seen.push(peer.frame().await);
    }
    let bodies: Vec<_> =
        seen.iter().map(|f| String::from_utf8_lossy(&f.body).into_owned()).collect();
    assert!(!bodies.contains(&"stall".to_owned()), "{bodies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_an_interceptor_made_binary_travels_as_binary() {
    // The client's bytes arrive as WebSocket text (known to be UTF-8): what an interceptor
    // puts in their place is checked again.
    let builder = Server::builder().inbound_interceptor(|mut frame, _session| async move {
        if frame.command == Command::Send && frame.body.as_ref() == b"swap" {
            frame.body = bytes::Bytes::from_static(b"\xff\xfe");
        }
        Inbound::Pass(frame)
    });
    let (_server, mut peer) = subscribed_to_t(builder).await;
    peer.send_text("SEND\ndestination:/topic/t\n\nswap\0").await;
    peer.send_text("SEND\ndestination:/topic/t\n\nkept\0").await;
    assert_eq!(&peer.frame().await.body[..], b"\xff\xfe");
    assert_eq!(peer.frame().await.body_str(), Some("kept"));
    let kinds = &peer.text_messages[peer.text_messages.len() - 2..];
    assert_eq!(kinds, [false, true], "the swapped body as a binary message, the other as text");
}
