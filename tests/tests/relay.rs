//! The STOMP broker relay against the real RabbitMQ of the machine (its STOMP plugin on
//! 61613: `rabbitmq-plugins enable rabbitmq_stomp`): two stompede nodes in one process share
//! topics and queues through it, over WebSocket and SockJS; handlers' replies and user
//! destinations go through it; receipts and errors come from it. Without RabbitMQ's STOMP
//! port each test says so and skips (a failure under `STOMPEDE_REQUIRE_ALL=1`).
//! The broker restart is in `relay_restart.rs`, a binary of its own.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use stompede::broker::StompBrokerRelay;
use stompede::client::{Client, ClientError, ClientOptions, Subscription};
use stompede::events::SessionEvent;
use stompede::{
    Endpoint, Principal, RunningServer, Server, message_mapping, send_to, send_to_user,
};
use stompede_tests::{WAIT, skip, start_relayed, ws_url};
use tokio_tungstenite::tungstenite::Message;

#[message_mapping("/relay/whoami-here")]
#[send_to_user("/queue/reply", broadcast = false)]
fn whoami_here(user: Principal, body: String) -> String {
    format!("{}: {body}", user.name())
}

#[message_mapping("/relay/echo")]
#[send_to("/topic/relay-echo")]
fn echo(body: String) -> String {
    format!("echo: {body}")
}

/// Whether RabbitMQ's STOMP port answers; if not, the test skips (saying why).
async fn rabbitmq(test: &str) -> bool {
    match tokio::net::TcpStream::connect("127.0.0.1:61613").await {
        Ok(_) => true,
        Err(e) => {
            skip(
                test,
                &format!(
                    "RabbitMQ's STOMP port 127.0.0.1:61613 does not answer ({e}): rabbitmq-plugins enable rabbitmq_stomp"
                ),
            );
            false
        }
    }
}

/// A node relaying `/topic`, `/queue` and `/exchange` to RabbitMQ, once its system connection
/// is up.
async fn node() -> RunningServer {
    let relay = StompBrokerRelay::new(["/topic", "/queue", "/exchange"]);
    let builder = Server::builder()
        .endpoint(Endpoint::new("/ws").with_sockjs())
        .authenticator(|connect: stompede::ConnectRequest| async move {
            Ok(connect.login().map(Principal::new))
        })
        .enable_stomp_broker_relay(relay);
    start_relayed(builder).await.0
}

/// A name no other run (or test) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

async fn next(subscription: &mut Subscription) -> String {
    let frame = tokio::time::timeout(WAIT, subscription.next()).await.unwrap().expect("a message");
    frame.body_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_node_gets_what_another_publishes_in_order_once() {
    if !rabbitmq("a_subscriber_on_one_node_gets_what_another_publishes_in_order_once").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    let topic = format!("/topic/{}", unique("relay"));
    let subscriber = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
    let mut messages = subscriber.subscribe(&topic).await.unwrap();
    let publisher = Client::connect_ws(&ws_url(&b), ClientOptions::default()).await.unwrap();
    const COUNT: usize = 500;
    for i in 0..COUNT {
        publisher.send(&topic, format!("{i}")).await.unwrap();
    }
    // The broker answers this receipt once it has every SEND before it.
    publisher.send_with_receipt(&topic, "last").await.unwrap();
    for i in 0..COUNT {
        assert_eq!(next(&mut messages).await, i.to_string(), "in order, none lost");
    }
    assert_eq!(next(&mut messages).await, "last");
    // Nothing twice: the next message is one sent after.
    publisher.send(&topic, "after").await.unwrap();
    assert_eq!(next(&mut messages).await, "after");
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_sessions_are_relayed_too() {
    if !rabbitmq("sockjs_sessions_are_relayed_too").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    let topic = format!("/topic/{}", unique("relay-sockjs"));
    // A SockJS session (its WebSocket transport) on node A.
    let url = format!("ws://{}/ws/000/relay1/websocket", a.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let read = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(text))) if text.starts_with("a[") => {
                return serde_json::from_str::<Vec<String>>(&text[1..]).unwrap();
            }
            Some(Ok(Message::Text(_))) => {}
            other => panic!("SockJS session ended: {other:?}"),
        }
    };
    let send = |frame: &str| Message::text(serde_json::to_string(&[frame]).unwrap());
    ws.send(send("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0")).await.unwrap();
    assert!(read(&mut ws).await[0].starts_with("CONNECTED\n"));
    ws.send(send(&format!("SUBSCRIBE\nid:s\ndestination:{topic}\nreceipt:r\n\n\0"))).await.unwrap();
    assert!(read(&mut ws).await[0].starts_with("RECEIPT\nreceipt-id:r\n"));
    // Published on node B through the messaging template.
    b.template().convert_and_send(&topic, "over SockJS").unwrap();
    let frames = read(&mut ws).await;
    assert!(
        frames[0].starts_with("MESSAGE\n") && frames[0].ends_with("\n\nover SockJS\0"),
        "{frames:?}"
    );
    assert!(frames[0].contains("subscription:s\n"), "the client's own subscription id: {frames:?}");
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

