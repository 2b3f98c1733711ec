//! The external broker restarted under a relaying node (`rabbitmqctl stop_app`, then
//! `start_app`): its clients get `ERROR broker not available` and are closed, new CONNECTs are
//! refused with that ERROR and the template says the broker is unavailable while it is down;
//! once it is back the system connection has reconnected by itself and new sessions work. A
//! binary of its own: it stops the broker every other relay test uses.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use stompede::broker::StompBrokerRelay;
use stompede::client::{Client, ClientError, ClientOptions};
use stompede::events::SessionEvent;
use stompede::{RunningServer, SendError, Server};
use stompede_tests::{WAIT, skip, ws_url};
use tokio::sync::broadcast;

/// How long RabbitMQ may take to stop or start.
const BROKER: Duration = Duration::from_secs(90);

/// Runs `rabbitmqctl <command>`; `false` if it cannot be run.
fn rabbitmqctl(command: &str) -> bool {
    std::process::Command::new("rabbitmqctl")
        .arg(command)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the broker again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

async fn availability(events: &mut broadcast::Receiver<SessionEvent>, wanted: bool) {
    tokio::time::timeout(BROKER, async {
        loop {
            match events.recv().await {
                Ok(SessionEvent::BrokerAvailability { available }) if available == wanted => return,
                Err(broadcast::error::RecvError::Closed) => panic!("events ended"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("the broker did not become {}", if wanted { "available" } else { "unavailable" })
    });
}

async fn node(events: &mut Option<broadcast::Receiver<SessionEvent>>) -> RunningServer {
    let relay = StompBrokerRelay::new(["/topic", "/queue"])
        .system_heartbeat_send_interval(Duration::from_secs(1))
        .system_heartbeat_receive_interval(Duration::from_secs(1));
    let server = Server::builder()
        .enable_stomp_broker_relay(relay)
        .bind("127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let mut receiver = server.events();
    let running = server.start().await.unwrap();
    if !running.server().broker_available() {
        availability(&mut receiver, true).await;
    }
    *events = Some(receiver);
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_restarts_under_a_relaying_node() {
    const TEST: &str = "the_broker_restarts_under_a_relaying_node";
    if tokio::net::TcpStream::connect("127.0.0.1:61613").await.is_err() {
        skip(
            TEST,
            "RabbitMQ's STOMP port 127.0.0.1:61613 does not answer (rabbitmq-plugins enable rabbitmq_stomp)",
        );
        return;
    }
    if !rabbitmqctl("status") {
        skip(
            TEST,
            "rabbitmqctl cannot control the local RabbitMQ (run as root, or as the rabbitmq user)",
        );
        return;
    }
    let mut events = None;
    let server = node(&mut events).await;
    let mut events = events.unwrap();
    let topic = format!("/topic/restart-{}", std::process::id());
    let before = Client::connect_ws(&ws_url(&server), ClientOptions::default()).await.unwrap();
    let mut messages = before.subscribe(&topic).await.unwrap();
    server.template().convert_and_send(&topic, "before").unwrap();
    let first = tokio::time::timeout(WAIT, messages.next()).await.unwrap().unwrap();
    assert_eq!(first.body_str(), Some("before"));

    let _restart = Restart;
    assert!(rabbitmqctl("stop_app"), "rabbitmqctl stop_app");
    // The client is told, and closed.
    let reason = tokio::time::timeout(BROKER, before.closed()).await.unwrap().unwrap_or_default();
    assert!(reason.contains("broker not available"), "{reason}");
    availability(&mut events, false).await;
    assert!(!server.server().broker_available());
    // While it is down: CONNECT refused at once, the template refuses too.
    match Client::connect_ws(&ws_url(&server), ClientOptions::default()).await {
        Err(ClientError::Server { message, .. }) => assert_eq!(message, "broker not available"),
        Err(other) => panic!("expected the ERROR frame, got {other}"),
        Ok(_) => panic!("a CONNECT was accepted while the broker is down"),
    }
    assert!(matches!(
        server.template().convert_and_send(&topic, "lost"),
        Err(SendError::BrokerUnavailable)
    ));

    assert!(rabbitmqctl("start_app"), "rabbitmqctl start_app");
    // The system connection comes back by itself: no restart of the node.
    availability(&mut events, true).await;
    // The system connection's CONNECTED says RabbitMQ's STOMP listener is up again.
    let after = Client::connect_ws(&ws_url(&server), ClientOptions::default()).await.unwrap();
    let mut messages = after.subscribe(&topic).await.unwrap();
    server.template().convert_and_send(&topic, "after").unwrap();
    let message = tokio::time::timeout(WAIT, messages.next()).await.unwrap().unwrap();
    assert_eq!(message.body_str(), Some("after"), "only what was sent after the restart");
    server.shutdown(WAIT).await;
}
