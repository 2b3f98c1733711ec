//! Security, over real sockets: authentication at CONNECT on every transport, the principal
//! in handlers and events, user destinations (and that nobody reaches another session's),
//! access rules and `#[requires_role]`, CSRF, session limits, the frame rate limit, and
//! closing a user's sessions.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use stompede::client::{Client, ClientError, ClientOptions, Subscription};
use stompede::events::{DisconnectReason, SessionEvent};
use stompede::security::{Access, AccessRules, Csrf, CsrfToken};
use stompede::stomp::{Command, Frame};
use stompede::{
    AuthenticationFailed, ConnectRequest, Endpoint, HandlerError, HandshakeRejection, Principal,
    RunningServer, Server, ServerBuilder, message_exception_handler, message_mapping,
    requires_role, send_to, send_to_user,
};
use stompede_tests::sockjs::{fetch, json, messages};
use stompede_tests::{Event, RawPeer, WAIT, start, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

// --- Handlers of this test binary ------------------------------------------------------

/// Who the caller is, to every session of the caller.
#[message_mapping("/whoami")]
#[send_to_user("/queue/reply")]
fn whoami(principal: Principal) -> String {
    format!("you are {}", principal.name())
}

/// The same, to the calling session only.
#[message_mapping("/whoami-here")]
#[send_to_user("/queue/reply", broadcast = false)]
fn whoami_here(principal: Principal, body: String) -> String {
    format!("{} here: {body}", principal.name())
}

/// Optional principal: anonymous callers are fine.
#[message_mapping("/maybe")]
#[send_to("/topic/maybe")]
fn maybe(principal: Option<Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_owned(), |p| p.name().to_owned())
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Always fails: its error goes back to the caller through the exception handler.
#[message_mapping("/fail")]
#[send_to("/topic/never")]
fn fail(body: String) -> Result<String, Refused> {
    Err(Refused(body))
}

#[message_exception_handler(Refused)]
#[send_to_user("/queue/errors", broadcast = false)]
fn report(error: HandlerError) -> String {
    format!("{} failed: {}", error.destination(), error.reason())
}

#[message_mapping("/admin/purge")]
#[requires_role("admin")]
#[send_to("/topic/purged")]
fn purge(principal: Principal) -> String {
    format!("purged by {}", principal.name())
}

// --- Helpers ---------------------------------------------------------------------------

/// The users of these tests: `login` is the user name, `passcode` is `secret-{login}`,
/// `ada` is an admin.
fn users_authenticator(builder: ServerBuilder) -> ServerBuilder {
    builder.authenticator(|connect: ConnectRequest| async move {
        let login = connect.login().unwrap_or_default().to_owned();
        if login.is_empty() {
            return Ok(connect.principal().cloned());
        }
        if connect.passcode() != Some(&format!("secret-{login}")) {
            return Err(AuthenticationFailed::new(format!("wrong passcode for {login}")));
        }
        let principal = Principal::new(&login);
        Ok(Some(if login == "ada" { principal.with_role("admin") } else { principal }))
    })
}

fn every_transport(builder: ServerBuilder) -> ServerBuilder {
    builder.tcp("127.0.0.1:0".parse().unwrap()).endpoint(Endpoint::new("/ws").with_sockjs())
}

fn login(user: &str) -> ClientOptions {
    ClientOptions {
        login: Some(user.into()),
        passcode: Some(format!("secret-{user}")),
        ..ClientOptions::default()
    }
}

async fn connect(server: &RunningServer, user: &str) -> Client {
    Client::connect_ws(&ws_url(server), login(user)).await.unwrap()
}

/// The next message of `subscription`, waiting at most [`WAIT`].
async fn next(subscription: &mut Subscription) -> Frame {
    tokio::time::timeout(WAIT, subscription.next()).await.unwrap().expect("a message")
}

/// The ERROR a refused CONNECT got.
fn refusal(result: Result<Client, ClientError>) -> String {
    match result {
        Err(ClientError::Server { message, .. }) => message,
        Err(other) => panic!("expected an ERROR frame, got {other}"),
        Ok(_) => panic!("the CONNECT was accepted"),
    }
}

/// Waits until `client`'s connection ends; returns the message of the ERROR that ended it.
async fn closed_with(client: &Client) -> String {
    let reason = tokio::time::timeout(WAIT, client.closed()).await.unwrap().unwrap_or_default();
    reason.strip_prefix("server error: ").map(str::to_owned).unwrap_or(reason)
}

/// A raw STOMP-over-TCP exchange: writes `frames`, reads to the close.
async fn tcp_exchange(server: &RunningServer, frames: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.tcp_addr().unwrap()).await.unwrap();
    stream.write_all(frames.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut seen)).await.unwrap().unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

