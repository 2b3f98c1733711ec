//! A SockJS session: the STOMP session's transport on one side, a succession of receiving
//! requests (or one WebSocket) on the other.
//!
//! The STOMP session writes frames into a bounded queue and reads what `xhr_send` (or the
//! WebSocket) pushed into a bounded channel. At most one receiver is attached at a time; it
//! takes the queue's content as SockJS frames. When no receiver has been attached for the
//! disconnect delay, the session expires and the STOMP session ends as if the connection had
//! dropped.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::frames::{self, Close};
use crate::outbox::Batch;
use crate::stomp::EncodedFrame;
use crate::transport::{Transport, TransportError};

/// Client messages (each at most an `xhr_send` body) a session holds before `xhr_send` waits
/// for the STOMP session to read.
const INBOUND: usize = 8;

pub(crate) struct SockJsSession {
    pub(crate) id: String,
    inbound: mpsc::Sender<Bytes>,
    state: Mutex<SessionState>,
    /// Wakes the attached receiver: messages queued, or the session closed.
    wake_receiver: Notify,
    /// Wakes the STOMP session's `send` waiting for room in the queue.
    wake_sender: Notify,
    /// Whether a receiver is attached (watched by the disconnect-delay timer).
    attached: watch::Sender<bool>,
    /// Cancelled when the session expires: the STOMP session sees its connection drop.
    expired: CancellationToken,
    cache_size: usize,
    /// Bytes the queue may hold (besides its first message), so that a cache of large
    /// messages stays bounded too.
    cache_bytes: usize,
}

#[derive(Default)]
struct SessionState {
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    receiver: Option<u64>,
    next_receiver: u64,
    opened: bool,
    closed: Option<Close>,
}

/// What an attached receiver should send next.
pub(crate) enum Output {
    /// The open frame (first thing a session sends).
    Open,
    /// Queued messages, in order.
    Messages(Vec<Bytes>),
    /// The close frame: the session is over.
    Close(Close),
    /// Nothing yet: wait for [`SockJsSession::changed`] or send a heart-beat.
    Nothing,
}

impl Output {
    /// The SockJS frame that says this (`o`, `a[...]`, `c[...]`); `None` for `Nothing`.
    pub(crate) fn frame(&self) -> Option<String> {
        match self {
            Output::Open => Some(frames::OPEN.to_owned()),
            Output::Messages(messages) => Some(frames::messages(messages)),
            Output::Close(close) => Some(close.frame()),
            Output::Nothing => None,
        }
    }
}

impl SockJsSession {
    /// A new session holding at most `cache_size` messages and `cache_bytes` bytes for its
    /// client, and the receiving end of its inbound channel (for the transport).
    pub(crate) fn new(
        id: String,
        cache_size: usize,
        cache_bytes: usize,
    ) -> (Arc<Self>, mpsc::Receiver<Bytes>) {
        let (inbound, receiver) = mpsc::channel(INBOUND);
        let session = SockJsSession {
            id,
            inbound,
            state: Mutex::new(SessionState::default()),
            wake_receiver: Notify::new(),
            wake_sender: Notify::new(),
            attached: watch::Sender::new(false),
            expired: CancellationToken::new(),
            cache_size: cache_size.max(1),
            cache_bytes,
        };
        (Arc::new(session), receiver)
    }

    fn state(&self) -> MutexGuard<'_, SessionState> {
        // The state stays consistent under every panic-free path; a poisoned lock only means
        // another request panicked, which must not take this session down too.
        crate::locks::lock(&self.state)
    }

    /// Attaches a receiver, unless one already is.
    pub(crate) fn attach(self: &Arc<Self>) -> Option<Receiver> {
        let mut state = self.state();
        if state.receiver.is_some() {
            return None;
        }
        let token = state.next_receiver;
        state.next_receiver += 1;
        state.receiver = Some(token);
        drop(state);
        self.attached.send_replace(true);
        Some(Receiver { session: self.clone(), token })
    }

    /// Whether the session is over (closed by the server, or expired).
    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed.is_some() || self.expired.is_cancelled()
    }

    /// Hands client messages to the STOMP session, waiting while its inbound channel is full.
    /// `Err` if the session is over.
    pub(crate) async fn push_inbound(&self, messages: Vec<String>) -> Result<(), ()> {
        for message in messages {
            if message.is_empty() {
                continue;
            }
            tokio::select! {
                sent = self.inbound.send(Bytes::from(message)) => sent.map_err(|_| ())?,
                () = self.expired.cancelled() => return Err(()),
            }
        }
        Ok(())
    }

    /// Ends the session now (its receiver went away for good, or the disconnect delay passed).
    pub(crate) fn expire(&self) {
        self.expired.cancel();
        self.wake_sender.notify_one();
        self.wake_receiver.notify_one();
    }

    /// Waits until `delay` has passed with no receiver attached (then returns `true`), or the
    /// session expired otherwise (`false`).
    pub(crate) async fn idle_for(&self, delay: Duration) -> bool {
        let mut attached = self.attached.subscribe();
        loop {
            if *attached.borrow_and_update() {
                tokio::select! {
                    changed = attached.changed() => if changed.is_err() { return false },
                    () = self.expired.cancelled() => return false,
                }
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    if !*attached.borrow() {
                        return true;
                    }
                }
                changed = attached.changed() => if changed.is_err() { return false },
                () = self.expired.cancelled() => return false,
            }
        }
    }

    fn close(&self, close: Close) {
        let mut state = self.state();
        if state.closed.is_none() {
            state.closed = Some(close);
        }
        drop(state);
        self.wake_receiver.notify_one();
        self.wake_sender.notify_one();
    }
}

