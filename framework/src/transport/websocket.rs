//! STOMP over WebSocket (RFC 6455), via tokio-tungstenite.
//!
//! Outbound frames travel one per WebSocket message: text when the frame is UTF-8, binary
//! otherwise (clients must reject invalid UTF-8 in a text message). A server writes batches of
//! them with WebSocket headers it makes itself, and reads its client's frames by hand
//! (`ws_read`); the handshake, the close, single frames outside batches and everything a
//! client (this crate's `stompede::client`) sends or reads go through tungstenite. Inbound,
//! text and binary messages are both accepted, and their bytes are simply appended to the
//! decoder's buffer, so a frame may span several messages or share one with others.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::ws_read::{FrameError, FrameReader};
use super::{SentNow, Transport, TransportError};
use crate::outbox::Batch;
use crate::stomp::EncodedFrame;
use crate::stomp::put_uninit;

/// Frames of a batch collect in the write buffer and go out in one write on flush (0 would mean
/// one syscall per frame: 30x the syscalls of a buffered writer in the fan-out benchmark;
/// 8 KiB split a 64-frame batch of 100-byte messages in two). The buffer grows only as far as
/// a batch needs.
const WRITE_BUFFER: usize = 64 * 1024;

/// The bounds of one WebSocket connection (`repr(C)`, the one every write reads first: see
/// [`WebSocketTransport`]).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct WebSocketLimits {
    /// Largest frame we send: with one batch, the most the write buffer ever holds.
    pub(crate) max_outbound_frame: usize,
    /// Largest inbound message (and frame) in bytes.
    pub(crate) max_message: usize,
    /// How long the answer to a ping may wait for the peer to read it. A peer that sends pings
    /// but does not read is closed after this, like a slow consumer.
    pub(crate) pong_time_limit: Duration,
}

impl WebSocketLimits {
    /// A server's: inbound messages up to the frame limit (and room for the WebSocket
    /// framing), outbound frames up to twice the send buffer (what a session's outbox may
    /// hold), the send time limit for pongs.
    pub(crate) fn server(config: &crate::config::Config) -> Self {
        let max_message = config.limits.max_frame_size.saturating_add(4096);
        WebSocketLimits {
            max_message,
            max_outbound_frame: max_message.max(config.send_buffer_size_limit.saturating_mul(2)),
            pong_time_limit: config.send_time_limit,
        }
    }
}

#[cfg(feature = "sockjs")]
impl WebSocketLimits {
    /// For SockJS framing over the WebSocket: one `a[...]` frame carries what the session's
    /// cache holds (at most `cache_bytes`, or one larger message) as JSON strings, which may be
    /// up to six times longer than the text they escape (`\u0000`).
    pub(crate) fn sockjs(self, cache_bytes: usize) -> Self {
        let largest = cache_bytes.saturating_add(self.max_outbound_frame).saturating_mul(6);
        WebSocketLimits { max_outbound_frame: largest.saturating_add(16), ..self }
    }
}

/// [`config`] for a server's STOMP endpoint, whose client frames are read by hand: tungstenite
/// gets no read buffer (it would be allocated for every connection, and never used).
pub(crate) fn server_config(limits: WebSocketLimits) -> WebSocketConfig {
    config(limits).read_buffer_size(0)
}

/// WebSocket settings sized for many mostly idle connections: a small read buffer, a write
/// buffer that batches a burst into one syscall, an inbound message limit derived from the
/// frame limit, and a write buffer with a real maximum. Where tungstenite reads (a client,
/// SockJS's WebSocket transport), it answers pongs; when the write buffer is full it keeps
/// only the latest one (RFC 6455 allows answering only the most recent ping), and the reader
/// stops reading while a pong waits.
pub(crate) fn config(limits: WebSocketLimits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(WRITE_BUFFER)
        // Room for a batch, the largest frame with its WebSocket header, and a pong.
        .max_write_buffer_size(WRITE_BUFFER.saturating_add(limits.max_outbound_frame) + 256)
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_message))
}

/// One WebSocket connection.
///
/// `repr(C)`, and what a session's every wake-up reads first (whether a pong is owed, the
/// reader, the unsent bytes, the outbound frame limit) in its first 56 bytes, on one or two
/// cache lines: a quiet subscriber's session is woken once per message with its state out of
/// cache, and with the compiler's order these were spread over the struct
/// (docs/benchmarks.md, eighth pass).
#[repr(C)]
pub(crate) struct WebSocketTransport<S> {
    /// Set when a ping was read: its pong must be written before anything more is read.
    pong_pending: bool,
    /// The status code of the client's close frame, echoed in ours.
    peer_close: Option<u16>,
    /// A server's reading of its client's frames (see `ws_read`); `None` for a client, which
    /// reads and writes through tungstenite. A server also frames its batches itself (see
    /// [`send_taking`](Transport::send_taking)). Boxed: most of it is the state of a frame
    /// being read.
    reader: Option<Box<FrameReader>>,
    /// Hand-framed bytes not yet written: the pongs a server's read owes (written before it
    /// reads more), and the rest of a frame a write cut short (its time limit ran out) left:
    /// every later write sends it first, so the stream stays well-framed for the ERROR and the
    /// close that follow. Empty, and unallocated, between writes.
    unsent: BytesMut,
    limits: WebSocketLimits,
    /// When writing the pong `pong_pending` owes began, plus the limit. Kept here because `recv` may be
    /// cancelled while it waits, and the next `recv` must not grant a fresh limit.
    pong_due: Option<Instant>,
    /// What the stream gave after the data messages one `recv` took (a ping, a close, an
    /// error, its end): the next `recv` starts with it. Boxed: rarely set, and an error is
    /// large.
    stashed: Option<Box<Option<Result<Message, WsError>>>>,
    ws: WebSocketStream<S>,
}

