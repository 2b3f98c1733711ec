//! The SockJS protocol suite (`sockjs/suite.rs`) against the server's own listener.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use stompede::{Endpoint, RunningServer, Server, SockJsOptions};
use stompede_tests::start;

type TestServer = RunningServer;

async fn sockjs_server(options: SockJsOptions) -> TestServer {
    start(Server::builder().endpoint(Endpoint::new("/ws").sockjs(options))).await
}

#[path = "sockjs/suite.rs"]
mod suite;
