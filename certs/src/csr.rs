//! Checking a PKCS#10 CSR made on a token: its key must be strong, its signature must prove the
//! requester holds that key, and it must not ask for a CA certificate. Only the public key is
//! taken from it; the profile decides everything else.

use crate::encoding::decode_pem_or_der;
use crate::identity::{PublicKeyAlgorithm, fingerprint_of_spki};
use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, SignatureAlgorithm};
use ukey_proto::SpkiFingerprint;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (ring verifies up to 8192).
pub const MAX_RSA_BITS: usize = 8192;

/// Why a CSR was refused. Each reason says what to change on the requesting side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    #[error("not a PKCS#10 certificate request: {0}")]
    Malformed(String),
    #[error("weak key refused: {0}")]
    WeakKey(String),
    #[error("key refused: {0}; tokens must use EC P-256, EC P-384 or RSA of 2048 to 8192 bits")]
    UnsupportedKey(String),
    #[error("the CSR is signed with {0}, which is too weak; sign it with SHA-256 or stronger")]
    WeakSignature(&'static str),
    #[error("the CSR's signature algorithm {0} is not supported for this key")]
    UnsupportedSignature(String),
    #[error(
        "the CSR's signature does not verify with the public key it carries: it was altered, \
         or not signed by the holder of that key"
    )]
    BadSignature,
    #[error("the CSR asks for a CA certificate ({0}); tokens get end-entity certificates only")]
    RequestsCa(&'static str),
}

/// A CSR that passed every check: its public key, ready to be certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    key_bits: Vec<u8>,
    spki_der: Vec<u8>,
    algorithm: PublicKeyAlgorithm,
    signing_algorithm: &'static SignatureAlgorithm,
    subject: String,
}

impl CheckedCsr {
    /// Reads and checks a CSR given as DER or PEM (`CERTIFICATE REQUEST`, or the older
    /// `NEW CERTIFICATE REQUEST` label).
    pub fn parse(input: &[u8]) -> Result<Self, CsrError> {
        let der = decode_pem_or_der(input, "CERTIFICATE REQUEST")
            .or_else(|_| decode_pem_or_der(input, "NEW CERTIFICATE REQUEST"))
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        check(&der)
    }

    pub fn key_algorithm(&self) -> &PublicKeyAlgorithm {
        &self.algorithm
    }

    /// SHA-256 of the CSR's SubjectPublicKeyInfo: the token's key, before any certificate.
    pub fn fingerprint(&self) -> SpkiFingerprint {
        fingerprint_of_spki(&self.spki_der)
    }

    /// The subject the requester asked for (ignored by the profiles; for logs and messages).
    pub fn requested_subject(&self) -> &str {
        &self.subject
    }
}

impl rcgen::PublicKeyData for CheckedCsr {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.signing_algorithm
    }
}

fn check(der: &[u8]) -> Result<CheckedCsr, CsrError> {
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    let spki = &csr.certification_request_info.subject_pki;

    // The key first: a weak RSA key would otherwise surface as a signature failure.
    let algorithm = PublicKeyAlgorithm::of(spki);
    let signing_algorithm: &'static SignatureAlgorithm = match &algorithm {
        PublicKeyAlgorithm::EcP256 => &PKCS_ECDSA_P256_SHA256,
        PublicKeyAlgorithm::EcP384 => &PKCS_ECDSA_P384_SHA384,
        PublicKeyAlgorithm::Rsa { bits } => {
            check_rsa(spki, *bits)?;
            &PKCS_RSA_SHA256
        }
        PublicKeyAlgorithm::EcOther { curve } => {
            return Err(CsrError::UnsupportedKey(format!(
                "unknown elliptic curve {}",
                curve_name(curve)
            )));
        }
        other => return Err(CsrError::UnsupportedKey(other.to_string())),
    };

    let sig_oid = &csr.signature_algorithm.algorithm;
    if *sig_oid == OID_PKCS1_SHA1WITHRSA || *sig_oid == OID_SHA1_WITH_RSA {
        return Err(CsrError::WeakSignature("SHA-1"));
    }
    csr.verify_signature().map_err(|e| match e {
        X509Error::SignatureVerificationError => CsrError::BadSignature,
        _ => CsrError::UnsupportedSignature(sig_oid.to_id_string()),
    })?;

    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err(CsrError::RequestsCa("basicConstraints cA=TRUE"));
            }
            ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                return Err(CsrError::RequestsCa("keyCertSign or cRLSign key usage"));
            }
            _ => {}
        }
    }

    Ok(CheckedCsr {
        key_bits: spki.subject_public_key.data.to_vec(),
        spki_der: spki.raw.to_vec(),
        algorithm,
        signing_algorithm,
        subject: csr.certification_request_info.subject.to_string(),
    })
}

fn check_rsa(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    bits: usize,
) -> Result<(), CsrError> {
    if bits < MIN_RSA_BITS {
        return Err(CsrError::WeakKey(format!(
            "RSA-{bits} is below the {MIN_RSA_BITS}-bit minimum"
        )));
    }
    if bits > MAX_RSA_BITS {
        return Err(CsrError::UnsupportedKey(format!(
            "RSA-{bits} is above the {MAX_RSA_BITS}-bit maximum"
        )));
    }
    let exponent = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa.try_exponent().ok(),
        _ => None,
    };
    match exponent {
        Some(e) if e >= 65537 && e % 2 == 1 && e < (1 << 32) => Ok(()),
        Some(e) => Err(CsrError::WeakKey(format!(
            "RSA public exponent {e} (it must be odd, at least 65537 and below 2^32)"
        ))),
        None => Err(CsrError::Malformed("unreadable RSA public key".into())),
    }
}

/// Names for curves operators may meet, so the refusal says more than an OID.
fn curve_name(oid: &str) -> String {
    let name = match oid {
        "1.3.132.0.10" => "secp256k1",
        "1.3.132.0.35" => "NIST P-521",
        "1.3.132.0.33" => "NIST P-224",
        "1.2.840.10045.3.1.1" => "NIST P-192",
        "1.2.156.10197.1.301" => "SM2",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        _ => return oid.to_owned(),
    };
    format!("{name} ({oid})")
}
