//! Reading certificates back: what any certificate says ([`CertificateInfo`]) and who a token's
//! client certificate names ([`ClientIdentity`]).
//!
//! The admin service binds tokens by the SHA-256 of the certificate's SubjectPublicKeyInfo
//! ([`spki_fingerprint`]), never by subject; the unit and token URIs say what the certificate
//! claims, the fingerprint says which key it is.

use crate::encoding::decode_pem_or_der;
use crate::serial::CertSerial;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use time::OffsetDateTime;
use ukey_proto::ids::{TOKEN_URN_PREFIX, UNIT_URN_PREFIX};
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Why a certificate could not be read, or is not a token's client certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("not a certificate: {0}")]
    Malformed(String),
    #[error(
        "the certificate has {count} {what} URIs in subjectAltName; a token certificate has exactly one"
    )]
    UriCount { what: &'static str, count: usize },
    #[error("the certificate's URI {uri:?} does not hold a valid {what}")]
    BadUri { what: &'static str, uri: String },
    #[error("the certificate is a CA certificate, not a token's client certificate")]
    IsCa,
    #[error(
        "the certificate does not allow client authentication (no clientAuth extended key usage)"
    )]
    NoClientAuth,
    #[error("the certificate's key usage does not allow digitalSignature")]
    NoDigitalSignature,
}

/// SHA-256 of the DER SubjectPublicKeyInfo of a certificate (DER or PEM).
pub fn spki_fingerprint(cert: &[u8]) -> Result<SpkiFingerprint, IdentityError> {
    let der = decode_pem_or_der(cert, "CERTIFICATE")
        .map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let x509 = parse(&der)?;
    Ok(fingerprint_of_spki(x509.public_key().raw))
}

pub(crate) fn fingerprint_of_spki(spki_der: &[u8]) -> SpkiFingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    SpkiFingerprint::from_bytes(bytes)
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IdentityError::Malformed(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// The kind and size of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PublicKeyAlgorithm {
    EcP256,
    EcP384,
    Ed25519,
    Rsa {
        bits: usize,
    },
    /// An EC key on a curve ukey does not accept, named by OID.
    EcOther {
        curve: String,
    },
    /// Any other algorithm, named by OID.
    Other {
        oid: String,
    },
}

impl PublicKeyAlgorithm {
    pub(crate) fn of(spki: &SubjectPublicKeyInfo<'_>) -> PublicKeyAlgorithm {
        let alg = &spki.algorithm.algorithm;
        if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            match spki.algorithm.parameters.as_ref().map(|p| p.as_oid()) {
                Some(Ok(curve)) if curve == OID_EC_P256 => PublicKeyAlgorithm::EcP256,
                Some(Ok(curve)) if curve == OID_NIST_EC_P384 => PublicKeyAlgorithm::EcP384,
                Some(Ok(curve)) => PublicKeyAlgorithm::EcOther {
                    curve: curve.to_id_string(),
                },
                _ => PublicKeyAlgorithm::EcOther {
                    curve: "explicit or missing curve parameters".to_owned(),
                },
            }
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa_modulus_bits(rsa.modulus),
                _ => 0,
            };
            PublicKeyAlgorithm::Rsa { bits }
        } else if *alg == OID_SIG_ED25519 {
            PublicKeyAlgorithm::Ed25519
        } else {
            PublicKeyAlgorithm::Other {
                oid: alg.to_id_string(),
            }
        }
    }
}

/// Bits in an RSA modulus given as a DER INTEGER's content (a leading sign octet may be present).
pub(crate) fn rsa_modulus_bits(modulus: &[u8]) -> usize {
    match modulus.iter().position(|b| *b != 0) {
        Some(i) => {
            let rest = modulus.len() - i;
            let top = modulus.get(i).copied().unwrap_or(0);
            (rest - 1) * 8 + (8 - top.leading_zeros() as usize)
        }
        None => 0,
    }
}

