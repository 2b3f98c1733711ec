//! Browser tests: the hello app (the very file `cargo run --example hello` runs) served on an
//! ephemeral port, and the scripts in `tests/browser/` driving real headless Chromium
//! through `playwright-core` against it.
//!
//! `guide_page_on_every_sockjs_transport` serves the page of the guide stompede follows
//! (`../shared/seed/index.html` from the project root, or `STOMPEDE_GUIDE_PAGE`) unchanged.
//!
//! Needs `node`, Debian's `chromium` (`/usr/bin/chromium`, or `STOMPEDE_CHROMIUM`) and
//! `npm ci` in `tests/browser`; without them each test says what is missing and skips (fails
//! under `STOMPEDE_REQUIRE_ALL=1`). Screenshots land in `target/browser/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stompede::SockJsOptions;
use stompede_tests::browser::{
    artifacts_dir, browser_dir, missing_tools, run_script, run_script_with,
};
use stompede_tests::{skip, start, start_relayed};

#[path = "../../examples/hello/app.rs"]
mod hello;

#[path = "../../examples/hello/secure.rs"]
mod secure;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_page_in_chromium() {
    let server = start(hello::builder()).await;
    let url = format!("http://{}/", server.local_addr());
    let screenshot = artifacts_dir().join("hello.png");
    let _ = std::fs::remove_file(&screenshot);
    run_script("hello_page_in_chromium", "hello_page.mjs", &url).await;
    if missing_tools().is_none() {
        assert!(screenshot.exists(), "the screenshot {} was taken", screenshot.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stompjs_7_and_legacy_stompjs_round_trip() {
    let server = start(hello::builder()).await;
    let url = format!("http://{}/", server.local_addr());
    run_script("stompjs_7_and_legacy_stompjs_round_trip", "third_party_clients.mjs", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stompede_js_client_in_chromium() {
    let beat = Duration::from_millis(100);
    // Binary bodies with NUL bytes are part of what stompede.js must carry: allowed here (the
    // hello app refuses them for the sake of the guide's stompjs 2.3.3).
    // The page of docs/browser-client.md, served as written: the script checks what it logs.
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/browser-client.md"),
    )
    .expect("docs/browser-client.md");
    let snippet =
        doc.split("```html\n").nth(1).and_then(|s| s.split("```").next()).expect("its html block");
    let builder = hello::builder().heartbeat(beat, beat).reject_nul_in_bodies(false).static_asset(
        "/snippet.html",
        "text/html; charset=utf-8",
        snippet.to_owned(),
    );
    let server = start(builder).await;
    let url = format!("http://{}/", server.local_addr());
    run_script("stompede_js_client_in_chromium", "stompede_client.mjs", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_transports_with_stompjs_and_the_hello_page() {
    let client = browser_dir().join("node_modules/sockjs-client/dist/sockjs.min.js");
    let Ok(script) = std::fs::read(&client) else {
        if missing_tools().is_some() {
            skip("sockjs_transports_with_stompjs_and_the_hello_page", "npm packages missing");
            return;
        }
        panic!("{} is missing", client.display());
    };
    // The iframe page loads the same copy of the client (offline, same version).
    let options = SockJsOptions::default().client_library_url("/sockjs.min.js");
    let builder =
        hello::builder_with(options).static_asset("/sockjs.min.js", "text/javascript", script);
    let server = start(builder).await;
    let url = format!("http://{}/", server.local_addr());
    run_script("sockjs_transports_with_stompjs_and_the_hello_page", "sockjs_clients.mjs", &url)
        .await;
}

/// The guide's page, from `../shared/seed/` beside the project (never copied into it).
fn guide_page() -> PathBuf {
    std::env::var_os("STOMPEDE_GUIDE_PAGE").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seed/index.html")
    })
}

/// The page of the guide, byte for byte, against the hello app as `cargo run --example hello`
/// runs it (SockJS with its default options, so the iframe transports load the same
/// sockjs-client 1.5.0 address as the page), on the default transport and each one forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_page_on_every_sockjs_transport() {
    const TEST: &str = "guide_page_on_every_sockjs_transport";
    let path = guide_page();
    let Ok(page) = std::fs::read(&path) else {
        skip(TEST, &format!("the guide's page {} is missing", path.display()));
        return;
    };
    let server = start(hello::builder().static_asset("/guide.html", "text/html", page)).await;
    let url = format!("http://{}/", server.local_addr());
    let screenshot = artifacts_dir().join("guide.png");
    let _ = std::fs::remove_file(&screenshot);
    run_script(TEST, "guide_page.mjs", &url).await;
    if missing_tools().is_none() {
        assert!(screenshot.exists(), "the screenshot {} was taken", screenshot.display());
    }
}

/// The guide's optional security step, as `cargo run --example hello -- --secure` runs it,
/// with the guide's own page at `/`: no connection before the form login, greetings after it,
/// and the page's session closed by a logout on another tab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_page_behind_the_guides_security_step() {
    const TEST: &str = "guide_page_behind_the_guides_security_step";
    let path = guide_page();
    let Ok(page) = std::fs::read(&path) else {
        skip(TEST, &format!("the guide's page {} is missing", path.display()));
        return;
    };
    let app =
        hello::configured(stompede::SockJsOptions::default()).static_asset("/", "text/html", page);
    let server = secure::builder(app).build().expect("valid configuration");
    let accounts =
        secure::Accounts::new(server.clone(), [("user".to_owned(), "password".to_owned())]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, secure::router(accounts)).await });
    let screenshot = artifacts_dir().join("secure.png");
    let _ = std::fs::remove_file(&screenshot);
    run_script(TEST, "secure_hello.mjs", &format!("http://{addr}/")).await;
    if missing_tools().is_none() {
        assert!(screenshot.exists(), "the screenshot {} was taken", screenshot.display());
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// The hello app on two nodes relaying to the machine's RabbitMQ (STOMP plugin on 61613): a
/// page on each node, and the greeting of either reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_on_two_relaying_nodes() {
    const TEST: &str = "hello_on_two_relaying_nodes";
    if let Err(e) = tokio::net::TcpStream::connect("127.0.0.1:61613").await {
        skip(
            TEST,
            &format!(
                "RabbitMQ's STOMP port 127.0.0.1:61613 does not answer ({e}): rabbitmq-plugins enable rabbitmq_stomp"
            ),
        );
        return;
    }
    let relay = || stompede::broker::StompBrokerRelay::new(["/topic", "/queue"]);
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let (server, _) = start_relayed(hello::builder().enable_stomp_broker_relay(relay())).await;
        nodes.push(server);
    }
    let urls: Vec<String> = nodes.iter().map(|n| format!("http://{}/", n.local_addr())).collect();
    run_script_with(TEST, "relay_hello.mjs", &[&urls[0], &urls[1]]).await;
    for node in nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
}

