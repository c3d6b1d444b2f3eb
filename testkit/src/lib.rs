//! The test harness every integration test shares. Each piece is the real thing, private to
//! one test and cleaned up when dropped:
//!
//! - [`SoftToken`]: a SoftHSM2 token in a private token directory.
//! - [`VirtualCards`]: virtual PIV cards behind a private pcscd (the real PC/SC path).
//! - [`TestPostgres`]: a throwaway PostgreSQL cluster, or `TEST_DATABASE_URL`, with a fresh
//!   database per test.
//! - [`TestPki`]: a CA, a server certificate for 127.0.0.1/localhost and client certificates.
//!
//! Tests run one per process (cargo-nextest), so a test may point process-wide settings such as
//! `SOFTHSM2_CONF` or `PCSCLITE_CSOCK_NAME` at its own instances.

// A harness reports a broken setup by failing the test that asked for it.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod pki;
mod postgres;
mod process;
mod softhsm;
mod vcards;

pub use pki::{ClientCert, TestPki};
pub use postgres::{TestDatabase, TestPostgres};
pub use process::{unavailable, workspace_root};
pub use softhsm::SoftToken;
pub use vcards::VirtualCards;