impl fmt::Display for PublicKeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKeyAlgorithm::EcP256 => f.write_str("EC P-256"),
            PublicKeyAlgorithm::EcP384 => f.write_str("EC P-384"),
            PublicKeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
            PublicKeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
            PublicKeyAlgorithm::EcOther { curve } => write!(f, "EC on curve {curve}"),
            PublicKeyAlgorithm::Other { oid } => write!(f, "algorithm {oid}"),
        }
    }
}

/// The keyUsage bits (RFC 5280 §4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsage {
    DigitalSignature,
    ContentCommitment,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    CrlSign,
    EncipherOnly,
    DecipherOnly,
}

/// The extendedKeyUsage purposes (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ExtendedKeyUsage {
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    TimeStamping,
    OcspSigning,
    Any,
    Other(String),
}

/// What a certificate says, as `ukey-ca show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    pub serial: CertSerial,
    pub subject: String,
    pub issuer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub key_algorithm: PublicKeyAlgorithm,
    pub spki_fingerprint: SpkiFingerprint,
    pub is_ca: bool,
    /// The basicConstraints path length, for CA certificates that set one.
    pub path_len: Option<u32>,
    /// None when the certificate has no keyUsage extension (any usage).
    pub key_usage: Option<Vec<KeyUsage>>,
    /// None when the certificate has no extendedKeyUsage extension.
    pub extended_key_usage: Option<Vec<ExtendedKeyUsage>>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
}

