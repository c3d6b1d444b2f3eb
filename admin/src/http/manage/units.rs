//! Units (CRUD, move, import with dry run, export) and their administrators.

use super::views::UnitView;
use super::{Authenticated, json, list_under, on_unit, unit_code};
use crate::domain::{NewUnit, UnitKind};
use crate::http::error::HttpError;
use crate::import;
use crate::service::registry::parse_kind;
use crate::service::{Service, ServiceError, Target, actions};
use crate::storage::UnitUpdate;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use ukey_proto::api::ApiError;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct UnderQuery {
    /// Only this unit and those below it (default: the operator's whole subtree).
    pub under: Option<String>,
}

/// Units as a tree, within the operator's subtree.
#[utoipa::path(get, path = "/api/v1/units", tag = "units", params(UnderQuery),
    responses((status = 200, body = [UnitView]), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn list(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<UnderQuery>,
) -> Result<Json<Vec<UnitView>>, HttpError> {
    let under = list_under(&service, &auth, &actions::UNITS_LIST, q.under.as_deref()).await?;
    let units = service
        .units(under.unit.as_ref())
        .await
        .map_err(|e| auth.err(e))?;
    service
        .record_read(
            &under.by,
            &actions::UNITS_LIST,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(units.iter().map(UnitView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUnitRequest {
    pub code: String,
    /// Full name (公章上的全称).
    pub name: String,
    pub short_name: Option<String>,
    /// 党委, 党工委, 党总支, 党支部, 党组, 其他 (or their codes); guessed from the name if absent.
    pub kind: Option<String>,
    /// Absent: a top-level unit (whole-tree operators only).
    pub parent: Option<String>,
    #[serde(default)]
    pub examinee: bool,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
}

/// Create a unit under a unit within the operator's subtree.
#[utoipa::path(post, path = "/api/v1/units", tag = "units", request_body = NewUnitRequest,
    responses((status = 201, body = UnitView), (status = 403, body = ApiError),
        (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn create(
    State(service): State<Service>,
    auth: Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<UnitView>), HttpError> {
    let r: NewUnitRequest = json(&body, auth.lang)?;
    let code = unit_code(&r.code, auth.lang)?;
    let by = match r.parent.as_deref() {
        Some(p) => {
            let parent = unit_code(p, auth.lang)?;
            on_unit(&service, &auth, &actions::UNIT_CREATE, &parent)
                .await?
                .0
        }
        None => service
            .authorize(&auth.operator, &actions::UNIT_CREATE, Target::Global)
            .await
            .map_err(|e| auth.err(e))?,
    };
    let kind = match &r.kind {
        Some(k) => parse_kind(k).map_err(|e| auth.err(e))?,
        None => UnitKind::infer_from_name(&r.name),
    };
    let parent = r
        .parent
        .as_deref()
        .map(|p| unit_code(p, auth.lang))
        .transpose()?;
    let unit = service
        .add_unit(
            NewUnit {
                code,
                name: r.name,
                short_name: r.short_name,
                kind,
                parent,
                examinee: r.examinee,
                contact_name: r.contact_name,
                contact_phone: r.contact_phone,
            },
            &by,
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok((StatusCode::CREATED, Json(UnitView::from(&unit))))
}

/// One unit.
#[utoipa::path(get, path = "/api/v1/units/{code}", tag = "units",
    params(("code" = String, Path, description = "unit code")),
    responses((status = 200, body = UnitView), (status = 403, body = ApiError),
        (status = 404, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn read(
    State(service): State<Service>,
    auth: Authenticated,
    Path(code): Path<String>,
) -> Result<Json<UnitView>, HttpError> {
    let code = unit_code(&code, auth.lang)?;
    let (by, unit) = on_unit(&service, &auth, &actions::UNIT_READ, &code).await?;
    service
        .record_read(
            &by,
            &actions::UNIT_READ,
            Some(format!("unit:{code}")),
            Some(&code),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(UnitView::from(&unit)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitPatch {
    pub name: Option<String>,
    /// An empty string clears it.
    pub short_name: Option<String>,
    pub kind: Option<String>,
    pub examinee: Option<bool>,
    /// A deactivated unit's tokens are refused.
    pub active: Option<bool>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
}

/// Change a unit's fields (its place in the tree: `move`).
#[utoipa::path(patch, path = "/api/v1/units/{code}", tag = "units",
    params(("code" = String, Path)), request_body = UnitPatch,
    responses((status = 200, body = UnitView), (status = 403, body = ApiError),
        (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn update(
    State(service): State<Service>,
    auth: Authenticated,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Json<UnitView>, HttpError> {
    let code = unit_code(&code, auth.lang)?;
    let patch: UnitPatch = json(&body, auth.lang)?;
    let (by, _) = on_unit(&service, &auth, &actions::UNIT_UPDATE, &code).await?;
    let update = UnitUpdate {
        name: patch.name,
        short_name: patch.short_name.map(Some),
        kind: patch
            .kind
            .as_deref()
            .map(parse_kind)
            .transpose()
            .map_err(|e| auth.err(e))?,
        examinee: patch.examinee,
        active: patch.active,
        contact_name: patch.contact_name.map(Some),
        contact_phone: patch.contact_phone.map(Some),
    };
    let unit = service
        .update_unit(&code, update, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(UnitView::from(&unit)))
}

/// Delete a unit nothing refers to (one with tokens, administrators or history is
/// deactivated instead: 409).
#[utoipa::path(delete, path = "/api/v1/units/{code}", tag = "units",
    params(("code" = String, Path)),
    responses((status = 204), (status = 403, body = ApiError), (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn remove(
    State(service): State<Service>,
    auth: Authenticated,
    Path(code): Path<String>,
) -> Result<StatusCode, HttpError> {
    let code = unit_code(&code, auth.lang)?;
    let (by, _) = on_unit(&service, &auth, &actions::UNIT_DELETE, &code).await?;
    service
        .delete_unit(&code, &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The new parent; `null` makes it a top-level unit (whole-tree operators only).
    pub parent: Option<String>,
}

/// Move a unit, with everything below it, under another unit of the operator's subtree.
#[utoipa::path(post, path = "/api/v1/units/{code}/move", tag = "units",
    params(("code" = String, Path)), request_body = MoveRequest,
    responses((status = 200, body = UnitView), (status = 403, body = ApiError),
        (status = 409, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn move_unit(
    State(service): State<Service>,
    auth: Authenticated,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Json<UnitView>, HttpError> {
    let code = unit_code(&code, auth.lang)?;
    let r: MoveRequest = json(&body, auth.lang)?;
    let (by, _) = on_unit(&service, &auth, &actions::UNIT_MOVE, &code).await?;
    let parent = match r.parent.as_deref() {
        Some(p) => {
            let p = unit_code(p, auth.lang)?;
            on_unit(&service, &auth, &actions::UNIT_MOVE, &p).await?;
            Some(p)
        }
        None => {
            service
                .authorize(&auth.operator, &actions::UNIT_MOVE, Target::Global)
                .await
                .map_err(|e| auth.err(e))?;
            None
        }
    };
    let unit = service
        .move_unit(&code, parent.as_ref(), &by)
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(UnitView::from(&unit)))
}

#[derive(Deserialize, IntoParams)]
pub struct ImportQuery {
    /// The unit under which an examinee list's units go (and which must contain everything
    /// imported, for operators with a subtree).
    pub parent: Option<String>,
    /// Check and show what would be imported; store nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ImportedUnit {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub parent: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportedAdministrator {
    pub unit: String,
    pub name: String,
    pub mobile: String,
}

#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    /// `Examinees`, `Purchase` or `UnitExport`.
    pub form: String,
    pub units: Vec<ImportedUnit>,
    pub administrators: Vec<ImportedAdministrator>,
    /// Rows already present.
    pub unchanged: usize,
    /// False on a dry run.
    pub stored: bool,
}

/// Import units and administrators from the seed forms (CSV in UTF-8 or GB18030, or XLSX
/// with `Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`):
/// every bad row reported, all or nothing.
#[utoipa::path(post, path = "/api/v1/units/import", tag = "units", params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 400, body = ApiError),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn import(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportReport>, HttpError> {
    let lang = auth.lang;
    let parent = q
        .parent
        .as_deref()
        .map(|p| unit_code(p, lang))
        .transpose()?;
    let by = match &parent {
        Some(p) => on_unit(&service, &auth, &actions::UNITS_IMPORT, p).await?.0,
        None => service
            .authorize(&auth.operator, &actions::UNITS_IMPORT, Target::OwnScope)
            .await
            .map_err(|e| auth.err(e))?,
    };
    let workbook = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("spreadsheet") || t.contains("excel"));
    let bad = |e: String| HttpError::bad_request(e, lang);
    let rows = import::read_rows_from_bytes(&body, workbook).map_err(|e| bad(e.to_string()))?;
    let existing = service.units(None).await.map_err(|e| auth.err(e))?;
    let admins = service
        .administrators(None)
        .await
        .map_err(|e| auth.err(e))?;
    let (form, plan) =
        import::plan(&rows, &existing, &admins, parent.as_ref()).map_err(|e| bad(e.to_string()))?;
    // Everything imported must land within the operator's subtree.
    let scope = auth.operator.scope();
    let path_of = |code: &ukey_proto::UnitCode| {
        existing
            .iter()
            .find(|u| &u.code == code)
            .map(|u| u.path.clone())
    };
    let mut outside = None;
    for unit in &plan.units {
        let inside = match &unit.parent {
            None => scope.is_all(),
            Some(p) => match path_of(p) {
                Some(path) => scope.covers_path(&path),
                // A parent created by this import: its own parent is checked in turn.
                None => plan.units.iter().any(|u| &u.code == p),
            },
        };
        if !inside {
            outside = Some(format!("unit:{}", unit.code));
            break;
        }
    }
    for admin in &plan.administrators {
        if outside.is_none()
            && let Some(path) = path_of(&admin.unit)
            && !scope.covers_path(&path)
        {
            outside = Some(format!("unit:{}", admin.unit));
        }
    }
    if let Some(label) = outside {
        let e = service
            .authorize(
                &auth.operator,
                &actions::UNITS_IMPORT,
                Target::Missing { label: &label },
            )
            .await
            .err()
            .unwrap_or(ServiceError::Forbidden(crate::service::DenialReason::Scope));
        return Err(auth.err(e));
    }
    let report = ImportReport {
        form: format!("{form:?}"),
        units: plan
            .units
            .iter()
            .map(|u| ImportedUnit {
                code: u.code.to_string(),
                name: u.name.clone(),
                kind: u.kind.label().to_owned(),
                parent: u.parent.as_ref().map(ToString::to_string),
            })
            .collect(),
        administrators: plan
            .administrators
            .iter()
            .map(|a| ImportedAdministrator {
                unit: a.unit.to_string(),
                name: a.name.clone(),
                mobile: a.mobile.to_string(),
            })
            .collect(),
        unchanged: plan.unchanged,
        stored: !q.dry_run,
    };
    if q.dry_run {
        let mut detail = serde_json::Map::new();
        detail.insert("dry_run".into(), true.into());
        detail.insert("units".into(), plan.units.len().into());
        detail.insert("administrators".into(), plan.administrators.len().into());
        service
            .record_read(
                &by,
                &actions::UNITS_IMPORT,
                parent.as_ref().map(|p| format!("unit:{p}")),
                parent.as_ref(),
                detail,
            )
            .await
            .map_err(|e| auth.err(e))?;
    } else {
        service
            .import(&plan.units, &plan.administrators, parent.as_ref(), &by)
            .await
            .map_err(|e| auth.err(e))?;
    }
    Ok(Json(report))
}

/// The operator's units as CSV (imports back; cells a spreadsheet would run as formulas are
/// escaped).
#[utoipa::path(get, path = "/api/v1/units/export", tag = "units", params(UnderQuery),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn export(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<UnderQuery>,
) -> Result<Response, HttpError> {
    let under = list_under(&service, &auth, &actions::UNITS_EXPORT, q.under.as_deref()).await?;
    let units = service
        .units(under.unit.as_ref())
        .await
        .map_err(|e| auth.err(e))?;
    let mut detail = serde_json::Map::new();
    detail.insert("units".into(), units.len().into());
    service
        .record_read(
            &under.by,
            &actions::UNITS_EXPORT,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            detail,
        )
        .await
        .map_err(|e| auth.err(e))?;
    let mut csv = Vec::new();
    crate::cli::write_all(&units, crate::cli::Format::Csv, &mut csv)
        .map_err(|e| auth.err(ServiceError::InvalidInput(e.to_string())))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"units.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
