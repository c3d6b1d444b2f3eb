//! Operator login, the per-request session check, logout and password change.
//!
//! A login attempt costs one Argon2 verification and one audited write whatever happens
//! (unknown user, wrong password, locked or disabled account), and all of them answer with
//! the same error. Under `operator_login = "token+password"` the U-Key comes first: without
//! one on the connection the attempt is refused before the account or the password is looked
//! at; the token must be active and bound within the account's subtree, and every request of
//! the session must come with that same token.

use super::authz::{Actor, Operator};
use super::{OperatorLogin, RequestContext, Service, ServiceError, TokenAuth};
use crate::audit::{AuditEntry, AuditResult};
use crate::domain::LoginKind;
use crate::domain::account::{
    Account, AccountStatus, LoginAccount, NewOperatorSession, OperatorSession, SessionEnd,
    Username, roles_text,
};
use crate::storage::AccountChange;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use ukey_proto::{PasswordContext, PasswordPolicy, PolicyRejection, Violation};

/// A successful login: the session token (shown once; only its SHA-256 is stored).
#[derive(Debug)]
pub struct LoggedIn {
    pub token: SecretString,
    pub account: Account,
    /// Only the password change is allowed in this session.
    pub must_change_password: bool,
    pub expires_at: OffsetDateTime,
    pub idle_timeout: time::Duration,
}

/// Serialises login attempts per username within this process, so parallel guesses cannot
/// all slip in before the failure count locks the account.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl LoginLocks {
    async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(name.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// SHA-256 of a session token or one-time secret.
pub(crate) fn sha256(text: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// One-time secrets are typed by hand: case, spaces and dashes do not matter.
pub(crate) fn secret_sha256(typed: &str) -> [u8; 32] {
    let canonical: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    sha256(&canonical)
}

/// A random session token: 256 bits, URL-safe base64.
fn new_session_token() -> SecretString {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut_slice());
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

/// Why an attempt failed, for the audit record only (the client hears one generic error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    UnknownUser,
    Disabled,
    Locked,
    TokenOutsideScope,
    BadPassword,
    SecretExpired,
}

impl Failure {
    fn code(self) -> &'static str {
        match self {
            Failure::UnknownUser => "unknown_user",
            Failure::Disabled => "disabled",
            Failure::Locked => "locked",
            Failure::TokenOutsideScope => "token_outside_scope",
            Failure::BadPassword => "bad_password",
            Failure::SecretExpired => "secret_expired",
        }
    }

    /// Whether the attempt counts towards the lockout: it guessed a credential.
    fn counts(self) -> bool {
        matches!(
            self,
            Failure::BadPassword | Failure::TokenOutsideScope | Failure::SecretExpired
        )
    }
}

