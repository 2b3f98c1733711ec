//! What the server counts: the numbers of [`Server::stats`](crate::Server::stats), the summary
//! logged every so often (Spring's `WebSocketMessageBrokerStats`), and the same figures as
//! metrics through the [`metrics`] facade, for whichever exporter the application installs
//! (`docs/production.md` lists every name and label).
//!
//! Counting stays off the per-delivery path: sessions tally frames and bytes per read and per
//! write batch, and add the tallies to shared atomics once per batch.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::events::DisconnectReason;
use crate::stomp::Command;

/// The transports a session may come over, as labels.
pub(crate) const TRANSPORTS: [&str; 7] = [
    "websocket",
    "sockjs-websocket",
    "sockjs-xhr",
    "sockjs-xhr_streaming",
    "sockjs-eventsource",
    "sockjs-htmlfile",
    "tcp",
];

/// Why sessions end, as labels.
pub(crate) const REASONS: [&str; 9] = [
    "client",
    "connection_lost",
    "protocol_error",
    "slow_consumer",
    "timeout",
    "shutdown",
    "access_denied",
    "broker_unavailable",
    "closed",
];

/// Client frames, as labels.
pub(crate) const COMMANDS_IN: [&str; 11] = [
    "CONNECT",
    "STOMP",
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
];

/// Server frames, as labels.
pub(crate) const COMMANDS_OUT: [&str; 4] = ["MESSAGE", "RECEIPT", "ERROR", "CONNECTED"];

fn reason_index(reason: &DisconnectReason) -> usize {
    match reason {
        DisconnectReason::ClientDisconnected => 0,
        DisconnectReason::ConnectionLost(_) => 1,
        DisconnectReason::ProtocolError(_) => 2,
        DisconnectReason::SlowConsumer(_) => 3,
        DisconnectReason::Timeout(_) => 4,
        DisconnectReason::ServerShutdown => 5,
        DisconnectReason::AccessDenied(_) => 6,
        DisconnectReason::BrokerUnavailable(_) => 7,
        DisconnectReason::Closed(_) => 8,
    }
}

/// The index of a client command among [`COMMANDS_IN`] (server commands never arrive: the
/// protocol refuses them before they are counted).
pub(crate) fn command_in_index(command: Command) -> Option<usize> {
    COMMANDS_IN.iter().position(|c| *c == command.as_str())
}

/// The index among [`COMMANDS_OUT`] of an encoded server frame, from its first byte.
pub(crate) fn command_out_index(first: Option<u8>) -> usize {
    match first {
        Some(b'M') => 0,
        Some(b'R') => 1,
        Some(b'E') => 2,
        _ => 3,
    }
}

fn transport_index(transport: &str) -> usize {
    TRANSPORTS.iter().position(|t| *t == transport).unwrap_or(0)
}

/// The server's counters.
pub(crate) struct Counters {
    open: [AtomicUsize; TRANSPORTS.len()],
    opened: [AtomicU64; TRANSPORTS.len()],
    connects: AtomicU64,
    disconnects: [AtomicU64; REASONS.len()],
    frames_in: [AtomicU64; COMMANDS_IN.len()],
    bytes_in: [AtomicU64; COMMANDS_IN.len()],
    frames_out: [AtomicU64; COMMANDS_OUT.len()],
    bytes_out: [AtomicU64; COMMANDS_OUT.len()],
    handler_calls: AtomicU64,
    handler_errors: AtomicU64,
    /// The frames and bytes counters of each command, as the metrics recorder's handles: looked
    /// up once, when the server is built (a lookup per write batch was 7 % of the server's CPU
    /// in a fan-out profile). So the recorder is to be installed before the server is built.
    sent_metrics: [(metrics::Counter, metrics::Counter); COMMANDS_OUT.len()],
    received_metrics: [(metrics::Counter, metrics::Counter); COMMANDS_IN.len()],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            open: Default::default(),
            opened: Default::default(),
            connects: AtomicU64::default(),
            disconnects: Default::default(),
            frames_in: Default::default(),
            bytes_in: Default::default(),
            frames_out: Default::default(),
            bytes_out: Default::default(),
            handler_calls: AtomicU64::default(),
            handler_errors: AtomicU64::default(),
            sent_metrics: COMMANDS_OUT.map(|command| {
                (
                    metrics::counter!("stompede_frames_sent_total", "command" => command),
                    metrics::counter!("stompede_bytes_sent_total", "command" => command),
                )
            }),
            received_metrics: COMMANDS_IN.map(|command| {
                (
                    metrics::counter!("stompede_frames_received_total", "command" => command),
                    metrics::counter!("stompede_bytes_received_total", "command" => command),
                )
            }),
        }
    }
}

