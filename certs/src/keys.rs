//! Key pairs the CA makes for itself and for servers. Tokens make their own keys; the CA only
//! ever sees their public half in a CSR.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// The algorithm of a key the CA generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256: small, fast, supported by every TLS stack in use.
    #[default]
    EcP256,
    /// RSA-2048 with PKCS#1 v1.5 SHA-256 signatures, for relying parties without ECDSA.
    Rsa2048,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcP256 => "ec-p256",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ec-p256" | "p256" | "p-256" | "ec" => Ok(KeyAlgorithm::EcP256),
            "rsa-2048" | "rsa2048" | "rsa" => Ok(KeyAlgorithm::Rsa2048),
            _ => Err(format!(
                "unknown key algorithm {s:?}: use ec-p256 (default) or rsa-2048"
            )),
        }
    }
}

/// A key could not be generated or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("generating an {algorithm} key failed: {detail}")]
    Generate {
        algorithm: KeyAlgorithm,
        detail: String,
    },
    #[error("the key is not a usable PKCS#8 private key: {0}")]
    Unreadable(String),
}

/// A freshly generated key pair and its PKCS#8 PEM (zeroed when dropped).
pub(crate) struct GeneratedKey {
    pub pair: KeyPair,
    pub pem: Zeroizing<String>,
}

pub(crate) fn generate(algorithm: KeyAlgorithm) -> Result<GeneratedKey, KeyError> {
    let failed = |detail: String| KeyError::Generate { algorithm, detail };
    let pair = match algorithm {
        KeyAlgorithm::EcP256 => {
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| failed(e.to_string()))?
        }
        KeyAlgorithm::Rsa2048 => {
            use rsa::pkcs8::EncodePrivateKey;
            // ring signs with RSA keys but cannot generate them; the RustCrypto rsa crate
            // does. Only generation runs here: every signature is made by ring.
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| failed(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
            let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
            KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256)
                .map_err(|e| failed(e.to_string()))?
        }
    };
    let pem = Zeroizing::new(pair.serialize_pem());
    Ok(GeneratedKey { pair, pem })
}

/// Reads a PKCS#8 PEM private key (EC P-256/P-384 or RSA).
pub(crate) fn from_pem(pem: &str) -> Result<KeyPair, KeyError> {
    KeyPair::from_pem(pem).map_err(|e| KeyError::Unreadable(e.to_string()))
}
