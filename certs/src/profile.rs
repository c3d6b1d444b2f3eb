//! Certificate profiles: what the CA puts in a certificate is decided here, never by the
//! requester.

use crate::ca::{MAX_NAME_CHARS, check_name};
use crate::keys::KeyAlgorithm;
use std::net::IpAddr;
use ukey_proto::{TokenSerial, UnitCode};

/// Validity of a token certificate unless told otherwise: two years.
pub const DEFAULT_TOKEN_DAYS: u32 = 730;

/// Validity of a server certificate unless told otherwise: 397 days, the most browsers accept,
/// since the admin console may be opened in a browser.
pub const DEFAULT_SERVER_DAYS: u32 = 397;

/// The longest validity any profile accepts (about 30 years): a typo guard, not a policy.
pub const MAX_DAYS: u32 = 11_000;

/// A profile that cannot be issued, naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("a server certificate needs at least one DNS name or IP address")]
    NoNames,
    #[error(
        "{0:?} is not a DNS name (letters, digits and '-' in dot-separated labels; no wildcards)"
    )]
    DnsName(String),
    #[error("validity of {0} days is outside 1..={MAX_DAYS}")]
    Days(u32),
    #[error("CRL distribution point {0:?} must be an http:// or https:// URL in ASCII")]
    CrlUrl(String),
    #[error("{0}")]
    Name(String),
}

/// A token's client certificate: clientAuth, digitalSignature, SAN `URI:urn:ukey:unit:<code>`
/// and `URI:urn:ukey:token:<serial>`, subject O = the unit's full name, CN = "<code> <serial>".
/// The key comes from the token's CSR; nothing else does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenProfile {
    pub unit: UnitCode,
    /// The unit's full name (e.g. 中共太极集团有限公司委员会), written as organizationName.
    pub unit_name: String,
    pub token: TokenSerial,
    pub validity_days: u32,
    /// URLs where relying parties fetch the CRL, written into the certificate.
    pub crl_distribution_points: Vec<String>,
}

impl TokenProfile {
    pub fn new(unit: UnitCode, unit_name: impl Into<String>, token: TokenSerial) -> Self {
        TokenProfile {
            unit,
            unit_name: unit_name.into(),
            token,
            validity_days: DEFAULT_TOKEN_DAYS,
            crl_distribution_points: Vec::new(),
        }
    }

    pub(crate) fn common_name(&self) -> String {
        format!("{} {}", self.unit, self.token)
    }

    pub(crate) fn validate(&self) -> Result<(), ProfileError> {
        check_name("unit name", &self.unit_name).map_err(ProfileError::Name)?;
        let cn = self.common_name();
        if cn.chars().count() > MAX_NAME_CHARS {
            return Err(ProfileError::Name(format!(
                "unit code and token serial together ({cn:?}) exceed the {MAX_NAME_CHARS} \
                 characters a commonName allows"
            )));
        }
        check_days(self.validity_days)?;
        check_crl_urls(&self.crl_distribution_points)
    }
}

/// A TLS server certificate (the admin service): SAN DNS/IP, serverAuth, digitalSignature.
/// The CA generates the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProfile {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub validity_days: u32,
    pub key_algorithm: KeyAlgorithm,
    /// URLs where relying parties fetch the CRL, written into the certificate.
    pub crl_distribution_points: Vec<String>,
}

impl ServerProfile {
    pub fn new(dns_names: Vec<String>, ip_addresses: Vec<IpAddr>) -> Self {
        ServerProfile {
            dns_names,
            ip_addresses,
            validity_days: DEFAULT_SERVER_DAYS,
            key_algorithm: KeyAlgorithm::EcP256,
            crl_distribution_points: Vec::new(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ProfileError> {
        if self.dns_names.is_empty() && self.ip_addresses.is_empty() {
            return Err(ProfileError::NoNames);
        }
        for name in &self.dns_names {
            check_dns_name(name)?;
        }
        check_days(self.validity_days)?;
        check_crl_urls(&self.crl_distribution_points)
    }

    /// The name the subject's commonName carries: the first DNS name, else the first address.
    pub(crate) fn common_name(&self) -> String {
        self.dns_names
            .first()
            .cloned()
            .or_else(|| self.ip_addresses.first().map(IpAddr::to_string))
            .unwrap_or_default()
    }
}

pub(crate) fn check_days(days: u32) -> Result<(), ProfileError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ProfileError::Days(days))
    }
}

pub(crate) fn check_crl_urls(urls: &[String]) -> Result<(), ProfileError> {
    for url in urls {
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() > "https://".len()
            && url.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(ProfileError::CrlUrl(url.clone()));
        }
    }
    Ok(())
}

fn check_dns_name(name: &str) -> Result<(), ProfileError> {
    let bad = || ProfileError::DnsName(name.to_owned());
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_profiles_check_the_unit_name_and_the_common_name_length() {
        let unit = UnitCode::parse("01").unwrap();
        let token = TokenSerial::parse("a1b2").unwrap();
        let ok = TokenProfile::new(unit.clone(), "中共太极集团有限公司委员会", token.clone());
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.common_name(), "01 a1b2");
        assert_eq!(ok.validity_days, 730);
        let empty = TokenProfile::new(unit.clone(), " ", token.clone());
        assert!(matches!(empty.validate(), Err(ProfileError::Name(m)) if m.contains("empty")));
        let control = TokenProfile::new(unit, "a\nb", token);
        assert!(matches!(control.validate(), Err(ProfileError::Name(m)) if m.contains("control")));
        let long = TokenProfile::new(
            UnitCode::parse(&"u".repeat(40)).unwrap(),
            "x",
            TokenSerial::parse(&"s".repeat(40)).unwrap(),
        );
        assert!(matches!(long.validate(), Err(ProfileError::Name(m)) if m.contains("commonName")));
    }

    #[test]
    fn server_names_are_checked_before_anything_is_signed() {
        let ok = ServerProfile::new(vec!["admin.example.cn".into(), "localhost".into()], vec![]);
        assert_eq!(ok.validate(), Ok(()));
        let none = ServerProfile::new(vec![], vec![]);
        assert_eq!(none.validate(), Err(ProfileError::NoNames));
        for bad in ["*.example.cn", "a..b", "-a.cn", "exa mple.cn", "例子.cn"] {
            let p = ServerProfile::new(vec![bad.into()], vec![]);
            assert_eq!(
                p.validate(),
                Err(ProfileError::DnsName(bad.into())),
                "{bad}"
            );
        }
        let mut days = ServerProfile::new(vec!["a.cn".into()], vec![]);
        days.validity_days = 0;
        assert_eq!(days.validate(), Err(ProfileError::Days(0)));
        days.validity_days = 397;
        days.crl_distribution_points = vec!["ftp://x/crl".into()];
        assert!(matches!(days.validate(), Err(ProfileError::CrlUrl(_))));
    }
}
