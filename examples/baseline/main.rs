//! The baseline for benchmarks: the leanest STOMP-over-WebSocket broadcast server we know how
//! to write on the same stack (tokio and tokio-tungstenite), with none of stompede's machinery
//! (no heart-beats, limits, security, escaping or error handling beyond dropping the
//! connection). It stands for what the stack can do: the yardstick `docs/benchmarks.md`
//! measures the broker example against, so the faster the better.
//!
//! ```text
//! cargo run --release --example baseline -- --addr 127.0.0.1:61615
//! ```
//!
//! What makes it lean:
//! - per SEND, the part every subscriber shares (`destination`, `message-id`,
//!   `content-length`, the body) is encoded once; each delivery only puts its subscription's
//!   pre-encoded `MESSAGE\nsubscription:...` line in front, and deliveries with the same line
//!   (every load-generator client subscribes as `sub-0`) share one buffer;
//! - subscriber lists are copy-on-write `Arc<Vec<_>>` snapshots: a publish clones one `Arc`
//!   under a read lock and delivers without any lock held;
//! - per connection, one reader task and one writer task fed by a bounded queue of 1,024
//!   ready WebSocket messages; a full queue makes the publisher's reader wait (so nobody is
//!   dropped and nothing grows without bound); the writer feeds up to 256 messages and
//!   flushes once, with tungstenite's default write buffering.
//!
//! It understands CONNECT/STOMP, SUBSCRIBE, UNSUBSCRIBE, SEND and DISCONNECT, and `receipt`
//! headers, one frame per WebSocket message (as browser clients and the load generator send
//! them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Messages a connection's writer may have waiting.
const QUEUE: usize = 1024;
/// Messages the writer feeds before one flush.
const BATCH: usize = 256;

/// One subscription: its connection, id, pre-encoded head and queue.
struct Sub {
    connection: u64,
    id: String,
    /// `MESSAGE\nsubscription:{id}\n`.
    head: Bytes,
    out: mpsc::Sender<Message>,
}

/// Subscriptions by destination, each list a snapshot replaced on change.
type Subscribers = Arc<RwLock<HashMap<String, Arc<Vec<Arc<Sub>>>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    stompede_examples::init_logging();
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 61615));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, value] = args.as_slice() {
        if flag == "--addr" {
            addr = value.parse().map_err(std::io::Error::other)?;
        }
    }
    let listener = TcpListener::bind(addr).await?;
    println!(
        "baseline broadcast server: ws://{}/ws (pid {})",
        listener.local_addr()?,
        std::process::id()
    );
    let subscribers: Subscribers = Arc::default();
    let message_ids = Arc::new(AtomicU64::new(0));
    let mut next_connection = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        next_connection += 1;
        tokio::spawn(connection(stream, next_connection, subscribers.clone(), message_ids.clone()));
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
}

fn read(
    subscribers: &Subscribers,
) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Vec<Arc<Sub>>>>> {
    subscribers.read().unwrap_or_else(|e| e.into_inner())
}

fn write(
    subscribers: &Subscribers,
) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Vec<Arc<Sub>>>>> {
    subscribers.write().unwrap_or_else(|e| e.into_inner())
}

