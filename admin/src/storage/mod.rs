//! Storage: one trait, two backends. SQLite (embedded, the default) and PostgreSQL (for
//! stateless replicas at scale) each have their own SQL and migrations, because `sqlx::Any`
//! cannot carry timestamps, UUIDs or booleans cleanly; one test suite runs against both.
//!
//! Instants are UTC with microsecond precision: `timestamptz` on PostgreSQL, integer
//! microseconds since the Unix epoch on SQLite (indexable, and exact).

mod decode;
mod postgres;
mod sqlite;

pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

use crate::audit::{AuditEntry, AuditKey, AuditQuery, AuditRecord, ChainItem, Checkpoint};
use crate::domain::account::{
    Account, AccountStatus, LoginAccount, NewAccount, NewOperatorSession, OperatorSession,
    PendingSecret, Role, RoleConflict, SecurityPolicy,
};
use crate::domain::{
    Administrator, LoginKind, LoginRecord, LoginWrite, Mobile, NewAdministrator, NewToken, NewUnit,
    Session, Token, TokenChange, TokenEvent, TokenState, TokenStatus, TransitionError, Unit,
    UnitKind,
};
use futures::stream::BoxStream;
use secrecy::{ExposeSecret, SecretString};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};
use uuid::Uuid;

/// What failed in storage, naming the thing it failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unit {0} does not exist")]
    UnknownUnit(UnitCode),
    #[error("unit code {0} is already taken")]
    DuplicateUnitCode(UnitCode),
    #[error("a unit named {name:?} already exists under the same parent")]
    DuplicateUnitName { name: String },
    #[error("unit {unit} cannot move under {parent}: {parent} is inside {unit}'s subtree")]
    Cycle { unit: UnitCode, parent: UnitCode },
    #[error("token {0} is not registered")]
    UnknownToken(TokenSerial),
    #[error("token serial {0} is already registered")]
    DuplicateSerial(TokenSerial),
    #[error("this certificate's key is already registered, as token {0}")]
    DuplicateFingerprint(TokenSerial),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the database holds a value this version cannot read: {0}")]
    Corrupt(String),
    #[error("unit {0} still has {1}; deactivate it instead")]
    UnitInUse(UnitCode, &'static str),
    #[error("administrator {0} does not exist")]
    UnknownAdministrator(i64),
    #[error("account {0} does not exist")]
    UnknownAccount(String),
    #[error("the username {0} is already taken")]
    DuplicateUsername(String),
    #[error(transparent)]
    RoleConflict(#[from] RoleConflict),
    #[error("the account does not hold {0}")]
    RoleNotHeld(Role),
    /// The chain head names another key: this service's key file is not the one the trail was
    /// written with, so nothing is written (it would break the chain).
    #[error("the audit key file does not match the key of this database's audit trail")]
    AuditKeyMismatch,
}

/// An audit record to append in the same transaction as the change it describes: if it cannot
/// be written, the change is not made either.
#[derive(Debug)]
pub struct Audited {
    pub key: Arc<AuditKey>,
    pub entry: AuditEntry,
}

/// A token's status and unit before and after a change, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenStepSummary {
    pub before: (TokenStatus, Option<UnitCode>),
    pub after: (TokenStatus, Option<UnitCode>),
}

impl TokenStepSummary {
    /// Adds `before` and `after` to the entry, and makes the unit the one after the change.
    pub(crate) fn describe(&self, entry: &mut AuditEntry) {
        let side = |(status, unit): &(TokenStatus, Option<UnitCode>)| serde_json::json!({"status": status.code(), "unit": unit.as_ref().map(UnitCode::as_str)});
        entry.detail.insert("before".into(), side(&self.before));
        entry.detail.insert("after".into(), side(&self.after));
        if self.after.1.is_some() {
            entry.unit = self.after.1.clone();
            entry.unit_path = None;
        }
    }
}

/// Changed fields of a unit (`None`: unchanged). Its code and place in the tree change by
/// other means (codes never; places by a move).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitUpdate {
    pub name: Option<String>,
    /// `Some(None)` clears it.
    pub short_name: Option<Option<String>>,
    pub kind: Option<UnitKind>,
    pub examinee: Option<bool>,
    pub active: Option<bool>,
    pub contact_name: Option<Option<String>>,
    pub contact_phone: Option<Option<String>>,
}

