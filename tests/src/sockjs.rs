//! Talking to a SockJS endpoint over plain HTTP: one request per connection, streaming bodies
//! read up to a marker, STOMP frames in and out of SockJS's JSON arrays.

// A failed unwrap in a test helper is a failed assertion.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{Addressed, WAIT};

/// A STOMP 1.2 CONNECT without heart-beats.
pub const CONNECT: &str = "CONNECT\naccept-version:1.2\nhost:test\nheart-beat:0,0\n\n\u{0}";

/// One HTTP/1.1 request on a fresh connection; the response with its body still to read.
pub async fn request(
    server: &impl Addressed,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Response<Incoming> {
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", server.local_addr().to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    tokio::time::timeout(WAIT, sender.send_request(request)).await.unwrap().unwrap()
}

/// A request whose whole body is read.
pub async fn fetch(
    server: &impl Addressed,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let response = request(server, method, path, headers, body).await;
    let (parts, body) = response.into_parts();
    let bytes = tokio::time::timeout(WAIT, body.collect()).await.unwrap().unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Reads a streaming body until `want` has arrived (more may have); returns all read so far.
pub async fn read_until(body: &mut Incoming, seen: &mut String, want: &str) {
    tokio::time::timeout(WAIT, async {
        while !seen.contains(want) {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        seen.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
                other => panic!("stream ended before {want:?} (got {seen:?}): {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{want:?} did not arrive; got {seen:?}"));
}

/// Reads a streaming body to its end.
pub async fn read_to_end(body: &mut Incoming, seen: &mut String) {
    let read = tokio::time::timeout(WAIT, async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the response did not end; got {} bytes: {seen:?}", seen.len());
}

/// A response header's value, or "" when it is absent.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// JSON-encodes STOMP frames for `xhr_send`.
pub fn json(frames: &[&str]) -> String {
    serde_json::to_string(frames).unwrap()
}

/// Opens a polling session and completes CONNECT; returns the CONNECTED frame's text.
pub async fn connected_polling(server: &impl Addressed, session: &str) -> String {
    let path = format!("/ws/000/{session}/xhr");
    assert_eq!(fetch(server, Method::POST, &path, &[], "").await.2, "o\n");
    let send = format!("/ws/000/{session}/xhr_send");
    let (status, _, _) = fetch(server, Method::POST, &send, &[], &json(&[CONNECT])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, body) = fetch(server, Method::POST, &path, &[], "").await;
    assert!(body.starts_with("a[\"CONNECTED\\n"), "{body}");
    body
}

/// The STOMP frames (decoded) in the complete `a[...]\n` frames of `text`.
pub fn messages(text: &str) -> Vec<String> {
    text.split_inclusive('\n')
        .filter_map(|line| line.strip_suffix('\n')?.strip_prefix('a'))
        .flat_map(|array| serde_json::from_str::<Vec<String>>(array).unwrap())
        .collect()
}