/// Plain topic subscriptions of one node share one broker subscription: each subscriber still
/// gets every message under its own subscription id, in order; one that leaves stops
/// receiving while the others go on; one with an ack mode of its own is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_subscriptions_of_a_node_are_shared() {
    if !rabbitmq("topic_subscriptions_of_a_node_are_shared").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    let topic = format!("/topic/{}", unique("shared"));
    let url = ws_url(&a);
    let connect = || Client::connect_ws(&url, ClientOptions::default());
    let (first, second, own) =
        (connect().await.unwrap(), connect().await.unwrap(), connect().await.unwrap());
    let mut first_sub = first.subscribe(&topic).await.unwrap();
    let mut second_sub = second.subscribe(&topic).await.unwrap();
    let mut own_sub = own.subscribe_with(&topic, &[("ack", "client-individual")]).await.unwrap();
    let publisher = Client::connect_ws(&ws_url(&b), ClientOptions::default()).await.unwrap();
    for i in 0..50 {
        publisher.send(&topic, format!("{i}")).await.unwrap();
    }
    publisher.send_with_receipt(&topic, "end").await.unwrap();
    for sub in [&mut first_sub, &mut second_sub, &mut own_sub] {
        for i in 0..50 {
            let message = tokio::time::timeout(WAIT, sub.next()).await.unwrap().unwrap();
            assert_eq!(message.body_str(), Some(i.to_string().as_str()));
            assert_eq!(message.get("subscription"), Some(sub.id()), "the client's own id");
        }
        assert_eq!(next(sub).await, "end");
    }
    first_sub.unsubscribe().await.unwrap();
    publisher.send_with_receipt(&topic, "after").await.unwrap();
    assert_eq!(next(&mut second_sub).await, "after");
    assert_eq!(next(&mut own_sub).await, "after");
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_reply_on_one_node_reaches_subscribers_on_another() {
    if !rabbitmq("a_handler_reply_on_one_node_reaches_subscribers_on_another").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    let subscriber = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
    let mut echoes = subscriber.subscribe("/topic/relay-echo").await.unwrap();
    let caller = Client::connect_ws(&ws_url(&b), ClientOptions::default()).await.unwrap();
    let body = unique("hello");
    caller.send("/app/relay/echo", body.clone()).await.unwrap();
    // Other runs may echo too: wait for ours.
    tokio::time::timeout(WAIT, async {
        while next(&mut echoes).await != format!("echo: {body}") {}
    })
    .await
    .unwrap();
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_gives_each_message_to_one_consumer() {
    if !rabbitmq("a_queue_gives_each_message_to_one_consumer").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    let queue = format!("/queue/{}", unique("work"));
    let (first, second) = (
        Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap(),
        Client::connect_ws(&ws_url(&b), ClientOptions::default()).await.unwrap(),
    );
    // Deleted with its last consumer: nothing stays in RabbitMQ.
    let headers = [("auto-delete", "true")];
    let mut on_a = first.subscribe_with(&queue, &headers).await.unwrap();
    let mut on_b = second.subscribe_with(&queue, &headers).await.unwrap();
    const COUNT: usize = 100;
    let publisher = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
    // RabbitMQ declares the queue on SEND too: with the same properties.
    let send = |body: String| {
        stompede::stomp::Frame::new(stompede::stomp::Command::Send)
            .header("destination", queue.clone())
            .header("auto-delete", "true")
            .body(body)
    };
    for i in 0..COUNT {
        publisher.send_frame(send(format!("{i}"))).await.unwrap();
    }
    publisher.send_frame_with_receipt(send("end".into())).await.unwrap();
    let mut seen = Vec::new();
    let (mut from_a, mut from_b) = (0, 0);
    tokio::time::timeout(WAIT, async {
        while seen.len() < COUNT + 1 {
            tokio::select! {
                Some(m) = on_a.next() => { seen.push(m.body_str().unwrap().to_owned()); from_a += 1; }
                Some(m) = on_b.next() => { seen.push(m.body_str().unwrap().to_owned()); from_b += 1; }
            }
        }
    })
    .await
    .expect("every message was consumed");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), COUNT + 1, "each message once");
    assert!(from_a > 0 && from_b > 0, "both consumers got some ({from_a} and {from_b})");
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