impl<S> WebSocketTransport<S> {
    /// A client's end: everything goes through tungstenite (which masks what it sends).
    pub(crate) fn new(ws: WebSocketStream<S>, limits: WebSocketLimits) -> Self {
        WebSocketTransport {
            ws,
            limits,
            pong_pending: false,
            pong_due: None,
            stashed: None,
            unsent: BytesMut::new(),
            reader: None,
            peer_close: None,
        }
    }

    /// A server's end: batches of frames are framed by hand (see
    /// [`send_taking`](Transport::send_taking)).
    /// Its client's frames are read by hand too: tungstenite never reads (create `ws` with
    /// [`server_config`]).
    pub(crate) fn server(ws: WebSocketStream<S>, limits: WebSocketLimits) -> Self {
        WebSocketTransport {
            reader: Some(Box::new(FrameReader::new(limits.max_message))),
            ..WebSocketTransport::new(ws, limits)
        }
    }
}

/// Appends the header of an unmasked, unfragmented WebSocket data frame (RFC 6455, 5.2): a
/// text frame when `text`, else binary, carrying `len` bytes.
#[inline(always)]
fn put_frame_header(out: &mut BytesMut, text: bool, len: usize) {
    let first = if text { 0x81 } else { 0x82 };
    match len {
        // One two-byte append for the common case (a MESSAGE of a few hundred bytes takes the
        // next arm, also one append).
        0..=125 => out.put_u16(u16::from_be_bytes([first, len as u8])),
        126..=0xFFFF => out.put_u32(u32::from_be_bytes([first, 126, (len >> 8) as u8, len as u8])),
        _ => {
            out.put_u16(u16::from_be_bytes([first, 127]));
            out.put_u64(len as u64);
        }
    }
}

/// The longest header [`put_frame_header`] writes.
const MAX_FRAME_HEADER: usize = 10;

/// At most how many bytes `frames` frames of `bytes` in all take framed.
fn framed_bound(bytes: usize, frames: usize) -> usize {
    bytes + frames * MAX_FRAME_HEADER
}

/// A batch of at most this many bytes (frame headers counted at their longest) is framed on
/// the stack (see `send_taking`).
const SMALL_WRITE: usize = 320;

/// [`put_frame_header`] into `out` (which has room for [`MAX_FRAME_HEADER`] bytes); returns
/// how many bytes it wrote.
fn put_frame_header_into(out: &mut [MaybeUninit<u8>], text: bool, len: usize) -> usize {
    let first = if text { 0x81 } else { 0x82 };
    match len {
        0..=125 => {
            put_uninit(out, &[first, len as u8]);
            2
        }
        126..=0xFFFF => {
            put_uninit(out, &[first, 126, (len >> 8) as u8, len as u8]);
            4
        }
        _ => {
            put_uninit(out, &[first, 127]);
            put_uninit(&mut out[2..], &(len as u64).to_be_bytes());
            10
        }
    }
}

/// Whether a message starts with a DISCONNECT frame: nothing is read after one in the same
/// `recv`. A client's close usually follows it, and tungstenite, once it has read the close,
/// refuses to send anything more, such as the RECEIPT the DISCONNECT asked for.
fn is_disconnect(payload: &[u8]) -> bool {
    let start = payload.iter().position(|&b| b != b'\n' && b != b'\r').unwrap_or(payload.len());
    payload[start..].starts_with(b"DISCONNECT")
}

/// How many bytes of messages that are ready at once one `recv` takes at most (one message
/// more than this, when it is larger). A busy publisher's frames are then decoded and handled
/// in one turn of its session's loop, not one turn each; the bound keeps the turn short and
/// the buffer small.
const READ_MORE: usize = 16 * 1024;

/// Writes out the pong tungstenite queued for a ping, waiting until `due` at most. A peer that
/// keeps sending pings without reading the answers is thereby read no further (its pings wait
/// in its own socket, not in our memory), then closed.
#[cfg(feature = "sockjs")]
pub(crate) async fn flush_pong<S>(
    ws: &mut WebSocketStream<S>,
    due: Instant,
    limit: Duration,
) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    pong_within(due, limit, ws.flush()).await
}

