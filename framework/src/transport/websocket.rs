//! STOMP over WebSocket (RFC 6455), via tokio-tungstenite.
//!
//! Outbound frames travel one per WebSocket message: text when the frame is UTF-8, binary
//! otherwise (clients must reject invalid UTF-8 in a text message). Inbound, text and binary
//! messages are both accepted, and their bytes are simply appended to the decoder's buffer, so
//! a frame may span several messages or share one with others.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::{Transport, TransportError};
use crate::stomp::EncodedFrame;

/// WebSocket settings sized for many mostly idle connections: a small read buffer, a write
/// buffer that batches a burst into one syscall, and an inbound message limit derived from the
/// frame limit.
pub(crate) fn config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        // Frames of a batch collect here and go out in one write on flush (0 would mean one
        // syscall per frame: 30x the syscalls of a buffered writer in the fan-out benchmark;
        // 8 KiB split a 64-frame batch of 100-byte messages in two). The buffer grows only as
        // far as a batch needs.
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

pub(crate) struct WebSocketTransport<S> {
    ws: WebSocketStream<S>,
    max_message_size: usize,
}

impl<S> WebSocketTransport<S> {
    pub(crate) fn new(ws: WebSocketStream<S>, max_message_size: usize) -> Self {
        WebSocketTransport { ws, max_message_size }
    }
}

/// The WebSocket message for one encoded frame.
pub(crate) fn to_message(frame: &EncodedFrame) -> Message {
    let bytes = frame.to_bytes();
    if frame.is_utf8() {
        // SAFETY: `is_utf8` is true only when the body passed a UTF-8 check; the head is made of
        // the ASCII command, `ByteStr` header text (UTF-8 by construction) and ASCII escapes and
        // separators, so the whole frame is UTF-8.
        Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(bytes) })
    } else {
        Message::Binary(bytes)
    }
}

impl<S> Transport for WebSocketTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self, buf: &mut BytesMut) -> Result<usize, TransportError> {
        loop {
            let Some(message) = self.ws.next().await else { return Ok(0) };
            let payload: Bytes = match message {
                Ok(Message::Text(text)) => text.into(),
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(_)) => return Ok(0),
                // Pings are answered by tungstenite itself; pongs need nothing.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(0),
                Err(WsError::Io(e)) => return Err(TransportError::Io(e)),
                Err(WsError::Capacity(_)) => {
                    return Err(TransportError::MessageTooLarge(self.max_message_size));
                }
                Err(e) => {
                    return Err(TransportError::Protocol(format!("WebSocket protocol error: {e}")));
                }
            };
            if payload.is_empty() {
                continue;
            }
            buf.extend_from_slice(&payload);
            return Ok(payload.len());
        }
    }

    async fn send(&mut self, frames: &[EncodedFrame]) -> io::Result<()> {
        for frame in frames {
            self.ws.feed(to_message(frame)).await.map_err(into_io)?;
        }
        self.ws.flush().await.map_err(into_io)
    }

    async fn send_heartbeat(&mut self) -> io::Result<()> {
        self.ws.send(Message::Text(Utf8Bytes::from_static("\n"))).await.map_err(into_io)
    }

    async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}

pub(crate) fn into_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}
