//! ukey-certs integration tests: one binary, one module per area.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod certs {
    pub mod ca;
    pub mod cli;
    pub mod crl;
    pub mod identity;
    pub mod support;
    pub mod token;
    pub mod verifier;
}
