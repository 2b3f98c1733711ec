//! What one client can try against the server, each attempt answered and bounded: frame
//! injection through a NUL in a header, wildcard patterns built to be slow, and HTTP
//! connections that never finish a request. The memory bounds (ping floods, pattern memory)
//! are in `memory_bounds.rs`, which counts allocations.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::{Method, StatusCode};
use stompede::stomp::{Command, Frame};
use stompede::{Endpoint, RunningServer, Server, SockJsOptions};
use stompede_tests::sockjs::{connected_polling, fetch, json, messages};
use stompede_tests::{Event, RawPeer, WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A SEND whose `x` header carries a NUL and, after it, a complete forged MESSAGE: a client
/// that splits frames on NUL would read it as a second frame from the server.
const INJECTION: &str = "SEND\ndestination:/topic/news\nreceipt:r-1\nx:a\0MESSAGE\nsubscription:1\ndestination:/topic/spoofed\nmessage-id:x\n\nFAKE\0";

const NUL_ERROR: &str = "NUL byte in the command or header line";

async fn server_with_every_transport() -> RunningServer {
    start(
        Server::builder()
            .tcp("127.0.0.1:0".parse().unwrap())
            .endpoint(Endpoint::new("/ws").sockjs(SockJsOptions::default())),
    )
    .await
}

/// A subscriber of `/topic/news` and `/topic/spoofed`, subscribed once this returns.
async fn bystander(server: &RunningServer) -> RawPeer {
    let mut peer = RawPeer::connected(&ws_url(server)).await;
    peer.send_text("SUBSCRIBE\nid:1\ndestination:/topic/spoofed\n\n\0SUBSCRIBE\nid:2\ndestination:/topic/news\nreceipt:subscribed\n\n\0").await;
    let receipt = peer.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    peer
}

fn assert_nul_error(error: &Frame) {
    assert_eq!(error.command, Command::Error, "{error:?}");
    let message = error.get("message").unwrap_or_default();
    assert!(message.contains(NUL_ERROR), "ERROR names the NUL: {message:?}");
    assert_eq!(error.get("receipt-id"), Some("r-1"), "ERROR answers the failing frame");
}

/// Reads a raw TCP STOMP connection to its end.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut seen))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_header_is_an_error_on_every_transport_and_forges_nothing() {
    let server = server_with_every_transport().await;
    let mut watcher = bystander(&server).await;

    // WebSocket, as a binary and as a text message.
    for binary in [true, false] {
        let mut attacker = RawPeer::connected(&ws_url(&server)).await;
        if binary {
            attacker.send_binary(INJECTION.as_bytes()).await;
        } else {
            attacker.send_text(INJECTION).await;
        }
        assert_nul_error(&attacker.expect_error_then_close().await);
    }

    // Plain TCP.
    let mut tcp = TcpStream::connect(server.tcp_addr().unwrap()).await.unwrap();
    tcp.write_all(b"CONNECT\naccept-version:1.2\nhost:test\n\n\0").await.unwrap();
    tcp.write_all(INJECTION.as_bytes()).await.unwrap();
    let seen = read_to_close(&mut tcp).await;
    assert!(seen.starts_with("CONNECTED\n"), "{seen:?}");
    let error = seen.split_once('\0').map(|(_, rest)| rest).unwrap_or_default();
    assert!(error.starts_with("ERROR\n") && error.contains(NUL_ERROR), "{seen:?}");
    assert!(error.contains("receipt-id:r-1\n"), "{seen:?}");

    // SockJS: the frame travels as a JSON string with \u0000 in it.
    connected_polling(&server, "nul").await;
    let (status, _, _) =
        fetch(&server, Method::POST, "/ws/000/nul/xhr_send", &[], &json(&[INJECTION])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut frames = Vec::new();
    let mut closed = false;
    tokio::time::timeout(WAIT, async {
        while !closed {
            let (_, _, body) = fetch(&server, Method::POST, "/ws/000/nul/xhr", &[], "").await;
            frames.extend(messages(&body));
            closed = body.starts_with("c[");
        }
    })
    .await
    .expect("the SockJS session closed");
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(frames[0].starts_with("ERROR\n") && frames[0].contains(NUL_ERROR), "{frames:?}");

    // The watcher saw nothing of the four attempts: its next frame is an honest message.
    let mut publisher = RawPeer::connected(&ws_url(&server)).await;
    publisher.send_text("SEND\ndestination:/topic/news\n\nhonest\0").await;
    let message = watcher.frame().await;
    assert_eq!(message.command, Command::Message);
    assert_eq!(message.get("destination"), Some("/topic/news"));
    assert_eq!(&message.body[..], b"honest");
    assert!(!message.headers.entries().iter().any(|(n, v)| n.contains('\0') || v.contains('\0')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_and_destinations_past_their_limits_are_errors() {
    let server = start(Server::builder()).await;
    let nine = format!("/topic/{}", "*x".repeat(9));
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text(&format!("SUBSCRIBE\nid:0\ndestination:{nine}\nreceipt:r\n\n\0")).await;
    let error = peer.expect_error_then_close().await;
    assert_eq!(
        error.get("message"),
        Some(
            "subscription pattern has 9 wildcards, more than the 8 allowed (set max_pattern_wildcards to raise it)"
        )
    );
    assert_eq!(error.get("receipt-id"), Some("r"));

    let long = format!("/topic/{}", "d".repeat(1025 - "/topic/".len()));
    for frame in ["SUBSCRIBE\nid:0", "SEND"] {
        let mut peer = RawPeer::connected(&ws_url(&server)).await;
        peer.send_text(&format!("{frame}\ndestination:{long}\n\n\0")).await;
        let error = peer.expect_error_then_close().await;
        assert_eq!(
            error.get("message"),
            Some(
                "destination is 1025 bytes long, more than the 1024 allowed (set max_destination_length to raise it)"
            ),
            "{frame}"
        );
    }

    // Eight wildcards, and a destination of exactly 1,024 bytes, are fine.
    let eight = format!("/topic/{}", "*x".repeat(8));
    let exact = format!("/topic/{}", "x".repeat(1024 - "/topic/".len()));
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text(&format!(
        "SUBSCRIBE\nid:0\ndestination:{eight}\n\n\0SEND\ndestination:{exact}\nreceipt:sent\n\nhi\0"
    ))
    .await;
    let message = peer.frame().await;
    assert_eq!((message.command, &message.body[..]), (Command::Message, &b"hi"[..]));
    assert_eq!(peer.frame().await.command, Command::Receipt);
}

/// The reported attack, within the limits: four sessions' worth of patterns built to defeat
/// the prefix and suffix pre-checks, and publishes to the longest destination allowed. Each
/// publish matched 32 such patterns in 12.8 s before; now each of the 20 publishes over 1,024
/// patterns completes within the usual wait, and another session's subscribes and another
/// destination's traffic go on meanwhile. (That a publish busy matching holds no lock a
/// subscribe waits for is proved deterministically by the registry's unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_patterns_cost_bounded_time_and_block_nobody() {
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let mut attackers = Vec::new();
    for a in 0..4 {
        let mut peer = RawPeer::connected(&url).await;
        for i in 0..256 {
            // `/topic/**aaa…**aaa…**aaa…**aaa…b**`: five wildcards and literals of ~120 bytes,
            // which the prefix and suffix pre-checks cannot reject and which fail only at the
            // last literal (so nothing is delivered to the attackers, who do not read).
            let literal = "a".repeat(100 + (i % 20));
            let pattern = format!("/topic/{}b**", format!("**{literal}").repeat(4));
            assert!(pattern.len() <= 1024);
            peer.send_text(&format!("SUBSCRIBE\nid:{i}\ndestination:{pattern}\n\n\0")).await;
        }
        peer.send_text(&format!("SEND\ndestination:/topic/warm-up-{a}\nreceipt:ready\n\n\0")).await;
        assert_eq!(peer.frame().await.command, Command::Receipt);
        attackers.push(peer);
    }

    let mut publisher = RawPeer::connected(&url).await;
    let mut bystander = bystander(&server).await;
    let target = format!("/topic/{}", "a".repeat(1024 - "/topic/".len()));
    for i in 0..20 {
        publisher.send_text(&format!("SEND\ndestination:{target}\nreceipt:p{i}\n\nx\0")).await;
        // Meanwhile: a subscribe and an unrelated topic, from the bystander.
        bystander
            .send_text(&format!("SUBSCRIBE\nid:b{i}\ndestination:/topic/b{i}\nreceipt:s{i}\n\n\0SEND\ndestination:/topic/news\n\nnews {i}\0"))
            .await;
    }
    let mut receipts = 0;
    while receipts < 20 {
        match publisher.next().await {
            Event::Frame(frame) if frame.command == Command::Receipt => receipts += 1,
            Event::Frame(_) => {}
            Event::Closed => panic!("the publisher was closed"),
        }
    }
    let mut news = 0;
    let mut subscribed = 0;
    while news < 20 || subscribed < 20 {
        let frame = bystander.frame().await;
        match frame.command {
            Command::Receipt => subscribed += 1,
            Command::Message => news += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The attackers are still there (and received nothing: no pattern matched).
    for attacker in &mut attackers {
        attacker.send_text("SEND\ndestination:/topic/x\nreceipt:still\n\n\0").await;
        let frame = attacker.frame().await;
        assert_eq!(frame.get("receipt-id"), Some("still"), "{frame:?}");
    }
}

/// Reads `stream` until the server closes it; returns what came before.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(read.is_ok(), "the server kept the connection open; it sent {seen:?}");
    seen
}

const DEADLINE: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_stage_has_a_deadline() {
    let server = start(
        Server::builder()
            .endpoint(Endpoint::new("/ws").sockjs(SockJsOptions::default()))
            .http_header_read_timeout(DEADLINE)
            .http_body_read_timeout(DEADLINE),
    )
    .await;
    let addr = server.local_addr();
    // A session is not an HTTP request: this WebSocket session outlives the deadlines below.
    let mut peer = RawPeer::connected(&ws_url(&server)).await;

    // Half a request line, then nothing.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /ws HT").await.unwrap();
    until_closed(&mut half).await;

    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    until_closed(&mut silent).await;

    // A keep-alive connection left idle after its response (a 404).
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /nothing-here HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let seen = until_closed(&mut idle).await;
    assert!(seen.starts_with("HTTP/1.1 404"), "{seen:?}");

    // A SockJS xhr_send body that trickles: 10 of its 100 bytes, then nothing.
    connected_polling(&server, "slow").await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /ws/000/slow/xhr_send HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n[\"SEND\\nde",
    )
    .await
    .unwrap();
    let seen = until_closed(&mut slow).await;
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen:?}");
    assert!(seen.contains("http_body_read_timeout"), "{seen:?}");

    // Each close above came after a deadline the session has outlived.
    peer.send_text("SEND\ndestination:/topic/a\nreceipt:alive\n\n\0").await;
    assert_eq!(peer.frame().await.command, Command::Receipt);
}

/// A GET of `/stompede.js` on a fresh connection: the status line, or `None` when no answer
/// came within `wait`.
async fn get_within(addr: std::net::SocketAddr, wait: Duration) -> (TcpStream, Option<String>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /stompede.js HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    let answer = match tokio::time::timeout(wait, stream.read_exact(&mut head)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&head).into_owned()),
        Ok(Err(e)) => panic!("the connection failed: {e}"),
        Err(_) => None,
    };
    (stream, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_body_is_refused_where_the_server_says_so() {
    let server = start(Server::builder().reject_nul_in_bodies(true)).await;
    let mut bystander = bystander(&server).await;
    let mut attacker = RawPeer::connected(&ws_url(&server)).await;
    // stompjs 2.3.3 ignores content-length and would read the rest as a MESSAGE.
    let body = "x\0MESSAGE\nsubscription:1\ndestination:/topic/spoofed\n\nFAKE";
    let send = format!(
        "SEND\ndestination:/topic/news\ncontent-length:{}\nreceipt:r-1\n\n{body}\0",
        body.len()
    );
    attacker.send_binary(send.as_bytes()).await;
    let error = attacker.expect_error_then_close().await;
    assert_eq!(error.get("receipt-id"), Some("r-1"));
    assert!(error.get("message").unwrap_or_default().contains("reject_nul_in_bodies"), "{error:?}");
    let mut publisher = RawPeer::connected(&ws_url(&server)).await;
    publisher.send_text("SEND\ndestination:/topic/news\n\nhonest\0").await;
    assert_eq!(&bystander.frame().await.body[..], b"honest");

    // By default a body is any bytes content-length sizes.
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_binary(b"SUBSCRIBE\nid:0\ndestination:/topic/b\n\n\0SEND\ndestination:/topic/b\ncontent-length:3\n\na\0b\0").await;
    assert_eq!(&peer.frame().await.body[..], b"a\0b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_session_are_capped_and_sessions_do_not_count() {
    let server = start(
        Server::builder()
            .endpoint(Endpoint::new("/ws").sockjs(SockJsOptions::default()))
            .max_http_connections(2)
            .http_header_read_timeout(Duration::from_secs(60)),
    )
    .await;
    let addr = server.local_addr();

    // Two WebSocket sessions and a SockJS streaming receiver hold no slot.
    let _a = RawPeer::connected(&ws_url(&server)).await;
    let _b = RawPeer::connected(&ws_url(&server)).await;
    let mut streaming = TcpStream::connect(addr).await.unwrap();
    streaming
        .write_all(
            b"POST /ws/000/s1/xhr_streaming HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n",
        )
        .await
        .unwrap();
    let mut prelude = [0u8; 12];
    tokio::time::timeout(WAIT, streaming.read_exact(&mut prelude)).await.unwrap().unwrap();
    assert_eq!(&prelude, b"HTTP/1.1 200");
    let (_first, answer) = get_within(addr, WAIT).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200"), "a slot was free");

    // `_first` (kept alive) and one idle connection take both slots: the next connection waits.
    let idle = TcpStream::connect(addr).await.unwrap();
    let (mut waiting, answer) = get_within(addr, Duration::from_millis(500)).await;
    assert_eq!(answer, None, "no slot was free, so the request waited");
    // A slot frees: the waiting connection is accepted and answered.
    drop(idle);
    let mut head = [0u8; 12];
    tokio::time::timeout(WAIT, waiting.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

/// The ways a connection could keep its slot, or give it up while still not a session, each
/// closed: a WebSocket counts until its CONNECT; a SockJS receiving request refused for its
/// session stays counted, an attached one closes its connection when done; a client that
/// pipelines requests and never reads the answers is let go after the send time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_keeps_its_slot_until_it_carries_a_session() {
    let server = start(
        Server::builder()
            .endpoint(Endpoint::new("/ws").sockjs(SockJsOptions::default()))
            .max_http_connections(1)
            .http_header_read_timeout(Duration::from_secs(60))
            .send_time_limit(Duration::from_millis(300)),
    )
    .await;
    let addr = server.local_addr();
    let free = || async { get_within(addr, WAIT).await.1.as_deref() == Some("HTTP/1.1 200") };

    // A WebSocket without CONNECT holds the slot; CONNECT gives it up.
    let mut socket = RawPeer::connect(&ws_url(&server)).await;
    let (mut waiting, answer) = get_within(addr, Duration::from_millis(500)).await;
    assert_eq!(answer, None, "an upgraded WebSocket without CONNECT still counts");
    socket.send_text("CONNECT\naccept-version:1.2\nhost:test\n\n\0").await;
    assert_eq!(socket.frame().await.command, Command::Connected);
    let mut head = [0u8; 12];
    tokio::time::timeout(WAIT, waiting.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(waiting);

    // An attached SockJS receiving request (a long poll, attached until its session has
    // something to say) gives up its slot while attached.
    connected_polling(&server, "s").await;
    let subscribe = "SUBSCRIBE\nid:0\ndestination:/topic/poke\nreceipt:r\n\n\0";
    fetch(&server, Method::POST, "/ws/000/s/xhr_send", &[], &json(&[subscribe])).await;
    let (_, _, receipt) = fetch(&server, Method::POST, "/ws/000/s/xhr", &[], "").await;
    assert!(receipt.contains("RECEIPT"), "{receipt}");
    let mut poll = TcpStream::connect(addr).await.unwrap();
    poll.write_all(b"POST /ws/000/s/xhr HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let (holder, answer) = get_within(addr, WAIT).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200"), "the attached poll holds no slot");
    // The poll ends; the next request on its connection counts again, and `holder` (a
    // keep-alive connection) has the only slot: refused.
    server.template().convert_and_send("/topic/poke", "poke").unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("poke") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, poll.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "the poll's connection closed");
        seen.extend_from_slice(&chunk[..n]);
    }
    poll.write_all(b"GET /stompede.js HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let seen = until_closed(&mut poll).await;
    assert!(seen.starts_with("HTTP/1.1 503"), "{seen:?}");
    drop(holder);
    assert!(free().await);

    // A pipelining client that does not read: closed after the send time limit, which frees
    // its slot for the next client.
    let mut greedy = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /stompede.js HTTP/1.1\r\nhost: test\r\n\r\n".repeat(2000);
    let writer = tokio::spawn(async move {
        // The server stops reading once its answers back up: the write may never finish.
        let _ = tokio::time::timeout(WAIT, greedy.write_all(&request)).await;
        greedy
    });
    assert!(free().await, "the greedy connection was let go and its slot freed");
    drop(writer);
}