/// A SockJS (xhr-polling) session that sends `frames` after opening; returns every STOMP
/// frame the server sent until it closed the session.
async fn sockjs_exchange(server: &RunningServer, session: &str, frames: &[&str]) -> Vec<String> {
    let path = format!("/ws/000/{session}/xhr");
    assert_eq!(fetch(server, Method::POST, &path, &[], "").await.2, "o\n");
    let send = format!("/ws/000/{session}/xhr_send");
    fetch(server, Method::POST, &send, &[], &json(frames)).await;
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let (_, _, body) = fetch(server, Method::POST, &path, &[], "").await;
            seen.extend(messages(&body));
            if body.starts_with('c') {
                return;
            }
        }
    })
    .await
    .expect("the server closed the SockJS session");
    seen
}

// --- Authentication --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_authentication_on_every_transport() {
    let server = start(every_transport(users_authenticator(Server::builder()))).await;

    // WebSocket: the principal is the session's user, in CONNECTED and in handlers.
    let ada = connect(&server, "ada").await;
    assert_eq!(ada.connected_frame().get("user-name"), Some("ada"));
    let mut reply = ada.subscribe("/user/queue/reply").await.unwrap();
    ada.send("/app/whoami", "").await.unwrap();
    assert_eq!(next(&mut reply).await.body_str(), Some("you are ada"));

    // A wrong passcode: `authentication failed` and nothing more, then the close.
    let mut wrong = login("bob");
    wrong.passcode = Some("guess".into());
    let refused = Client::connect_ws(&ws_url(&server), wrong.clone()).await;
    assert_eq!(refusal(refused), "authentication failed");

    // TCP.
    let seen =
        tcp_exchange(&server, "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:guess\n\n\0").await;
    assert!(seen.starts_with("ERROR\n"), "{seen}");
    assert!(seen.contains("message:authentication failed\n"), "{seen}");
    assert!(!seen.contains("guess") && !seen.contains("wrong passcode"), "{seen}");
    let tcp_bob = Client::connect_tcp(server.tcp_addr().unwrap(), login("bob")).await.unwrap();
    assert_eq!(tcp_bob.connected_frame().get("user-name"), Some("bob"));

    // SockJS.
    let seen = sockjs_exchange(
        &server,
        "refused",
        &["CONNECT\naccept-version:1.2\nlogin:bob\npasscode:guess\n\n\0"],
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("ERROR\n") && seen[0].contains("message:authentication failed\n"));
    let seen = sockjs_exchange(
        &server,
        "accepted",
        &["CONNECT\naccept-version:1.2\nlogin:bob\npasscode:secret-bob\n\n\0DISCONNECT\nreceipt:bye\n\n\0"],
    )
    .await;
    assert!(seen[0].starts_with("CONNECTED\n") && seen[0].contains("user-name:bob\n"), "{seen:?}");
    assert!(seen[1].starts_with("RECEIPT\n"), "{seen:?}");
    server.shutdown(WAIT).await;
}

/// A slow authenticator holds up its own session only; past the timeout, the session is
/// refused like any failed authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_authenticator_blocks_no_one_else_and_is_bounded() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let server =
        start(Server::builder().authentication_timeout(Duration::from_millis(1500)).authenticator(
            move |connect: ConnectRequest| {
                let gate = gate.clone();
                async move {
                    match connect.login() {
                        Some("slow") => gate.notified().await,
                        Some("stuck") => std::future::pending::<()>().await,
                        _ => {}
                    }
                    Ok(connect.login().map(Principal::new))
                }
            },
        ))
        .await;
    let url = ws_url(&server);
    let slow = tokio::spawn({
        let url = url.clone();
        async move {
            let options = ClientOptions { login: Some("slow".into()), ..ClientOptions::default() };
            Client::connect_ws(&url, options).await
        }
    });
    // While "slow" waits, others connect and exchange messages.
    let quick = Client::connect_ws(
        &url,
        ClientOptions { login: Some("quick".into()), ..ClientOptions::default() },
    )
    .await
    .unwrap();
    let mut maybe = quick.subscribe("/topic/maybe").await.unwrap();
    quick.send("/app/maybe", "").await.unwrap();
    assert_eq!(next(&mut maybe).await.body_str(), Some("quick"));
    assert!(!slow.is_finished(), "the slow authentication is still under way");
    release.notify_one();
    let slow = tokio::time::timeout(WAIT, slow).await.unwrap().unwrap().unwrap();
    assert_eq!(slow.connected_frame().get("user-name"), Some("slow"));

    let stuck = ClientOptions { login: Some("stuck".into()), ..ClientOptions::default() };
    assert_eq!(refusal(Client::connect_ws(&url, stuck).await), "authentication failed");
    server.shutdown(WAIT).await;
}

