//! The PostgreSQL backend, for large deployments with any number of stateless service
//! replicas. Login records are indexed by (unit, time) and by time, so a month of a unit
//! subtree is a range scan; transactions lock the token row they change.

mod logins;
mod tokens;
mod units;

use super::{Backend, Credential, LoginQuery, Storage, StorageError, TokenFilter};
use crate::domain::{
    Administrator, LoginRecord, LoginWrite, NewAdministrator, NewToken, NewUnit, Session, Token,
    TokenChange, TokenEvent, TokenState, Unit,
};
use futures::stream::BoxStream;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;
use time::OffsetDateTime;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};
use uuid::Uuid;

/// Connections per service process.
const POOL_SIZE: u32 = 16;

#[derive(Debug, Clone)]
pub struct PostgresStorage {
    writer: PgPool,
    reader: PgPool,
}

impl PostgresStorage {
    /// Connects and brings the schema up to date (migrations take an advisory lock, so replicas
    /// starting together do not race).
    pub async fn connect(url: &str) -> Result<PostgresStorage, StorageError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(StorageError::Connect)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStorage {
            writer: pool.clone(),
            reader: pool,
        })
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StorageError> {
        Ok(self.writer.begin().await?)
    }
}

#[async_trait::async_trait]
impl Storage for PostgresStorage {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_unit(&self, unit: &NewUnit, at: OffsetDateTime) -> Result<Unit, StorageError> {
        let mut tx = self.write_tx().await?;
        let id = units::insert(&mut tx, unit, at).await?;
        tx.commit().await?;
        units::by_id(&self.writer, id).await
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
    ) -> Result<Unit, StorageError> {
        let mut tx = self.write_tx().await?;
        let id = units::move_to(&mut tx, code, new_parent, at).await?;
        tx.commit().await?;
        units::by_id(&self.writer, id).await
    }

    async fn set_unit_active(
        &self,
        code: &UnitCode,
        active: bool,
        at: OffsetDateTime,
    ) -> Result<Unit, StorageError> {
        let done = sqlx::query("UPDATE units SET active = $1, updated_at = $2 WHERE code = $3")
            .bind(active)
            .bind(at)
            .bind(code.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::UnknownUnit(code.clone()));
        }
        units::by_code(&self.writer, code)
            .await?
            .ok_or_else(|| StorageError::UnknownUnit(code.clone()))
    }

    async fn import(
        &self,
        units_in: &[NewUnit],
        admins: &[NewAdministrator],
        at: OffsetDateTime,
    ) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        for unit in units_in {
            units::insert(&mut tx, unit, at).await?;
        }
        for admin in admins {
            units::insert_admin(&mut tx, admin, at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_administrator(
        &self,
        admin: &NewAdministrator,
        at: OffsetDateTime,
    ) -> Result<Administrator, StorageError> {
        let mut tx = self.write_tx().await?;
        let id = units::insert_admin(&mut tx, admin, at).await?;
        tx.commit().await?;
        units::admins(&self.writer, None, Some(id))
            .await?
            .pop()
            .ok_or_else(|| StorageError::Corrupt("administrator vanished after insert".into()))
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
    ) -> Result<Token, StorageError> {
        let mut tx = self.write_tx().await?;
        tokens::register(&mut tx, token, unit, actor, reason, at).await?;
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
    ) -> Result<Token, StorageError> {
        let mut tx = self.write_tx().await?;
        tokens::change(&mut tx, serial, change, actor, reason, at).await?;
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

    async fn record_logins(&self, batch: &[LoginWrite]) -> Result<(), StorageError> {
        let mut tx = self.write_tx().await?;
        logins::insert(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StorageError> {
        logins::session(&self.reader, id).await
    }

    async fn end_session(&self, id: Uuid, at: OffsetDateTime) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    fn logins(&self, query: LoginQuery) -> BoxStream<'static, Result<LoginRecord, StorageError>> {
        logins::stream(self.reader.clone(), query)
    }
}
