//! Certificate revocation lists, signed by the issuing CA. The caller keeps the revocations
//! (the admin service in its database, `ukey-ca` in its index) and the CRL number; this module
//! turns them into a signed CRL and reads CRLs back.

use crate::ca::{CertificateAuthority, whole_seconds};
use crate::encoding::{decode_pem_or_der, to_pem};
use crate::issue::rfc3339;
use crate::serial::CertSerial;
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// Why a certificate was revoked (RFC 5280 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RevocationReason {
    Unspecified,
    /// The token was lost or its key may be known to someone else.
    KeyCompromise,
    CaCompromise,
    /// The token now belongs to another unit, or the unit is gone.
    AffiliationChanged,
    /// The token was replaced by another.
    Superseded,
    /// The token is broken or retired.
    CessationOfOperation,
    /// Only read from others' CRLs: ukey revocations are permanent.
    CertificateHold,
    /// Only read from others' CRLs.
    RemoveFromCrl,
    PrivilegeWithdrawn,
    /// Only read from others' CRLs.
    AaCompromise,
}

const ALL_REASONS: [RevocationReason; 10] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::CaCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::CertificateHold,
    RevocationReason::RemoveFromCrl,
    RevocationReason::PrivilegeWithdrawn,
    RevocationReason::AaCompromise,
];

impl RevocationReason {
    /// The reasonCode value.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::RemoveFromCrl => 8,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        ALL_REASONS.into_iter().find(|r| r.code() == code)
    }

    /// The kebab-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::CaCompromise => "ca-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::CertificateHold => "certificate-hold",
            RevocationReason::RemoveFromCrl => "remove-from-crl",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
            RevocationReason::AaCompromise => "aa-compromise",
        }
    }

    /// Whether ukey may revoke for this reason (hold and its removal are not supported: a
    /// revocation is permanent; a token found again is provisioned anew).
    pub fn is_issuable(self) -> bool {
        !matches!(
            self,
            RevocationReason::CertificateHold
                | RevocationReason::RemoveFromCrl
                | RevocationReason::AaCompromise
        )
    }

    fn rcgen(self) -> Option<rcgen::RevocationReason> {
        use rcgen::RevocationReason as R;
        Some(match self {
            // RFC 5280 §5.3.1: unspecified SHOULD be expressed by leaving the code out.
            RevocationReason::Unspecified => return None,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::RemoveFromCrl => R::RemoveFromCrl,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => R::AaCompromise,
        })
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;

    /// Reads the kebab-case names, RFC 5280's camelCase names, and the words IT staff use:
    /// `lost` (key-compromise), `broken` (cessation-of-operation), `replaced` (superseded).
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        let alias = match wanted.as_str() {
            "lost" | "stolen" => Some(RevocationReason::KeyCompromise),
            "broken" | "retired" => Some(RevocationReason::CessationOfOperation),
            "replaced" => Some(RevocationReason::Superseded),
            _ => None,
        };
        let found = alias.or_else(|| {
            ALL_REASONS
                .into_iter()
                .find(|r| r.as_str().replace('-', "") == wanted)
        });
        match found {
            Some(r) if r.is_issuable() => Ok(r),
            Some(r) => Err(format!(
                "revocation reason {r} is not supported: ukey revocations are permanent"
            )),
            None => Err(format!(
                "unknown revocation reason {s:?}: use lost, broken, replaced, or one of {}",
                ALL_REASONS
                    .iter()
                    .filter(|r| r.is_issuable())
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// One revoked certificate, as the caller keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub serial: CertSerial,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// A CRL could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    #[error("nextUpdate ({next_update}) must be after thisUpdate ({this_update})")]
    NextUpdateNotAfter {
        this_update: String,
        next_update: String,
    },
    #[error("serial {0} is listed twice")]
    Duplicate(CertSerial),
    #[error("the issuing CA expired at {0}; its CRLs are no longer meaningful")]
    CaExpired(String),
    #[error("signing the CRL failed: {0}")]
    Sign(String),
    #[error("not a CRL: {0}")]
    Malformed(String),
}

/// A signed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    pub info: CrlInfo,
}

/// What a CRL says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlInfo {
    pub issuer: String,
    pub number: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_update: Option<OffsetDateTime>,
    pub entries: Vec<CrlEntry>,
}

/// One entry of a CRL read back. `reason` is None when the CRL gives no reason code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlEntry {
    pub serial: CertSerial,
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    pub reason: Option<RevocationReason>,
}

