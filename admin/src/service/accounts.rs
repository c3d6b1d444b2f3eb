//! Managing operator accounts: creating them (with a one-time secret, never a password the
//! administrator chooses or sees), disabling, resetting, granting roles and scopes, unlocking,
//! and the security policy. Authorization happens before these are called (`authz`); the
//! rules that hold whoever calls (officer roles held alone, a valid policy) are checked here
//! and again by the database.

use super::authz::{Action, Actor, actions};
use super::operators::secret_sha256;
use super::{Service, ServiceError};
use crate::audit::{AuditEntry, AuditResult};
use crate::domain::account::{
    Account, AccountStatus, NewAccount, PendingSecret, Role, Scope, SecretPurpose, SecurityPolicy,
    Username,
};
use crate::domain::unit::clean_name;
use crate::storage::AccountChange;
use secrecy::{ExposeSecret, SecretString};
use ukey_proto::UnitCode;

/// Letters and digits that cannot be mistaken for one another when read aloud or retyped.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A new one-time secret: 20 characters of a 32-letter alphabet (100 bits), in groups of five.
pub fn new_one_time_secret() -> SecretString {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let mut text = String::with_capacity(23);
    for i in 0..20 {
        if i > 0 && i % 5 == 0 {
            text.push('-');
        }
        let c = SECRET_ALPHABET[rng.gen_range(0..SECRET_ALPHABET.len())];
        text.push(char::from(c));
    }
    SecretString::from(text)
}

impl Service {
    fn account_entry(&self, by: &Actor, action: &Action, account: &Account) -> AuditEntry {
        let mut e = by
            .entry(self.clock.now(), action.code, AuditResult::Success)
            .target(format!("account:{}", account.username));
        e.unit = account.unit.as_ref().map(|u| u.code.clone());
        e
    }

    fn pending(&self, purpose: SecretPurpose) -> (SecretString, PendingSecret) {
        let secret = new_one_time_secret();
        let ttl = time::Duration::try_from(self.accounts.secret_ttl).unwrap_or(time::Duration::DAY);
        let pending = PendingSecret {
            sha256: secret_sha256(secret.expose_secret()),
            purpose,
            expires_at: self.clock.now() + ttl,
        };
        (secret, pending)
    }

    pub async fn security_policy(&self) -> Result<SecurityPolicy, ServiceError> {
        Ok(self.storage.security_policy().await?)
    }

    pub async fn set_security_policy(
        &self,
        policy: &SecurityPolicy,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        let entry = by
            .entry(
                self.clock.now(),
                actions::POLICY_UPDATE.code,
                AuditResult::Success,
            )
            .target("policy");
        let result = async {
            policy
                .validate()
                .map_err(|e| ServiceError::InvalidInput(e.to_string()))?;
            self.storage
                .set_security_policy(policy, self.clock.now(), self.audited(entry.clone()))
                .await?;
            tracing::info!(by = %by.name, ?policy, "security policy changed");
            Ok(())
        }
        .await;
        self.finish(entry, result).await
    }

    pub async fn account(&self, username: &str) -> Result<Option<Account>, ServiceError> {
        Ok(self.storage.account(username).await?)
    }

    /// Every account whose scope lies within `scope`.
    pub async fn accounts(&self, scope: &Scope) -> Result<Vec<Account>, ServiceError> {
        let mut all = self.storage.accounts().await?;
        all.retain(|a| scope.covers(&a.scope()));
        Ok(all)
    }

    /// Creates an account with no role and a one-time activation secret, returned once to be
    /// handed over out of band.
    pub async fn create_account(
        &self,
        username: &str,
        display_name: &str,
        unit: Option<&UnitCode>,
        by: &Actor,
    ) -> Result<(Account, SecretString), ServiceError> {
        let mut entry = by
            .entry(
                self.clock.now(),
                actions::ACCOUNT_CREATE.code,
                AuditResult::Success,
            )
            .target(format!("account:{}", username.trim().to_ascii_lowercase()))
            .unit(unit)
            .detail("display_name", display_name.trim());
        let (secret, pending) = self.pending(SecretPurpose::Activation);
        entry = entry.detail(
            "secret_expires_at",
            crate::clock::shanghai_rfc3339(pending.expires_at),
        );
        let result = async {
            let new = NewAccount {
                username: Username::parse(username)
                    .map_err(|e| ServiceError::InvalidInput(e.to_string()))?,
                display_name: clean_name(display_name)
                    .map_err(|e| ServiceError::InvalidInput(format!("display name: {e}")))?,
                unit: unit.cloned(),
            };
            let account = self
                .storage
                .insert_account(
                    &new,
                    &pending,
                    self.clock.now(),
                    self.audited(entry.clone()),
                )
                .await?;
            tracing::info!(account = %account.username, by = %by.name, "account created");
            Ok(account)
        }
        .await;
        let account = self.finish(entry, result).await?;
        Ok((account, secret))
    }

