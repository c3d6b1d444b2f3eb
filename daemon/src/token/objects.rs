//! What a token holds: keys (paired with their public halves by `CKA_ID`) and certificates,
//! read the way IT staff and the TLS layer need them.

use crate::token::algorithms::der;
use crate::token::algorithms::{Curve, KeyKind, SignAlgorithm};
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

fn hex_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// A public key as the token or its certificate gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicKey {
    pub kind: KeyKind,
    /// The subjectPublicKey bits: the uncompressed EC point, or the DER RSAPublicKey.
    #[serde(skip)]
    pub raw: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    #[serde(skip)]
    pub spki_der: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo: what the admin service binds tokens by.
    pub spki_sha256: SpkiFingerprint,
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

impl PublicKey {
    /// From `CKA_EC_PARAMS` and `CKA_EC_POINT` (a DER OCTET STRING around the point, or the
    /// bare point, as some modules return it).
    pub fn from_ec(params: &[u8], point: &[u8]) -> Option<PublicKey> {
        let curve = Curve::from_params_der(params)?;
        let len = 1 + 2 * curve.coordinate_len();
        let raw = if point.len() == len && point[0] == 0x04 {
            point
        } else {
            der::read_tlv(point, 0x04).filter(|p| p.len() == len && p[0] == 0x04)?
        };
        let algorithm = der::tlv(0x30, &[OID_EC_PUBLIC_KEY, curve.params_der()].concat());
        Some(Self::build(KeyKind::Ec { curve }, raw.to_vec(), &algorithm))
    }

    /// From `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`.
    pub fn from_rsa(modulus: &[u8], exponent: &[u8]) -> Option<PublicKey> {
        let bits = significant_bits(modulus);
        if bits == 0 || exponent.is_empty() {
            return None;
        }
        let raw = der::tlv(
            0x30,
            &[
                der::unsigned_integer(modulus),
                der::unsigned_integer(exponent),
            ]
            .concat(),
        );
        let algorithm = der::tlv(0x30, &[OID_RSA_ENCRYPTION, &[0x05, 0x00]].concat());
        Some(Self::build(KeyKind::Rsa { bits }, raw, &algorithm))
    }

    /// From a certificate's DER SubjectPublicKeyInfo.
    pub fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<PublicKey> {
        let raw = spki.subject_public_key.data.to_vec();
        let kind = match spki.parsed().ok()? {
            x509_parser::public_key::PublicKey::RSA(rsa) => KeyKind::Rsa {
                bits: significant_bits(rsa.modulus),
            },
            x509_parser::public_key::PublicKey::EC(_) => {
                let params = spki.algorithm.parameters.as_ref()?;
                let oid = params.as_oid().ok()?;
                let der_oid = der::tlv(0x06, oid.as_bytes());
                KeyKind::Ec {
                    curve: Curve::from_params_der(&der_oid)?,
                }
            }
            _ => return None,
        };
        Some(PublicKey {
            kind,
            raw,
            spki_der: spki.raw.to_vec(),
            spki_sha256: sha256_fingerprint(spki.raw),
        })
    }

    fn build(kind: KeyKind, raw: Vec<u8>, algorithm: &[u8]) -> PublicKey {
        let mut bits = vec![0u8];
        bits.extend_from_slice(&raw);
        let spki_der = der::tlv(0x30, &[algorithm, &der::tlv(0x03, &bits)].concat());
        PublicKey {
            kind,
            raw,
            spki_sha256: sha256_fingerprint(&spki_der),
            spki_der,
        }
    }
}

fn sha256_fingerprint(der: &[u8]) -> SpkiFingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    SpkiFingerprint::from_bytes(out)
}

fn significant_bits(be: &[u8]) -> usize {
    match be.iter().position(|b| *b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

/// A key on a token: its private half (when visible: after login for private keys) and its
/// public half, paired by `CKA_ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    pub label: String,
    pub kind: Option<KeyKind>,
    pub has_private: bool,
    pub can_sign: bool,
    /// `CKA_ALWAYS_AUTHENTICATE`: the PIN is needed for every signature.
    pub always_authenticate: bool,
    /// `CKA_LOCAL`: generated on the token.
    pub local: Option<bool>,
    /// `CKA_EXTRACTABLE` of the private key: it can leave the token (wrapped).
    pub extractable: Option<bool>,
    pub sensitive: Option<bool>,
    pub public_key: Option<PublicKey>,
    /// What this key can sign with on this token (key kind and the module's mechanisms).
    pub algorithms: Vec<SignAlgorithm>,
}

/// What ukeyd reads out of a token's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertDetails {
    pub subject: String,
    pub issuer: String,
    /// Serial number in hex.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The unit from the `urn:ukey:unit:<code>` subjectAltName, when present.
    pub unit: Option<UnitCode>,
    /// The token from the `urn:ukey:token:<serial>` subjectAltName, when present.
    pub token: Option<TokenSerial>,
    pub public_key: Option<PublicKey>,
}

impl CertDetails {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertDetails, String> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let time = |t: &x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp())
                .map_err(|e| format!("certificate time out of range: {e}"))
        };
        let mut unit = None;
        let mut token = None;
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name {
                    unit = unit.or_else(|| UnitCode::from_urn(uri));
                    token = token.or_else(|| TokenSerial::from_urn(uri));
                }
            }
        }
        Ok(CertDetails {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: time(&cert.validity().not_before)?,
            not_after: time(&cert.validity().not_after)?,
            unit,
            token,
            public_key: PublicKey::from_spki(cert.public_key()),
        })
    }

    /// Whether the certificate is valid at `now`.
    pub fn valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// A certificate object on a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    pub label: String,
    #[serde(skip)]
    pub der: Vec<u8>,
    /// The parsed certificate, or why it could not be parsed.
    pub details: Result<CertDetails, String>,
}

/// Everything visible on a token (private keys only after login).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenObjects {
    pub keys: Vec<KeyInfo>,
    pub certificates: Vec<CertInfo>,
}

impl TokenObjects {
    /// The certificate with the same `CKA_ID` as a key.
    pub fn certificate_for(&self, id: &[u8]) -> Option<&CertInfo> {
        self.certificates.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p256_point_gives_the_same_spki_as_rcgen() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = rcgen::PublicKeyData::der_bytes(&key).to_vec();
        let wrapped = der::tlv(0x04, &raw);
        let ours = PublicKey::from_ec(Curve::P256.params_der(), &wrapped).unwrap();
        assert_eq!(
            ours.spki_der,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        let bare = PublicKey::from_ec(Curve::P256.params_der(), &raw).unwrap();
        assert_eq!(bare, ours);
    }

    #[test]
    fn a_certificates_unit_and_validity_are_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.subject_alt_names = vec![
            rcgen::SanType::URI("urn:ukey:unit:01".try_into().unwrap()),
            rcgen::SanType::URI("urn:ukey:token:abc".try_into().unwrap()),
        ];
        let cert = params.self_signed(&key).unwrap();
        let details = CertDetails::parse(cert.der()).unwrap();
        assert_eq!(details.unit.as_ref().unwrap().as_str(), "01");
        assert_eq!(details.token.as_ref().unwrap().as_str(), "abc");
        assert!(details.valid_at(OffsetDateTime::now_utc()));
        let pk = details.public_key.clone().unwrap();
        assert_eq!(pk.kind, KeyKind::Ec { curve: Curve::P256 });
        assert_eq!(
            pk.spki_der,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        assert!(CertDetails::parse(b"junk").is_err());
    }
}
