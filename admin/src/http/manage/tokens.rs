//! Tokens: register, bind, rebind, suspend, resume, report lost, revoke (each with a reason),
//! list and history, within the operator's subtree.

use super::{Authenticated, json, list_under, on_unit, serial, unit_code};
use crate::domain::{Token, TokenChange, TokenEvent, TokenStatus};
use crate::http::error::HttpError;
use crate::service::registry::TokenRegistration;
use crate::service::{Action, Actor, Service, ServiceError, Target, actions};
use crate::storage::TokenFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use ukey_proto::api::ApiError;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct TokenQuery {
    /// Only tokens bound to this unit or below it (default: the operator's subtree).
    pub unit: Option<String>,
    /// registered, active, suspended, lost or revoked.
    pub status: Option<String>,
}

/// Tokens bound within the operator's subtree (a whole-tree operator also sees unbound ones).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(TokenQuery),
    responses((status = 200, body = [Token]), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn list(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<TokenQuery>,
) -> Result<Json<Vec<Token>>, HttpError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            TokenStatus::parse(s).ok_or_else(|| {
                HttpError::bad_request(
                    format!(
                        "unknown status {s:?}; use registered, active, suspended, lost or revoked"
                    ),
                    auth.lang,
                )
            })
        })
        .transpose()?;
    let under = list_under(&service, &auth, &actions::TOKENS_LIST, q.unit.as_deref()).await?;
    let tokens = service
        .tokens(&TokenFilter {
            under: under.unit.clone(),
            status,
        })
        .await
        .map_err(|e| auth.err(e))?;
    service
        .record_read(
            &under.by,
            &actions::TOKENS_LIST,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(tokens))
}

/// The token named `serial`, authorized for `action` on the unit it is bound to (an unbound
/// token: whole-tree operators only; an unknown one: 404 for them, 403 for anyone else).
async fn on_token(
    service: &Service,
    auth: &Authenticated,
    action: &Action,
    serial_text: &str,
) -> Result<(Actor, Token), HttpError> {
    let serial = serial(serial_text, auth.lang)?;
    let label = format!("token:{serial}");
    let token = service
        .storage()
        .token(&serial)
        .await
        .map_err(|e| auth.err(e.into()))?;
    let Some(token) = token else {
        let e = service
            .authorize(&auth.operator, action, Target::Missing { label: &label })
            .await
            .err()
            .unwrap_or(ServiceError::NotFound(label));
        return Err(auth.err(e));
    };
    let by = match &token.unit_code {
        Some(code) => {
            let unit = service.unit(code).await.map_err(|e| auth.err(e))?;
            service
                .authorize(
                    &auth.operator,
                    action,
                    Target::Unit {
                        label: &label,
                        unit: &unit,
                    },
                )
                .await
        }
        None => {
            service
                .authorize(&auth.operator, action, Target::Unbound { label: &label })
                .await
        }
    }
    .map_err(|e| auth.err(e))?;
    Ok((by, token))
}

