//! One STOMP connection to the external broker: connecting (TCP, CONNECT, CONNECTED within
//! a deadline), then frames both ways.

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::StompBrokerRelay;
use crate::stomp::{
    Command, Decoder, EncodedFrame, Frame, HeartBeat, Limits, Version, encode, names,
};
use crate::transport::tcp::TcpTransport;
use crate::transport::{Transport, TransportError};

/// What the relay accepts from the broker: messages up to 16 MiB (others' producers may send
/// more than this server's clients may), and the usual header bounds.
const BROKER_LIMITS: Limits = Limits {
    max_frame_size: 16 << 20,
    max_body_size: 16 << 20,
    max_header_count: 1024,
    max_header_line: 64 * 1024,
};

/// How long one write to the broker may take before its connection counts as lost (and how
/// long the broker has to answer a DISCONNECT).
pub(crate) const WRITE_LIMIT: Duration = Duration::from_secs(10);

/// The heart-beats every connection to the broker asks for: the relay's system intervals.
pub(crate) fn heartbeat(relay: &StompBrokerRelay) -> HeartBeat {
    let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    HeartBeat {
        send: millis(relay.system_heartbeat_send),
        receive: millis(relay.system_heartbeat_receive),
    }
}

/// A connected upstream session.
pub(crate) struct Upstream {
    transport: TcpTransport<TcpStream>,
    decoder: Decoder,
    buf: BytesMut,
    /// Frames decoded and not yet handed out.
    ready: std::collections::VecDeque<Frame>,
    /// When bytes last arrived (frames or heart-beats).
    last_received: tokio::time::Instant,
}

/// Opens a STOMP session with the external broker as `login`/`passcode`. The error says what
/// failed, for the log.
pub(crate) async fn connect(
    relay: &StompBrokerRelay,
    login: &str,
    passcode: &str,
    heartbeat: HeartBeat,
) -> Result<(Upstream, Frame), String> {
    let address = format!("{}:{}", relay.host, relay.port);
    let attempt = async {
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot reach the broker at {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut upstream = Upstream {
            transport: TcpTransport::new(stream),
            decoder: Decoder::new(BROKER_LIMITS),
            buf: BytesMut::new(),
            ready: Default::default(),
            last_received: tokio::time::Instant::now(),
        };
        // The virtual host if one is set, else `/`, RabbitMQ's default (RabbitMQ reads `host`
        // as the virtual host: the relay's host name there would be refused).
        let host = relay.virtual_host.clone().unwrap_or_else(|| "/".into());
        let connect = Frame::new(Command::Connect)
            .header(names::ACCEPT_VERSION, "1.2")
            .header(names::HOST, host)
            .header(names::LOGIN, login.to_owned())
            .header(names::PASSCODE, passcode.to_owned())
            .header(names::HEART_BEAT, heartbeat.to_header_value());
        upstream.send(&[encode(&connect, Version::V1_2)]).await.map_err(|e| e.to_string())?;
        match upstream.next().await? {
            Some(frame) if frame.command == Command::Connected => Ok((upstream, frame)),
            Some(frame) if frame.command == Command::Error => Err(format!(
                "the broker at {address} refused the connection: {}",
                frame.get(names::MESSAGE).unwrap_or("(no message)")
            )),
            Some(frame) => {
                Err(format!("the broker at {address} answered CONNECT with {}", frame.command))
            }
            None => Err(format!("the broker at {address} closed the connection at CONNECT")),
        }
    };
    tokio::time::timeout(relay.connect_timeout, attempt).await.unwrap_or_else(|_| {
        Err(format!(
            "the broker at {address} did not answer CONNECT within {:?}",
            relay.connect_timeout
        ))
    })
}

impl Upstream {
    /// Writes frames.
    pub(crate) async fn send(&mut self, frames: &[EncodedFrame]) -> std::io::Result<()> {
        self.transport.send(frames).await
    }

    /// Writes frames within [`WRITE_LIMIT`]; the error says why the connection is lost.
    pub(crate) async fn send_bounded(&mut self, frames: &[EncodedFrame]) -> Result<(), String> {
        bounded(self.transport.send(frames)).await
    }

    /// Writes a heart-beat within [`WRITE_LIMIT`].
    pub(crate) async fn beat_bounded(&mut self) -> Result<(), String> {
        bounded(self.transport.send_heartbeat()).await
    }

    /// The next frame from the broker; `None` when it closed the connection. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, String> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            match self.transport.recv(&mut self.buf).await {
                Ok(0) => return Ok(None),
                // A heart-beat counts too, though `next` returns only frames.
                Ok(_) => self.last_received = tokio::time::Instant::now(),
                Err(TransportError::Io(e)) => {
                    return Err(format!("connection to the broker lost: {e}"));
                }
                Err(e) => return Err(e.to_string()),
            }
            while let Some(frame) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| format!("the broker sent a bad frame: {e}"))?
            {
                self.ready.push_back(frame);
            }
        }
    }

    /// When bytes (a frame or a heart-beat) last arrived.
    pub(crate) fn last_received(&self) -> tokio::time::Instant {
        self.last_received
    }

    /// Closes the connection.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.transport.close()).await;
    }
}

async fn bounded(
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<(), String> {
    match tokio::time::timeout(WRITE_LIMIT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("writing to the broker failed: {e}")),
        Err(_) => Err(format!("a write to the broker took more than {WRITE_LIMIT:?}")),
    }
}
