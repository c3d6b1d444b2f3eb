//! The CA: a root and an issuing CA under it, kept as PEM files in one directory.
//!
//! ```text
//! root-ca.pem     root certificate (the trust anchor relying parties install)
//! root-ca.key     root private key, 0600 — needed only to create the issuing CA; may be
//!                 moved offline after `create`, since `load` never reads it
//! issuing-ca.pem  issuing CA certificate (signs tokens, servers and CRLs)
//! issuing-ca.key  issuing CA private key, 0600
//! ca-chain.pem    issuing CA then root, for servers and clients that send the chain
//! ```

use crate::encoding::{decode_pem_or_der, to_pem};
use crate::files::{create_private_dir, exposed_mode, write_private_file, write_public_file};
use crate::identity::CertificateInfo;
use crate::keys::{self, KeyAlgorithm, KeyError};
use crate::serial::random_serial;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SerialNumber,
};
use std::io;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Certificates are dated this much before `now`, so a relying party whose clock is a few
/// minutes behind does not see a certificate that is "not yet valid".
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

/// X.520's upper bound for organizationName and commonName, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 64;

/// What went wrong creating or loading a CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("{}: already exists; refusing to overwrite CA material", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid CA options: {0}")]
    Options(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("making the {what} certificate failed: {detail}")]
    Sign { what: &'static str, detail: String },
    #[error(
        "{}: the private key is readable by group or others (mode {mode:03o}); \
         restrict it with chmod 600",
        path.display()
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error("{}: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },
    #[error("{}: this private key does not belong to the certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("could not draw a random serial number from the system's generator")]
    Random,
}

/// How to make a new CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// organizationName of both CA certificates, e.g. the organisation running ukey.
    pub organization: String,
    /// The CAs' common names are "<name> Root CA" and "<name> Issuing CA".
    pub name: String,
    pub key_algorithm: KeyAlgorithm,
    pub root_validity_days: u32,
    pub issuing_validity_days: u32,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            organization: "ukey".to_owned(),
            name: "ukey".to_owned(),
            key_algorithm: KeyAlgorithm::EcP256,
            root_validity_days: 20 * 365,
            issuing_validity_days: 10 * 365,
        }
    }
}

impl CaOptions {
    fn validate(&self) -> Result<(), CaError> {
        check_name("organization", &self.organization).map_err(CaError::Options)?;
        check_name("name", &format!("{} Issuing CA", self.name)).map_err(CaError::Options)?;
        if self.root_validity_days == 0 || self.issuing_validity_days == 0 {
            return Err(CaError::Options("validity must be at least one day".into()));
        }
        if self.issuing_validity_days > self.root_validity_days {
            return Err(CaError::Options(format!(
                "the issuing CA ({} days) cannot outlive the root ({} days)",
                self.issuing_validity_days, self.root_validity_days
            )));
        }
        Ok(())
    }
}

/// A name that goes into a certificate subject: 1 to 64 characters, no control characters.
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        Err(format!("{what} must not be empty"))
    } else if chars > MAX_NAME_CHARS {
        Err(format!(
            "{what} {value:?} has {chars} characters; certificate names allow {MAX_NAME_CHARS}"
        ))
    } else if value.chars().any(char::is_control) {
        Err(format!("{what} {value:?} contains control characters"))
    } else {
        Ok(())
    }
}

/// The files of a CA directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    pub dir: PathBuf,
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub issuing_cert: PathBuf,
    pub issuing_key: PathBuf,
    pub chain: PathBuf,
}

impl CaPaths {
    pub fn new(dir: &Path) -> CaPaths {
        CaPaths {
            dir: dir.to_path_buf(),
            root_cert: dir.join("root-ca.pem"),
            root_key: dir.join("root-ca.key"),
            issuing_cert: dir.join("issuing-ca.pem"),
            issuing_key: dir.join("issuing-ca.key"),
            chain: dir.join("ca-chain.pem"),
        }
    }

    fn all(&self) -> [&PathBuf; 5] {
        [
            &self.root_cert,
            &self.root_key,
            &self.issuing_cert,
            &self.issuing_key,
            &self.chain,
        ]
    }
}

