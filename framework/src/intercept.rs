//! Interceptors: application code on the message flow, Spring's `ChannelInterceptor` on the
//! client inbound and outbound channels.
//!
//! An **inbound** interceptor sees every frame a client sends, after decoding and before
//! anything else does (the access rules, the broker, a handler), and decides: pass it on (as
//! is, or changed: a header added, a destination rewritten), reject it (the client gets an
//! `ERROR` with the interceptor's message and is closed), or drop it silently. An **outbound**
//! interceptor sees every frame queued for a client (MESSAGE, RECEIPT, ERROR, CONNECTED) before
//! it is written, and passes it on (changed or not) or drops it for that session.
//!
//! Interceptors run in the order they were registered, on the session's own task, and may be
//! async; a chain is bounded by [`ServerBuilder::interceptor_timeout`](crate::ServerBuilder::interceptor_timeout)
//! (5 s): an inbound chain that takes longer, or panics, ends the session with an `ERROR`
//! (it fails closed: an interceptor may be a security check), an outbound one drops the frame
//! for that session; both are logged. With no interceptor registered, nothing of this runs.
//!
//! ```
//! use stompede::Server;
//! use stompede::intercept::{Inbound, Outbound};
//!
//! let server = Server::builder()
//!     // Stamp every SEND with who sent it; refuse SENDs with a body over 1 KiB.
//!     .inbound_interceptor(|mut frame, session| async move {
//!         if frame.command == stompede::stomp::Command::Send {
//!             if frame.body.len() > 1024 {
//!                 return Inbound::Reject("messages are limited to 1 KiB here".into());
//!             }
//!             let who = session.principal.as_ref().map_or("anonymous", |p| p.name()).to_owned();
//!             frame.headers.set("x-sender", who);
//!         }
//!         Inbound::Pass(frame)
//!     })
//!     // Hide an internal header from clients.
//!     .outbound_interceptor(|mut frame, _session| async move {
//!         frame.headers.remove("x-internal");
//!         Outbound::Pass(frame)
//!     })
//!     .build()
//!     .unwrap();
//! # drop(server);
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::security::Principal;
use crate::stomp::Frame;

/// What an inbound interceptor decides about a client's frame.
#[derive(Debug)]
#[non_exhaustive]
pub enum Inbound {
    /// Hand the frame (as is, or changed) to the next interceptor, then to the server.
    Pass(Frame),
    /// Refuse it: the client gets an `ERROR` with this message, and the session closes.
    Reject(String),
    /// Drop it without a word (a RECEIPT it asked for is still sent, so that the client does
    /// not wait for it forever).
    Drop,
}

/// What an outbound interceptor decides about a frame for a client.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outbound {
    /// Hand the frame (as is, or changed) to the next interceptor, then to the client.
    Pass(Frame),
    /// Do not send it to this session.
    Drop,
}

/// What interceptors see of the session a frame belongs to.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's id (the CONNECTED frame's `session` header).
    pub session_id: String,
    /// Who it is, once known (the handshake's principal, or the authenticator's at CONNECT).
    pub principal: Option<Principal>,
    /// What the handshake attached (the handshake hook's values, a CSRF token).
    pub attributes: http::Extensions,
    /// How the client is connected: `websocket`, `sockjs-websocket`, `sockjs-xhr`,
    /// `sockjs-xhr_streaming`, `sockjs-eventsource`, `sockjs-htmlfile` or `tcp`.
    pub transport: &'static str,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A registered inbound interceptor.
pub(crate) type InboundFn = dyn Fn(Frame, Arc<SessionInfo>) -> BoxFuture<Inbound> + Send + Sync;
/// A registered outbound interceptor.
pub(crate) type OutboundFn = dyn Fn(Frame, Arc<SessionInfo>) -> BoxFuture<Outbound> + Send + Sync;

/// The interceptors of a server, in order.
#[derive(Clone, Default)]
pub(crate) struct Interceptors {
    pub(crate) inbound: Vec<Arc<InboundFn>>,
    pub(crate) outbound: Vec<Arc<OutboundFn>>,
    pub(crate) timeout: Option<Duration>,
}

/// The default bound of one chain.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Interceptors {
    pub(crate) fn add_inbound<F, Fut>(&mut self, interceptor: F)
    where
        F: Fn(Frame, Arc<SessionInfo>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Inbound> + Send + 'static,
    {
        self.inbound.push(Arc::new(move |frame, session| Box::pin(interceptor(frame, session))));
    }

    pub(crate) fn add_outbound<F, Fut>(&mut self, interceptor: F)
    where
        F: Fn(Frame, Arc<SessionInfo>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outbound> + Send + 'static,
    {
        self.outbound.push(Arc::new(move |frame, session| Box::pin(interceptor(frame, session))));
    }

    pub(crate) fn limit(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Runs the inbound chain on a client's frame: `Err` is why the session must end.
    pub(crate) fn run_inbound(
        &self,
        frame: Frame,
        session: Arc<SessionInfo>,
    ) -> BoxFuture<Result<Inbound, String>> {
        let (chain, limit) = (self.inbound.clone(), self.limit());
        Box::pin(async move {
            let run = async {
                let mut frame = frame;
                for interceptor in &chain {
                    match interceptor(frame, session.clone()).await {
                        Inbound::Pass(next) => frame = next,
                        other => return other,
                    }
                }
                Inbound::Pass(frame)
            };
            match tokio::time::timeout(limit, AssertUnwindSafe(run).catch_unwind()).await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(panic)) => {
                    let why = panic_message(&*panic);
                    tracing::error!(session_id = %session.session_id, "an inbound interceptor panicked: {why}");
                    Err("the server could not process the frame (an interceptor failed)".into())
                }
                Err(_) => {
                    tracing::warn!(session_id = %session.session_id, "the inbound interceptors took longer than {limit:?} (interceptor_timeout)");
                    Err(format!("the server could not process the frame within {limit:?}"))
                }
            }
        })
    }

    /// Runs the outbound chain on a frame for a client: `None` drops it.
    pub(crate) async fn run_outbound(
        &self,
        frame: Frame,
        session: &Arc<SessionInfo>,
    ) -> Option<Frame> {
        let run = async {
            let mut frame = frame;
            for interceptor in &self.outbound {
                match interceptor(frame, session.clone()).await {
                    Outbound::Pass(next) => frame = next,
                    Outbound::Drop => return None,
                }
            }
            Some(frame)
        };
        let limit = self.limit();
        match tokio::time::timeout(limit, AssertUnwindSafe(run).catch_unwind()).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => {
                let why = panic_message(&*panic);
                tracing::error!(session_id = %session.session_id, "an outbound interceptor panicked: {why}; the frame was not sent");
                None
            }
            Err(_) => {
                tracing::warn!(session_id = %session.session_id, "the outbound interceptors took longer than {limit:?} (interceptor_timeout); the frame was not sent");
                None
            }
        }
    }
}

/// The text of a caught panic (handlers' and interceptors').
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}
