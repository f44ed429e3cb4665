//! TLS termination on the main listener: rustls (aws-lc-rs) from a PEM certificate chain and
//! private key named by secret references, ALPN `h2` then `http/1.1`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why TLS could not be set up. Names the reference, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls.{field}: {source}")]
    Secret {
        field: &'static str,
        source: crate::secrets::SecretError,
    },
    #[error("server.tls.cert: no PEM certificate found")]
    NoCertificate,
    #[error("server.tls.key: no PEM private key found")]
    NoKey,
    #[error("server.tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Resolves the certificate and key and builds the acceptor.
pub async fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = config
        .cert
        .resolve()
        .await
        .map_err(|source| TlsError::Secret {
            field: "cert",
            source,
        })?;
    let key_pem = config
        .key
        .resolve()
        .await
        .map_err(|source| TlsError::Secret {
            field: "key",
            source,
        })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.expose())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose()).map_err(|_| TlsError::NoKey)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
