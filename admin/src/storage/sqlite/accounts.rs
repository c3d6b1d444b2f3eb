//! Operator accounts, roles, sessions and the security policy on SQLite.

use crate::clock::{from_unix_micros, to_unix_micros};
use crate::domain::account::{
    Account, AccountStatus, LoginAccount, NewAccount, NewOperatorSession, OperatorSession,
    PendingSecret, Role, ScopeUnit, SecretPurpose, SecurityPolicy, Username, role_conflict,
};
use crate::storage::{AccountChange, StorageError, decode};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use ukey_proto::UnitCode;

const SELECT_ACCOUNT: &str = "SELECT a.id, a.username, a.display_name, a.unit_id, u.code AS unit_code, \
     u.name AS unit_name, u.path AS unit_path, a.status, a.must_change, a.password_changed_at, \
     a.password_hash, a.failed_count, a.locked_until, a.last_login_at, a.last_login_source, \
     a.secret_sha256, a.secret_purpose, a.secret_expires_at, a.created_at, \
     (SELECT group_concat(r.role) FROM account_roles r WHERE r.account_id = a.id) AS roles \
     FROM operator_accounts a LEFT JOIN units u ON u.id = a.unit_id";

fn corrupt(what: &str, v: &str) -> StorageError {
    StorageError::Corrupt(format!("{what} {v:?}"))
}

pub(super) fn roles(text: Option<String>) -> Result<Vec<Role>, StorageError> {
    let mut roles = text
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| Role::parse(r).ok_or_else(|| corrupt("role", r)))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    Ok(roles)
}

fn login_account_from_row(row: &SqliteRow) -> Result<LoginAccount, StorageError> {
    let opt_time = |name: &str| -> Result<Option<OffsetDateTime>, StorageError> {
        Ok(row.try_get::<Option<i64>, _>(name)?.map(from_unix_micros))
    };
    let unit_id: Option<i64> = row.try_get("unit_id")?;
    let unit = match unit_id {
        Some(id) => Some(ScopeUnit {
            id,
            code: decode::unit_code(row.try_get("unit_code")?)?,
            name: row.try_get("unit_name")?,
            path: row.try_get("unit_path")?,
        }),
        None => None,
    };
    let username: String = row.try_get("username")?;
    let status: String = row.try_get("status")?;
    let purpose: Option<String> = row.try_get("secret_purpose")?;
    let hash: Option<String> = row.try_get("password_hash")?;
    let secret: Option<Vec<u8>> = row.try_get("secret_sha256")?;
    let account = Account {
        id: row.try_get("id")?,
        username: Username::parse(&username).map_err(|_| corrupt("username", &username))?,
        display_name: row.try_get("display_name")?,
        unit,
        roles: roles(row.try_get("roles")?)?,
        status: AccountStatus::parse(&status).ok_or_else(|| corrupt("account status", &status))?,
        must_change_password: row.try_get("must_change")?,
        password_changed_at: opt_time("password_changed_at")?,
        has_password: hash.is_some(),
        failed_logins: row.try_get("failed_count")?,
        locked_until: opt_time("locked_until")?,
        last_login_at: opt_time("last_login_at")?,
        last_login_source: row.try_get("last_login_source")?,
        pending_secret: purpose
            .as_deref()
            .map(|p| SecretPurpose::parse(p).ok_or_else(|| corrupt("secret purpose", p)))
            .transpose()?,
        secret_expires_at: opt_time("secret_expires_at")?,
        created_at: from_unix_micros(row.try_get("created_at")?),
    };
    Ok(LoginAccount {
        account,
        password_hash: hash,
        secret_sha256: secret.and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok()),
    })
}

pub(super) async fn by_username(
    conn: &mut SqliteConnection,
    username: &str,
) -> Result<Option<LoginAccount>, StorageError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT_ACCOUNT} WHERE a.username = ?1"));
    let row = sqlx::query(sql)
        .bind(username)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(login_account_from_row).transpose()
}

pub(super) async fn by_id(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<Account>, StorageError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT_ACCOUNT} WHERE a.id = ?1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *conn).await?;
    Ok(row
        .as_ref()
        .map(login_account_from_row)
        .transpose()?
        .map(|l| l.account))
}

pub(super) async fn all(pool: &SqlitePool) -> Result<Vec<Account>, StorageError> {
    let sql = sqlx::AssertSqlSafe(format!("{SELECT_ACCOUNT} ORDER BY a.username"));
    let rows = sqlx::query(sql).fetch_all(pool).await?;
    rows.iter()
        .map(|r| login_account_from_row(r).map(|l| l.account))
        .collect()
}