/// A user's sessions on two nodes both receive what a handler or the template on either node
/// sends to that user; the calling session alone gets a `broadcast = false` reply; nobody
/// else, and nobody can subscribe to the broker keys behind user destinations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_destinations_across_nodes() {
    if !rabbitmq("user_destinations_across_nodes").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    let user = unique("ada");
    let login = || ClientOptions { login: Some(user.clone()), ..ClientOptions::default() };
    let on_a = Client::connect_ws(&ws_url(&a), login()).await.unwrap();
    let on_b = Client::connect_ws(&ws_url(&b), login()).await.unwrap();
    let mut replies_a = on_a.subscribe("/user/queue/reply").await.unwrap();
    let mut replies_b = on_b.subscribe("/user/queue/reply").await.unwrap();
    // The template of node B reaches her session on node A too.
    b.template().convert_and_send_to_user(&user, "/queue/reply", "to every session").unwrap();
    for replies in [&mut replies_a, &mut replies_b] {
        let message = tokio::time::timeout(WAIT, replies.next()).await.unwrap().unwrap();
        assert_eq!(message.body_str(), Some("to every session"));
        assert_eq!(message.destination(), Some("/user/queue/reply"), "what she subscribed to");
    }
    // A handler's reply to the caller's session only.
    on_b.send("/app/relay/whoami-here", "only here").await.unwrap();
    assert_eq!(next(&mut replies_b).await, format!("{user}: only here"));
    // Another user on node A receives none of it; the next message of each is a marker.
    let other = Client::connect_ws(
        &ws_url(&a),
        ClientOptions { login: Some(unique("bob")), ..ClientOptions::default() },
    )
    .await
    .unwrap();
    let mut bob_replies = other.subscribe("/user/queue/reply").await.unwrap();
    a.template().convert_and_send_to_user(&user, "/queue/reply", "marker").unwrap();
    assert_eq!(next(&mut replies_a).await, "marker", "the broadcast=false reply stayed on B");
    assert_eq!(next(&mut replies_b).await, "marker");
    let bob = other.connected_frame().get("user-name").unwrap().to_owned();
    a.template().convert_and_send_to_user(&bob, "/queue/reply", "for bob").unwrap();
    assert_eq!(next(&mut bob_replies).await, "for bob", "bob's first message is his own");
    // The keys behind user destinations cannot be named by clients.
    for key in [
        format!("/exchange/amq.direct/stompede.user.{user}.queue.reply"),
        format!(
            "/exchange/amq.direct/stompede.session.{}.queue.reply",
            on_a.connected_frame().get("session").unwrap()
        ),
    ] {
        let eve = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
        assert!(eve.subscribe(&key).await.is_err(), "subscribing to {key}");
        let reason = tokio::time::timeout(WAIT, eve.closed()).await.unwrap().unwrap_or_default();
        assert!(reason.contains("is reserved for user destinations"), "{reason}");
    }
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

#[test]
fn the_relay_and_the_simple_broker_cannot_both_be_set() {
    let error = Server::builder()
        .enable_stomp_broker_relay(StompBrokerRelay::new(["/topic"]))
        .enable_simple_broker(["/queue"])
        .build()
        .err()
        .unwrap();
    assert!(error.to_string().contains("a server has one broker"), "{error}");
}

/// Heart-beats keep the system connection and a client session's broker connection up while
/// they are idle: over 20 periods of 100 ms, neither is lost (the broker's heart-beats are not
/// frames, and count as life).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_system_connection_stays_up_on_heart_beats() {
    if !rabbitmq("an_idle_system_connection_stays_up_on_heart_beats").await {
        return;
    }
    let relay = StompBrokerRelay::new(["/topic", "/queue"])
        .system_heartbeat_send_interval(Duration::from_millis(100))
        .system_heartbeat_receive_interval(Duration::from_millis(100));
    let (running, mut events) =
        start_relayed(Server::builder().enable_stomp_broker_relay(relay)).await;
    // A client session with a broker subscription of its own (a client ack mode is not
    // shared): its connection to the broker beats too.
    let client = Client::connect_ws(&ws_url(&running), ClientOptions::default()).await.unwrap();
    let topic = format!("/topic/{}", unique("idle"));
    let mut messages =
        client.subscribe_with(&topic, &[("ack", "client-individual")]).await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(SessionEvent::BrokerAvailability { available: false }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(lost.is_err(), "the idle system connection was lost");
    assert!(running.server().broker_available());
    assert!(
        client.close_reason().is_none(),
        "the idle session was closed: {:?}",
        client.close_reason()
    );
    running.template().convert_and_send(&topic, "after the silence").unwrap();
    assert_eq!(next(&mut messages).await, "after the silence");
    running.shutdown(WAIT).await;
}

