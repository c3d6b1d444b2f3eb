//! Sessions and login records on PostgreSQL.

use crate::audit::{AuditKey, login_entry};
use crate::domain::unit::subtree_upper_bound;
use crate::domain::{LoginRecord, LoginWrite, Session};
use crate::storage::{LoginPageQuery, LoginQuery, StorageError, decode};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::HashMap;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// Writes the batch with one statement per table (arrays unnested server-side), so a batch of
/// hundreds of logins costs two round trips and one commit.
pub(super) async fn insert(
    conn: &mut PgConnection,
    batch: &[LoginWrite],
    key: &AuditKey,
) -> Result<(), StorageError> {
    let mut s_id = Vec::new();
    let mut s_token = Vec::new();
    let mut s_unit = Vec::new();
    let mut s_at = Vec::new();
    let mut s_expires = Vec::new();
    for login in batch {
        if let Some(session) = &login.session
            && let (Some(token_id), Some(unit_id)) = (login.token_id, login.unit_id)
        {
            s_id.push(session.id);
            s_token.push(token_id);
            s_unit.push(unit_id);
            s_at.push(login.at);
            s_expires.push(session.expires_at);
        }
    }
    if !s_id.is_empty() {
        sqlx::query(
            "INSERT INTO sessions (id, token_id, unit_id, created_at, expires_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::timestamptz[], $5::timestamptz[])",
        )
        .bind(s_id)
        .bind(s_token)
        .bind(s_unit)
        .bind(s_at)
        .bind(s_expires)
        .execute(&mut *conn)
        .await?;
    }
    let at: Vec<_> = batch.iter().map(|l| l.at).collect();
    let kind: Vec<_> = batch.iter().map(|l| l.kind.code()).collect();
    let outcome: Vec<_> = batch.iter().map(|l| l.outcome.code()).collect();
    let token: Vec<_> = batch.iter().map(|l| l.token_id).collect();
    let unit: Vec<_> = batch.iter().map(|l| l.unit_id).collect();
    let fp: Vec<_> = batch
        .iter()
        .map(|l| l.fingerprint.as_ref().map(|f| f.as_bytes().to_vec()))
        .collect();
    let claimed: Vec<_> = batch.iter().map(|l| l.claimed_serial.clone()).collect();
    let source: Vec<_> = batch
        .iter()
        .map(|l| l.source.map(|s| s.to_string()))
        .collect();
    let version: Vec<_> = batch.iter().map(|l| l.client_version.clone()).collect();
    let session: Vec<_> = batch
        .iter()
        .map(|l| l.session.as_ref().map(|s| s.id).or(l.in_session))
        .collect();
    sqlx::query(
        "INSERT INTO login_records (at, kind, outcome, token_id, unit_id, spki_sha256, \
         claimed_serial, source, client_version, session_id) \
         SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
         $6::bytea[], $7::text[], $8::text[], $9::text[], $10::uuid[])",
    )
    .bind(at)
    .bind(kind)
    .bind(outcome)
    .bind(token)
    .bind(unit)
    .bind(fp)
    .bind(claimed)
    .bind(source)
    .bind(version)
    .bind(session)
    .execute(&mut *conn)
    .await?;
    // The audit records, with every serial and unit the batch names read in two queries.
    let token_ids: Vec<i64> = batch.iter().filter_map(|l| l.token_id).collect();
    let unit_ids: Vec<i64> = batch.iter().filter_map(|l| l.unit_id).collect();
    let serials: HashMap<i64, String> =
        sqlx::query_as("SELECT id, serial FROM tokens WHERE id = ANY($1)")
            .bind(&token_ids)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let units: HashMap<i64, (String, String)> = sqlx::query_as::<_, (i64, String, String)>(
        "SELECT id, code, path FROM units WHERE id = ANY($1)",
    )
    .bind(&unit_ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(id, code, path)| (id, (code, path)))
    .collect();
    let mut entries = Vec::with_capacity(batch.len());
    for login in batch {
        let serial = login.token_id.and_then(|id| serials.get(&id));
        let unit = login.unit_id.and_then(|id| units.get(&id));
        let code = unit.map(|(c, _)| decode::unit_code(c)).transpose()?;
        entries.push(login_entry(
            login,
            serial.map(String::as_str),
            code.as_ref(),
            unit.map(|(_, p)| p.as_str()),
        ));
    }
    super::audit::append(conn, key, entries).await
}