impl CertificateInfo {
    /// Reads a certificate given as DER or PEM (the first `CERTIFICATE` block).
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self, IdentityError> {
        let der = decode_pem_or_der(input, "CERTIFICATE")
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        Self::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let x509 = parse(der)?;
        let tbs = &x509.tbs_certificate;
        let serial = CertSerial::from_be_bytes(x509.raw_serial())
            .map_err(|e| IdentityError::Malformed(e.to_string()))?;
        let mut info = CertificateInfo {
            serial,
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            not_before: tbs.validity.not_before.to_datetime(),
            not_after: tbs.validity.not_after.to_datetime(),
            key_algorithm: PublicKeyAlgorithm::of(&tbs.subject_pki),
            spki_fingerprint: fingerprint_of_spki(tbs.subject_pki.raw),
            is_ca: false,
            path_len: None,
            key_usage: None,
            extended_key_usage: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
        };
        for ext in tbs.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    info.is_ca = bc.ca;
                    info.path_len = bc.path_len_constraint;
                }
                ParsedExtension::KeyUsage(ku) => info.key_usage = Some(key_usages(ku)),
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    info.extended_key_usage = Some(extended_key_usages(eku));
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => info.dns_names.push((*d).to_owned()),
                            GeneralName::URI(u) => info.uris.push((*u).to_owned()),
                            GeneralName::IPAddress(ip) => {
                                if let Some(ip) = ip_from_bytes(ip) {
                                    info.ip_addresses.push(ip);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ParsedExtension::ParseError { error } => {
                    return Err(IdentityError::Malformed(format!(
                        "extension {}: {error}",
                        ext.oid.to_id_string()
                    )));
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// Whether the certificate allows the given extended key usage (absent EKU allows any).
    pub fn allows(&self, purpose: &ExtendedKeyUsage) -> bool {
        match &self.extended_key_usage {
            None => true,
            Some(list) => list.contains(purpose),
        }
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn key_usages(ku: &x509_parser::extensions::KeyUsage) -> Vec<KeyUsage> {
    [
        (ku.digital_signature(), KeyUsage::DigitalSignature),
        (ku.non_repudiation(), KeyUsage::ContentCommitment),
        (ku.key_encipherment(), KeyUsage::KeyEncipherment),
        (ku.data_encipherment(), KeyUsage::DataEncipherment),
        (ku.key_agreement(), KeyUsage::KeyAgreement),
        (ku.key_cert_sign(), KeyUsage::KeyCertSign),
        (ku.crl_sign(), KeyUsage::CrlSign),
        (ku.encipher_only(), KeyUsage::EncipherOnly),
        (ku.decipher_only(), KeyUsage::DecipherOnly),
    ]
    .into_iter()
    .filter_map(|(set, usage)| set.then_some(usage))
    .collect()
}

fn extended_key_usages(
    eku: &x509_parser::extensions::ExtendedKeyUsage<'_>,
) -> Vec<ExtendedKeyUsage> {
    let mut out: Vec<ExtendedKeyUsage> = [
        (eku.server_auth, ExtendedKeyUsage::ServerAuth),
        (eku.client_auth, ExtendedKeyUsage::ClientAuth),
        (eku.code_signing, ExtendedKeyUsage::CodeSigning),
        (eku.email_protection, ExtendedKeyUsage::EmailProtection),
        (eku.time_stamping, ExtendedKeyUsage::TimeStamping),
        (eku.ocsp_signing, ExtendedKeyUsage::OcspSigning),
        (eku.any, ExtendedKeyUsage::Any),
    ]
    .into_iter()
    .filter_map(|(set, usage)| set.then_some(usage))
    .collect();
    out.extend(
        eku.other
            .iter()
            .map(|oid| ExtendedKeyUsage::Other(oid.to_id_string())),
    );
    out
}

/// The unit and token a token's client certificate names, with the certificate's details.
///
/// Reading is strict: a certificate that is not shaped like the token profile (exactly one unit
/// URI and one token URI, not a CA, clientAuth, digitalSignature) is refused with the reason,
/// because rustls's client verifier accepts certificates without EKU and ignores key usage.
/// Chain, validity and revocation are the verifier's job, not this one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientIdentity {
    pub unit: UnitCode,
    pub token: TokenSerial,
    pub certificate: CertificateInfo,
}

impl ClientIdentity {
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        Self::from_info(CertificateInfo::from_der(der)?)
    }

    /// Reads a certificate given as DER or PEM (the first `CERTIFICATE` block).
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self, IdentityError> {
        Self::from_info(CertificateInfo::from_pem_or_der(input)?)
    }

    pub fn from_info(info: CertificateInfo) -> Result<Self, IdentityError> {
        if info.is_ca {
            return Err(IdentityError::IsCa);
        }
        match &info.extended_key_usage {
            Some(list) if list.contains(&ExtendedKeyUsage::ClientAuth) => {}
            _ => return Err(IdentityError::NoClientAuth),
        }
        if let Some(ku) = &info.key_usage
            && !ku.contains(&KeyUsage::DigitalSignature)
        {
            return Err(IdentityError::NoDigitalSignature);
        }
        let unit = single_urn(&info.uris, "unit", UNIT_URN_PREFIX, UnitCode::from_urn)?;
        let token = single_urn(&info.uris, "token", TOKEN_URN_PREFIX, TokenSerial::from_urn)?;
        Ok(ClientIdentity {
            unit,
            token,
            certificate: info,
        })
    }

    /// SHA-256 of the certificate's SubjectPublicKeyInfo: what bindings go by.
    pub fn fingerprint(&self) -> SpkiFingerprint {
        self.certificate.spki_fingerprint
    }

    pub fn serial(&self) -> &CertSerial {
        &self.certificate.serial
    }
}

fn single_urn<T>(
    uris: &[String],
    what: &'static str,
    prefix: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, IdentityError> {
    let matching: Vec<&String> = uris.iter().filter(|u| u.starts_with(prefix)).collect();
    match matching.as_slice() {
        [uri] => parse(uri).ok_or_else(|| IdentityError::BadUri {
            what,
            uri: (*uri).clone(),
        }),
        other => Err(IdentityError::UriCount {
            what,
            count: other.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_modulus_bits_ignore_the_sign_octet_and_count_the_top_byte() {
        let mut modulus = vec![0u8, 0x80];
        modulus.extend([0u8; 255]);
        assert_eq!(rsa_modulus_bits(&modulus), 2048);
        let mut short = vec![0x7fu8];
        short.extend([0u8; 127]);
        assert_eq!(rsa_modulus_bits(&short), 1023);
        assert_eq!(rsa_modulus_bits(&[0, 0]), 0);
    }
}
