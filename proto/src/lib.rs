//! The contract between `ukeyd` (the local daemon) and `ukey-admin` (the admin service).
//!
//! Everything here is pure: identifiers and their validation, the JSON types of the token API,
//! and the password and PIN policy that both sides enforce. Nothing in this crate does I/O.

pub mod api;
pub mod ids;
pub mod lang;
pub mod password;
pub mod pin;
mod violation;

pub use ids::{IdError, SpkiFingerprint, TokenSerial, UnitCode};
pub use lang::Lang;
pub use password::{PasswordContext, PasswordPolicy};
pub use pin::{PinCharset, PinConstraints, PinPolicy};
pub use violation::{PolicyRejection, Violation};

/// No password or PIN longer than this many bytes is looked at: it is refused before any
/// expensive work (dictionary matching, hashing) so that a huge input costs nothing.
pub const MAX_SECRET_BYTES: usize = 256;
