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

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use stompede::Server;

fn usage() -> ExitCode {
    eprintln!(
        "usage: broker [--addr HOST:PORT] [--tcp HOST:PORT]   (default --addr 127.0.0.1:61614)"
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();
    let mut addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 61614));
    let mut tcp: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--addr", Some(v)) => addr = v,
            ("--tcp", Some(v)) => tcp = Some(v),
            _ => return usage(),
        }
    }
    let mut builder = Server::builder().bind(addr).allow_any_origin();
    if let Some(tcp) = tcp {
        builder = builder.tcp(tcp);
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
