//! Certificates for ukey: the CA, the token and server profiles, issuing from a CSR made on a
//! token, CRLs, and reading a token's identity back out of its certificate.
//!
//! Nothing here reads the clock: every operation that depends on the time takes `now`.

mod encoding;
pub mod identity;
mod serial;

pub use encoding::{DecodeError, decode_pem_or_der, to_pem};
pub use identity::{
    CertificateInfo, ClientIdentity, ExtendedKeyUsage, IdentityError, KeyUsage, PublicKeyAlgorithm,
    spki_fingerprint,
};
pub use serial::{CertSerial, SerialError};
