//! Units and administrators on SQLite.

use crate::clock::{from_unix_micros, to_unix_micros};
use crate::domain::unit::{child_path, subtree_upper_bound};
use crate::domain::{Administrator, Mobile, NewAdministrator, NewUnit, Unit};
use crate::storage::{StorageError, decode};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use ukey_proto::UnitCode;

const SELECT_UNIT: &str = "SELECT u.id, u.code, u.name, u.short_name, u.kind, u.parent_id, \
     p.code AS parent_code, u.path, u.depth, u.examinee, u.active, u.contact_name, \
     u.contact_phone, u.created_at FROM units u LEFT JOIN units p ON p.id = u.parent_id";

fn unit_from_row(row: &SqliteRow) -> Result<Unit, StorageError> {
    Ok(Unit {
        id: row.try_get("id")?,
        code: decode::unit_code(row.try_get("code")?)?,
        name: row.try_get("name")?,
        short_name: row.try_get("short_name")?,
        kind: decode::kind(row.try_get("kind")?)?,
        parent_id: row.try_get("parent_id")?,
        parent_code: decode::opt_unit_code(row.try_get("parent_code")?)?,
        path: row.try_get("path")?,
        depth: row.try_get("depth")?,
        examinee: row.try_get("examinee")?,
        active: row.try_get("active")?,
        contact_name: row.try_get("contact_name")?,
        contact_phone: row.try_get("contact_phone")?,
        created_at: from_unix_micros(row.try_get("created_at")?),
    })
}

pub(super) async fn by_id(
    conn: impl sqlx::sqlite::SqliteExecutor<'_>,
    id: i64,
) -> Result<Unit, StorageError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT_UNIT} WHERE u.id = ?1"));
    let row = sqlx::query(sql).bind(id).fetch_one(conn).await?;
    unit_from_row(&row)
}

pub(super) async fn by_code(
    conn: impl sqlx::sqlite::SqliteExecutor<'_>,
    code: &UnitCode,
) -> Result<Option<Unit>, StorageError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT_UNIT} WHERE u.code = ?1"));
    let row = sqlx::query(sql)
        .bind(code.as_str())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(unit_from_row).transpose()
}

