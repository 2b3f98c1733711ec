//! The server's own listeners: accepting HTTP connections (each served by hyper, within the
//! connection bound and deadlines of `connections` and `stall`) and STOMP-over-TCP ones.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::Endpoints;
use super::connections::ConnectionSlots;
use super::service::StompService;
use super::stall::WriteStall;
#[cfg(feature = "tcp")]
use super::tcp::TcpTransport;
use crate::runtime::Runtime;
#[cfg(feature = "tcp")]
use crate::session::{self, Peer};

/// The stream the plain (not TLS) listener hands hyper, inside a `TokioIo`: a WebSocket
/// upgrade takes it back out of hyper's `Upgraded` by this type (`service`).
pub(crate) type Plain = WriteStall<TcpStream>;

/// Connections the kernel may hold for us before `accept` (capped by `net.core.somaxconn`).
/// Bursts of thousands of clients reconnecting at once are normal for a pub/sub server; with
/// a short queue the overflow waits a whole SYN retransmit (a second or more).
const ACCEPT_BACKLOG: u32 = 4096;

pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Serves HTTP (and the WebSocket upgrades) on `listener` until shutdown.
pub(crate) async fn http(runtime: Arc<Runtime>, endpoints: Arc<Endpoints>, listener: TcpListener) {
    let config = &runtime.config;
    // HTTP connections without a STOMP session yet (`max_http_connections`).
    let slots = ConnectionSlots::new(config.max_http_connections);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // The header read deadline runs from the connection's opening, and again from the end of
    // each response: it is the keep-alive idle timeout too (hyper re-arms it whenever it
    // waits for a request head).
    http1.timer(TokioTimer::new()).header_read_timeout(config.http_header_read_timeout);
    loop {
        // A slot first: with none free, connections wait in the kernel's backlog.
        let (slot, accepted) = tokio::select! {
            () = runtime.shutdown.cancelled() => return,
            slot = slots.acquire() => {
                tokio::select! {
                    () = runtime.shutdown.cancelled() => return,
                    accepted = listener.accept() => (slot, accepted),
                }
            }
        };
        let Some((stream, peer)) = accepted_or_pause(accepted).await else { continue };
        let service = StompService::new(runtime.clone(), endpoints.clone())
            .with_peer(peer)
            .with_slot(slot.clone());
        let shutdown = runtime.shutdown.clone();
        let limit = config.send_time_limit;
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            let (acceptor, http1) = (tls.acceptor.clone(), http1.clone());
            let deadline = config.http_header_read_timeout;
            runtime.tracker.spawn(async move {
                // The handshake counts as the first request's head: same deadline.
                let stream = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => {
                        return tracing::debug!(%peer, "TLS handshake not completed within {deadline:?}");
                    }
                };
                let io = TokioIo::new(WriteStall::new(stream, limit, slot));
                serve(&http1, io, service, shutdown, peer).await;
            });
            continue;
        }
        // Writes the client does not read fail after the send time limit while the connection
        // holds its slot (pipelined requests whose answers are never read).
        let io: TokioIo<Plain> = TokioIo::new(WriteStall::new(stream, limit, slot));
        let http1 = http1.clone();
        runtime.tracker.spawn(async move { serve(&http1, io, service, shutdown, peer).await });
    }
}

/// Serves one HTTP connection (with its upgrades) until it ends or the server shuts down.
async fn serve<I>(
    http1: &hyper::server::conn::http1::Builder,
    io: I,
    service: StompService,
    shutdown: tokio_util::sync::CancellationToken,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let connection = http1.serve_connection(io, service).with_upgrades();
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        }
        () = shutdown.cancelled() => {}
    }
}

/// Serves STOMP over plain TCP on `listener` until shutdown.
#[cfg(feature = "tcp")]
pub(crate) async fn tcp(runtime: Arc<Runtime>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = runtime.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Some((stream, peer)) = accepted_or_pause(accepted).await else { continue };
        let attributes = http::Extensions::new();
        let accepted = tokio::time::Instant::now();
        let peer = Peer { addr: Some(peer), transport: "tcp", attributes, slot: None, accepted };
        runtime.tracker.spawn(session::run(runtime.clone(), peer, TcpTransport::new(stream)));
    }
}

/// Unwraps an accepted connection. On failure (out of file descriptors, usually) logs what to
/// do and pauses briefly, so the accept loop does not spin.
async fn accepted_or_pause(
    accepted: io::Result<(TcpStream, SocketAddr)>,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            tracing::error!(
                "accepting a connection failed: {e} (if this says 'too many open files', raise the process's open-files limit with ulimit -n)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}
