//! Running handlers for one session: a bounded queue in front of a task that calls them one
//! at a time, in the order the client sent its frames, and sends their replies.
//!
//! The session reads no further frames while the queue is full, so a client that sends
//! faster than its handlers finish is slowed down by TCP, not buffered without bound.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::context::MessageContext;
use super::error::{DispatchError, DispatchErrorKind, HandlerError};
use super::handler::Handler;
use super::reply::Message;
use crate::broker::Subscriber;
use crate::destination::fill;
use crate::runtime::Runtime;
use crate::signal::Signal;
use crate::stomp::{ByteStr, Frame};

/// Handler calls a session may have queued before it stops reading.
const QUEUE: usize = 32;

/// One handler call to make.
pub(crate) struct Job {
    pub(crate) handler: &'static Handler,
    pub(crate) context: Arc<MessageContext>,
    /// For a subscribe mapping: the subscription its reply goes to.
    pub(crate) subscriber: Option<Arc<Subscriber>>,
}

/// A failure that must end the session: the session sends `message` in an ERROR frame and
/// closes.
#[derive(Default)]
pub(crate) struct Fatal {
    /// The session's signal (raised after `message` is set).
    signal: Signal,
    message: OnceLock<String>,
}

impl Fatal {
    /// A failure that raises `signal` (the session's).
    pub(crate) fn new(signal: Signal) -> Self {
        Fatal { signal, message: OnceLock::new() }
    }

    pub(crate) fn raise(&self, message: String) {
        let _ = self.message.set(message);
        self.signal.raise();
    }

    /// Whether it was raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.message.get().is_some()
    }

    /// The error's message, once raised.
    pub(crate) fn message(&self) -> &str {
        self.message.get().map_or("a handler call failed", String::as_str)
    }
}

/// The session's side of its handler queue.
///
/// `repr(C)`, `waiting` first: the session loop looks at it at every wake-up, beside the
/// protocol's other blocking states (see `Protocol`).
#[repr(C)]
pub(crate) struct SessionDispatch {
    /// Jobs that did not fit in the queue; while any wait, the session reads nothing.
    waiting: VecDeque<Job>,
    runtime: Arc<Runtime>,
    sender: Option<mpsc::Sender<Job>>,
    fatal: Arc<Fatal>,
}

impl SessionDispatch {
    /// The handler queue of a session whose loop waits on `signal`.
    pub(crate) fn new(runtime: Arc<Runtime>, signal: Signal) -> Self {
        SessionDispatch {
            runtime,
            sender: None,
            waiting: VecDeque::new(),
            fatal: Arc::new(Fatal::new(signal)),
        }
    }

    pub(crate) fn fatal(&self) -> Arc<Fatal> {
        self.fatal.clone()
    }

    /// Queues a call; the worker task starts with the session's first one.
    pub(crate) fn submit(&mut self, job: Job) {
        if !self.waiting.is_empty() {
            self.waiting.push_back(job);
            return;
        }
        let sender = self.sender.get_or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            let runtime = self.runtime.clone();
            self.runtime.tracker.spawn(work(runtime, receiver, self.fatal.clone()));
            sender
        });
        match sender.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => self.waiting.push_back(job),
            // The worker only stops at shutdown, when the session is closing too.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether calls are waiting for room in the queue (the session must not read meanwhile).
    pub(crate) fn is_blocked(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Moves waiting calls into the queue as room frees up. Cancel-safe: a call leaves
    /// `waiting` only together with its queue slot.
    pub(crate) async fn unblock(&mut self) {
        let Some(sender) = &self.sender else { return };
        while !self.waiting.is_empty() {
            let Ok(permit) = sender.reserve().await else {
                self.waiting.clear();
                return;
            };
            if let Some(job) = self.waiting.pop_front() {
                permit.send(job);
            }
        }
    }
}

/// Runs the handler of a SEND to an application destination as a session would (extraction,
/// call, reply published to the broker), and returns once it is done: for benchmarks, through
/// [`Server::dispatch`](crate::Server::dispatch).
pub(crate) async fn dispatch_send(
    runtime: &Arc<Runtime>,
    frame: Frame,
) -> Result<(), DispatchError> {
    let error = DispatchError::new;
    let destination =
        frame.destination().ok_or(error(DispatchErrorKind::NoDestination))?.to_owned();
    let Some(prefix) = runtime.config.app_prefix_of(&destination) else {
        return Err(error(DispatchErrorKind::NotApplication { destination }));
    };
    let Some(matched) = runtime.router.find(false, prefix, &destination) else {
        return Err(error(DispatchErrorKind::NoHandler { destination }));
    };
    let handler = matched.handler;
    let session_id = ByteStr::from("in-process");
    let context = MessageContext::new(
        runtime.clone(),
        session_id,
        None,
        frame,
        destination.clone().into(),
        matched,
    );
    let context = Arc::new(context);
    let fatal = Fatal::default();
    run(runtime, Job { handler, context, subscriber: None }, &fatal).await;
    match fatal.is_raised() {
        true => {
            let message = fatal.message().to_owned();
            Err(error(DispatchErrorKind::Refused { destination, message }))
        }
        false => Ok(()),
    }
}

