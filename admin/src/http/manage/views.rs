//! What the management API shows: views without internal ids, paths or hashes.

use crate::domain::Unit;
use crate::domain::account::{Account, AccountStatus, Role, SecretPurpose};
use serde::Serialize;
use time::OffsetDateTime;
use ukey_proto::UnitCode;
use ukey_proto::api::UnitRef;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub username: String,
    pub display_name: String,
    /// The top of the account's subtree; absent: every unit.
    pub unit: Option<UnitRef>,
    pub roles: Vec<Role>,
    pub status: AccountStatus,
    pub must_change_password: bool,
    pub has_password: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub password_changed_at: Option<OffsetDateTime>,
    pub failed_logins: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    pub last_login_source: Option<String>,
    pub pending_secret: Option<SecretPurpose>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub secret_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            username: a.username.to_string(),
            display_name: a.display_name.clone(),
            unit: a.unit.as_ref().map(|u| UnitRef {
                code: u.code.clone(),
                name: u.name.clone(),
            }),
            roles: a.roles.clone(),
            status: a.status,
            must_change_password: a.must_change_password,
            has_password: a.has_password,
            password_changed_at: a.password_changed_at,
            failed_logins: a.failed_logins,
            locked_until: a.locked_until,
            last_login_at: a.last_login_at,
            last_login_source: a.last_login_source.clone(),
            pending_secret: a.pending_secret,
            secret_expires_at: a.secret_expires_at,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnitView {
    pub code: UnitCode,
    /// Full name (公章上的全称).
    pub name: String,
    pub short_name: Option<String>,
    pub kind: crate::domain::UnitKind,
    /// 党委, 党工委, 党总支, 党支部, 党组 or 其他.
    pub kind_label: String,
    pub parent: Option<UnitCode>,
    /// Depth in the tree (0 at the top).
    pub depth: i32,
    /// Assessed each month (考核对象).
    pub examinee: bool,
    pub active: bool,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&Unit> for UnitView {
    fn from(u: &Unit) -> Self {
        UnitView {
            code: u.code.clone(),
            name: u.name.clone(),
            short_name: u.short_name.clone(),
            kind: u.kind,
            kind_label: u.kind.label().to_owned(),
            parent: u.parent_code.clone(),
            depth: u.depth,
            examinee: u.examinee,
            active: u.active,
            contact_name: u.contact_name.clone(),
            contact_phone: u.contact_phone.clone(),
            created_at: u.created_at,
        }
    }
}

/// A page of a long list, newest first: pass `next_cursor` back as `cursor` for the next.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new one-time secret, shown once: hand it over out of band.
#[derive(Debug, Serialize, ToSchema)]
pub struct OneTimeSecret {
    pub account: AccountView,
    /// Works once, until `expires_at`, and only to set a new password.
    pub one_time_secret: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}
