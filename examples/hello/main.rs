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
//!
//! `--secure` adds the guide's optional security step: `/` stays open to all, everything else
//! (the STOMP endpoint included) needs a form login at `/login` as `user`, with the password
//! printed at start-up (or given with `--password`); `POST /logout` (the form at `/logout`)
//! signs out and closes that user's STOMP sessions. See `secure.rs`.

mod app;
mod secure;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!(
        "usage: hello [--addr HOST:PORT] [--sockjs-client FILE] [--secure [--password PASSWORD]]   (default --addr 127.0.0.1:8080)"
    );
    ExitCode::from(2)
}

/// A password for `user` when `--password` is not given, printed at start-up (as Spring Boot
/// does with its generated security password).
fn generated_password() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();

    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut sockjs_client: Option<String> = None;
    let mut secure = false;
    let mut password: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--secure" {
            secure = true;
            continue;
        }
        match (flag.as_str(), args.next()) {
            ("--addr", Some(v)) => match v.parse() {
                Ok(v) => addr = v,
                Err(_) => return usage(),
            },
            ("--sockjs-client", Some(path)) => sockjs_client = Some(path),
            ("--password", Some(p)) => password = Some(p),
            _ => return usage(),
        }
    }
    if password.is_some() && !secure {
        eprintln!("hello: --password goes with --secure");
        return usage();
    }
    let mut builder = app::builder().bind(addr);
    if secure {
        builder = secure::builder(builder);
    }
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
    if secure {
        let password = password.unwrap_or_else(generated_password);
        return serve_secure(server, addr, password).await;
    }
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

/// `--secure`: the server inside the axum app of `secure.rs`, on `addr`.
async fn serve_secure(server: stompede::Server, addr: SocketAddr, password: String) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "hello: cannot listen on {addr} ({e}); choose another address with --addr HOST:PORT"
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    let accounts = secure::Accounts::new(server.clone(), [("user".to_owned(), password.clone())]);
    println!(
        "Hello app running (secure): open http://{addr}/ in a browser, and sign in at http://{addr}/login as user, password {password}"
    );
    // On Ctrl-C the STOMP sessions close first (SockJS streams included), so the HTTP server's
    // graceful stop finds no request left to wait for.
    let shutdown = async move {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("hello: cannot wait for Ctrl-C ({e}); shutting down");
        }
        server.shutdown(Duration::from_secs(5)).await;
    };
    match axum::serve(listener, secure::router(accounts)).with_graceful_shutdown(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: the HTTP server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