/// Mounted in axum, a `Principal` the application's own middleware put in the request's
/// extensions is the session's, with no hook; it is in the events too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_from_host_middleware_in_axum() {
    let server = Server::builder().build().unwrap();
    let mut events = server.events();
    let app = axum::Router::new().merge(server.router()).layer(axum::middleware::from_fn(
        |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
            let user = request
                .headers()
                .get("x-test-user")
                .and_then(|v| v.to_str().ok())
                .map(Principal::new);
            if let Some(user) = user {
                request.extensions_mut().insert(user);
            }
            next.run(request).await
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut peer =
        RawPeer::connect_with(&format!("ws://{addr}/ws"), &[("x-test-user", "grace")]).await;
    peer.send_text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0").await;
    let connected = peer.frame().await;
    assert_eq!(connected.get("user-name"), Some("grace"), "{connected:?}");
    peer.send_text(
        "SUBSCRIBE\nid:0\ndestination:/topic/maybe\n\n\0SEND\ndestination:/app/maybe\n\n\0",
    )
    .await;
    assert_eq!(peer.frame().await.body_str(), Some("grace"));
    let event = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(event @ SessionEvent::Connected { .. }) = events.recv().await {
                return event;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(event.principal().map(Principal::name), Some("grace"));
    assert_eq!(server.users().len(), 1);
    assert_eq!(server.users()[0].name, "grace");
    server.shutdown(WAIT).await;
}

/// A handler that takes `Principal` refuses anonymous callers with a clear ERROR; one that
/// takes `Option<Principal>` serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_argument_requires_a_user() {
    let server = start(Server::builder()).await;
    let anonymous = Client::connect_ws(&ws_url(&server), ClientOptions::default()).await.unwrap();
    let mut maybe = anonymous.subscribe("/topic/maybe").await.unwrap();
    anonymous.send("/app/maybe", "").await.unwrap();
    assert_eq!(next(&mut maybe).await.body_str(), Some("anonymous"));
    anonymous.send("/app/whoami", "").await.unwrap();
    let reason = closed_with(&anonymous).await;
    assert!(reason.contains("/app/whoami needs an authenticated user"), "{reason}");
    server.shutdown(WAIT).await;
}

// --- User destinations -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_destinations_reach_exactly_their_user() {
    let server = start(users_authenticator(Server::builder())).await;
    let (ada1, ada2, bob) = (
        connect(&server, "ada").await,
        connect(&server, "ada").await,
        connect(&server, "bob").await,
    );
    let mut ada1_reply = ada1.subscribe("/user/queue/reply").await.unwrap();
    let mut ada2_reply = ada2.subscribe("/user/queue/reply").await.unwrap();
    let mut bob_reply = bob.subscribe("/user/queue/reply").await.unwrap();

    // Broadcast to every session of the caller, with the destination the client subscribed.
    ada1.send("/app/whoami", "").await.unwrap();
    for reply in [&mut ada1_reply, &mut ada2_reply] {
        let message = next(reply).await;
        assert_eq!(message.body_str(), Some("you are ada"));
        assert_eq!(message.destination(), Some("/user/queue/reply"));
    }
    // broadcast = false: the calling session only.
    ada2.send("/app/whoami-here", "two").await.unwrap();
    assert_eq!(next(&mut ada2_reply).await.body_str(), Some("ada here: two"));
    // The template, from anywhere.
    let template = server.template();
    assert_eq!(template.convert_and_send_to_user("bob", "/queue/reply", "hi bob").unwrap(), 1);
    assert_eq!(template.convert_and_send_to_user("nobody", "/queue/reply", "lost").unwrap(), 0);
    assert_eq!(next(&mut bob_reply).await.body_str(), Some("hi bob"));
    // A client may send to another user's destination.
    ada1.send("/user/bob/queue/reply", "from ada").await.unwrap();
    assert_eq!(next(&mut bob_reply).await.body_str(), Some("from ada"));
    // An exception handler reports to the caller only.
    let mut errors = bob.subscribe("/user/queue/errors").await.unwrap();
    let mut ada_errors = ada1.subscribe("/user/queue/errors").await.unwrap();
    bob.send("/app/fail", "nope").await.unwrap();
    assert_eq!(next(&mut errors).await.body_str(), Some("/app/fail failed: refused: nope"));

    // Then nothing else arrived anywhere: each session's next message is a marker sent to it.
    template.convert_and_send_to_user("ada", "/queue/reply", "marker").unwrap();
    template.convert_and_send_to_user("bob", "/queue/reply", "marker").unwrap();
    template.convert_and_send_to_user("ada", "/queue/errors", "marker").unwrap();
    for reply in [&mut ada1_reply, &mut ada2_reply, &mut bob_reply, &mut ada_errors] {
        assert_eq!(next(reply).await.body_str(), Some("marker"));
    }

    // The registry knows who is connected and what they subscribed.
    let users = server.users();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["ada", "bob"]);
    assert_eq!(users[0].sessions.len(), 2);
    let bob_destinations: Vec<&str> =
        users[1].sessions[0].subscriptions.iter().map(|s| s.destination.as_str()).collect();
    assert_eq!(bob_destinations, ["/user/queue/reply", "/user/queue/errors"]);
    drop(ada2);
    server.shutdown(WAIT).await;
}