#[utoipa::path(get, path = "/api/v1/tokens/{serial}", tag = "tokens",
    params(("serial" = String, Path)),
    responses((status = 200, body = Token), (status = 403, body = ApiError),
        (status = 404, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn read(
    State(service): State<Service>,
    auth: Authenticated,
    Path(serial_text): Path<String>,
) -> Result<Json<Token>, HttpError> {
    let (by, token) = on_token(&service, &auth, &actions::TOKEN_READ, &serial_text).await?;
    service
        .record_read(
            &by,
            &actions::TOKEN_READ,
            Some(format!("token:{}", token.serial)),
            token.unit_code.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(token))
}

/// A token's history of status and binding changes, oldest first.
#[utoipa::path(get, path = "/api/v1/tokens/{serial}/history", tag = "tokens",
    params(("serial" = String, Path)),
    responses((status = 200, body = [TokenEvent]), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn history(
    State(service): State<Service>,
    auth: Authenticated,
    Path(serial_text): Path<String>,
) -> Result<Json<Vec<TokenEvent>>, HttpError> {
    let (by, token) = on_token(&service, &auth, &actions::TOKEN_READ, &serial_text).await?;
    let events = service
        .token_history(&token.serial)
        .await
        .map_err(|e| auth.err(e))?;
    service
        .record_read(
            &by,
            &actions::TOKEN_READ,
            Some(format!("token:{}", token.serial)),
            token.unit_code.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(events))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub serial: String,
    /// The token's certificate, PEM.
    pub certificate: String,
    /// Bind at once (and activate); required for operators with a subtree.
    pub unit: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub reason: String,
}

/// Register a token from its certificate, bound to `unit` when given.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = RegisterRequest,
    responses((status = 201, body = Token), (status = 403, body = ApiError),
        (status = 409, body = ApiError), (status = 422, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn register(
    State(service): State<Service>,
    auth: Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<Token>), HttpError> {
    let r: RegisterRequest = json(&body, auth.lang)?;
    let token_serial = serial(&r.serial, auth.lang)?;
    let unit = r
        .unit
        .as_deref()
        .map(|u| unit_code(u, auth.lang))
        .transpose()?;
    let by = match &unit {
        Some(code) => {
            on_unit(&service, &auth, &actions::TOKEN_REGISTER, code)
                .await?
                .0
        }
        None => service
            .authorize(
                &auth.operator,
                &actions::TOKEN_REGISTER,
                Target::Unbound {
                    label: &format!("token:{token_serial}"),
                },
            )
            .await
            .map_err(|e| auth.err(e))?,
    };
    let token = service
        .register_token(
            TokenRegistration {
                serial: token_serial,
                certificate: r.certificate.into_bytes(),
                unit,
                model: r.model,
                manufacturer: r.manufacturer,
            },
            &r.reason,
            &by,
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok((StatusCode::CREATED, Json(token)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// Why (recorded in the token's history and the audit trail).
    pub reason: String,
    /// For `bind` and `rebind`: the unit.
    pub unit: Option<String>,
    /// For `revoke`: the token that replaces this one.
    pub replaced_by: Option<String>,
}

/// Change a token: `bind`, `rebind`, `suspend`, `resume`, `lost` or `revoke`, each with a
/// reason. A rebind needs both units within the operator's subtree.
#[utoipa::path(post, path = "/api/v1/tokens/{serial}/{change}", tag = "tokens",
    params(("serial" = String, Path),
        ("change" = String, Path, description = "bind, rebind, suspend, resume, lost or revoke")),
    request_body = ChangeRequest,
    responses((status = 200, body = Token), (status = 403, body = ApiError),
        (status = 409, body = ApiError), (status = 422, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn change(
    State(service): State<Service>,
    auth: Authenticated,
    Path((serial_text, change)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Token>, HttpError> {
    let lang = auth.lang;
    let r: ChangeRequest = json(&body, lang)?;
    let need_unit = || {
        r.unit
            .as_deref()
            .ok_or_else(|| HttpError::bad_request(format!("{change} needs a unit"), lang))
            .and_then(|u| unit_code(u, lang))
    };
    let (action, what) = match change.as_str() {
        "bind" => (&actions::TOKEN_BIND, TokenChange::Bind(need_unit()?)),
        "rebind" => (&actions::TOKEN_REBIND, TokenChange::Rebind(need_unit()?)),
        "suspend" => (&actions::TOKEN_SUSPEND, TokenChange::Suspend),
        "resume" => (&actions::TOKEN_RESUME, TokenChange::Resume),
        "lost" => (&actions::TOKEN_LOST, TokenChange::Lost),
        "revoke" => (
            &actions::TOKEN_REVOKE,
            TokenChange::Revoke {
                replaced_by: r
                    .replaced_by
                    .as_deref()
                    .map(|s| serial(s, lang))
                    .transpose()?,
            },
        ),
        other => {
            return Err(HttpError::bad_request(
                format!(
                    "unknown change {other:?}; use bind, rebind, suspend, resume, lost or revoke"
                ),
                lang,
            ));
        }
    };
    let (by, token) = on_token(&service, &auth, action, &serial_text).await?;
    if let TokenChange::Bind(unit) | TokenChange::Rebind(unit) = &what {
        on_unit(&service, &auth, action, unit).await?;
    }
    let changed = service
        .change_token(&token.serial, &what, &r.reason, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(changed))
}
