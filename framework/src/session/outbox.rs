//! A session's outbound queue, bounded in bytes.
//!
//! Publishers (the broker's fan-out, other sessions, the messaging template) push frames
//! without ever waiting. The queue may go over its byte limit for a while: a consumer that is
//! merely slow catches up. One that stays over the limit for longer than the send time limit,
//! or lets the queue reach twice the limit, is closed with a logged reason; its memory is then
//! freed, and nobody else is slowed down. So the queue never holds more than
//! `2 × limit` bytes (plus one frame, which an empty queue always accepts).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::stomp::EncodedFrame;

/// The sending side of a session's outbound queue, shared with every publisher.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<EncodedFrame>,
    /// Bytes pushed and not yet written to the transport. The queue's bound rests on this.
    queued: AtomicUsize,
    limit: usize,
    send_time_limit: Duration,
    over_since: Mutex<Option<Instant>>,
    closed: CancellationToken,
    reason: OnceLock<String>,
}

/// The session's end of the queue.
pub(crate) struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<EncodedFrame>,
}

impl Outbox {
    pub(crate) fn new(
        limit: usize,
        send_time_limit: Duration,
    ) -> (std::sync::Arc<Outbox>, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            send_time_limit,
            over_since: Mutex::new(None),
            closed: CancellationToken::new(),
            reason: OnceLock::new(),
        };
        (std::sync::Arc::new(outbox), OutboxReceiver { rx })
    }

    /// Queues a frame. Returns false when the session is closed (or is being closed now
    /// because of this push); the frame is dropped then.
    pub(crate) fn push(&self, frame: EncodedFrame) -> bool {
        if self.closed.is_cancelled() {
            return false;
        }
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        let total = before + len;
        if before > 0 && total > self.limit {
            if total > self.limit.saturating_mul(2) {
                self.close(format!(
                    "slow consumer: outbound queue reached {total} bytes, twice the {}-byte send buffer limit (raise send_buffer_size_limit, or make the client read faster)",
                    self.limit
                ));
                self.queued.fetch_sub(len, Ordering::AcqRel);
                return false;
            }
            let mut over = self.over_since.lock().unwrap_or_else(|e| e.into_inner());
            let since = *over.get_or_insert_with(Instant::now);
            if since.elapsed() > self.send_time_limit {
                drop(over);
                self.close(format!(
                    "slow consumer: outbound queue stayed over the {}-byte send buffer limit for more than {:?} (the send time limit)",
                    self.limit, self.send_time_limit
                ));
                self.queued.fetch_sub(len, Ordering::AcqRel);
                return false;
            }
        }
        if self.tx.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Records that `bytes` of queued frames reached the transport.
    pub(crate) fn written(&self, bytes: usize) {
        let left = self.queued.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        if left <= self.limit {
            *self.over_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Asks the session to close, for `reason` (the first reason given wins).
    pub(crate) fn close(&self, reason: String) {
        let _ = self.reason.set(reason);
        self.closed.cancel();
    }

    /// Completes when [`close`](Outbox::close) has been called.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Why the session was closed, if it was.
    pub(crate) fn close_reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

impl OutboxReceiver {
    /// Waits for frames and moves up to `max` of them into `batch`; 0 when every sender is gone.
    pub(crate) async fn recv_many(&mut self, batch: &mut Vec<EncodedFrame>, max: usize) -> usize {
        self.rx.recv_many(batch, max).await
    }

    /// Takes whatever is queued now, without waiting.
    pub(crate) fn drain_now(&mut self, batch: &mut Vec<EncodedFrame>) {
        while let Ok(frame) = self.rx.try_recv() {
            batch.push(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::{Command, Frame, Version, encode};

    fn frame(size: usize) -> EncodedFrame {
        encode(&Frame::new(Command::Message).body(vec![b'x'; size]), Version::V1_2)
    }

    #[test]
    fn an_empty_queue_accepts_any_frame() {
        let (outbox, _rx) = Outbox::new(100, Duration::from_secs(10));
        assert!(outbox.push(frame(1000)));
        assert!(outbox.close_reason().is_none());
    }

    #[test]
    fn reaching_twice_the_limit_closes_at_once_and_frees_the_bytes() {
        let (outbox, _rx) = Outbox::new(1000, Duration::from_secs(3600));
        let mut pushed = 0;
        while outbox.push(frame(100)) {
            pushed += 1;
            assert!(pushed < 100, "the queue never closed");
        }
        assert!(outbox.close_reason().unwrap().contains("twice the 1000-byte"));
        assert!(outbox.queued_bytes() <= 2000);
        assert!(!outbox.push(frame(1)), "a closed outbox takes nothing");
    }

    #[test]
    fn staying_over_the_limit_past_the_time_limit_closes() {
        let limit = Duration::from_millis(300);
        let (outbox, _rx) = Outbox::new(150, limit);
        assert!(outbox.push(frame(100)));
        // Over the limit for the first time: the clock starts, well within the time limit.
        assert!(outbox.push(frame(10)));
        // The behaviour under test is "stays over the limit for longer than the time limit":
        // let that time pass, then the next push closes the session.
        std::thread::sleep(limit + Duration::from_millis(50));
        assert!(!outbox.push(frame(10)));
        assert!(outbox.close_reason().unwrap().contains("send time limit"));
    }

    #[test]
    fn catching_up_resets_the_clock() {
        let (outbox, mut rx) = Outbox::new(150, Duration::from_millis(50));
        assert!(outbox.push(frame(100)));
        assert!(outbox.push(frame(100)));
        let mut batch = Vec::new();
        rx.drain_now(&mut batch);
        outbox.written(batch.iter().map(EncodedFrame::len).sum());
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(outbox.over_since.lock().unwrap().is_none());
    }
}
