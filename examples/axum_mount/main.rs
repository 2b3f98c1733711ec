//! Mounting stompede inside an existing axum application, next to its own routes: one
//! `.merge(server.router())` (feature `axum`) serves the endpoint, SockJS below it and
//! `/stompede.js`.
//!
//! ```text
//! cargo run --example axum_mount -- --addr 127.0.0.1:3000
//! curl http://127.0.0.1:3000/api/health             # the app's own route
//! curl -X POST -d 'hello' http://127.0.0.1:3000/api/announce   # publishes to /topic/announcements
//! ```
//! STOMP clients connect to `ws://127.0.0.1:3000/ws` (or with SockJS to `/ws`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use stompede::{Endpoint, MessagingTemplate, Server};

/// The application: its own HTTP routes plus everything stompede serves.
pub fn app(server: &Server) -> Router {
    Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/announce", post(announce))
        .with_state(server.template())
        .merge(server.router())
}

/// An HTTP handler that publishes to STOMP subscribers.
async fn announce(State(template): State<MessagingTemplate>, body: String) -> String {
    match template.convert_and_send("/topic/announcements", body) {
        Ok(n) => format!("delivered to {n} subscription(s)\n"),
        Err(e) => format!("not sent: {e}\n"),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    stompede_examples::init_logging();
    let addr: SocketAddr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => SocketAddr::from(([127, 0, 0, 1], 3000)),
        [flag, value] if flag == "--addr" => value.parse().map_err(std::io::Error::other)?,
        _ => {
            eprintln!("usage: axum_mount [--addr HOST:PORT]");
            std::process::exit(2);
        }
    };
    let server = Server::builder()
        .endpoint(Endpoint::new("/ws").with_sockjs())
        .build()
        .map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("axum app with STOMP at ws://{}/ws", listener.local_addr()?);
    let stomp = server.clone();
    axum::serve(listener, app(&server))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            stomp.shutdown(Duration::from_secs(5)).await;
        })
        .await
}