/// What the review of the relay found, each now a test: a STOMP 1.1 client acknowledges by
/// `message-id`; an anonymous session unsubscribes a user destination; a client SEND to
/// `/user/{name}/...` reaches that user on another node, with the broker's receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_clients_anonymous_sessions_and_user_sends() {
    if !rabbitmq("older_clients_anonymous_sessions_and_user_sends").await {
        return;
    }
    let (a, b) = (node().await, node().await);
    // A 1.1 client with client-individual acknowledgements on a queue.
    let old = Client::connect_ws(
        &ws_url(&a),
        ClientOptions { accept_version: "1.1".into(), ..ClientOptions::default() },
    )
    .await
    .unwrap();
    let queue = format!("/queue/{}", unique("acks"));
    let headers = [("ack", "client-individual"), ("auto-delete", "true")];
    let mut jobs = old.subscribe_with(&queue, &headers).await.unwrap();
    let job = stompede::stomp::Frame::new(stompede::stomp::Command::Send)
        .header("destination", queue.clone())
        .header("auto-delete", "true")
        .body("job");
    old.send_frame_with_receipt(job).await.unwrap();
    let message = tokio::time::timeout(WAIT, jobs.next()).await.unwrap().unwrap();
    let ack = stompede::stomp::Frame::new(stompede::stomp::Command::Ack)
        .header("message-id", message.get("message-id").unwrap().to_owned())
        .header("subscription", jobs.id().to_owned());
    old.send_frame_with_receipt(ack).await.expect("the broker took the 1.1 ACK");
    // An anonymous session's user destination, subscribed and unsubscribed.
    let anonymous = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
    let replies = anonymous.subscribe("/user/queue/reply").await.unwrap();
    replies.unsubscribe().await.expect("the UNSUBSCRIBE was answered");
    let topic = format!("/topic/{}", unique("alive"));
    let mut alive = anonymous.subscribe(&topic).await.unwrap();
    anonymous.send(&topic, "still connected").await.unwrap();
    assert_eq!(next(&mut alive).await, "still connected");
    // A SEND to another user's destination, from a node she is not on.
    let user = unique("grace");
    let grace = Client::connect_ws(
        &ws_url(&b),
        ClientOptions { login: Some(user.clone()), ..ClientOptions::default() },
    )
    .await
    .unwrap();
    let mut inbox = grace.subscribe("/user/queue/inbox").await.unwrap();
    old.send_with_receipt(&format!("/user/{user}/queue/inbox"), "hello grace").await.unwrap();
    let message = tokio::time::timeout(WAIT, inbox.next()).await.unwrap().unwrap();
    assert_eq!(message.body_str(), Some("hello grace"));
    assert_eq!(message.destination(), Some("/user/queue/inbox"));
    a.shutdown(WAIT).await;
    b.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brokers_errors_reach_the_client() {
    if !rabbitmq("the_brokers_errors_reach_the_client").await {
        return;
    }
    let a = node().await;
    let client = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
    let missing = format!("/exchange/{}", unique("no-such-exchange"));
    match client.subscribe(&missing).await {
        Err(ClientError::Server { message, .. }) => {
            assert!(
                message.to_lowercase().contains("not_found") || message.contains("not found"),
                "{message}"
            );
        }
        Err(other) => {
            let reason =
                tokio::time::timeout(WAIT, client.closed()).await.unwrap().unwrap_or_default();
            assert!(reason.to_lowercase().contains("not_found"), "{other} / {reason}");
        }
        Ok(_) => panic!("RabbitMQ has no exchange {missing}"),
    }
    // Other sessions are unaffected.
    let other = Client::connect_ws(&ws_url(&a), ClientOptions::default()).await.unwrap();
    let topic = format!("/topic/{}", unique("still"));
    let mut sub = other.subscribe(&topic).await.unwrap();
    other.send(&topic, "fine").await.unwrap();
    assert_eq!(next(&mut sub).await, "fine");
    let _ = Duration::ZERO;
    a.shutdown(WAIT).await;
}