pub(super) async fn session(pool: &PgPool, id: Uuid) -> Result<Option<Session>, StorageError> {
    let row = sqlx::query(
        "SELECT s.id, s.token_id, t.serial, s.unit_id, u.code, u.name, s.created_at, \
         s.expires_at, s.ended_at FROM sessions s JOIN tokens t ON t.id = s.token_id \
         JOIN units u ON u.id = s.unit_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let ended: Option<time::OffsetDateTime> = row.try_get(8)?;
    Ok(Some(Session {
        id: row.try_get(0)?,
        token_id: row.try_get(1)?,
        token_serial: decode::serial(row.try_get(2)?)?,
        unit_id: row.try_get(3)?,
        unit_code: decode::unit_code(row.try_get(4)?)?,
        unit_name: row.try_get(5)?,
        created_at: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        ended_at: ended,
    }))
}

const SELECT_LOGINS: &str = "SELECT lr.id, lr.at, lr.kind, lr.outcome, t.serial, u.code, \
     u.name AS unit_name, lr.spki_sha256, lr.claimed_serial, lr.source, lr.client_version, \
     lr.session_id, CASE WHEN lr.kind = 'login' THEN s.ended_at END AS logout_at \
     FROM login_records lr LEFT JOIN tokens t ON t.id = lr.token_id \
     LEFT JOIN units u ON u.id = lr.unit_id LEFT JOIN sessions s ON s.id = lr.session_id";

fn login_from_row(row: &PgRow) -> Result<LoginRecord, StorageError> {
    let logout: Option<time::OffsetDateTime> = row.try_get("logout_at")?;
    Ok(LoginRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
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
        logout_at: logout,
    })
}

/// Streams the records from one repeatable-read snapshot through a bounded channel,
/// so a slow consumer holds back the reader instead of buffering the month in memory.
pub(super) fn stream(
    pool: PgPool,
    query: LoginQuery,
) -> BoxStream<'static, Result<LoginRecord, StorageError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let outcome: Result<(), StorageError> = async {
            let mut read = pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let from = query.from;
            let to = query.to;
            let mut rows = match &query.under {
                None => {
                    let sql = sqlx::AssertSqlSafe(format!(
                        "{SELECT_LOGINS} WHERE lr.at >= $1 AND lr.at < $2 ORDER BY lr.at, lr.id"
                    ));
                    sqlx::query(sql).bind(from).bind(to).fetch(&mut *read)
                }
                Some(code) => {
                    let path: String = sqlx::query_scalar("SELECT path FROM units WHERE code = $1")
                        .bind(code.as_str())
                        .fetch_optional(&mut *read)
                        .await?
                        .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
                    let bound = subtree_upper_bound(&path);
                    let sql = sqlx::AssertSqlSafe(format!(
                        "{SELECT_LOGINS} WHERE lr.at >= $1 AND lr.at < $2 \
                         AND u.path >= $3 AND u.path < $4 ORDER BY lr.at, lr.id"
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
    pool: &PgPool,
    q: &LoginPageQuery,
) -> Result<Vec<LoginRecord>, StorageError> {
    let (from, to) = match &q.under {
        Some(code) => {
            let path: String = sqlx::query_scalar("SELECT path FROM units WHERE code = $1")
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
        ("lr.id > $8", "ASC")
    } else {
        ("lr.id < $8", "DESC")
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT_LOGINS} WHERE ($1::timestamptz IS NULL OR lr.at >= $1) \
         AND ($2::timestamptz IS NULL OR lr.at < $2) \
         AND ($3::text IS NULL OR (u.path >= $3 AND u.path < $4::text)) \
         AND ($5::text IS NULL OR t.serial = $5) AND ($6::text IS NULL OR lr.kind = $6) \
         AND ($7::text IS NULL OR lr.outcome = $7) AND ($8::int8 IS NULL OR {after}) \
         ORDER BY lr.id {order} LIMIT $9"
    ));
    let rows = sqlx::query(sql)
        .bind(q.from)
        .bind(q.to)
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
