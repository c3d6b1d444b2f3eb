//! ukey-admin's integration tests, one binary (see docs/testing.md).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod crash;
mod mtls;
mod softhsm;
mod storage;
mod support;
