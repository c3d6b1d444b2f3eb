//! The SQLite backend: one file in WAL mode with `synchronous=FULL` (a commit is on disk before
//! it is acknowledged) and foreign keys on. One writer connection (SQLite has one writer at a
//! time anyway; batching happens above, in the login writer) and a pool of read-only readers
//! that WAL lets run beside it.

mod accounts;
mod audit;
mod logins;
mod tokens;
mod units;

use super::{
    AccountChange, Audited, Backend, Credential, LoginPageQuery, LoginQuery, Storage, StorageError,
    TokenFilter, UnitUpdate,
};
use crate::audit::{AuditEntry, AuditKey, AuditQuery, AuditRecord, ChainItem, Checkpoint};
use crate::domain::account::{
    Account, LoginAccount, NewAccount, OperatorSession, PendingSecret, SecurityPolicy,
};
use crate::domain::{
    Administrator, LoginRecord, LoginWrite, Mobile, NewAdministrator, NewToken, NewUnit, Session,
    Token, TokenChange, TokenEvent, TokenState, Unit,
};
use futures::stream::BoxStream;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};
use uuid::Uuid;

/// How many read connections run beside the writer.
const READERS: u32 = 8;

#[derive(Debug, Clone)]
pub struct SqliteStorage {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating if missing) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        create_private(path).map_err(|e| StorageError::Connect(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Another process (the CLI beside a running service) may hold the write lock.
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StorageError::Connect)?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(StorageError::Connect)?;
        Ok(SqliteStorage { writer, reader })
    }

    /// A write transaction that takes the write lock at once, so a transaction that reads
    /// before writing never fails half-way on another process's lock.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StorageError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Creates the database file owner-only if it is missing: it holds administrators' mobile
