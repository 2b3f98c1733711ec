//! The project's main example: the hello app of Spring's STOMP guide.
//!
//! ```text
//! cargo run --example hello [-- --addr 127.0.0.1:8080]
//! ```
//!
//! Then open the printed address in a browser: Connect, type a name, Send; every connected
//! page shows the greeting. Works offline: the page loads only `/stompede.js`, the browser
//! client every stompede server serves. The guide's own page (SockJS and stompjs from a CDN,
//! `new SockJS('/ws')`, the name sent as plain text) works against it unchanged: the endpoint
//! speaks SockJS. With `--sockjs-client path/to/sockjs.min.js` (from npm's `sockjs-client`) the
//! server serves that file, and `http://ADDR/?sockjs` makes the example's page connect through
//! SockJS too (`?sockjs=xhr-polling` forces a transport). `RUST_LOG=debug` shows the mapping
//! table and each frame's fate. Ctrl-C shuts down gracefully.

mod app;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!(
        "usage: hello [--addr HOST:PORT] [--sockjs-client FILE]   (default --addr 127.0.0.1:8080)"
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();

    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut sockjs_client: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--addr", Some(v)) => match v.parse() {
                Ok(v) => addr = v,
                Err(_) => return usage(),
            },
            ("--sockjs-client", Some(path)) => sockjs_client = Some(path),
            _ => return usage(),
        }
    }
    let mut builder = app::builder().bind(addr);
    if let Some(path) = sockjs_client {
        match std::fs::read(&path) {
            Ok(script) => {
                builder = builder.static_asset("/sockjs.min.js", "text/javascript", script)
            }
            Err(e) => {
                eprintln!("hello: cannot read the SockJS client {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("hello: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match server.start().await {
        Ok(running) => running,
        Err(e) => {
            // The error names the address and the builder's setting; here it is --addr.
            eprintln!("hello: {e} (with this example: --addr HOST:PORT)");
            return ExitCode::FAILURE;
        }
    };
    let addr = running.local_addr();
    println!("Hello app running: open http://{addr}/ in a browser (STOMP endpoint ws://{addr}/ws)");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("hello: cannot wait for Ctrl-C ({e}); shutting down");
    }
    running.shutdown(Duration::from_secs(5)).await;
    ExitCode::SUCCESS
}