impl CertificateAuthority {
    /// Signs a CRL listing `revoked`, numbered `number` (the caller keeps it increasing), valid
    /// from `this_update` until `next_update`, by which time the next one must be published.
    pub fn crl(
        &self,
        revoked: &[Revoked],
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Crl, CrlError> {
        let this_update = whole_seconds(this_update);
        let next_update = whole_seconds(next_update);
        if next_update <= this_update {
            return Err(CrlError::NextUpdateNotAfter {
                this_update: rfc3339(this_update),
                next_update: rfc3339(next_update),
            });
        }
        if this_update >= self.issuing_info.not_after {
            return Err(CrlError::CaExpired(rfc3339(self.issuing_info.not_after)));
        }
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(revoked.len());
        for r in revoked {
            if !seen.insert(&r.serial) {
                return Err(CrlError::Duplicate(r.serial.clone()));
            }
            entries.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                revocation_time: whole_seconds(r.revoked_at),
                reason_code: r.reason.rcgen(),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: entries,
            key_identifier_method: self.key_identifier_method(),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| CrlError::Sign(e.to_string()))?;
        let der = crl.der().to_vec();
        let info = CrlInfo::from_der(&der)?;
        tracing::info!(number, entries = revoked.len(), next_update = %rfc3339(next_update), "signed CRL");
        Ok(Crl {
            pem: to_pem("X509 CRL", &der),
            der,
            info,
        })
    }

    /// The issuing CA's own subject key identifier, so the CRL's authority key identifier
    /// names it exactly.
    fn key_identifier_method(&self) -> KeyIdMethod {
        use x509_parser::extensions::ParsedExtension;
        let ski = x509_parser::certificate::X509Certificate::from_der(&self.issuing_der)
            .ok()
            .and_then(|(_, cert)| {
                cert.extensions()
                    .iter()
                    .find_map(|ext| match ext.parsed_extension() {
                        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                        _ => None,
                    })
            });
        ski.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified)
    }
}

impl CrlInfo {
    /// Reads a CRL given as DER or PEM (`X509 CRL`).
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self, CrlError> {
        let der =
            decode_pem_or_der(input, "X509 CRL").map_err(|e| CrlError::Malformed(e.to_string()))?;
        Self::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, CrlError> {
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| CrlError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CrlError::Malformed(format!(
                "{} bytes after the CRL",
                rest.len()
            )));
        }
        let number = match crl.crl_number() {
            Some(n) => {
                let bytes = n.to_bytes_be();
                if bytes.len() > 8 {
                    return Err(CrlError::Malformed("CRL number above 2^64".into()));
                }
                let mut buf = [0u8; 8];
                buf[8 - bytes.len()..].copy_from_slice(&bytes);
                Some(u64::from_be_bytes(buf))
            }
            None => None,
        };
        let mut entries = Vec::new();
        for entry in crl.iter_revoked_certificates() {
            let serial = CertSerial::from_be_bytes(entry.raw_serial())
                .map_err(|e| CrlError::Malformed(e.to_string()))?;
            entries.push(CrlEntry {
                serial,
                revoked_at: entry.revocation_date.to_datetime(),
                reason: entry
                    .reason_code()
                    .and_then(|(_, code)| RevocationReason::from_code(code.0)),
            });
        }
        Ok(CrlInfo {
            issuer: crl.issuer().to_string(),
            number,
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_the_words_it_staff_use_and_refuse_holds() {
        let parse = |s: &str| s.parse::<RevocationReason>();
        assert_eq!(parse("lost"), Ok(RevocationReason::KeyCompromise));
        assert_eq!(parse("broken"), Ok(RevocationReason::CessationOfOperation));
        assert_eq!(parse("replaced"), Ok(RevocationReason::Superseded));
        assert_eq!(parse("keyCompromise"), Ok(RevocationReason::KeyCompromise));
        assert_eq!(
            parse("affiliation-changed"),
            Ok(RevocationReason::AffiliationChanged)
        );
        assert!(parse("certificate-hold").unwrap_err().contains("permanent"));
        assert!(parse("misplaced").unwrap_err().contains("use lost, broken"));
        for r in ALL_REASONS {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        }
    }
}