/// A loaded CA, ready to issue certificates and CRLs with its issuing key.
#[derive(Debug)]
pub struct CertificateAuthority {
    paths: CaPaths,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) issuing_der: Vec<u8>,
    pub(crate) issuing_info: CertificateInfo,
    root_der: Vec<u8>,
    root_info: CertificateInfo,
}

impl CertificateAuthority {
    /// Makes a root and an issuing CA in `dir` (created 0700 if missing). Refuses if any of
    /// the CA files already exists; on failure, removes what it wrote.
    pub fn create(dir: &Path, options: &CaOptions, now: OffsetDateTime) -> Result<Self, CaError> {
        options.validate()?;
        let paths = CaPaths::new(dir);
        create_private_dir(dir).map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for path in paths.all() {
            if path.symlink_metadata().is_ok() {
                return Err(CaError::Exists { path: path.clone() });
            }
        }
        let now = whole_seconds(now);
        let sign_err = |what| {
            move |e: rcgen::Error| CaError::Sign {
                what,
                detail: e.to_string(),
            }
        };

        let root_key = keys::generate(options.key_algorithm)?;
        let root_params = ca_params(
            options,
            format!("{} Root CA", options.name),
            BasicConstraints::Constrained(1),
            now,
            now + Duration::days(options.root_validity_days.into()),
        )?;
        let root_cert = root_params
            .self_signed(&root_key.pair)
            .map_err(sign_err("root CA"))?;

        let issuing_key = keys::generate(options.key_algorithm)?;
        let mut issuing_params = ca_params(
            options,
            format!("{} Issuing CA", options.name),
            BasicConstraints::Constrained(0),
            now,
            now + Duration::days(options.issuing_validity_days.into()),
        )?;
        issuing_params.use_authority_key_identifier_extension = true;
        let root_issuer = Issuer::from_params(&root_params, &root_key.pair);
        let issuing_cert = issuing_params
            .signed_by(&issuing_key.pair, &root_issuer)
            .map_err(sign_err("issuing CA"))?;

        let chain = format!("{}{}", issuing_cert.pem(), root_cert.pem());
        write_all_or_nothing(&[
            (&paths.root_key, root_key.pem.as_bytes(), true),
            (&paths.issuing_key, issuing_key.pem.as_bytes(), true),
            (&paths.root_cert, root_cert.pem().as_bytes(), false),
            (&paths.issuing_cert, issuing_cert.pem().as_bytes(), false),
            (&paths.chain, chain.as_bytes(), false),
        ])?;
        tracing::info!(
            dir = %dir.display(),
            key = %options.key_algorithm,
            "created root and issuing CA"
        );
        Self::from_parts(
            paths,
            issuing_cert.der().to_vec(),
            issuing_key.pair,
            root_cert.der().to_vec(),
        )
    }