/// One session's frames and bytes (on the wire, heart-beats before a frame included) since its
/// last flush, by command.
#[derive(Default)]
pub(crate) struct Tally {
    frames_in: [u64; COMMANDS_IN.len()],
    bytes_in: [u64; COMMANDS_IN.len()],
    /// Bytes decoded since the last frame (heart-beats, a head waiting for its body).
    carried: u64,
    any: bool,
}

impl Tally {
    /// Bytes decoded without a frame yet: they count with the next frame.
    pub(crate) fn carry(&mut self, bytes: usize) {
        self.carried += bytes as u64;
    }

    /// A frame of `command` that took `bytes` on the wire (besides what was carried).
    pub(crate) fn received(&mut self, command: Command, bytes: usize) {
        let bytes = bytes as u64 + std::mem::take(&mut self.carried);
        if let Some(i) = command_in_index(command) {
            self.frames_in[i] += 1;
            self.bytes_in[i] += bytes;
            self.any = true;
        }
    }
}

impl Counters {
    pub(crate) fn session_opened(&self, transport: &'static str) {
        let i = transport_index(transport);
        self.open[i].fetch_add(1, Ordering::Relaxed);
        self.opened[i].fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("stompede_sessions_open", "transport" => TRANSPORTS[i]).increment(1.0);
        metrics::counter!("stompede_sessions_opened_total", "transport" => TRANSPORTS[i])
            .increment(1);
    }

