//! Authorization: who may do what, where. Deny by default: a role holds exactly the
//! permissions listed in [`permits`], every check also needs the target inside the actor's
//! unit subtree, and every denial is written to the audit trail before it is returned.
//!
//! To protect a new endpoint (see `http::manage` for the pattern):
//! 1. take an authenticated [`Operator`] (the HTTP extractor `http::manage::Authenticated`),
//! 2. define an [`Action`] (`const MY_READ: Action = Action::new("thing.read",
//!    Permission::AssessmentRead)`),
//! 3. call [`Service::authorize`] with the target (a unit, an account, the whole
//!    installation…): it returns the [`Actor`] to pass to the operation, or a 403 it has
//!    already audited,
//! 4. for a read, call [`Service::record_read`] before answering; operations that change
//!    something write their own record in their transaction.

use super::{Service, ServiceError};
use crate::audit::{AuditEntry, AuditResult};
use crate::domain::Unit;
use crate::domain::account::{Account, Role, Scope, roles_text};
use crate::service::TokenAuth;
use std::net::SocketAddr;
use time::OffsetDateTime;
use ukey_proto::UnitCode;

/// What an action needs. Each role holds a fixed set ([`permits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    UnitsRead,
    UnitsWrite,
    AdministratorsRead,
    AdministratorsWrite,
    TokensRead,
    TokensWrite,
    AccountsRead,
    /// Create, disable, enable, reset accounts.
    AccountsManage,
    /// Grant and revoke roles, change scopes.
    RolesGrant,
    AccountsUnlock,
    PolicyRead,
    PolicyWrite,
    LoginsRead,
    AuditRead,
    AssessmentRead,
}

/// The permissions of each role; anything not listed is denied.
pub fn permits(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match role {
        Role::Sysadmin => matches!(
            permission,
            P::UnitsRead
                | P::UnitsWrite
                | P::AdministratorsRead
                | P::AdministratorsWrite
                | P::TokensRead
                | P::TokensWrite
                | P::AccountsRead
                | P::AccountsManage
        ),
        Role::Secadmin => matches!(
            permission,
            P::UnitsRead
                | P::AccountsRead
                | P::RolesGrant
                | P::AccountsUnlock
                | P::PolicyRead
                | P::PolicyWrite
        ),
        Role::Auditor => matches!(
            permission,
            P::UnitsRead | P::AuditRead | P::LoginsRead | P::PolicyRead
        ),
        Role::Operator => matches!(
            permission,
            P::UnitsRead
                | P::AdministratorsRead
                | P::AdministratorsWrite
                | P::TokensRead
                | P::TokensWrite
        ),
        Role::Assessor => matches!(permission, P::UnitsRead | P::LoginsRead | P::AssessmentRead),
    }
}

/// An operation of the management API: a stable code (the audit record's `action`) and the
/// permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub code: &'static str,
    pub permission: Permission,
}

impl Action {
    pub const fn new(code: &'static str, permission: Permission) -> Action {
        Action { code, permission }
    }
}

/// The actions of API v1.
pub mod actions {
    use super::{Action, Permission as P};

    pub const UNITS_LIST: Action = Action::new("unit.list", P::UnitsRead);
    pub const UNIT_READ: Action = Action::new("unit.read", P::UnitsRead);
    pub const UNIT_CREATE: Action = Action::new("unit.create", P::UnitsWrite);
    pub const UNIT_UPDATE: Action = Action::new("unit.update", P::UnitsWrite);
    pub const UNIT_DELETE: Action = Action::new("unit.delete", P::UnitsWrite);
    pub const UNIT_MOVE: Action = Action::new("unit.move", P::UnitsWrite);
    pub const UNITS_IMPORT: Action = Action::new("unit.import", P::UnitsWrite);
    pub const UNITS_EXPORT: Action = Action::new("unit.export", P::UnitsRead);
    pub const ADMINS_LIST: Action = Action::new("administrator.list", P::AdministratorsRead);
    pub const ADMIN_CREATE: Action = Action::new("administrator.create", P::AdministratorsWrite);
    pub const ADMIN_UPDATE: Action = Action::new("administrator.update", P::AdministratorsWrite);
    pub const ADMIN_DELETE: Action = Action::new("administrator.delete", P::AdministratorsWrite);
    pub const TOKENS_LIST: Action = Action::new("token.list", P::TokensRead);
    pub const TOKEN_READ: Action = Action::new("token.read", P::TokensRead);
    pub const TOKEN_REGISTER: Action = Action::new("token.register", P::TokensWrite);
    pub const TOKEN_BIND: Action = Action::new("token.bind", P::TokensWrite);
    pub const TOKEN_REBIND: Action = Action::new("token.rebind", P::TokensWrite);
    pub const TOKEN_SUSPEND: Action = Action::new("token.suspend", P::TokensWrite);
    pub const TOKEN_RESUME: Action = Action::new("token.resume", P::TokensWrite);
    pub const TOKEN_LOST: Action = Action::new("token.lost", P::TokensWrite);
    pub const TOKEN_REVOKE: Action = Action::new("token.revoke", P::TokensWrite);
    pub const ACCOUNTS_LIST: Action = Action::new("account.list", P::AccountsRead);
    pub const ACCOUNT_READ: Action = Action::new("account.read", P::AccountsRead);
    pub const ACCOUNT_CREATE: Action = Action::new("account.create", P::AccountsManage);
    pub const ACCOUNT_DISABLE: Action = Action::new("account.disable", P::AccountsManage);
    pub const ACCOUNT_ENABLE: Action = Action::new("account.enable", P::AccountsManage);
    pub const ACCOUNT_RESET: Action = Action::new("account.reset", P::AccountsManage);
    pub const ROLE_GRANT: Action = Action::new("role.grant", P::RolesGrant);
    pub const ROLE_REVOKE: Action = Action::new("role.revoke", P::RolesGrant);
    pub const ACCOUNT_SCOPE: Action = Action::new("account.scope", P::RolesGrant);
    pub const ACCOUNT_UNLOCK: Action = Action::new("account.unlock", P::AccountsUnlock);
    pub const POLICY_READ: Action = Action::new("policy.read", P::PolicyRead);
    pub const POLICY_UPDATE: Action = Action::new("policy.update", P::PolicyWrite);
    pub const LOGINS_LIST: Action = Action::new("login.list", P::LoginsRead);
    pub const LOGINS_EXPORT: Action = Action::new("login.export", P::LoginsRead);
    pub const AUDIT_LIST: Action = Action::new("audit.list", P::AuditRead);
    pub const AUDIT_EXPORT: Action = Action::new("audit.export", P::AuditRead);
    pub const AUDIT_VERIFY: Action = Action::new("audit.verify", P::AuditRead);
}

