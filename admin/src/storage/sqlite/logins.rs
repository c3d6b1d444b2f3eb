//! Sessions and login records on SQLite.

use crate::audit::{AuditEntry, AuditKey, login_entry};
use crate::clock::{from_unix_micros, to_unix_micros};
use crate::domain::unit::subtree_upper_bound;
use crate::domain::{LoginRecord, LoginWrite, Session};
use crate::storage::{LoginPageQuery, LoginQuery, StorageError, decode};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// The audit record of a login, with the token's serial and unit read in the transaction.
async fn audit_entry(
    conn: &mut SqliteConnection,
    login: &LoginWrite,
) -> Result<AuditEntry, StorageError> {
    let serial: Option<String> = match login.token_id {
        Some(id) => {
            sqlx::query_scalar("SELECT serial FROM tokens WHERE id = ?1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    let unit: Option<(String, String)> = match login.unit_id {
        Some(id) => {
            sqlx::query_as("SELECT code, path FROM units WHERE id = ?1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    let code = unit
        .as_ref()
        .map(|(c, _)| decode::unit_code(c))
        .transpose()?;
    Ok(login_entry(
        login,
        serial.as_deref(),
        code.as_ref(),
        unit.as_ref().map(|(_, p)| p.as_str()),
    ))
}

pub(super) async fn insert(
    conn: &mut SqliteConnection,
    batch: &[LoginWrite],
    key: &AuditKey,
) -> Result<(), StorageError> {
    let mut entries = Vec::with_capacity(batch.len());
    for login in batch {
        entries.push(audit_entry(conn, login).await?);
        if let Some(session) = &login.session
            && let (Some(token_id), Some(unit_id)) = (login.token_id, login.unit_id)
        {
            sqlx::query(
                "INSERT INTO sessions (id, token_id, unit_id, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(session.id)
            .bind(token_id)
            .bind(unit_id)
            .bind(to_unix_micros(login.at))
            .bind(to_unix_micros(session.expires_at))
            .execute(&mut *conn)
            .await?;
        }
        let session_id = login.session.as_ref().map(|s| s.id).or(login.in_session);
        sqlx::query(
            "INSERT INTO login_records (at, kind, outcome, token_id, unit_id, spki_sha256, \
             claimed_serial, source, client_version, session_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(to_unix_micros(login.at))
        .bind(login.kind.code())
        .bind(login.outcome.code())
        .bind(login.token_id)
        .bind(login.unit_id)
        .bind(login.fingerprint.as_ref().map(|f| f.as_bytes().to_vec()))
        .bind(&login.claimed_serial)
        .bind(login.source.map(|s| s.to_string()))
        .bind(&login.client_version)
        .bind(session_id)
        .execute(&mut *conn)
        .await?;
    }
    super::audit::append(conn, key, entries).await
}

pub(super) async fn session(pool: &SqlitePool, id: Uuid) -> Result<Option<Session>, StorageError> {
    let row = sqlx::query(
        "SELECT s.id, s.token_id, t.serial, s.unit_id, u.code, u.name, s.created_at, \
         s.expires_at, s.ended_at FROM sessions s JOIN tokens t ON t.id = s.token_id \
         JOIN units u ON u.id = s.unit_id WHERE s.id = ?1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let ended: Option<i64> = row.try_get(8)?;
    Ok(Some(Session {
        id: row.try_get(0)?,
        token_id: row.try_get(1)?,
        token_serial: decode::serial(row.try_get(2)?)?,
        unit_id: row.try_get(3)?,
        unit_code: decode::unit_code(row.try_get(4)?)?,
        unit_name: row.try_get(5)?,
        created_at: from_unix_micros(row.try_get(6)?),
        expires_at: from_unix_micros(row.try_get(7)?),
        ended_at: ended.map(from_unix_micros),
    }))
}

const SELECT_LOGINS: &str = "SELECT lr.id, lr.at, lr.kind, lr.outcome, t.serial, u.code, \
     u.name AS unit_name, lr.spki_sha256, lr.claimed_serial, lr.source, lr.client_version, \
     lr.session_id, CASE WHEN lr.kind = 'login' THEN s.ended_at END AS logout_at \
     FROM login_records lr LEFT JOIN tokens t ON t.id = lr.token_id \
     LEFT JOIN units u ON u.id = lr.unit_id LEFT JOIN sessions s ON s.id = lr.session_id";

fn login_from_row(row: &SqliteRow) -> Result<LoginRecord, StorageError> {
    let logout: Option<i64> = row.try_get("logout_at")?;
    Ok(LoginRecord {
        id: row.try_get("id")?,
        at: from_unix_micros(row.try_get("at")?),
        kind: decode::login_kind(row.try_get("kind")?)?,
        outcome: decode::outcome(row.try_get("outcome")?)?,
        token_serial: decode::opt_serial(row.try_get("serial")?)?,
        unit_code: decode::opt_unit_code(row.try_get("code")?)?,
        unit_name: row.try_get("unit_name")?,
        fingerprint: decode::opt_fingerprint(row.try_get("spki_sha256")?)?,
        claimed_serial: row.try_get("claimed_serial")?,
        source: row.try_get("source")?,
        client_version: row.try_get("client_version")?,
        session_id: row.try_get("session_id")?,
        logout_at: logout.map(from_unix_micros),
    })
}

/// Streams the records from one read transaction (one WAL snapshot) through a bounded channel,
/// so a slow consumer holds back the reader instead of buffering the month in memory.
pub(super) fn stream(
    pool: SqlitePool,
    query: LoginQuery,
) -> BoxStream<'static, Result<LoginRecord, StorageError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let outcome: Result<(), StorageError> = async {
            let mut read = pool.begin().await?;
            let from = to_unix_micros(query.from);
            let to = to_unix_micros(query.to);
            let mut rows = match &query.under {
                None => {
                    let sql = sqlx::AssertSqlSafe(format!(
                        "{SELECT_LOGINS} WHERE lr.at >= ?1 AND lr.at < ?2 ORDER BY lr.at, lr.id"
                    ));
                    sqlx::query(sql).bind(from).bind(to).fetch(&mut *read)
                }
                Some(code) => {
                    let path: String = sqlx::query_scalar("SELECT path FROM units WHERE code = ?1")
                        .bind(code.as_str())
                        .fetch_optional(&mut *read)
                        .await?
                        .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
                    let bound = subtree_upper_bound(&path);
                    let sql = sqlx::AssertSqlSafe(format!(
                        "{SELECT_LOGINS} WHERE lr.at >= ?1 AND lr.at < ?2 \
                         AND u.path >= ?3 AND u.path < ?4 ORDER BY lr.at, lr.id"
                    ));
                    sqlx::query(sql)
                        .bind(from)
                        .bind(to)
                        .bind(path)
                        .bind(bound)
                        .fetch(&mut *read)
                }
            };
            while let Some(row) = rows.try_next().await? {
                if tx.send(login_from_row(&row)).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            let _ = tx.send(Err(e)).await;
        }
    });
    ReceiverStream::new(rx).boxed()
}

/// One page of login records (see `LoginPageQuery`).
pub(super) async fn page(
    pool: &SqlitePool,
    q: &LoginPageQuery,
) -> Result<Vec<LoginRecord>, StorageError> {
    let (from, to) = match &q.under {
        Some(code) => {
            let path: String = sqlx::query_scalar("SELECT path FROM units WHERE code = ?1")
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
            let bound = subtree_upper_bound(&path);
            (Some(path), Some(bound))
        }
        None => (None, None),
    };
    let (after, order) = if q.ascending {
        ("lr.id > ?8", "ASC")
    } else {
        ("lr.id < ?8", "DESC")
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT_LOGINS} WHERE (?1 IS NULL OR lr.at >= ?1) AND (?2 IS NULL OR lr.at < ?2) \
         AND (?3 IS NULL OR (u.path >= ?3 AND u.path < ?4)) AND (?5 IS NULL OR t.serial = ?5) \
         AND (?6 IS NULL OR lr.kind = ?6) AND (?7 IS NULL OR lr.outcome = ?7) \
         AND (?8 IS NULL OR {after}) ORDER BY lr.id {order} LIMIT ?9"
    ));
    let rows = sqlx::query(sql)
        .bind(q.from.map(to_unix_micros))
        .bind(q.to.map(to_unix_micros))
        .bind(from)
        .bind(to)
        .bind(q.token.as_ref().map(|t| t.as_str().to_owned()))
        .bind(q.kind.map(|k| k.code()))
        .bind(q.outcome.as_deref())
        .bind(q.cursor)
        .bind(i64::from(q.limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(login_from_row).collect()
}
