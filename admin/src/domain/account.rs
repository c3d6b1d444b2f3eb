//! Operator accounts (the people and machine clients who use the management API), their roles
//! and the security policy that governs their passwords, lockouts and sessions.
//!
//! The three officers (三员, seed 002) are roles: `sysadmin` (系统管理员), `secadmin`
//! (安全保密管理员) and `auditor` (安全审计员). An officer role is always the account's only
//! role, so nobody holds two of them, and none of them is combined with `operator` (which would
//! let a security administrator or an auditor act on tokens).

use serde::{Deserialize, Serialize};
use std::fmt;
use time::{Duration, OffsetDateTime};
use ukey_proto::UnitCode;

/// A role, granted by the security administrator.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// 系统管理员: units, administrators, tokens and operator accounts; grants nothing.
    Sysadmin,
    /// 安全保密管理员: grants roles and scopes, unlocks accounts, sets the security policy.
    Secadmin,
    /// 安全审计员: reads the audit trail and the login records; writes nothing.
    Auditor,
    /// IT staff: tokens and administrators within its unit subtree.
    Operator,
    /// The assessment module (a machine client): login records and assessments.
    Assessor,
}

pub const ALL_ROLES: &[Role] = &[
    Role::Sysadmin,
    Role::Secadmin,
    Role::Auditor,
    Role::Operator,
    Role::Assessor,
];

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Sysadmin => "sysadmin",
            Role::Secadmin => "secadmin",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Assessor => "assessor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        ALL_ROLES.iter().copied().find(|r| r.code() == s.trim())
    }

    /// The name users know.
    pub fn label(self) -> &'static str {
        match self {
            Role::Sysadmin => "系统管理员",
            Role::Secadmin => "安全保密管理员",
            Role::Auditor => "安全审计员",
            Role::Operator => "信息化操作员",
            Role::Assessor => "考核模块",
        }
    }

    /// One of the three officers (三员).
    pub fn is_officer(self) -> bool {
        matches!(self, Role::Sysadmin | Role::Secadmin | Role::Auditor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a role cannot be added to an account's roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleConflict {
    #[error("the account already holds {0}")]
    AlreadyHeld(Role),
    #[error(
        "{new} cannot be combined with {held}: an officer role (sysadmin, secadmin, auditor) is always held alone"
    )]
    OfficerAlone { new: Role, held: Role },
}

/// Checks that `new` may join `held`: officer roles are held alone.
pub fn role_conflict(held: &[Role], new: Role) -> Option<RoleConflict> {
    if held.contains(&new) {
        return Some(RoleConflict::AlreadyHeld(new));
    }
    held.iter()
        .find(|h| h.is_officer() || new.is_officer())
        .map(|&held| RoleConflict::OfficerAlone { new, held })
}

/// Renders roles for the audit trail: `sysadmin`, `operator,assessor`, or empty.
pub fn roles_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.code()).collect::<Vec<_>>().join(",")
}

