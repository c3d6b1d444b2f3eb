//! Tokens, their history and the per-request credential lookup on PostgreSQL.

use crate::domain::token::transition;
use crate::domain::unit::subtree_upper_bound;
use crate::domain::{
    NewToken, Token, TokenChange, TokenEvent, TokenEventKind, TokenState, TokenStatus,
};
use crate::storage::{Credential, CredentialUnit, StorageError, TokenFilter, decode};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};

const SELECT_TOKEN: &str = "SELECT t.id, t.serial, t.model, t.manufacturer, t.cert_der, \
     t.spki_sha256, t.cert_serial, t.not_before, t.not_after, t.status, t.unit_id, \
     u.code AS unit_code, r.serial AS replaced_by, t.created_at, t.updated_at \
     FROM tokens t LEFT JOIN units u ON u.id = t.unit_id LEFT JOIN tokens r ON r.id = t.replaced_by";

fn token_from_row(row: &PgRow) -> Result<Token, StorageError> {
    let fp: Vec<u8> = row.try_get("spki_sha256")?;
    Ok(Token {
        id: row.try_get("id")?,
        serial: decode::serial(row.try_get("serial")?)?,
        model: row.try_get("model")?,
        manufacturer: row.try_get("manufacturer")?,
        cert_der: row.try_get("cert_der")?,
        fingerprint: decode::fingerprint(&fp)?,
        cert_serial: row.try_get("cert_serial")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        status: decode::status(row.try_get("status")?)?,
        unit_id: row.try_get("unit_id")?,
        unit_code: decode::opt_unit_code(row.try_get("unit_code")?)?,
        replaced_by: decode::opt_serial(row.try_get("replaced_by")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) async fn by_serial(
    pool: &PgPool,
    serial: &TokenSerial,
) -> Result<Option<Token>, StorageError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT_TOKEN} WHERE t.serial = $1"));
    let row = sqlx::query(sql)
        .bind(serial.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(token_from_row).transpose()
}

pub(super) async fn list(pool: &PgPool, filter: &TokenFilter) -> Result<Vec<Token>, StorageError> {
    let (from, to) = match &filter.under {
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
    let sql = sqlx::AssertSqlSafe(format!(
        "{SELECT_TOKEN} WHERE ($1::text IS NULL OR (u.path >= $1 AND u.path < $2)) \
         AND ($3::text IS NULL OR t.status = $3) ORDER BY t.serial"
    ));
    let rows = sqlx::query(sql)
        .bind(from)
        .bind(to)
        .bind(filter.status.map(TokenStatus::code))
        .fetch_all(pool)
        .await?;
    rows.iter().map(token_from_row).collect()
}

async fn unit_id(conn: &mut PgConnection, code: &UnitCode) -> Result<i64, StorageError> {
    sqlx::query_scalar("SELECT id FROM units WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StorageError::UnknownUnit(code.clone()))
}

#[allow(clippy::too_many_arguments)]
async fn append_event(
    conn: &mut PgConnection,
    token_id: i64,
    at: OffsetDateTime,
    kind: TokenEventKind,
    status: TokenStatus,
    unit_id: Option<i64>,
    reason: &str,
    actor: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO token_events (token_id, at, kind, status, unit_id, reason, actor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_id)
    .bind(at)
    .bind(kind.code())
    .bind(status.code())
    .bind(unit_id)
    .bind(reason)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn register(
    conn: &mut PgConnection,
    token: &NewToken,
    unit: Option<&UnitCode>,
    actor: &str,
    reason: &str,
    at: OffsetDateTime,
) -> Result<(), StorageError> {
    if sqlx::query("SELECT 1 FROM tokens WHERE serial = $1")
        .bind(token.serial.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .is_some()
    {
        return Err(StorageError::DuplicateSerial(token.serial.clone()));
    }
    let holder: Option<String> =
        sqlx::query_scalar("SELECT serial FROM tokens WHERE spki_sha256 = $1")
            .bind(token.fingerprint.as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(holder) = holder {
        return Err(StorageError::DuplicateFingerprint(decode::serial(&holder)?));
    }
    let now = at;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tokens (serial, model, manufacturer, cert_der, spki_sha256, cert_serial, \
         not_before, not_after, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'registered', $9, $9) RETURNING id",
    )
    .bind(token.serial.as_str())
    .bind(&token.model)
    .bind(&token.manufacturer)
    .bind(&token.cert_der)
    .bind(token.fingerprint.as_bytes().as_slice())
    .bind(&token.cert_serial)
    .bind(token.not_before)
    .bind(token.not_after)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    append_event(
        conn,
        id,
        at,
        TokenEventKind::Registered,
        TokenStatus::Registered,
        None,
        reason,
        actor,
    )
    .await?;
    if let Some(unit) = unit {
        change(
            conn,
            &token.serial,
            &TokenChange::Bind(unit.clone()),
            actor,
            reason,
            at,
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn change(
    conn: &mut PgConnection,
    serial: &TokenSerial,
    change: &TokenChange,
    actor: &str,
    reason: &str,
    at: OffsetDateTime,
) -> Result<crate::storage::TokenStepSummary, StorageError> {
    let row = sqlx::query(
        "SELECT t.id, t.status, t.unit_id, u.code FROM tokens t LEFT JOIN units u ON u.id = t.unit_id \
         WHERE t.serial = $1 FOR UPDATE OF t",
    )
    .bind(serial.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StorageError::UnknownToken(serial.clone()))?;
    let id: i64 = row.try_get(0)?;
    let status = decode::status(row.try_get(1)?)?;
    let mut unit_after: Option<i64> = row.try_get(2)?;
    let current = decode::opt_unit_code(row.try_get(3)?)?;
    let step = transition(serial, status, current.as_ref(), change)?;
    let summary = crate::storage::TokenStepSummary {
        before: (status, current.clone()),
        after: (step.status, step.unit.clone().or(current)),
    };
    if let Some(code) = &step.unit {
        unit_after = Some(unit_id(conn, code).await?);
    }
    let replaced_by = match change {
        TokenChange::Revoke {
            replaced_by: Some(other),
        } => Some(
            sqlx::query_scalar::<_, i64>("SELECT id FROM tokens WHERE serial = $1")
                .bind(other.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| StorageError::UnknownToken(other.clone()))?,
        ),
        _ => None,
    };
    sqlx::query(
        "UPDATE tokens SET status = $1, unit_id = $2, replaced_by = coalesce($3, replaced_by), \
         updated_at = $4 WHERE id = $5",
    )
    .bind(step.status.code())
    .bind(unit_after)
    .bind(replaced_by)
    .bind(at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    append_event(
        conn,
        id,
        at,
        step.kind,
        step.status,
        unit_after,
        reason,
        actor,
    )
    .await?;
    Ok(summary)
}

pub(super) async fn history(
    pool: &PgPool,
    serial: &TokenSerial,
) -> Result<Vec<TokenEvent>, StorageError> {
    let rows = sqlx::query(
        "SELECT e.id, t.serial, e.at, e.kind, e.status, u.code, e.reason, e.actor \
         FROM token_events e JOIN tokens t ON t.id = e.token_id LEFT JOIN units u ON u.id = e.unit_id \
         WHERE t.serial = $1 ORDER BY e.at, e.id",
    )
    .bind(serial.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TokenEvent {
                id: row.try_get(0)?,
                serial: decode::serial(row.try_get(1)?)?,
                at: row.try_get(2)?,
                kind: decode::event_kind(row.try_get(3)?)?,
                status: decode::status(row.try_get(4)?)?,
                unit_code: decode::opt_unit_code(row.try_get(5)?)?,
                reason: row.try_get(6)?,
                actor: row.try_get(7)?,
            })
        })
        .collect()
}

pub(super) async fn states_at(
    pool: &PgPool,
    at: OffsetDateTime,
    under: Option<&UnitCode>,
) -> Result<Vec<TokenState>, StorageError> {
    let (from, to) = match under {
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
    // The latest event at or before the instant holds the state then.
    let rows = sqlx::query(
        "SELECT t.serial, e.status, u.code, e.at FROM tokens t \
         JOIN token_events e ON e.id = (SELECT e2.id FROM token_events e2 \
              WHERE e2.token_id = t.id AND e2.at <= $1 ORDER BY e2.at DESC, e2.id DESC LIMIT 1) \
         LEFT JOIN units u ON u.id = e.unit_id \
         WHERE ($2::text IS NULL OR (u.path >= $2 AND u.path < $3)) ORDER BY t.serial",
    )
    .bind(at)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TokenState {
                serial: decode::serial(row.try_get(0)?)?,
                status: decode::status(row.try_get(1)?)?,
                unit_code: decode::opt_unit_code(row.try_get(2)?)?,
                since: row.try_get(3)?,
            })
        })
        .collect()
}

pub(super) async fn credential(
    pool: &PgPool,
    fingerprint: &SpkiFingerprint,
) -> Result<Option<Credential>, StorageError> {
    let row = sqlx::query(
        "SELECT t.id, t.serial, t.status, t.not_before, t.not_after, u.id, u.code, u.name, u.active \
         FROM tokens t LEFT JOIN units u ON u.id = t.unit_id WHERE t.spki_sha256 = $1",
    )
    .bind(fingerprint.as_bytes().as_slice())
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let unit_id: Option<i64> = row.try_get(5)?;
    let unit = match unit_id {
        Some(id) => Some(CredentialUnit {
            id,
            code: decode::unit_code(row.try_get(6)?)?,
            name: row.try_get(7)?,
            active: row.try_get(8)?,
        }),
        None => None,
    };
    Ok(Some(Credential {
        token_id: row.try_get(0)?,
        serial: decode::serial(row.try_get(1)?)?,
        status: decode::status(row.try_get(2)?)?,
        not_before: row.try_get(3)?,
        not_after: row.try_get(4)?,
        unit,
    }))
}
