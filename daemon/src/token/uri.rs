//! PKCS#11 URIs (RFC 7512), e.g. `pkcs11:serial=81811617;id=%01;type=private`, the way
//! OpenSSL, GnuTLS and p11-kit name a token and an object on it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;
use std::str::FromStr;

/// A malformed PKCS#11 URI, naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("PKCS#11 URI must start with \"pkcs11:\": {0:?}")]
    Scheme(String),
    #[error("PKCS#11 URI attribute {0:?} has no '='")]
    NoValue(String),
    #[error("PKCS#11 URI attribute {0:?} is given twice")]
    Duplicate(String),
    #[error(
        "PKCS#11 URI attribute {0:?} is not one ukeyd understands (RFC 7512 path attributes: token, manufacturer, serial, model, library-*, slot-*, id, object, type)"
    )]
    Unknown(String),
    #[error("PKCS#11 URI attribute {0} is not valid UTF-8 after percent-decoding")]
    Utf8(String),
    #[error("PKCS#11 URI type {0:?} must be one of private, public, cert, secret-key, data")]
    Type(String),
}

/// Which kind of object a URI names (`type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Private,
    Public,
    Cert,
    SecretKey,
    Data,
}

impl ObjectType {
    fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }
}

/// The parts of a PKCS#11 URI ukeyd selects by. Attributes it does not need for selection
/// (library and slot attributes) are parsed and ignored, as the RFC allows; a `pin-value`
/// is never kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token label.
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    /// `id=`: `CKA_ID`, raw bytes.
    pub id: Option<Vec<u8>>,
    /// `object=`: `CKA_LABEL`.
    pub object: Option<String>,
    pub object_type: Option<ObjectType>,
    /// `module-path=` from the query.
    pub module_path: Option<String>,
}

const PATH_KNOWN_IGNORED: &[&str] = &[
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-manufacturer",
    "slot-description",
    "slot-id",
];

impl FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        let rest = s
            .strip_prefix("pkcs11:")
            .ok_or_else(|| UriError::Scheme(s.to_owned()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        let mut seen = Vec::new();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, raw) = attr
                .split_once('=')
                .ok_or_else(|| UriError::NoValue(attr.to_owned()))?;
            if seen.contains(&name) {
                return Err(UriError::Duplicate(name.to_owned()));
            }
            seen.push(name);
            let text = || decode_text(name, raw);
            match name {
                "token" => uri.token = Some(text()?),
                "manufacturer" => uri.manufacturer = Some(text()?),
                "serial" => uri.serial = Some(text()?),
                "model" => uri.model = Some(text()?),
                "object" => uri.object = Some(text()?),
                "id" => uri.id = Some(percent_decode_str(raw).collect()),
                "type" => {
                    uri.object_type = Some(match text()?.as_str() {
                        "private" => ObjectType::Private,
                        "public" => ObjectType::Public,
                        "cert" => ObjectType::Cert,
                        "secret-key" => ObjectType::SecretKey,
                        "data" => ObjectType::Data,
                        other => return Err(UriError::Type(other.to_owned())),
                    })
                }
                n if PATH_KNOWN_IGNORED.contains(&n) || n.starts_with("x-") => {}
                other => return Err(UriError::Unknown(other.to_owned())),
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            if let Some(("module-path", raw)) = attr.split_once('=') {
                uri.module_path = Some(decode_text("module-path", raw)?);
            }
            // pin-value, pin-source, module-name and vendor attributes are not kept: PINs come
            // from the user, never from a URI in a configuration file.
        }
        Ok(uri)
    }
}

fn decode_text(name: &str, raw: &str) -> Result<String, UriError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| UriError::Utf8(name.to_owned()))
}

/// RFC 7512 `pchar` minus the characters it reserves in values.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'[')
    .remove(b']')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b'=');

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut text = |name: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{name}={}", utf8_percent_encode(v, VALUE)));
            }
        };
        text("token", &self.token);
        text("manufacturer", &self.manufacturer);
        text("serial", &self.serial);
        text("model", &self.model);
        text("object", &self.object);
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02X}")).collect();
            parts.push(format!("id={hex}"));
        }
        if let Some(t) = self.object_type {
            parts.push(format!("type={}", t.as_str()));
        }
        write!(f, "pkcs11:{}", parts.join(";"))?;
        if let Some(m) = &self.module_path {
            write!(f, "?module-path={}", utf8_percent_encode(m, VALUE))?;
        }
        Ok(())
    }
}

impl Pkcs11Uri {
    /// A URI naming the object with `id` on the token with `serial`.
    pub fn for_key(serial: &str, id: &[u8]) -> Pkcs11Uri {
        Pkcs11Uri {
            serial: Some(serial.to_owned()),
            id: Some(id.to_vec()),
            ..Pkcs11Uri::default()
        }
    }

    /// Whether the token attributes of this URI match a token.
    pub fn matches_token(
        &self,
        label: &str,
        manufacturer: &str,
        serial: &str,
        model: &str,
    ) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.token, label)
            && ok(&self.manufacturer, manufacturer)
            && ok(&self.serial, serial)
            && ok(&self.model, model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_with_serial_and_binary_id_parses_and_prints_back() {
        let uri: Pkcs11Uri = "pkcs11:serial=81811617;id=%01;type=private"
            .parse()
            .unwrap();
        assert_eq!(uri.serial.as_deref(), Some("81811617"));
        assert_eq!(uri.id.as_deref(), Some(&[1u8][..]));
        assert_eq!(uri.object_type, Some(ObjectType::Private));
        assert_eq!(
            uri.to_string(),
            "pkcs11:serial=81811617;id=%01;type=private"
        );
    }

    #[test]
    fn labels_with_spaces_and_non_ascii_round_trip() {
        let uri: Pkcs11Uri = "pkcs11:token=YubiKey%20PIV%20%2381811617;object=%E8%AE%A4%E8%AF%81"
            .parse()
            .unwrap();
        assert_eq!(uri.token.as_deref(), Some("YubiKey PIV #81811617"));
        assert_eq!(uri.object.as_deref(), Some("认证"));
        assert_eq!(uri.to_string().parse::<Pkcs11Uri>().unwrap(), uri);
    }

    #[test]
    fn pin_values_in_the_query_are_not_kept() {
        let uri: Pkcs11Uri = "pkcs11:serial=1?pin-value=123456&module-path=/usr/lib/x.so"
            .parse()
            .unwrap();
        assert_eq!(uri.module_path.as_deref(), Some("/usr/lib/x.so"));
        assert!(!format!("{uri:?}").contains("123456"));
    }

    #[test]
    fn malformed_uris_are_refused_with_the_reason() {
        assert!(matches!(
            "serial=1".parse::<Pkcs11Uri>(),
            Err(UriError::Scheme(_))
        ));
        assert!(matches!(
            "pkcs11:serial".parse::<Pkcs11Uri>(),
            Err(UriError::NoValue(_))
        ));
        assert!(matches!(
            "pkcs11:serial=1;serial=2".parse::<Pkcs11Uri>(),
            Err(UriError::Duplicate(_))
        ));
        assert!(matches!(
            "pkcs11:colour=red".parse::<Pkcs11Uri>(),
            Err(UriError::Unknown(_))
        ));
        assert!(matches!(
            "pkcs11:type=key".parse::<Pkcs11Uri>(),
            Err(UriError::Type(_))
        ));
        assert!("pkcs11:x-vendor=1;slot-id=3".parse::<Pkcs11Uri>().is_ok());
    }
}
