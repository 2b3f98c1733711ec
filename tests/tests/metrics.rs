//! The broker example's `/metrics` page (Prometheus text, through the `metrics` facade and
//! `metrics-exporter-prometheus`), scraped after known traffic: each counter says what the test
//! did. And `Server::stats()` agrees. (One test in this binary: the recorder is process-wide.)

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use http::{Method, StatusCode};
use metrics_exporter_prometheus::PrometheusBuilder;
use stompede::Server;
use stompede::client::{Client, ClientOptions};
use stompede::events::SessionEvent;
use stompede_tests::sockjs::fetch;
use stompede_tests::{RawPeer, WAIT, start, ws_url};

#[path = "../../examples/broker/metrics.rs"]
mod broker_metrics;

/// Every sample of the page, by its name with labels as written (`name{label="value"}`).
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_page_counts_what_the_clients_did() {
    let recorder = PrometheusBuilder::new().install_recorder().unwrap();
    let (builder, serving) = broker_metrics::serve(Server::builder(), recorder);
    let server = start(builder).await;
    let _ = serving.set(server.server().clone());
    let mut events = server.events();
    let url = ws_url(&server);

    let subscriber = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    let mut sub = subscriber.subscribe("/topic/metrics").await.unwrap();
    let publisher = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    for i in 0..4 {
        publisher.send("/topic/metrics", format!("m{i}")).await.unwrap();
    }
    publisher.send_with_receipt("/topic/metrics", "m4").await.unwrap();
    for _ in 0..5 {
        tokio::time::timeout(WAIT, sub.next()).await.unwrap().unwrap();
    }
    publisher.disconnect().await.unwrap();
    // A client that breaks the protocol.
    let mut rude = RawPeer::connected(&url).await;
    rude.send_text("BOGUS\n\n\0").await;
    rude.expect_error_then_close().await;
    let mut ended = 0;
    while ended < 2 {
        let event = tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap();
        ended += usize::from(matches!(event, SessionEvent::Disconnected { .. }));
    }

    let (status, headers, page) = fetch(&server, Method::GET, broker_metrics::PATH, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let samples = samples(&page);
    let expect = [
        ("stompede_sessions_opened_total{transport=\"websocket\"}", 3.0),
        ("stompede_sessions_open{transport=\"websocket\"}", 1.0),
        ("stompede_connects_total", 3.0),
        ("stompede_disconnects_total{reason=\"client\"}", 1.0),
        ("stompede_disconnects_total{reason=\"protocol_error\"}", 1.0),
        ("stompede_frames_received_total{command=\"CONNECT\"}", 3.0),
        ("stompede_frames_received_total{command=\"SUBSCRIBE\"}", 1.0),
        ("stompede_frames_received_total{command=\"SEND\"}", 5.0),
        ("stompede_frames_received_total{command=\"DISCONNECT\"}", 1.0),
        ("stompede_frames_sent_total{command=\"MESSAGE\"}", 5.0),
        ("stompede_frames_sent_total{command=\"CONNECTED\"}", 3.0),
        ("stompede_frames_sent_total{command=\"ERROR\"}", 1.0),
        // The SUBSCRIBE's, the last SEND's and the DISCONNECT's.
        ("stompede_frames_sent_total{command=\"RECEIPT\"}", 3.0),
        ("stompede_subscriptions", 1.0),
        ("stompede_destinations", 1.0),
    ];
    for (name, value) in expect {
        assert_eq!(samples.get(name), Some(&value), "{name} in\n{page}");
    }
    let total = |prefix: &str| -> f64 {
        samples.iter().filter(|(name, _)| name.starts_with(prefix)).map(|(_, v)| v).sum()
    };
    let sent = total("stompede_bytes_sent_total{");
    let received = total("stompede_bytes_received_total{");
    assert!(sent > 0.0 && received > 0.0, "{page}");
    let stats = server.stats();
    assert_eq!((stats.bytes_out as f64, stats.bytes_in as f64), (sent, received));
    // Five SEND frames with 2-byte bodies, of about 50 bytes each on the wire.
    let sends = samples["stompede_bytes_received_total{command=\"SEND\"}"];
    assert!((5.0 * 40.0..5.0 * 80.0).contains(&sends), "{sends}");

    assert_eq!((stats.sessions, stats.connects, stats.deliveries), (1, 3, 5));
    assert_eq!(stompede::Stats::count(&stats.frames_in, "SEND"), 5);
    assert_eq!(stompede::Stats::count(&stats.disconnects, "protocol_error"), 1);
    assert!(
        stats.to_string().starts_with("sessions: 1 open (websocket 1), 3 opened, 3 connected"),
        "{stats}"
    );
    drop(sub);
    subscriber.disconnect().await.unwrap();
}
