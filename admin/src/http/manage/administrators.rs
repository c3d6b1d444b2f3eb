//! Organisation administrators (党组织管理员): list, add, change, remove, within the
//! operator's subtree.

use super::{Authenticated, json, list_under, on_unit, unit_code};
use crate::domain::Administrator;
use crate::http::error::HttpError;
use crate::service::{Service, ServiceError, Target, actions};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use ukey_proto::api::ApiError;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct UnitQuery {
    /// Only administrators of this unit and those below it (default: the operator's subtree).
    pub unit: Option<String>,
}

/// Organisation administrators (党组织管理员) within the operator's subtree.
#[utoipa::path(get, path = "/api/v1/administrators", tag = "administrators", params(UnitQuery),
    responses((status = 200, body = [Administrator]), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn list(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<UnitQuery>,
) -> Result<Json<Vec<Administrator>>, HttpError> {
    let under = list_under(&service, &auth, &actions::ADMINS_LIST, q.unit.as_deref()).await?;
    let admins = service
        .administrators(under.unit.as_ref())
        .await
        .map_err(|e| auth.err(e))?;
    service
        .record_read(
            &under.by,
            &actions::ADMINS_LIST,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(admins))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministratorRequest {
    pub unit: String,
    pub name: String,
    /// Mainland mobile number (11 digits).
    pub mobile: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdministratorUpdate {
    pub name: String,
    pub mobile: String,
}

#[utoipa::path(post, path = "/api/v1/administrators", tag = "administrators",
    request_body = AdministratorRequest,
    responses((status = 201, body = Administrator), (status = 400, body = ApiError),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn create(
    State(service): State<Service>,
    auth: Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<Administrator>), HttpError> {
    let r: AdministratorRequest = json(&body, auth.lang)?;
    let code = unit_code(&r.unit, auth.lang)?;
    let (by, _) = on_unit(&service, &auth, &actions::ADMIN_CREATE, &code).await?;
    let admin = service
        .add_administrator(code, &r.name, &r.mobile, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok((StatusCode::CREATED, Json(admin)))
}

/// The administrator with this id, authorized for `action` (a 403 when it is not within the
/// operator's subtree or does not exist).
async fn on_admin(
    service: &Service,
    auth: &Authenticated,
    action: &crate::service::Action,
    id: i64,
) -> Result<(crate::service::Actor, Administrator), HttpError> {
    let label = format!("administrator:{id}");
    let admin = service.administrator(id).await.map_err(|e| auth.err(e))?;
    let Some(admin) = admin else {
        let e = service
            .authorize(&auth.operator, action, Target::Missing { label: &label })
            .await
            .err()
            .unwrap_or(ServiceError::NotFound(label));
        return Err(auth.err(e));
    };
    let unit = service
        .unit(&admin.unit_code)
        .await
        .map_err(|e| auth.err(e))?;
    let by = service
        .authorize(
            &auth.operator,
            action,
            Target::Unit {
                label: &label,
                unit: &unit,
            },
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok((by, admin))
}

#[utoipa::path(put, path = "/api/v1/administrators/{id}", tag = "administrators",
    params(("id" = i64, Path)), request_body = AdministratorUpdate,
    responses((status = 200, body = Administrator), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn update(
    State(service): State<Service>,
    auth: Authenticated,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Administrator>, HttpError> {
    let r: AdministratorUpdate = json(&body, auth.lang)?;
    let (by, admin) = on_admin(&service, &auth, &actions::ADMIN_UPDATE, id).await?;
    let updated = service
        .update_administrator(&admin, &r.name, &r.mobile, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/administrators/{id}", tag = "administrators",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn remove(
    State(service): State<Service>,
    auth: Authenticated,
    Path(id): Path<i64>,
) -> Result<StatusCode, HttpError> {
    let (by, admin) = on_admin(&service, &auth, &actions::ADMIN_DELETE, id).await?;
    service
        .delete_administrator(&admin, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(StatusCode::NO_CONTENT)
}