    /// Loads the issuing CA (certificate and key) and the root certificate from `dir`. The
    /// root key is not read. Refuses a key file that group or others can read, and a key that
    /// does not match its certificate.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let paths = CaPaths::new(dir);
        let issuing_der = read_cert(&paths.issuing_cert)?;
        let root_der = read_cert(&paths.root_cert)?;
        let key = read_key(&paths.issuing_key)?;
        Self::from_parts(paths, issuing_der, key, root_der)
    }

    fn from_parts(
        paths: CaPaths,
        issuing_der: Vec<u8>,
        key: KeyPair,
        root_der: Vec<u8>,
    ) -> Result<Self, CaError> {
        let bad = |path: &Path, detail: String| CaError::BadCertificate {
            path: path.to_path_buf(),
            detail,
        };
        let issuing_info = CertificateInfo::from_der(&issuing_der)
            .map_err(|e| bad(&paths.issuing_cert, e.to_string()))?;
        let root_info = CertificateInfo::from_der(&root_der)
            .map_err(|e| bad(&paths.root_cert, e.to_string()))?;
        for (info, path) in [
            (&issuing_info, &paths.issuing_cert),
            (&root_info, &paths.root_cert),
        ] {
            if !info.is_ca {
                return Err(bad(path, "not a CA certificate".into()));
            }
        }
        if !signed_by(&issuing_der, &root_der) {
            return Err(bad(
                &paths.issuing_cert,
                format!("not signed by the root CA in {}", paths.root_cert.display()),
            ));
        }
        if key.subject_public_key_info() != spki_of(&issuing_der)? {
            return Err(CaError::KeyMismatch {
                key: paths.issuing_key.clone(),
                cert: paths.issuing_cert.clone(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&issuing_der.as_slice().into(), key)
            .map_err(|e| bad(&paths.issuing_cert, e.to_string()))?;
        Ok(CertificateAuthority {
            paths,
            issuer,
            issuing_der,
            issuing_info,
            root_der,
            root_info,
        })
    }

    pub fn paths(&self) -> &CaPaths {
        &self.paths
    }

    /// The issuing CA certificate: the trust anchor for a client verifier, since tokens
    /// present only their own certificate.
    pub fn issuing_certificate_der(&self) -> &[u8] {
        &self.issuing_der
    }

    pub fn issuing_certificate_pem(&self) -> String {
        to_pem("CERTIFICATE", &self.issuing_der)
    }

    pub fn issuing_info(&self) -> &CertificateInfo {
        &self.issuing_info
    }

    pub fn root_certificate_der(&self) -> &[u8] {
        &self.root_der
    }

    pub fn root_certificate_pem(&self) -> String {
        to_pem("CERTIFICATE", &self.root_der)
    }

    pub fn root_info(&self) -> &CertificateInfo {
        &self.root_info
    }

    /// Issuing CA then root, PEM.
    pub fn chain_pem(&self) -> String {
        format!(
            "{}{}",
            self.issuing_certificate_pem(),
            self.root_certificate_pem()
        )
    }
}

fn ca_params(
    options: &CaOptions,
    common_name: String,
    constraints: BasicConstraints,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, options.organization.as_str());
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    params.serial_number = Some(new_serial()?);
    Ok(params)
}

pub(crate) fn new_serial() -> Result<SerialNumber, CaError> {
    let serial = random_serial().map_err(|_| CaError::Random)?;
    Ok(SerialNumber::from_slice(serial.as_bytes()))
}

/// Certificates carry whole seconds; dropping the fraction here keeps what callers are told
/// equal to what the certificate says.
pub(crate) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn spki_of(cert_der: &[u8]) -> Result<Vec<u8>, CaError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).map_err(|e| {
        CaError::BadCertificate {
            path: PathBuf::from("issuing-ca.pem"),
            detail: e.to_string(),
        }
    })?;
    Ok(cert.public_key().raw.to_vec())
}

/// Whether `cert_der`'s signature verifies with `issuer_der`'s public key.
fn signed_by(cert_der: &[u8], issuer_der: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    let parse = x509_parser::certificate::X509Certificate::from_der;
    match (parse(cert_der), parse(issuer_der)) {
        (Ok((_, cert)), Ok((_, issuer))) => {
            cert.verify_signature(Some(issuer.public_key())).is_ok()
        }
        _ => false,
    }
}

fn read_cert(path: &Path) -> Result<Vec<u8>, CaError> {
    let bytes = std::fs::read(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_pem_or_der(&bytes, "CERTIFICATE").map_err(|e| CaError::BadCertificate {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn read_key(path: &Path) -> Result<KeyPair, CaError> {
    let io_err = |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(mode) = exposed_mode(path).map_err(io_err)? {
        return Err(CaError::KeyExposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let pem = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(io_err)?);
    keys::from_pem(&pem).map_err(|source| CaError::KeyFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes every file with create-new semantics; if one fails, removes those already written.
fn write_all_or_nothing(files: &[(&PathBuf, &[u8], bool)]) -> Result<(), CaError> {
    for (i, (path, bytes, private)) in files.iter().enumerate() {
        let written = if *private {
            write_private_file(path, bytes)
        } else {
            write_public_file(path, bytes)
        };
        if let Err(source) = written {
            for (done, _, _) in files.iter().take(i) {
                let _ = std::fs::remove_file(done);
            }
            return Err(if source.kind() == io::ErrorKind::AlreadyExists {
                CaError::Exists {
                    path: (*path).clone(),
                }
            } else {
                CaError::Io {
                    path: (*path).clone(),
                    source,
                }
            });
        }
    }
    Ok(())
}
