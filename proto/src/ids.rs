//! Identifiers shared by the daemon, the admin service and the certificates.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A malformed identifier, naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("unit code {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'")]
    UnitCode(String),
    #[error("token serial {0:?} must be 1 to 64 printable ASCII characters without spaces")]
    TokenSerial(String),
    #[error("fingerprint {0:?} must be 64 hexadecimal digits (SHA-256)")]
    Fingerprint(String),
}

/// The code of an organisation unit, e.g. the seed's 简码 `01`. Codes appear in certificate
/// URIs (`urn:ukey:unit:<code>`), so they are restricted to URI-safe ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct UnitCode(String);

impl UnitCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(UnitCode(s.to_owned()))
        } else {
            Err(IdError::UnitCode(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI naming this unit in a token certificate's subjectAltName.
    pub fn urn(&self) -> String {
        format!("{}{}", UNIT_URN_PREFIX, self.0)
    }

    /// Reads a unit code back out of a certificate URI.
    pub fn from_urn(uri: &str) -> Option<Self> {
        uri.strip_prefix(UNIT_URN_PREFIX)
            .and_then(|c| Self::parse(c).ok())
    }
}

pub const UNIT_URN_PREFIX: &str = "urn:ukey:unit:";
pub const TOKEN_URN_PREFIX: &str = "urn:ukey:token:";

/// The serial number a token reports through PKCS#11 (`CK_TOKEN_INFO.serialNumber`), with the
/// blank padding removed. Tokens are identified by serial, never by slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct TokenSerial(String);

impl TokenSerial {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let t = s.trim_matches(|c: char| c == ' ' || c == '\0');
        if !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(TokenSerial(t.to_owned()))
        } else {
            Err(IdError::TokenSerial(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI naming this token in its certificate's subjectAltName.
    pub fn urn(&self) -> String {
        format!("{}{}", TOKEN_URN_PREFIX, self.0)
    }

    pub fn from_urn(uri: &str) -> Option<Self> {
        uri.strip_prefix(TOKEN_URN_PREFIX)
            .and_then(|c| Self::parse(c).ok())
    }
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER). Tokens are bound by this, never by
/// subject: a certificate re-issued for the same key keeps its binding, and a look-alike
/// subject on another key gets nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct SpkiFingerprint([u8; 32]);

impl SpkiFingerprint {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SpkiFingerprint(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, with or without `:` separators on input.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let digits: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
        let err = || IdError::Fingerprint(s.to_owned());
        if digits.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(err)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(err)?;
            out[i] = u8::try_from(hi * 16 + lo).map_err(|_| err())?;
        }
        Ok(SpkiFingerprint(out))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

macro_rules! string_conversions {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl std::str::FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}
string_conversions!(UnitCode);
string_conversions!(TokenSerial);
string_conversions!(SpkiFingerprint);

impl From<UnitCode> for String {
    fn from(v: UnitCode) -> String {
        v.0
    }
}
impl From<TokenSerial> for String {
    fn from(v: TokenSerial) -> String {
        v.0
    }
}
impl From<SpkiFingerprint> for String {
    fn from(v: SpkiFingerprint) -> String {
        v.to_hex()
    }
}
impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for TokenSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for SpkiFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_codes_round_trip_through_their_urn() {
        let code = UnitCode::parse("01").unwrap();
        assert_eq!(code.urn(), "urn:ukey:unit:01");
        assert_eq!(UnitCode::from_urn("urn:ukey:unit:01"), Some(code));
        assert!(UnitCode::parse("a b").is_err());
        assert!(UnitCode::parse("").is_err());
        assert!(UnitCode::from_urn("urn:ukey:unit:../x").is_none());
    }

    #[test]
    fn token_serials_lose_pkcs11_padding() {
        assert_eq!(
            TokenSerial::parse("1a2b3c4d        ").unwrap().as_str(),
            "1a2b3c4d"
        );
        assert!(TokenSerial::parse("   ").is_err());
    }

    #[test]
    fn fingerprints_parse_hex_with_or_without_colons() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let fp = SpkiFingerprint::parse(hex).unwrap();
        assert_eq!(fp.to_hex(), hex);
        let colons: Vec<String> = fp.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(SpkiFingerprint::parse(&colons.join(":")).unwrap(), fp);
        assert!(SpkiFingerprint::parse("xyz").is_err());
        assert!(SpkiFingerprint::parse(&"g".repeat(64)).is_err());
    }
}
