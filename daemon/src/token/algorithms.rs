//! Signature algorithms as a token makes them. Every algorithm hashes on the host and hands
//! the token only the digest, because tokens differ in which combined mechanisms they offer
//! (SoftHSM has no `CKM_ECDSA_SHA256`) but all offer the raw ones: `CKM_ECDSA` (whose raw
//! `r||s` is turned into DER here), `CKM_RSA_PKCS_PSS` and `CKM_RSA_PKCS`.

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use rustls::SignatureScheme;
use serde::Serialize;

/// An elliptic curve ukeyd can use on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The curve's OID, DER-encoded, as `CKA_EC_PARAMS` holds it.
    pub fn params_der(self) -> &'static [u8] {
        match self {
            Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Curve::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        }
    }

    pub fn from_params_der(der: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.params_der() == der)
    }

    /// Bytes of one coordinate (and of `r` and `s` in a signature).
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    pub fn bits(self) -> usize {
        self.coordinate_len() * 8
    }
}

/// What kind of key a token holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyKind {
    Ec { curve: Curve },
    Rsa { bits: usize },
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Ec { curve: Curve::P256 } => f.write_str("EC P-256"),
            KeyKind::Ec { curve: Curve::P384 } => f.write_str("EC P-384"),
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

/// A signature algorithm, hashed on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignAlgorithm {
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
}

const ALL: [SignAlgorithm; 8] = [
    SignAlgorithm::EcdsaP256Sha256,
    SignAlgorithm::EcdsaP384Sha384,
    SignAlgorithm::RsaPssSha256,
    SignAlgorithm::RsaPssSha384,
    SignAlgorithm::RsaPssSha512,
    SignAlgorithm::RsaPkcs1Sha256,
    SignAlgorithm::RsaPkcs1Sha384,
    SignAlgorithm::RsaPkcs1Sha512,
];

/// DigestInfo prefixes (RFC 8017 §9.2, note 1) for PKCS#1 v1.5 over `CKM_RSA_PKCS`.
const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const SHA384_PREFIX: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
const SHA512_PREFIX: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

impl SignAlgorithm {
    /// The mechanism the token must offer.
    pub fn mechanism_type(self) -> MechanismType {
        match self {
            SignAlgorithm::EcdsaP256Sha256 | SignAlgorithm::EcdsaP384Sha384 => MechanismType::ECDSA,
            SignAlgorithm::RsaPssSha256
            | SignAlgorithm::RsaPssSha384
            | SignAlgorithm::RsaPssSha512 => MechanismType::RSA_PKCS_PSS,
            SignAlgorithm::RsaPkcs1Sha256
            | SignAlgorithm::RsaPkcs1Sha384
            | SignAlgorithm::RsaPkcs1Sha512 => MechanismType::RSA_PKCS,
        }
    }

