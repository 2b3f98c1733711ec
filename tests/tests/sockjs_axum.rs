//! The SockJS protocol suite (`sockjs/suite.rs`) through an axum application that mounted the
//! server with one `.merge(server.router())`, beside a route of its own.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use stompede::events::SessionEvent;
use stompede::{Endpoint, MessagingTemplate, Server, SockJsOptions};
use stompede_tests::Addressed;
use tokio::sync::broadcast;

/// A server served by axum: what the suite asks of a running server.
struct TestServer {
    addr: SocketAddr,
    server: Server,
}

impl Addressed for TestServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl TestServer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn template(&self) -> MessagingTemplate {
        self.server.template()
    }

    fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.server.events()
    }

    async fn shutdown(self, grace: Duration) -> bool {
        self.server.shutdown(grace).await
    }
}

async fn sockjs_server(options: SockJsOptions) -> TestServer {
    let server = Server::builder().endpoint(Endpoint::new("/ws").sockjs(options)).build().unwrap();
    let app: axum::Router = axum::Router::new()
        .route("/api/health", axum::routing::get(|| async { "ok" }))
        .merge(server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestServer { addr, server }
}

#[path = "sockjs/suite.rs"]
mod suite;
