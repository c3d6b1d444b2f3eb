//! Certificates for ukey: the CA, the token and server profiles, issuing from a CSR made on a
//! token, CRLs, and reading a token's identity back out of its certificate.
//!
//! Nothing here reads the clock: every operation that depends on the time takes `now`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ukey_certs::{CaOptions, CertificateAuthority, ServerProfile};
//! let now = time::OffsetDateTime::now_utc();
//! let ca = CertificateAuthority::create("/var/lib/ukey/ca".as_ref(), &CaOptions::default(), now)?;
//! let server = ca.issue_server(&ServerProfile::new(vec!["admin.example.cn".into()], vec![]), now)?;
//! # Ok(()) }
//! ```

mod ca;
mod crl;
mod csr;
mod encoding;
mod files;
pub mod identity;
mod issue;
mod keys;
mod profile;
mod serial;
pub mod store;

pub use ca::{CaError, CaOptions, CaPaths, CertificateAuthority};
pub use crl::{Crl, CrlEntry, CrlError, CrlInfo, RevocationReason, Revoked};
pub use csr::{CheckedCsr, CsrError, MAX_RSA_BITS, MIN_RSA_BITS};
pub use encoding::{DecodeError, decode_pem_or_der, to_pem};
pub use files::{create_private_dir, replace_file, write_private_file, write_public_file};
pub use identity::{
    CertificateInfo, ClientIdentity, ExtendedKeyUsage, IdentityError, KeyUsage, PublicKeyAlgorithm,
    spki_fingerprint,
};
pub use issue::{IssueError, IssuedCertificate, ServerCredentials};
pub use keys::{KeyAlgorithm, KeyError};
pub use profile::{
    DEFAULT_SERVER_DAYS, DEFAULT_TOKEN_DAYS, MAX_DAYS, ProfileError, ServerProfile, TokenProfile,
};
pub use serial::{CertSerial, SerialError};
