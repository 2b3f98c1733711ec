//! TLS on the built-in listener (feature `tls`): `wss://` for WebSocket and `https://` for
//! SockJS, with rustls.

use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate and key the built-in listener serves TLS with (see
/// [`ServerBuilder::tls`](crate::ServerBuilder::tls)).
///
/// ```no_run
/// use stompede::{Server, TlsConfig};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder()
///     .bind("0.0.0.0:8443".parse()?)
///     .tls(TlsConfig::from_pem_files("cert.pem", "key.pem")?)
///     .build()?;
/// # drop(server);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) acceptor: TlsAcceptor,
}

impl TlsConfig {
    /// Reads a certificate chain (the server's certificate first, then its intermediates) and
    /// its private key (PKCS#8, PKCS#1 or SEC1) from PEM files.
    pub fn from_pem_files(
        certificate_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> io::Result<TlsConfig> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot read the TLS {what} {}: {e}", path.display()),
                )
            })
        };
        let chain = read(certificate_chain.as_ref(), "certificate chain")?;
        let key = read(private_key.as_ref(), "private key")?;
        TlsConfig::from_pem(&chain, &key)
    }

    /// A certificate chain and its private key, in PEM.
    pub fn from_pem(certificate_chain: &[u8], private_key: &[u8]) -> io::Result<TlsConfig> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_chain)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("the TLS certificate chain is not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(invalid(
                "the TLS certificate chain holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(private_key).map_err(|e| {
            invalid(format!(
                "the TLS private key is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| invalid(format!("the TLS certificate and key do not go together: {e}")))?;
        // HTTP/1.1 only: WebSocket upgrades and SockJS are served over it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig::from_rustls(Arc::new(config)))
    }

    /// A rustls configuration of your own (client certificates, a certificate resolver...).
    /// Its ALPN protocols should offer `http/1.1` (or none).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig { acceptor: TlsAcceptor::from(config) }
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}
