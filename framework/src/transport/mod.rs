//! Transports: how STOMP bytes reach a session and leave it.
//!
//! A session only sees the [`Transport`] trait, so WebSocket, raw TCP (and SockJS) share every
//! line of protocol code. `service` holds the endpoints as a hyper/tower service.

pub(crate) mod accept;
pub(crate) mod assets;
pub(crate) mod body;
pub(crate) mod connections;
#[cfg(feature = "axum")]
pub(crate) mod mount;
pub(crate) mod read_ahead;
pub(crate) mod service;
#[cfg(feature = "sockjs")]
pub(crate) mod sockjs;
pub(crate) mod stall;
// Also the relay's connections to the external broker.
pub(crate) mod tcp;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod websocket;
mod ws_read;

use std::future::Future;
use std::io;
#[cfg(feature = "sockjs")]
use std::sync::Arc;

use bytes::BytesMut;

use crate::config::Config;
use crate::outbox::Batch;
use crate::stomp::EncodedFrame;

/// The HTTP side's own state, apart from the runtime: the SockJS endpoints and their sessions
/// (nothing without the `sockjs` feature).
pub(crate) struct Endpoints {
    #[cfg(feature = "sockjs")]
    pub(crate) sockjs: Vec<Arc<sockjs::SockJsEndpoint>>,
}

impl Endpoints {
    pub(crate) fn new(config: &Config) -> Self {
        #[cfg(not(feature = "sockjs"))]
        let _ = config;
        Endpoints {
            #[cfg(feature = "sockjs")]
            sockjs: config
                .endpoints
                .iter()
                .filter_map(|e| {
                    let options = e.sockjs.clone()?;
                    Some(Arc::new(sockjs::SockJsEndpoint::new(e.path.clone(), options)))
                })
                .collect(),
        }
    }
}

/// Why a transport stopped delivering bytes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// The connection failed or was reset.
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
    /// One transport message is larger than the inbound limit (WebSocket).
    #[error("a WebSocket message exceeds the {0}-byte limit (set message_size_limit to raise it)")]
    MessageTooLarge(usize),
    /// The peer does not read what the transport must send it (the pongs to its pings).
    #[error("{0}")]
    SlowConsumer(String),
    /// The peer broke the transport's own protocol (a bad WebSocket frame, say).
    #[error("{0}")]
    Protocol(String),
}

/// What [`Transport::send_now`] did with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SentNow {
    /// Nothing: [`send_taking`](Transport::send_taking) is to write the batch.
    NotTried,
    /// Wrote and flushed all of it.
    Done,
    /// Took all of it into its own buffer (the batch is left empty) but could not write all
    /// of that yet: [`send_taking`](Transport::send_taking), given the empty batch, finishes.
    Started,
}

/// A bidirectional byte channel carrying STOMP frames.
pub(crate) trait Transport: Send {
    /// Appends received bytes to `buf`. Returns 0 when the peer closed the connection.
    /// Must be cancel-safe: the session polls it in a `select!`.
    fn recv(
        &mut self,
        buf: &mut BytesMut,
    ) -> impl Future<Output = Result<usize, TransportError>> + Send;

    /// Writes `frames` in order and flushes.
    fn send(&mut self, frames: &[EncodedFrame]) -> impl Future<Output = io::Result<()>> + Send;

    /// Like [`send`](Transport::send), for a batch taken from the session's outbox: the
    /// transport may take the frames out of `frames` (leaving it empty, or holding what it did
    /// not take), saving a reference count each way per frame where it hands their buffers on.
    /// The caller empties `frames` afterwards.
    fn send_taking(&mut self, frames: &mut Batch) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes a batch [`measure`](Batch::measure)d beforehand at once, when that needs no wait:
    /// a quiet session's write then makes no future (its state is a few cache lines of the
    /// session's, written and read for each message). What it did is [`SentNow`]; the default
    /// tries nothing.
    fn send_now(&mut self, frames: &mut Batch) -> io::Result<SentNow> {
        let _ = frames;
        Ok(SentNow::NotTried)
    }

    /// Whether the session loop may skip polling [`recv`](Transport::recv) until a waker a
    /// previous, dropped `recv` registered has fired (`signal::Gate`): only when every such
    /// waker stays registered (a socket's readiness) and no deadline or cancellation lives
    /// inside `recv` for the moment. False unless a transport says otherwise.
    fn reads_may_be_gated(&self) -> bool {
        false
    }

    /// Whether every byte [`recv`](Transport::recv) has appended so far is known to be UTF-8
    /// (WebSocket text messages, checked as they were read; the last character may be
    /// unfinished), so that a STOMP body cut from them (whole characters: it starts after a
    /// `\n` and ends before a NUL) need not be checked again. False unless a transport knows it.
    fn inbound_is_utf8(&self) -> bool {
        false
    }

    /// Writes one heart-beat EOL and flushes.
    fn send_heartbeat(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the connection cleanly (WebSocket close handshake, TCP shutdown).
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// A session's last write: `frames` in order (its last frames, such as a DISCONNECT's
    /// receipt or an ERROR), then the clean close, as [`send`](Transport::send) and
    /// [`close`](Transport::close) do. `Err` if the frames could not be written; the
    /// connection is then not closed cleanly (it is dropped). A transport that can puts both
    /// in one write: two writes were a system call and a packet more at every session's end.
    fn send_and_close(
        &mut self,
        frames: &[EncodedFrame],
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            self.send(frames).await?;
            self.close().await;
            Ok(())
        }
    }
}
