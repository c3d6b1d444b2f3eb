//! The server's rustls configuration.

use rustls::RootCertStore;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the TLS configuration could not be built, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    #[error("{}: no certificate in the file", .0.display())]
    NoCertificate(PathBuf),
    #[error("client CA {}: {detail}", path.display())]
    ClientCa { path: PathBuf, detail: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Resumption cache entries kept by the server (about 1 KiB each).
const SESSION_CACHE: usize = 16 * 1024;

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::File {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Builds the server configuration: `cert` is the server certificate chain (PEM), `key` its
/// private key, and every certificate in `client_ca` is a trust anchor for client certificates
/// (the ukey CA's chain file holds the issuing and the root CA).
///
/// Client certificates are optional at the TLS layer so that one listener serves both token
/// and non-token endpoints; token endpoints refuse a request without one.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
        path: key.to_owned(),
        detail: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(client_ca)? {
        roots.add(ca).map_err(|e| TlsError::ClientCa {
            path: client_ca.to_owned(),
            detail: e.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::ClientCa {
            path: client_ca.to_owned(),
            detail: e.to_string(),
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}
