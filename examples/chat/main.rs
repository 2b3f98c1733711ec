//! A chat on stompede inside an axum application: form login with cookie sessions, rooms,
//! private messages, presence, an administrators' topic, and errors back to their sender.
//!
//! ```text
//! cargo run --example chat [-- --addr 127.0.0.1:8080]
//! ```
//!
//! Then open the printed address, sign in as one of the printed users (`ada` is an
//! administrator), and again as another in a private window. `RUST_LOG=debug` shows each
//! frame's fate; refused frames are logged at WARN with the user. See `app.rs`.

mod app;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use app::Account;

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next().map(|v| v.parse())) {
            ("--addr", Some(Ok(v))) => addr = v,
            _ => {
                eprintln!("usage: chat [--addr HOST:PORT]   (default 127.0.0.1:8080)");
                return ExitCode::from(2);
            }
        }
    }
    let presence = app::Presence::default();
    let server = match app::builder(presence.clone()).build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("chat: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let accounts: HashMap<String, Account> =
        [("ada", &["admin"][..]), ("bob", &[]), ("carol", &[])]
            .into_iter()
            .map(|(name, roles)| {
                let account = Account {
                    password: format!("{name}-password"),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                };
                (name.to_owned(), account)
            })
            .collect();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "chat: cannot listen on {addr} ({e}); choose another address with --addr HOST:PORT"
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    tokio::spawn(app::watch_sessions(server.clone(), presence));
    println!(
        "Chat running: open http://{addr}/ and sign in as ada (administrator), bob or carol; each one's password is <name>-password"
    );
    let stompede = server.clone();
    let shutdown = async move {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("chat: cannot wait for Ctrl-C ({e}); shutting down");
        }
        stompede.shutdown(Duration::from_secs(5)).await;
    };
    let web = app::Web::new(server, accounts);
    match axum::serve(listener, app::router(web)).with_graceful_shutdown(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat: the HTTP server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
