//! Publish/subscribe through a real server over real WebSockets, with the Rust client.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use stompede::Server;
use stompede::client::{Client, ClientOptions};
use stompede::events::{DisconnectReason, SessionEvent};
use stompede::stomp::{Command, Frame, Headers};
use stompede_tests::{WAIT, next_disconnect, start, ws_url};

async fn client(url: &str) -> Client {
    Client::connect_ws(url, ClientOptions::default()).await.expect("client connects")
}

async fn next(sub: &mut stompede::client::Subscription) -> Frame {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("message in time")
        .expect("subscription open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_reaches_subscriber_with_all_headers() {
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let (subscriber, publisher) = (client(&url).await, client(&url).await);
    let mut sub = subscriber.subscribe("/topic/greetings").await.unwrap();
    let send = Frame::new(Command::Send)
        .header("destination", "/topic/greetings")
        .header("content-type", "text/plain")
        .header("x-trace", "abc:123")
        .body("Hello, Ada!");
    publisher.send_frame_with_receipt(send).await.unwrap();
    let message = next(&mut sub).await;
    assert_eq!(message.command, Command::Message);
    assert_eq!(message.get("destination"), Some("/topic/greetings"));
    assert_eq!(message.get("subscription"), Some(sub.id()));
    assert!(message.get("message-id").is_some_and(|id| !id.is_empty()));
    assert_eq!(message.get("content-type"), Some("text/plain"));
    assert_eq!(message.get("content-length"), Some("11"));
    assert_eq!(message.get("x-trace"), Some("abc:123"), "custom headers travel, escaped");
    assert_eq!(message.get("receipt"), None, "per-SEND headers stay behind");
    assert_eq!(message.body_str(), Some("Hello, Ada!"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_and_a_subscriber_see_the_same_message_ids_in_the_same_place() {
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let (tx, rx) = std::sync::mpsc::channel();
    let _listener = server
        .server()
        .listen("/topic/ids", move |message| {
            let names: Vec<String> =
                message.headers().entries().iter().map(|(n, _)| n.to_string()).collect();
            let id = message.headers().get("message-id").map(str::to_owned);
            let _ = tx.send((names, id));
        })
        .unwrap();
    let (subscriber, publisher) = (client(&url).await, client(&url).await);
    let mut sub = subscriber.subscribe("/topic/ids").await.unwrap();
    let mut ids = Vec::new();
    for body in ["one", "two"] {
        let send = Frame::new(Command::Send)
            .header("destination", "/topic/ids")
            .header("x-kept", "yes")
            .body(body);
        publisher.send_frame_with_receipt(send).await.unwrap();
        let message = next(&mut sub).await;
        let (names, listened) = rx.recv_timeout(WAIT).expect("the listener was called");
        // Where the broker has always put them: destination, message-id, then the rest.
        assert_eq!(names, ["destination", "message-id", "x-kept"]);
        assert_eq!(message.get("message-id"), listened.as_deref(), "one id for both");
        let names: Vec<&str> = message.headers.entries().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["subscription", "destination", "message-id", "x-kept", "content-length"]
        );
        ids.push(listened.unwrap().parse::<u64>().expect("a number"));
    }
    assert!(ids[1] > ids[0], "ids count up: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_topic_prefixes_both_fan_out() {
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let (a, b, publisher) = (client(&url).await, client(&url).await, client(&url).await);
    let mut sub_a = a.subscribe("/queue/jobs").await.unwrap();
    let mut sub_b = b.subscribe("/queue/jobs").await.unwrap();
    publisher.send_with_receipt("/queue/jobs", "job-1").await.unwrap();
    assert_eq!(next(&mut sub_a).await.body_str(), Some("job-1"));
    assert_eq!(next(&mut sub_b).await.body_str(), Some("job-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_match_by_segment() {
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut one_level = c.subscribe("/topic/chat/*").await.unwrap();
    let mut any_depth = c.subscribe("/topic/**").await.unwrap();
    let mut dotted = c.subscribe("/topic/stocks.*").await.unwrap();
    for destination in ["/topic/chat/rust", "/topic/chat/rust/beginners", "/topic/stocks.AAPL"] {
        c.send_with_receipt(destination, destination.to_owned()).await.unwrap();
    }
    assert_eq!(next(&mut one_level).await.body_str(), Some("/topic/chat/rust"));
    assert_eq!(next(&mut dotted).await.body_str(), Some("/topic/stocks.AAPL"));
    let all: Vec<String> = [(); 3].iter().map(|_| String::new()).collect();
    let mut seen = all;
    for slot in &mut seen {
        *slot = next(&mut any_depth).await.body_str().unwrap().to_owned();
    }
    assert_eq!(seen, ["/topic/chat/rust", "/topic/chat/rust/beginners", "/topic/stocks.AAPL"]);
    // Nothing else arrived on the narrow subscriptions: a marker sent last is the next message.
    c.send_with_receipt("/topic/chat/end", "end").await.unwrap();
    assert_eq!(next(&mut one_level).await.body_str(), Some("end"));
    c.send_with_receipt("/topic/stocks.end", "end").await.unwrap();
    assert_eq!(next(&mut dotted).await.body_str(), Some("end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscriptions_of_one_session_each_get_the_message_once() {
    let server = start(Server::builder()).await;
    let c = client(&ws_url(&server)).await;
    let mut exact = c.subscribe("/topic/a").await.unwrap();
    let mut wildcard = c.subscribe("/topic/*").await.unwrap();
    c.send_with_receipt("/topic/a", "1").await.unwrap();
    c.send_with_receipt("/topic/a", "2").await.unwrap();
    for sub in [&mut exact, &mut wildcard] {
        assert_eq!(next(sub).await.body_str(), Some("1"));
        assert_eq!(next(sub).await.body_str(), Some("2"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let server = start(Server::builder()).await;
    let c = client(&ws_url(&server)).await;
    let gone = c.subscribe("/topic/x").await.unwrap();
    let mut stays = c.subscribe("/topic/x").await.unwrap();
    gone.unsubscribe().await.unwrap();
    c.send_with_receipt("/topic/x", "after").await.unwrap();
    assert_eq!(next(&mut stays).await.body_str(), Some("after"));
    assert_eq!(server.server().broker().subscription_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messaging_template_publishes_from_anywhere() {
    let server = start(Server::builder()).await;
    let c = client(&ws_url(&server)).await;
    let mut sub = c.subscribe("/topic/ticks").await.unwrap();
    let template = server.template();
    let delivered =
        tokio::spawn(async move { template.convert_and_send("/topic/ticks", "tick-1") })
            .await
            .unwrap()
            .unwrap();
    assert_eq!(delivered, 1);
    let message = next(&mut sub).await;
    assert_eq!(message.body_str(), Some("tick-1"));
    assert_eq!(message.get("content-type"), Some("text/plain;charset=UTF-8"));
    let refused = server.template().send("/app/x", Headers::new(), "x".into()).unwrap_err();
    assert!(refused.to_string().contains("not under a broker prefix (/topic, /queue)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_deliver_on_commit_and_drop_on_abort() {
    let server = start(Server::builder()).await;
    let c = client(&ws_url(&server)).await;
    let mut sub = c.subscribe("/topic/tx").await.unwrap();
    let frame = |cmd, tx: &str| Frame::new(cmd).header("transaction", tx.to_owned());
    c.send_frame_with_receipt(frame(Command::Begin, "t1")).await.unwrap();
    c.send_frame_with_receipt(frame(Command::Begin, "t2")).await.unwrap();
    let in_tx = |tx: &str, body: &str| {
        Frame::new(Command::Send)
            .header("destination", "/topic/tx")
            .header("transaction", tx.to_owned())
            .body(body.to_owned())
    };
    c.send_frame_with_receipt(in_tx("t1", "committed")).await.unwrap();
    c.send_frame_with_receipt(in_tx("t2", "aborted")).await.unwrap();
    c.send_with_receipt("/topic/tx", "outside").await.unwrap();
    assert_eq!(next(&mut sub).await.body_str(), Some("outside"), "transactional SENDs wait");
    c.send_frame_with_receipt(frame(Command::Abort, "t2")).await.unwrap();
    c.send_frame_with_receipt(frame(Command::Commit, "t1")).await.unwrap();
    assert_eq!(next(&mut sub).await.body_str(), Some("committed"));
    c.send_with_receipt("/topic/tx", "last").await.unwrap();
    assert_eq!(next(&mut sub).await.body_str(), Some("last"), "the aborted SEND never arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_tell_who_is_online() {
    let server = start(Server::builder()).await;
    let mut events = server.events();
    let c = Client::connect_ws(
        &ws_url(&server),
        ClientOptions { login: Some("ada".into()), ..ClientOptions::default() },
    )
    .await
    .unwrap();
    let sub = c.subscribe("/topic/room").await.unwrap();
    sub.unsubscribe().await.unwrap();
    c.disconnect().await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap());
    }
    assert!(matches!(&seen[0], SessionEvent::Connected { login: Some(l), .. } if l == "ada"));
    assert!(
        matches!(&seen[1], SessionEvent::Subscribed { destination, .. } if destination == "/topic/room")
    );
    assert!(
        matches!(&seen[2], SessionEvent::Unsubscribed { destination, .. } if destination == "/topic/room")
    );
    assert!(matches!(
        &seen[3],
        SessionEvent::Disconnected { reason: DisconnectReason::ClientDisconnected, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_every_session_an_error_and_finishes() {
    let server = start(Server::builder()).await;
    let c = client(&ws_url(&server)).await;
    let addr = server.local_addr();
    assert!(server.shutdown(Duration::from_secs(5)).await, "sessions drained within the deadline");
    let reason = tokio::time::timeout(WAIT, c.closed()).await.unwrap().unwrap();
    assert!(reason.contains("server is shutting down"), "{reason}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_over_plain_tcp_shares_the_broker_with_websocket() {
    let server = start(Server::builder().tcp("127.0.0.1:0".parse().unwrap())).await;
    let tcp =
        Client::connect_tcp(server.tcp_addr().unwrap(), ClientOptions::default()).await.unwrap();
    let ws = client(&ws_url(&server)).await;
    let mut sub = tcp.subscribe("/topic/mixed").await.unwrap();
    ws.send_with_receipt("/topic/mixed", "from websocket").await.unwrap();
    assert_eq!(next(&mut sub).await.body_str(), Some("from websocket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_connections_each_receive_every_message_in_order() {
    const CONNECTIONS: usize = 1000;
    const MESSAGES: usize = 50;
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let mut subscriptions = Vec::with_capacity(CONNECTIONS);
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for chunk in 0..CONNECTIONS / 100 {
        let opened = futures_util::future::join_all((0..100).map(|_| async {
            let c = client(&url).await;
            let s = c.subscribe("/topic/load").await.unwrap();
            (c, s)
        }))
        .await;
        for (c, s) in opened {
            clients.push(c);
            subscriptions.push(s);
        }
        assert_eq!(clients.len(), (chunk + 1) * 100);
    }
    let publisher = client(&url).await;
    for i in 0..MESSAGES {
        publisher.send("/topic/load", i.to_string()).await.unwrap();
    }
    publisher.send_with_receipt("/topic/load", "end").await.unwrap();
    let checks = subscriptions.into_iter().map(|mut sub| {
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                let message = next(&mut sub).await;
                assert_eq!(message.body_str(), Some(i.to_string().as_str()), "in order, none lost");
            }
            assert_eq!(next(&mut sub).await.body_str(), Some("end"), "no duplicates");
        })
    });
    for check in futures_util::future::join_all(checks).await {
        check.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_under_a_firehose_can_still_unsubscribe() {
    let server = start(Server::builder()).await;
    let url = ws_url(&server);
    let c = client(&url).await;
    let mut sub = c.subscribe("/topic/firehose").await.unwrap();
    let template = server.template();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pump = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..64 {
                    template.convert_and_send("/topic/firehose", "x").unwrap();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Keep reading so the session is not a slow consumer, and unsubscribe mid-stream.
    let reader = tokio::spawn(async move { while sub.next().await.is_some() {} });
    let unsubscribe = Frame::new(Command::Unsubscribe).header("id", "sub-0");
    tokio::time::timeout(WAIT, c.send_frame_with_receipt(unsubscribe)).await.unwrap().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pump.await.unwrap();
    assert_eq!(server.server().broker().subscription_count(), 0);
    c.disconnect().await.unwrap();
    tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
}

/// An accepted connection that counts the writes made to it that moved bytes.
struct CountingWrites {
    inner: tokio::net::TcpStream,
    writes: Arc<AtomicUsize>,
}

impl CountingWrites {
    fn count(&self, written: &Poll<std::io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl tokio::io::AsyncRead for CountingWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `server`'s endpoint (through hyper) to one connection, counting the writes made
/// to its socket: the WebSocket URL, and the count.
async fn serve_one_counting_writes(server: &Server) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let (service, counted) = (server.service(), writes.clone());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let io = TokioIo::new(CountingWrites { inner: stream, writes: counted });
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let _ = connection.with_upgrades().await;
    });
    (format!("ws://{addr}/ws"), writes)
}

/// Messages queued for a session that is being fed a stream, before the runtime next polls
/// for I/O, go out in one write: the last one here is published after the session ran with
/// the first two queued (and would have written them alone then) but before the runtime
/// looked for I/O again. A single message is written at once. One thread, so the order of
/// the tasks is the runtime's, not chance's.
#[tokio::test(flavor = "current_thread")]
async fn messages_queued_in_one_turn_of_the_runtime_go_out_in_one_write() {
    let server = Server::builder().build().unwrap();
    let (url, writes) = serve_one_counting_writes(&server).await;
    let subscriber = client(&url).await;
    let mut sub = subscriber.subscribe("/topic/batched").await.unwrap();
    // The RECEIPT has arrived: every write so far is done.
    let writes_since = |before: usize| writes.load(Ordering::SeqCst) - before;

    // With one message first, it goes at once, alone; with two, the third joins them.
    for first in [&["one"][..], &["two", "three"]] {
        let before = writes.load(Ordering::SeqCst);
        let template = server.template();
        let publisher = tokio::spawn(async move {
            for body in first {
                assert_eq!(template.convert_and_send("/topic/batched", *body).unwrap(), 1);
            }
            // A task spawned now runs after the subscriber's session, which the first message
            // woke: the next one is published once that session has run with them queued.
            tokio::spawn(async {}).await.unwrap();
            assert_eq!(template.convert_and_send("/topic/batched", "last").unwrap(), 1);
        });
        for body in first.iter().chain(&["last"]) {
            assert_eq!(next(&mut sub).await.body_str(), Some(*body));
        }
        publisher.await.unwrap();
        let expected = if first.len() == 1 { 2 } else { 1 };
        assert_eq!(writes_since(before), expected, "writes after {first:?} then one more");
    }

    // A burst of several batches, queued before the session runs, arrives whole and in order.
    let template = server.template();
    for n in 0..300 {
        template.convert_and_send("/topic/batched", n.to_string()).unwrap();
    }
    for n in 0..300 {
        assert_eq!(next(&mut sub).await.body_str(), Some(n.to_string().as_str()));
    }
}

/// A session closed as a slow consumer while it waited to fill a write (a publisher's push
/// found its queue at twice the limit) writes nothing more of what it had taken, and ends as
/// a slow consumer with the reason the push gave. One thread, as above.
#[tokio::test(flavor = "current_thread")]
async fn a_session_closed_while_it_waits_to_fill_a_write_writes_nothing_more() {
    let server = Server::builder().send_buffer_size_limit(1024).build().unwrap();
    let mut events = server.events();
    let (url, _writes) = serve_one_counting_writes(&server).await;
    let subscriber = client(&url).await;
    let mut sub = subscriber.subscribe("/topic/closing").await.unwrap();
    let template = server.template();
    let publisher = tokio::spawn(async move {
        for body in ["a", "b"] {
            assert_eq!(template.convert_and_send("/topic/closing", body).unwrap(), 1);
        }
        // The session has taken both and waits (see above); this one finds the queue, which
        // still counts them, at more than twice its limit: the session is closed.
        tokio::spawn(async {}).await.unwrap();
        template.convert_and_send("/topic/closing", "x".repeat(4096)).unwrap();
    });
    publisher.await.unwrap();
    let reason = next_disconnect(&mut events).await;
    let DisconnectReason::SlowConsumer(why) = reason else { panic!("{reason:?}") };
    assert!(why.contains("twice the 1024-byte send buffer limit"), "{why}");
    assert_eq!(tokio::time::timeout(WAIT, sub.next()).await.unwrap(), None, "no MESSAGE written");
}