/// Runs `flush`, the write of a pong, until `due` at most; a peer that has not read it by then
/// is a slow consumer.
async fn pong_within(
    due: Instant,
    limit: Duration,
    flush: impl Future<Output = Result<(), WsError>>,
) -> Result<(), TransportError> {
    let slow = || {
        TransportError::SlowConsumer(format!(
            "slow consumer: the client sends WebSocket pings but has not read the answer for {limit:?} (the send time limit)"
        ))
    };
    match tokio::time::timeout_at(due, flush).await {
        Ok(Ok(())) => Ok(()),
        // The connection's own write deadline (before CONNECT, on the connections that keep
        // it: TLS, SockJS, mounted routers; see `stall`) said the same.
        Ok(Err(WsError::Io(e))) if e.kind() == io::ErrorKind::TimedOut => Err(slow()),
        Ok(Err(e)) => Err(TransportError::Io(into_io(e))),
        Err(_) => Err(slow()),
    }
}

/// The WebSocket message for one encoded frame.
pub(crate) fn to_message(frame: &EncodedFrame) -> Message {
    message_of(frame.to_bytes(), frame.is_utf8())
}

/// The WebSocket message for one encoded frame, taking its buffer when it has one.
fn into_message(frame: EncodedFrame) -> Message {
    let utf8 = frame.is_utf8();
    message_of(frame.into_bytes(), utf8)
}

