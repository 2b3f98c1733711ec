//! The chat: an axum application that mounts stompede behind a form login.
//!
//! - Rooms: a SEND to `/app/chat/{room}` is stamped with its sender and published to
//!   `/topic/chat/{room}`.
//! - Private messages: a SEND to `/app/private/{user}` reaches that user's sessions on
//!   `/user/queue/private`, and nobody else's.
//! - Presence: who is online, from the session events, on `/topic/presence` (and as a snapshot
//!   on SUBSCRIBE to `/app/presence`).
//! - Administration: `/topic/admin/events` (sign-ins and sign-outs) is for the `admin` role
//!   only, as is `/app/admin/announce`.
//! - Errors: a message the server refuses (empty, too long, to someone offline) is reported to
//!   its sender alone, on `/user/queue/errors`.
//!
//! Security: a cookie session from the login form, turned into a [`Principal`] (with roles)
//! and a [`CsrfToken`] in the request's extensions by this app's middleware; the page sends the
//! token in its CONNECT frame. Access rules decide what each user may send and subscribe to.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Form, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use stompede::events::SessionEvent;
use stompede::security::{Access, AccessRules, CsrfToken};
use stompede::{
    HandlerError, MessagingTemplate, Principal, Server, ServerBuilder, State,
    message_exception_handler, message_mapping, requires_role, send_to, send_to_user,
    subscribe_mapping,
};

/// The longest chat message, in characters.
const MAX_TEXT: usize = 500;

// --- Handlers --------------------------------------------------------------------------

/// A line of a room, as subscribers receive it (JSON).
#[derive(Serialize)]
pub(crate) struct ChatLine {
    room: String,
    from: String,
    text: String,
}

/// A private message (JSON).
#[derive(Serialize)]
pub(crate) struct PrivateLine {
    from: String,
    to: String,
    text: String,
}

/// Why the server refused a message: reported to its sender on `/user/queue/errors`.
#[derive(Debug)]
pub(crate) struct ChatError(String);

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChatError {}

fn checked_text(text: String) -> Result<String, ChatError> {
    let text = text.trim().to_owned();
    match text.chars().count() {
        0 => Err(ChatError("an empty message was not sent".into())),
        n if n > MAX_TEXT => Err(ChatError(format!(
            "a message of {n} characters was not sent: the limit is {MAX_TEXT}"
        ))),
        _ => Ok(text),
    }
}

fn checked_room(room: &str) -> Result<(), ChatError> {
    let valid = !room.is_empty()
        && room.len() <= 32
        && room.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ChatError(format!("{room:?} is not a room name: use 1 to 32 letters, digits, - or _")))
    }
}

/// A message to a room.
#[message_mapping("/chat/{room}")]
#[send_to("/topic/chat/{room}")]
pub(crate) fn post(
    #[destination_variable] room: String,
    user: Principal,
    text: String,
) -> Result<ChatLine, ChatError> {
    checked_room(&room)?;
    Ok(ChatLine { room, from: user.name().to_owned(), text: checked_text(text)? })
}

/// A private message to `to`: to each of their sessions, nobody else's.
#[message_mapping("/private/{to}")]
pub(crate) fn private(
    #[destination_variable] to: String,
    user: Principal,
    text: String,
    template: MessagingTemplate,
) -> Result<(), ChatError> {
    let line =
        PrivateLine { from: user.name().to_owned(), to: to.clone(), text: checked_text(text)? };
    let message = stompede::Message::json(&line).map_err(|e| ChatError(e.to_string()))?;
    match template.convert_and_send_to_user(&to, "/queue/private", message) {
        Ok(0) => Err(ChatError(format!("{to} is not online: the message was not delivered"))),
        Ok(_) => Ok(()),
        Err(e) => Err(ChatError(e.to_string())),
    }
}

/// An announcement to everyone, by an administrator.
#[message_mapping("/admin/announce")]
#[requires_role("admin")]
#[send_to("/topic/announcements")]
pub(crate) fn announce(user: Principal, text: String) -> Result<String, ChatError> {
    Ok(format!("{}: {}", user.name(), checked_text(text)?))
}

