//! What happens to a subscriber that cannot keep up, under each slow-consumer policy: each
//! test floods a deliberately slow reader (a raw TCP connection that reads a little at a
//! time, its slowness being the behaviour under test).

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::BytesMut;
use stompede::broker::SlowConsumerPolicy;
use stompede::client::{Client, ClientOptions};
use stompede::events::{DisconnectReason, SessionEvent};
use stompede::stomp::{Command, Decoder, Frame, Headers, Limits};
use stompede::{RunningServer, Server};
use stompede_tests::{WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const LIMIT: usize = 32 * 1024;
const FLOOD: usize = 20_000;

fn server(policy: SlowConsumerPolicy, send_time_limit: Duration) -> stompede::ServerBuilder {
    Server::builder()
        .tcp("127.0.0.1:0".parse().unwrap())
        .send_buffer_size_limit(LIMIT)
        .send_time_limit(send_time_limit)
        .slow_consumer_policy_for("/topic/flood", policy)
}

/// A subscriber on raw TCP: subscribes to `/topic/flood`, then hands every frame it reads to
/// the returned channel, reading at most 16 KiB each `pause` (none: as fast as it can), until
/// the connection ends. It can be told to send a frame.
async fn slow_reader(
    server: &RunningServer,
    pause: Duration,
) -> (mpsc::UnboundedReceiver<Frame>, mpsc::UnboundedSender<Vec<u8>>) {
    let mut stream = TcpStream::connect(server.tcp_addr().unwrap()).await.unwrap();
    stream
        .write_all(b"CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/flood\nreceipt:ok\n\n\0")
        .await
        .unwrap();
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    let (outgoing, mut to_send) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut decoder = Decoder::new(Limits::UNLIMITED);
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                Some(bytes) = to_send.recv() => stream.write_all(&bytes).await.unwrap(),
                read = stream.read(&mut chunk) => {
                    let n: usize = read.unwrap_or_default();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                        if frames_tx.send(frame).is_err() {
                            return;
                        }
                    }
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
    });
    for expected in [Command::Connected, Command::Receipt] {
        let frame = tokio::time::timeout(WAIT, frames.recv()).await.unwrap().unwrap();
        assert_eq!(frame.command, expected, "{frame:?}");
    }
    (frames, outgoing)
}

/// A publisher on its own connection sending `FLOOD` numbered 1 KiB messages as fast as it
/// can, then a SEND with a receipt: returns whether that receipt came.
fn publish_flood(server: &RunningServer) -> tokio::task::JoinHandle<bool> {
    let url = ws_url(server);
    tokio::spawn(async move {
        let publisher = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
        let padding = "p".repeat(1016);
        for i in 0..FLOOD {
            if publisher.send("/topic/flood", format!("{i:08}{padding}")).await.is_err() {
                return false;
            }
        }
        let sent = publisher.send_with_receipt("/topic/other", "done").await.is_ok();
        sent && publisher.disconnect().await.is_ok()
    })
}