impl Service {
    /// `POST /api/v1/operator/login`.
    pub async fn operator_login(
        &self,
        ctx: &RequestContext,
        username: &str,
        password: &SecretString,
    ) -> Result<LoggedIn, ServiceError> {
        let name = Username::parse(username).ok();
        let shown = name.as_ref().map_or("(invalid)", |n| n.as_str()).to_owned();
        let entry = |now, result| {
            let mut e = AuditEntry::new(now, &format!("op:{shown}"), "operator.login", result)
                .target(format!("account:{shown}"));
            e.source = ctx.source.map(|s| s.to_string());
            e
        };
        // The first factor, before anything about the account is read.
        let token = match self.accounts.operator_login {
            OperatorLogin::Password => None,
            OperatorLogin::TokenAndPassword => {
                if ctx.peer.is_none() {
                    let e = entry(self.clock.now(), AuditResult::Denied)
                        .detail("reason", "token_required");
                    self.append_audit(e).await?;
                    return Err(ServiceError::TokenRequired);
                }
                Some(self.check_token(ctx, LoginKind::Request, None).await?)
            }
        };
        if password.expose_secret().len() > ukey_proto::MAX_SECRET_BYTES {
            // Not worth an Argon2 run; refused like any wrong password.
            let e = entry(self.clock.now(), AuditResult::Denied).detail("reason", "too_long");
            self.append_audit(e).await?;
            return Err(ServiceError::InvalidCredentials);
        }
        let _serial = self.login_locks.lock(&shown).await;
        let policy = self.storage.security_policy().await?;
        let found = match &name {
            Some(n) => self.storage.login_account(n.as_str()).await?,
            None => None,
        };
        // Exactly one verification, against the stored hash or a dummy one.
        let stored = found.as_ref().and_then(|f| f.password_hash.clone());
        let password_ok = self.hasher.verify(password, stored.as_deref()).await?;
        let now = self.clock.now();
        let Some(found) = found else {
            let e = entry(now, AuditResult::Denied).detail("reason", Failure::UnknownUser.code());
            self.append_audit(e).await?;
            return Err(ServiceError::InvalidCredentials);
        };
        let account = &found.account;
        let secret = secret_state(&found, password, now);
        let scope_ok = match &token {
            Some(auth) => self.token_within(auth, account).await?,
            None => true,
        };
        let failure = if account.status == AccountStatus::Disabled {
            Some(Failure::Disabled)
        } else if account.is_locked(now) {
            Some(Failure::Locked)
        } else if !scope_ok {
            Some(Failure::TokenOutsideScope)
        } else if password_ok || secret == SecretState::Valid {
            None
        } else if secret == SecretState::Expired {
            Some(Failure::SecretExpired)
        } else {
            Some(Failure::BadPassword)
        };
        let mut e = entry(now, AuditResult::Success);
        e.actor_roles = roles_text(&account.roles);
        e.unit = account.unit.as_ref().map(|u| u.code.clone());
        if let Some(auth) = &token {
            e = e.detail("token", auth.serial.as_str());
        }
        if let Some(failure) = failure {
            e.result = AuditResult::Denied;
            e = e.detail("reason", failure.code());
            if failure.counts() {
                let failures = account.failed_logins + 1;
                let locks = failures >= i64::from(policy.lockout_threshold);
                let locked_until = now + policy.lockout();
                e = e.detail("failures", failures);
                if locks {
                    e = e.detail("locked_until", crate::clock::shanghai_rfc3339(locked_until));
                    tracing::warn!(account = %account.username, "account locked after repeated login failures");
                }
                let change = AccountChange::LoginFailed {
                    threshold: policy.lockout_threshold,
                    locked_until,
                };
                self.storage
                    .update_account(account.id, &change, now, self.audited(e))
                    .await?;
            } else {
                self.append_audit(e).await?;
            }
            return Err(ServiceError::InvalidCredentials);
        }
        let used_secret = secret == SecretState::Valid && !password_ok;
        let expired = account
            .password_changed_at
            .is_none_or(|t| now >= t + policy.password_max_age());
        let restricted = used_secret || account.must_change_password || expired;
        let rehash = match &stored {
            Some(phc) if password_ok && self.hasher.needs_rehash(phc) => {
                Some(self.hasher.hash(password).await?)
            }
            _ => None,
        };
        let session_token = new_session_token();
        let expires_at = now + policy.absolute();
        e = e
            .detail(
                "credential",
                if used_secret {
                    "one_time_secret"
                } else {
                    "password"
                },
            )
            .detail("restricted", restricted)
            .detail("rehashed", rehash.is_some());
        let change = AccountChange::LoggedIn {
            session: NewOperatorSession {
                token_sha256: sha256(session_token.expose_secret()),
                token_id: token.as_ref().map(|t| t.token_id),
                restricted,
                via_secret: used_secret,
                source: ctx.source.map(|s| s.to_string()),
                expires_at,
            },
            rehash,
            used_secret,
        };
        let account = self
            .storage
            .update_account(account.id, &change, now, self.audited(e))
            .await?;
        tracing::info!(account = %account.username, restricted, "operator logged in");
        Ok(LoggedIn {
            token: session_token,
            account,
            must_change_password: restricted,
            expires_at,
            idle_timeout: policy.idle(),
        })
    }