/// numbers, and SQLite gives its WAL and shared-memory files the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait::async_trait]
impl Storage for SqliteStorage {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_unit(
        &self,
        unit: &NewUnit,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError> {
        let mut tx = self.write_tx().await?;
        let id = units::insert(&mut tx, unit, at).await?;
        let created = units::by_id(&mut *tx, id).await?;
        let mut entry = audit.entry;
        entry
            .detail
            .insert("after".into(), units::unit_summary(&created));
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn unit(&self, code: &UnitCode) -> Result<Option<Unit>, StorageError> {
        units::by_code(&self.reader, code).await
    }

    async fn units(&self, under: Option<&UnitCode>) -> Result<Vec<Unit>, StorageError> {
        units::list(&self.reader, under).await
    }

    async fn move_unit(
        &self,
        code: &UnitCode,
        new_parent: Option<&UnitCode>,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError> {
        let mut tx = self.write_tx().await?;
        let before = units::by_code(&mut *tx, code)
            .await?
            .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
        let id = units::move_to(&mut tx, code, new_parent, at).await?;
        let moved = units::by_id(&mut *tx, id).await?;
        let mut entry = audit.entry;
        let parent =
            |u: &Unit| serde_json::json!({"parent": u.parent_code.as_ref().map(UnitCode::as_str)});
        entry.detail.insert("before".into(), parent(&before));
        entry.detail.insert("after".into(), parent(&moved));
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn set_unit_active(
        &self,
        code: &UnitCode,
        active: bool,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError> {
        let update = UnitUpdate {
            active: Some(active),
            ..UnitUpdate::default()
        };
        self.update_unit(code, &update, at, audit).await
    }

    async fn update_unit(
        &self,
        code: &UnitCode,
        update: &UnitUpdate,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Unit, StorageError> {
        let mut tx = self.write_tx().await?;
        let before = units::by_code(&mut *tx, code)
            .await?
            .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
        let id = units::update(&mut tx, code, update, at).await?;
        let after = units::by_id(&mut *tx, id).await?;
        let mut entry = audit.entry;
        entry
            .detail
            .insert("before".into(), units::unit_summary(&before));
        entry
            .detail
            .insert("after".into(), units::unit_summary(&after));
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_unit(&self, code: &UnitCode, audit: Audited) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        let before = units::by_code(&mut *tx, code)
            .await?
            .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
        let mut entry = audit.entry;
        entry.unit_path = Some(before.path.clone());
        entry
            .detail
            .insert("before".into(), units::unit_summary(&before));
        units::delete(&mut tx, code).await?;
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn import(
        &self,
        units_in: &[NewUnit],
        admins: &[NewAdministrator],
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        for unit in units_in {
            units::insert(&mut tx, unit, at).await?;
        }
        for admin in admins {
            units::insert_admin(&mut tx, admin, at).await?;
        }
        audit::append(&mut tx, &audit.key, [audit.entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_administrator(
        &self,
        admin: &NewAdministrator,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Administrator, StorageError> {
        let mut tx = self.write_tx().await?;
        let id = units::insert_admin(&mut tx, admin, at).await?;
        let mut entry = audit.entry;
        entry.target = Some(format!("administrator:{id}"));
        audit::append(&mut tx, &audit.key, [entry]).await?;
        let added = units::admin_by_id(&mut tx, id)
            .await?
            .ok_or(StorageError::UnknownAdministrator(id))?;
        tx.commit().await?;
        Ok(added)
    }

    async fn administrator(&self, id: i64) -> Result<Option<Administrator>, StorageError> {
        let mut conn = self.reader.acquire().await?;
        units::admin_by_id(&mut conn, id).await
    }

    async fn update_administrator(
        &self,
        id: i64,
        name: &str,
        mobile: &Mobile,
        audit: Audited,
    ) -> Result<Administrator, StorageError> {
        let mut tx = self.write_tx().await?;
        let before = units::admin_by_id(&mut tx, id)
            .await?
            .ok_or(StorageError::UnknownAdministrator(id))?;
        units::update_admin(&mut tx, id, name, mobile).await?;
        let after = units::admin_by_id(&mut tx, id)
            .await?
            .ok_or(StorageError::UnknownAdministrator(id))?;
        let mut entry = audit.entry;
        let summary = |a: &Administrator| serde_json::json!({"name": a.name, "mobile": a.mobile});
        entry.detail.insert("before".into(), summary(&before));
        entry.detail.insert("after".into(), summary(&after));
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_administrator(&self, id: i64, audit: Audited) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        let before = units::admin_by_id(&mut tx, id)
            .await?
            .ok_or(StorageError::UnknownAdministrator(id))?;
        let mut entry = audit.entry;
        entry.detail.insert(
            "before".into(),
            serde_json::json!({"name": before.name, "mobile": before.mobile, "unit": before.unit_code}),
        );
        entry.unit = Some(before.unit_code.clone());
        units::delete_admin(&mut tx, id).await?;
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn administrators(
        &self,
        under: Option<&UnitCode>,
    ) -> Result<Vec<Administrator>, StorageError> {
        units::admins(&self.reader, under, None).await
    }

    async fn register_token(
        &self,
        token: &NewToken,
        unit: Option<&UnitCode>,
        actor: &str,
        reason: &str,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Token, StorageError> {
        let mut tx = self.write_tx().await?;
        tokens::register(&mut tx, token, unit, actor, reason, at).await?;
        audit::append(&mut tx, &audit.key, [audit.entry]).await?;
        tx.commit().await?;
        tokens::by_serial(&self.writer, &token.serial)
            .await?
            .ok_or_else(|| StorageError::UnknownToken(token.serial.clone()))
    }

    async fn token(&self, serial: &TokenSerial) -> Result<Option<Token>, StorageError> {
        tokens::by_serial(&self.reader, serial).await
    }

    async fn change_token(
        &self,
        serial: &TokenSerial,
        change: &TokenChange,
        actor: &str,
        reason: &str,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Token, StorageError> {
        let mut tx = self.write_tx().await?;
        let summary = tokens::change(&mut tx, serial, change, actor, reason, at).await?;
        let mut entry = audit.entry;
        summary.describe(&mut entry);
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        tokens::by_serial(&self.writer, serial)
            .await?
            .ok_or_else(|| StorageError::UnknownToken(serial.clone()))
    }

    async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>, StorageError> {
        tokens::list(&self.reader, filter).await
    }

    async fn token_history(&self, serial: &TokenSerial) -> Result<Vec<TokenEvent>, StorageError> {
        tokens::history(&self.reader, serial).await
    }

    async fn token_states_at(
        &self,
        at: OffsetDateTime,
        under: Option<&UnitCode>,
    ) -> Result<Vec<TokenState>, StorageError> {
        tokens::states_at(&self.reader, at, under).await
    }

    async fn credential(
        &self,
        fingerprint: &SpkiFingerprint,
    ) -> Result<Option<Credential>, StorageError> {
        tokens::credential(&self.reader, fingerprint).await
    }

    async fn record_logins(
        &self,
        batch: &[LoginWrite],
        key: &AuditKey,
    ) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        logins::insert(&mut tx, batch, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StorageError> {
        logins::session(&self.reader, id).await
    }

    async fn end_session(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<bool, StorageError> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("UPDATE sessions SET ended_at = ?1 WHERE id = ?2 AND ended_at IS NULL")
                .bind(crate::clock::to_unix_micros(at))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        let ended = done.rows_affected() == 1;
        if ended {
            audit::append(&mut tx, &audit.key, [audit.entry]).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    fn logins(&self, query: LoginQuery) -> BoxStream<'static, Result<LoginRecord, StorageError>> {
        logins::stream(self.reader.clone(), query)
    }

    async fn login_page(&self, query: &LoginPageQuery) -> Result<Vec<LoginRecord>, StorageError> {
        logins::page(&self.reader, query).await
    }

    async fn security_policy(&self) -> Result<SecurityPolicy, StorageError> {
        accounts::policy(&self.reader).await
    }

    async fn set_security_policy(
        &self,
        policy: &SecurityPolicy,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        let mut entry = audit.entry;
        entry.detail.insert(
            "before".into(),
            serde_json::to_value(accounts::policy(&mut *tx).await?).unwrap_or_default(),
        );
        entry.detail.insert(
            "after".into(),
            serde_json::to_value(policy).unwrap_or_default(),
        );
        accounts::set_policy(&mut tx, policy, at, &entry.actor).await?;
        audit::append(&mut tx, &audit.key, [entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_account(
        &self,
        account: &NewAccount,
        secret: &PendingSecret,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Account, StorageError> {
        let mut tx = self.write_tx().await?;
        let id = accounts::insert(&mut tx, account, secret, at).await?;
        audit::append(&mut tx, &audit.key, [audit.entry]).await?;
        let created = accounts::by_id(&mut tx, id)
            .await?
            .ok_or_else(|| StorageError::UnknownAccount(account.username.to_string()))?;
        tx.commit().await?;
        Ok(created)
    }

    async fn account(&self, username: &str) -> Result<Option<Account>, StorageError> {
        let mut conn = self.reader.acquire().await?;
        Ok(accounts::by_username(&mut conn, username)
            .await?
            .map(|l| l.account))
    }

    async fn accounts(&self) -> Result<Vec<Account>, StorageError> {
        accounts::all(&self.reader).await
    }

    async fn login_account(&self, username: &str) -> Result<Option<LoginAccount>, StorageError> {
        let mut conn = self.reader.acquire().await?;
        accounts::by_username(&mut conn, username).await
    }

    async fn password_history(
        &self,
        account_id: i64,
        count: u32,
    ) -> Result<Vec<String>, StorageError> {
        accounts::history(&self.reader, account_id, count).await
    }

    async fn update_account(
        &self,
        account_id: i64,
        change: &AccountChange,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<Account, StorageError> {
        let mut tx = self.write_tx().await?;
        if accounts::by_id(&mut tx, account_id).await?.is_none() {
            return Err(StorageError::UnknownAccount(account_id.to_string()));
        }
        accounts::update(&mut tx, account_id, change, at).await?;
        audit::append(&mut tx, &audit.key, [audit.entry]).await?;
        let after = accounts::by_id(&mut tx, account_id)
            .await?
            .ok_or_else(|| StorageError::UnknownAccount(account_id.to_string()))?;
        tx.commit().await?;
        Ok(after)
    }

    async fn operator_session(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<(OperatorSession, Account)>, StorageError> {
        accounts::session(&self.reader, token_sha256).await
    }

    async fn touch_operator_session(
        &self,
        id: i64,
        at: OffsetDateTime,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE operator_sessions SET last_seen_at = ?1 WHERE id = ?2 AND ended_at IS NULL",
        )
        .bind(crate::clock::to_unix_micros(at))
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn end_operator_session(
        &self,
        id: i64,
        reason: &str,
        at: OffsetDateTime,
        audit: Audited,
    ) -> Result<bool, StorageError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE operator_sessions SET ended_at = ?1, end_reason = ?2 \
             WHERE id = ?3 AND ended_at IS NULL",
        )
        .bind(crate::clock::to_unix_micros(at))
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let ended = done.rows_affected() == 1;
        if ended {
            audit::append(&mut tx, &audit.key, [audit.entry]).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        key: &AuditKey,
    ) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        audit::append(&mut tx, key, entries.iter().cloned()).await?;
        tx.commit().await?;
        Ok(())
    }

    fn audit_records(
        &self,
        query: AuditQuery,
    ) -> BoxStream<'static, Result<AuditRecord, StorageError>> {
        audit::records(self.reader.clone(), query)
    }

    fn audit_chain(&self) -> BoxStream<'static, Result<ChainItem, StorageError>> {
        audit::chain(self.reader.clone())
    }

    async fn seal_audit(
        &self,
        cutoff: OffsetDateTime,
        entry: AuditEntry,
        key: &AuditKey,
    ) -> Result<Option<(Checkpoint, u64)>, StorageError> {
        let mut tx = self.write_tx().await?;
        let sealed = audit::seal(&mut tx, cutoff, entry, key).await?;
        tx.commit().await?;
        Ok(sealed)
    }
}
