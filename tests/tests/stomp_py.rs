//! Compatibility with a real third-party client: `stomp.py` (PyPI), over TCP and WebSocket.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use stompede::Server;
use stompede::stomp::Headers;
use stompede_tests::{WAIT, skip, start};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const COUNT: usize = 50;

fn python() -> Option<String> {
    let python = std::env::var("STOMPEDE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import stomp, websocket"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

async fn round_trip(transport: &str) {
    let test = format!("stomp_py_{transport}");
    let Some(python) = python() else {
        return skip(
            &test,
            "python3 with stomp.py and websocket-client is not installed (pip install -r tests/clients/requirements.txt)",
        );
    };
    let server = start(Server::builder().tcp("127.0.0.1:0".parse().unwrap())).await;
    let addr = if transport == "tcp" { server.tcp_addr().unwrap() } else { server.local_addr() };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/stomp_py_peer.py");
    let mut child = Command::new(python)
        .args([
            script,
            transport,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            &COUNT.to_string(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(ready.as_deref(), Some("READY"), "stomp.py did not subscribe");
    let template = server.template();
    for i in 0..COUNT {
        let mut headers = Headers::new();
        headers.push("x-from", "rust");
        template.send("/topic/py", headers, format!("rust-{i}").into()).unwrap();
    }
    let verdict = tokio::time::timeout(WAIT * 3, lines.next_line()).await.unwrap().unwrap();
    let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
    let verdict = verdict.unwrap_or_default();
    assert!(verdict.starts_with(&format!("OK {transport}")), "stomp.py says: {verdict}");
    assert!(status.success(), "stomp.py exited with {status}");
}

/// stomp.py against point-to-point queues, acknowledgements (1.2 and 1.1), prefetch, dead
/// letters and retained messages (tests/clients/stomp_py_queues.py).
async fn queues(transport: &str) {
    let test = format!("stomp_py_queues_{transport}");
    let Some(python) = python() else {
        return skip(
            &test,
            "python3 with stomp.py and websocket-client is not installed (pip install -r tests/clients/requirements.txt)",
        );
    };
    let builder = Server::builder()
        .tcp("127.0.0.1:0".parse().unwrap())
        .point_to_point(["/queue"])
        .retain(["/topic/retained"])
        .retain_header(true);
    let server = start(builder).await;
    let addr = if transport == "tcp" { server.tcp_addr().unwrap() } else { server.local_addr() };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/stomp_py_queues.py");
    let child = Command::new(python)
        .args([script, transport, &addr.ip().to_string(), &addr.port().to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(WAIT * 12, child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stomp.py queue checks failed:\n{stdout}");
    assert!(stdout.lines().any(|l| l == format!("OK {transport}")), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_py_with_queues_over_tcp() {
    queues("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_py_with_queues_over_websocket() {
    queues("ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_py_over_tcp() {
    round_trip("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_py_over_websocket() {
    round_trip("ws").await;
}

/// The Python snippet of docs/getting-started.md, as written but for the address, against a
/// server publishing ticks: it prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_python_snippet_prints_ticks() {
    const TEST: &str = "the_guide_python_snippet_prints_ticks";
    let Some(python) = python() else {
        return skip(TEST, "python3 with stomp.py and websocket-client is not installed");
    };
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/getting-started.md"))
            .unwrap();
    let snippet = page.split("```python\n").nth(1).and_then(|s| s.split("```").next()).unwrap();
    assert!(snippet.contains(r#"("127.0.0.1", 8080)"#), "the snippet names the address");
    let server = start(Server::builder()).await;
    let mut events = server.events();
    let snippet = snippet.replace(
        r#"("127.0.0.1", 8080)"#,
        &format!(r#"("127.0.0.1", {})"#, server.local_addr().port()),
    );
    let mut child = Command::new(python)
        .args(["-c", &snippet])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Subscribed: the server says so.
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(stompede::events::SessionEvent::Subscribed { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("the snippet subscribed");
    for tick in 0..3 {
        server.template().convert_and_send("/topic/ticks", format!("tick {tick}")).unwrap();
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for tick in 0..3 {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
        assert_eq!(line.as_deref(), Some(format!("tick {tick}").as_str()));
    }
    child.kill().await.unwrap();
}