fn message_of(bytes: Bytes, utf8: bool) -> Message {
    if utf8 {
        // SAFETY: `is_utf8` is true only for a UTF-8 body: one that passed a UTF-8 check when
        // its message was prepared, or (`PreparedMessage::with_known_utf8`) one the client sent
        // as WebSocket text with no inbound interceptor in between: the frame reader hands on
        // only checked text until a binary message arrives (and then never again says so), and
        // a body starts after a `\n` and ends before a NUL, so it is whole characters of that
        // text. The head is made of the ASCII command, `ByteStr` header text (UTF-8 by
        // construction) and ASCII escapes and separators, so the whole frame is UTF-8.
        Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(bytes) })
    } else {
        Message::Binary(bytes)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketTransport<S> {
    /// Writes what is left of hand-framed output (see `unsent`), then gives its buffer back.
    /// Cancel-safe: bytes leave `unsent` only once written.
    async fn write_unsent(&mut self) -> io::Result<()> {
        while !self.unsent.is_empty() {
            let written = self.ws.get_mut().write(&self.unsent).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.unsent.advance(written);
        }
        if self.unsent.capacity() > 0 {
            self.unsent = BytesMut::new();
        }
        Ok(())
    }

    /// Frames `frames` after what `unsent` holds, writing it out whenever the next frame would
    /// take it past [`WRITE_BUFFER`]; `total` bounds the bytes they take framed (room is
    /// reserved from it as the buffer is refilled). What is framed last stays in `unsent`, for
    /// the caller's write.
    async fn frame_into_unsent<'a>(
        &mut self,
        frames: impl Iterator<Item = &'a EncodedFrame> + Send,
        mut total: usize,
    ) -> io::Result<()> {
        self.unsent.reserve(total.min(WRITE_BUFFER));
        for frame in frames {
            let len = frame.len();
            if !self.unsent.is_empty() && self.unsent.len() + len + MAX_FRAME_HEADER > WRITE_BUFFER
            {
                self.write_unsent().await?;
                total = total.saturating_sub(WRITE_BUFFER);
                self.unsent.reserve(total.min(WRITE_BUFFER));
            }
            put_frame_header(&mut self.unsent, frame.is_utf8(), len);
            frame.write_parts(&mut self.unsent);
        }
        Ok(())
    }

    /// Frames a batch of at most [`SMALL_WRITE`] bytes on the stack and writes it if the
    /// socket takes it now; what it does not take goes to `unsent` (empty before), for
    /// [`write_unsent`](Self::write_unsent). Not async: nothing of it is kept in the session's
    /// future.
    fn write_small(&mut self, frames: &Batch) -> io::Result<()> {
        // Not zeroed (a tenth of a quiet delivery's write): only what is written below is read.
        let mut stack = [MaybeUninit::<u8>::uninit(); SMALL_WRITE];
        let mut len = 0;
        for frame in frames.iter() {
            len += put_frame_header_into(&mut stack[len..], frame.is_utf8(), frame.len());
            for chunk in frame.chunks() {
                // Most frames are one part (`contiguous_for`): no copy of the empty ones.
                if !chunk.is_empty() {
                    put_uninit(&mut stack[len..], chunk);
                    len += chunk.len();
                }
            }
        }
        let stack = &stack[..len];
        // SAFETY: the loop above wrote every byte of `stack[..len]`, in order from the start,
        // and `MaybeUninit<u8>` has the layout of `u8`.
        let stack: &[u8] = unsafe { std::slice::from_raw_parts(stack.as_ptr().cast::<u8>(), len) };
        // Polled once, with a waker that does nothing: if the socket is not ready, the bytes
        // wait in `unsent` and the write that follows waits for it properly.
        let mut cx = Context::from_waker(Waker::noop());
        let written = match Pin::new(self.ws.get_mut()).poll_write(&mut cx, stack) {
            Poll::Ready(Ok(written)) => written,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => 0,
        };
        self.unsent.extend_from_slice(&stack[written..]);
        Ok(())
    }

    /// A server's `recv`: reads from the stream and parses the client's frames itself (see
    /// `ws_read`). One read's worth is handled per call: a busy publisher's frames arrive many
    /// at a time. Every ping is answered, the pongs written before anything more is read,
    /// within the pong time limit. A broken frame after good ones in the same read is reported
    /// by the next call, once the good ones are handled. Cancel-safe: the read appends only
    /// once it completes, and parsing does not wait.
    async fn recv_by_hand(&mut self, buf: &mut BytesMut) -> Result<usize, TransportError> {
        loop {
            if self.pong_pending {
                self.flush_pong().await?;
            }
            let Some(reader) = self.reader.as_deref_mut() else { return Ok(0) };
            if reader.is_closed() {
                return Ok(0);
            }
            // Room for every payload byte the read brought, at once: appended frame by frame,
            // a busy publisher's buffer grew (and was copied) a few times per read.
            buf.reserve(reader.unparsed());
            let parsed = reader.parse(buf, &mut self.unsent).map_err(|e| match e {
                FrameError::TooLarge => TransportError::MessageTooLarge(self.limits.max_message),
                FrameError::Protocol(why) => {
                    TransportError::Protocol(format!("WebSocket protocol error: {why}"))
                }
            })?;
            // The pongs are written before anything more is read, within the time limit.
            self.pong_pending |= parsed.pinged;
            if let Some(code) = parsed.close {
                self.peer_close = code;
            }
            if parsed.appended > 0 {
                return Ok(parsed.appended);
            }
            if parsed.close.is_some() {
                return Ok(0);
            }
            if self.pong_pending {
                continue;
            }
            let wanted = reader.room_for_read();
            let read = self.ws.get_mut().read_buf(reader.read_buffer()).await?;
            if read == 0 {
                return Err(TransportError::Io(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the connection was reset without a WebSocket closing handshake",
                )));
            }
            reader.read_done(wanted, read);
        }
    }

    /// Writes out the pong waiting in `unsent` (or in tungstenite), within the pong time limit
    /// counted from when the wait began: a peer that sends pings but does not read is closed.
    async fn flush_pong(&mut self) -> Result<(), TransportError> {
        let limit = self.limits.pong_time_limit;
        let due = *self.pong_due.get_or_insert_with(|| Instant::now() + limit);
        // A frame cut short goes out whole before the pong, within the pong's time limit.
        // Boxed: pings are rare, and its state (a timer) would otherwise be reserved in every
        // session's future.
        let flush = async {
            self.write_unsent().await.map_err(WsError::Io)?;
            self.ws.flush().await
        };
        Box::pin(pong_within(due, limit, flush)).await?;
        (self.pong_pending, self.pong_due) = (false, None);
        Ok(())
    }

    /// Appends the data messages the stream can give at once, without waiting, after `taken`
    /// bytes of a first one: up to [`READ_MORE`] bytes in all. Anything else it gives (a ping,
    /// a close, an error, its end) is kept for the next `recv`. Returns the bytes appended.
    ///
    /// It never waits (each poll is answered at once), so it cannot be cancelled halfway.
    async fn read_ready(&mut self, buf: &mut BytesMut, taken: usize) -> usize {
        let mut appended = 0;
        while taken + appended < READ_MORE && self.stashed.is_none() {
            let ws = &mut self.ws;
            let next = std::future::poll_fn(|cx| Poll::Ready(ws.poll_next_unpin(cx))).await;
            let payload: Bytes = match next {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(Message::Text(text)))) => text.into(),
                Poll::Ready(Some(Ok(Message::Binary(bytes)))) => bytes,
                Poll::Ready(other) => {
                    self.stashed = Some(Box::new(other));
                    break;
                }
            };
            if buf.capacity() - buf.len() < payload.len() {
                // Room for everything this turn may read, at once: appending message by
                // message would grow (and copy) the buffer several times per turn.
                buf.reserve((READ_MORE - taken.min(READ_MORE)).max(payload.len()));
            }
            buf.extend_from_slice(&payload);
            appended += payload.len();
            if is_disconnect(&payload) {
                break;
            }
        }
        appended
    }
}

impl<S> WebSocketTransport<S> {
    /// Refuses a frame larger than the session may send.
    fn check_size(&self, frame: &EncodedFrame) -> io::Result<()> {
        if frame.len() <= self.limits.max_outbound_frame {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte frame is larger than a WebSocket session may send ({} bytes: the larger of message_size_limit and twice send_buffer_size_limit): raise send_buffer_size_limit or send smaller messages",
                frame.len(),
                self.limits.max_outbound_frame
            ),
        ))
    }
}