/// An attached receiver; detaches when dropped.
pub(crate) struct Receiver {
    session: Arc<SockJsSession>,
    token: u64,
}

impl Receiver {
    /// What to send next. Messages taken here are gone from the queue: a receiver that fails
    /// to deliver them gives them back with [`Receiver::give_back`].
    pub(crate) fn next(&self) -> Output {
        let session = &self.session;
        let mut state = session.state();
        if !state.opened {
            state.opened = true;
            return Output::Open;
        }
        if !state.queue.is_empty() {
            let messages: Vec<Bytes> = state.queue.drain(..).collect();
            state.queued_bytes = 0;
            drop(state);
            session.wake_sender.notify_one();
            return Output::Messages(messages);
        }
        if let Some(close) = state.closed {
            return Output::Close(close);
        }
        if session.expired.is_cancelled() {
            return Output::Close(Close::GO_AWAY);
        }
        Output::Nothing
    }

    /// Puts messages that could not be delivered back at the head of the queue.
    pub(crate) fn give_back(&self, messages: Vec<Bytes>) {
        let mut state = self.session.state();
        for message in messages.into_iter().rev() {
            state.queued_bytes += message.len();
            state.queue.push_front(message);
        }
    }

    /// Completes when there may be something new to send.
    pub(crate) async fn changed(&self) {
        self.session.wake_receiver.notified().await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.session.state();
        if state.receiver == Some(self.token) {
            state.receiver = None;
            drop(state);
            self.session.attached.send_replace(false);
        }
    }
}

/// The STOMP session's side of a SockJS session.
pub(crate) struct StompSide {
    session: Arc<SockJsSession>,
    inbound: mpsc::Receiver<Bytes>,
}

impl StompSide {
    pub(crate) fn new(session: Arc<SockJsSession>, inbound: mpsc::Receiver<Bytes>) -> Self {
        StompSide { session, inbound }
    }

    /// Queues one message, waiting while the queue is full (the session's send time limit
    /// then decides whether the client is too slow).
    async fn queue(&self, message: Bytes) -> io::Result<()> {
        let session = &self.session;
        loop {
            let room = session.wake_sender.notified();
            {
                let mut state = session.state();
                if state.closed.is_some() || session.expired.is_cancelled() {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "SockJS session closed"));
                }
                let room = state.queue.is_empty()
                    || (state.queue.len() < session.cache_size
                        && state.queued_bytes + message.len() <= session.cache_bytes);
                if room {
                    state.queued_bytes += message.len();
                    state.queue.push_back(message);
                    drop(state);
                    session.wake_receiver.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }
}

impl Transport for StompSide {
    async fn recv(&mut self, buf: &mut BytesMut) -> Result<usize, TransportError> {
        loop {
            let message = tokio::select! {
                biased;
                message = self.inbound.recv() => message,
                () = self.session.expired.cancelled() => None,
            };
            match message {
                Some(bytes) if bytes.is_empty() => continue,
                Some(bytes) => {
                    buf.extend_from_slice(&bytes);
                    return Ok(bytes.len());
                }
                None => return Ok(0),
            }
        }
    }

    async fn send(&mut self, frames: &[EncodedFrame]) -> io::Result<()> {
        for frame in frames {
            self.queue(frame.to_bytes()).await?;
        }
        Ok(())
    }

    async fn send_taking(&mut self, frames: &mut Batch) -> io::Result<()> {
        // Taken: a contiguous frame's buffer is queued as it is.
        for frame in frames.drain() {
            self.queue(frame.into_bytes()).await?;
        }
        Ok(())
    }

    async fn send_heartbeat(&mut self) -> io::Result<()> {
        self.queue(Bytes::from_static(b"\n")).await
    }

    async fn close(&mut self) {
        self.session.close(Close::GO_AWAY);
    }
}

impl Drop for StompSide {
    fn drop(&mut self) {
        // However the STOMP session ended, its receivers say goodbye.
        self.session.close(Close::GO_AWAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn frame(text: &'static str) -> EncodedFrame {
        crate::stomp::encode(
            &crate::stomp::Frame::new(crate::stomp::Command::Message).body(text),
            crate::stomp::Version::V1_2,
        )
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_messages_and_bytes_and_loses_nothing() {
        let (session, inbound) = SockJsSession::new("s".into(), 100, 40);
        let mut transport = StompSide::new(session.clone(), inbound);
        let receiver = session.attach().expect("first receiver");
        assert!(matches!(receiver.next(), Output::Open));
        assert!(session.attach().is_none(), "one receiver at a time");

        // The first message always fits; the next would pass 40 bytes: the sender waits.
        let first = [frame("0123456789")];
        transport.send(&first).now_or_never().expect("room").expect("sent");
        let second = [frame("abcdefghij")];
        let mut waiting = Box::pin(transport.send(&second));
        assert!(waiting.as_mut().now_or_never().is_none(), "over the byte cap: waits");

        let Output::Messages(taken) = receiver.next() else { panic!("the first message") };
        assert_eq!(taken.len(), 1);
        waiting.await.expect("room again");
        let Output::Messages(taken) = receiver.next() else { panic!("the second message") };
        assert!(taken[0].ends_with(b"abcdefghij\0"));

        // A receiver that cannot deliver gives messages back, in order.
        receiver.give_back(taken);
        let Output::Messages(again) = receiver.next() else { panic!("given back") };
        assert!(again[0].ends_with(b"abcdefghij\0"));

        drop(receiver);
        assert!(session.attach().is_some(), "a detached receiver frees the slot");
        transport.close().await;
        assert!(session.is_closed());
    }
}
