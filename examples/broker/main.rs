//! A standalone STOMP broker: WebSocket endpoint `/ws` with `/topic` and `/queue`, and
//! optionally plain STOMP over TCP. The benchmarks run against it.
//!
//! ```text
//! cargo run --release --example broker -- --addr 127.0.0.1:61614 [--tcp 127.0.0.1:61613]
//! ```
//!
//! Any STOMP client can connect: `ws://127.0.0.1:61614/ws` (any origin is accepted, so pages
//! served elsewhere can use it too), or the TCP address with `stomp.py`. Ctrl-C shuts it down
//! gracefully.
//!
//! With `--relay HOST:PORT` the destinations (`/topic`, `/queue`, `/exchange`, `/amq/queue`)
//! live in an external STOMP broker, RabbitMQ with its STOMP plugin, instead of in memory: two
//! of these on two ports form a cluster (`docs/scaling.md`). `--relay-login`,
//! `--relay-passcode` (default `guest`) and `--relay-vhost` (default `/`) go with it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use stompede::Server;
use stompede::broker::StompBrokerRelay;

fn usage() -> ExitCode {
    eprintln!(
        "usage: broker [--addr HOST:PORT] [--tcp HOST:PORT] [--relay HOST:PORT [--relay-login L] [--relay-passcode P] [--relay-vhost V]]   (default --addr 127.0.0.1:61614)"
    );
    ExitCode::from(2)
}

/// The relay's settings from the flags.
#[derive(Default)]
struct RelayFlags {
    address: Option<(String, u16)>,
    login: Option<String>,
    passcode: Option<String>,
    vhost: Option<String>,
}

impl RelayFlags {
    fn relay(&self) -> Option<StompBrokerRelay> {
        let (host, port) = self.address.clone()?;
        let mut relay = StompBrokerRelay::new(["/topic", "/queue", "/exchange", "/amq/queue"])
            .relay_host(host)
            .relay_port(port);
        if let Some(login) = &self.login {
            relay = relay.client_login(login.clone()).system_login(login.clone());
        }
        if let Some(passcode) = &self.passcode {
            relay = relay.client_passcode(passcode.clone()).system_passcode(passcode.clone());
        }
        if let Some(vhost) = &self.vhost {
            relay = relay.virtual_host(vhost.clone());
        }
        Some(relay)
    }
}

/// `HOST:PORT`, with a host name or an address.
fn host_port(value: &str) -> Option<(String, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    Some((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port.parse().ok()?))
}

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();
    let mut addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 61614));
    let mut tcp: Option<SocketAddr> = None;
    let mut relay = RelayFlags::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else { return usage() };
        match flag.as_str() {
            "--addr" => match value.parse() {
                Ok(v) => addr = v,
                Err(_) => return usage(),
            },
            "--tcp" => match value.parse() {
                Ok(v) => tcp = Some(v),
                Err(_) => return usage(),
            },
            "--relay" => match host_port(&value) {
                Some(address) => relay.address = Some(address),
                None => {
                    eprintln!("--relay {value:?}: expected HOST:PORT, such as 127.0.0.1:61613");
                    return ExitCode::from(2);
                }
            },
            "--relay-login" => relay.login = Some(value),
            "--relay-passcode" => relay.passcode = Some(value),
            "--relay-vhost" => relay.vhost = Some(value),
            _ => return usage(),
        }
    }
    if relay.address.is_none()
        && (relay.login.is_some() || relay.passcode.is_some() || relay.vhost.is_some())
    {
        eprintln!("--relay-login, --relay-passcode and --relay-vhost go with --relay HOST:PORT");
        return ExitCode::from(2);
    }
    let mut builder = Server::builder().bind(addr).allow_any_origin();
    if let Some(tcp) = tcp {
        builder = builder.tcp(tcp);
    }
    if let (Some(options), Some((host, port))) = (relay.relay(), &relay.address) {
        println!(
            "relaying /topic, /queue, /exchange and /amq/queue to the STOMP broker at {host}:{port}"
        );
        builder = builder.enable_stomp_broker_relay(options);
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match server.start().await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("stompede broker: ws://{}/ws (pid {})", running.local_addr(), std::process::id());
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
