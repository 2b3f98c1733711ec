//! Exact protocol behaviour over a raw WebSocket: every bad input gets its ERROR frame and the
//! connection closes, while the server and the other sessions carry on.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use stompede::Server;
use stompede::client::{Client, ClientOptions};
use stompede::stomp::Command;
use stompede_tests::{Event, RawPeer, WAIT, start, ws_url};

/// Sends `input` on a fresh session (after CONNECT when `connect`), expects ERROR then close,
/// and checks that a bystander session still works. Returns the ERROR's message and receipt-id.
async fn error_for(input: &str, connect: bool) -> (String, Option<String>) {
    let server = start(Server::builder().message_size_limit(1024)).await;
    let url = ws_url(&server);
    let bystander = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    let mut sub = bystander.subscribe("/topic/alive").await.unwrap();

    let mut peer =
        if connect { RawPeer::connected(&url).await } else { RawPeer::connect(&url).await };
    peer.send_text(input).await;
    let error = peer.expect_error_then_close().await;

    bystander.send_with_receipt("/topic/alive", "still here").await.unwrap();
    let message = tokio::time::timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(message.body_str(), Some("still here"));
    (error.get("message").unwrap().to_owned(), error.get("receipt-id").map(str::to_owned))
}

/// A busy client's messages arrive together and the server takes them in one read: every frame
/// is still handled in order, and a ping among them is answered, as are frames after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_together_are_all_handled_in_order_with_a_ping_among_them() {
    use tokio_tungstenite::tungstenite::Message;
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    let send =
        |n: usize| Message::text(format!("SEND\ndestination:/topic/t\nreceipt:r{n}\n\nm{n}\0"));
    let mut messages = vec![Message::text("SUBSCRIBE\nid:0\ndestination:/topic/t\n\n\0")];
    messages.extend((0..50).map(send));
    messages.push(Message::Ping("are you there".into()));
    messages.extend((50..100).map(send));
    // Split across messages too: a frame's head in one, its body in the next.
    messages.push(Message::text("SEND\ndestination:/topic/t\nreceipt:r100\n\n"));
    messages.push(Message::text("m100\0"));
    peer.send_all(messages).await;
    for n in 0..=100 {
        // Each SEND's MESSAGE and RECEIPT, in the order they were sent.
        let mut seen = [peer.frame().await, peer.frame().await];
        seen.sort_by_key(|frame| frame.command != Command::Message);
        assert_eq!(seen[0].body_str(), Some(format!("m{n}").as_str()), "{seen:?}");
        assert_eq!(seen[1].command, Command::Receipt, "{seen:?}");
        assert_eq!(seen[1].get("receipt-id"), Some(format!("r{n}").as_str()));
    }
    assert_eq!(peer.pongs, ["are you there"], "the ping was answered once");
}

/// The server frames its WebSocket messages itself: every payload length encoding (7-bit,
/// 16-bit, 64-bit) reaches a standard client intact, text and binary, alone or in a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_every_websocket_length_class_arrive_intact() {
    use tokio_tungstenite::tungstenite::Message;
    let server = start(Server::builder().message_size_limit(256 * 1024)).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text("SUBSCRIBE\nid:0\ndestination:/topic/sizes\nreceipt:s\n\n\0").await;
    assert_eq!(peer.frame().await.command, Command::Receipt);
    // Bodies whose MESSAGE frames fall on each side of 125 and 65,535 bytes, and past 64 KiB
    // (the write buffer), some of them not UTF-8 (binary WebSocket messages).
    let sizes = [0usize, 1, 40, 60, 61, 62, 200, 65_400, 65_500, 65_600, 70_000, 200_000];
    let body = |n: usize, size: usize| -> Vec<u8> {
        let fill = if n % 2 == 0 { b'a' + (n % 26) as u8 } else { 0xFF };
        vec![fill; size]
    };
    let sends: Vec<Message> = sizes
        .iter()
        .enumerate()
        .map(|(n, &size)| {
            let mut frame =
                format!("SEND\ndestination:/topic/sizes\ncontent-length:{size}\n\n").into_bytes();
            frame.extend(body(n, size));
            frame.push(0);
            Message::Binary(frame.into())
        })
        .collect();
    peer.send_all(sends).await;
    for (n, &size) in sizes.iter().enumerate() {
        let message = peer.frame().await;
        assert_eq!(message.command, Command::Message, "{n}");
        assert_eq!(message.body.len(), size, "{n}");
        assert_eq!(&message.body[..], &body(n, size)[..], "{n}");
    }
    // One WebSocket message per frame; text exactly when the frame is UTF-8.
    let kinds: Vec<bool> = peer.text_messages[2..].to_vec();
    let expected: Vec<bool> = (0..sizes.len()).map(|n| n % 2 == 0 || sizes[n] == 0).collect();
    assert_eq!(kinds, expected);
}

