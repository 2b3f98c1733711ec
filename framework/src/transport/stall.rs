//! A deadline on writes that make no progress, for HTTP connections that hold a slot among
//! `max_http_connections`.
//!
//! hyper bounds how long a request head may take to arrive, but not how long a response may
//! wait for the client to read it: a client that pipelines requests and never reads the answers
//! would otherwise keep its connection, and its slot, for ever. Once the connection carries a
//! session (its slot released), the session's own send time limit applies instead. A session
//! on the plain listener's socket runs without this wrapper (`WriteStall::into_inner`): it
//! bounds every write itself, with the same limit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::connections::ConnectionSlot;

/// `inner` whose writes fail with `TimedOut` after `limit` without progress, while `slot` is
/// held.
pub(crate) struct WriteStall<T> {
    inner: T,
    limit: Duration,
    slot: ConnectionSlot,
    /// Running while a write is pending: reset by any write that completes.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStall<T> {
    pub(crate) fn new(inner: T, limit: Duration, slot: ConnectionSlot) -> Self {
        WriteStall { inner, limit, slot, stalled: None }
    }

    /// The stream, for a connection that becomes a session: every write of a session is
    /// bounded by its own send time limit (the same limit), whether or not it holds the slot.
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if result.is_ready() || !self.slot.is_held() {
            // Looked at first: assigning over a `None` still calls its drop, on every write.
            if self.stalled.is_some() {
                self.stalled = None;
            }
            return result;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client has not read the response for {limit:?} (the send time limit)"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, result)
    }
}
