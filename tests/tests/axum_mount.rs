//! The endpoint mounted inside an axum router, next to the application's own routes.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use stompede::Server;
use stompede::client::{Client, ClientOptions};
use stompede_tests::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_mounted_in_axum_serves_stomp_next_to_other_routes() {
    let server = Server::builder().build().unwrap();
    let app = Router::new().route("/api/health", get(|| async { "ok" })).merge(server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The application's own route still answers.
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, http.read_to_string(&mut response)).await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ok"), "{response}");

    // And STOMP works through the mounted service, with the template sending from outside.
    let client =
        Client::connect_ws(&format!("ws://{addr}/ws"), ClientOptions::default()).await.unwrap();
    let mut sub = client.subscribe("/topic/mounted").await.unwrap();
    assert_eq!(server.template().convert_and_send("/topic/mounted", "via axum").unwrap(), 1);
    let message = tokio::time::timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(message.body_str(), Some("via axum"));

    assert!(server.shutdown(Duration::from_secs(5)).await);
    let reason = tokio::time::timeout(WAIT, client.closed()).await.unwrap().unwrap();
    assert!(reason.contains("server is shutting down"), "{reason}");
}

/// Every path once, even where an endpoint's and its SockJS paths coincide (axum panics on a
/// route registered twice).
#[test]
fn the_router_registers_each_path_once() {
    let server = Server::builder()
        .endpoint(stompede::Endpoint::new("/").with_sockjs())
        .endpoint(stompede::Endpoint::new("/ws").with_sockjs())
        .static_page("/ws/", "<p>a page where SockJS greets</p>")
        .build()
        .unwrap();
    let _app: Router = Router::new().merge(server.router());
}
