//! The chat example (`examples/chat`, the very `app.rs` that `cargo run --example chat` runs)
//! in headless Chromium with three users: rooms, private messages checked on the wire,
//! errors to their sender, the administrators' topic, refusals without a login and from
//! another origin, and logout (`tests/browser/chat.mjs`). Its own test binary: the chat's
//! handlers (found through `inventory`) need the chat's state, which other servers lack.

use std::collections::HashMap;
use std::time::Duration;

use stompede_tests::browser::{artifacts_dir, missing_tools, run_script};

#[path = "../../examples/chat/app.rs"]
mod chat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_three_users_in_chromium() {
    let presence = chat::Presence::default();
    let server = chat::builder(presence.clone()).build().expect("valid configuration");
    tokio::spawn(chat::watch_sessions(server.clone(), presence));
    let accounts: HashMap<String, chat::Account> =
        [("ada", vec!["admin".to_owned()]), ("bob", vec![]), ("carol", vec![])]
            .into_iter()
            .map(|(name, roles)| {
                (name.to_owned(), chat::Account { password: format!("{name}-password"), roles })
            })
            .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    let web = chat::Web::new(server.clone(), accounts);
    tokio::spawn(async move { axum::serve(listener, chat::router(web)).await });
    let screenshot = artifacts_dir().join("chat.png");
    let _ = std::fs::remove_file(&screenshot);
    run_script("chat_with_three_users_in_chromium", "chat.mjs", &format!("http://{addr}/")).await;
    if missing_tools().is_none() {
        assert!(screenshot.exists(), "the screenshot {} was taken", screenshot.display());
    }
    server.shutdown(Duration::from_secs(5)).await;
}