pub(super) async fn policy(
    conn: impl sqlx::sqlite::SqliteExecutor<'_>,
) -> Result<SecurityPolicy, StorageError> {
    let row = sqlx::query(
        "SELECT lockout_threshold, lockout_minutes, password_max_age_days, password_history, \
         idle_minutes, absolute_hours FROM security_policy WHERE id = 1",
    )
    .fetch_one(conn)
    .await?;
    let get = |i: usize| -> Result<u32, StorageError> {
        let v: i64 = row.try_get(i)?;
        u32::try_from(v).map_err(|_| corrupt("policy value", &v.to_string()))
    };
    Ok(SecurityPolicy {
        lockout_threshold: get(0)?,
        lockout_minutes: get(1)?,
        password_max_age_days: get(2)?,
        password_history: get(3)?,
        idle_minutes: get(4)?,
        absolute_hours: get(5)?,
    })
}

pub(super) async fn set_policy(
    conn: &mut SqliteConnection,
    p: &SecurityPolicy,
    at: OffsetDateTime,
    by: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE security_policy SET lockout_threshold = ?1, lockout_minutes = ?2, \
         password_max_age_days = ?3, password_history = ?4, idle_minutes = ?5, \
         absolute_hours = ?6, updated_at = ?7, updated_by = ?8 WHERE id = 1",
    )
    .bind(p.lockout_threshold)
    .bind(p.lockout_minutes)
    .bind(p.password_max_age_days)
    .bind(p.password_history)
    .bind(p.idle_minutes)
    .bind(p.absolute_hours)
    .bind(to_unix_micros(at))
    .bind(by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn unit_id(conn: &mut SqliteConnection, code: &UnitCode) -> Result<i64, StorageError> {
    sqlx::query_scalar("SELECT id FROM units WHERE code = ?1")
        .bind(code.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StorageError::UnknownUnit(code.clone()))
}

pub(super) async fn insert(
    conn: &mut SqliteConnection,
    new: &NewAccount,
    secret: &PendingSecret,
    at: OffsetDateTime,
) -> Result<i64, StorageError> {
    let unit = match &new.unit {
        Some(code) => Some(unit_id(conn, code).await?),
        None => None,
    };
    if sqlx::query("SELECT 1 FROM operator_accounts WHERE username = ?1")
        .bind(new.username.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .is_some()
    {
        return Err(StorageError::DuplicateUsername(new.username.to_string()));
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO operator_accounts (username, display_name, unit_id, must_change, \
         secret_sha256, secret_purpose, secret_expires_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?7) RETURNING id",
    )
    .bind(new.username.as_str())
    .bind(&new.display_name)
    .bind(unit)
    .bind(secret.sha256.to_vec())
    .bind(secret.purpose.code())
    .bind(to_unix_micros(secret.expires_at))
    .bind(to_unix_micros(at))
    .fetch_one(&mut *conn)
    .await?)
}

pub(super) async fn history(
    pool: &SqlitePool,
    account_id: i64,
    count: u32,
) -> Result<Vec<String>, StorageError> {
    Ok(sqlx::query_scalar(
        "SELECT password_hash FROM password_history WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
    )
    .bind(account_id)
    .bind(count)
    .fetch_all(pool)
    .await?)
}

async fn end_sessions(
    conn: &mut SqliteConnection,
    account_id: i64,
    reason: &str,
    at: OffsetDateTime,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE operator_sessions SET ended_at = ?1, end_reason = ?2 \
         WHERE account_id = ?3 AND ended_at IS NULL",
    )
    .bind(to_unix_micros(at))
    .bind(reason)
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_session(
    conn: &mut SqliteConnection,
    account_id: i64,
    s: &NewOperatorSession,
    at: OffsetDateTime,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO operator_sessions (token_sha256, account_id, token_id, restricted, via_secret, \
         source, created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
    )
    .bind(s.token_sha256.to_vec())
    .bind(account_id)
    .bind(s.token_id)
    .bind(s.restricted)
    .bind(s.via_secret)
    .bind(&s.source)
    .bind(to_unix_micros(at))
    .bind(to_unix_micros(s.expires_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies a change inside the caller's transaction. The account must exist.
pub(super) async fn update(
    conn: &mut SqliteConnection,
    id: i64,
    change: &AccountChange,
    at: OffsetDateTime,
) -> Result<(), StorageError> {
    let now = to_unix_micros(at);
    let simple = |sql: &'static str| sqlx::query(sql).bind(now).bind(id);
    match change {
        AccountChange::SetStatus(status) => {
            sqlx::query("UPDATE operator_accounts SET status = ?1, updated_at = ?2 WHERE id = ?3")
                .bind(status.code())
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if *status == AccountStatus::Disabled {
                end_sessions(conn, id, "disabled", at).await?;
            }
        }
        AccountChange::Unlock => {
            simple(
                "UPDATE operator_accounts SET failed_count = 0, locked_until = NULL, \
                 updated_at = ?1 WHERE id = ?2",
            )
            .execute(&mut *conn)
            .await?;
        }
        AccountChange::IssueSecret(secret) => {
            sqlx::query(
                "UPDATE operator_accounts SET password_hash = NULL, must_change = 1, \
                 secret_sha256 = ?1, secret_purpose = ?2, secret_expires_at = ?3, \
                 failed_count = 0, locked_until = NULL, updated_at = ?4 WHERE id = ?5",
            )
            .bind(secret.sha256.to_vec())
            .bind(secret.purpose.code())
            .bind(to_unix_micros(secret.expires_at))
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            end_sessions(conn, id, "reset", at).await?;
        }
        AccountChange::SetScope(unit) => {
            let unit = match unit {
                Some(code) => Some(unit_id(conn, code).await?),
                None => None,
            };
            sqlx::query("UPDATE operator_accounts SET unit_id = ?1, updated_at = ?2 WHERE id = ?3")
                .bind(unit)
                .bind(now)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        AccountChange::Grant { role, by } => {
            let held: Option<String> = sqlx::query_scalar(
                "SELECT group_concat(role) FROM account_roles WHERE account_id = ?1",
            )
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            if let Some(conflict) = role_conflict(&roles(held)?, *role) {
                return Err(conflict.into());
            }
            sqlx::query(
                "INSERT INTO account_roles (account_id, role, granted_at, granted_by) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(id)
            .bind(role.code())
            .bind(now)
            .bind(by)
            .execute(&mut *conn)
            .await?;
        }
        AccountChange::Revoke(role) => {
            let done = sqlx::query("DELETE FROM account_roles WHERE account_id = ?1 AND role = ?2")
                .bind(id)
                .bind(role.code())
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StorageError::RoleNotHeld(*role));
            }
        }
        AccountChange::SetPassword { hash, keep } => {
            sqlx::query(
                "UPDATE operator_accounts SET password_hash = ?1, password_changed_at = ?2, \
                 must_change = 0, secret_sha256 = NULL, secret_purpose = NULL, \
                 secret_expires_at = NULL, failed_count = 0, locked_until = NULL, \
                 updated_at = ?2 WHERE id = ?3",
            )
            .bind(hash)
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO password_history (account_id, password_hash, set_at) VALUES (?1, ?2, ?3)",
            )
            .bind(id)
            .bind(hash)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "DELETE FROM password_history WHERE account_id = ?1 AND id NOT IN \
                 (SELECT id FROM password_history WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2)",
            )
            .bind(id)
            .bind(keep)
            .execute(&mut *conn)
            .await?;
            end_sessions(conn, id, "password_changed", at).await?;
        }
        AccountChange::LoginFailed {
            threshold,
            locked_until,
        } => {
            let count: i64 = sqlx::query_scalar(
                "UPDATE operator_accounts SET failed_count = failed_count + 1, updated_at = ?1 \
                 WHERE id = ?2 RETURNING failed_count",
            )
            .bind(now)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            if count >= i64::from(*threshold) {
                sqlx::query(
                    "UPDATE operator_accounts SET failed_count = 0, locked_until = ?1 WHERE id = ?2",
                )
                .bind(to_unix_micros(*locked_until))
                .bind(id)
                .execute(&mut *conn)
                .await?;
            }
        }
        AccountChange::LoggedIn {
            session,
            rehash,
            used_secret,
        } => {
            sqlx::query(
                "UPDATE operator_accounts SET failed_count = 0, locked_until = NULL, \
                 last_login_at = ?1, last_login_source = ?2, \
                 password_hash = coalesce(?3, password_hash), updated_at = ?1 WHERE id = ?4",
            )
            .bind(now)
            .bind(&session.source)
            .bind(rehash)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if *used_secret {
                simple(
                    "UPDATE operator_accounts SET secret_sha256 = NULL, secret_purpose = NULL, \
                     secret_expires_at = NULL, updated_at = ?1 WHERE id = ?2",
                )
                .execute(&mut *conn)
                .await?;
            }
            insert_session(conn, id, session, at).await?;
        }
        AccountChange::EndSessions => end_sessions(conn, id, "logout", at).await?,
    }
    Ok(())
}

pub(super) async fn session(
    pool: &SqlitePool,
    token_sha256: &[u8; 32],
) -> Result<Option<(OperatorSession, Account)>, StorageError> {
    let mut conn = pool.acquire().await?;
    let row = sqlx::query(
        "SELECT id, account_id, token_id, restricted, via_secret, created_at, last_seen_at, \
         expires_at, ended_at FROM operator_sessions WHERE token_sha256 = ?1",
    )
    .bind(token_sha256.to_vec())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let ended: Option<i64> = row.try_get(8)?;
    let session = OperatorSession {
        id: row.try_get(0)?,
        account_id: row.try_get(1)?,
        token_id: row.try_get(2)?,
        restricted: row.try_get(3)?,
        via_secret: row.try_get(4)?,
        created_at: from_unix_micros(row.try_get(5)?),
        last_seen_at: from_unix_micros(row.try_get(6)?),
        expires_at: from_unix_micros(row.try_get(7)?),
        ended_at: ended.map(from_unix_micros),
    };
    let account = by_id(&mut conn, session.account_id)
        .await?
        .ok_or_else(|| StorageError::UnknownAccount(session.account_id.to_string()))?;
    Ok(Some((session, account)))
}