/// A SEND to another session's resolved user destination is refused also right after SENDs
/// that went to the broker (a session remembers the last destination it routed there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_resolved_user_destination_is_refused_after_sends_to_the_broker() {
    let server = start(users_authenticator(Server::builder())).await;
    let ada = connect(&server, "ada").await;
    let ada_session = ada.connected_frame().get("session").unwrap().to_owned();
    let _reply = ada.subscribe("/user/queue/reply").await.unwrap();
    let resolved = format!("/queue/reply-user{ada_session}");
    let eve = connect(&server, "eve").await;
    let mut news = eve.subscribe("/queue/news").await.unwrap();
    for i in 0..3 {
        eve.send_with_receipt("/queue/news", format!("{i}")).await.unwrap();
        let got = tokio::time::timeout(WAIT, news.next()).await.unwrap().expect("a message");
        assert_eq!(got.body_str(), Some(i.to_string().as_str()));
    }
    assert!(eve.send_with_receipt(&resolved, "x").await.is_err());
    let reason = closed_with(&eve).await;
    assert!(reason.contains("is reserved for user destinations"), "{reason}");
    server.shutdown(WAIT).await;
}

/// Nobody receives another session's user messages: not by subscribing to its resolved name,
/// not with a wildcard over the queue prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_one_can_subscribe_to_another_sessions_user_destination() {
    let server = start(users_authenticator(Server::builder())).await;
    let ada = connect(&server, "ada").await;
    let ada_session = ada.connected_frame().get("session").unwrap().to_owned();
    let mut reply = ada.subscribe("/user/queue/reply").await.unwrap();
    let resolved = format!("/queue/reply-user{ada_session}");
    // Her destination's resolved name is refused to everyone else.
    let eve = connect(&server, "eve").await;
    assert!(eve.subscribe(&resolved).await.is_err());
    let reason = closed_with(&eve).await;
    assert!(reason.contains("is reserved for user destinations"), "{reason}");
    // A wildcard over the queues sees none of her messages.
    let eve = connect(&server, "eve").await;
    let mut wildcard = eve.subscribe("/queue/**").await.unwrap();
    let template = server.template();
    template.convert_and_send_to_user("ada", "/queue/reply", "for ada only").unwrap();
    assert_eq!(next(&mut reply).await.body_str(), Some("for ada only"));
    // A message really sent under /queue reaches eve, and it is the first she sees.
    template.convert_and_send("/queue/reply", "public").unwrap();
    assert_eq!(next(&mut wildcard).await.body_str(), Some("public"));
    assert!(reply.try_next().is_none(), "ada's user destination is not /queue/reply");

    // Wider than every prefix: refused.
    let mallory = connect(&server, "mallory").await;
    let _ = mallory.subscribe("/**").await;
    let reason = closed_with(&mallory).await;
    assert!(reason.contains("not covered by any configured prefix"), "{reason}");
    server.shutdown(WAIT).await;
}

