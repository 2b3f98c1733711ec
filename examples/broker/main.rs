//! A standalone STOMP broker: WebSocket endpoint `/ws` with `/topic` and `/queue`, and
//! optionally plain STOMP over TCP. The benchmarks run against it.
//!
//! ```text
//! cargo run --release --example broker -- --addr 127.0.0.1:61614 [--tcp 127.0.0.1:61613]
//! cargo run --release --example broker -- --help
//! ```
//!
//! Any STOMP client can connect: `ws://127.0.0.1:61614/ws` (any origin is accepted unless
//! `--allowed-origin` is given, so pages served elsewhere can use it too), or the TCP address
//! with `stomp.py`. Ctrl-C shuts it down gracefully. `RUST_LOG=debug` shows what it does.
//!
//! The in-memory broker's choices (`docs/broker.md`): `--point-to-point /queue` makes
//! `/queue/...` competing-consumer queues with acknowledgements and redelivery, `--retain
//! /topic/prices` keeps the last message of each such destination for new subscribers, and
//! `--overflow disconnect|drop-oldest|backpressure` decides what happens to subscribers that
//! cannot keep up (default `backpressure`: a standalone broker slows its publishers rather
//! than close its subscribers; the framework's own default stays Spring's `disconnect`).
//!
//! It serves its metrics at `/metrics` in Prometheus's text format (sessions, frames, bytes,
//! deliveries, disconnects by reason, slow consumers: `docs/production.md`), logs a one-line
//! summary every `--stats-every` seconds, and serves `wss://` with `--tls-cert` and
//! `--tls-key` (PEM files).
//!
//! With `--relay HOST:PORT` the destinations (`/topic`, `/queue`, `/exchange`, `/amq/queue`)
//! live in an external STOMP broker, RabbitMQ with its STOMP plugin, instead of in memory: two
//! of these on two ports form a cluster (`docs/scaling.md`). `--relay-login`,
//! `--relay-passcode` (default `guest`) and `--relay-vhost` (default `/`) go with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod metrics;

use clap::Parser;
use metrics_exporter_prometheus::PrometheusBuilder;
use stompede::broker::{QueueLimits, SlowConsumerPolicy, StompBrokerRelay};
use stompede::{Server, TlsConfig};

/// A standalone STOMP broker over WebSocket (and TCP).
#[derive(Parser, Debug)]
#[command(name = "broker", version, about = "A standalone STOMP broker over WebSocket (and TCP); see docs/broker.md", long_about = None)]
struct Flags {
    /// Where the WebSocket endpoint (/ws) listens.
    #[arg(long, default_value = "127.0.0.1:61614", value_name = "HOST:PORT")]
    addr: SocketAddr,
    /// Also serve plain STOMP over TCP here (such as 127.0.0.1:61613).
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<SocketAddr>,
    /// Origins allowed to open WebSocket and SockJS sessions (repeatable); default: any.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Heart-beats offered to clients, in milliseconds: SEND,RECEIVE (0 turns one off).
    #[arg(long, default_value = "10000,10000", value_name = "SEND,RECEIVE", value_parser = heartbeat)]
    heartbeat: (u64, u64),
    /// Bytes a session may have waiting to be written before its subscriptions' policy
    /// applies.
    #[arg(long, default_value_t = 512 * 1024, value_name = "BYTES")]
    send_buffer_size_limit: usize,
    /// Milliseconds a write may take, and a session may stay over its buffer limit.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    send_time_limit: u64,
    /// The largest frame a client may send, in bytes.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    message_size_limit: usize,
    /// Subscriptions a session may hold.
    #[arg(long, default_value_t = 1024, value_name = "COUNT")]
    max_subscriptions: usize,
    /// Make destinations under PREFIX point-to-point queues (repeatable), such as /queue.
    #[arg(long = "point-to-point", value_name = "PREFIX")]
    point_to_point: Vec<String>,
    /// Retain the last message of each destination under PREFIX (repeatable).
    #[arg(long = "retain", value_name = "PREFIX")]
    retain: Vec<String>,
    /// Let a SEND with the header retain:true retain its message on any topic.
    #[arg(long)]
    retain_header: bool,
    /// What happens to subscribers that cannot keep up.
    #[arg(long, default_value = "backpressure", value_name = "POLICY", value_parser = overflow)]
    overflow: SlowConsumerPolicy,
    /// Messages a point-to-point queue holds while nobody consumes it.
    #[arg(long, default_value_t = 10_000, value_name = "COUNT")]
    queue_max_messages: usize,
    /// Log a one-line stats summary every SECONDS (0: never).
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    stats_every: u64,
    /// Serve wss:// and https:// with this certificate chain (PEM; with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Relay the destinations to this external STOMP broker (RabbitMQ) instead.
    #[arg(long, value_name = "HOST:PORT", value_parser = host_port)]
    relay: Option<(String, u16)>,
    /// The relay's login (default guest).
    #[arg(long, requires = "relay", value_name = "LOGIN")]
    relay_login: Option<String>,
    /// The relay's passcode (default guest).
    #[arg(long, requires = "relay", value_name = "PASSCODE")]
    relay_passcode: Option<String>,
    /// The relay's virtual host (default /).
    #[arg(long, requires = "relay", value_name = "VHOST")]
    relay_vhost: Option<String>,
}

