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

use crate::domain::{
    Administrator, LoginRecord, LoginWrite, NewAdministrator, NewToken, NewUnit, Session, Token,
    TokenChange, TokenEvent, TokenState, TokenStatus, TransitionError, Unit,
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
    async fn insert_unit(&self, unit: &NewUnit, at: OffsetDateTime) -> Result<Unit, StorageError>;
    async fn unit(&self, code: &UnitCode) -> Result<Option<Unit>, StorageError>;
    /// Every unit (or the unit `under` and everything below it), parents before children.
    async fn units(&self, under: Option<&UnitCode>) -> Result<Vec<Unit>, StorageError>;
    /// Moves a unit (with its subtree) under another unit, or to the top with `None`.
    async fn move_unit(
        &self,
        code: &UnitCode,
        new_parent: Option<&UnitCode>,
        at: OffsetDateTime,
    ) -> Result<Unit, StorageError>;
    async fn set_unit_active(
        &self,
        code: &UnitCode,
        active: bool,
        at: OffsetDateTime,
    ) -> Result<Unit, StorageError>;
    /// Creates `units` (parents listed before their children) and adds `admins`, all in one
    /// transaction: either everything is stored or nothing is.
    async fn import(
        &self,
        units: &[NewUnit],
        admins: &[NewAdministrator],
        at: OffsetDateTime,
    ) -> Result<(), StorageError>;

    // Administrators.
    async fn insert_administrator(
        &self,
        admin: &NewAdministrator,
        at: OffsetDateTime,
    ) -> Result<Administrator, StorageError>;
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
    ) -> Result<Token, StorageError>;
    async fn token(&self, serial: &TokenSerial) -> Result<Option<Token>, StorageError>;
    async fn change_token(
        &self,
        serial: &TokenSerial,
        change: &TokenChange,
        actor: &str,
        reason: &str,
        at: OffsetDateTime,
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
    /// Writes login records (and the sessions of successful logins) in one transaction, and
    /// returns only once it is durably committed.
    async fn record_logins(&self, batch: &[LoginWrite]) -> Result<(), StorageError>;
    async fn session(&self, id: Uuid) -> Result<Option<Session>, StorageError>;
    /// Ends a live session; false when it was already ended or does not exist.
    async fn end_session(&self, id: Uuid, at: OffsetDateTime) -> Result<bool, StorageError>;
    /// Login records in time order, streamed from one consistent snapshot: records committed
    /// after the stream starts are not in it.
    fn logins(&self, query: LoginQuery) -> BoxStream<'static, Result<LoginRecord, StorageError>>;
}