// --- Authorization ---------------------------------------------------------------------

fn chat_rules() -> AccessRules {
    AccessRules::new()
        .connect(Access::authenticated())
        .subscribe(["/user/queue/errors"], Access::permit_all())
        .subscribe(["/topic/admin/**"], Access::role("admin"))
        .send(["/topic/**", "/queue/**"], Access::deny_all())
        .destinations(["/app/**", "/topic/**", "/user/**"], Access::authenticated())
        .any(Access::deny_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_on_every_transport() {
    let server =
        start(every_transport(users_authenticator(Server::builder().access_rules(chat_rules()))))
            .await;
    let mut events = server.events();
    let url = ws_url(&server);

    // CONNECT needs a principal.
    let anonymous = Client::connect_ws(&url, ClientOptions::default()).await;
    assert_eq!(refusal(anonymous), "access denied: CONNECT");

    // The admin topic: ada (admin) may, bob may not.
    let ada = connect(&server, "ada").await;
    let mut audit = ada.subscribe("/topic/admin/audit").await.unwrap();
    let bob = connect(&server, "bob").await;
    let _ = bob.subscribe("/topic/admin/audit").await;
    assert_eq!(closed_with(&bob).await, "access denied: SUBSCRIBE to /topic/admin/audit");
    // The anonymous CONNECT's refusal came first; bob's is the one with a principal.
    let denied = denial_with_principal(&mut events).await;
    assert_eq!(&*denied.0, "access denied: SUBSCRIBE to /topic/admin/audit");
    assert_eq!(denied.1.name(), "bob");

    // Nor can bob reach the admin topic through a wildcard that covers it.
    let bob = connect(&server, "bob").await;
    let _ = bob.subscribe("/topic/**").await;
    assert_eq!(closed_with(&bob).await, "access denied: SUBSCRIBE to /topic/**");
    let bob = connect(&server, "bob").await;
    let mut chat = bob.subscribe("/topic/chat/*").await.unwrap();
    let mut everything = ada.subscribe("/topic/**").await.unwrap();
    server.template().convert_and_send("/topic/chat/rust", "a wildcard of bob's").unwrap();
    assert_eq!(next(&mut chat).await.body_str(), Some("a wildcard of bob's"));
    assert_eq!(next(&mut everything).await.body_str(), Some("a wildcard of bob's"));

    // Only the server publishes to /topic: even the admin may not SEND there.
    server.template().convert_and_send("/topic/admin/audit", "from the server").unwrap();
    assert_eq!(next(&mut audit).await.body_str(), Some("from the server"));
    ada.send("/topic/admin/audit", "forged").await.unwrap();
    assert_eq!(closed_with(&ada).await, "access denied: SEND to /topic/admin/audit");

    // The same rules over TCP and SockJS.
    let seen = tcp_exchange(
        &server,
        "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:secret-bob\n\n\0SEND\ndestination:/topic/chat\n\nhi\0",
    )
    .await;
    assert!(seen.starts_with("CONNECTED\n"), "{seen}");
    // STOMP 1.2 escapes the colon in header values.
    assert!(seen.contains("ERROR\nmessage:access denied\\c SEND to /topic/chat\n"), "{seen}");
    let seen = sockjs_exchange(
        &server,
        "denied",
        &["CONNECT\naccept-version:1.2\nlogin:bob\npasscode:secret-bob\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/admin/x\n\n\0"],
    )
    .await;
    assert!(seen[0].starts_with("CONNECTED\n"), "{seen:?}");
    assert!(seen[1].contains("message:access denied\\c SUBSCRIBE to /topic/admin/x\n"), "{seen:?}");
    let seen = sockjs_exchange(&server, "anonymous", &["CONNECT\naccept-version:1.2\n\n\0"]).await;
    assert!(seen[0].contains("message:access denied\\c CONNECT\n"), "{seen:?}");
    server.shutdown(WAIT).await;
}

/// Rules judge the destination in the form routing uses: `.` after a prefix is `/`, an empty
/// segment is refused, and a broker's `#` wildcard counts as `**`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_see_through_other_spellings() {
    let rules = AccessRules::new()
        .send(["/user/**"], Access::deny_all())
        .send(["/app/admin/**"], Access::role("admin"))
        .subscribe(["/topic/admin/**"], Access::role("admin"))
        .any(Access::authenticated());
    let server = start(users_authenticator(Server::builder().access_rules(rules))).await;
    for (frame, destination) in [
        ("SEND", "/user.ada/queue/reply"),
        ("SEND", "/user//ada/queue/reply"),
        ("SEND", "/app.admin/purge"),
        ("SUBSCRIBE", "/topic/#"),
        ("SUBSCRIBE", "/topic.admin/#"),
    ] {
        let bob = connect(&server, "bob").await;
        let _ = match frame {
            "SEND" => bob.send_with_receipt(destination, "x").await.map(|_| ()),
            _ => bob.subscribe(destination).await.map(|_| ()),
        };
        let reason = closed_with(&bob).await;
        assert!(
            reason.starts_with(&format!("access denied: {frame} to {destination}")),
            "{reason}"
        );
    }
    server.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requires_role_guards_the_handler() {
    let server = start(users_authenticator(Server::builder())).await;
    let ada = connect(&server, "ada").await;
    let mut purged = ada.subscribe("/topic/purged").await.unwrap();
    ada.send("/app/admin/purge", "").await.unwrap();
    assert_eq!(next(&mut purged).await.body_str(), Some("purged by ada"));
    let bob = connect(&server, "bob").await;
    bob.send("/app/admin/purge", "").await.unwrap();
    assert_eq!(
        closed_with(&bob).await,
        "access denied: SEND to /app/admin/purge requires role admin"
    );
    let anonymous = Client::connect_ws(&ws_url(&server), ClientOptions::default()).await.unwrap();
    anonymous.send("/app/admin/purge", "").await.unwrap();
    assert!(closed_with(&anonymous).await.starts_with("access denied"));
    // The handler ran once: for ada.
    server.template().convert_and_send("/topic/purged", "marker").unwrap();
    assert_eq!(next(&mut purged).await.body_str(), Some("marker"));
    server.shutdown(WAIT).await;
}

#[test]
fn an_access_rule_pattern_without_a_leading_slash_is_a_configuration_error() {
    let rules = AccessRules::new().subscribe(["topic/admin/**"], Access::role("admin"));
    let error = Server::builder().access_rules(rules).build().err().unwrap();
    assert_eq!(error.setting(), Some("access_rules"));
    assert!(error.to_string().contains("\"topic/admin/**\" must start with '/'"), "{error}");
}

// --- CSRF ------------------------------------------------------------------------------

/// A cookie-authenticated handshake: the hook reads the session cookie and attaches the
/// principal and the page's CSRF token.
fn cookie_sessions(builder: ServerBuilder) -> ServerBuilder {
    builder.handshake_hook(|request: &http::request::Parts, attributes: &mut http::Extensions| {
        let cookie = request.headers.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
        match cookie.strip_prefix("session=") {
            Some(user) => {
                attributes.insert(Principal::new(user));
                attributes.insert(CsrfToken::new(format!("token-of-{user}")));
                Ok(())
            }
            None => Err(HandshakeRejection::new(http::StatusCode::UNAUTHORIZED, "sign in first")),
        }
    })
}

async fn cookie_connect(server: &RunningServer, csrf: Option<&str>) -> Event {
    let mut peer = RawPeer::connect_with(&ws_url(server), &[("cookie", "session=ada")]).await;
    let header = csrf.map(|t| format!("X-CSRF-TOKEN:{t}\n")).unwrap_or_default();
    peer.send_text(&format!("CONNECT\naccept-version:1.2\n{header}\n\0")).await;
    peer.next().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_token_required_for_cookie_sessions() {
    let server = start(cookie_sessions(Server::builder())).await;
    for token in [None, Some("token-of-eve"), Some("")] {
        let Event::Frame(error) = cookie_connect(&server, token).await else { panic!("no ERROR") };
        assert_eq!(error.command, Command::Error, "{token:?}: {error:?}");
        assert!(
            error.get("message").unwrap().starts_with("CSRF token missing or invalid"),
            "{error:?}"
        );
    }
    let Event::Frame(connected) = cookie_connect(&server, Some("token-of-ada")).await else {
        panic!("closed")
    };
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    assert_eq!(connected.get("user-name"), Some("ada"));
    server.shutdown(WAIT).await;

    // Turned off (a server without cookie authentication), the token is not needed.
    let server = start(cookie_sessions(Server::builder()).csrf(Csrf::Disabled)).await;
    let Event::Frame(connected) = cookie_connect(&server, None).await else { panic!("closed") };
    assert_eq!(connected.command, Command::Connected);
    server.shutdown(WAIT).await;

    // Token-authenticated clients (no cookie) need none by default.
    let server = start(users_authenticator(Server::builder())).await;
    connect(&server, "bob").await;
    server.shutdown(WAIT).await;
}

// --- Limits ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limits_per_user_address_and_server() {
    let server = start(users_authenticator(Server::builder()).max_sessions_per_user(2)).await;
    let (_a1, _a2) = (connect(&server, "ada").await, connect(&server, "ada").await);
    let third = Client::connect_ws(&ws_url(&server), login("ada")).await;
    assert!(refusal(third).contains("too many sessions for user ada: at most 2"));
    let bob = connect(&server, "bob").await; // others are unaffected
    drop(_a1);
    // Once one of ada's sessions ends, she may connect again.
    let again = tokio::time::timeout(WAIT, async {
        loop {
            match Client::connect_ws(&ws_url(&server), login("ada")).await {
                Ok(client) => return client,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(again.is_ok());
    drop(bob);
    server.shutdown(WAIT).await;

    let server = start(Server::builder().max_sessions_per_address(2)).await;
    let url = ws_url(&server);
    let (_c1, _c2) = (
        Client::connect_ws(&url, ClientOptions::default()).await.unwrap(),
        Client::connect_ws(&url, ClientOptions::default()).await.unwrap(),
    );
    let refused = refusal(Client::connect_ws(&url, ClientOptions::default()).await);
    assert!(refused.contains("too many sessions from 127.0.0.1: at most 2"), "{refused}");
    server.shutdown(WAIT).await;

    let server = start(Server::builder().max_sessions(1)).await;
    let url = ws_url(&server);
    let _only = Client::connect_ws(&url, ClientOptions::default()).await.unwrap();
    let refused = refusal(Client::connect_ws(&url, ClientOptions::default()).await);
    assert!(refused.contains("too many sessions: this server accepts at most 1"), "{refused}");
    assert_eq!(server.server().session_count(), 1);
    server.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_limit_per_session() {
    let server = start(users_authenticator(Server::builder()).max_subscriptions(2)).await;
    let mut events = server.events();
    let bob = connect(&server, "bob").await;
    let _first = bob.subscribe("/topic/a").await.unwrap();
    let _second = bob.subscribe("/topic/b").await.unwrap();
    assert!(bob.subscribe("/topic/c").await.is_err());
    let reason = closed_with(&bob).await;
    assert!(reason.starts_with("a session may hold at most 2 subscriptions"), "{reason}");
    // A denial, with the principal, for the operator.
    let denied = denial_with_principal(&mut events).await;
    assert!(denied.0.contains("max_subscriptions") && denied.1.name() == "bob");
    // Others are unaffected.
    let ada = connect(&server, "ada").await;
    let mut news = ada.subscribe("/topic/news").await.unwrap();
    server.template().convert_and_send("/topic/news", "fine").unwrap();
    assert_eq!(next(&mut news).await.body_str(), Some("fine"));
    server.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_frame_rate_limit_closes_the_flooder_only() {
    let server = start(Server::builder().inbound_frame_rate(50, 20)).await;
    let calm = Client::connect_ws(&ws_url(&server), ClientOptions::default()).await.unwrap();
    let mut news = calm.subscribe("/topic/news").await.unwrap();
    let mut flooder = RawPeer::connected(&ws_url(&server)).await;
    let flood = "SEND\ndestination:/topic/news\n\nspam\0".repeat(100);
    flooder.send_text(&flood).await;
    let error = loop {
        let frame = flooder.frame().await;
        if frame.command == Command::Error {
            break frame;
        }
    };
    let message = error.get("message").unwrap();
    assert!(
        message.starts_with(
            "inbound frame rate exceeded: more than 50 frames per second (bursts of 20)"
        ),
        "{message}"
    );
    assert_eq!(flooder.next().await, Event::Closed);
    // At most the burst got through (CONNECT took one token).
    let mut spam = 0;
    while let Some(message) = news.try_next() {
        assert_eq!(message.body_str(), Some("spam"));
        spam += 1;
    }
    calm.send("/topic/news", "still here").await.unwrap();
    loop {
        let message = next(&mut news).await;
        if message.body_str() == Some("still here") {
            break;
        }
        spam += 1;
    }
    // The burst (CONNECT took one token), plus what 50/s refills while the flood is handled.
    assert!(spam <= 25, "{spam} SENDs passed a burst of 20");
    server.shutdown(WAIT).await;
}

// --- Logout ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_user_closes_each_of_their_sessions() {
    let server = start(users_authenticator(Server::builder())).await;
    let mut events = server.events();
    let (ada1, ada2, bob) = (
        connect(&server, "ada").await,
        connect(&server, "ada").await,
        connect(&server, "bob").await,
    );
    assert_eq!(server.disconnect_user("ada", "logged out"), 2);
    assert_eq!(closed_with(&ada1).await, "logged out");
    assert_eq!(closed_with(&ada2).await, "logged out");
    let mut closed = 0;
    tokio::time::timeout(WAIT, async {
        while closed < 2 {
            if let Ok(SessionEvent::Disconnected {
                reason: DisconnectReason::Closed(why), ..
            }) = events.recv().await
            {
                assert_eq!(&*why, "logged out");
                closed += 1;
            }
        }
    })
    .await
    .unwrap();
    // A connection ada opened before the logout but connects only after it: refused too.
    let mut pending = RawPeer::connect(&ws_url(&server)).await;
    assert_eq!(server.disconnect_user("ada", "logged out"), 0, "no session of hers is open");
    pending.send_text("CONNECT\naccept-version:1.2\nlogin:ada\npasscode:secret-ada\n\n\0").await;
    let Event::Frame(refused) = pending.next().await else { panic!("closed without ERROR") };
    assert_eq!(refused.get("message"), Some("logged out"), "{refused:?}");
    // Signing in again afterwards works.
    let _ada_again = connect(&server, "ada").await;
    // Bob carries on.
    let mut maybe = bob.subscribe("/topic/maybe").await.unwrap();
    bob.send("/app/maybe", "").await.unwrap();
    assert_eq!(next(&mut maybe).await.body_str(), Some("bob"));
    let names: Vec<String> = server.users().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["ada", "bob"], "ada signed in again");
    server.shutdown(WAIT).await;
}

// --- Origins ---------------------------------------------------------------------------

/// The origin allow-list guards every way into a session: the WebSocket endpoint, and each
/// SockJS request that opens or carries a session, on every transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_are_checked_on_every_sockjs_transport() {
    let server = start(
        Server::builder()
            .endpoint(Endpoint::new("/ws").with_sockjs())
            .allowed_origins(["http://app.example"]),
    )
    .await;
    let upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    type Request<'a> = (Method, &'a str, &'a [(&'a str, &'a str)]);
    let requests: [Request<'_>; 8] = [
        (Method::GET, "/ws", &upgrade),
        (Method::GET, "/ws/info", &[]),
        (Method::GET, "/ws/000/s1/websocket", &upgrade),
        (Method::POST, "/ws/000/s2/xhr", &[]),
        (Method::POST, "/ws/000/s3/xhr_streaming", &[]),
        (Method::GET, "/ws/000/s4/eventsource", &[]),
        (Method::GET, "/ws/000/s5/htmlfile?c=callback", &[]),
        (Method::POST, "/ws/000/s6/xhr_send", &[]),
    ];
    for (method, path, headers) in requests {
        let mut with_origin = headers.to_vec();
        with_origin.push(("origin", "http://evil.example"));
        let response =
            stompede_tests::sockjs::request(&server, method.clone(), path, &with_origin, "[]")
                .await;
        assert_eq!(
            response.status(),
            http::StatusCode::FORBIDDEN,
            "{method} {path} from evil.example"
        );
        // The allowed origin gets past the check (a 403 would mean the origin was refused).
        let mut allowed = headers.to_vec();
        allowed.push(("origin", "http://app.example"));
        let response =
            stompede_tests::sockjs::request(&server, method.clone(), path, &allowed, "[]").await;
        assert_ne!(
            response.status(),
            http::StatusCode::FORBIDDEN,
            "{method} {path} from app.example"
        );
    }
    assert_eq!(server.server().session_count(), 0, "no refused request opened a session");
    server.shutdown(WAIT).await;
}

/// The next session refused by security that had a principal: why, and who.
async fn denial_with_principal(
    events: &mut tokio::sync::broadcast::Receiver<SessionEvent>,
) -> (std::sync::Arc<str>, Principal) {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(SessionEvent::Disconnected {
                reason: DisconnectReason::AccessDenied(why),
                principal: Some(principal),
                ..
            }) = events.recv().await
            {
                return (why, principal);
            }
        }
    })
    .await
    .expect("a refusal with a principal")
}