/// Serves `builder`'s server inside an axum application (its routes merged with
/// `Server::router()`, beside a route of the application's own) on an ephemeral port.
async fn start_in_axum(
    builder: stompede::ServerBuilder,
) -> (std::net::SocketAddr, stompede::Server) {
    let server = builder.build().expect("valid test configuration");
    let app: axum::Router = axum::Router::new()
        .route("/api/health", axum::routing::get(|| async { "ok" }))
        .merge(server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, server)
}

/// The browser suites again, through an axum app that mounted the server with one
/// `.merge(server.router())`: the hello page, the guide's page on every SockJS transport,
/// sockjs-client 1.6 with both STOMP clients on every transport, and the third-party clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_suites_pass_through_an_axum_mount() {
    const TEST: &str = "the_browser_suites_pass_through_an_axum_mount";
    let path = guide_page();
    let Ok(page) = std::fs::read(&path) else {
        skip(TEST, &format!("the guide's page {} is missing", path.display()));
        return;
    };
    let (addr, _server) =
        start_in_axum(hello::builder().static_asset("/guide.html", "text/html", page)).await;
    let url = format!("http://{addr}/");
    run_script(TEST, "hello_page.mjs", &url).await;
    run_script(TEST, "guide_page.mjs", &url).await;
    run_script(TEST, "third_party_clients.mjs", &url).await;

    let client = browser_dir().join("node_modules/sockjs-client/dist/sockjs.min.js");
    let Ok(script) = std::fs::read(&client) else {
        skip(TEST, "npm packages missing");
        return;
    };
    let options = SockJsOptions::default().client_library_url("/sockjs.min.js");
    let builder =
        hello::builder_with(options).static_asset("/sockjs.min.js", "text/javascript", script);
    let (addr, _server) = start_in_axum(builder).await;
    run_script(TEST, "sockjs_clients.mjs", &format!("http://{addr}/")).await;
}

/// @stomp/stompjs 7 in Chromium against point-to-point queues, acknowledgements and retained
/// messages (tests/browser/queues.mjs): competing consumers, NACK and lost-connection
/// redelivery, prefetch, a retained message on subscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stompjs_7_with_queues_acknowledgements_and_retained_messages() {
    let builder = stompede::Server::builder()
        .point_to_point(["/queue"])
        .retain(["/topic/retained"])
        .retain_header(true);
    let server = start(builder).await;
    let url = format!("http://{}/", server.local_addr());
    run_script("stompjs_7_with_queues_acknowledgements_and_retained_messages", "queues.mjs", &url)
        .await;
}
