//! The token layer against real PKCS#11: SoftHSM2 tokens and virtual PIV cards behind a
//! private pcscd (see ukey-testkit), through the `ukeyd` library and the `ukeyd` binary.

// Helpers in an integration-test crate fail the test by panicking, like the tests themselves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "token/cards.rs"]
mod cards;
#[path = "token/probe.rs"]
mod probe;
#[path = "token/soft.rs"]
mod soft;
#[path = "token/support.rs"]
mod support;
#[path = "token/tls.rs"]
mod tls;