    /// Whether the token is bound within the account's subtree.
    async fn token_within(
        &self,
        auth: &TokenAuth,
        account: &Account,
    ) -> Result<bool, ServiceError> {
        let Some(unit) = self.storage.unit(&auth.unit.code).await? else {
            return Ok(false);
        };
        Ok(account.scope().covers_path(&unit.path))
    }

    /// The session behind a request's cookie or bearer token, checked in full on every
    /// request: not ended, not idle, not past its absolute limit, the account active, and
    /// (two factors) the same U-Key on the connection, still bound within the account's
    /// subtree. Activity is recorded (the idle timeout restarts).
    pub async fn operator_session(
        &self,
        ctx: &RequestContext,
        token: &str,
    ) -> Result<Operator, ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Err(ServiceError::NotAuthenticated);
        }
        let Some((session, account)) = self.storage.operator_session(&sha256(token)).await? else {
            return Err(ServiceError::NotAuthenticated);
        };
        let policy = self.storage.security_policy().await?;
        let now = self.clock.now();
        let actor = Operator {
            account: account.clone(),
            session_id: session.id,
            restricted: session.restricted,
            via_secret: session.via_secret,
            token: None,
            source: ctx.source,
        }
        .actor();
        match session.end_at(now, &policy) {
            None => {}
            Some(SessionEnd::Ended) => return Err(ServiceError::NotAuthenticated),
            Some(end) => {
                let reason = match end {
                    SessionEnd::Idle => "idle",
                    _ => "absolute",
                };
                self.end_session_for(&session, &actor, reason, now).await?;
                return Err(ServiceError::NotAuthenticated);
            }
        }
        if account.status == AccountStatus::Disabled {
            return Err(ServiceError::NotAuthenticated);
        }
        let token = match self.accounts.operator_login {
            OperatorLogin::Password => None,
            OperatorLogin::TokenAndPassword => {
                if ctx.peer.is_none() {
                    let e = actor
                        .entry(now, "operator.request", AuditResult::Denied)
                        .detail("reason", "token_required");
                    self.append_audit(e).await?;
                    return Err(ServiceError::TokenRequired);
                }
                let auth = self.check_token(ctx, LoginKind::Request, None).await?;
                let same = session.token_id == Some(auth.token_id);
                if !same || !self.token_within(&auth, &account).await? {
                    // Another token with this session's cookie, or the token moved out of
                    // the account's subtree: the session is not to be trusted any more.
                    let reason = if same {
                        "token_outside_scope"
                    } else {
                        "token_mismatch"
                    };
                    self.end_session_for(&session, &actor, reason, now).await?;
                    return Err(ServiceError::NotAuthenticated);
                }
                Some(auth)
            }
        };
        self.storage.touch_operator_session(session.id, now).await?;
        Ok(Operator {
            account,
            session_id: session.id,
            restricted: session.restricted,
            via_secret: session.via_secret,
            token,
            source: ctx.source,
        })
    }

    async fn end_session_for(
        &self,
        session: &OperatorSession,
        actor: &Actor,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let mut e = actor
            .entry(now, "operator.session_end", AuditResult::Success)
            .detail("reason", reason);
        e.unit = actor.scope.unit().map(|u| u.code.clone());
        self.storage
            .end_operator_session(session.id, reason, now, self.audited(e))
            .await?;
        tracing::info!(actor = %actor.name, reason, "operator session ended");
        Ok(())
    }

    /// `POST /api/v1/operator/logout`: ends every session of the account.
    pub async fn operator_logout(&self, op: &Operator) -> Result<(), ServiceError> {
        let actor = op.actor();
        let mut e = actor.entry(self.clock.now(), "operator.logout", AuditResult::Success);
        e.unit = actor.scope.unit().map(|u| u.code.clone());
        self.storage
            .update_account(
                op.account.id,
                &AccountChange::EndSessions,
                self.clock.now(),
                self.audited(e),
            )
            .await?;
        Ok(())
    }

    /// `POST /api/v1/operator/password`: the rule of `ukey-proto` (with the account's name,
    /// display name and unit as context), then the last passwords, then the new hash; every
    /// session of the account ends (log in again with the new password). A session opened
    /// with a one-time secret needs no current password.
    pub async fn change_password(
        &self,
        op: &Operator,
        current: Option<&SecretString>,
        new: &SecretString,
    ) -> Result<(), ServiceError> {
        let actor = op.actor();
        let now = self.clock.now();
        let mut entry = actor.entry(now, "operator.password_change", AuditResult::Success);
        entry.target = Some(format!("account:{}", op.account.username));
        entry.unit = actor.scope.unit().map(|u| u.code.clone());
        let policy = self.storage.security_policy().await?;
        let found = self
            .storage
            .login_account(op.account.username.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("account {}", op.account.username)))?;
        if !op.via_secret {
            let ok = match current {
                Some(c) => {
                    self.hasher
                        .verify(c, found.password_hash.as_deref())
                        .await?
                }
                None => false,
            };
            if !ok {
                let failures = found.account.failed_logins + 1;
                let mut e = entry.clone().detail("reason", "wrong_current_password");
                e.result = AuditResult::Failed;
                e = e.detail("failures", failures);
                let change = AccountChange::LoginFailed {
                    threshold: policy.lockout_threshold,
                    locked_until: now + policy.lockout(),
                };
                self.storage
                    .update_account(op.account.id, &change, now, self.audited(e))
                    .await?;
                return Err(ServiceError::WrongPassword);
            }
        }
        let result = async {
            check_rule(new, &found.account)?;
            let recent = self
                .storage
                .password_history(op.account.id, policy.password_history)
                .await?;
            for old in &recent {
                if self.hasher.verify(new, Some(old)).await? {
                    return Err(ServiceError::PasswordRejected(PolicyRejection {
                        violations: vec![Violation::RecentlyUsed {
                            count: policy.password_history as usize,
                        }],
                    }));
                }
            }
            let hash = self.hasher.hash(new).await?;
            let change = AccountChange::SetPassword {
                hash,
                keep: policy.password_history,
            };
            self.storage
                .update_account(op.account.id, &change, now, self.audited(entry.clone()))
                .await?;
            tracing::info!(account = %op.account.username, "password changed; sessions ended");
            Ok(())
        }
        .await;
        self.finish(entry, result).await
    }
}