impl<S> Transport for WebSocketTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self, buf: &mut BytesMut) -> Result<usize, TransportError> {
        if self.reader.is_some() {
            return self.recv_by_hand(buf).await;
        }
        loop {
            if self.pong_pending {
                self.flush_pong().await?;
            }
            let next = match self.stashed.take() {
                Some(stashed) => *stashed,
                None => self.ws.next().await,
            };
            let Some(message) = next else { return Ok(0) };
            let payload: Bytes = match message {
                Ok(Message::Text(text)) => text.into(),
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(_)) => return Ok(0),
                // tungstenite has queued the pong: it goes out before the next read.
                Ok(Message::Ping(_)) => {
                    self.pong_pending = true;
                    continue;
                }
                Ok(Message::Pong(_) | Message::Frame(_)) => continue,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(0),
                // A client that went away without a close frame: a lost connection, not a
                // protocol error (nothing to tell it, nothing for an operator to see).
                Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    return Err(TransportError::Io(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the connection was reset without a WebSocket closing handshake",
                    )));
                }
                Err(WsError::Io(e)) => return Err(TransportError::Io(e)),
                Err(WsError::Capacity(_)) => {
                    return Err(TransportError::MessageTooLarge(self.limits.max_message));
                }
                Err(e) => {
                    return Err(TransportError::Protocol(format!("WebSocket protocol error: {e}")));
                }
            };
            if payload.is_empty() {
                continue;
            }
            buf.extend_from_slice(&payload);
            if is_disconnect(&payload) {
                return Ok(payload.len());
            }
            return Ok(payload.len() + self.read_ready(buf, payload.len()).await);
        }
    }

    async fn send(&mut self, frames: &[EncodedFrame]) -> io::Result<()> {
        self.write_unsent().await?;
        for frame in frames {
            self.check_size(frame)?;
            self.ws.feed(to_message(frame)).await.map_err(into_io)?;
        }
        self.ws.flush().await.map_err(into_io)
    }

    /// A server frames the batch itself: one WebSocket header per frame, the frames copied
    /// behind their headers into one buffer (written out whenever the next frame would take
    /// it past [`WRITE_BUFFER`]), written straight to the stream. tungstenite's write path
    /// (a message, a frame, its header, its buffer) cost about 300 instructions per delivery;
    /// this costs the copy. A server's frames are never masked, and the pongs its read owes (in
    /// `unsent`) go first, so the order on the wire is kept. A client's frames must be
    /// masked: they go through tungstenite (which also refuses a data frame after a close it
    /// has read and answered).
    async fn send_taking(&mut self, frames: &mut Batch) -> io::Result<()> {
        if self.reader.is_none() {
            self.write_unsent().await?;
            // Drained: each frame's buffer moves into its message, and nothing is left to drop.
            for frame in frames.drain() {
                self.check_size(&frame)?;
                self.ws.feed(into_message(frame)).await.map_err(into_io)?;
            }
            return self.ws.flush().await.map_err(into_io);
        }
        // A server's pongs are in `unsent`, and go first; tungstenite holds nothing here (it
        // reads nothing, and flushes whatever it writes at once). (Usually nothing is, and
        // no buffer is kept: no call.)
        if self.unsent.capacity() > 0 {
            self.write_unsent().await?;
        }
        // Every frame's size is checked before any of the batch is written: one too large
        // ends the session before the batch, not halfway through it. (The session measured
        // the batch as it counted it, usually: then no pass over it is needed here.)
        let measured = frames.measured().unwrap_or_else(|| frames.measure(|_, _| {}));
        if measured.largest > self.limits.max_outbound_frame {
            let max = self.limits.max_outbound_frame;
            if let Some(frame) = frames.iter().find(|frame| frame.len() > max) {
                self.check_size(frame)?;
            }
        }
        let total = framed_bound(measured.bytes, frames.len());
        if total <= SMALL_WRITE && !frames.is_empty() {
            // A small batch (a quiet session's one message): no buffer to allocate and free.
            self.write_small(frames)?;
            // Usually the socket took it all: nothing to wait for.
            if !self.unsent.is_empty() {
                self.write_unsent().await?;
            }
            return self.ws.get_mut().flush().await;
        }
        // Borrowed, not taken: the caller drops the frames together afterwards (cheaper than
        // moving each out of the batch's ring buffer).
        self.frame_into_unsent(frames.iter(), total).await?;
        self.write_unsent().await?;
        self.ws.get_mut().flush().await
    }

    /// A server's small batch (at most [`SMALL_WRITE`] bytes framed, measured beforehand),
    /// when nothing is owed before it (a pong, the rest of a write): framed on the stack and
    /// written if the socket takes it, as `send_taking` would, with no future made.
    fn send_now(&mut self, frames: &mut Batch) -> io::Result<SentNow> {
        let small = frames.measured().is_some_and(|measured| {
            framed_bound(measured.bytes, frames.len()) <= SMALL_WRITE
                && measured.largest <= self.limits.max_outbound_frame
        });
        if !small || self.reader.is_none() || self.unsent.capacity() > 0 || frames.is_empty() {
            return Ok(SentNow::NotTried);
        }
        self.write_small(frames)?;
        if self.unsent.is_empty() {
            // A socket's flush does nothing (tokio's `TcpStream`, a TLS stream with nothing
            // buffered): done, but polled all the same.
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(self.ws.get_mut()).poll_flush(&mut cx) {
                Poll::Ready(result) => return result.map(|()| SentNow::Done),
                Poll::Pending => {}
            }
        }
        // The frames are framed in `unsent`: `send_taking` writes it out before anything else.
        frames.clear();
        Ok(SentNow::Started)
    }

    /// A socket's readiness stays registered after a `recv` is dropped, except while a pong
    /// is being flushed: its time limit is a timer inside `recv`.
    fn reads_may_be_gated(&self) -> bool {
        !self.pong_pending
    }

    /// A server reading by hand knows (tungstenite's reads are not tracked: false).
    fn inbound_is_utf8(&self) -> bool {
        self.reader.as_deref().is_some_and(FrameReader::text_only)
    }

    async fn send_heartbeat(&mut self) -> io::Result<()> {
        self.write_unsent().await?;
        self.ws.send(Message::Text(Utf8Bytes::from_static("\n"))).await.map_err(into_io)
    }

    async fn close(&mut self) {
        if self.write_unsent().await.is_err() {
            return;
        }
        let frame =
            self.close_code().map(|code| CloseFrame { code, reason: Utf8Bytes::from_static("") });
        let _ = self.ws.close(frame).await;
    }

    /// A server frames the last frames and its close frame itself, into one write (after the
    /// pongs it owes); a client's go through tungstenite, as `send` and `close` do. The frames
    /// are written out whenever the next would take the buffer past [`WRITE_BUFFER`] (a slow
    /// consumer's queue may be long): the close frame goes with the last of them.
    async fn send_and_close(&mut self, frames: &[EncodedFrame]) -> io::Result<()> {
        if self.reader.is_none() {
            self.send(frames).await?;
            self.close().await;
            return Ok(());
        }
        let mut bytes = 0;
        for frame in frames {
            self.check_size(frame)?;
            bytes += frame.len();
        }
        let total = framed_bound(bytes, frames.len()) + CLOSE_FRAME;
        self.frame_into_unsent(frames.iter(), total).await?;
        let code = self.close_code();
        put_close_frame(&mut self.unsent, code);
        self.write_unsent().await?;
        self.ws.get_mut().flush().await
    }
}