    pub(crate) fn session_closed(&self, transport: &'static str, reason: &DisconnectReason) {
        let i = transport_index(transport);
        self.open[i].fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("stompede_sessions_open", "transport" => TRANSPORTS[i]).decrement(1.0);
        let r = reason_index(reason);
        self.disconnects[r].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("stompede_disconnects_total", "reason" => REASONS[r]).increment(1);
    }

    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("stompede_connects_total").increment(1);
    }

    /// Adds a session's inbound tally, and clears it.
    pub(crate) fn flush_in(&self, tally: &mut Tally) {
        if !std::mem::take(&mut tally.any) {
            return;
        }
        for (i, (frame_counter, byte_counter)) in self.received_metrics.iter().enumerate() {
            let (frames, bytes) = (tally.frames_in[i], tally.bytes_in[i]);
            if frames > 0 {
                self.frames_in[i].fetch_add(frames, Ordering::Relaxed);
                self.bytes_in[i].fetch_add(bytes, Ordering::Relaxed);
                frame_counter.increment(frames);
                byte_counter.increment(bytes);
                tally.frames_in[i] = 0;
                tally.bytes_in[i] = 0;
            }
        }
    }

    /// Adds one written batch: frames and bytes by command.
    pub(crate) fn written(&self, frames: [(u64, u64); COMMANDS_OUT.len()]) {
        for (i, (count, bytes)) in frames.into_iter().enumerate() {
            if count > 0 {
                self.frames_out[i].fetch_add(count, Ordering::Relaxed);
                self.bytes_out[i].fetch_add(bytes, Ordering::Relaxed);
                let (frame_counter, byte_counter) = &self.sent_metrics[i];
                frame_counter.increment(count);
                byte_counter.increment(bytes);
            }
        }
    }

    /// A handler ran for `took`; `failed` if it returned an error or panicked.
    pub(crate) fn handler_call(&self, handler: &'static str, took: Duration, failed: bool) {
        self.handler_calls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("stompede_handler_calls_total", "handler" => handler).increment(1);
        metrics::histogram!("stompede_handler_duration_seconds", "handler" => handler)
            .record(took.as_secs_f64());
        if failed {
            self.handler_errors.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("stompede_handler_errors_total", "handler" => handler).increment(1);
        }
    }

    /// A snapshot, with the broker's figures (which also set the broker's gauges: counting
    /// them costs more than a subscription should pay each time).
    pub(crate) fn snapshot(&self, subscriptions: usize, destinations: usize) -> Stats {
        metrics::gauge!("stompede_subscriptions").set(subscriptions as f64);
        metrics::gauge!("stompede_destinations").set(destinations as f64);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let sessions_by_transport: Vec<(&'static str, usize)> = TRANSPORTS
            .iter()
            .zip(&self.open)
            .map(|(t, n)| (*t, n.load(Ordering::Relaxed)))
            .collect();
        let frames_out: Vec<(&'static str, u64)> =
            COMMANDS_OUT.iter().zip(&self.frames_out).map(|(c, n)| (*c, load(n))).collect();
        Stats {
            sessions: sessions_by_transport.iter().map(|(_, n)| n).sum(),
            sessions_by_transport,
            sessions_opened: self.opened.iter().map(load).sum(),
            connects: load(&self.connects),
            disconnects: REASONS
                .iter()
                .zip(&self.disconnects)
                .map(|(r, n)| (*r, load(n)))
                .collect(),
            frames_in: COMMANDS_IN
                .iter()
                .zip(&self.frames_in)
                .map(|(c, n)| (*c, load(n)))
                .collect(),
            bytes_in: self.bytes_in.iter().map(load).sum(),
            deliveries: frames_out[0].1,
            frames_out,
            bytes_out: self.bytes_out.iter().map(load).sum(),
            subscriptions,
            destinations,
            slow_consumer_closes: load(&self.disconnects[3]),
            handler_calls: load(&self.handler_calls),
            handler_errors: load(&self.handler_errors),
        }
    }
}

/// The server's numbers since it started ([`Server::stats`](crate::Server::stats)), Spring's
/// `WebSocketMessageBrokerStats`. Its `Display` is the one-line summary the server logs at
/// INFO every `stats_log_interval` (30 minutes by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions open now.
    pub sessions: usize,
    /// Sessions open now, by transport (`websocket`, `sockjs-websocket`, `sockjs-xhr`,
    /// `sockjs-xhr_streaming`, `sockjs-eventsource`, `sockjs-htmlfile`, `tcp`).
    pub sessions_by_transport: Vec<(&'static str, usize)>,
    /// Sessions opened since the start (connections, whether or not they sent CONNECT).
    pub sessions_opened: u64,
    /// Successful CONNECTs.
    pub connects: u64,
    /// Sessions ended, by reason (`client`, `connection_lost`, `protocol_error`,
    /// `slow_consumer`, `timeout`, `shutdown`, `access_denied`, `broker_unavailable`,
    /// `closed`).
    pub disconnects: Vec<(&'static str, u64)>,
    /// Frames received, by command.
    pub frames_in: Vec<(&'static str, u64)>,
    /// Bytes of frames received (with the heart-beats before them).
    pub bytes_in: u64,
    /// Frames sent, by command (`MESSAGE`, `RECEIPT`, `ERROR`, `CONNECTED`).
    pub frames_out: Vec<(&'static str, u64)>,
    /// Bytes of frames sent.
    pub bytes_out: u64,
    /// MESSAGE frames written to clients.
    pub deliveries: u64,
    /// Subscriptions the broker holds now.
    pub subscriptions: usize,
    /// Destinations with a subscriber (or a queue) now.
    pub destinations: usize,
    /// Sessions closed as slow consumers.
    pub slow_consumer_closes: u64,
    /// Handler calls.
    pub handler_calls: u64,
    /// Handler calls that failed (an error or a panic).
    pub handler_errors: u64,
}

impl Stats {
    /// The count of `name` in one of the lists (0 when absent).
    pub fn count(list: &[(&'static str, u64)], name: &str) -> u64 {
        list.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[(&'static str, u64)]| {
            let shown: Vec<String> =
                items.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
            if shown.is_empty() { "none".to_owned() } else { shown.join(", ") }
        };
        let open: Vec<String> = self
            .sessions_by_transport
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        write!(
            f,
            "sessions: {} open ({}), {} opened, {} connected; ended: {}; frames in: {} ({} bytes); frames out: {} ({} bytes); broker: {} subscriptions, {} destinations; handlers: {} calls, {} failed",
            self.sessions,
            if open.is_empty() { "none".to_owned() } else { open.join(", ") },
            self.sessions_opened,
            self.connects,
            list(&self.disconnects),
            list(&self.frames_in),
            self.bytes_in,
            list(&self.frames_out),
            self.bytes_out,
            self.subscriptions,
            self.destinations,
            self.handler_calls,
            self.handler_errors,
        )
    }
}
