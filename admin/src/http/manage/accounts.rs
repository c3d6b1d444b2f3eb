//! Operator accounts (system administrator), roles, scopes and unlocking (security
//! administrator), and the security policy.

use super::views::{AccountView, OneTimeSecret};
use super::{Authenticated, json, on_unit, unit_code};
use crate::domain::account::{Account, AccountStatus, Role, SecurityPolicy};
use crate::http::error::HttpError;
use crate::service::{Action, Actor, Service, ServiceError, Target, actions};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;
use ukey_proto::api::ApiError;
use utoipa::ToSchema;

/// The account named `username`, authorized for `action` (a 403 when outside the operator's
/// subtree, when it does not exist — for anyone but whole-tree operators — or when the action
/// may not be applied to it).
async fn on_account(
    service: &Service,
    auth: &Authenticated,
    action: &Action,
    username: &str,
) -> Result<(Actor, Account), HttpError> {
    let name = username.trim().to_ascii_lowercase();
    let label = format!("account:{name}");
    let account = service.account(&name).await.map_err(|e| auth.err(e))?;
    let Some(account) = account else {
        let e = service
            .authorize(&auth.operator, action, Target::Missing { label: &label })
            .await
            .err()
            .unwrap_or(ServiceError::NotFound(label));
        return Err(auth.err(e));
    };
    let by = service
        .authorize(&auth.operator, action, Target::Account(&account))
        .await
        .map_err(|e| auth.err(e))?;
    Ok((by, account))
}