fn number(frame: &Frame) -> usize {
    frame.body_str().unwrap()[..8].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_tells_the_slow_consumer_why_before_closing_it() {
    let server = start(server(SlowConsumerPolicy::Disconnect, Duration::from_secs(2))).await;
    let mut events = server.events();
    let (mut frames, _send) = slow_reader(&server, Duration::from_millis(2)).await;
    let publisher = publish_flood(&server);
    let mut last = None;
    let mut messages = 0;
    while let Some(frame) = tokio::time::timeout(WAIT * 3, frames.recv()).await.unwrap() {
        if frame.command == Command::Message {
            messages += 1;
        }
        last = Some(frame);
    }
    let last = last.unwrap();
    assert_eq!(last.command, Command::Error, "the last frame explains the close");
    let message = last.get("message").unwrap();
    assert!(
        message.contains("slow consumer") && message.contains("send buffer limit"),
        "{message}"
    );
    assert!(messages < FLOOD, "it was closed before the flood ended");
    let reason = loop {
        if let SessionEvent::Disconnected { reason, .. } = events.recv().await.unwrap() {
            break reason;
        }
    };
    assert!(matches!(reason, DisconnectReason::SlowConsumer(_)), "{reason:?}");
    assert!(
        tokio::time::timeout(WAIT * 3, publisher).await.unwrap().unwrap(),
        "the publisher went on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_slows_the_publisher_and_loses_nothing() {
    let server = start(server(SlowConsumerPolicy::Backpressure, Duration::from_secs(20))).await;
    let mut events = server.events();
    let (mut frames, _send) = slow_reader(&server, Duration::from_millis(2)).await;
    let publisher = publish_flood(&server);
    for expected in 0..FLOOD {
        let frame = tokio::time::timeout(WAIT, frames.recv()).await.unwrap();
        let frame = frame.unwrap_or_else(|| panic!("closed after {expected} messages"));
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        assert_eq!(number(&frame), expected, "in order, none lost");
    }
    assert!(
        tokio::time::timeout(WAIT, publisher).await.unwrap().unwrap(),
        "the publisher finished"
    );
    while let Ok(event) = events.try_recv() {
        if let SessionEvent::Disconnected { reason: DisconnectReason::SlowConsumer(why), .. } =
            event
        {
            panic!("a session was closed as a slow consumer: {why}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_waits_a_bounded_time_then_closes_the_subscriber_that_never_reads() {
    let server = start(server(SlowConsumerPolicy::Backpressure, Duration::from_millis(500))).await;
    let mut events = server.events();
    // Subscribed, and never reads again.
    let mut stuck = TcpStream::connect(server.tcp_addr().unwrap()).await.unwrap();
    stuck
        .write_all(b"CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/flood\nreceipt:ok\n\n\0")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("receipt-id:ok") {
        let mut chunk = [0u8; 512];
        let n = tokio::time::timeout(WAIT, stuck.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the receipt");
        seen.extend_from_slice(&chunk[..n]);
    }
    let publisher = publish_flood(&server);
    // The publisher waits for the stuck one, up to the send time limit; then the stuck one
    // is closed (its ERROR may take a moment to give up on: it does not read).
    let reason = loop {
        let event = tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap();
        if let SessionEvent::Disconnected {
            reason: reason @ DisconnectReason::SlowConsumer(_),
            ..
        } = event
        {
            break reason;
        }
    };
    // Closed by whichever rule saw it first: publishers waited the send time limit for room
    // (backpressure), or a write to it did not complete within it.
    assert!(
        matches!(&reason, DisconnectReason::SlowConsumer(why) if why.contains("backpressure") || why.contains("write did not complete")),
        "{reason:?}"
    );
    assert!(
        tokio::time::timeout(WAIT * 3, publisher).await.unwrap().unwrap(),
        "the publisher went on"
    );
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_newest_and_counts_what_was_missed() {
    let server = start(server(SlowConsumerPolicy::DropOldest, Duration::from_secs(2))).await;
    let mut events = server.events();
    let (mut frames, send) = slow_reader(&server, Duration::from_millis(2)).await;
    let template = server.template();
    let padding = "p".repeat(1016);
    for i in 0..FLOOD {
        template.send("/topic/flood", Headers::new(), format!("{i:08}{padding}").into()).unwrap();
    }
    // Markers after the flood until one arrives (the queue may drop some of them too); then,
    // the reader having caught up, one last marker whose push drops nothing: by then every
    // message sent before it was delivered or reported missed.
    let (mut received, mut missed, mut previous) = (0usize, 0usize, None);
    let mut sent = FLOOD;
    let mut caught_up = false;
    loop {
        let last = sent;
        template.send("/topic/flood", Headers::new(), format!("{last:08}end").into()).unwrap();
        sent += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut arrived = false;
        while let Ok(frame) = tokio::time::timeout_at(deadline, frames.recv()).await {
            let frame = frame.expect("the lossy subscriber is never closed");
            assert_eq!(frame.command, Command::Message, "{frame:?}");
            let n = number(&frame);
            assert!(previous < Some(n), "newer than the previous one: {n} after {previous:?}");
            previous = Some(n);
            missed += frame.get("missed-messages").map_or(0, |m| m.parse().unwrap());
            received += 1;
            if n == last {
                arrived = true;
                break;
            }
        }
        if arrived && caught_up {
            break;
        }
        caught_up |= arrived;
        assert!(sent < FLOOD + 100, "no marker arrived");
    }
    assert!(missed > 0, "the flood outran the reader: some were dropped");
    assert!(received > 0);
    // The last marker itself is not counted: it was sent after the rest.
    assert_eq!(received - 1 + missed, sent - 1, "delivered + missed = sent before the last marker");
    // Still connected: it answers a receipt.
    send.send(b"SEND\ndestination:/topic/x\nreceipt:alive\n\n\0".to_vec()).unwrap();
    let receipt = loop {
        let frame = tokio::time::timeout(WAIT, frames.recv()).await.unwrap().unwrap();
        if frame.command != Command::Message {
            break frame;
        }
    };
    assert_eq!(receipt.get("receipt-id"), Some("alive"));
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, SessionEvent::Disconnected { .. }), "{event:?}");
    }
}
