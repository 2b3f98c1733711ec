//! The guide's optional security step (`WebSecurityConfig`), the stompede way:
//!
//! ```java
//! http.authorizeRequests().antMatchers("/").permitAll().anyRequest().authenticated()
//!     .and().formLogin().permitAll()
//!     .and().logout().permitAll();
//! ```
//!
//! `/` (the page, with its script) is open to all; every other request, the STOMP endpoint
//! `/ws` and its SockJS paths included, needs a signed-in user: a form at `/login` starts a
//! cookie session, and a handshake without one is refused with `401`. `POST /logout` ends the
//! cookie session and closes that user's STOMP sessions (each gets an ERROR frame,
//! `logged out`). The server is mounted in an axum application whose middleware turns the
//! session cookie into a [`Principal`] in the request's extensions, which stompede picks up
//! with no hook.
//!
//! The guide's page sends no CSRF token with CONNECT and must work unchanged, so the check of
//! one is turned off here; a foreign page cannot open a session anyway: the endpoint accepts
//! same-origin pages only (stompede's default), and the session cookie is `SameSite=Strict`,
//! so a browser never sends it with another site's request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use stompede::security::Csrf;
use stompede::{Principal, Server, ServerBuilder};

/// The name of the session cookie (Spring Session's).
const COOKIE: &str = "SESSION";

/// Paths open to all: the page, its script, the login and logout pages.
const PUBLIC: [&str; 4] = ["/", "/stompede.js", "/login", "/logout"];

/// The hello app's server settings for the secure mode: the app's, with the CSRF check of
/// CONNECT off (see the module's documentation for why that is safe here).
pub(crate) fn builder(app: ServerBuilder) -> ServerBuilder {
    app.csrf(Csrf::Disabled)
}

/// Who may sign in (user name and password), and the signed-in cookie sessions.
#[derive(Clone)]
pub(crate) struct Accounts {
    users: Arc<HashMap<String, String>>,
    /// Cookie value → user name.
    sessions: Arc<Mutex<HashMap<String, String>>>,
    server: Server,
}

impl Accounts {
    pub(crate) fn new(server: Server, users: impl IntoIterator<Item = (String, String)>) -> Self {
        Accounts { users: Arc::new(users.into_iter().collect()), sessions: Arc::default(), server }
    }

    fn user_of(&self, headers: &HeaderMap) -> Option<String> {
        let token = session_cookie(headers)?;
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(token).cloned()
    }
}

/// The axum application: the login and logout pages, then everything the STOMP server serves,
/// behind the login check.
pub(crate) fn router(accounts: Accounts) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout_page).post(logout))
        .merge(accounts.server.router())
        .layer(middleware::from_fn_with_state(accounts.clone(), require_login))
        .with_state(accounts)
}

/// A new random session token (128 bits, hex).
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE).then_some(value))
}

/// Public paths pass; others need a signed-in user, whose principal goes into the request's
/// extensions (where stompede takes it from). Without one: `401` for the STOMP endpoint (a
/// script cannot follow a redirect to a form), a redirect to the form otherwise.
async fn require_login(
    State(accounts): State<Accounts>,
    mut request: Request,
    next: Next,
) -> Response {
    if PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match accounts.user_of(request.headers()) {
        Some(user) => {
            request.extensions_mut().insert(Principal::new(user));
            next.run(request).await
        }
        None if request.uri().path() == "/ws" || request.uri().path().starts_with("/ws/") => {
            (StatusCode::UNAUTHORIZED, "log in first, at /login").into_response()
        }
        None => Redirect::to("/login").into_response(),
    }
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
<head><meta charset="utf-8"><title>Please sign in</title><link rel="icon" href="data:,">
<style>body {{ font-family: system-ui, sans-serif; max-width: 22rem; margin: 3rem auto; }}
input, button {{ display: block; width: 100%; margin: .4rem 0; padding: .4rem; }} .error {{ color: #b00; }}</style></head>
<body>
<h1>Please sign in</h1>
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

async fn login(State(accounts): State<Accounts>, Form(form): Form<Credentials>) -> Response {
    let valid = accounts.users.get(&form.username).is_some_and(|p| {
        // Constant time, so the time taken does not tell how much of the password matched.
        p.len() == form.password.len()
            && p.bytes().zip(form.password.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if !valid {
        tracing::warn!(user = form.username, "sign-in refused: bad credentials");
        return Redirect::to("/login?error").into_response();
    }
    let token = new_token();
    accounts
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token.clone(), form.username.clone());
    tracing::info!(user = form.username, "signed in");
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout_page() -> Html<&'static str> {
    Html(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Confirm Log Out?</title><link rel="icon" href="data:,"></head>
<body>
<h1>Are you sure you want to log out?</h1>
<form method="post" action="/logout"><button id="logout" type="submit">Log Out</button></form>
</body>
</html>"#,
    )
}

/// Ends the cookie session and closes the user's STOMP sessions.
async fn logout(State(accounts): State<Accounts>, headers: HeaderMap) -> Response {
    let user = session_cookie(&headers).and_then(|token| {
        accounts.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(token)
    });
    if let Some(user) = user {
        let closed = accounts.server.disconnect_user(&user, "logged out");
        tracing::info!(user, closed, "signed out; the user's STOMP sessions were closed");
    }
    let mut response = Redirect::to("/login?logout").into_response();
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
