//! The service layer: every operation the HTTP API and the CLI perform, over a [`Storage`] and
//! a [`Clock`]. Handlers and commands stay thin; rules live here and in [`crate::domain`].
//!
//! - [`sessions`]: the token API (create a session, read it, end it), with the status and
//!   binding check that runs on every request.
//! - [`registry`]: managing units, administrators and tokens (the CLI today, the management
//!   API later).
//! - [`LoginWriter`]: durable login records with group commit.
//! - [`accounts`] and [`operators`]: operator accounts, their logins and sessions, roles and
//!   the security policy; [`authz`]: who may do what where; [`audit_trail`]: verification,
//!   export and retention of the audit trail.
//!
//! Every operation that changes something writes its audit record in the same storage
//! transaction (see [`Service::audited`]); one that fails on its input is audited as failed;
//! a read is audited by the caller ([`Service::record_read`]).

pub mod accounts;
pub mod audit_trail;
pub mod authz;
mod login_writer;
pub mod operators;
pub mod passwords;
pub mod registry;
pub mod sessions;

pub use authz::{Action, Actor, DenialReason, Operator, Permission, Target, actions, permits};
pub use login_writer::LoginWriter;
pub use passwords::{HashParams, Hasher};
pub use sessions::{Peer, RequestContext, TokenAuth};

use crate::audit::{AuditEntry, AuditKey, AuditResult};
use crate::clock::Clock;
use crate::storage::{Audited, Storage, StorageError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use ukey_proto::PolicyRejection;
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
    /// Operator login failed: unknown user, wrong password, locked or disabled account, all
    /// told the same way.
    #[error("invalid username or password, or the account is locked")]
    InvalidCredentials,
    /// Operator login or request without a U-Key under `operator_login = "token+password"`.
    #[error("a U-Key is required")]
    TokenRequired,
    /// No live operator session (none given, ended, idle or expired).
    #[error("not logged in, or the session has ended")]
    NotAuthenticated,
    #[error("not permitted ({})", .0.code())]
    Forbidden(DenialReason),
    /// The session may only change the password (first login, reset, expired password).
    #[error("the password must be changed first")]
    PasswordChangeRequired,
    /// The current password given for a change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the new password is refused: {0}")]
    PasswordRejected(PolicyRejection),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Hashing(#[from] passwords::HashError),
    /// The audit record could not be written, so the action was not performed.
    #[error("the audit record could not be written: {0}")]
    AuditNotWritten(StorageError),
}

impl ServiceError {
    /// Whether the failure is the client's doing (bad input, a conflict, something missing),
    /// and so an attempted action to audit as failed, rather than the system's.
    fn is_attempt(&self) -> bool {
        match self {
            ServiceError::Storage(e) => !matches!(
                e,
                StorageError::Connect(_)
                    | StorageError::Migrate(_)
                    | StorageError::Query(_)
                    | StorageError::Corrupt(_)
                    | StorageError::AuditKeyMismatch
            ),
            ServiceError::ShuttingDown
            | ServiceError::LoginNotRecorded(_)
            | ServiceError::Hashing(_)
            | ServiceError::AuditNotWritten(_) => false,
            _ => true,
        }
    }
}

/// How operators log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OperatorLogin {
    /// A U-Key bound within the operator's subtree on the mutual-TLS connection, then the
    /// password: two factors. Checked again on every request of the session.
    #[default]
    #[serde(rename = "token+password")]
    TokenAndPassword,
    /// The password alone: for a lab, never for production.
    #[serde(rename = "password")]
    Password,
}

/// Settings of operator accounts.
#[derive(Debug, Clone, Copy)]
pub struct AccountSettings {
    pub operator_login: OperatorLogin,
    pub hashing: HashParams,
    /// How long a one-time secret (bootstrap, activation, reset) stays usable.
    pub secret_ttl: Duration,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            operator_login: OperatorLogin::TokenAndPassword,
            hashing: HashParams::default(),
            secret_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Everything the service is configured with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub sessions: SessionSettings,
    pub accounts: AccountSettings,
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

/// The service: storage, clock, login writer, audit key and settings, shared by every request.
#[derive(Debug, Clone)]
pub struct Service {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    logins: LoginWriter,
    settings: SessionSettings,
    accounts: AccountSettings,
    audit_key: Arc<AuditKey>,
    hasher: Hasher,
    login_locks: operators::LoginLocks,
}

impl Service {
    /// Must be called within a Tokio runtime: it starts the login writer task, which ends when
    /// the last clone of this service is dropped (after writing what it was given).
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        audit_key: AuditKey,
    ) -> Service {
        let audit_key = Arc::new(audit_key);
        let logins = LoginWriter::spawn(storage.clone(), audit_key.clone());
        Service {
            storage,
            clock,
            logins,
            settings: settings.sessions,
            accounts: settings.accounts,
            hasher: Hasher::new(settings.accounts.hashing),
            audit_key,
            login_locks: operators::LoginLocks::default(),
        }
    }

    pub fn account_settings(&self) -> &AccountSettings {
        &self.accounts
    }

    pub fn audit_key(&self) -> &Arc<AuditKey> {
        &self.audit_key
    }

    /// An audit record for a storage call to write in its transaction.
    pub fn audited(&self, entry: AuditEntry) -> Audited {
        Audited {
            key: self.audit_key.clone(),
            entry,
        }
    }

    /// Appends a record on its own; if it cannot be written, the caller's action fails.
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<(), ServiceError> {
        self.storage
            .append_audit(std::slice::from_ref(&entry), &self.audit_key)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, action = %entry.action, "audit record not written");
                ServiceError::AuditNotWritten(e)
            })
    }

    /// Ends an audited operation: on a failure caused by the request, `entry` is written as a
    /// failed attempt (its success record went down with the transaction).
    pub async fn finish<T>(
        &self,
        mut entry: AuditEntry,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.is_attempt() => {
                entry.result = AuditResult::Failed;
                entry.detail.insert("error".into(), e.to_string().into());
                self.append_audit(entry).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