/// A change to an operator account, made with its audit record in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountChange {
    /// Disabling also ends every session.
    SetStatus(AccountStatus),
    /// Clears the lock and the failure count.
    Unlock,
    /// Issues a one-time secret in place of the password (reset): the password is cleared,
    /// a change is forced, every session ends.
    IssueSecret(PendingSecret),
    /// `None` for every unit.
    SetScope(Option<UnitCode>),
    Grant {
        role: Role,
        by: String,
    },
    Revoke(Role),
    /// A new password (PHC string): kept in the history (trimmed to `keep` entries), the
    /// pending secret and the forced change cleared, every session ended.
    SetPassword {
        hash: String,
        keep: u32,
    },
    /// A failed login: the count goes up, and at `threshold` the account locks until
    /// `locked_until` (and the count restarts).
    LoginFailed {
        threshold: u32,
        locked_until: OffsetDateTime,
    },
    /// A successful login: failures forgotten, the session stored, the one-time secret used
    /// up when it was the credential, the hash replaced when the parameters rose.
    LoggedIn {
        session: NewOperatorSession,
        rehash: Option<String>,
        used_secret: bool,
    },
    /// Logout: every session of the account ends.
    EndSessions,
}

/// One page of login records, newest first (or oldest first with `ascending`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginPageQuery {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub under: Option<UnitCode>,
    pub token: Option<TokenSerial>,
    pub kind: Option<LoginKind>,
    /// `success` or a refusal code.
    pub outcome: Option<String>,
    /// Records after (ascending) or before (descending) this id.
    pub cursor: Option<i64>,
    pub ascending: bool,
    pub limit: u32,
}

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the data lives: a SQLite file or a PostgreSQL URL (which may hold a password, so it is
/// kept secret and never logged).
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(SecretString),
}

impl DatabaseLocation {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; `sqlite:PATH`, `sqlite://PATH` or a
    /// plain path is a SQLite file (relative paths resolved against `base`).
    pub fn parse(s: &str, base: &std::path::Path) -> DatabaseLocation {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return DatabaseLocation::Postgres(SecretString::from(s.to_owned()));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        DatabaseLocation::Sqlite(base.join(path))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseLocation::Sqlite(_) => Backend::Sqlite,
            DatabaseLocation::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens (creating a SQLite file if needed) and migrates.
    pub async fn open(&self) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(match self {
            DatabaseLocation::Sqlite(path) => Arc::new(SqliteStorage::open(path).await?),
            DatabaseLocation::Postgres(url) => {
                Arc::new(PostgresStorage::connect(url.expose_secret()).await?)
            }
        })
    }
}

/// Which tokens to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Tokens bound to this unit or any unit below it.
    pub under: Option<UnitCode>,
    pub status: Option<TokenStatus>,
}

/// Which login records to read: `from <= at < to`, optionally within a unit's subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginQuery {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub under: Option<UnitCode>,
}

/// What the per-request check needs about a certificate's key, in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub token_id: i64,
    pub serial: TokenSerial,
    pub status: TokenStatus,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub unit: Option<CredentialUnit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUnit {
    pub id: i64,
    pub code: UnitCode,
    pub name: String,
    pub active: bool,
}

