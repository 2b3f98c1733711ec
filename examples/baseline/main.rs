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
//!   ready frames; a full queue makes the publisher's reader wait (so nobody is dropped and
//!   nothing grows without bound); the writer takes up to 256 frames and writes them in one
//!   `write`;
//! - tungstenite does the handshake only: the reader unmasks WebSocket frames (eight bytes a
//!   step) and the writer puts the two-to-ten-byte header before each frame by hand (what the
//!   broker example does for its writes too), which leaves out tungstenite's per-message work;
//! - a frame's head is read in one pass over its bytes (`memchr` for each line end), which
//!   picks out the command and the three headers the server needs; nothing is checked for
//!   UTF-8 and nothing is copied (destinations are looked up as bytes, with `foldhash`); a
//!   SEND whose head is byte for byte the connection's last SEND's (a copy of up to 256
//!   bytes, as the broker example keeps) is not scanned at all.
//!
//! It understands CONNECT/STOMP, SUBSCRIBE, UNSUBSCRIBE, SEND and DISCONNECT, and `receipt`
//! headers, one frame per WebSocket message (as browser clients and the load generator send
//! them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Messages a connection's writer may have waiting.
const QUEUE: usize = 1024;
/// Messages the writer feeds before one flush.
const BATCH: usize = 256;

/// One subscription: its connection, id, pre-encoded head and queue.
struct Sub {
    connection: u64,
    id: Key,
    /// `MESSAGE\nsubscription:{id}\n`.
    head: Bytes,
    out: mpsc::Sender<Bytes>,
}

/// Subscriptions by destination, each list a snapshot replaced on change. The hash is
/// `foldhash`'s fast one (std's SipHash was a tenth of a publish to ten subscribers).
type Map = HashMap<Key, Arc<Vec<Arc<Sub>>>, foldhash::fast::RandomState>;
/// A destination or subscription id, as the client's bytes.
type Key = Box<[u8]>;
type Subscribers = Arc<RwLock<Map>>;

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

/// What the server needs of a client frame, read in one pass over its head.
#[derive(Default)]
struct Frame<'a> {
    command: &'a [u8],
    destination: Option<&'a [u8]>,
    id: Option<&'a [u8]>,
    receipt: Option<&'a [u8]>,
    body: &'a [u8],
}

/// Reads a frame (one WebSocket message): its command line, its headers up to the blank line
/// (the first of a repeated header wins, as STOMP 1.2 says), and its body up to the NUL that
/// ends the message. `None` for a frame without a blank line.
fn parse(frame: &[u8]) -> Option<Frame<'_>> {
    let start = frame.iter().position(|b| !matches!(b, b'\n' | b'\r'))?;
    let mut rest = &frame[start..];
    let mut parsed = Frame::default();
    let mut first = true;
    loop {
        let end = memchr::memchr(b'\n', rest)?;
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        rest = &rest[end + 1..];
        if first {
            parsed.command = line;
            first = false;
            continue;
        }
        if line.is_empty() {
            parsed.body = rest.strip_suffix(b"\0").unwrap_or(rest);
            return Some(parsed);
        }
        let slot = match line.first() {
            Some(b'd') => line.strip_prefix(b"destination:").map(|v| (&mut parsed.destination, v)),
            Some(b'i') => line.strip_prefix(b"id:").map(|v| (&mut parsed.id, v)),
            Some(b'r') => line.strip_prefix(b"receipt:").map(|v| (&mut parsed.receipt, v)),
            _ => None,
        };
        if let Some((slot, value)) = slot {
            slot.get_or_insert(value);
        }
    }
}

fn read(subscribers: &Subscribers) -> std::sync::RwLockReadGuard<'_, Map> {
    subscribers.read().unwrap_or_else(|e| e.into_inner())
}

fn write(subscribers: &Subscribers) -> std::sync::RwLockWriteGuard<'_, Map> {
    subscribers.write().unwrap_or_else(|e| e.into_inner())
}

/// Replaces `destination`'s list with `change` applied to a copy of it.
fn update(subscribers: &Subscribers, destination: &[u8], change: impl FnOnce(&mut Vec<Arc<Sub>>)) {
    let mut map = write(subscribers);
    let mut list: Vec<Arc<Sub>> =
        map.get(destination).map(|l| l.as_ref().clone()).unwrap_or_default();
    change(&mut list);
    if list.is_empty() {
        map.remove(destination);
    } else {
        map.insert(destination.into(), Arc::new(list));
    }
}

