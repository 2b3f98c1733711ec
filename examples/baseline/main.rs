//! The bare baseline for benchmarks: the leanest STOMP-over-WebSocket broadcast server that can
//! serve the load generator, written straight on tokio-tungstenite with none of stompede's
//! machinery (no limits, no heart-beats, no error handling beyond dropping the connection).
//! It is what "as fast as the transport allows" looks like on this machine.
//!
//! ```text
//! cargo run --release --example baseline -- --addr 127.0.0.1:61615
//! ```
//!
//! It understands CONNECT/STOMP, SUBSCRIBE, UNSUBSCRIBE, SEND and DISCONNECT, and `receipt`
//! headers, one frame per WebSocket message (as browser clients and the load generator send
//! them). Not for production: a slow subscriber grows its queue without bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

type Subscribers = Arc<Mutex<HashMap<String, Vec<(u64, String, mpsc::UnboundedSender<Message>)>>>>;

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
    let mut next_connection = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        next_connection += 1;
        tokio::spawn(connection(stream, next_connection, subscribers.clone()));
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
}

async fn connection(stream: tokio::net::TcpStream, id: u64, subscribers: Subscribers) {
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
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, negotiate).await else { return };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut mine: Vec<String> = Vec::new();
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else { continue };
        let frame = text.as_str().trim_start_matches(['\n', '\r']);
        let Some((head, rest)) = frame.split_once("\n\n") else { continue };
        let body = rest.strip_suffix('\0').unwrap_or(rest);
        let command = head.lines().next().unwrap_or("");
        match command {
            "CONNECT" | "STOMP" => {
                let _ = tx.send(Message::text("CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"));
            }
            "SUBSCRIBE" => {
                if let (Some(sub), Some(dest)) = (header(head, "id"), header(head, "destination")) {
                    let mut map = subscribers.lock().unwrap_or_else(|e| e.into_inner());
                    map.entry(dest.to_owned()).or_default().push((id, sub.to_owned(), tx.clone()));
                    mine.push(dest.to_owned());
                }
            }
            "UNSUBSCRIBE" => {
                if let Some(sub) = header(head, "id") {
                    let mut map = subscribers.lock().unwrap_or_else(|e| e.into_inner());
                    for list in map.values_mut() {
                        list.retain(|(c, s, _)| !(*c == id && s == sub));
                    }
                }
            }
            "SEND" => {
                if let Some(dest) = header(head, "destination") {
                    let map = subscribers.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(list) = map.get(dest) {
                        for (_, sub, out) in list {
                            let frame = format!(
                                "MESSAGE\nsubscription:{sub}\nmessage-id:{id}\ndestination:{dest}\ncontent-length:{}\n\n{body}\0",
                                body.len()
                            );
                            let _ = out.send(Message::text(frame));
                        }
                    }
                }
            }
            "DISCONNECT" => {
                if let Some(receipt) = header(head, "receipt") {
                    let _ = tx.send(Message::text(format!("RECEIPT\nreceipt-id:{receipt}\n\n\0")));
                }
                break;
            }
            _ => {}
        }
        if command != "DISCONNECT" {
            if let Some(receipt) = header(head, "receipt") {
                let _ = tx.send(Message::text(format!("RECEIPT\nreceipt-id:{receipt}\n\n\0")));
            }
        }
    }
    {
        let mut map = subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for dest in mine {
            if let Some(list) = map.get_mut(&dest) {
                list.retain(|(c, _, _)| *c != id);
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
