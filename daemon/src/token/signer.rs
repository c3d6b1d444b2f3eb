//! rustls on a token key: a `SigningKey` and a `ResolvesClientCert` for mutual TLS whose
//! private key never leaves the token.
//!
//! - The token call runs on the module's owner thread; the handshake thread waits for it
//!   inside `block_in_place` on a multi-thread runtime, so other tasks move to other workers.
//! - Only the schemes the key and the token's mechanisms can really make are offered: an RSA
//!   key on a token without `CKM_RSA_PKCS_PSS` offers no TLS 1.3 scheme at all.
//! - When a server asks only for schemes the token cannot make, rustls would silently send no
//!   certificate; the resolver records why ([`SignerProblem::NoCommonScheme`]) and logs it.
//! - A token that is gone fails the handshake at once with a [`TokenError`] inside
//!   `rustls::Error::Other` (see [`token_error`]), never a hang.
//! - Every signature is counted ([`SignerMetrics`]).

use crate::token::algorithms::{KeyKind, SignAlgorithm};
use crate::token::error::TokenError;
use crate::token::key::TokenKey;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{OtherError, SignatureAlgorithm, SignatureScheme};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a handshake could not use the token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignerProblem {
    /// The server asked for signature schemes the token's key cannot make, so no client
    /// certificate could be sent.
    #[error(
        "the server accepts only {offered:?} but the token's key can make only {supported:?}: no client certificate could be sent"
    )]
    NoCommonScheme {
        offered: Vec<SignatureScheme>,
        supported: Vec<SignatureScheme>,
    },
    /// The token failed to sign.
    #[error(transparent)]
    Token(TokenError),
}

/// Counters a signer keeps, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct SignerMetrics {
    signatures: AtomicU64,
    failures: AtomicU64,
    no_common_scheme: AtomicU64,
    last_problem: Mutex<Option<SignerProblem>>,
}

impl SignerMetrics {
    /// Signatures the token made for TLS handshakes.
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    /// Signatures asked for that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Handshakes where the server asked only for schemes the token cannot make.
    pub fn no_common_scheme(&self) -> u64 {
        self.no_common_scheme.load(Ordering::Relaxed)
    }

    /// The last problem, for telling the user why a handshake failed.
    pub fn last_problem(&self) -> Option<SignerProblem> {
        self.last_problem.lock().ok().and_then(|p| p.clone())
    }

    fn record(&self, problem: SignerProblem) {
        if let Ok(mut p) = self.last_problem.lock() {
            *p = Some(problem);
        }
    }
}

/// A rustls `SigningKey` on a token key.
#[derive(Debug)]
pub struct TokenSigningKey {
    key: TokenKey,
    metrics: Arc<SignerMetrics>,
}

impl TokenSigningKey {
    pub fn new(key: TokenKey) -> TokenSigningKey {
        Self::with_metrics(key, Arc::new(SignerMetrics::default()))
    }

    pub fn with_metrics(key: TokenKey, metrics: Arc<SignerMetrics>) -> TokenSigningKey {
        if !key.algorithms().iter().any(|a| tls13_scheme(*a)) {
            tracing::warn!(serial = %key.serial(), kind = %key.kind(),
                "the token cannot make any TLS 1.3 signature with this key (an RSA key needs CKM_RSA_PKCS_PSS): TLS 1.3 servers will get no client certificate");
        }
        TokenSigningKey { key, metrics }
    }

    /// The TLS schemes this key can make, best first.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.key
            .algorithms()
            .iter()
            .map(|a| a.tls_scheme())
            .collect()
    }

    /// Whether the key can sign a TLS 1.3 handshake.
    pub fn tls13_capable(&self) -> bool {
        self.key.algorithms().iter().any(|a| tls13_scheme(*a))
    }

    pub fn metrics(&self) -> Arc<SignerMetrics> {
        self.metrics.clone()
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    fn choose(&self, offered: &[SignatureScheme]) -> Option<SignAlgorithm> {
        self.key
            .algorithms()
            .iter()
            .copied()
            .find(|a| offered.contains(&a.tls_scheme()))
    }

    fn record_no_common_scheme(&self, offered: &[SignatureScheme]) {
        let problem = SignerProblem::NoCommonScheme {
            offered: offered.to_vec(),
            supported: self.schemes(),
        };
        tracing::warn!(serial = %self.key.serial(), %problem, "client certificate not sent");
        self.metrics
            .no_common_scheme
            .fetch_add(1, Ordering::Relaxed);
        self.metrics.record(problem);
    }
}