    fn digest(self) -> &'static ring::digest::Algorithm {
        match self {
            SignAlgorithm::EcdsaP256Sha256
            | SignAlgorithm::RsaPssSha256
            | SignAlgorithm::RsaPkcs1Sha256 => &ring::digest::SHA256,
            SignAlgorithm::EcdsaP384Sha384
            | SignAlgorithm::RsaPssSha384
            | SignAlgorithm::RsaPkcs1Sha384 => &ring::digest::SHA384,
            SignAlgorithm::RsaPssSha512 | SignAlgorithm::RsaPkcs1Sha512 => &ring::digest::SHA512,
        }
    }

    /// Whether a key of this kind can make this algorithm.
    pub fn fits(self, kind: KeyKind) -> bool {
        match (self, kind) {
            (SignAlgorithm::EcdsaP256Sha256, KeyKind::Ec { curve }) => curve == Curve::P256,
            (SignAlgorithm::EcdsaP384Sha384, KeyKind::Ec { curve }) => curve == Curve::P384,
            (SignAlgorithm::EcdsaP256Sha256 | SignAlgorithm::EcdsaP384Sha384, _) => false,
            (_, KeyKind::Rsa { bits }) => bits >= 2048,
            (_, KeyKind::Ec { .. }) => false,
        }
    }

    /// Every algorithm a key of `kind` can make with the given mechanisms, best first.
    pub fn for_key(kind: KeyKind, mechanisms: &[MechanismType]) -> Vec<SignAlgorithm> {
        ALL.into_iter()
            .filter(|a| a.fits(kind) && mechanisms.contains(&a.mechanism_type()))
            .collect()
    }

    /// The TLS signature scheme this algorithm makes.
    pub fn tls_scheme(self) -> SignatureScheme {
        match self {
            SignAlgorithm::EcdsaP256Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            SignAlgorithm::EcdsaP384Sha384 => SignatureScheme::ECDSA_NISTP384_SHA384,
            SignAlgorithm::RsaPssSha256 => SignatureScheme::RSA_PSS_SHA256,
            SignAlgorithm::RsaPssSha384 => SignatureScheme::RSA_PSS_SHA384,
            SignAlgorithm::RsaPssSha512 => SignatureScheme::RSA_PSS_SHA512,
            SignAlgorithm::RsaPkcs1Sha256 => SignatureScheme::RSA_PKCS1_SHA256,
            SignAlgorithm::RsaPkcs1Sha384 => SignatureScheme::RSA_PKCS1_SHA384,
            SignAlgorithm::RsaPkcs1Sha512 => SignatureScheme::RSA_PKCS1_SHA512,
        }
    }

    pub fn from_tls_scheme(scheme: SignatureScheme) -> Option<SignAlgorithm> {
        ALL.into_iter().find(|a| a.tls_scheme() == scheme)
    }

    /// The mechanism and the bytes to hand the token for `message`.
    pub(crate) fn prepare(self, message: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
        let digest = ring::digest::digest(self.digest(), message);
        let digest = digest.as_ref();
        // Salt as long as the hash, as TLS 1.3 requires (RFC 8446 §4.2.3).
        let pss = |hash_alg, mgf, len: u64| {
            Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg,
                mgf,
                s_len: len.into(),
            })
        };
        match self {
            SignAlgorithm::EcdsaP256Sha256 | SignAlgorithm::EcdsaP384Sha384 => {
                (Mechanism::Ecdsa, digest.to_vec())
            }
            SignAlgorithm::RsaPssSha256 => (
                pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
                digest.to_vec(),
            ),
            SignAlgorithm::RsaPssSha384 => (
                pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
                digest.to_vec(),
            ),
            SignAlgorithm::RsaPssSha512 => (
                pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
                digest.to_vec(),
            ),
            SignAlgorithm::RsaPkcs1Sha256 => (Mechanism::RsaPkcs, [SHA256_PREFIX, digest].concat()),
            SignAlgorithm::RsaPkcs1Sha384 => (Mechanism::RsaPkcs, [SHA384_PREFIX, digest].concat()),
            SignAlgorithm::RsaPkcs1Sha512 => (Mechanism::RsaPkcs, [SHA512_PREFIX, digest].concat()),
        }
    }

    /// Turns what the token returned into the standard encoding (DER for ECDSA).
    pub(crate) fn finish(self, raw: Vec<u8>) -> Result<Vec<u8>, String> {
        match self {
            SignAlgorithm::EcdsaP256Sha256 => ecdsa_raw_to_der(&raw, 32),
            SignAlgorithm::EcdsaP384Sha384 => ecdsa_raw_to_der(&raw, 48),
            _ => Ok(raw),
        }
    }
}

/// `r||s` (each `n` bytes) → `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn ecdsa_raw_to_der(raw: &[u8], n: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * n {
        return Err(format!(
            "ECDSA signature of {} bytes where {} were expected",
            raw.len(),
            2 * n
        ));
    }
    let (r, s) = raw.split_at(n);
    let body = [der::unsigned_integer(r), der::unsigned_integer(s)].concat();
    Ok(der::tlv(0x30, &body))
}

/// Minimal DER writing for the few structures ukeyd builds itself.
pub(crate) mod der {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// A non-negative INTEGER from big-endian bytes.
    pub fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
            Some(i) => &bytes[i..],
            None => &[0],
        };
        let mut content = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(trimmed);
        tlv(0x02, &content)
    }

    /// The value of a DER element with the expected tag, if `der` is exactly one such element.
    pub fn read_tlv(der: &[u8], tag: u8) -> Option<&[u8]> {
        let (&t, rest) = der.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() == len).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };

    #[test]
    fn a_raw_ecdsa_signature_becomes_der_that_ring_verifies() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        for i in 0..32u8 {
            let msg = [i; 40];
            let raw = key.sign(&rng, &msg).unwrap();
            let der = ecdsa_raw_to_der(raw.as_ref(), 32).unwrap();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref())
                .verify(&msg, &der)
                .unwrap();
        }
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(der::unsigned_integer(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(der::unsigned_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der::unsigned_integer(&[0, 0]), vec![2, 1, 0]);
        assert!(ecdsa_raw_to_der(&[1; 63], 32).is_err());
    }

    #[test]
    fn long_lengths_round_trip() {
        let content = vec![7u8; 300];
        let der = der::tlv(0x04, &content);
        assert_eq!(&der[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der::read_tlv(&der, 0x04), Some(&content[..]));
    }

    #[test]
    fn only_the_schemes_a_key_and_its_mechanisms_can_make_are_offered() {
        let rsa = KeyKind::Rsa { bits: 2048 };
        let without_pss = SignAlgorithm::for_key(rsa, &[MechanismType::RSA_PKCS]);
        assert!(
            without_pss
                .iter()
                .all(|a| a.mechanism_type() == MechanismType::RSA_PKCS)
        );
        let ec = KeyKind::Ec { curve: Curve::P256 };
        assert_eq!(
            SignAlgorithm::for_key(ec, &[MechanismType::ECDSA, MechanismType::RSA_PKCS]),
            vec![SignAlgorithm::EcdsaP256Sha256]
        );
        assert!(SignAlgorithm::for_key(ec, &[MechanismType::RSA_PKCS]).is_empty());
    }
}