/// A client that sends DISCONNECT with a receipt and its WebSocket close at once still gets the
/// RECEIPT: the server reads no further than the DISCONNECT before answering it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_close_sent_together_still_get_the_receipt() {
    use tokio_tungstenite::tungstenite::Message;
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_all(vec![
        Message::text("SEND\ndestination:/topic/t\nreceipt:s\n\nhi\0"),
        Message::text("DISCONNECT\nreceipt:bye\n\n\0"),
        Message::Close(None),
    ])
    .await;
    let receipt = peer.frame().await;
    assert_eq!(receipt.get("receipt-id"), Some("s"));
    let receipt = peer.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.get("receipt-id"), Some("bye"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_before_connect() {
    let (message, _) = error_for("SEND\ndestination:/topic/a\n\nx\0", false).await;
    assert_eq!(message, "expected CONNECT or STOMP as the first frame, got SEND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command() {
    let (message, _) = error_for("PUBLISH\ndestination:/topic/a\n\n\0", true).await;
    assert!(message.starts_with("unknown command \"PUBLISH\""), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_destination_names_the_header_and_the_receipt() {
    let (message, receipt) = error_for("SEND\nreceipt:r-7\n\nx\0", true).await;
    assert_eq!(message, "SEND frame has no destination header, which is required");
    assert_eq!(receipt.as_deref(), Some("r-7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_id() {
    let (message, _) = error_for("SUBSCRIBE\ndestination:/topic/a\n\n\0", true).await;
    assert_eq!(message, "SUBSCRIBE frame has no id header, which is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_destination() {
    let (message, _) = error_for("SUBSCRIBE\nid:0\n\n\0", true).await;
    assert_eq!(message, "SUBSCRIBE frame has no destination header, which is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_subscription_id() {
    let input =
        "SUBSCRIBE\nid:s\ndestination:/topic/a\n\n\0SUBSCRIBE\nid:s\ndestination:/topic/b\n\n\0";
    let (message, _) = error_for(input, true).await;
    assert_eq!(message, "subscription id \"s\" is already in use in this session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_an_uncovered_destination() {
    let (message, _) = error_for("SEND\ndestination:/elsewhere/a\n\nx\0", true).await;
    assert_eq!(
        message,
        "destination /elsewhere/a is not covered by any configured prefix (broker: /topic, /queue; application: /app; user: /user)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_an_application_destination_without_handler() {
    let (message, _) = error_for("SEND\ndestination:/app/hello\n\nx\0", true).await;
    assert_eq!(
        message,
        "no application handler is registered for destination /app/hello (no #[message_mapping] matches /hello)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame() {
    let input = format!("SEND\ndestination:/topic/a\n\n{}\0", "x".repeat(2000));
    let (message, _) = error_for(&input, true).await;
    assert!(message.contains("1024-byte limit"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undefined_escape() {
    let (message, _) = error_for("SEND\ndestination:/topic/a\nbad:\\t\n\nx\0", true).await;
    assert!(
        message.starts_with("invalid escape sequence \"\\\\t\" in header \"bad\""),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_frame_from_a_client() {
    let (message, _) = error_for("MESSAGE\ndestination:/topic/a\n\n\0", true).await;
    assert_eq!(message, "MESSAGE is a server frame; a client may not send it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect() {
    let (message, _) = error_for("CONNECT\naccept-version:1.2\n\n\0", true).await;
    assert_eq!(message, "already connected: CONNECT may be sent only once per connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_of_unknown_transaction() {
    let (message, _) = error_for("COMMIT\ntransaction:nope\n\n\0", true).await;
    assert_eq!(message, "COMMIT names transaction \"nope\", which was not begun");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ack_mode() {
    let (message, _) =
        error_for("SUBSCRIBE\nid:0\ndestination:/topic/a\nack:sometimes\n\n\0", true).await;
    assert_eq!(message, "ack mode \"sometimes\" is not auto, client or client-individual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_version_lists_the_supported_ones() {
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connect(&ws_url(&server)).await;
    peer.send_text("CONNECT\naccept-version:2.0\n\n\0").await;
    let error = peer.expect_error_then_close().await;
    assert_eq!(error.get("message"), Some("Supported protocol versions are 1.0, 1.1, 1.2"));
    assert_eq!(error.get("version"), Some("1.2,1.1,1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_frame_negotiates_version_and_heart_beats() {
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connect(&ws_url(&server)).await;
    peer.send_text("STOMP\naccept-version:1.0,1.1\nhost:x\nheart-beat:5000,20000\n\n\0").await;
    let connected = peer.frame().await;
    assert_eq!(connected.command, Command::Connected);
    assert_eq!(connected.get("version"), Some("1.1"));
    assert_eq!(connected.get("heart-beat"), Some("10000,10000"));
    assert!(connected.get("session").is_some_and(|s| !s.is_empty()));
    assert!(connected.get("server").is_some_and(|s| s.starts_with("stompede/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_asking_for_a_receipt_gets_one_and_disconnect_closes_after_it() {
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text(
        "SUBSCRIBE\nid:0\ndestination:/topic/r\nreceipt:1\n\n\0\
         SEND\ndestination:/topic/r\nreceipt:2\n\nhi\0\
         BEGIN\ntransaction:t\nreceipt:3\n\n\0\
         ABORT\ntransaction:t\nreceipt:4\n\n\0\
         ACK\nid:x\nreceipt:5\n\n\0\
         UNSUBSCRIBE\nid:0\nreceipt:6\n\n\0\
         DISCONNECT\nreceipt:7\n\n\0",
    )
    .await;
    let mut seen = Vec::new();
    loop {
        match peer.next().await {
            Event::Frame(f) if f.command == Command::Receipt => {
                seen.push(f.get("receipt-id").unwrap().to_owned())
            }
            Event::Frame(f) if f.command == Command::Message => {
                seen.push(format!("MESSAGE {}", f.body_str().unwrap()))
            }
            Event::Frame(f) => panic!("unexpected {f:?}"),
            Event::Closed => break,
        }
    }
    assert_eq!(seen, ["1", "MESSAGE hi", "2", "3", "4", "5", "6", "7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_may_span_websocket_messages_or_share_one() {
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text("SUBSCRIBE\nid:0\ndestination:/topic/split\nrec").await;
    peer.send_binary(b"eipt:a\n\n\0SEND\ndestination:/topic/split\n\nbin\0SEND\ndestination:/top")
        .await;
    peer.send_text("ic/split\nreceipt:b\n\ntext\0").await;
    let mut bodies = Vec::new();
    while bodies.len() < 4 {
        let f = peer.frame().await;
        bodies.push(match f.command {
            Command::Receipt => f.get("receipt-id").unwrap().to_owned(),
            _ => f.body_str().unwrap().to_owned(),
        });
    }
    assert_eq!(bodies, ["a", "bin", "text", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_travel_as_binary_websocket_messages() {
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    peer.send_text("SUBSCRIBE\nid:0\ndestination:/topic/bin\nreceipt:s\n\n\0").await;
    assert_eq!(peer.frame().await.command, Command::Receipt);
    peer.send_binary(b"SEND\ndestination:/topic/bin\ncontent-length:3\n\n\xff\x00\xfe\0").await;
    peer.send_text("SEND\ndestination:/topic/bin\n\nplain\0").await;
    let binary = peer.frame().await;
    assert_eq!(&binary.body[..], b"\xff\x00\xfe");
    let text = peer.frame().await;
    assert_eq!(text.body_str(), Some("plain"));
    let kinds = &peer.text_messages[peer.text_messages.len() - 2..];
    assert_eq!(kinds, [false, true], "binary body as a binary message, text as text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sends_heart_beats_at_the_negotiated_rate() {
    let server =
        start(Server::builder().heartbeat(Duration::from_millis(50), Duration::ZERO)).await;
    let mut peer = RawPeer::connect(&ws_url(&server)).await;
    peer.send_text("CONNECT\naccept-version:1.2\nheart-beat:0,50\n\n\0").await;
    assert_eq!(peer.frame().await.get("heart-beat"), Some("50,0"));
    let started = tokio::time::Instant::now();
    peer.wait_heart_beats(3).await;
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "beats come at the interval, not at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_heart_beat_interval_and_grace() {
    let server =
        start(Server::builder().heartbeat(Duration::ZERO, Duration::from_millis(100))).await;
    let mut peer = RawPeer::connect(&ws_url(&server)).await;
    peer.send_text("CONNECT\naccept-version:1.2\nheart-beat:100,0\n\n\0").await;
    assert_eq!(peer.frame().await.get("heart-beat"), Some("0,100"));
    let started = tokio::time::Instant::now();
    let error = peer.expect_error_then_close().await;
    assert!(
        error.get("message").unwrap().starts_with("no frame or heart-beat from the client for")
    );
    assert!(started.elapsed() >= Duration::from_millis(1000), "grace is at least a second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_beating_stays_connected() {
    let server =
        start(Server::builder().heartbeat(Duration::ZERO, Duration::from_millis(100))).await;
    let mut peer = RawPeer::connect(&ws_url(&server)).await;
    peer.send_text("CONNECT\naccept-version:1.2\nheart-beat:100,0\n\n\0").await;
    assert_eq!(peer.frame().await.command, Command::Connected);
    // Beat for three times the allowance, then prove the session still answers.
    for _ in 0..35 {
        peer.send_text("\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peer.send_text("BEGIN\ntransaction:t\nreceipt:alive\n\n\0").await;
    assert_eq!(peer.frame().await.get("receipt-id"), Some("alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connect_within_the_time_to_first_message() {
    let server = start(Server::builder().time_to_first_message(Duration::from_millis(200))).await;
    let mut peer = RawPeer::connect(&ws_url(&server)).await;
    let error = peer.expect_error_then_close().await;
    assert_eq!(
        error.get("message"),
        Some("no CONNECT frame within 200ms of opening the connection")
    );
}
