//! The audit key: 32 random bytes in a file outside the database (hex, owner-only), so that
//! whoever can write the database alone cannot forge or repair the chain.

use super::record::AuditRecord;
use ring::hmac;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditKeyError {
    #[error("cannot read the audit key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the audit key {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the audit key {} is not {KEY_BYTES} bytes in hex", path.display())]
    Malformed { path: PathBuf },
    #[error(
        "the audit key {} can be read by other users (mode {mode:o}); make it owner-only: chmod 600",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// The HMAC-SHA256 key of the audit chain.
#[derive(Clone)]
pub struct AuditKey {
    key: hmac::Key,
    id: [u8; 8],
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", hex::encode(self.id))
    }
}

impl AuditKey {
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> AuditKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let tag = hmac::sign(&key, b"ukey-audit-key-id");
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag.as_ref()[..8]);
        AuditKey { key, id }
    }

    /// A fresh random key (for tests, and inside [`AuditKey::create`]).
    pub fn generate() -> AuditKey {
        Self::from_bytes(&random_bytes())
    }

    /// Identifies the key without revealing it; the chain head stores it so that a wrong key
    /// file is told apart from a tampered trail.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// Reads the key file, refusing one that other users can read.
    pub fn load(path: &Path) -> Result<AuditKey, AuditKeyError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |source| AuditKeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(AuditKeyError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read)?);
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        hex::decode_to_slice(text.trim(), bytes.as_mut_slice()).map_err(|_| {
            AuditKeyError::Malformed {
                path: path.to_owned(),
            }
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Creates a new key file, owner-only (0600); never overwrites an existing one.
    pub fn create(path: &Path) -> Result<AuditKey, AuditKeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        let create = |source| AuditKeyError::Create {
            path: path.to_owned(),
            source,
        };
        let bytes = Zeroizing::new(random_bytes());
        let text = Zeroizing::new(format!("{}\n", hex::encode(bytes.as_slice())));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(create)?;
        file.write_all(text.as_bytes()).map_err(create)?;
        file.sync_all().map_err(create)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The MAC of a record's content, chained to `record.prev_mac` (its own `mac` is ignored).
    pub fn mac(&self, record: &AuditRecord) -> [u8; 32] {
        self.sign(&record.content_bytes())
    }

    /// The MAC of the chain head: the last position and its MAC.
    pub fn head_mac(&self, last_id: i64, last_mac: &[u8; 32]) -> [u8; 32] {
        let mut content = b"ukey-audit-head-v1\0".to_vec();
        content.extend_from_slice(&last_id.to_be_bytes());
        content.extend_from_slice(last_mac);
        self.sign(&content)
    }

    /// Whether `mac` is the MAC of `record`, compared in constant time.
    pub fn verify(&self, record: &AuditRecord) -> bool {
        hmac::verify(&self.key, &record.content_bytes(), &record.mac).is_ok()
    }

    fn sign(&self, content: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, content);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

fn random_bytes() -> [u8; KEY_BYTES] {
    use rand::RngCore;
    let mut bytes = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_file_is_created_owner_only_read_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let made = AuditKey::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(AuditKey::load(&path).unwrap().id(), made.id());
        assert!(matches!(
            AuditKey::create(&path),
            Err(AuditKeyError::Create { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            AuditKey::load(&path),
            Err(AuditKeyError::Exposed { .. })
        ));
    }
}