/// `SEND,RECEIVE` in milliseconds.
fn heartbeat(value: &str) -> Result<(u64, u64), String> {
    let parsed = value.split_once(',').and_then(|(s, r)| Some((s.parse().ok()?, r.parse().ok()?)));
    parsed.ok_or_else(|| {
        "expected two numbers of milliseconds, SEND,RECEIVE (such as 10000,10000)".into()
    })
}

fn overflow(value: &str) -> Result<SlowConsumerPolicy, String> {
    SlowConsumerPolicy::parse(value)
        .ok_or_else(|| "expected disconnect, drop-oldest or backpressure".into())
}

/// `HOST:PORT`, with a host name or an address.
fn host_port(value: &str) -> Result<(String, u16), String> {
    let parsed = value.rsplit_once(':').and_then(|(host, port)| {
        Some((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port.parse().ok()?))
    });
    parsed.ok_or_else(|| "expected HOST:PORT, such as 127.0.0.1:61613".into())
}

impl Flags {
    fn relay(&self) -> Option<StompBrokerRelay> {
        let (host, port) = self.relay.clone()?;
        let mut relay = StompBrokerRelay::new(["/topic", "/queue", "/exchange", "/amq/queue"])
            .relay_host(host)
            .relay_port(port);
        if let Some(login) = &self.relay_login {
            relay = relay.client_login(login.clone()).system_login(login.clone());
        }
        if let Some(passcode) = &self.relay_passcode {
            relay = relay.client_passcode(passcode.clone()).system_passcode(passcode.clone());
        }
        if let Some(vhost) = &self.relay_vhost {
            relay = relay.virtual_host(vhost.clone());
        }
        Some(relay)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();
    let flags = Flags::parse();
    // Metrics: the Prometheus recorder, rendered at /metrics by the broker itself.
    let recorder = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("cannot install the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (builder, serving) = metrics::serve(Server::builder(), recorder);
    let mut builder = builder
        .stats_log_interval(Some(Duration::from_secs(flags.stats_every)))
        .bind(flags.addr)
        .heartbeat(
            Duration::from_millis(flags.heartbeat.0),
            Duration::from_millis(flags.heartbeat.1),
        )
        .send_buffer_size_limit(flags.send_buffer_size_limit)
        .send_time_limit(Duration::from_millis(flags.send_time_limit))
        .message_size_limit(flags.message_size_limit)
        .max_subscriptions(flags.max_subscriptions);
    builder = match flags.allowed_origins.is_empty() {
        true => builder.allow_any_origin(),
        false => builder.allowed_origins(flags.allowed_origins.clone()),
    };
    if let Some(tcp) = flags.tcp {
        builder = builder.tcp(tcp);
    }
    if let (Some(cert), Some(key)) = (&flags.tls_cert, &flags.tls_key) {
        match TlsConfig::from_pem_files(cert, key) {
            Ok(tls) => builder = builder.tls(tls),
            Err(e) => {
                eprintln!("--tls-cert/--tls-key: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match (flags.relay(), &flags.relay) {
        (Some(options), Some((host, port))) => {
            println!(
                "relaying /topic, /queue, /exchange and /amq/queue to the STOMP broker at {host}:{port}"
            );
            builder = builder.enable_stomp_broker_relay(options);
        }
        _ => {
            builder = builder
                .point_to_point(flags.point_to_point.clone())
                .retain(flags.retain.clone())
                .retain_header(flags.retain_header)
                .queue_limits(QueueLimits::default().max_messages(flags.queue_max_messages))
                .slow_consumer_policy(flags.overflow);
        }
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = serving.set(server.clone());
    let running = match server.start().await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if flags.tls_cert.is_some() { "wss" } else { "ws" };
    println!(
        "stompede broker: {scheme}://{}/ws (pid {}), metrics at /metrics",
        running.local_addr(),
        std::process::id()
    );
    if let Some(tcp) = running.tcp_addr() {
        println!("                 stomp over tcp at {tcp}");
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for Ctrl-C ({e}); stopping");
    }
    println!("shutting down");
    running.shutdown(Duration::from_secs(5)).await;
    ExitCode::SUCCESS
}