/// Who performs an operation, as the audit trail names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `op:<username>`, `cli:<os user>`, `system`.
    pub name: String,
    pub roles: Vec<Role>,
    pub source: Option<String>,
    /// Where the actor may act (the command line: everywhere).
    pub scope: Scope,
    pub account_id: Option<i64>,
}

impl Actor {
    /// The local command line: whoever can run it owns the data; named by the OS user.
    pub fn cli() -> Actor {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            name: format!("cli:{user}"),
            roles: Vec::new(),
            source: Some("local".into()),
            scope: Scope::All,
            account_id: None,
        }
    }

    /// The service itself (retention, timeouts).
    pub fn system() -> Actor {
        Actor {
            name: "system".into(),
            roles: Vec::new(),
            source: None,
            scope: Scope::All,
            account_id: None,
        }
    }

    /// An audit entry by this actor.
    pub fn entry(&self, at: OffsetDateTime, action: &str, result: AuditResult) -> AuditEntry {
        let mut entry = AuditEntry::new(at, &self.name, action, result);
        entry.actor_roles = roles_text(&self.roles);
        entry.source = self.source.clone();
        entry
    }
}

/// An authenticated operator session, as a request carries it.
#[derive(Debug, Clone)]
pub struct Operator {
    pub account: Account,
    pub session_id: i64,
    /// Only the password change is allowed until the password is changed.
    pub restricted: bool,
    pub via_secret: bool,
    /// The U-Key on the connection (mode `token+password`).
    pub token: Option<TokenAuth>,
    pub source: Option<SocketAddr>,
}

impl Operator {
    pub fn actor(&self) -> Actor {
        Actor {
            name: format!("op:{}", self.account.username),
            roles: self.account.roles.clone(),
            source: self.source.map(|s| s.to_string()),
            scope: self.account.scope(),
            account_id: Some(self.account.id),
        }
    }

    pub fn scope(&self) -> Scope {
        self.account.scope()
    }
}

/// What an action is applied to, for the scope check and the audit record.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The installation as a whole (policy, verification): whole-tree accounts only.
    Global,
    /// A unit, or something belonging to one (`label`: `token:T1`, `administrator:7`, …).
    Unit { label: &'a str, unit: &'a Unit },
    /// Something bound to no unit (an unbound token): whole-tree accounts only.
    Unbound { label: &'a str },
    /// An operator account: its scope must lie within the actor's; some actions may not be
    /// applied to oneself or to the other officers.
    Account(&'a Account),
    /// A list the operation itself restricts to the actor's scope.
    OwnScope,
    /// Something that does not exist: 404 for a whole-tree actor, and for anyone else the
    /// same 403 as something outside their scope (guessing ids tells nothing).
    Missing { label: &'a str },
}

impl Target<'_> {
    fn label(&self) -> Option<String> {
        match self {
            Target::Global | Target::OwnScope => None,
            Target::Unit { label, .. } | Target::Unbound { label } | Target::Missing { label } => {
                Some((*label).to_owned())
            }
            Target::Account(a) => Some(format!("account:{}", a.username)),
        }
    }

    fn unit(&self) -> Option<(&UnitCode, &str)> {
        match self {
            Target::Unit { unit, .. } => Some((&unit.code, &unit.path)),
            Target::Account(a) => a.unit.as_ref().map(|u| (&u.code, u.path.as_str())),
            _ => None,
        }
    }
}

/// Why an authorization failed (recorded in the audit trail; the client sees one 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialReason {
    /// None of the actor's roles has the permission.
    Role,
    /// The target lies outside the actor's subtree (or does not exist).
    Scope,
    /// The action may not be applied to oneself (no self-granting, self-unlocking, …).
    SelfTarget,
    /// A system administrator may not manage the security administrator's or the auditor's
    /// account.
    Officer,
    /// The session may only change the password.
    PasswordChangeRequired,
}