/// RSA PKCS#1 v1.5 is not allowed in TLS 1.3 handshakes.
fn tls13_scheme(a: SignAlgorithm) -> bool {
    !matches!(
        a,
        SignAlgorithm::RsaPkcs1Sha256
            | SignAlgorithm::RsaPkcs1Sha384
            | SignAlgorithm::RsaPkcs1Sha512
    )
}

impl SigningKey for TokenSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        match self.choose(offered) {
            Some(algorithm) => Some(Box::new(TokenSigner {
                key: self.key.clone(),
                algorithm,
                metrics: self.metrics.clone(),
            })),
            None => {
                self.record_no_common_scheme(offered);
                None
            }
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(
            self.key.public_key().spki_der.as_slice(),
        ))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key.kind() {
            KeyKind::Ec { .. } => SignatureAlgorithm::ECDSA,
            KeyKind::Rsa { .. } => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct TokenSigner {
    key: TokenKey,
    algorithm: SignAlgorithm,
    metrics: Arc<SignerMetrics>,
}

impl Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        match off_the_async_workers(|| self.key.sign(self.algorithm, message)) {
            Ok(signature) => {
                self.metrics.signatures.fetch_add(1, Ordering::Relaxed);
                Ok(signature)
            }
            Err(e) => {
                self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(serial = %self.key.serial(), error = %e, "TLS signature on the token failed");
                self.metrics.record(SignerProblem::Token(e.clone()));
                Err(rustls::Error::Other(OtherError(Arc::new(e))))
            }
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.algorithm.tls_scheme()
    }
}

/// Runs a blocking token call so that it does not stall an async worker: inside
/// `block_in_place` on a multi-thread runtime; directly elsewhere (a current-thread runtime
/// cannot hand its work to another thread).
fn off_the_async_workers<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A client-certificate resolver that presents the token's certificate and signs on the token.
#[derive(Debug)]
pub struct TokenCertResolver {
    certified: Arc<CertifiedKey>,
    signing: Arc<TokenSigningKey>,
}

impl TokenCertResolver {
    /// With the certificate the token holds for the key (same `CKA_ID`), and any
    /// intermediate CA certificates after it.
    pub fn new(
        key: TokenKey,
        intermediates: Vec<CertificateDer<'static>>,
    ) -> Result<TokenCertResolver, TokenError> {
        let cert = key
            .certificate()
            .map(|c| CertificateDer::from(c.der.clone()))
            .ok_or_else(|| TokenError::KeyNotFound {
                serial: key.serial().clone(),
                selector: format!("a certificate for key {}", hex::encode(key.id())),
            })?;
        let mut chain = vec![cert];
        chain.extend(intermediates);
        Ok(Self::with_chain(key, chain))
    }

    /// With a chain given by the caller (its first certificate must be the key's).
    pub fn with_chain(key: TokenKey, chain: Vec<CertificateDer<'static>>) -> TokenCertResolver {
        let signing = Arc::new(TokenSigningKey::new(key));
        let certified = Arc::new(CertifiedKey::new(chain, signing.clone()));
        TokenCertResolver { certified, signing }
    }

    pub fn metrics(&self) -> Arc<SignerMetrics> {
        self.signing.metrics()
    }

    pub fn signing_key(&self) -> &TokenSigningKey {
        &self.signing
    }
}

impl ResolvesClientCert for TokenCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if self.signing.choose(sigschemes).is_none() {
            self.signing.record_no_common_scheme(sigschemes);
            return None;
        }
        Some(self.certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The token error behind a failed TLS handshake, if the token was the cause (tokio-rustls
/// reports handshake errors as `io::Error` wrapping the `rustls::Error`).
pub fn token_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a TokenError> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(t) = e.downcast_ref::<TokenError>() {
            return Some(t);
        }
        if let Some(rustls::Error::Other(OtherError(inner))) = e.downcast_ref::<rustls::Error>() {
            return inner.downcast_ref::<TokenError>();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            current = Some(inner);
            continue;
        }
        current = e.source();
    }
    None
}
