//! ukey-admin's integration tests, one binary (see docs/testing.md).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod audit;
mod authz;
mod cli;
mod crash;
mod harness;
mod manage;
mod mtls;
mod softhsm;
mod storage;
mod support;
