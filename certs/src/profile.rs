//! Certificate profiles: what the CA puts in a certificate is decided here, never by the
//! requester.

use crate::keys::KeyAlgorithm;
use std::net::IpAddr;

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
