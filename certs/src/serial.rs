//! Certificate serial numbers: positive integers of at most 20 octets (RFC 5280 §4.1.2.2),
//! written as lowercase hex without separators, and read back with or without `:`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A serial number that is not a hexadecimal positive integer of at most 20 octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    #[error("serial number {0:?} must be hexadecimal digits (':' separators allowed)")]
    NotHex(String),
    #[error("serial number {0:?} is longer than the 20 octets RFC 5280 allows")]
    TooLong(String),
    #[error("serial number must not be empty")]
    Empty,
}

/// A certificate serial number, kept as its big-endian magnitude without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertSerial(Vec<u8>);

impl CertSerial {
    /// From big-endian bytes, as found in a certificate (a DER sign octet is dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        let magnitude = bytes.get(start..).unwrap_or_default();
        if magnitude.is_empty() {
            return Err(SerialError::Empty);
        }
        if magnitude.len() > 20 {
            return Err(SerialError::TooLong(hex::encode(bytes)));
        }
        Ok(CertSerial(magnitude.to_vec()))
    }

    /// From hex, in either case, with or without `:` separators (`openssl x509 -serial` and
    /// `openssl crl -text` print uppercase).
    pub fn parse(s: &str) -> Result<Self, SerialError> {
        let digits: String = s
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if digits.is_empty() {
            return Err(SerialError::Empty);
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes = hex::decode(&padded).map_err(|_| SerialError::NotHex(s.to_owned()))?;
        Self::from_be_bytes(&bytes).map_err(|e| match e {
            SerialError::TooLong(_) => SerialError::TooLong(s.to_owned()),
            other => other,
        })
    }

    /// The magnitude, big-endian, without leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

/// A random positive serial of 128 bits (RFC 5280 asks for at most 20 octets; CA/Browser
/// Forum practice for at least 64 bits of randomness, so serials cannot be predicted).
pub(crate) fn random_serial() -> Result<CertSerial, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = [0u8; 16];
    // An all-zero draw would make serial 0, which RFC 5280 forbids; draw again.
    while bytes.iter().all(|b| *b == 0) {
        rng.fill(&mut bytes)?;
    }
    CertSerial::from_be_bytes(&bytes).map_err(|_| ring::error::Unspecified)
}

impl fmt::Display for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for CertSerial {
    type Err = SerialError;
    fn from_str(s: &str) -> Result<Self, SerialError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CertSerial {
    type Error = SerialError;
    fn try_from(s: String) -> Result<Self, SerialError> {
        Self::parse(&s)
    }
}

impl From<CertSerial> for String {
    fn from(s: CertSerial) -> String {
        s.to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_read_openssl_and_colon_forms_and_drop_the_sign_octet() {
        let a = CertSerial::parse("00:AB:cd:01").unwrap();
        assert_eq!(a.to_hex(), "abcd01");
        assert_eq!(CertSerial::parse("ABCD01").unwrap(), a);
        assert_eq!(CertSerial::from_be_bytes(&[0, 0xab, 0xcd, 1]).unwrap(), a);
        assert_eq!(CertSerial::parse("1").unwrap().to_hex(), "01");
    }

    #[test]
    fn random_serials_differ_and_fit_in_sixteen_octets() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_ne!(a, b);
        assert!(a.as_bytes().len() <= 16 && !a.as_bytes().is_empty());
    }

    #[test]
    fn bad_serials_are_refused_with_the_reason() {
        assert!(matches!(
            CertSerial::parse("xyz"),
            Err(SerialError::NotHex(_))
        ));
        assert!(matches!(CertSerial::parse(""), Err(SerialError::Empty)));
        assert!(matches!(
            CertSerial::parse(&"ab".repeat(21)),
            Err(SerialError::TooLong(_))
        ));
        assert_eq!(CertSerial::parse("00").unwrap().to_hex(), "00");
    }
}
