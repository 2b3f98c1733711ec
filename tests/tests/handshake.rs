//! The WebSocket handshake: endpoints, upgrade checks, origins, the application's hook.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use http::StatusCode;
use stompede::{HandshakeRejection, Server};
use stompede_tests::{RawPeer, WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a raw HTTP request and returns the response head and body (`Content-Length` bytes;
/// none after a 101).
async fn raw_request(addr: std::net::SocketAddr, path: &str, headers: &[&str]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request(addr, path, headers).as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed mid-head");
            response.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        response.extend_from_slice(&body);
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// A GET request asking for an upgrade, with `headers`.
fn request(addr: std::net::SocketAddr, path: &str, headers: &[&str]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

const UPGRADE: [&str; 3] = [
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

fn upgrade_with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut headers = UPGRADE.to_vec();
    headers.extend_from_slice(extra);
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_naming_the_endpoints() {
    let server = start(Server::builder()).await;
    let response = raw_request(server.local_addr(), "/nope", &UPGRADE).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(response.ends_with("no STOMP endpoint at /nope (endpoints: /ws)"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_get_on_the_endpoint_is_400() {
    let server = start(Server::builder()).await;
    let response = raw_request(server.local_addr(), "/ws", &[]).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.ends_with("Can \"Upgrade\" only to \"WebSocket\"."), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_is_403_unless_allowed() {
    let server = start(Server::builder()).await;
    let evil =
        raw_request(server.local_addr(), "/ws", &upgrade_with(&["Origin: http://evil.example"]))
            .await;
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    assert!(evil.contains("origin http://evil.example is not allowed"), "{evil}");
    let same_origin = format!("Origin: http://{}", server.local_addr());
    let same =
        raw_request(server.local_addr(), "/ws", &[&UPGRADE[..], &[same_origin.as_str()]].concat())
            .await;
    assert!(same.starts_with("HTTP/1.1 101"), "{same}");

    let open = start(Server::builder().allowed_origins(["http://app.example"])).await;
    let allowed =
        raw_request(open.local_addr(), "/ws", &upgrade_with(&["Origin: http://app.example"])).await;
    assert!(allowed.starts_with("HTTP/1.1 101"), "{allowed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_endpoints_are_served() {
    let server = start(Server::builder().endpoint("/ws").endpoint("/stomp")).await;
    for path in ["/ws", "/stomp"] {
        let response = raw_request(server.local_addr(), path, &UPGRADE).await;
        assert!(response.starts_with("HTTP/1.1 101"), "{path}: {response}");
        assert!(
            response.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{response}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_hook_can_refuse_or_accept() {
    let server = start(Server::builder().handshake_hook(
        |request: &http::request::Parts, _: &mut http::Extensions| {
            match request.headers.get("authorization") {
                Some(_) => Ok(()),
                None => Err(HandshakeRejection::new(StatusCode::UNAUTHORIZED, "log in first")),
            }
        },
    ))
    .await;
    let refused = raw_request(server.local_addr(), "/ws", &UPGRADE).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.ends_with("log in first"), "{refused}");
    let accepted =
        raw_request(server.local_addr(), "/ws", &upgrade_with(&["Authorization: Bearer x"])).await;
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_subprotocol_is_negotiated() {
    let server = start(Server::builder()).await;
    let response = raw_request(
        server.local_addr(),
        "/ws",
        &upgrade_with(&["Sec-WebSocket-Protocol: v10.stomp, v11.stomp"]),
    )
    .await;
    assert!(response.contains("sec-websocket-protocol: v11.stomp"), "{response}");
    // And a real client offering v12.stomp gets it (RawPeer asserts the header).
    RawPeer::connected(&ws_url(&server)).await;
}

/// A client that sends its first STOMP frame in the same write as its upgrade request: hyper
/// reads the frame along with the request, and the session must still get it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_with_the_upgrade_request_is_read_first() {
    let server = start(Server::builder()).await;
    let addr = server.local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut bytes = request(addr, "/ws", &UPGRADE).into_bytes();
    // A masked text frame (an all-zero mask: the payload reads as is).
    let connect = b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0";
    bytes.extend_from_slice(&[0x81, 0x80 | connect.len() as u8, 0, 0, 0, 0]);
    bytes.extend_from_slice(connect);
    stream.write_all(&bytes).await.unwrap();
    let mut seen = Vec::new();
    let answered = tokio::time::timeout(WAIT, async {
        while !seen.windows(10).any(|window| window == b"CONNECTED\n") {
            let mut chunk = [0u8; 512];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(answered.is_ok(), "no CONNECTED: {}", String::from_utf8_lossy(&seen));
    assert!(seen.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&seen));
}
