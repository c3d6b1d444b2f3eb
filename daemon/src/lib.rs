//! ukeyd, the local U-Key daemon.
//!
//! - [`token`]: the token layer (PC/SC monitor, PKCS#11 tokens, rustls signer on the token).
//! - [`probe`]: `ukeyd probe`, a one-shot report of readers, tokens and their objects.

pub mod probe;
pub mod token;