/// Replaces `destination`'s list with `change` applied to a copy of it.
fn update(subscribers: &Subscribers, destination: &str, change: impl FnOnce(&mut Vec<Arc<Sub>>)) {
    let mut map = write(subscribers);
    let mut list: Vec<Arc<Sub>> =
        map.get(destination).map(|l| l.as_ref().clone()).unwrap_or_default();
    change(&mut list);
    if list.is_empty() {
        map.remove(destination);
    } else {
        map.insert(destination.to_owned(), Arc::new(list));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    connection: u64,
    subscribers: Subscribers,
    message_ids: Arc<AtomicU64>,
) {
    // Answer the STOMP subprotocol a client offers, as every STOMP server must.
    // tungstenite's callback signature fixes the (large) error type.
    #[allow(clippy::result_large_err)]
    let negotiate = |request: &Request, mut response: Response| {
        let offered = request.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        if offered.is_some_and(|p| p.contains("v12.stomp")) {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", "v12.stomp".parse().expect("valid header"));
        }
        Ok(response)
    };
    // tungstenite's default 128 KiB read buffer is allocated up front: 5,000 idle connections
    // would hold 640 MiB. Writes keep its default buffering.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(stream, negotiate, Some(config));
    let Ok(ws) = accepted.await else { return };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            for message in batch.drain(..) {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut mine: Vec<(String, String)> = Vec::new();
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else { continue };
        let frame = text.as_str().trim_start_matches(['\n', '\r']);
        let Some((head, rest)) = frame.split_once("\n\n") else { continue };
        let body = rest.strip_suffix('\0').unwrap_or(rest);
        let command = head.lines().next().unwrap_or("");
        match command {
            "CONNECT" | "STOMP" => {
                let connected = Message::text("CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0");
                if tx.send(connected).await.is_err() {
                    break;
                }
            }
            "SUBSCRIBE" => {
                if let (Some(id), Some(destination)) =
                    (header(head, "id"), header(head, "destination"))
                {
                    let head = Bytes::from(format!("MESSAGE\nsubscription:{id}\n"));
                    let sub =
                        Arc::new(Sub { connection, id: id.to_owned(), head, out: tx.clone() });
                    update(&subscribers, destination, |list| list.push(sub));
                    mine.push((destination.to_owned(), id.to_owned()));
                }
            }
            "UNSUBSCRIBE" => {
                if let Some(id) = header(head, "id") {
                    let (gone, kept): (Vec<_>, Vec<_>) = mine.drain(..).partition(|(_, s)| s == id);
                    mine = kept;
                    for (destination, id) in gone {
                        update(&subscribers, &destination, |list| {
                            list.retain(|s| !(s.connection == connection && s.id == id))
                        });
                    }
                }
            }
            "SEND" => {
                if let Some(destination) = header(head, "destination") {
                    publish(&subscribers, &message_ids, destination, body).await;
                }
            }
            "DISCONNECT" => {
                if let Some(receipt) = header(head, "receipt") {
                    let _ = tx
                        .send(Message::text(format!("RECEIPT\nreceipt-id:{receipt}\n\n\0")))
                        .await;
                }
                break;
            }
            _ => {}
        }
        if command != "DISCONNECT" {
            if let Some(receipt) = header(head, "receipt") {
                if tx
                    .send(Message::text(format!("RECEIPT\nreceipt-id:{receipt}\n\n\0")))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    for (destination, id) in mine {
        update(&subscribers, &destination, |list| {
            list.retain(|s| !(s.connection == connection && s.id == id))
        });
    }
    drop(tx);
    let _ = writer.await;
}

/// Delivers one SEND: the shared part encoded once, one buffer per distinct subscription
/// line, each subscriber's queue waited on when full.
async fn publish(
    subscribers: &Subscribers,
    message_ids: &AtomicU64,
    destination: &str,
    body: &str,
) {
    let Some(list) = read(subscribers).get(destination).cloned() else { return };
    let id = message_ids.fetch_add(1, Ordering::Relaxed);
    // Concatenated by hand: `format!` cost more than the rest of a publish to ten subscribers.
    let (mut id_text, mut length_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let parts = [
        "message-id:",
        id_text.format(id),
        "\ndestination:",
        destination,
        "\ncontent-length:",
        length_text.format(body.len()),
        "\n\n",
        body,
        "\0",
    ];
    let mut shared = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        shared.push_str(part);
    }
    let mut built: Vec<(Bytes, Utf8Bytes)> = Vec::new();
    for sub in list.iter() {
        let whole = match built.iter().find(|(head, _)| *head == sub.head) {
            Some((_, whole)) => whole.clone(),
            None => {
                let mut text = String::with_capacity(sub.head.len() + shared.len());
                text.push_str(std::str::from_utf8(&sub.head).unwrap_or_default());
                text.push_str(&shared);
                let whole = Utf8Bytes::from(text);
                if built.len() < 8 {
                    built.push((sub.head.clone(), whole.clone()));
                }
                whole
            }
        };
        // `try_send` first: it takes no cooperative-scheduling budget, so a publish to many
        // subscribers is not cut into one yield per 128 deliveries (each waking writers that
        // then write one message apiece). A full queue makes this publisher wait:
        // back-pressure, nothing dropped.
        match sub.out.try_send(Message::Text(whole)) {
            Err(mpsc::error::TrySendError::Full(message)) => {
                let _ = sub.out.send(message).await;
            }
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
