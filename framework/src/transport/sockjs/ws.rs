//! The SockJS `websocket` transport: SockJS framing (`o`, `h`, `a[...]`, `c[...]` out; JSON
//! arrays of strings in) over one WebSocket, which is the session's only receiver: when it
//! closes, the session ends.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::SockJsEndpoint;
use super::frames;
use super::session::{Output, SockJsSession, StompSide};
use crate::runtime::Runtime;
use crate::session::{self as stomp_session, Peer};
use crate::transport::websocket::{WebSocketLimits, flush_pong};

/// Runs a SockJS WebSocket: starts its STOMP session, then pumps frames both ways until either
/// side ends.
pub(crate) async fn run<S>(
    runtime: Arc<Runtime>,
    endpoint: Arc<SockJsEndpoint>,
    mut ws: WebSocketStream<S>,
    peer: Peer,
    limits: WebSocketLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (session, inbound) = SockJsSession::new(
        String::new(),
        endpoint.options.message_cache_size,
        runtime.config.send_buffer_size_limit,
    );
    let Some(receiver) = session.attach() else { return };
    let stomp = runtime.tracker.spawn(stomp_session::run(
        runtime.clone(),
        peer,
        StompSide::new(session.clone(), inbound),
    ));
    // At shutdown the STOMP session sends its ERROR and closes: this loop sees the close.
    let heartbeat = endpoint.options.heartbeat;
    loop {
        let output = receiver.next();
        let frame = match output.frame() {
            Some(frame) => frame,
            None => tokio::select! {
                () = receiver.changed() => continue,
                () = tokio::time::sleep(heartbeat) => frames::HEARTBEAT.to_owned(),
                message = ws.next() => {
                    if let Some(Ok(Message::Ping(_))) = message {
                        // tungstenite queued the pong: it goes out before anything more is
                        // read, so a client that pings without reading is read no further.
                        let due = tokio::time::Instant::now() + limits.pong_time_limit;
                        if let Err(e) = flush_pong(&mut ws, due, limits.pong_time_limit).await {
                            slow_client(&endpoint, &e.to_string());
                            break;
                        }
                        continue;
                    }
                    if !inbound_message(&session, message).await {
                        break;
                    }
                    continue;
                }
            },
        };
        // Bounded like every write to a client: one that does not read is let go.
        let limit = runtime.config.send_time_limit;
        match tokio::time::timeout(limit, ws.send(Message::text(frame))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("SockJS WebSocket write failed: {e}");
                break;
            }
            Err(_) => {
                slow_client(
                    &endpoint,
                    &format!(
                        "slow consumer: a write did not complete within the {limit:?} send time limit"
                    ),
                );
                break;
            }
        }
        if let Output::Close(close) = output {
            let code = CloseCode::from(close.code);
            let close = ws.close(Some(CloseFrame { code, reason: close.reason.into() }));
            let _ = tokio::time::timeout(limit, close).await;
            break;
        }
    }
    drop(receiver);
    session.expire();
    let _ = stomp.await;
}

/// Handles one message from the client; `false` when the connection is over.
async fn inbound_message<E>(session: &SockJsSession, message: Option<Result<Message, E>>) -> bool {
    let text = match message {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Binary(_))) => {
            tracing::debug!("SockJS WebSocket sent a binary message; SockJS carries text only");
            return false;
        }
        Some(Ok(Message::Pong(_) | Message::Frame(_))) => return true,
        // Answered by the caller before it reads on.
        Some(Ok(Message::Ping(_))) => return true,
        Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
    };
    match frames::decode(text.as_bytes()) {
        Ok(messages) => session.push_inbound(messages).await.is_ok(),
        // Empty messages are ignored, as the protocol says.
        Err(frames::BodyError::Empty) => true,
        Err(frames::BodyError::Broken) => {
            tracing::debug!("SockJS WebSocket sent a message that is not a JSON array of strings");
            false
        }
    }
}

/// Logs (throttled: a flood of such clients must not flood the log) why a client was let go.
fn slow_client(endpoint: &SockJsEndpoint, why: &str) {
    if let Some(held_back) = endpoint.slow_clients.allow() {
        tracing::warn!(held_back, "SockJS WebSocket closed: {why}");
    }
}