impl<S> WebSocketTransport<S> {
    /// The status code of our close frame: the client's own, echoed (RFC 6455, 5.5.1), if it
    /// may be sent; none otherwise.
    fn close_code(&self) -> Option<CloseCode> {
        self.peer_close.map(CloseCode::from).filter(|code| code.is_allowed())
    }
}

/// The longest close frame [`put_close_frame`] writes: a header and a status code.
const CLOSE_FRAME: usize = 4;

/// Appends a server's close frame (unmasked, final), with `code` if there is one and no
/// reason text: what tungstenite sends for `close` with an empty reason.
fn put_close_frame(out: &mut BytesMut, code: Option<CloseCode>) {
    match code {
        Some(code) => {
            let [high, low] = u16::from(code).to_be_bytes();
            out.put_slice(&[0x88, 2, high, low]);
        }
        None => out.put_slice(&[0x88, 0]),
    }
}

pub(crate) fn into_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::{Command, Frame, Version, encode};
    use tokio_tungstenite::tungstenite::protocol::Role;

    fn limits() -> WebSocketLimits {
        WebSocketLimits {
            max_message: 1 << 20,
            max_outbound_frame: 1 << 20,
            pong_time_limit: Duration::from_secs(5),
        }
    }

    fn message(body_len: usize) -> EncodedFrame {
        encode(&Frame::new(Command::Message).body(vec![b'x'; body_len]), Version::V1_2)
    }

    /// A stream that counts the writes made to it.
    struct CountingWrites<S> {
        inner: S,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for CountingWrites<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for CountingWrites<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A session's last frames and the close frame go out in one write, and the client reads
    /// the frames, then the close (with its own code echoed when it closed first).
    #[tokio::test]
    async fn the_last_frames_and_the_close_frame_are_one_write() {
        for peer_close in [None, Some(1000u16)] {
            let (server_end, client_end) = tokio::io::duplex(64 * 1024);
            let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = CountingWrites { inner: server_end, writes: writes.clone() };
            let ws = WebSocketStream::from_raw_socket(counted, Role::Server, None).await;
            let mut transport = WebSocketTransport::server(ws, limits());
            transport.peer_close = peer_close;
            let (a, b) = (message(10), message(3000));
            transport.send_and_close(&[a.clone(), b.clone()]).await.expect("written");
            assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1, "one write");
            drop(transport);
            let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
            let whole = |frame: &EncodedFrame| frame.chunks().concat();
            for frame in [&a, &b] {
                match client.next().await {
                    Some(Ok(Message::Text(text))) => assert_eq!(text.as_bytes(), whole(frame)),
                    other => panic!("expected the frame, got {other:?}"),
                }
            }
            match client.next().await {
                Some(Ok(Message::Close(close))) => {
                    assert_eq!(close.map(|frame| u16::from(frame.code)), peer_close);
                }
                other => panic!("expected the close frame, got {other:?}"),
            }
        }
    }

    /// A batch with a frame larger than the session may send is refused whole, with the
    /// reason, whether the session measured the batch first or not: nothing of it is written.
    #[tokio::test]
    async fn a_batch_with_a_frame_too_large_is_refused_before_any_of_it_is_written() {
        for measured in [true, false] {
            let (server_end, mut client_end) = tokio::io::duplex(64 * 1024);
            let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
            let small = WebSocketLimits { max_outbound_frame: 1000, ..limits() };
            let mut transport = WebSocketTransport::server(ws, small);
            let mut batch = Batch::from(vec![message(10), message(2000), message(10)]);
            if measured {
                batch.measure(|_, _| {});
            }
            let refused = transport.send_taking(&mut batch).await.expect_err("a frame too large");
            assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
            assert!(refused.to_string().contains("larger than a WebSocket session may send"));
            drop(transport);
            let mut written = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client_end, &mut written)
                .await
                .expect("the pipe reads to its end");
            assert!(written.is_empty(), "nothing of the batch was written (measured: {measured})");
        }
    }

    /// A small batch framed on the stack that the socket takes only in part: the rest is
    /// written when the socket has room, and the peer reads whole frames, in order.
    #[tokio::test]
    async fn a_small_batch_the_socket_takes_in_part_arrives_whole() {
        // A pipe that holds 64 bytes: two frames of about 100 bytes do not fit.
        let (server_end, client_end) = tokio::io::duplex(64);
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let mut transport = WebSocketTransport::server(ws, limits());
        let (a, b) = (message(60), message(70));
        assert!(a.len() + b.len() + 2 * MAX_FRAME_HEADER <= SMALL_WRITE, "a small batch");
        let reader = tokio::spawn(async move {
            let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
            let mut seen = Vec::new();
            while let Some(Ok(Message::Text(text))) = client.next().await {
                seen.push(text.as_bytes().to_vec());
                if seen.len() == 2 {
                    break;
                }
            }
            seen
        });
        let mut batch = Batch::from(vec![a.clone(), b.clone()]);
        tokio::time::timeout(Duration::from_secs(5), transport.send_taking(&mut batch))
            .await
            .expect("written once the peer reads")
            .expect("no error");
        let seen = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the reader finished")
            .expect("the reader did not panic");
        let whole = |frame: &EncodedFrame| frame.chunks().concat();
        assert_eq!(seen, [whole(&a), whole(&b)], "two whole frames, in order");
    }

    /// `send_now` writes a small measured batch at once; what the socket does not take is
    /// finished by `send_taking` with the emptied batch; a large or unmeasured batch, or one
    /// behind bytes still owed, is left to `send_taking` untouched. Every frame arrives whole,
    /// once, in order.
    #[tokio::test]
    async fn a_small_batch_is_sent_at_once_or_finished_by_the_next_write() {
        // A pipe that holds 100 bytes: the first batch fits, the second only in part.
        let (server_end, client_end) = tokio::io::duplex(100);
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let mut transport = WebSocketTransport::server(ws, limits());
        let (a, b, c) = (message(10), message(60), message(70));
        let reader = tokio::spawn(async move {
            let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
            let mut seen = Vec::new();
            while let Some(Ok(Message::Text(text))) = client.next().await {
                seen.push(text.as_bytes().to_vec());
            }
            seen
        });
        let mut unmeasured = Batch::from(vec![a.clone()]);
        let sent = transport.send_now(&mut unmeasured).expect("no error");
        assert_eq!(sent, SentNow::NotTried, "not measured: not tried");
        assert_eq!(unmeasured.len(), 1, "left as it was");
        unmeasured.measure(|_, _| {});
        assert_eq!(transport.send_now(&mut unmeasured).expect("no error"), SentNow::Done);
        let mut batch = Batch::from(vec![b.clone(), c.clone()]);
        batch.measure(|_, _| {});
        assert_eq!(transport.send_now(&mut batch).expect("no error"), SentNow::Started);
        assert!(batch.is_empty(), "taken in whole");
        let mut more = Batch::from(vec![a.clone()]);
        more.measure(|_, _| {});
        let sent = transport.send_now(&mut more).expect("no error");
        assert_eq!(sent, SentNow::NotTried, "the rest of the last write goes first");
        let mut large = Batch::from(vec![message(SMALL_WRITE)]);
        large.measure(|_, _| {});
        assert_eq!(transport.send_now(&mut large).expect("no error"), SentNow::NotTried);
        for mut batch in [batch, more, large] {
            tokio::time::timeout(Duration::from_secs(5), transport.send_taking(&mut batch))
                .await
                .expect("written once the peer reads")
                .expect("no error");
        }
        transport.close().await;
        drop(transport);
        let seen = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the reader finished")
            .expect("the reader did not panic");
        let whole = |frame: &EncodedFrame| frame.chunks().concat();
        let expected = [whole(&a), whole(&b), whole(&c), whole(&a), whole(&message(SMALL_WRITE))];
        assert_eq!(seen, expected, "whole frames, once each, in order");
    }

    /// A hand-framed write cut short (the peer does not read, the send time limit runs out)
    /// must not leave the stream with half a frame: what follows it (the ERROR a slow consumer
    /// is told, then the close) has to reach the peer as whole WebSocket frames.
    #[tokio::test]
    async fn a_write_cut_short_is_finished_before_anything_else_is_written() {
        // A pipe that holds 1 KiB: a 100 KiB frame cannot be written while nobody reads.
        let (server_end, client_end) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let mut transport = WebSocketTransport::server(ws, limits());
        let mut batch = Batch::from(vec![message(100 * 1024)]);
        let cut_short =
            tokio::time::timeout(Duration::from_millis(50), transport.send_taking(&mut batch))
                .await;
        assert!(cut_short.is_err(), "the write must still be waiting for the reader");
        // The peer starts reading; the server writes one more frame and closes.
        let reader = tokio::spawn(async move {
            let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
            let mut seen = Vec::new();
            while let Some(Ok(message)) = client.next().await {
                match message {
                    Message::Text(text) => seen.push(text.len()),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            seen
        });
        let last = message(10);
        transport.send(std::slice::from_ref(&last)).await.expect("the last frame is written");
        transport.close().await;
        let seen = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the reader finished")
            .expect("the reader did not panic");
        assert_eq!(seen, [message(100 * 1024).len(), last.len()], "two whole frames, in order");
    }

    /// A server reads its client's frames by hand: what a real client (tungstenite) sends
    /// arrives whole, its pings are answered, and its close ends the reading and is answered
    /// with the same code.
    #[tokio::test]
    async fn a_server_reads_a_clients_messages_answers_its_pings_and_echoes_its_close() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let (server_end, client_end) = tokio::io::duplex(64 * 1024);
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let mut transport = WebSocketTransport::server(ws, limits());
        let mut client = WebSocketStream::from_raw_socket(client_end, Role::Client, None).await;
        client.send(Message::text("SEND\ndestination:/a\n\nhi\0")).await.unwrap();
        client.send(Message::Ping(Bytes::from_static(b"there?"))).await.unwrap();
        client.send(Message::binary(vec![0xFF, 0x00])).await.unwrap();
        let mut buf = BytesMut::new();
        let expected = [&b"SEND\ndestination:/a\n\nhi\0"[..], &[0xFF, 0x00]].concat();
        while buf.len() < expected.len() {
            let read = tokio::time::timeout(Duration::from_secs(5), transport.recv(&mut buf));
            assert!(read.await.unwrap().unwrap() > 0);
        }
        assert_eq!(&buf[..], &expected[..]);
        let close = CloseFrame { code: CloseCode::Away, reason: "bye".into() };
        client.send(Message::Close(Some(close))).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), transport.recv(&mut buf));
        assert_eq!(read.await.unwrap().unwrap(), 0, "the close ends the reading");
        transport.close().await;
        drop(transport);
        let mut seen = Vec::new();
        let read_all = async {
            while let Some(Ok(message)) = client.next().await {
                seen.push(message);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read_all).await.expect("the stream ended");
        assert_eq!(seen.first(), Some(&Message::Pong(Bytes::from_static(b"there?"))), "{seen:?}");
        let echoed = seen.iter().find_map(|message| match message {
            Message::Close(frame) => Some(frame.as_ref().map(|frame| frame.code)),
            _ => None,
        });
        assert_eq!(echoed, Some(Some(CloseCode::Away)), "{seen:?}");
    }

    /// A broken frame from the client is a protocol error that names the rule it broke.
    #[tokio::test]
    async fn a_text_message_that_is_not_utf8_is_a_protocol_error() {
        use tokio::io::AsyncWriteExt as _;
        let (server_end, mut client_end) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        let mut transport = WebSocketTransport::server(ws, limits());
        // A masked (all-zero mask) text frame holding 0xC3 0x28.
        client_end.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]).await.unwrap();
        let mut buf = BytesMut::new();
        match transport.recv(&mut buf).await {
            Err(TransportError::Protocol(why)) => assert!(why.contains("UTF-8"), "{why}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }
}
