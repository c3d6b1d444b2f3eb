//! Issuing certificates from the CA's issuing key.

use crate::ca::{BACKDATE, CaError, CertificateAuthority, new_serial, whole_seconds};
use crate::csr::{CheckedCsr, CsrError};
use crate::encoding::to_pem;
use crate::identity::{CertificateInfo, ClientIdentity};
use crate::keys::{self, KeyAlgorithm, KeyError};
use crate::profile::{ProfileError, ServerProfile, TokenProfile};
use rcgen::{
    CertificateParams, CrlDistributionPoint, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    PublicKeyData, SanType,
};
use secrecy::SecretString;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("the issuing CA is not valid at {now} (valid from {not_before} to {not_after})")]
    CaNotValid {
        now: String,
        not_before: String,
        not_after: String,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("signing the certificate failed: {0}")]
    Sign(String),
    #[error("could not draw a random serial number from the system's generator")]
    Random,
}

/// A certificate the CA has just signed, with what it says read back from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub pem: String,
    pub info: CertificateInfo,
}

/// A server certificate with its new key.
#[derive(Debug)]
pub struct ServerCredentials {
    pub certificate: IssuedCertificate,
    /// The server certificate then the issuing CA, PEM: what a TLS server presents.
    pub chain_pem: String,
    /// The server's PKCS#8 private key, PEM. Write it with [`crate::write_private_file`].
    pub key_pem: SecretString,
    pub key_algorithm: KeyAlgorithm,
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl CertificateAuthority {
    /// Issues a TLS server certificate with a key generated here.
    pub fn issue_server(
        &self,
        profile: &ServerProfile,
        now: OffsetDateTime,
    ) -> Result<ServerCredentials, IssueError> {
        profile.validate()?;
        let key = keys::generate(profile.key_algorithm)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, profile.common_name());
        for name in &profile.dns_names {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let ia5 = name
                .clone()
                .try_into()
                .map_err(|_| ProfileError::DnsName(name))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        for ip in &profile.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_crl_urls(&mut params, &profile.crl_distribution_points);
        let certificate = self.sign_leaf(params, &key.pair, profile.validity_days, now)?;
        let chain_pem = format!("{}{}", certificate.pem, self.issuing_certificate_pem());
        tracing::info!(
            serial = %certificate.info.serial,
            names = ?profile.dns_names,
            ips = ?profile.ip_addresses,
            "issued server certificate"
        );
        Ok(ServerCredentials {
            certificate,
            chain_pem,
            key_pem: SecretString::from(key.pem.to_string()),
            key_algorithm: profile.key_algorithm,
        })
    }

    /// Issues a token's client certificate from its CSR (DER or PEM). The CSR's signature is
    /// verified and only its public key is used; the profile decides the rest.
    pub fn issue_token(
        &self,
        csr: &[u8],
        profile: &TokenProfile,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let span = tracing::info_span!("issue_token", unit = %profile.unit, token = %profile.token);
        let _entered = span.enter();
        profile.validate()?;
        let csr =
            CheckedCsr::parse(csr).inspect_err(|e| tracing::warn!(reason = %e, "CSR refused"))?;
        self.issue_token_for(&csr, profile, now)
    }

    /// As [`issue_token`](Self::issue_token), for a CSR already checked (say, to look its key
    /// up before issuing).
    pub fn issue_token_for(
        &self,
        csr: &CheckedCsr,
        profile: &TokenProfile,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        profile.validate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, profile.unit_name.as_str());
        params
            .distinguished_name
            .push(DnType::CommonName, profile.common_name());
        for urn in [profile.unit.urn(), profile.token.urn()] {
            let ia5 = urn
                .clone()
                .try_into()
                .map_err(|_| IssueError::Sign(format!("{urn:?} is not ASCII")))?;
            params.subject_alt_names.push(SanType::URI(ia5));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_crl_urls(&mut params, &profile.crl_distribution_points);
        let issued = self.sign_leaf(params, csr, profile.validity_days, now)?;
        // What the service will read back at every login must come out as it went in.
        let identity = ClientIdentity::from_der(&issued.der)
            .map_err(|e| IssueError::Sign(format!("issued certificate does not read back: {e}")))?;
        if identity.unit != profile.unit || identity.token != profile.token {
            return Err(IssueError::Sign(
                "issued certificate names another token".into(),
            ));
        }
        tracing::info!(
            serial = %issued.info.serial,
            fingerprint = %issued.info.spki_fingerprint,
            key = %csr.key_algorithm(),
            not_after = %rfc3339(issued.info.not_after),
            "issued token certificate"
        );
        Ok(issued)
    }

    /// Signs an end-entity certificate: random serial, authority key identifier, validity from
    /// `now` (backdated a little) for `days`, cut at the issuing CA's own end.
    pub(crate) fn sign_leaf(
        &self,
        mut params: CertificateParams,
        public_key: &impl PublicKeyData,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let now = whole_seconds(now);
        let ca = &self.issuing_info;
        if now < ca.not_before || now >= ca.not_after {
            return Err(IssueError::CaNotValid {
                now: rfc3339(now),
                not_before: rfc3339(ca.not_before),
                not_after: rfc3339(ca.not_after),
            });
        }
        let wanted = now + Duration::days(days.into());
        if wanted > ca.not_after {
            tracing::warn!(
                wanted = %rfc3339(wanted),
                ca_not_after = %rfc3339(ca.not_after),
                "certificate validity cut at the issuing CA's end"
            );
        }
        params.not_before = now - BACKDATE;
        params.not_after = wanted.min(ca.not_after);
        params.serial_number = Some(new_serial().map_err(|e| match e {
            CaError::Random => IssueError::Random,
            other => IssueError::Sign(other.to_string()),
        })?);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(|e| IssueError::Sign(e.to_string()))?;
        let der = cert.der().to_vec();
        let info = CertificateInfo::from_der(&der).map_err(|e| IssueError::Sign(e.to_string()))?;
        Ok(IssuedCertificate {
            pem: to_pem("CERTIFICATE", &der),
            der,
            info,
        })
    }
}

pub(crate) fn set_crl_urls(params: &mut CertificateParams, urls: &[String]) {
    if !urls.is_empty() {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: urls.to_vec(),
        }];
    }
}