/// The password rule with the account's context.
fn check_rule(new: &SecretString, account: &Account) -> Result<(), ServiceError> {
    let context = PasswordContext {
        username: Some(account.username.as_str()),
        display_name: Some(account.display_name.as_str()),
        unit_name: account.unit.as_ref().map(|u| u.name.as_str()),
        unit_code: account.unit.as_ref().map(|u| u.code.as_str()),
    };
    PasswordPolicy::default()
        .check(new.expose_secret(), &context)
        .map_err(ServiceError::PasswordRejected)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecretState {
    None,
    Valid,
    Expired,
}

/// Whether `typed` is the account's pending one-time secret, compared in constant time.
fn secret_state(found: &LoginAccount, typed: &SecretString, now: OffsetDateTime) -> SecretState {
    let (Some(stored), Some(expires)) = (found.secret_sha256, found.account.secret_expires_at)
    else {
        return SecretState::None;
    };
    let matches: bool = secret_sha256(typed.expose_secret()).ct_eq(&stored).into();
    match (matches, now < expires) {
        (true, true) => SecretState::Valid,
        (true, false) => SecretState::Expired,
        _ => SecretState::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_secrets_ignore_case_spaces_and_dashes() {
        assert_eq!(
            secret_sha256("abcd-efgh 2345"),
            secret_sha256("ABCDEFGH2345")
        );
        assert_ne!(secret_sha256("ABCDEFGH2345"), secret_sha256("ABCDEFGH2346"));
    }
}
