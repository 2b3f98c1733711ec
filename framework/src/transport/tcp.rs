//! STOMP over a plain TCP connection (what `stomp.py` and most non-browser clients speak).

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Transport, TransportError};
use crate::outbox::Batch;
use crate::stomp::EncodedFrame;

pub(crate) struct TcpTransport<S> {
    stream: S,
    out: BytesMut,
}

impl<S> TcpTransport<S> {
    pub(crate) fn new(stream: S) -> Self {
        TcpTransport { stream, out: BytesMut::new() }
    }
}

/// Bytes read per `recv` at most; the decoder's limits bound the buffer as a whole.
const READ_CHUNK: usize = 8 * 1024;

impl<S> Transport for TcpTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self, buf: &mut BytesMut) -> Result<usize, TransportError> {
        buf.reserve(READ_CHUNK);
        // `read_buf` is cancel-safe: bytes are only appended once the read completes.
        let mut limited = (&mut self.stream).take(READ_CHUNK as u64);
        Ok(limited.read_buf(buf).await?)
    }

    async fn send(&mut self, frames: &[EncodedFrame]) -> io::Result<()> {
        self.write_all(frames.iter()).await
    }

    async fn send_taking(&mut self, frames: &mut Batch) -> io::Result<()> {
        self.write_all(frames.iter()).await
    }

    async fn send_heartbeat(&mut self) -> io::Result<()> {
        self.stream.write_all(b"\n").await?;
        self.stream.flush().await
    }

    async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

impl<S> TcpTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Writes `frames` in order, copied into one buffer, and flushes.
    async fn write_all<'a>(
        &mut self,
        frames: impl Iterator<Item = &'a EncodedFrame> + Send,
    ) -> io::Result<()> {
        self.out.clear();
        for frame in frames {
            frame.write_to(&mut self.out);
        }
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        // Don't keep a burst's worth of memory around on an idle connection.
        if self.out.capacity() > 64 * 1024 {
            self.out = BytesMut::new();
        }
        Ok(())
    }
}
