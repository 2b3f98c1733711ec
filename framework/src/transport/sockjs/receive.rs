//! The HTTP transports: receiving requests (`xhr` polling, `xhr_streaming`, `eventsource`,
//! `htmlfile`) and `xhr_send`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::sync::mpsc;

use super::SockJsEndpoint;
use super::frames::{self, BodyError, Close};
use super::session::{Output, Receiver, SockJsSession};
use crate::config::SockJsOptions;
use crate::runtime::Runtime;
use crate::transport::body::ResponseBody;
use crate::transport::connections::ConnectionSlot;
use crate::transport::service::{RequestBody, text};

/// How a receiving transport wraps frames.
#[derive(Clone, Debug)]
pub(crate) enum Flavor {
    /// `xhr`: one frame per response.
    Polling,
    /// `xhr_streaming`: a 2 KiB prelude, then frames separated by `\n`.
    XhrStreaming,
    /// `eventsource`: server-sent events.
    EventSource,
    /// `htmlfile`: a page calling `parent.<callback>` for each frame.
    HtmlFile(String),
}

impl Flavor {
    /// The flavor of transport `name`; `None` for an `htmlfile` request without a valid
    /// callback.
    pub(crate) fn of(name: &str, parts: &http::request::Parts) -> Option<Flavor> {
        Some(match name {
            "xhr" => Flavor::Polling,
            "xhr_streaming" => Flavor::XhrStreaming,
            "eventsource" => Flavor::EventSource,
            _ => Flavor::HtmlFile(callback(parts).ok()?),
        })
    }

    fn content_type(&self) -> &'static str {
        match self {
            Flavor::Polling | Flavor::XhrStreaming => "application/javascript; charset=UTF-8",
            Flavor::EventSource => "text/event-stream; charset=UTF-8",
            Flavor::HtmlFile(_) => "text/html; charset=UTF-8",
        }
    }

    fn prelude(&self) -> Option<Bytes> {
        match self {
            Flavor::Polling => None,
            Flavor::XhrStreaming => {
                let mut prelude = vec![b'h'; 2048];
                prelude.push(b'\n');
                Some(Bytes::from(prelude))
            }
            Flavor::EventSource => Some(Bytes::from_static(b"\r\n")),
            Flavor::HtmlFile(callback) => Some(Bytes::from(htmlfile_prelude(callback))),
        }
    }

    fn wrap(&self, frame: &str) -> Bytes {
        Bytes::from(match self {
            Flavor::Polling | Flavor::XhrStreaming => format!("{frame}\n"),
            Flavor::EventSource => format!("data: {frame}\r\n\r\n"),
            Flavor::HtmlFile(_) => format!("<script>\np(\"{}\");\n</script>\r\n", js_escape(frame)),
        })
    }
}

/// The `c` query parameter of an `htmlfile` request.
fn callback(parts: &http::request::Parts) -> Result<String, &'static str> {
    let query = parts.uri.query().unwrap_or("");
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("c="))
        .ok_or("\"callback\" parameter required")?;
    let value = percent_decode(value);
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err("invalid \"callback\" parameter");
    }
    Ok(value)
}

/// The 500 an `htmlfile` request without a usable callback gets.
pub(crate) fn bad_callback(parts: &http::request::Parts) -> Response<ResponseBody> {
    let why = callback(parts).err().unwrap_or("invalid \"callback\" parameter");
    text(StatusCode::INTERNAL_SERVER_ERROR, why)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn htmlfile_prelude(callback: &str) -> String {
    let mut page = format!(
        "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    var c = parent.{callback};\n    c.start();\n    function p(d) {{c.message(d);}};\n    window.onload = function() {{c.stop();}};\n  </script>"
    );
    // Browsers render nothing of a streamed page before 1 KiB has arrived.
    while page.len() < 1024 {
        page.push(' ');
    }
    page.push_str("\r\n");
    page
}

/// A frame as a JavaScript string literal's content.
fn js_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Answers a receiving request for `session`.
///
/// Attached, the request carries the session's receiving side: its connection stops counting
/// against `max_http_connections` (`slot`) until its next request.
pub(crate) async fn respond(
    runtime: &Arc<Runtime>,
    endpoint: &SockJsEndpoint,
    session: Arc<SockJsSession>,
    flavor: Flavor,
    slot: Option<&ConnectionSlot>,
) -> Response<ResponseBody> {
    let options = &endpoint.options;
    let Some(receiver) = session.attach() else {
        // One receiving request at a time.
        let frame = flavor.wrap(&Close::ANOTHER_CONNECTION.frame());
        let body = match flavor.prelude() {
            Some(prelude) => [prelude, frame].concat().into(),
            None => frame,
        };
        return ok(&flavor, ResponseBody::full(body));
    };
    if let Some(slot) = slot {
        slot.release();
    }
    attached(runtime, options, receiver, flavor).await
}

/// The response of a receiving request attached to its session.
async fn attached(
    runtime: &Arc<Runtime>,
    options: &SockJsOptions,
    receiver: Receiver,
    flavor: Flavor,
) -> Response<ResponseBody> {
    if let Flavor::Polling = flavor {
        let frame = poll(&receiver, options.heartbeat).await;
        return ok(&flavor, ResponseBody::full(flavor.wrap(&frame)));
    }
    // A small channel: the writer waits for the client to take what it was sent.
    let (chunks, body) = mpsc::channel(4);
    let limit = options.streaming_bytes_limit;
    let heartbeat = options.heartbeat;
    let shutdown = runtime.shutdown.clone();
    let writer_flavor = flavor.clone();
    runtime.tracker.spawn(async move {
        tokio::select! {
            () = stream(receiver, writer_flavor, chunks, heartbeat, limit) => {}
            () = shutdown.cancelled() => {}
        }
    });
    ok(&flavor, ResponseBody::stream(body))
}

fn ok(flavor: &Flavor, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(flavor.content_type()));
    response
}