/// Who is online now, for a page that just subscribed.
#[subscribe_mapping("/presence")]
pub(crate) fn presence_now(State(presence): State<Presence>) -> Vec<String> {
    presence.names()
}

/// Refused messages go back to their sender only.
#[message_exception_handler(ChatError)]
#[send_to_user("/queue/errors", broadcast = false)]
pub(crate) fn refused(error: HandlerError) -> String {
    error.reason().to_owned()
}

/// Who is online, kept up to date from the session events.
#[derive(Clone, Default)]
pub(crate) struct Presence(Arc<Mutex<BTreeSet<String>>>);

impl Presence {
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

/// Publishes presence and the administrators' event log from the session events, until the
/// server shuts down.
pub(crate) async fn watch_sessions(server: Server, presence: Presence) {
    let mut events = server.events();
    let template = server.template();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let Some(user) = event.principal().map(|p| p.name().to_owned()) else { continue };
        let log = match &event {
            SessionEvent::Connected { session_id, .. } => {
                format!("{user} connected ({session_id})")
            }
            SessionEvent::Disconnected { session_id, reason, .. } => {
                format!("{user} disconnected ({session_id}): {reason}")
            }
            _ => continue,
        };
        let online: BTreeSet<String> = server.users().into_iter().map(|u| u.name).collect();
        let changed = {
            let mut current = presence.0.lock().unwrap_or_else(PoisonError::into_inner);
            let changed = *current != online;
            *current = online.clone();
            changed
        };
        if changed {
            let names: Vec<&String> = online.iter().collect();
            if let Ok(message) = stompede::Message::json(&names) {
                let _ = template.convert_and_send("/topic/presence", message);
            }
        }
        let _ = template.convert_and_send("/topic/admin/events", log);
    }
}

// --- The STOMP server ------------------------------------------------------------------

/// What each user may send and subscribe to; anything else is refused (and the session
/// closed).
pub(crate) fn rules() -> AccessRules {
    AccessRules::new()
        .connect(Access::authenticated())
        .subscribe(["/topic/admin/**"], Access::role("admin"))
        .subscribe(
            [
                "/topic/chat/*",
                "/topic/presence",
                "/topic/announcements",
                "/app/presence",
                "/user/queue/private",
                "/user/queue/errors",
            ],
            Access::authenticated(),
        )
        .send(["/app/**"], Access::authenticated())
        .any(Access::deny_all())
}

/// The STOMP server of the chat.
pub(crate) fn builder(presence: Presence) -> ServerBuilder {
    Server::builder()
        .access_rules(rules())
        .state(presence)
        .max_sessions_per_user(8)
        .max_subscriptions(64)
        .inbound_frame_rate(20, 60)
        .message_size_limit(16 * 1024)
        .static_asset("/chat.js", "text/javascript", PAGE_SCRIPT)
}

// --- The web application ---------------------------------------------------------------

const PAGE: &str = include_str!("page.html");
const PAGE_SCRIPT: &str = include_str!("chat.js");
const COOKIE: &str = "CHAT_SESSION";

/// A user who may sign in.
pub(crate) struct Account {
    pub(crate) password: String,
    pub(crate) roles: Vec<String>,
}

/// One signed-in browser.
#[derive(Clone)]
struct CookieSession {
    principal: Principal,
    csrf: String,
}

/// The accounts and the signed-in cookie sessions.
#[derive(Clone)]
pub(crate) struct Web {
    accounts: Arc<HashMap<String, Account>>,
    sessions: Arc<Mutex<HashMap<String, CookieSession>>>,
    server: Server,
}

impl Web {
    pub(crate) fn new(server: Server, accounts: HashMap<String, Account>) -> Self {
        Web { accounts: Arc::new(accounts), sessions: Arc::default(), server }
    }

    fn session(&self, headers: &HeaderMap) -> Option<CookieSession> {
        let token = cookie(headers)?;
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }
}