impl DenialReason {
    pub fn code(self) -> &'static str {
        match self {
            DenialReason::Role => "role",
            DenialReason::Scope => "scope",
            DenialReason::SelfTarget => "self",
            DenialReason::Officer => "officer",
            DenialReason::PasswordChangeRequired => "password_change_required",
        }
    }
}

fn decide(op: &Operator, action: &Action, target: &Target<'_>) -> Result<(), DenialReason> {
    if op.restricted {
        return Err(DenialReason::PasswordChangeRequired);
    }
    let roles = &op.account.roles;
    if !roles.iter().any(|r| permits(*r, action.permission)) {
        return Err(DenialReason::Role);
    }
    let scope = op.scope();
    let covered = match target {
        Target::Global | Target::Unbound { .. } => scope.is_all(),
        Target::Unit { unit, .. } => scope.covers_path(&unit.path),
        Target::Account(a) => scope.covers(&a.scope()),
        Target::OwnScope => true,
        Target::Missing { .. } => scope.is_all(),
    };
    if !covered {
        return Err(DenialReason::Scope);
    }
    if let Target::Account(a) = target {
        let guarded = matches!(
            action.permission,
            Permission::AccountsManage | Permission::RolesGrant | Permission::AccountsUnlock
        );
        if guarded && a.id == op.account.id {
            return Err(DenialReason::SelfTarget);
        }
        if action.permission == Permission::AccountsManage
            && a.roles
                .iter()
                .any(|r| matches!(r, Role::Secadmin | Role::Auditor))
        {
            return Err(DenialReason::Officer);
        }
    }
    Ok(())
}

impl Service {
    /// Decides whether `op` may apply `action` to `target`. A denial is audited, then returned
    /// as [`ServiceError::Forbidden`] (or [`ServiceError::PasswordChangeRequired`]); a missing
    /// target within a whole-tree actor's reach is audited as failed and returned as not found.
    pub async fn authorize(
        &self,
        op: &Operator,
        action: &Action,
        target: Target<'_>,
    ) -> Result<Actor, ServiceError> {
        let actor = op.actor();
        let decision = decide(op, action, &target);
        let (result, error) = match (decision, &target) {
            (Ok(()), Target::Missing { label }) => (
                AuditResult::Failed,
                ServiceError::NotFound((*label).to_owned()),
            ),
            (Ok(()), _) => return Ok(actor),
            (Err(DenialReason::PasswordChangeRequired), _) => {
                (AuditResult::Denied, ServiceError::PasswordChangeRequired)
            }
            (Err(reason), _) => (AuditResult::Denied, ServiceError::Forbidden(reason)),
        };
        let mut entry = actor.entry(self.clock.now(), action.code, result);
        entry.target = target.label();
        if let Some((code, path)) = target.unit() {
            entry.unit = Some(code.clone());
            entry.unit_path = Some(path.to_owned());
        }
        entry = match decision {
            Err(reason) => entry.detail("denied", reason.code()),
            Ok(()) => entry.detail("error", "not_found"),
        };
        tracing::info!(actor = %actor.name, action = action.code, target = ?entry.target, result = result.code(), "not authorized");
        self.append_audit(entry).await?;
        Err(error)
    }

    /// Records a successful read (one record per request, written before the answer).
    pub async fn record_read(
        &self,
        by: &Actor,
        action: &Action,
        target: Option<String>,
        unit: Option<&UnitCode>,
        detail: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ServiceError> {
        let mut entry = by.entry(self.clock.now(), action.code, AuditResult::Success);
        entry.target = target;
        entry.unit = unit.cloned();
        entry.detail = detail;
        self.append_audit(entry).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::ALL_ROLES;

    #[test]
    fn the_auditor_may_write_nothing_and_the_secadmin_touches_no_token() {
        let writes = [
            Permission::UnitsWrite,
            Permission::AdministratorsWrite,
            Permission::TokensWrite,
            Permission::AccountsManage,
            Permission::RolesGrant,
            Permission::AccountsUnlock,
            Permission::PolicyWrite,
        ];
        for w in writes {
            assert!(!permits(Role::Auditor, w), "{w:?}");
            assert!(!permits(Role::Assessor, w), "{w:?}");
        }
        for p in [
            Permission::UnitsWrite,
            Permission::TokensRead,
            Permission::TokensWrite,
        ] {
            assert!(!permits(Role::Secadmin, p), "{p:?}");
        }
        assert!(!permits(Role::Sysadmin, Permission::RolesGrant));
        // Only the security administrator grants.
        let granters: Vec<_> = ALL_ROLES
            .iter()
            .filter(|r| permits(**r, Permission::RolesGrant))
            .collect();
        assert_eq!(granters, [&Role::Secadmin]);
    }
}
