//! The runtime state every session of one server shares: the checked configuration, the
//! broker, the handler router, the application's state, the session events, and the shutdown
//! signal with the tasks it waits for.
//!
//! It sits below the session, dispatch and transport layers, which all read it, and above
//! nothing of theirs: `server.rs` builds it and hands it down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::config::Config;
use crate::dispatch::Router;
use crate::events::SessionEvent;
use crate::signal::Signal;
use crate::stats::{Counters, Stats};
use crate::stomp::ByteStr;
use crate::template::MessagingTemplate;
use crate::users::SessionRegistry;

/// State shared by every session and handle of one server.
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) broker: Arc<Broker>,
    /// A template on `broker`, cloned for whoever needs one.
    pub(crate) template: MessagingTemplate,
    pub(crate) router: Router,
    /// Every connected session, by id and by user.
    pub(crate) sessions: Arc<SessionRegistry>,
    /// The application's state, taken by handlers as `State<T>`.
    pub(crate) state: http::Extensions,
    pub(crate) shutdown: CancellationToken,
    /// The signals of running sessions, raised at shutdown (a session loop waits on its
    /// signal, not on the token: see [`Signal`]).
    session_signals: std::sync::Mutex<SessionSignals>,
    /// Every task of the server (sessions, handler workers, listeners), for a graceful stop.
    pub(crate) tracker: TaskTracker,
    events: broadcast::Sender<SessionEvent>,
    /// How many sessions were started, for their ids.
    session_counter: AtomicU64,
    /// What the server counts (`Server::stats`, the periodic summary, metrics).
    pub(crate) counters: Counters,
    /// Whether the periodic summary task runs.
    stats_logger: std::sync::Once,
    /// How many sessions wait for more frames before a write right now (see the session
    /// loop's `gather`), for its bound.
    pub(crate) gathering: AtomicUsize,
    /// This node's part of session ids: unique among the nodes that share an external broker
    /// (user destinations there are named after session ids).
    node: String,
}

impl Runtime {
    pub(crate) fn new(
        config: Config,
        broker: Broker,
        router: Router,
        state: http::Extensions,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let broker = Arc::new(broker);
        let sessions = Arc::new(SessionRegistry::default());
        let template = MessagingTemplate::new(
            broker.clone(),
            config.broker_prefixes.clone().into(),
            sessions.clone(),
            config.user_prefix.as_str().into(),
        );
        Runtime {
            config,
            broker,
            template,
            router,
            sessions,
            state,
            shutdown: CancellationToken::new(),
            session_signals: std::sync::Mutex::default(),
            tracker: TaskTracker::new(),
            events,
            session_counter: AtomicU64::new(0),
            counters: Counters::default(),
            stats_logger: std::sync::Once::new(),
            gathering: AtomicUsize::new(0),
            node: node_id(),
        }
    }

    /// Starts the shutdown: the token is cancelled, then every running session's signal is
    /// raised.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
        let signals: Vec<Signal> =
            crate::locks::lock(&self.session_signals).signals.values().cloned().collect();
        for signal in signals {
            signal.raise();
        }
    }

    /// Raises `signal` when the server shuts down, until the returned guard is dropped.
    pub(crate) fn on_shutdown(&self, signal: Signal) -> ShutdownWatch<'_> {
        let id = {
            let mut signals = crate::locks::lock(&self.session_signals);
            signals.next += 1;
            let id = signals.next;
            signals.signals.insert(id, signal.clone());
            id
        };
        // A shutdown begun before the insert did not see it.
        if self.shutdown.is_cancelled() {
            signal.raise();
        }
        ShutdownWatch { runtime: self, id }
    }

    pub(crate) fn next_session_id(&self) -> ByteStr {
        let n = self.session_counter.fetch_add(1, Ordering::Relaxed);
        ByteStr::from(format!("{}-{n}", self.node))
    }

    pub(crate) fn emit(&self, event: SessionEvent) {
        // No listener is fine: events are for those who ask.
        let _ = self.events.send(event);
    }

    /// Starts the relay's system connection, if the server has a relay (once; needs a Tokio
    /// runtime, so it is called when the server starts serving and when a session starts).
    pub(crate) fn start_broker(self: &Arc<Self>) {
        self.start_stats_logger();
        if let Some(relay) = self.broker.relay() {
            let events = self.events.clone();
            relay.start(
                self.shutdown.clone(),
                Arc::new(move |available| {
                    let _ = events.send(SessionEvent::BrokerAvailability { available });
                }),
            );
        }
    }

    /// The numbers of `Server::stats`.
    pub(crate) fn stats(&self) -> Stats {
        let broker = &self.broker;
        self.counters.snapshot(broker.subscription_count(), broker.destination_count())
    }

    /// Logs the stats summary at INFO every `stats_log_interval` (once per server; needs a
    /// Tokio runtime, so started with the broker).
    fn start_stats_logger(self: &Arc<Self>) {
        let Some(every) = self.config.stats_log_interval else { return };
        // A year at most: an instant further away would overflow.
        let every = every.min(std::time::Duration::from_secs(365 * 86_400));
        // Outside a runtime (a service built before serving): the first session starts it.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.stats_logger.call_once(|| {
            let runtime = Arc::downgrade(self);
            let shutdown = self.shutdown.clone();
            self.tracker.spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        _ = ticks.tick() => {}
                    }
                    let Some(runtime) = runtime.upgrade() else { return };
                    tracing::info!(target: "stompede::stats", "{}", runtime.stats());
                }
            });
        });
    }

    /// Session lifecycle events from now on.
    pub(crate) fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }
}

/// 8 hex digits that differ from one process (and server) to the next: from the standard
/// library's randomly keyed hasher.
fn node_id() -> String {
    use std::hash::BuildHasher;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let hash = std::collections::hash_map::RandomState::new().hash_one((std::process::id(), now));
    format!("{:08x}", hash as u32)
}

/// The signals [`Runtime::begin_shutdown`] raises, by registration.
#[derive(Default)]
struct SessionSignals {
    next: u64,
    signals: std::collections::HashMap<u64, Signal>,
}

/// A session's signal registered for the shutdown; unregistered when dropped.
pub(crate) struct ShutdownWatch<'r> {
    runtime: &'r Runtime,
    id: u64,
}

impl Drop for ShutdownWatch<'_> {
    fn drop(&mut self) {
        crate::locks::lock(&self.runtime.session_signals).signals.remove(&self.id);
    }
}
