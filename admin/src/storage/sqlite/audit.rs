//! The audit chain on SQLite: appends inside the caller's write transaction (SQLite has one
//! writer, so the head read here is the head), reads from one WAL snapshot.

use crate::audit::{
    AuditEntry, AuditHead, AuditKey, AuditQuery, AuditRecord, ChainItem, Checkpoint, RecordKind,
};
use crate::clock::{from_unix_micros, to_unix_micros};
use crate::storage::StorageError;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tokio_stream::wrappers::ReceiverStream;

fn mac32(bytes: &[u8], what: &str) -> Result<[u8; 32], StorageError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StorageError::Corrupt(format!("{what} of {} bytes", bytes.len())))
}

async fn head(conn: &mut SqliteConnection) -> Result<AuditHead, StorageError> {
    let row =
        sqlx::query("SELECT last_id, last_mac, key_id, head_mac FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    let last_mac: Vec<u8> = row.try_get(1)?;
    let key_id: Option<Vec<u8>> = row.try_get(2)?;
    let head_mac: Option<Vec<u8>> = row.try_get(3)?;
    Ok(AuditHead {
        last_id: row.try_get(0)?,
        last_mac: mac32(&last_mac, "chain head MAC")?,
        key_id: key_id.and_then(|k| <[u8; 8]>::try_from(k.as_slice()).ok()),
        head_mac: head_mac.and_then(|m| <[u8; 32]>::try_from(m.as_slice()).ok()),
    })
}

async fn insert(conn: &mut SqliteConnection, r: &AuditRecord) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO audit_log (id, kind, at, actor, actor_roles, action, target, unit_code, \
         unit_path, result, source, detail, sealed_through, sealed_mac, prev_mac, mac) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )
    .bind(r.id)
    .bind(&r.kind)
    .bind(to_unix_micros(r.at))
    .bind(&r.actor)
    .bind(&r.actor_roles)
    .bind(&r.action)
    .bind(&r.target)
    .bind(&r.unit_code)
    .bind(&r.unit_path)
    .bind(&r.result)
    .bind(&r.source)
    .bind(&r.detail)
    .bind(r.sealed_through)
    .bind(r.sealed_mac.map(|m| m.to_vec()))
    .bind(r.prev_mac.to_vec())
    .bind(r.mac.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn advance(
    conn: &mut SqliteConnection,
    key: &AuditKey,
    last_id: i64,
    last_mac: &[u8; 32],
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE audit_head SET last_id = ?1, last_mac = ?2, key_id = ?3, head_mac = ?4 WHERE id = 1",
    )
    .bind(last_id)
    .bind(last_mac.to_vec())
    .bind(key.id().to_vec())
    .bind(key.head_mac(last_id, last_mac).to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The head, after checking that it was written with this key.
async fn locked_head(
    conn: &mut SqliteConnection,
    key: &AuditKey,
) -> Result<AuditHead, StorageError> {
    let h = head(conn).await?;
    if h.key_id.is_some_and(|k| k != key.id()) {
        return Err(StorageError::AuditKeyMismatch);
    }
    Ok(h)
}

/// Appends `entries` to the chain inside the caller's transaction.
pub(super) async fn append(
    conn: &mut SqliteConnection,
    key: &AuditKey,
    entries: impl IntoIterator<Item = AuditEntry>,
) -> Result<(), StorageError> {
    let h = locked_head(conn, key).await?;
    let (mut last_id, mut last_mac) = (h.last_id, h.last_mac);
    for mut entry in entries {
        if entry.unit_path.is_none()
            && let Some(unit) = &entry.unit
        {
            entry.unit_path = sqlx::query_scalar("SELECT path FROM units WHERE code = ?1")
                .bind(unit.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        }
        let mut record = AuditRecord::from_entry(&entry, last_id + 1, last_mac);
        record.mac = key.mac(&record);
        insert(conn, &record).await?;
        (last_id, last_mac) = (record.id, record.mac);
    }
    advance(conn, key, last_id, &last_mac).await
}

fn record_from_row(row: &SqliteRow) -> Result<AuditRecord, StorageError> {
    let id: i64 = row.try_get("id")?;
    let bad = |e: sqlx::Error| StorageError::Corrupt(format!("audit record {id}: {e}"));
    let sealed_mac: Option<Vec<u8>> = row.try_get("sealed_mac").map_err(bad)?;
    let prev_mac: Vec<u8> = row.try_get("prev_mac").map_err(bad)?;
    let mac: Vec<u8> = row.try_get("mac").map_err(bad)?;
    Ok(AuditRecord {
        id,
        kind: row.try_get("kind").map_err(bad)?,
        at: from_unix_micros(row.try_get("at").map_err(bad)?),
        actor: row.try_get("actor").map_err(bad)?,
        actor_roles: row.try_get("actor_roles").map_err(bad)?,
        action: row.try_get("action").map_err(bad)?,
        target: row.try_get("target").map_err(bad)?,
        unit_code: row.try_get("unit_code").map_err(bad)?,
        unit_path: row.try_get("unit_path").map_err(bad)?,
        result: row.try_get("result").map_err(bad)?,
        source: row.try_get("source").map_err(bad)?,
        detail: row.try_get("detail").map_err(bad)?,
        sealed_through: row.try_get("sealed_through").map_err(bad)?,
        sealed_mac: sealed_mac
            .map(|m| mac32(&m, &format!("audit record {id} sealed MAC")))
            .transpose()?,
        prev_mac: mac32(&prev_mac, &format!("audit record {id} previous MAC"))?,
        mac: mac32(&mac, &format!("audit record {id} MAC"))?,
    })
}

const SELECT: &str = "SELECT id, kind, at, actor, actor_roles, action, target, unit_code, \
     unit_path, result, source, detail, sealed_through, sealed_mac, prev_mac, mac FROM audit_log";

/// Records matching the query, streamed from one read transaction.
pub(super) fn records(
    pool: SqlitePool,
    q: AuditQuery,
) -> BoxStream<'static, Result<AuditRecord, StorageError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let outcome: Result<(), StorageError> = async {
            let mut read = pool.begin().await?;
            let bound = q
                .under_path
                .as_deref()
                .map(crate::domain::unit::subtree_upper_bound);
            let (after, order) = if q.descending {
                ("id < ?8", "DESC")
            } else {
                ("id > ?8", "ASC")
            };
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2) \
                 AND (?3 IS NULL OR (unit_path >= ?3 AND unit_path < ?4)) \
                 AND (?5 IS NULL OR actor = ?5) AND (?6 IS NULL OR action = ?6) \
                 AND (?7 IS NULL OR result = ?7) AND (?8 IS NULL OR {after}) \
                 ORDER BY id {order} LIMIT ?9"
            ));
            let mut rows = sqlx::query(sql)
                .bind(q.from.map(to_unix_micros))
                .bind(q.to.map(to_unix_micros))
                .bind(q.under_path.as_deref())
                .bind(bound)
                .bind(q.actor.as_deref())
                .bind(q.action.as_deref())
                .bind(q.result.map(|r| r.code()))
                .bind(q.after_id)
                .bind(q.limit.map_or(-1, i64::from))
                .fetch(&mut *read);
            while let Some(row) = rows.try_next().await? {
                if tx.send(record_from_row(&row)).await.is_err() {
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

/// The head, the anchoring checkpoint and every record, from one read transaction.
pub(super) fn chain(pool: SqlitePool) -> BoxStream<'static, Result<ChainItem, StorageError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        let outcome: Result<(), StorageError> = async {
            let mut read = pool.begin().await?;
            let h = head(&mut read).await?;
            if tx.send(Ok(ChainItem::Head(h))).await.is_err() {
                return Ok(());
            }
            let first: Option<i64> = sqlx::query_scalar("SELECT min(id) FROM audit_log")
                .fetch_one(&mut *read)
                .await?;
            if let Some(first) = first.filter(|f| *f > 1) {
                let sql = sqlx::AssertSqlSafe(format!(
                    "{SELECT} WHERE kind = 'checkpoint' AND sealed_through = ?1 ORDER BY id DESC LIMIT 1"
                ));
                let anchor = sqlx::query(sql)
                    .bind(first - 1)
                    .fetch_optional(&mut *read)
                    .await?;
                let anchor = anchor.as_ref().map(record_from_row).transpose();
                let item = anchor.map(|a| ChainItem::Anchor(a.map(Box::new)));
                if tx.send(item).await.is_err() {
                    return Ok(());
                }
            }
            let sql = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY id"));
            let mut rows = sqlx::query(sql).fetch(&mut *read);
            while let Some(row) = rows.try_next().await? {
                let item = record_from_row(&row).map(|r| ChainItem::Record(Box::new(r)));
                if tx.send(item).await.is_err() {
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

/// Retention inside the caller's write transaction: see `Storage::seal_audit`.
pub(super) async fn seal(
    conn: &mut SqliteConnection,
    cutoff: OffsetDateTime,
    entry: AuditEntry,
    key: &AuditKey,
) -> Result<Option<(Checkpoint, u64)>, StorageError> {
    let h = locked_head(conn, key).await?;
    // The sealed part is a prefix of the chain: everything before the first record that is
    // not old enough (clocks may disagree between replicas; nothing younger goes).
    let young: Option<i64> = sqlx::query_scalar("SELECT min(id) FROM audit_log WHERE at >= ?1")
        .bind(to_unix_micros(cutoff))
        .fetch_one(&mut *conn)
        .await?;
    let through = young.map_or(h.last_id, |y| y - 1);
    let old: Option<(i64, i64)> = sqlx::query_as(
        "SELECT min(id), count(*) FROM audit_log WHERE id <= ?1 HAVING count(*) > 0",
    )
    .bind(through)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((_, count)) = old else {
        return Ok(None);
    };
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT mac FROM audit_log WHERE id = ?1")
        .bind(through)
        .fetch_one(&mut *conn)
        .await?;
    let checkpoint = Checkpoint {
        sealed_through: through,
        sealed_mac: mac32(&sealed, "sealed MAC")?,
    };
    let mut record = AuditRecord::from_entry(&entry, h.last_id + 1, h.last_mac);
    record.kind = RecordKind::Checkpoint.code().to_owned();
    record.sealed_through = Some(checkpoint.sealed_through);
    record.sealed_mac = Some(checkpoint.sealed_mac);
    record.mac = key.mac(&record);
    insert(conn, &record).await?;
    advance(conn, key, record.id, &record.mac).await?;
    let deleted = sqlx::query("DELETE FROM audit_log WHERE id <= ?1")
        .bind(through)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    debug_assert_eq!(i64::try_from(deleted).ok(), Some(count));
    Ok(Some((checkpoint, deleted)))
}