/// Accounts whose subtree lies within the operator's.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    responses((status = 200, body = [AccountView]), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn list(
    State(service): State<Service>,
    auth: Authenticated,
) -> Result<Json<Vec<AccountView>>, HttpError> {
    let by = service
        .authorize(&auth.operator, &actions::ACCOUNTS_LIST, Target::OwnScope)
        .await
        .map_err(|e| auth.err(e))?;
    let accounts = service
        .accounts(&auth.operator.scope())
        .await
        .map_err(|e| auth.err(e))?;
    let unit = auth.operator.scope().unit().map(|u| u.code.clone());
    service
        .record_read(
            &by,
            &actions::ACCOUNTS_LIST,
            None,
            unit.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(accounts.iter().map(AccountView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/accounts/{username}", tag = "accounts",
    params(("username" = String, Path)),
    responses((status = 200, body = AccountView), (status = 403, body = ApiError),
        (status = 404, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn read(
    State(service): State<Service>,
    auth: Authenticated,
    Path(username): Path<String>,
) -> Result<Json<AccountView>, HttpError> {
    let (by, account) = on_account(&service, &auth, &actions::ACCOUNT_READ, &username).await?;
    service
        .record_read(
            &by,
            &actions::ACCOUNT_READ,
            Some(format!("account:{}", account.username)),
            account.unit.as_ref().map(|u| &u.code),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(AccountView::from(&account)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountRequest {
    pub username: String,
    pub display_name: String,
    /// The top of the account's subtree; absent: every unit (whole-tree operators only).
    pub unit: Option<String>,
}

/// Create an account (no role; the security administrator grants them). The answer holds a
/// one-time secret to hand over out of band: the administrator never chooses the password.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = NewAccountRequest,
    responses((status = 201, body = OneTimeSecret), (status = 403, body = ApiError),
        (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn create(
    State(service): State<Service>,
    auth: Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<OneTimeSecret>), HttpError> {
    let r: NewAccountRequest = json(&body, auth.lang)?;
    let unit = r
        .unit
        .as_deref()
        .map(|u| unit_code(u, auth.lang))
        .transpose()?;
    let by = match &unit {
        Some(code) => {
            on_unit(&service, &auth, &actions::ACCOUNT_CREATE, code)
                .await?
                .0
        }
        None => service
            .authorize(&auth.operator, &actions::ACCOUNT_CREATE, Target::Global)
            .await
            .map_err(|e| auth.err(e))?,
    };
    let (account, secret) = service
        .create_account(&r.username, &r.display_name, unit.as_ref(), &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok((
        StatusCode::CREATED,
        Json(OneTimeSecret {
            account: AccountView::from(&account),
            one_time_secret: secret.expose_secret().to_owned(),
            expires_at: account.secret_expires_at,
        }),
    ))
}

/// `disable`, `enable`, `reset` (system administrator) or `unlock` (security administrator).
/// Nobody acts on their own account this way; a system administrator does not disable or
/// reset the security administrator's or the auditor's account.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/{operation}", tag = "accounts",
    params(("username" = String, Path),
        ("operation" = String, Path, description = "disable, enable, reset or unlock")),
    responses(
        (status = 200, description = "the account; for `reset`, with the one-time secret", body = OneTimeSecret),
        (status = 403, body = ApiError), (status = 404, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn operate(
    State(service): State<Service>,
    auth: Authenticated,
    Path((username, operation)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let action = match operation.as_str() {
        "disable" => &actions::ACCOUNT_DISABLE,
        "enable" => &actions::ACCOUNT_ENABLE,
        "reset" => &actions::ACCOUNT_RESET,
        "unlock" => &actions::ACCOUNT_UNLOCK,
        other => {
            return Err(HttpError::bad_request(
                format!("unknown operation {other:?}; use disable, enable, reset or unlock"),
                auth.lang,
            ));
        }
    };
    let (by, account) = on_account(&service, &auth, action, &username).await?;
    let err = |e| auth.err(e);
    let body = match operation.as_str() {
        "disable" | "enable" => {
            let status = if operation == "disable" {
                AccountStatus::Disabled
            } else {
                AccountStatus::Active
            };
            let a = service
                .set_account_status(&account, status, &by)
                .await
                .map_err(err)?;
            serde_json::json!({ "account": AccountView::from(&a) })
        }
        "reset" => {
            let secret = service.reset_password(&account, &by).await.map_err(err)?;
            let a = service
                .account(account.username.as_str())
                .await
                .map_err(err)?
                .unwrap_or(account);
            serde_json::json!(OneTimeSecret {
                account: AccountView::from(&a),
                one_time_secret: secret.expose_secret().to_owned(),
                expires_at: a.secret_expires_at,
            })
        }
        _ => {
            let a = service.unlock_account(&account, &by).await.map_err(err)?;
            serde_json::json!({ "account": AccountView::from(&a) })
        }
    };
    Ok(Json(body))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub role: Role,
}

/// Grant a role (security administrator; never to oneself). An officer role (sysadmin,
/// secadmin, auditor) is always the account's only role: 409 otherwise.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/roles", tag = "accounts",
    params(("username" = String, Path)), request_body = GrantRequest,
    responses((status = 200, body = AccountView), (status = 403, body = ApiError),
        (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn grant(
    State(service): State<Service>,
    auth: Authenticated,
    Path(username): Path<String>,
    body: Bytes,
) -> Result<Json<AccountView>, HttpError> {
    let r: GrantRequest = json(&body, auth.lang)?;
    let (by, account) = on_account(&service, &auth, &actions::ROLE_GRANT, &username).await?;
    let a = service
        .grant_role(&account, r.role, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(AccountView::from(&a)))
}

/// Revoke a role (security administrator; never one's own).
#[utoipa::path(delete, path = "/api/v1/accounts/{username}/roles/{role}", tag = "accounts",
    params(("username" = String, Path), ("role" = Role, Path)),
    responses((status = 200, body = AccountView), (status = 403, body = ApiError),
        (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn revoke(
    State(service): State<Service>,
    auth: Authenticated,
    Path((username, role)): Path<(String, String)>,
) -> Result<Json<AccountView>, HttpError> {
    let role = Role::parse(&role).ok_or_else(|| {
        HttpError::bad_request(
            format!("unknown role {role:?}; use sysadmin, secadmin, auditor, operator or assessor"),
            auth.lang,
        )
    })?;
    let (by, account) = on_account(&service, &auth, &actions::ROLE_REVOKE, &username).await?;
    let a = service
        .revoke_role(&account, role, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(AccountView::from(&a)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeRequest {
    /// The new top of the account's subtree (within the operator's); `null`: every unit.
    pub unit: Option<String>,
}

/// Set the subtree an account acts on (security administrator; never one's own).
#[utoipa::path(put, path = "/api/v1/accounts/{username}/scope", tag = "accounts",
    params(("username" = String, Path)), request_body = ScopeRequest,
    responses((status = 200, body = AccountView), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn scope(
    State(service): State<Service>,
    auth: Authenticated,
    Path(username): Path<String>,
    body: Bytes,
) -> Result<Json<AccountView>, HttpError> {
    let r: ScopeRequest = json(&body, auth.lang)?;
    let unit = r
        .unit
        .as_deref()
        .map(|u| unit_code(u, auth.lang))
        .transpose()?;
    let (by, account) = on_account(&service, &auth, &actions::ACCOUNT_SCOPE, &username).await?;
    match &unit {
        Some(code) => {
            on_unit(&service, &auth, &actions::ACCOUNT_SCOPE, code).await?;
        }
        None => {
            service
                .authorize(&auth.operator, &actions::ACCOUNT_SCOPE, Target::Global)
                .await
                .map_err(|e| auth.err(e))?;
        }
    }
    let a = service
        .set_account_scope(&account, unit.as_ref(), &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(AccountView::from(&a)))
}

/// The security policy (security administrator, auditor).
#[utoipa::path(get, path = "/api/v1/policy", tag = "accounts",
    responses((status = 200, body = SecurityPolicy), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn policy(
    State(service): State<Service>,
    auth: Authenticated,
) -> Result<Json<SecurityPolicy>, HttpError> {
    let by = service
        .authorize(&auth.operator, &actions::POLICY_READ, Target::OwnScope)
        .await
        .map_err(|e| auth.err(e))?;
    let policy = service.security_policy().await.map_err(|e| auth.err(e))?;
    service
        .record_read(
            &by,
            &actions::POLICY_READ,
            Some("policy".into()),
            None,
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(policy))
}

/// Set the security policy (security administrator with every unit in scope); each value
/// has bounds that keep the rules in force.
#[utoipa::path(put, path = "/api/v1/policy", tag = "accounts", request_body = SecurityPolicy,
    responses((status = 200, body = SecurityPolicy), (status = 400, body = ApiError),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn set_policy(
    State(service): State<Service>,
    auth: Authenticated,
    body: Bytes,
) -> Result<Json<SecurityPolicy>, HttpError> {
    let policy: SecurityPolicy = json(&body, auth.lang)?;
    let by = service
        .authorize(&auth.operator, &actions::POLICY_UPDATE, Target::Global)
        .await
        .map_err(|e| auth.err(e))?;
    service
        .set_security_policy(&policy, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(policy))
}
