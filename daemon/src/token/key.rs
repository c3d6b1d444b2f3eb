//! A key on a token, as something that signs: for TLS (see `signer`), for a CSR or a
//! certificate (it implements `rcgen::SigningKey`), or for any bytes with a chosen algorithm.

use crate::token::algorithms::{Curve, KeyKind, SignAlgorithm};
use crate::token::error::TokenError;
use crate::token::manager::TokenManager;
use crate::token::objects::{CertInfo, KeyInfo, PublicKey};
use crate::token::state::TokenState;
use crate::token::uri::Pkcs11Uri;
use ukey_proto::TokenSerial;

/// A signing key on a token, with its public key and (when the token holds one) its
/// certificate. It refers to the key by token serial and `CKA_ID`, so it keeps working after
/// the token is pulled, re-inserted and logged in again.
#[derive(Clone)]
pub struct TokenKey {
    manager: TokenManager,
    serial: TokenSerial,
    info: KeyInfo,
    public_key: PublicKey,
    certificate: Option<CertInfo>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("serial", &self.serial)
            .field("id", &hex::encode(&self.info.id))
            .field("kind", &self.public_key.kind)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    pub(crate) fn new(
        manager: TokenManager,
        serial: TokenSerial,
        info: KeyInfo,
        certificate: Option<CertInfo>,
    ) -> Result<TokenKey, TokenError> {
        let key = hex::encode(&info.id);
        let unsupported = |reason: String| TokenError::UnsupportedKey {
            serial: serial.clone(),
            key: key.clone(),
            reason,
        };
        if info.always_authenticate {
            return Err(TokenError::PinPerSignature { serial, key });
        }
        if !info.can_sign {
            return Err(unsupported(
                "the token does not allow it to sign (CKA_SIGN false)".into(),
            ));
        }
        let cert_key = certificate
            .as_ref()
            .and_then(|c| c.details.as_ref().ok())
            .and_then(|d| d.public_key.clone());
        let public_key = match (info.public_key.clone(), cert_key) {
            (Some(k), Some(c)) if k.spki_der != c.spki_der => {
                return Err(unsupported(
                    "the certificate with the same CKA_ID is for another key".into(),
                ));
            }
            (Some(k), _) => k,
            (None, Some(c)) => c,
            (None, None) => {
                return Err(unsupported(
                    "neither a public key object nor a certificate gives its public key".into(),
                ));
            }
        };
        if info.algorithms.is_empty() {
            return Err(unsupported(format!(
                "the token offers no signature mechanism ukeyd can use with a {} key",
                public_key.kind
            )));
        }
        Ok(TokenKey {
            manager,
            serial,
            info,
            public_key,
            certificate,
        })
    }

    pub fn serial(&self) -> &TokenSerial {
        &self.serial
    }

    /// `CKA_ID`.
    pub fn id(&self) -> &[u8] {
        &self.info.id
    }

    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    pub fn kind(&self) -> KeyKind {
        self.public_key.kind
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The certificate on the token for this key, if there is one.
    pub fn certificate(&self) -> Option<&CertInfo> {
        self.certificate.as_ref()
    }

    /// What this key can sign with on its token.
    pub fn algorithms(&self) -> &[SignAlgorithm] {
        &self.info.algorithms
    }

    /// The URI naming this key.
    pub fn uri(&self) -> Pkcs11Uri {
        Pkcs11Uri::for_key(self.serial.as_str(), &self.info.id)
    }

    pub fn manager(&self) -> &TokenManager {
        &self.manager
    }

    /// The token's state now (`None` if the manager has never seen it).
    pub fn token_state(&self) -> Option<TokenState> {
        self.manager.token(&self.serial).map(|t| t.state)
    }

    /// Signs `message` (hashed on the host). Blocks for as long as the token takes, bounded
    /// by the manager's sign timeout; fails at once when the token is gone.
    pub fn sign(&self, algorithm: SignAlgorithm, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        if !self.info.algorithms.contains(&algorithm) {
            return Err(TokenError::MechanismUnsupported {
                serial: self.serial.clone(),
                what: format!("sign with {algorithm:?} using a {} key", self.kind()),
                mechanism: format!("{:?}", algorithm.mechanism_type()),
            });
        }
        self.manager
            .sign(&self.serial, &self.info.id, algorithm, message)
    }

    /// The algorithm for X.509 signatures (certificates, CSRs): ECDSA with the curve's hash,
    /// or RSA PKCS#1 v1.5 with SHA-256, which every CA takes.
    pub fn x509_algorithm(&self) -> SignAlgorithm {
        match self.kind() {
            KeyKind::Ec { curve: Curve::P256 } => SignAlgorithm::EcdsaP256Sha256,
            KeyKind::Ec { curve: Curve::P384 } => SignAlgorithm::EcdsaP384Sha384,
            KeyKind::Rsa { .. } => SignAlgorithm::RsaPkcs1Sha256,
        }
    }
}

impl rcgen::PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.kind() {
            KeyKind::Ec { curve: Curve::P256 } => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::Ec { curve: Curve::P384 } => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// Signs CSRs and certificates on the token. rcgen's error cannot carry the cause, so it is
/// logged; call [`TokenKey::sign`] directly for a typed error.
impl rcgen::SigningKey for TokenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        TokenKey::sign(self, self.x509_algorithm(), msg).map_err(|e| {
            tracing::error!(serial = %self.serial, error = %e, "token signature for rcgen failed");
            rcgen::Error::RemoteKeyError
        })
    }
}