/// Everything the service keeps. Write operations that touch several rows run in one
/// transaction; token changes check the transition against the row as locked for the change.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + Debug {
    fn backend(&self) -> Backend;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StorageError>;

    // Units.
    async fn insert_unit(
        &self,
        unit: &NewUnit,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError>;
    async fn unit(&self, code: &UnitCode) -> Result<Option<Unit>, StorageError>;
    /// Every unit (or the unit `under` and everything below it), parents before children.
    async fn units(&self, under: Option<&UnitCode>) -> Result<Vec<Unit>, StorageError>;
    /// Moves a unit (with its subtree) under another unit, or to the top with `None`.
    async fn move_unit(
        &self,
        code: &UnitCode,
        new_parent: Option<&UnitCode>,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError>;
    async fn set_unit_active(
        &self,
        code: &UnitCode,
        active: bool,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError>;
    /// Changes a unit's fields; the audit record gets the fields before and after.
    async fn update_unit(
        &self,
        code: &UnitCode,
        update: &UnitUpdate,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError>;
    /// Deletes a unit nothing refers to (no units below, no administrators, tokens, accounts,
    /// login records or token history); otherwise [`StorageError::UnitInUse`].
    async fn delete_unit(&self, code: &UnitCode, audit: Audited) -> Result<(), StorageError>;
    /// Creates `units` (parents listed before their children) and adds `admins`, all in one
    /// transaction: either everything is stored or nothing is.
    async fn import(
        &self,
        units: &[NewUnit],
        admins: &[NewAdministrator],
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<(), StorageError>;

    // Administrators.
    async fn insert_administrator(
        &self,
        admin: &NewAdministrator,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Administrator, StorageError>;
    async fn administrator(&self, id: i64) -> Result<Option<Administrator>, StorageError>;
    async fn update_administrator(
        &self,
        id: i64,
        name: &str,
        mobile: &Mobile,
        audit: Audited,
    ) -> Result<Administrator, StorageError>;
    async fn delete_administrator(&self, id: i64, audit: Audited) -> Result<(), StorageError>;
    async fn administrators(
        &self,
        under: Option<&UnitCode>,
    ) -> Result<Vec<Administrator>, StorageError>;

    // Tokens.
    /// Records a token from its certificate, bound to `unit` (and so active) when given.
    async fn register_token(
        &self,
        token: &NewToken,
        unit: Option<&UnitCode>,
        actor: &str,
        reason: &str,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Token, StorageError>;
    async fn token(&self, serial: &TokenSerial) -> Result<Option<Token>, StorageError>;
    async fn change_token(
        &self,
        serial: &TokenSerial,
        change: &TokenChange,
        actor: &str,
        reason: &str,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Token, StorageError>;
    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>, StorageError>;
    /// A token's history, oldest first.
    async fn token_history(&self, serial: &TokenSerial) -> Result<Vec<TokenEvent>, StorageError>;
    /// Every token's status and unit as they were at `at` (tokens registered later are absent),
    /// optionally only those bound then to a unit in `under`'s subtree.
    async fn token_states_at(
        &self,
        at: OffsetDateTime,
        under: Option<&UnitCode>,
    ) -> Result<Vec<TokenState>, StorageError>;

    // Authentication, sessions and login records.
    async fn credential(
        &self,
        fingerprint: &SpkiFingerprint,
    ) -> Result<Option<Credential>, StorageError>;
    /// Writes login records (and the sessions of successful logins) with their audit records
    /// in one transaction, and returns only once it is durably committed.
    async fn record_logins(&self, batch: &[LoginWrite], key: &AuditKey)
    -> Result<(), StorageError>;
    async fn session(&self, id: Uuid) -> Result<Option<Session>, StorageError>;
    /// Ends a live session; false (and nothing audited) when it was already ended or does not
    /// exist.
    async fn end_session(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<bool, StorageError>;
    /// Login records in time order, streamed from one consistent snapshot: records committed
    /// after the stream starts are not in it.
    fn logins(&self, query: LoginQuery) -> BoxStream<'static, Result<LoginRecord, StorageError>>;
    /// One page of login records with filters (see [`LoginPageQuery`]).
    async fn login_page(&self, query: &LoginPageQuery) -> Result<Vec<LoginRecord>, StorageError>;

    // Operator accounts.
    async fn security_policy(&self) -> Result<SecurityPolicy, StorageError>;
    async fn set_security_policy(
        &self,
        policy: &SecurityPolicy,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<(), StorageError>;
    /// Creates an account with a one-time secret (and no password, no role).
    async fn insert_account(
        &self,
        account: &NewAccount,
        secret: &PendingSecret,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Account, StorageError>;
    async fn account(&self, username: &str) -> Result<Option<Account>, StorageError>;
    async fn accounts(&self) -> Result<Vec<Account>, StorageError>;
    /// The account with its password hash and pending secret, for a login attempt.
    async fn login_account(&self, username: &str) -> Result<Option<LoginAccount>, StorageError>;
    /// The most recent password hashes (newest first), for the reuse rule.
    async fn password_history(
        &self,
        account_id: i64,
        count: u32,
    ) -> Result<Vec<String>, StorageError>;
    async fn update_account(
        &self,
        account_id: i64,
        change: &AccountChange,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Account, StorageError>;
    /// The session whose token has this SHA-256, with its account.
    async fn operator_session(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<(OperatorSession, Account)>, StorageError>;
    /// Records activity on a live session (the idle timeout counts from here).
    async fn touch_operator_session(&self, id: i64, at: OffsetDateTime)
    -> Result<(), StorageError>;
    /// Ends one session (idle, expired, or refused); false when it had already ended.
    async fn end_operator_session(
        &self,
        id: i64,
        reason: &str,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<bool, StorageError>;

    // The audit trail.
    /// Appends records on their own (a denial, a read, a failed action).
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        key: &AuditKey,
    ) -> Result<(), StorageError>;
    /// Records matching `query`, in chain order (or reversed).
    fn audit_records(
        &self,
        query: AuditQuery,
    ) -> BoxStream<'static, Result<AuditRecord, StorageError>>;
    /// The whole chain for verification, from one snapshot (see [`ChainItem`]).
    fn audit_chain(&self) -> BoxStream<'static, Result<ChainItem, StorageError>>;
    /// Retention: seals every record older than `cutoff` (a prefix of the chain) with a
    /// checkpoint record built from `entry`, then deletes them. `None` when nothing is old
    /// enough.
    async fn seal_audit(
        &self,
        cutoff: OffsetDateTime,
        entry: AuditEntry,
        key: &AuditKey,
    ) -> Result<Option<(Checkpoint, u64)>, StorageError>;
}