/// A login name: 3–32 characters, lowercase ASCII letters, digits, `.`, `_` and `-`, starting
/// with a letter or digit. Stored lowercase, so `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid username: 3–32 characters, letters a–z, digits, '.', '_' or '-', starting with a letter or digit"
)]
pub struct UsernameError(pub String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, UsernameError> {
        let name = raw.trim().to_ascii_lowercase();
        let ok = (3..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Username(name))
        } else {
            Err(UsernameError(raw.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = UsernameError;
    fn try_from(s: String) -> Result<Self, UsernameError> {
        Username::parse(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Disabled,
}

impl AccountStatus {
    pub fn code(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "active" => Some(AccountStatus::Active),
            "disabled" => Some(AccountStatus::Disabled),
            _ => None,
        }
    }
}

/// What a one-time secret was issued for. Each works once, expires, and leads only to setting
/// a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretPurpose {
    /// Printed by `ukey-admin init` for the three officers' first accounts.
    Bootstrap,
    /// Issued with a new account.
    Activation,
    /// Issued by the system administrator's password reset.
    Reset,
}

impl SecretPurpose {
    pub fn code(self) -> &'static str {
        match self {
            SecretPurpose::Bootstrap => "bootstrap",
            SecretPurpose::Activation => "activation",
            SecretPurpose::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<SecretPurpose> {
        match s {
            "bootstrap" => Some(SecretPurpose::Bootstrap),
            "activation" => Some(SecretPurpose::Activation),
            "reset" => Some(SecretPurpose::Reset),
            _ => None,
        }
    }
}

/// The unit subtree an account acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeUnit {
    pub id: i64,
    pub code: UnitCode,
    pub name: String,
    /// Materialized path (see [`crate::domain::unit`]).
    pub path: String,
}

/// Where an account may act: every unit, or one unit and everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Subtree(ScopeUnit),
}

impl Scope {
    /// Whether a unit with materialized path `path` lies within this scope.
    pub fn covers_path(&self, path: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Subtree(top) => path.starts_with(&top.path),
        }
    }

    /// Whether everything `other` reaches lies within this scope.
    pub fn covers(&self, other: &Scope) -> bool {
        match other {
            Scope::All => matches!(self, Scope::All),
            Scope::Subtree(unit) => self.covers_path(&unit.path),
        }
    }

    /// The subtree's top unit, or `None` for every unit.
    pub fn unit(&self) -> Option<&ScopeUnit> {
        match self {
            Scope::All => None,
            Scope::Subtree(u) => Some(u),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

/// An account as shown (no secrets, no hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: i64,
    pub username: Username,
    pub display_name: String,
    /// The top of the account's subtree; `None` means every unit.
    pub unit: Option<ScopeUnit>,
    pub roles: Vec<Role>,
    pub status: AccountStatus,
    pub must_change_password: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub password_changed_at: Option<OffsetDateTime>,
    pub has_password: bool,
    pub failed_logins: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    pub last_login_source: Option<String>,
    /// A one-time secret not yet used: what for and until when.
    pub pending_secret: Option<SecretPurpose>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub secret_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Account {
    pub fn scope(&self) -> Scope {
        match &self.unit {
            None => Scope::All,
            Some(u) => Scope::Subtree(u.clone()),
        }
    }

    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    pub fn holds_officer_role(&self) -> bool {
        self.roles.iter().any(|r| r.is_officer())
    }
}

/// What a login attempt needs about an account, read in one go.
#[derive(Debug, Clone)]
pub struct LoginAccount {
    pub account: Account,
    /// PHC string; `None` after a reset or before the first password.
    pub password_hash: Option<String>,
    /// SHA-256 of the pending one-time secret.
    pub secret_sha256: Option<[u8; 32]>,
}

/// A new account, created by a system administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub username: Username,
    pub display_name: String,
    /// `None` for every unit.
    pub unit: Option<UnitCode>,
}

/// A one-time secret to store (its hash) with what it is for and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSecret {
    pub sha256: [u8; 32],
    pub purpose: SecretPurpose,
    pub expires_at: OffsetDateTime,
}

/// The security policy, set by the security administrator. Every field has bounds that keep
/// the installation within the rules it must meet (seed 002, 等保 level 3): a policy can be
/// made stricter than the default, and looser only within reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// Consecutive failed logins that lock an account (1–10; default 5).
    pub lockout_threshold: u32,
    /// How long a lock lasts, in minutes (1–1440; default 30).
    pub lockout_minutes: u32,
    /// Days after which a password must be changed at the next login (1–365; default 90).
    pub password_max_age_days: u32,
    /// How many recent passwords may not be used again, the current one included (5–24).
    pub password_history: u32,
    /// Minutes without a request after which a session ends (1–30; default 15).
    pub idle_minutes: u32,
    /// Hours after login after which a session ends whatever happens (1–24; default 12).
    pub absolute_hours: u32,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            lockout_threshold: 5,
            lockout_minutes: 30,
            password_max_age_days: 90,
            password_history: 5,
            idle_minutes: 15,
            absolute_hours: 12,
        }
    }
}

