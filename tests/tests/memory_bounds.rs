//! Memory a client can make the server hold, measured by counting the process's heap
//! allocations (the server runs in this process): a flood of WebSocket pings from a client
//! that never reads, and wildcard subscriptions. The tests of this file take turns, so each
//! measures only its own server.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stompede::events::DisconnectReason;
use stompede::stomp::Command;
use stompede::{Endpoint, RunningServer, Server, SockJsOptions};
use stompede_tests::{RawPeer, WAIT, next_disconnect, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = IN_USE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time in this file: each measures the whole process.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1024 * 1024;

/// Starts measuring: the peak from now on is reported relative to what is in use now.
fn baseline() -> usize {
    let now = IN_USE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Opens a raw WebSocket at `path` (the handshake by hand, so nothing reads afterwards).
async fn raw_websocket(server: &RunningServer, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        server.local_addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(WAIT, stream.read_exact(&mut byte)).await.unwrap().unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// 1 MiB of masked 125-byte pings.
fn pings() -> Vec<u8> {
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend(std::iter::repeat_n(b'p', 125));
    ping.repeat(MIB / ping.len())
}

/// Sends `chunk` over and over and never reads, until the server closes the connection or
/// `most` bytes went out. Returns the bytes the kernel accepted, and whether the server closed.
async fn ping_flood(stream: &mut TcpStream, chunk: &[u8], most: usize) -> (usize, bool) {
    let mut sent = 0;
    while sent < most {
        match tokio::time::timeout(WAIT, stream.write_all(chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => return (sent, true),
            Err(_) => {
                panic!("the server neither read nor closed within {WAIT:?} ({sent} bytes sent)")
            }
        }
    }
    (sent, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_does_not_read_is_bounded_then_closed() {
    let _turn = TURN.lock().await;
    let server = start(
        Server::builder()
            .endpoint(Endpoint::new("/ws").sockjs(SockJsOptions::default()))
            .send_time_limit(Duration::from_millis(500)),
    )
    .await;
    let mut events = server.events();
    let mut bystander = RawPeer::connected(&ws_url(&server)).await;

    // Before CONNECT on the STOMP endpoint, and on SockJS's WebSocket transport.
    let chunk = pings();
    for path in ["/ws", "/ws/000/flood/websocket"] {
        let mut attacker = raw_websocket(&server, path).await;
        let before = baseline();
        // 64 MiB of pings: about 62 MiB of pongs queued before the fix.
        let (sent, closed) = ping_flood(&mut attacker, &chunk, 64 * MIB).await;
        let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        assert!(closed, "{path}: the server read {sent} bytes of pings without closing");
        // One pong, the read-ahead buffer and tungstenite's, with room to spare; the kernel's
        // socket buffers are not heap.
        assert!(grew < MIB / 2, "{path}: the heap grew by {grew} bytes during the flood");
        println!(
            "{path}: {sent} bytes of pings accepted before the close; peak heap growth {grew} bytes"
        );
    }
    // The STOMP session's end says why.
    let reason = next_disconnect(&mut events).await;
    match reason {
        DisconnectReason::SlowConsumer(why) => assert!(why.contains("pings"), "{why}"),
        other => panic!("expected a slow-consumer close, got {other:?}"),
    }

    // Everyone else carries on.
    bystander.send_text("SEND\ndestination:/topic/a\nreceipt:alive\n\n\0").await;
    assert_eq!(bystander.frame().await.command, Command::Receipt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_pattern_holds_memory_in_proportion_to_its_text() {
    let _turn = TURN.lock().await;
    let server = start(Server::builder()).await;
    let mut peer = RawPeer::connected(&ws_url(&server)).await;
    // The reported pattern was `/topic/` + `*a` x 8000 (42x its size in heap: a token per
    // wildcard); the wildcard limit refuses it (hardening.rs). Within the limits, the worst
    // cases are as many short literals as allowed, and long literals (their search tables).
    let patterns: Vec<String> = (0..1000)
        .map(|i| match i % 2 {
            0 => format!("/topic/{}{i}", "*a".repeat(8)),
            _ => format!("/topic/**{}**{i}", "b".repeat(900)),
        })
        .collect();
    let text: usize = patterns.iter().map(String::len).sum();
    let before = baseline();
    for (i, pattern) in patterns.iter().enumerate() {
        peer.send_text(&format!("SUBSCRIBE\nid:{i}\ndestination:{pattern}\n\n\0")).await;
    }
    peer.send_text("SEND\ndestination:/topic/x\nreceipt:done\n\n\0").await;
    assert_eq!(peer.frame().await.command, Command::Receipt);
    let held = IN_USE.load(Ordering::Relaxed).saturating_sub(before);
    let per_subscription = held.saturating_sub(6 * text) / patterns.len();
    println!("{} patterns, {text} bytes of text: {held} bytes held", patterns.len());
    // The text (kept twice: the subscription's destination and the pattern) and four bytes per
    // literal byte for matching, plus a fixed cost per subscription.
    assert!(per_subscription < 2048, "{held} bytes held for {text} bytes of patterns");
}

/// A masked client frame carrying `text` (the mask is all zeros: the payload reads as is).
fn client_text(text: &str) -> Vec<u8> {
    assert!(text.len() <= 125);
    let mut frame = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// Reads from `stream` until `marker` has arrived.
async fn read_until(stream: &mut TcpStream, marker: &[u8]) {
    let mut seen = Vec::new();
    while !seen.windows(marker.len()).any(|window| window == marker) {
        let mut chunk = [0u8; 512];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed before {:?}", String::from_utf8_lossy(marker));
        seen.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_session_holds_a_few_kib() {
    const SESSIONS: usize = 200;
    let _turn = TURN.lock().await;
    let server = start(Server::builder()).await;
    // Raw sockets, framed by hand: the client side holds next to nothing on the heap.
    let mut first = raw_websocket(&server, "/ws").await;
    first.write_all(&client_text("CONNECT\naccept-version:1.2\n\n\0")).await.unwrap();
    read_until(&mut first, b"CONNECTED").await;
    let before = baseline();
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let mut stream = raw_websocket(&server, "/ws").await;
        stream.write_all(&client_text("CONNECT\naccept-version:1.2\n\n\0")).await.unwrap();
        let subscribe =
            format!("SUBSCRIBE\nid:sub-0\ndestination:/topic/{}\nreceipt:r\n\n\0", i % 10);
        stream.write_all(&client_text(&subscribe)).await.unwrap();
        read_until(&mut stream, b"receipt-id:r").await;
        sessions.push(stream);
    }
    let per_session = IN_USE.load(Ordering::Relaxed).saturating_sub(before) / SESSIONS;
    println!("{SESSIONS} idle sessions: {per_session} bytes of heap each");
    // The session's state (about 3 KiB in a release build, more in this unoptimised one), its
    // task, its socket's registration, a small read buffer, its outbox and subscription: 7.2
    // KiB here. The task that upgraded the connection must be gone: a waker of it that
    // tokio-tungstenite kept held 2 KiB more per connection (9.2 KiB here).
    assert!(per_session < 8 * 1024, "{per_session} bytes per idle session");
    drop(sessions);
}
