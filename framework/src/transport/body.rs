//! [`ResponseBody`]: what [`StompService`](crate::StompService) answers with, a whole body or a
//! stream of chunks (the SockJS streaming transports).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// The response body of [`StompService`](crate::StompService): a complete body, or chunks
/// written as they come (a SockJS streaming response). Implements `http_body::Body`, so hyper
/// and axum serve it as they are.
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    // SockJS's streaming transports are the only streamed responses.
    #[cfg_attr(not(feature = "sockjs"), allow(dead_code))]
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    /// A complete body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody { kind: Kind::Full((!bytes.is_empty()).then_some(bytes)) }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        ResponseBody { kind: Kind::Full(None) }
    }

    /// A body made of the chunks sent on the channel, ending when every sender is gone.
    #[cfg_attr(not(feature = "sockjs"), allow(dead_code))]
    pub(crate) fn stream(chunks: mpsc::Receiver<Bytes>) -> Self {
        ResponseBody { kind: Kind::Stream(chunks) }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => {
                write!(f, "ResponseBody::Full({} bytes)", bytes.as_ref().map_or(0, Bytes::len))
            }
            Kind::Stream(_) => f.write_str("ResponseBody::Stream"),
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(chunks) => chunks.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