/// The longest SEND head a connection keeps to recognise (the broker example's limit too).
const LAST_HEAD_MAX: usize = 256;

/// The head of the last SEND a connection sent (up to and including its blank line), and where
/// its destination and receipt are in it: a publisher sends the same head again and again, and
/// a frame that starts with those very bytes is read without a scan (what the broker example's
/// decoder does too).
#[derive(Default)]
struct LastSend {
    head: Vec<u8>,
    destination: Option<std::ops::Range<usize>>,
    receipt: Option<std::ops::Range<usize>>,
}

impl LastSend {
    /// [`parse`], recognising the last SEND's head, and remembering each SEND's (but one with
    /// an `id` header: a recognised head says it has none).
    fn parse<'a>(&mut self, frame: &'a [u8]) -> Option<Frame<'a>> {
        if !self.head.is_empty() && frame.starts_with(&self.head) {
            let rest = &frame[self.head.len()..];
            return Some(Frame {
                command: b"SEND",
                destination: self.destination.clone().map(|r| &frame[r]),
                id: None,
                receipt: self.receipt.clone().map(|r| &frame[r]),
                body: rest.strip_suffix(b"\0").unwrap_or(rest),
            });
        }
        let parsed = parse(frame)?;
        // Offsets of the parts, all slices of `frame`.
        let at = |part: &[u8]| part.as_ptr() as usize - frame.as_ptr() as usize;
        if parsed.command == b"SEND" && parsed.id.is_none() && at(parsed.body) <= LAST_HEAD_MAX {
            let range = |part: &[u8]| at(part)..at(part) + part.len();
            self.head.clear();
            self.head.extend_from_slice(&frame[..at(parsed.body)]);
            self.destination = parsed.destination.map(range);
            self.receipt = parsed.receipt.map(range);
        } else if parsed.command == b"SEND" {
            self.head.clear();
        }
        Some(parsed)
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
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
    // tungstenite does the handshake only. A client sends nothing before the 101 answer, so
    // nothing it read is lost when it is dropped.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let accepted =
        tokio_tungstenite::accept_hdr_async_with_config(&mut stream, negotiate, Some(config));
    if accepted.await.is_err() {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::spawn(async move {
        let (mut batch, mut out) = (Vec::new(), Vec::new());
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            out.clear();
            for frame in batch.drain(..) {
                put_frame_header(&mut out, frame.len());
                out.extend_from_slice(&frame);
            }
            if writer.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    // This connection's subscriptions: (destination, id).
    let mut mine: Vec<(Key, Key)> = Vec::new();
    let mut buf = BytesMut::with_capacity(4096);
    let mut last_send = LastSend::default();
    'read: loop {
        while let Some(message) = next_message(&mut buf) {
            let Some(payload) = message else { break 'read };
            let Some(frame) = last_send.parse(&payload) else { continue };
            match frame.command {
                b"CONNECT" | b"STOMP" => {
                    let connected =
                        Bytes::from_static(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0");
                    if tx.send(connected).await.is_err() {
                        break 'read;
                    }
                }
                b"SUBSCRIBE" => {
                    if let (Some(id), Some(destination)) = (frame.id, frame.destination) {
                        let head = Bytes::from([b"MESSAGE\nsubscription:", id, b"\n"].concat());
                        let sub =
                            Arc::new(Sub { connection, id: id.into(), head, out: tx.clone() });
                        update(&subscribers, destination, |list| list.push(sub));
                        mine.push((destination.into(), id.into()));
                    }
                }
                b"UNSUBSCRIBE" => {
                    if let Some(id) = frame.id {
                        let (gone, kept): (Vec<_>, Vec<_>) =
                            mine.drain(..).partition(|(_, s)| **s == *id);
                        mine = kept;
                        for (destination, id) in gone {
                            update(&subscribers, &destination, |list| {
                                list.retain(|s| !(s.connection == connection && s.id == id))
                            });
                        }
                    }
                }
                b"SEND" => {
                    if let Some(destination) = frame.destination {
                        publish(&subscribers, &message_ids, destination, frame.body).await;
                    }
                }
                b"DISCONNECT" => {
                    if let Some(receipt) = frame.receipt {
                        let _ = tx.send(receipt_frame(receipt)).await;
                    }
                    break 'read;
                }
                _ => {}
            }
            if let Some(receipt) = frame.receipt {
                if tx.send(receipt_frame(receipt)).await.is_err() {
                    break 'read;
                }
            }
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
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

fn receipt_frame(receipt: &[u8]) -> Bytes {
    Bytes::from([b"RECEIPT\nreceipt-id:", receipt, b"\n\n\0"].concat())
}

/// The largest WebSocket frame the baseline accepts (it has no other limits).
const MAX_FRAME: usize = 1 << 20;

/// Takes the next complete WebSocket frame from the front of `buf` and unmasks it (RFC 6455,
/// 5.2): `Some(Some(payload))` for a text or binary frame, `Some(None)` for a close (or a frame
/// over `MAX_FRAME`), `None` until a whole frame has arrived. Pings and pongs are skipped; the
/// load generator and browsers send data unfragmented.
fn next_message(buf: &mut BytesMut) -> Option<Option<BytesMut>> {
    loop {
        let (&[b0, b1], rest) = buf.split_first_chunk::<2>()?;
        let (mut len, mut at) = (usize::from(b1 & 0x7F), 2);
        if len == 126 {
            len = usize::from(u16::from_be_bytes(*rest.first_chunk::<2>()?));
            at = 4;
        } else if len == 127 {
            len = usize::try_from(u64::from_be_bytes(*rest.first_chunk::<8>()?))
                .unwrap_or(usize::MAX);
            at = 10;
        }
        if len > MAX_FRAME {
            return Some(None);
        }
        let masked = b1 & 0x80 != 0;
        let mask: [u8; 4] = match masked {
            true => *buf.get(at..)?.first_chunk::<4>()?,
            false => [0; 4],
        };
        let start = at + if masked { 4 } else { 0 };
        if buf.len() < start + len {
            return None;
        }
        buf.advance(start);
        let mut payload = buf.split_to(len);
        unmask(&mut payload, mask);
        match b0 & 0x0F {
            0x1 | 0x2 => return Some(Some(payload)),
            0x8 => return Some(None),
            _ => continue,
        }
    }
}

/// XORs `payload` with the repeated `mask`, eight bytes a step (byte by byte, the loop was the
/// largest single cost of reading a SEND).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([mask, mask].concat().try_into().unwrap_or([0; 8]));
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8])) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Appends the header of an unmasked text frame of `len` bytes (a server's frames are never
/// masked).
fn put_frame_header(out: &mut Vec<u8>, len: usize) {
    out.push(0x81);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Delivers one SEND: the shared part encoded once, one buffer per distinct subscription
/// line, each subscriber's queue waited on when full.
async fn publish(
    subscribers: &Subscribers,
    message_ids: &AtomicU64,
    destination: &[u8],
    body: &[u8],
) {
    let Some(list) = read(subscribers).get(destination).cloned() else { return };
    let id = message_ids.fetch_add(1, Ordering::Relaxed);
    // Concatenated by hand: `format!` cost more than the rest of a publish to ten subscribers.
    let (mut id_text, mut length_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    let parts: [&[u8]; 9] = [
        b"message-id:",
        id_text.format(id).as_bytes(),
        b"\ndestination:",
        destination,
        b"\ncontent-length:",
        length_text.format(body.len()).as_bytes(),
        b"\n\n",
        body,
        b"\0",
    ];
    let shared_len: usize = parts.iter().map(|p| p.len()).sum();
    // The first subscription's line and the shared part in one buffer (every load-generator
    // client subscribes as `sub-0`: one buffer serves all); up to eight distinct lines kept.
    let mut built: Vec<(Bytes, Bytes)> = Vec::new();
    for sub in list.iter() {
        let whole = match built.iter().find(|(head, _)| *head == sub.head) {
            Some((_, whole)) => whole.clone(),
            None => {
                let mut frame = Vec::with_capacity(sub.head.len() + shared_len);
                frame.extend_from_slice(&sub.head);
                for part in parts {
                    frame.extend_from_slice(part);
                }
                let whole = Bytes::from(frame);
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
        match sub.out.try_send(whole) {
            Err(mpsc::error::TrySendError::Full(message)) => {
                let _ = sub.out.send(message).await;
            }
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