async fn work(runtime: Arc<Runtime>, mut jobs: mpsc::Receiver<Job>, fatal: Arc<Fatal>) {
    let shutdown = runtime.shutdown.clone();
    loop {
        let job = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = run(&runtime, job, &fatal) => {}
        }
    }
}

/// Calls the handler, then sends its reply or handles its error.
async fn run(runtime: &Arc<Runtime>, job: Job, fatal: &Fatal) {
    let Job { handler, context, subscriber } = job;
    let started = std::time::Instant::now();
    let result = call(handler, context.clone()).await;
    runtime.counters.handler_call(handler.name, started.elapsed(), result.is_err());
    let error = match result {
        Ok(reply) => {
            if let Some(message) = reply {
                deliver(runtime, handler, &context, subscriber.as_deref(), message);
            }
            return;
        }
        Err(error) => error,
    };
    if let Some(exception_handler) = runtime.router.exception_handler(&error) {
        let mut with_error = MessageContext::clone(&context);
        with_error.error = Some(error);
        with_error.handler = exception_handler.name;
        let started = std::time::Instant::now();
        let handled = call(exception_handler, Arc::new(with_error)).await;
        runtime.counters.handler_call(exception_handler.name, started.elapsed(), handled.is_err());
        match handled {
            Ok(Some(message)) => {
                deliver(runtime, exception_handler, &context, subscriber.as_deref(), message)
            }
            Ok(None) => {}
            Err(failed) => tracing::error!(
                handler = exception_handler.name,
                destination = %context.destination,
                "exception handler failed: {failed}"
            ),
        }
    } else if error.is_extraction() {
        // The client sent something its handler cannot take: a protocol-level error for the
        // client, as for any other malformed frame.
        tracing::warn!(session_id = %context.session_id, "{error}");
        fatal.raise(error.to_string());
    } else {
        tracing::error!(
            handler = error.handler(),
            destination = error.destination(),
            session_id = %context.session_id,
            "{error} (the session stays open; add a #[message_exception_handler] to reply instead)"
        );
    }
}

async fn call(
    handler: &'static Handler,
    context: Arc<MessageContext>,
) -> Result<Option<Message>, HandlerError> {
    let destination = context.destination.clone();
    match AssertUnwindSafe((handler.call)(context)).catch_unwind().await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(failure)) => Err(HandlerError::new(handler.name, &destination, failure)),
        Err(panic) => {
            let message = crate::intercept::panic_message(&*panic);
            Err(HandlerError::panicked(handler.name, &destination, message))
        }
    }
}

/// Sends a reply: to the handler's `send_to` destinations; else to the subscriber of a
/// subscribe mapping; else to the default destination, the first broker prefix followed by
/// the destination the message was sent to without its application prefix (`/app/hello`
/// replies to `/topic/hello`).
fn deliver(
    runtime: &Runtime,
    handler: &'static Handler,
    context: &MessageContext,
    subscriber: Option<&Subscriber>,
    message: Message,
) {
    let Message { headers, body } = message;
    if !handler.send_to_user.is_empty() {
        for destination in handler.send_to_user {
            let destination = fill(destination, &context.variables);
            let template = &runtime.template;
            // Spring's rule: without a principal, the calling session only.
            let delivered = match (handler.broadcast, &context.principal) {
                (true, Some(user)) => {
                    template.publish_to_user(user.name(), &destination, &headers, body.clone())
                }
                _ => template.publish_to_session(
                    &context.session_id,
                    &destination,
                    &headers,
                    body.clone(),
                ),
            };
            tracing::debug!(handler = handler.name, %destination, delivered, "reply sent to user");
        }
        return;
    }
    if handler.send_to.is_empty() {
        if let Some(subscriber) = subscriber {
            runtime.broker.deliver_to(subscriber, &context.destination, &headers, body);
            return;
        }
        let destination = format!("{}{}", runtime.config.default_reply_prefix(), context.lookup);
        publish(runtime, handler, destination, &headers, body);
        return;
    }
    for destination in handler.send_to {
        let destination = fill(destination, &context.variables);
        publish(runtime, handler, destination, &headers, body.clone());
    }
}

fn publish(
    runtime: &Runtime,
    handler: &Handler,
    destination: String,
    headers: &crate::stomp::Headers,
    body: bytes::Bytes,
) {
    let destination = ByteStr::from(destination);
    match runtime.template.publish(destination.clone(), headers, body) {
        Ok(delivered) => {
            tracing::debug!(handler = handler.name, %destination, delivered, "reply sent")
        }
        Err(e) => tracing::error!(handler = handler.name, "the reply was not sent: {e}"),
    }
}