pub(super) async fn list(
    pool: &SqlitePool,
    under: Option<&UnitCode>,
) -> Result<Vec<Unit>, StorageError> {
    let rows = match under {
        None => {
            let sql = sqlx::AssertSqlSafe(format!("{SELECT_UNIT} ORDER BY u.path"));
            sqlx::query(sql).fetch_all(pool).await?
        }
        Some(code) => {
            let top = by_code(pool, code)
                .await?
                .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
            let sql = sqlx::AssertSqlSafe(format!(
                "{SELECT_UNIT} WHERE u.path >= ?1 AND u.path < ?2 ORDER BY u.path"
            ));
            sqlx::query(sql)
                .bind(&top.path)
                .bind(subtree_upper_bound(&top.path))
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(unit_from_row).collect()
}

/// (id, path, depth) of a unit, inside a transaction.
async fn locate(
    conn: &mut SqliteConnection,
    code: &UnitCode,
) -> Result<(i64, String, i32), StorageError> {
    let row = sqlx::query("SELECT id, path, depth FROM units WHERE code = ?1")
        .bind(code.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

async fn sibling_named(
    conn: &mut SqliteConnection,
    parent_id: Option<i64>,
    name: &str,
) -> Result<bool, StorageError> {
    Ok(
        sqlx::query("SELECT 1 FROM units WHERE coalesce(parent_id, 0) = ?1 AND name = ?2")
            .bind(parent_id.unwrap_or(0))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

pub(super) async fn insert(
    conn: &mut SqliteConnection,
    unit: &NewUnit,
    at: OffsetDateTime,
) -> Result<i64, StorageError> {
    let parent = match &unit.parent {
        Some(code) => Some(locate(conn, code).await?),
        None => None,
    };
    if sqlx::query("SELECT 1 FROM units WHERE code = ?1")
        .bind(unit.code.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .is_some()
    {
        return Err(StorageError::DuplicateUnitCode(unit.code.clone()));
    }
    let parent_id = parent.as_ref().map(|p| p.0);
    if sibling_named(conn, parent_id, &unit.name).await? {
        return Err(StorageError::DuplicateUnitName {
            name: unit.name.clone(),
        });
    }
    let now = to_unix_micros(at);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO units (code, name, short_name, kind, parent_id, path, depth, examinee, \
         contact_name, contact_phone, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'new:' || ?1, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id",
    )
    .bind(unit.code.as_str())
    .bind(&unit.name)
    .bind(&unit.short_name)
    .bind(unit.kind.code())
    .bind(parent_id)
    .bind(parent.as_ref().map_or(0, |p| p.2 + 1))
    .bind(unit.examinee)
    .bind(&unit.contact_name)
    .bind(&unit.contact_phone)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE units SET path = ?1 WHERE id = ?2")
        .bind(child_path(parent.as_ref().map(|p| p.1.as_str()), id))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

pub(super) async fn move_to(
    conn: &mut SqliteConnection,
    code: &UnitCode,
    new_parent: Option<&UnitCode>,
    at: OffsetDateTime,
) -> Result<i64, StorageError> {
    let (id, old_path, old_depth) = locate(conn, code).await?;
    let parent = match new_parent {
        Some(p) => {
            let found = locate(conn, p).await?;
            if found.1.starts_with(&old_path) {
                return Err(StorageError::Cycle {
                    unit: code.clone(),
                    parent: p.clone(),
                });
            }
            Some(found)
        }
        None => None,
    };
    let name: String = sqlx::query_scalar("SELECT name FROM units WHERE id = ?1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let parent_id = parent.as_ref().map(|p| p.0);
    let current_parent: Option<i64> =
        sqlx::query_scalar("SELECT parent_id FROM units WHERE id = ?1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    if current_parent == parent_id {
        return Ok(id);
    }
    if sibling_named(conn, parent_id, &name).await? {
        return Err(StorageError::DuplicateUnitName { name });
    }
    let new_path = child_path(parent.as_ref().map(|p| p.1.as_str()), id);
    let new_depth = parent.as_ref().map_or(0, |p| p.2 + 1);
    let old_len = i64::try_from(old_path.len()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE units SET path = ?1 || substr(path, ?2 + 1), depth = depth + ?3, updated_at = ?4 \
         WHERE path >= ?5 AND path < ?6",
    )
    .bind(&new_path)
    .bind(old_len)
    .bind(new_depth - old_depth)
    .bind(to_unix_micros(at))
    .bind(&old_path)
    .bind(subtree_upper_bound(&old_path))
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE units SET parent_id = ?1 WHERE id = ?2")
        .bind(parent_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

pub(super) async fn insert_admin(
    conn: &mut SqliteConnection,
    admin: &NewAdministrator,
    at: OffsetDateTime,
) -> Result<i64, StorageError> {
    let (unit_id, _, _) = locate(conn, &admin.unit).await?;
    Ok(sqlx::query_scalar(
        "INSERT INTO administrators (unit_id, name, mobile, created_at) VALUES (?1, ?2, ?3, ?4) \
         RETURNING id",
    )
    .bind(unit_id)
    .bind(&admin.name)
    .bind(admin.mobile.as_str())
    .bind(to_unix_micros(at))
    .fetch_one(&mut *conn)
    .await?)
}

pub(super) async fn admins(
    pool: &SqlitePool,
    under: Option<&UnitCode>,
    id: Option<i64>,
) -> Result<Vec<Administrator>, StorageError> {
    let (from, to) = match under {
        Some(code) => {
            let top = by_code(pool, code)
                .await?
                .ok_or_else(|| StorageError::UnknownUnit(code.clone()))?;
            let bound = subtree_upper_bound(&top.path);
            (Some(top.path), Some(bound))
        }
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT a.id, u.code, u.name AS unit_name, a.name, a.mobile, a.created_at \
         FROM administrators a JOIN units u ON u.id = a.unit_id \
         WHERE (?1 IS NULL OR (u.path >= ?1 AND u.path < ?2)) AND (?3 IS NULL OR a.id = ?3) \
         ORDER BY u.path, a.id",
    )
    .bind(from)
    .bind(to)
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(admin_from_row).collect()
}

fn admin_from_row(row: &SqliteRow) -> Result<Administrator, StorageError> {
    let mobile: String = row.try_get("mobile")?;
    Ok(Administrator {
        id: row.try_get("id")?,
        unit_code: decode::unit_code(row.try_get("code")?)?,
        unit_name: row.try_get("unit_name")?,
        name: row.try_get("name")?,
        mobile: Mobile::parse(&mobile)
            .map_err(|_| StorageError::Corrupt(format!("mobile {mobile:?}")))?,
        created_at: from_unix_micros(row.try_get("created_at")?),
    })
}

/// The fields an update may change, as a JSON summary for the audit record.
pub(crate) fn unit_summary(u: &Unit) -> serde_json::Value {
    serde_json::json!({
        "name": u.name,
        "short_name": u.short_name,
        "kind": u.kind.code(),
        "parent": u.parent_code.as_ref().map(UnitCode::as_str),
        "examinee": u.examinee,
        "active": u.active,
        "contact_name": u.contact_name,
        "contact_phone": u.contact_phone,
    })
}

pub(super) async fn update(
    conn: &mut SqliteConnection,
    code: &UnitCode,
    u: &crate::storage::UnitUpdate,
    at: OffsetDateTime,
) -> Result<i64, StorageError> {
    let (id, _, _) = locate(conn, code).await?;
    if let Some(name) = &u.name {
        let row = sqlx::query("SELECT parent_id, name FROM units WHERE id = ?1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        let parent: Option<i64> = row.try_get(0)?;
        let current: String = row.try_get(1)?;
        if *name != current && sibling_named(conn, parent, name).await? {
            return Err(StorageError::DuplicateUnitName { name: name.clone() });
        }
    }
    sqlx::query(
        "UPDATE units SET name = coalesce(?1, name), \
         short_name = CASE WHEN ?2 THEN ?3 ELSE short_name END, kind = coalesce(?4, kind), \
         examinee = coalesce(?5, examinee), active = coalesce(?6, active), \
         contact_name = CASE WHEN ?7 THEN ?8 ELSE contact_name END, \
         contact_phone = CASE WHEN ?9 THEN ?10 ELSE contact_phone END, updated_at = ?11 \
         WHERE id = ?12",
    )
    .bind(&u.name)
    .bind(u.short_name.is_some())
    .bind(u.short_name.clone().flatten())
    .bind(u.kind.map(|k| k.code()))
    .bind(u.examinee)
    .bind(u.active)
    .bind(u.contact_name.is_some())
    .bind(u.contact_name.clone().flatten())
    .bind(u.contact_phone.is_some())
    .bind(u.contact_phone.clone().flatten())
    .bind(to_unix_micros(at))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Deletes a unit that nothing refers to; the first reference found is named.
pub(super) async fn delete(
    conn: &mut SqliteConnection,
    code: &UnitCode,
) -> Result<(), StorageError> {
    let (id, _, _) = locate(conn, code).await?;
    let references = [
        (
            "SELECT 1 FROM units WHERE parent_id = ?1 LIMIT 1",
            "units below it",
        ),
        (
            "SELECT 1 FROM administrators WHERE unit_id = ?1 LIMIT 1",
            "administrators",
        ),
        ("SELECT 1 FROM tokens WHERE unit_id = ?1 LIMIT 1", "tokens"),
        (
            "SELECT 1 FROM token_events WHERE unit_id = ?1 LIMIT 1",
            "token history",
        ),
        (
            "SELECT 1 FROM login_records WHERE unit_id = ?1 LIMIT 1",
            "login records",
        ),
        (
            "SELECT 1 FROM sessions WHERE unit_id = ?1 LIMIT 1",
            "sessions",
        ),
        (
            "SELECT 1 FROM operator_accounts WHERE unit_id = ?1 LIMIT 1",
            "operator accounts",
        ),
    ];
    for (sql, what) in references {
        if sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .is_some()
        {
            return Err(StorageError::UnitInUse(code.clone(), what));
        }
    }
    sqlx::query("DELETE FROM units WHERE id = ?1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn admin_by_id(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<Administrator>, StorageError> {
    let row = sqlx::query(
        "SELECT a.id, u.code, u.name AS unit_name, a.name, a.mobile, a.created_at \
         FROM administrators a JOIN units u ON u.id = a.unit_id WHERE a.id = ?1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(admin_from_row).transpose()
}

pub(super) async fn update_admin(
    conn: &mut SqliteConnection,
    id: i64,
    name: &str,
    mobile: &Mobile,
) -> Result<(), StorageError> {
    let done = sqlx::query("UPDATE administrators SET name = ?1, mobile = ?2 WHERE id = ?3")
        .bind(name)
        .bind(mobile.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StorageError::UnknownAdministrator(id));
    }
    Ok(())
}

pub(super) async fn delete_admin(conn: &mut SqliteConnection, id: i64) -> Result<(), StorageError> {
    let done = sqlx::query("DELETE FROM administrators WHERE id = ?1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StorageError::UnknownAdministrator(id));
    }
    Ok(())
}