/// The application: the chat page, login and logout, and the STOMP server, behind the login
/// check.
pub(crate) fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .merge(web.server.router())
        .layer(middleware::from_fn_with_state(web.clone(), require_login))
        .with_state(web)
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random number generator works");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE).then_some(value))
}

/// The STOMP endpoint needs a signed-in user: their principal and CSRF token go into the
/// request's extensions, where stompede takes them from. Without one: `401`.
async fn require_login(
    AxumState(web): AxumState<Web>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path != "/ws" && !path.starts_with("/ws/") {
        return next.run(request).await;
    }
    match web.session(request.headers()) {
        Some(session) => {
            request.extensions_mut().insert(session.principal);
            request.extensions_mut().insert(CsrfToken::new(session.csrf));
            next.run(request).await
        }
        None => (StatusCode::UNAUTHORIZED, "sign in first, at /login").into_response(),
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn page(AxumState(web): AxumState<Web>, headers: HeaderMap) -> Response {
    let Some(session) = web.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let roles: Vec<&str> = session.principal.roles().collect();
    Html(
        PAGE.replace("{{USER}}", &escape(session.principal.name()))
            .replace("{{ROLES}}", &escape(&roles.join(",")))
            .replace("{{CSRF_TOKEN}}", &session.csrf),
    )
    .into_response()
}

#[derive(Deserialize)]
struct Flags {
    error: Option<String>,
    logout: Option<String>,
}

async fn login_page(Query(flags): Query<Flags>) -> Html<String> {
    let notice = match (flags.error, flags.logout) {
        (Some(_), _) => r#"<p id="notice" class="error">Bad credentials</p>"#,
        (None, Some(_)) => r#"<p id="notice">You have been signed out</p>"#,
        (None, None) => "",
    };
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Chat: sign in</title><link rel="icon" href="data:,">
<style>body {{ font-family: system-ui, sans-serif; max-width: 22rem; margin: 3rem auto; }}
input, button {{ display: block; width: 100%; margin: .4rem 0; padding: .4rem; }} .error {{ color: #b00; }}</style></head>
<body>
<h1>Chat: sign in</h1>
{notice}
<form method="post" action="/login">
  <label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
  <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>
</body>
</html>"#
    ))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login(AxumState(web): AxumState<Web>, Form(form): Form<Credentials>) -> Response {
    let Some(account) = web.accounts.get(&form.username).filter(|a| {
        a.password.len() == form.password.len()
            && a.password.bytes().zip(form.password.bytes()).fold(0, |acc, (x, y)| acc | (x ^ y))
                == 0
    }) else {
        tracing::warn!(user = form.username, "sign-in refused: bad credentials");
        return Redirect::to("/login?error").into_response();
    };
    let principal = Principal::new(&form.username).with_roles(account.roles.iter().cloned());
    let token = random_hex(16);
    let session = CookieSession { principal, csrf: random_hex(16) };
    web.sessions.lock().unwrap_or_else(PoisonError::into_inner).insert(token.clone(), session);
    tracing::info!(user = form.username, "signed in");
    let mut response = Redirect::to("/").into_response();
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Ends the cookie session and closes the user's STOMP sessions. Needs the page's CSRF token
/// (a form field), like CONNECT.
async fn logout(
    AxumState(web): AxumState<Web>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some(token) = cookie(&headers).map(str::to_owned) else {
        return Redirect::to("/login").into_response();
    };
    let session = {
        let mut sessions = web.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(&token) {
            Some(session) if CsrfToken::new(session.csrf.clone()).matches(&form.csrf) => {
                sessions.remove(&token)
            }
            _ => return (StatusCode::FORBIDDEN, "invalid CSRF token").into_response(),
        }
    };
    if let Some(session) = session {
        let user = session.principal.name().to_owned();
        // Only this browser's cookie ended: close the user's STOMP sessions when no other
        // browser of theirs is signed in.
        let still_signed_in = web
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|s| s.principal.name() == user);
        if !still_signed_in {
            web.server.disconnect_user(&user, "logged out");
        }
        tracing::info!(user, "signed out");
    }
    let mut response = Redirect::to("/login?logout").into_response();
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}
