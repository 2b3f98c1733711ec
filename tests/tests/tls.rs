//! TLS on the built-in listener: a self-signed certificate made at run time (rcgen), served
//! from PEM files, and clients that verify the server against it: STOMP over `wss://`, and
//! SockJS's `https://` info request. A client that does not trust the certificate, and a
//! plain-text client, get nowhere.

// A failed unwrap in a test is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use stompede::{Endpoint, RunningServer, Server, TlsConfig};
use stompede_tests::{WAIT, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for `localhost`, written to PEM files; the server serving it;
/// and the certificate, for clients to trust.
async fn tls_server() -> (RunningServer, CertificateDer<'static>, tempdir::Dir) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempdir::Dir::new("stompede-tls");
    let (cert, key) = (dir.path.join("cert.pem"), dir.path.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    let server =
        start(Server::builder().endpoint(Endpoint::new("/ws").with_sockjs()).tls(tls)).await;
    (server, certified.cert.der().clone(), dir)
}

fn connector(trusted: Option<CertificateDer<'static>>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    if let Some(cert) = trusted {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    server: &RunningServer,
    trusted: Option<CertificateDer<'static>>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.local_addr()).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector(trusted).connect(name, tcp).await
}

/// The next text message of `ws`.
async fn read(ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>) -> String {
    match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_over_wss_with_a_verified_certificate() {
    let (server, cert, _dir) = tls_server().await;
    let port = server.local_addr().port();
    let stream = tls_connect(&server, Some(cert)).await.expect("the certificate verifies");
    let url = format!("wss://localhost:{port}/ws");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws.send(Message::text("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0")).await.unwrap();
    assert!(read(&mut ws).await.starts_with("CONNECTED\n"));
    ws.send(Message::text(
        "SUBSCRIBE\nid:0\ndestination:/topic/secure\nreceipt:r\n\n\0SEND\ndestination:/topic/secure\n\nover TLS\0",
    ))
    .await
    .unwrap();
    assert!(read(&mut ws).await.starts_with("RECEIPT\nreceipt-id:r\n"));
    let message = read(&mut ws).await;
    assert!(message.starts_with("MESSAGE\n") && message.ends_with("\n\nover TLS\0"), "{message:?}");
    server.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_over_https() {
    let (server, cert, _dir) = tls_server().await;
    let mut stream = tls_connect(&server, Some(cert)).await.unwrap();
    stream
        .write_all(b"GET /ws/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"websocket\":true"), "{response}");
    server.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_and_plain_clients_get_nowhere() {
    let (server, _cert, _dir) = tls_server().await;
    // A client that does not trust the certificate refuses the server.
    let error = tls_connect(&server, None).await.expect_err("an unknown issuer");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    // A plain-text client gets no HTTP answer: the server expects a TLS handshake.
    let mut plain = TcpStream::connect(server.local_addr()).await.unwrap();
    plain.write_all(b"GET /ws/info HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer)).await.unwrap();
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&answer));
    server.shutdown(WAIT).await;
}

#[test]
fn bad_pem_is_a_clear_error() {
    let error = TlsConfig::from_pem(b"not a certificate", b"not a key").err().unwrap();
    assert!(error.to_string().contains("holds no certificate"), "{error}");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let error = TlsConfig::from_pem(certified.cert.pem().as_bytes(), b"no key").err().unwrap();
    assert!(error.to_string().contains("not a PEM private key"), "{error}");
    let error =
        TlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").err().unwrap();
    assert!(
        error.to_string().contains("cannot read the TLS certificate chain /nonexistent/cert.pem")
    );
}

/// A directory removed when dropped.
mod tempdir {
    pub(crate) struct Dir {
        pub(crate) path: std::path::PathBuf,
    }

    impl Dir {
        pub(crate) fn new(prefix: &str) -> Dir {
            let unique = format!(
                "{prefix}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
            );
            let path = std::env::temp_dir().join(unique.replace([' ', '.'], "_"));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
