//! The offline CA directory `ukey-ca` works on: the CA files (see [`crate::CaPaths`]) plus a
//! record of everything issued and revoked.
//!
//! ```text
//! index.json         every certificate issued, and its revocation; replaced atomically
//! issued/<serial>.pem a copy of each issued certificate
//! crl.pem, crl.der   the current CRL, rewritten on every revocation and by `ukey-ca crl`
//! .lock              held while a command runs, so two never interleave
//! ```

use crate::ca::{CaError, CaOptions, CertificateAuthority};
use crate::crl::{Crl, CrlError, RevocationReason, Revoked};
use crate::files::{replace_file, write_private_file, write_public_file};
use crate::identity::CertificateInfo;
use crate::issue::{IssueError, IssuedCertificate, ServerCredentials, rfc3339};
use crate::profile::{ServerProfile, TokenProfile, check_crl_urls};
use crate::serial::CertSerial;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};

const INDEX_VERSION: u32 = 1;

/// CRLs are valid this long unless told otherwise: a week, so a weekly `ukey-ca crl` from
/// cron keeps relying parties supplied with a day to spare if it runs daily.
pub const DEFAULT_CRL_DAYS: u32 = 7;

/// What went wrong in a CA directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Crl(#[from] CrlError),
    #[error("{}: not a ukey-ca directory (no index.json); create one with `ukey-ca init`", dir.display())]
    NotAStore { dir: PathBuf },
    #[error("{}: another ukey-ca command is working on this directory; try again when it ends", dir.display())]
    Busy { dir: PathBuf },
    #[error("{}: {detail}", path.display())]
    Index { path: PathBuf, detail: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: already exists; refusing to overwrite", path.display())]
    Exists { path: PathBuf },
    #[error("no certificate with serial {0} was issued by this CA (see `ukey-ca list`)")]
    UnknownSerial(CertSerial),
    #[error("certificate {serial} was already revoked at {at} ({reason})")]
    AlreadyRevoked {
        serial: CertSerial,
        at: String,
        reason: RevocationReason,
    },
    #[error("{0}")]
    Options(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            StoreError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            StoreError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Settings kept in the index, chosen at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSettings {
    /// CRL distribution points written into every certificate issued.
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// How long each CRL is valid.
    pub crl_days: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            crl_urls: Vec::new(),
            crl_days: DEFAULT_CRL_DAYS,
        }
    }
}

/// Which profile a certificate was issued under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    Token,
    Server,
}

/// When and why a certificate was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// One issued certificate, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub serial: CertSerial,
    pub profile: ProfileKind,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSerial>,
    /// A server certificate's DNS names and addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub fingerprint: SpkiFingerprint,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The copy of the certificate, relative to the CA directory.
    pub file: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

impl IndexEntry {
    fn new(
        info: &CertificateInfo,
        profile: ProfileKind,
        unit: Option<UnitCode>,
        token: Option<TokenSerial>,
        now: OffsetDateTime,
    ) -> IndexEntry {
        let names = info
            .dns_names
            .iter()
            .cloned()
            .chain(info.ip_addresses.iter().map(ToString::to_string))
            .collect();
        IndexEntry {
            serial: info.serial.clone(),
            profile,
            subject: info.subject.clone(),
            unit,
            token,
            names,
            fingerprint: info.spki_fingerprint,
            issued_at: crate::ca::whole_seconds(now),
            not_before: info.not_before,
            not_after: info.not_after,
            file: PathBuf::from("issued").join(format!("{}.pem", info.serial)),
            revoked: None,
        }
    }

