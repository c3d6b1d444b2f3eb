//! The service layer: every operation the HTTP API and the CLI perform, over a [`Storage`] and
//! a [`Clock`]. Handlers and commands stay thin; rules live here and in [`crate::domain`].
//!
//! - [`sessions`]: the token API (create a session, read it, end it), with the status and
//!   binding check that runs on every request.
//! - [`registry`]: managing units, administrators and tokens (the CLI today, the management
//!   API later).
//! - [`LoginWriter`]: durable login records with group commit.

mod login_writer;
pub mod registry;
pub mod sessions;

pub use login_writer::LoginWriter;
pub use sessions::{Peer, RequestContext, TokenAuth};

use crate::clock::Clock;
use crate::storage::{Storage, StorageError};
use std::sync::Arc;
use std::time::Duration;
use ukey_proto::api::Refusal;

/// Why an operation did not happen. Crosses HTTP through one mapping (`crate::http::error`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The token may not do this; recorded as a refused login or request.
    #[error("refused: {}", .0.code())]
    Refused(Refusal),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the certificate cannot be used for a token: {0}")]
    Certificate(#[from] ukey_certs::IdentityError),
    #[error("the certificate names {what} {named:?}, not {given:?}")]
    CertificateMismatch {
        what: &'static str,
        named: String,
        given: String,
    },
    #[error("{0}")]
    InvalidInput(String),
    #[error("a reason is required for this change")]
    MissingReason,
    /// A login was not written, so it is not acknowledged.
    #[error("the login could not be recorded: {0}")]
    LoginNotRecorded(Arc<StorageError>),
    /// The login writer has stopped (shutting down).
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Settings of the token API.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long a session lasts after the login that created it.
    pub ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// The service: storage, clock, login writer and settings, shared by every request.
#[derive(Debug, Clone)]
pub struct Service {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    logins: LoginWriter,
    settings: SessionSettings,
}

impl Service {
    /// Must be called within a Tokio runtime: it starts the login writer task, which ends when
    /// the last clone of this service is dropped (after writing what it was given).
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        settings: SessionSettings,
    ) -> Service {
        let logins = LoginWriter::spawn(storage.clone());
        Service {
            storage,
            clock,
            logins,
            settings,
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
