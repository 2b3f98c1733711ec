//! A consumer that stops reading is closed, and nobody else notices.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use stompede::Server;
use stompede::client::{Client, ClientOptions};
use stompede::events::{DisconnectReason, SessionEvent};
use stompede_tests::{WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_without_slowing_others() {
    let server = start(
        Server::builder()
            .tcp("127.0.0.1:0".parse().unwrap())
            .send_buffer_size_limit(64 * 1024)
            .send_time_limit(Duration::from_millis(500)),
    )
    .await;
    let mut events = server.events();

    // The slow consumer: subscribes over raw TCP, then never reads again.
    let mut slow = tokio::net::TcpStream::connect(server.tcp_addr().unwrap()).await.unwrap();
    slow.write_all(b"CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/firehose\nreceipt:ok\n\n\0")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("receipt-id:ok") {
        let mut chunk = [0u8; 512];
        let n = tokio::time::timeout(WAIT, slow.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the receipt");
        seen.extend_from_slice(&chunk[..n]);
    }

    // A healthy subscriber reports its progress; the publisher stays at most 16 messages ahead
    // of it, so only the slow consumer can fall behind.
    let url = ws_url(&server);
    let healthy = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    let mut sub = healthy.subscribe("/topic/firehose").await.unwrap();
    let (progress_tx, mut progress) = watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut expected = 0usize;
        while let Some(message) = sub.next().await {
            let n: usize = message.body_str().unwrap()[..8].parse().unwrap();
            assert_eq!(n, expected, "in order, nothing lost or repeated");
            expected += 1;
            let _ = progress_tx.send(expected);
        }
        expected
    });

    let publisher = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    let padding = "p".repeat(1016);
    let mut sent = 0usize;
    let closed_reason = loop {
        if let Ok(SessionEvent::Disconnected { reason, .. }) = events.try_recv() {
            break reason;
        }
        assert!(sent < 200_000, "the slow consumer was never closed");
        publisher.send("/topic/firehose", format!("{sent:08}{padding}")).await.unwrap();
        sent += 1;
        if sent % 8 == 0 {
            tokio::time::timeout(WAIT, progress.wait_for(|&got| got + 8 >= sent))
                .await
                .unwrap()
                .unwrap();
        }
    };
    assert!(
        matches!(closed_reason, DisconnectReason::SlowConsumer(ref why) if why.contains("slow consumer")),
        "{closed_reason:?}"
    );

    // The healthy subscriber got every message, and the server still serves everyone.
    tokio::time::timeout(WAIT, progress.wait_for(|&got| got == sent)).await.unwrap().unwrap();
    publisher.send_with_receipt("/topic/firehose", format!("{sent:08}")).await.unwrap();
    tokio::time::timeout(WAIT, progress.wait_for(|&got| got == sent + 1)).await.unwrap().unwrap();
    assert_eq!(server.server().broker().subscription_count(), 1, "the slow subscription is gone");
    healthy.disconnect().await.unwrap();
    assert_eq!(tokio::time::timeout(WAIT, reader).await.unwrap().unwrap(), sent + 1);
}