    /// `valid`, `revoked` or `expired` at `now`.
    pub fn status(&self, now: OffsetDateTime) -> &'static str {
        if self.revoked.is_some() {
            "revoked"
        } else if now >= self.not_after {
            "expired"
        } else {
            "valid"
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Index {
    version: u32,
    /// The number of the CRL last written; the next one gets this plus one.
    crl_number: u64,
    settings: StoreSettings,
    certificates: Vec<IndexEntry>,
}

/// A CA directory opened for one command, holding its lock until dropped.
#[derive(Debug)]
pub struct CaStore {
    ca: CertificateAuthority,
    index: Index,
    _lock: File,
}

impl CaStore {
    /// Creates the CA, an empty index and the first (empty) CRL in `dir`.
    pub fn init(
        dir: &Path,
        options: &CaOptions,
        settings: StoreSettings,
        now: OffsetDateTime,
    ) -> Result<CaStore, StoreError> {
        check_crl_urls(&settings.crl_urls).map_err(|e| StoreError::Options(e.to_string()))?;
        if settings.crl_days == 0 {
            return Err(StoreError::Options(
                "CRL validity must be at least one day".into(),
            ));
        }
        for existing in [index_path(dir), dir.join("issued")] {
            if existing.symlink_metadata().is_ok() {
                return Err(StoreError::Exists { path: existing });
            }
        }
        let ca = CertificateAuthority::create(dir, options, now)?;
        let lock = lock(dir)?;
        let issued = dir.join("issued");
        crate::files::create_private_dir(&issued).map_err(io_err(&issued))?;
        let index = Index {
            version: INDEX_VERSION,
            crl_number: 0,
            settings,
            certificates: Vec::new(),
        };
        let path = index_path(dir);
        write_public_file(&path, &index_json(&index)?).map_err(io_err(&path))?;
        let mut store = CaStore {
            ca,
            index,
            _lock: lock,
        };
        store.crl(now, None)?;
        Ok(store)
    }

    /// Opens `dir` for one command: takes its lock, loads the CA and the index.
    pub fn open(dir: &Path) -> Result<CaStore, StoreError> {
        let path = index_path(dir);
        if !path.exists() {
            return Err(StoreError::NotAStore {
                dir: dir.to_path_buf(),
            });
        }
        let lock = lock(dir)?;
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| StoreError::Index {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if index.version != INDEX_VERSION {
            return Err(StoreError::Index {
                path,
                detail: format!(
                    "index version {} is not {INDEX_VERSION}; use the ukey-ca that wrote it",
                    index.version
                ),
            });
        }
        let ca = CertificateAuthority::load(dir)?;
        Ok(CaStore {
            ca,
            index,
            _lock: lock,
        })
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.index.settings
    }

    pub fn certificates(&self) -> &[IndexEntry] {
        &self.index.certificates
    }

    pub fn crl_path(&self) -> PathBuf {
        self.ca.paths().dir.join("crl.pem")
    }

    /// Issues a token certificate from a CSR and records it. The profile's CRL distribution
    /// points default to the directory's.
    pub fn issue_token(
        &mut self,
        csr: &[u8],
        profile: &TokenProfile,
        now: OffsetDateTime,
    ) -> Result<(IndexEntry, IssuedCertificate), StoreError> {
        let mut profile = profile.clone();
        if profile.crl_distribution_points.is_empty() {
            profile
                .crl_distribution_points
                .clone_from(&self.index.settings.crl_urls);
        }
        let issued = self.ca.issue_token(csr, &profile, now)?;
        let entry = IndexEntry::new(
            &issued.info,
            ProfileKind::Token,
            Some(profile.unit),
            Some(profile.token),
            now,
        );
        self.record(entry.clone(), &issued.pem)?;
        Ok((entry, issued))
    }

    /// Issues a server certificate with a new key and records it.
    pub fn issue_server(
        &mut self,
        profile: &ServerProfile,
        now: OffsetDateTime,
    ) -> Result<(IndexEntry, ServerCredentials), StoreError> {
        let mut profile = profile.clone();
        if profile.crl_distribution_points.is_empty() {
            profile
                .crl_distribution_points
                .clone_from(&self.index.settings.crl_urls);
        }
        let creds = self.ca.issue_server(&profile, now)?;
        let entry = IndexEntry::new(
            &creds.certificate.info,
            ProfileKind::Server,
            None,
            None,
            now,
        );
        self.record(entry.clone(), &creds.certificate.pem)?;
        Ok((entry, creds))
    }

    /// The copy and the index entry are written before the certificate leaves, so nothing is
    /// handed out unrecorded; if the index cannot be saved, the copy is removed again.
    fn record(&mut self, entry: IndexEntry, pem: &str) -> Result<(), StoreError> {
        let copy = self.ca.paths().dir.join(&entry.file);
        write_public_file(&copy, pem.as_bytes()).map_err(io_err(&copy))?;
        self.index.certificates.push(entry);
        if let Err(e) = self.save() {
            self.index.certificates.pop();
            let _ = std::fs::remove_file(&copy);
            return Err(e);
        }
        Ok(())
    }

    /// Revokes a certificate this CA issued and writes a new CRL at once.
    pub fn revoke(
        &mut self,
        serial: &CertSerial,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<(IndexEntry, Crl), StoreError> {
        let Some(pos) = self
            .index
            .certificates
            .iter()
            .position(|e| &e.serial == serial)
        else {
            return Err(StoreError::UnknownSerial(serial.clone()));
        };
        if let Some(r) = &self.index.certificates[pos].revoked {
            return Err(StoreError::AlreadyRevoked {
                serial: serial.clone(),
                at: rfc3339(r.at),
                reason: r.reason,
            });
        }
        if !reason.is_issuable() {
            return Err(StoreError::Options(format!(
                "revocation reason {reason} is not supported: ukey revocations are permanent"
            )));
        }
        self.index.certificates[pos].revoked = Some(Revocation {
            at: crate::ca::whole_seconds(now),
            reason,
        });
        let span = tracing::info_span!("revoke", serial = %serial);
        let _entered = span.enter();
        let crl = match self.crl(now, None) {
            Ok(crl) => crl,
            Err(e) => {
                self.index.certificates[pos].revoked = None;
                return Err(e);
            }
        };
        Ok((self.index.certificates[pos].clone(), crl))
    }

    /// Signs the next CRL from the index and writes `crl.pem` and `crl.der`. `days` overrides
    /// the directory's CRL validity.
    pub fn crl(&mut self, now: OffsetDateTime, days: Option<u32>) -> Result<Crl, StoreError> {
        let days = days.unwrap_or(self.index.settings.crl_days);
        if days == 0 {
            return Err(StoreError::Options(
                "CRL validity must be at least one day".into(),
            ));
        }
        let revoked: Vec<Revoked> = self
            .index
            .certificates
            .iter()
            .filter_map(|e| {
                e.revoked.as_ref().map(|r| Revoked {
                    serial: e.serial.clone(),
                    revoked_at: r.at,
                    reason: r.reason,
                })
            })
            .collect();
        let number = self.index.crl_number + 1;
        let crl = self
            .ca
            .crl(&revoked, number, now, now + Duration::days(days.into()))?;
        // Record the number (and any revocation) first: a CRL number must never be reused.
        self.index.crl_number = number;
        if let Err(e) = self.save() {
            self.index.crl_number = number - 1;
            return Err(e);
        }
        let dir = &self.ca.paths().dir;
        let pem = dir.join("crl.pem");
        let der = dir.join("crl.der");
        replace_file(&pem, crl.pem.as_bytes(), 0o644).map_err(io_err(&pem))?;
        replace_file(&der, &crl.der, 0o644).map_err(io_err(&der))?;
        Ok(crl)
    }

    fn save(&self) -> Result<(), StoreError> {
        let path = index_path(&self.ca.paths().dir);
        replace_file(&path, &index_json(&self.index)?, 0o644).map_err(io_err(&path))
    }
}

fn index_path(dir: &Path) -> PathBuf {
    dir.join("index.json")
}

fn index_json(index: &Index) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(index).map_err(|e| StoreError::Index {
        path: PathBuf::from("index.json"),
        detail: e.to_string(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(".lock");
    let file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?,
        Err(e) => return Err(io_err(&path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Busy {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Writes an output file for the operator: private (0600) for keys, refusing to overwrite.
pub fn write_output(path: &Path, bytes: &[u8], private: bool) -> Result<(), StoreError> {
    let written = if private {
        write_private_file(path, bytes)
    } else {
        write_public_file(path, bytes)
    };
    written.map_err(io_err(path))
}
