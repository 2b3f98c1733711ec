//! The Rust client's own duties: heart-beats in both directions.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use stompede::Server;
use stompede::client::{Client, ClientOptions};
use stompede::stomp::HeartBeat;
use stompede_tests::{WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gives_up_on_a_server_that_stops_beating() {
    // A fake server that promises heart-beats every 100 ms, then never sends another byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut connect = [0u8; 512];
        let _ = socket.read(&mut connect).await.unwrap();
        socket.write_all(b"CONNECTED\nversion:1.2\nheart-beat:100,0\n\n\0").await.unwrap();
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await; // until the client hangs up
    });
    let options = ClientOptions {
        heartbeat: HeartBeat { send: 0, receive: 100 },
        ..ClientOptions::default()
    };
    let client = Client::connect_tcp(addr, options).await.unwrap();
    let reason = tokio::time::timeout(WAIT, client.closed()).await.unwrap().unwrap();
    assert!(reason.contains("no frame or heart-beat from the server"), "{reason}");
    tokio::time::timeout(WAIT, fake).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heart_beats_both_ways_keep_an_idle_session_alive() {
    let beat = Duration::from_millis(100);
    let server = start(Server::builder().heartbeat(beat, beat)).await;
    let options = ClientOptions {
        heartbeat: HeartBeat { send: 100, receive: 100 },
        ..ClientOptions::default()
    };
    let client = Client::connect_ws(&ws_url(&server), options).await.unwrap();
    assert_eq!(client.connected_frame().get("heart-beat"), Some("100,100"));
    // Idle for several times either side's allowance (1.1 s): only heart-beats cross the wire.
    let idle = tokio::time::sleep(Duration::from_millis(2500));
    tokio::select! {
        reason = client.closed() => panic!("the idle session closed: {reason:?}"),
        () = idle => {}
    }
    client.send_with_receipt("/topic/alive", "still connected").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_succeeds_when_the_server_closes_without_a_receipt() {
    // RabbitMQ Web-STOMP closes the connection on DISCONNECT without the RECEIPT asked for.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 512];
        while !String::from_utf8_lossy(&seen).contains("CONNECT") {
            let n = socket.read(&mut chunk).await.unwrap();
            seen.extend_from_slice(&chunk[..n]);
        }
        socket.write_all(b"CONNECTED\nversion:1.2\n\n\0").await.unwrap();
        while !String::from_utf8_lossy(&seen).contains("DISCONNECT") {
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client hung up before DISCONNECT");
            seen.extend_from_slice(&chunk[..n]);
        }
        drop(socket); // no RECEIPT
    });
    let client = Client::connect_tcp(addr, ClientOptions::default()).await.unwrap();
    tokio::time::timeout(WAIT, client.disconnect()).await.unwrap().unwrap();
    fake.await.unwrap();
}
