//! See the crate description in Cargo.toml.
//!
//! Layers, bottom up: [`domain`] (rules, no I/O) → [`storage`] (a trait with a SQLite and a
//! PostgreSQL implementation) → [`service`] (operations the CLI and the HTTP API share) →
//! [`http`] (the mutual-TLS server and API v1) and [`cli`].

pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod import;
pub mod service;
pub mod storage;