/// One polling response: the next frame, or a heart-beat after `heartbeat` of silence.
async fn poll(receiver: &Receiver, heartbeat: Duration) -> String {
    loop {
        if let Some(frame) = receiver.next().frame() {
            return frame;
        }
        tokio::select! {
            () = receiver.changed() => {}
            () = tokio::time::sleep(heartbeat) => return frames::HEARTBEAT.to_owned(),
        }
    }
}

/// Writes frames into a streaming response, after the flavor's prelude, until the session
/// closes, the response has carried `limit` bytes, or the client goes away (then undelivered
/// messages go back).
async fn stream(
    receiver: Receiver,
    flavor: Flavor,
    chunks: mpsc::Sender<Bytes>,
    heartbeat: Duration,
    limit: usize,
) {
    if let Some(prelude) = flavor.prelude() {
        if chunks.send(prelude).await.is_err() {
            return;
        }
    }
    let mut written = 0usize;
    loop {
        let output = receiver.next();
        let frame = match output.frame() {
            Some(frame) => frame,
            None => tokio::select! {
                () = receiver.changed() => continue,
                () = chunks.closed() => return,
                () = tokio::time::sleep(heartbeat) => frames::HEARTBEAT.to_owned(),
            },
        };
        let chunk = flavor.wrap(&frame);
        written += chunk.len();
        if chunks.send(chunk).await.is_err() {
            if let Output::Messages(messages) = output {
                receiver.give_back(messages);
            }
            return;
        }
        if matches!(output, Output::Close(_)) || written >= limit {
            return;
        }
    }
}

/// `POST .../xhr_send`: the client's messages for the STOMP session.
pub(crate) async fn xhr_send<B>(
    runtime: &Runtime,
    endpoint: &SockJsEndpoint,
    id: &str,
    body: B,
) -> Response<ResponseBody>
where
    B: RequestBody,
{
    let Some(session) = endpoint.session(id) else {
        return text(StatusCode::NOT_FOUND, format!("no SockJS session {id}"));
    };
    if session.is_closed() {
        return text(StatusCode::NOT_FOUND, format!("SockJS session {id} is closed"));
    }
    // A body may carry several frames; allow a few frames' worth.
    let limit = runtime.config.limits.max_frame_size.saturating_mul(4).saturating_add(4096);
    let deadline = runtime.config.http_body_read_timeout;
    let Ok(collected) = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await
    else {
        let mut response = text(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the xhr_send body did not arrive within {deadline:?} (http_body_read_timeout)"
            ),
        );
        // What is left of the body is never read: the connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an xhr_send body is limited to {limit} bytes (message_size_limit x 4)"),
            );
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("the request body failed: {e}")),
    };
    let messages = match frames::decode(&bytes) {
        Ok(messages) => messages,
        Err(BodyError::Empty) => {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Payload expected.");
        }
        Err(BodyError::Broken) => {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Broken JSON encoding.");
        }
    };
    if session.push_inbound(messages).await.is_err() {
        return text(StatusCode::NOT_FOUND, format!("SockJS session {id} is closed"));
    }
    let mut response = text(StatusCode::NO_CONTENT, "");
    *response.body_mut() = ResponseBody::empty();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> http::request::Parts {
        http::Request::builder().uri(uri).body(()).map(|r| r.into_parts().0).expect("request")
    }

    #[test]
    fn htmlfile_callbacks() {
        assert_eq!(callback(&parts("/ws/0/s/htmlfile?c=_jp.abc")), Ok("_jp.abc".into()));
        assert_eq!(callback(&parts("/ws/0/s/htmlfile?c=%5Fjp")), Ok("_jp".into()));
        assert_eq!(callback(&parts("/ws/0/s/htmlfile")), Err("\"callback\" parameter required"));
        assert_eq!(
            callback(&parts("/ws/0/s/htmlfile?c=alert(1)")),
            Err("invalid \"callback\" parameter")
        );
    }

    #[test]
    fn wrapping() {
        assert_eq!(Flavor::EventSource.wrap("o"), Bytes::from_static(b"data: o\r\n\r\n"));
        assert_eq!(Flavor::XhrStreaming.wrap("h"), Bytes::from_static(b"h\n"));
        let html = Flavor::HtmlFile("c".into()).wrap("a[\"</script>\"]");
        assert_eq!(
            html,
            Bytes::from_static(
                b"<script>\np(\"a[\\\"\\u003c\\/script\\u003e\\\"]\");\n</script>\r\n"
            )
        );
        let prelude = htmlfile_prelude("_jp.x");
        assert!(prelude.len() >= 1024 && prelude.contains("parent._jp.x"));
    }
}
