//! The SockJS protocol over plain HTTP (and WebSocket), rule by rule: status codes, headers and
//! exact frames, against a real server: the including test binary says which
//! (`super::sockjs_server`: the server's own listener, or an axum app that merged its router).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use stompede::SockJsOptions;
use stompede::SockJsTransport;
use stompede::events::SessionEvent;
use stompede_tests::WAIT;
use stompede_tests::sockjs::{
    CONNECT, connected_polling, fetch, header, json, messages, read_to_end, read_until, request,
};

use super::{TestServer, sockjs_server};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_info_and_iframe() {
    let server = sockjs_server(SockJsOptions::default()).await;
    for path in ["/ws", "/ws/"] {
        let (status, headers, body) = fetch(&server, Method::GET, path, &[], "").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "Welcome to SockJS!\n"), "{path}");
        assert_eq!(header(&headers, "content-type"), "text/plain; charset=UTF-8");
    }

    let (status, headers, body) = fetch(&server, Method::GET, "/ws/info", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "application/json; charset=UTF-8");
    assert_eq!(
        header(&headers, "cache-control"),
        "no-store, no-cache, no-transform, must-revalidate, max-age=0"
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["websocket"], true);
    assert_eq!(info["cookie_needed"], false);
    assert_eq!(info["origins"], serde_json::json!(["*:*"]));
    assert!(info["entropy"].is_u64());

    let origin = format!("http://{}", server.local_addr());
    let (_, headers, _) = fetch(&server, Method::GET, "/ws/info", &[("origin", &origin)], "").await;
    assert_eq!(header(&headers, "access-control-allow-origin"), origin);
    assert_eq!(header(&headers, "access-control-allow-credentials"), "true");
    let (status, _, _) =
        fetch(&server, Method::GET, "/ws/info", &[("origin", "http://elsewhere.example")], "")
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "origins follow allowed_origins");

    let (status, headers, body) = fetch(
        &server,
        Method::OPTIONS,
        "/ws/info",
        &[("origin", &origin), ("access-control-request-headers", "x-a")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(header(&headers, "access-control-allow-methods"), "OPTIONS, GET");
    assert_eq!(header(&headers, "access-control-allow-headers"), "x-a");
    assert_eq!(header(&headers, "access-control-max-age"), "31536000");
    assert!(body.is_empty());

    for path in ["/ws/iframe.html", "/ws/iframe-1.6.1.html"] {
        let (status, headers, body) = fetch(&server, Method::GET, path, &[], "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-type"), "text/html; charset=UTF-8");
        assert!(body.contains("sockjs-client@1.5.0/dist/sockjs.min.js"), "{body}");
        assert!(body.contains("SockJS.bootstrap_iframe()"));
        let etag = header(&headers, "etag").to_owned();
        let (status, _, body) =
            fetch(&server, Method::GET, path, &[("if-none-match", &etag)], "").await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_session_carries_stomp() {
    let server = sockjs_server(SockJsOptions::default()).await;
    let (status, headers, body) = fetch(&server, Method::POST, "/ws/000/s1/xhr", &[], "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "o\n"));
    assert_eq!(header(&headers, "content-type"), "application/javascript; charset=UTF-8");
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    assert_eq!(
        header(&headers, "cache-control"),
        "no-store, no-cache, no-transform, must-revalidate, max-age=0"
    );

    let subscribe = "SUBSCRIBE\nid:0\ndestination:/topic/a\nreceipt:r1\n\n\u{0}";
    let (status, headers, body) = fetch(
        &server,
        Method::POST,
        "/ws/000/s1/xhr_send",
        &[("content-type", "text/plain")],
        &json(&[CONNECT, subscribe]),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(header(&headers, "content-type"), "text/plain; charset=UTF-8");

    let mut received = Vec::new();
    while received.len() < 2 {
        let (_, _, body) = fetch(&server, Method::POST, "/ws/000/s1/xhr", &[], "").await;
        received.extend(messages(&body));
    }
    assert!(received[0].starts_with("CONNECTED\n"), "{received:?}");
    assert!(received[1].starts_with("RECEIPT\nreceipt-id:r1\n"), "{received:?}");

    // Messages published while no receiver is attached wait for the next poll, more than the
    // cache holds included, in order.
    for i in 0..150 {
        server.template().convert_and_send("/topic/a", format!("m{i}")).unwrap();
    }
    let mut bodies = Vec::new();
    while bodies.len() < 150 {
        let (_, _, body) = fetch(&server, Method::POST, "/ws/000/s1/xhr", &[], "").await;
        for frame in messages(&body) {
            let body = frame.split("\n\n").nth(1).unwrap().trim_end_matches('\0').to_owned();
            bodies.push(body);
        }
    }
    let expected: Vec<String> = (0..150).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_at_a_time() {
    let server = sockjs_server(SockJsOptions::default()).await;
    let mut first = request(&server, Method::POST, "/ws/000/s2/xhr_streaming", &[], "").await;
    let mut seen = String::new();
    read_until(first.body_mut(), &mut seen, "o\n").await;
    let (status, _, body) = fetch(&server, Method::POST, "/ws/000/s2/xhr", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "c[2010,\"Another connection still open\"]\n");
    // The first receiver is still attached and working.
    fetch(&server, Method::POST, "/ws/000/s2/xhr_send", &[], &json(&[CONNECT])).await;
    read_until(first.body_mut(), &mut seen, "CONNECTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xhr_send_errors() {
    let server = sockjs_server(SockJsOptions::default()).await;
    fetch(&server, Method::POST, "/ws/000/s3/xhr", &[], "").await;
    let send = "/ws/000/s3/xhr_send";
    let (status, _, body) = fetch(&server, Method::POST, send, &[], "[\"x\"").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "Broken JSON encoding.")
    );
    let (status, _, body) = fetch(&server, Method::POST, send, &[], "").await;
    assert_eq!((status, body.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "Payload expected."));
    let (status, _, _) =
        fetch(&server, Method::POST, "/ws/000/nobody/xhr_send", &[], "[\"x\"]").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Methods: 405 with Allow; the CORS preflight is answered.
    let (status, headers, _) = fetch(&server, Method::GET, "/ws/000/s3/xhr", &[], "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&headers, "allow"), "POST, OPTIONS");
    let (status, headers, _) =
        fetch(&server, Method::OPTIONS, "/ws/000/s3/xhr_send", &[], "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(header(&headers, "access-control-allow-methods"), "OPTIONS, POST");
    // Bad ids and unknown (or JSONP) transports.
    for path in ["/ws/000/a.b/xhr", "/ws/0.0/s/xhr", "/ws/000/s3/jsonp", "/ws/000/s3/xhr/extra"] {
        let (status, _, _) = fetch(&server, Method::POST, path, &[], "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_transports_frame_their_output() {
    let server = sockjs_server(SockJsOptions::default()).await;

    let mut xhr = request(&server, Method::POST, "/ws/000/x1/xhr_streaming", &[], "").await;
    let mut seen = String::new();
    read_until(xhr.body_mut(), &mut seen, "o\n").await;
    assert_eq!(seen, format!("{}\no\n", "h".repeat(2048)));

    let mut es = request(&server, Method::GET, "/ws/000/e1/eventsource", &[], "").await;
    assert_eq!(header(es.headers(), "content-type"), "text/event-stream; charset=UTF-8");
    let mut seen = String::new();
    read_until(es.body_mut(), &mut seen, "data: o\r\n\r\n").await;
    assert_eq!(seen, "\r\ndata: o\r\n\r\n");
    fetch(&server, Method::POST, "/ws/000/e1/xhr_send", &[], &json(&[CONNECT])).await;
    read_until(es.body_mut(), &mut seen, "data: a[\"CONNECTED\\n").await;

    let mut html = request(&server, Method::GET, "/ws/000/h1/htmlfile?c=_jp.abc", &[], "").await;
    assert_eq!(header(html.headers(), "content-type"), "text/html; charset=UTF-8");
    let mut seen = String::new();
    read_until(html.body_mut(), &mut seen, "<script>\np(\"o\");\n</script>\r\n").await;
    let prelude = seen.split("<script>\np(").next().unwrap();
    assert!(prelude.len() >= 1024, "the htmlfile prelude is padded to 1 KiB");
    assert!(prelude.contains("var c = parent._jp.abc;"));

    let (status, _, body) = fetch(&server, Method::GET, "/ws/000/h2/htmlfile", &[], "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "\"callback\" parameter required")
    );
    let (status, _, body) =
        fetch(&server, Method::GET, "/ws/000/h2/htmlfile?c=alert(1)", &[], "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "invalid \"callback\" parameter")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_response_ends_at_the_byte_limit_and_loses_nothing() {
    let server = sockjs_server(SockJsOptions::default().streaming_bytes_limit(4096)).await;
    let mut stream = request(&server, Method::POST, "/ws/000/l1/xhr_streaming", &[], "").await;
    let mut seen = String::new();
    read_until(stream.body_mut(), &mut seen, "o\n").await;
    let subscribe = "SUBSCRIBE\nid:0\ndestination:/topic/l\nreceipt:r\n\n\u{0}";
    fetch(&server, Method::POST, "/ws/000/l1/xhr_send", &[], &json(&[CONNECT, subscribe])).await;
    read_until(stream.body_mut(), &mut seen, "receipt-id:r").await;
    let payload = "x".repeat(500);
    for i in 0..40 {
        server.template().convert_and_send("/topic/l", format!("{i:02}{payload}")).unwrap();
    }
    // The first response ends once it has carried 4 KiB (after the frame that crosses the
    // limit); the client opens the next, which carries on where the first stopped (the last
    // one stays open: read it until every message is in).
    read_to_end(stream.body_mut(), &mut seen).await;
    let mut all = messages(&seen);
    let count = |all: &[String]| all.iter().filter(|m| m.starts_with("MESSAGE")).count();
    while count(&all) < 40 {
        let mut next = request(&server, Method::POST, "/ws/000/l1/xhr_streaming", &[], "").await;
        let mut more = String::new();
        tokio::time::timeout(WAIT, async {
            while count(&all) + count(&messages(&more)) < 40 {
                match next.body_mut().frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            more.push_str(std::str::from_utf8(&data).unwrap());
                        }
                    }
                    _ => break, // this response reached the limit
                }
            }
        })
        .await
        .unwrap();
        all.extend(messages(&more));
    }
    let order: Vec<String> = all
        .iter()
        .filter(|m| m.starts_with("MESSAGE"))
        .map(|m| m.split("\n\n").nth(1).unwrap()[..2].to_owned())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("{i:02}")).collect();
    assert_eq!(order, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_frames_and_disconnect_delay() {
    let options = SockJsOptions::default()
        .heartbeat(Duration::from_millis(100))
        .disconnect_delay(Duration::from_millis(300));
    let server = sockjs_server(options).await;
    let mut events = server.events();
    connected_polling(&server, "hb").await;
    // Nothing to send: the poll is answered with a heart-beat frame.
    let (_, _, body) = fetch(&server, Method::POST, "/ws/000/hb/xhr", &[], "").await;
    assert_eq!(body, "h\n");
    // No receiver for the disconnect delay: the STOMP session ends, the SockJS session is gone.
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(SessionEvent::Disconnected { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await
    .unwrap();
    let (status, _, _) = fetch(&server, Method::POST, "/ws/000/hb/xhr_send", &[], "[\"x\"]").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Streaming responses and SockJS WebSockets get them too, while idle.
    let mut stream = request(&server, Method::POST, "/ws/000/hb2/xhr_streaming", &[], "").await;
    let mut seen = String::new();
    read_until(stream.body_mut(), &mut seen, "o\nh\nh\n").await;
    drop(stream);
    let url = format!("ws://{}/ws/000/hb3/websocket", server.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next(&mut ws).await, "o");
    assert_eq!(next(&mut ws).await, "h");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_says_go_away() {
    let server = sockjs_server(SockJsOptions::default()).await;
    connected_polling(&server, "bye").await;
    let send = "/ws/000/bye/xhr_send";
    fetch(&server, Method::POST, send, &[], &json(&["FOO\n\n\u{0}"])).await;
    let mut all = String::new();
    while !all.contains("c[") {
        let (_, _, body) = fetch(&server, Method::POST, "/ws/000/bye/xhr", &[], "").await;
        all.push_str(&body);
    }
    assert!(messages(&all)[0].starts_with("ERROR\n"), "{all}");
    assert!(all.ends_with("c[3000,\"Go away!\"]\n"), "{all}");
    let (_, _, again) = fetch(&server, Method::POST, "/ws/000/bye/xhr", &[], "").await;
    assert_eq!(again, "c[3000,\"Go away!\"]\n");
}

/// A polling client between two polls holds no connection: at shutdown its session is
/// released at once, not after the disconnect delay (a minute here, longer than the grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_idle_polling_sessions() {
    let options = SockJsOptions::default().disconnect_delay(Duration::from_secs(60));
    let server = sockjs_server(options).await;
    connected_polling(&server, "idle").await;
    assert!(
        server.shutdown(Duration::from_secs(10)).await,
        "every task ended within the grace, the idle SockJS session's too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_max_sessions_are_refused() {
    let server = sockjs_server(SockJsOptions::default().max_sessions(2)).await;
    for id in ["m1", "m2"] {
        let (_, _, body) =
            fetch(&server, Method::POST, &format!("/ws/000/{id}/xhr"), &[], "").await;
        assert_eq!(body, "o\n");
    }
    let (status, _, body) = fetch(&server, Method::POST, "/ws/000/m3/xhr", &[], "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("max_sessions"), "{body}");
    // Existing sessions carry on.
    let (status, _, _) =
        fetch(&server, Method::POST, "/ws/000/m1/xhr_send", &[], &json(&[CONNECT])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_and_switched_off_transports() {
    let options = SockJsOptions::default()
        .session_cookie_needed(true)
        .without(SockJsTransport::XhrPolling)
        .without(SockJsTransport::WebSocket);
    let server = sockjs_server(options).await;
    let (_, _, body) = fetch(&server, Method::GET, "/ws/info", &[], "").await;
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (info["cookie_needed"].clone(), info["websocket"].clone()),
        (true.into(), false.into())
    );
    let (status, _, _) = fetch(&server, Method::POST, "/ws/000/c1/xhr", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let stream = request(&server, Method::POST, "/ws/000/c1/xhr_streaming", &[], "").await;
    assert_eq!(header(stream.headers(), "set-cookie"), "JSESSIONID=dummy;path=/");
    let stream = request(
        &server,
        Method::POST,
        "/ws/000/c2/xhr_streaming",
        &[("cookie", "JSESSIONID=abc123")],
        "",
    )
    .await;
    assert_eq!(header(stream.headers(), "set-cookie"), "JSESSIONID=abc123;path=/");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message.
async fn next(ws: &mut Ws) -> String {
    let message = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    message.into_text().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_transports() {
    let server = sockjs_server(SockJsOptions::default()).await;
    let base = format!("ws://{}", server.local_addr());

    // SockJS framing over WebSocket.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{base}/ws/000/w1/websocket")).await.unwrap();
    assert_eq!(next(&mut ws).await, "o");
    ws.send(Message::text(json(&[CONNECT]))).await.unwrap();
    let connected = next(&mut ws).await;
    assert!(connected.starts_with("a[\"CONNECTED\\n"), "{connected}");
    // The server ending the STOMP session (here: an ERROR for an unknown command) says
    // goodbye with the close frame, then closes.
    let (mut bye, _) =
        tokio_tungstenite::connect_async(format!("{base}/ws/000/w2/websocket")).await.unwrap();
    assert_eq!(next(&mut bye).await, "o");
    bye.send(Message::text(json(&[CONNECT, "FOO\n\n\u{0}"]))).await.unwrap();
    let mut said = String::new();
    while !said.contains("c[") {
        said.push_str(&next(&mut bye).await);
    }
    assert!(said.contains("ERROR\\n"), "{said}");
    assert!(said.ends_with("c[3000,\"Go away!\"]"), "{said}");

    // A message that is not JSON closes the connection.
    ws.send(Message::text("not json")).await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server closed the connection");

    // Plain STOMP over WebSocket, at the endpoint itself and at /ws/websocket.
    for path in ["/ws", "/ws/websocket"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}{path}")).await.unwrap();
        ws.send(Message::text(CONNECT)).await.unwrap();
        let frame = next(&mut ws).await;
        assert!(frame.starts_with("CONNECTED\n"), "{path}: {frame}");
    }
}

/// A keep-alive HTTP/1.1 connection, for a client that makes many requests.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(server: &TestServer) -> Connection {
        let stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        Connection { sender, host: server.local_addr().to_string() }
    }

    async fn post(&mut self, path: &str, body: String) -> String {
        let request = http::Request::post(path)
            .header("host", &self.host)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_polling_and_two_hundred_websocket_sessions_receive_every_message_once_in_order()
 {
    const SESSIONS: usize = 200;
    const MESSAGES: usize = 20;
    let server = sockjs_server(SockJsOptions::default()).await;
    let url = format!("ws://{}/ws", server.local_addr());
    let (subscribed_tx, mut subscribed) = tokio::sync::mpsc::channel::<()>(2 * SESSIONS);
    let mut sessions = tokio::task::JoinSet::new();
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();

    for n in 0..SESSIONS {
        // A SockJS polling session, speaking STOMP through xhr and xhr_send.
        let mut http = Connection::open(&server).await;
        let subscribed = subscribed_tx.clone();
        sessions.spawn(async move {
            let base = format!("/ws/000/poll{n}");
            assert_eq!(http.post(&format!("{base}/xhr"), String::new()).await, "o\n");
            let subscribe = "SUBSCRIBE\nid:0\ndestination:/topic/all\nreceipt:ready\n\n\u{0}";
            http.post(&format!("{base}/xhr_send"), json(&[CONNECT, subscribe])).await;
            let mut bodies = Vec::new();
            let mut ready = false;
            while bodies.len() < MESSAGES {
                let text = http.post(&format!("{base}/xhr"), String::new()).await;
                for frame in messages(&text) {
                    if frame.starts_with("RECEIPT") {
                        ready = true;
                        subscribed.send(()).await.unwrap();
                    } else if frame.starts_with("MESSAGE") {
                        let body = frame.split("\n\n").nth(1).unwrap().trim_end_matches('\0');
                        bodies.push(body.to_owned());
                    }
                }
            }
            assert!(ready);
            bodies
        });
        // A plain WebSocket session.
        let client = stompede::client::Client::connect_ws(&url, Default::default()).await.unwrap();
        let mut subscription = client.subscribe("/topic/all").await.unwrap();
        subscribed_tx.send(()).await.unwrap();
        sessions.spawn(async move {
            let mut bodies = Vec::new();
            while bodies.len() < MESSAGES {
                let frame = subscription.next().await.unwrap();
                bodies.push(frame.body_str().unwrap().to_owned());
            }
            drop(client);
            bodies
        });
    }
    for _ in 0..2 * SESSIONS {
        tokio::time::timeout(WAIT, subscribed.recv()).await.unwrap().unwrap();
    }
    for body in &expected {
        server.template().convert_and_send("/topic/all", body.clone()).unwrap();
    }
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        let mut all = Vec::new();
        while let Some(result) = sessions.join_next().await {
            all.push(result.unwrap());
        }
        all
    })
    .await
    .unwrap();
    assert_eq!(all.len(), 2 * SESSIONS);
    for bodies in all {
        assert_eq!(bodies, expected, "every message once, in order");
    }
}