    async fn change_account(
        &self,
        account: &Account,
        change: AccountChange,
        action: &Action,
        by: &Actor,
        detail: &[(&str, serde_json::Value)],
    ) -> Result<Account, ServiceError> {
        let mut entry = self.account_entry(by, action, account);
        for (k, v) in detail {
            entry = entry.detail(k, v.clone());
        }
        let result = self
            .storage
            .update_account(
                account.id,
                &change,
                self.clock.now(),
                self.audited(entry.clone()),
            )
            .await
            .map_err(ServiceError::from);
        if result.is_ok() {
            tracing::info!(account = %account.username, action = action.code, by = %by.name, "account changed");
        }
        self.finish(entry, result).await
    }

    /// Disabling ends every session of the account.
    pub async fn set_account_status(
        &self,
        account: &Account,
        status: AccountStatus,
        by: &Actor,
    ) -> Result<Account, ServiceError> {
        let action = match status {
            AccountStatus::Disabled => &actions::ACCOUNT_DISABLE,
            AccountStatus::Active => &actions::ACCOUNT_ENABLE,
        };
        self.change_account(account, AccountChange::SetStatus(status), action, by, &[])
            .await
    }

    /// A password reset: the password is cleared, every session ends, and a one-time secret
    /// (returned once) lets the user in to set a new password.
    pub async fn reset_password(
        &self,
        account: &Account,
        by: &Actor,
    ) -> Result<SecretString, ServiceError> {
        let (secret, pending) = self.pending(SecretPurpose::Reset);
        let expires = crate::clock::shanghai_rfc3339(pending.expires_at);
        self.change_account(
            account,
            AccountChange::IssueSecret(pending),
            &actions::ACCOUNT_RESET,
            by,
            &[("secret_expires_at", expires.into())],
        )
        .await?;
        Ok(secret)
    }

    pub async fn unlock_account(
        &self,
        account: &Account,
        by: &Actor,
    ) -> Result<Account, ServiceError> {
        self.change_account(
            account,
            AccountChange::Unlock,
            &actions::ACCOUNT_UNLOCK,
            by,
            &[],
        )
        .await
    }

    /// Grants a role; an officer role (sysadmin, secadmin, auditor) is always held alone.
    pub async fn grant_role(
        &self,
        account: &Account,
        role: Role,
        by: &Actor,
    ) -> Result<Account, ServiceError> {
        let change = AccountChange::Grant {
            role,
            by: by.name.clone(),
        };
        self.change_account(
            account,
            change,
            &actions::ROLE_GRANT,
            by,
            &[("role", role.code().into())],
        )
        .await
    }

    pub async fn revoke_role(
        &self,
        account: &Account,
        role: Role,
        by: &Actor,
    ) -> Result<Account, ServiceError> {
        self.change_account(
            account,
            AccountChange::Revoke(role),
            &actions::ROLE_REVOKE,
            by,
            &[("role", role.code().into())],
        )
        .await
    }

    /// Sets the subtree an account acts on (`None`: every unit).
    pub async fn set_account_scope(
        &self,
        account: &Account,
        unit: Option<&UnitCode>,
        by: &Actor,
    ) -> Result<Account, ServiceError> {
        let before = account.unit.as_ref().map(|u| u.code.as_str().to_owned());
        let after = unit.map(|u| u.as_str().to_owned());
        self.change_account(
            account,
            AccountChange::SetScope(unit.cloned()),
            &actions::ACCOUNT_SCOPE,
            by,
            &[
                ("before", serde_json::json!({ "unit": before })),
                ("after", serde_json::json!({ "unit": after })),
            ],
        )
        .await
    }

    /// `ukey-admin init`: the three officers' first accounts (every unit in scope), each with
    /// its role and a bootstrap secret (returned once) that expires and forces a new password.
    pub async fn bootstrap_officers(
        &self,
        officers: &[(&str, &str, Role)],
        by: &Actor,
    ) -> Result<Vec<(Account, SecretString)>, ServiceError> {
        let mut made = Vec::new();
        for (username, display_name, role) in officers {
            let mut entry = by
                .entry(
                    self.clock.now(),
                    actions::ACCOUNT_CREATE.code,
                    AuditResult::Success,
                )
                .target(format!("account:{username}"))
                .detail("bootstrap", true)
                .detail("role", role.code());
            let (secret, pending) = self.pending(SecretPurpose::Bootstrap);
            entry = entry.detail(
                "secret_expires_at",
                crate::clock::shanghai_rfc3339(pending.expires_at),
            );
            let new = NewAccount {
                username: Username::parse(username)
                    .map_err(|e| ServiceError::InvalidInput(e.to_string()))?,
                display_name: clean_name(display_name)
                    .map_err(|e| ServiceError::InvalidInput(format!("display name: {e}")))?,
                unit: None,
            };
            let account = self
                .storage
                .insert_account(&new, &pending, self.clock.now(), self.audited(entry))
                .await?;
            let account = self.grant_role(&account, *role, by).await?;
            made.push((account, secret));
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_secrets_are_twenty_unambiguous_characters_in_groups_of_five() {
        let s = new_one_time_secret();
        let text = s.expose_secret();
        assert_eq!(text.len(), 23);
        assert_eq!(text.matches('-').count(), 3);
        assert!(
            text.bytes()
                .filter(|b| *b != b'-')
                .all(|b| SECRET_ALPHABET.contains(&b))
        );
        assert_ne!(text, new_one_time_secret().expose_secret());
    }
}