/// A policy value outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max}, not {value}")]
pub struct PolicyError {
    pub field: &'static str,
    pub min: u32,
    pub max: u32,
    pub value: u32,
}

impl SecurityPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        let checks = [
            ("lockout_threshold", self.lockout_threshold, 1, 10),
            ("lockout_minutes", self.lockout_minutes, 1, 1440),
            ("password_max_age_days", self.password_max_age_days, 1, 365),
            ("password_history", self.password_history, 5, 24),
            ("idle_minutes", self.idle_minutes, 1, 30),
            ("absolute_hours", self.absolute_hours, 1, 24),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(PolicyError {
                    field,
                    min,
                    max,
                    value,
                });
            }
        }
        Ok(())
    }

    pub fn lockout(&self) -> Duration {
        Duration::minutes(i64::from(self.lockout_minutes))
    }

    pub fn idle(&self) -> Duration {
        Duration::minutes(i64::from(self.idle_minutes))
    }

    pub fn absolute(&self) -> Duration {
        Duration::hours(i64::from(self.absolute_hours))
    }

    pub fn password_max_age(&self) -> Duration {
        Duration::days(i64::from(self.password_max_age_days))
    }
}

/// An operator session as stored (the token itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    pub id: i64,
    pub account_id: i64,
    /// The U-Key the login came with (mode `token+password`); every request must come with it.
    pub token_id: Option<i64>,
    /// Only the password change is allowed (first login, reset, expired password).
    pub restricted: bool,
    /// Created with a one-time secret: the password change needs no current password.
    pub via_secret: bool,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

/// Why a session is no longer usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Idle,
    Absolute,
    Ended,
}

impl OperatorSession {
    /// `None` while usable at `now` under `policy`; otherwise why not.
    pub fn end_at(&self, now: OffsetDateTime, policy: &SecurityPolicy) -> Option<SessionEnd> {
        if self.ended_at.is_some() {
            Some(SessionEnd::Ended)
        } else if now >= self.expires_at {
            Some(SessionEnd::Absolute)
        } else if now - self.last_seen_at > policy.idle() {
            Some(SessionEnd::Idle)
        } else {
            None
        }
    }
}

/// A new session to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperatorSession {
    pub token_sha256: [u8; 32],
    pub token_id: Option<i64>,
    pub restricted: bool,
    pub via_secret: bool,
    pub source: Option<String>,
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_officer_role_is_always_held_alone() {
        use Role::*;
        assert_eq!(role_conflict(&[], Sysadmin), None);
        assert_eq!(role_conflict(&[Operator], Assessor), None);
        for officer in [Sysadmin, Secadmin, Auditor] {
            for other in ALL_ROLES.iter().copied().filter(|r| *r != officer) {
                assert!(
                    role_conflict(&[officer], other).is_some(),
                    "{officer}+{other}"
                );
                assert!(
                    role_conflict(&[other], officer).is_some(),
                    "{other}+{officer}"
                );
            }
        }
        assert_eq!(
            role_conflict(&[Operator], Operator),
            Some(RoleConflict::AlreadyHeld(Operator))
        );
    }

    #[test]
    fn usernames_are_folded_to_lowercase_and_checked() {
        assert_eq!(Username::parse(" Alice.W ").unwrap().as_str(), "alice.w");
        for bad in ["ab", "-abc", "张三丰", "a b c", &"x".repeat(33), ""] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_bounds_keep_the_rules_in_force() {
        assert!(SecurityPolicy::default().validate().is_ok());
        let loose = SecurityPolicy {
            idle_minutes: 120,
            ..SecurityPolicy::default()
        };
        assert_eq!(loose.validate().unwrap_err().field, "idle_minutes");
        let no_history = SecurityPolicy {
            password_history: 1,
            ..SecurityPolicy::default()
        };
        assert!(no_history.validate().is_err());
    }
}
