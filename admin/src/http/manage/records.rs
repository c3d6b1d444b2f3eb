//! Login records (auditor, assessor) and the audit trail (auditor): pages with a cursor,
//! filters, and streamed exports.

use super::views::Page;
use super::{Authenticated, list_under, serial};
use crate::audit::{AuditQuery, AuditRecord, AuditResult, ExportFormat, csv_row, json_line};
use crate::clock::shanghai_rfc3339;
use crate::domain::{LoginKind, LoginRecord};
use crate::http::error::HttpError;
use crate::service::{Service, Target, actions};
use crate::storage::LoginPageQuery;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use time::OffsetDateTime;
use ukey_proto::Lang;
use ukey_proto::api::ApiError;
use utoipa::IntoParams;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn instant(s: Option<&str>, lang: Lang) -> Result<Option<OffsetDateTime>, HttpError> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::clock::parse_date_or_instant(s).map_err(|e| HttpError::bad_request(e, lang))
        })
        .transpose()
}

fn cursor(s: Option<&str>, lang: Lang) -> Result<Option<i64>, HttpError> {
    s.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| HttpError::bad_request(format!("{s:?} is not a cursor"), lang))
        })
        .transpose()
}

#[derive(Deserialize, IntoParams)]
pub struct LoginsQuery {
    /// From this date (YYYY-MM-DD, Asia/Shanghai) or RFC 3339 instant.
    pub from: Option<String>,
    /// Up to (not including) this date or instant.
    pub to: Option<String>,
    /// Only records of tokens bound to this unit or below (default: the operator's subtree).
    pub unit: Option<String>,
    pub token: Option<String>,
    /// `login` or `request`.
    pub kind: Option<String>,
    /// `success` or a refusal code.
    pub outcome: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Records per page (default 100, at most 1000).
    pub limit: Option<u32>,
}

async fn login_query(
    service: &Service,
    auth: &Authenticated,
    q: &LoginsQuery,
    action: &crate::service::Action,
) -> Result<(crate::service::Actor, LoginPageQuery), HttpError> {
    let lang = auth.lang;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            LoginKind::parse(k).ok_or_else(|| {
                HttpError::bad_request(format!("unknown kind {k:?}; use login or request"), lang)
            })
        })
        .transpose()?;
    let from = instant(q.from.as_deref(), lang)?;
    let to = instant(q.to.as_deref(), lang)?;
    let token = q.token.as_deref().map(|t| serial(t, lang)).transpose()?;
    let cursor = cursor(q.cursor.as_deref(), lang)?;
    let under = list_under(service, auth, action, q.unit.as_deref()).await?;
    let mut detail = serde_json::Map::new();
    for (k, v) in [
        ("from", &q.from),
        ("to", &q.to),
        ("token", &q.token),
        ("kind", &q.kind),
        ("outcome", &q.outcome),
    ] {
        if let Some(v) = v {
            detail.insert(k.into(), v.clone().into());
        }
    }
    service
        .record_read(
            &under.by,
            action,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            detail,
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok((
        under.by,
        LoginPageQuery {
            from,
            to,
            under: under.unit,
            token,
            kind,
            outcome: q.outcome.clone(),
            cursor,
            ascending: false,
            limit: q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
        },
    ))
}

/// Login records of tokens within the operator's subtree, newest first.
#[utoipa::path(get, path = "/api/v1/logins", tag = "records", params(LoginsQuery),
    responses((status = 200, body = Page<LoginRecord>), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn logins(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<LoginsQuery>,
) -> Result<Json<Page<LoginRecord>>, HttpError> {
    let (_, query) = login_query(&service, &auth, &q, &actions::LOGINS_LIST).await?;
    let items = service.login_page(&query).await.map_err(|e| auth.err(e))?;
    let next_cursor = (items.len() == query.limit as usize)
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

fn csv_line(cells: &[String]) -> Bytes {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(cells);
    Bytes::from(w.into_inner().unwrap_or_default())
}

/// The same records as CSV, oldest first, streamed (a month of a large district never sits in
/// memory); cells a spreadsheet would run as formulas are escaped.
#[utoipa::path(get, path = "/api/v1/logins/export", tag = "records", params(LoginsQuery),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn logins_export(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<LoginsQuery>,
) -> Result<Response, HttpError> {
    let (_, mut query) = login_query(&service, &auth, &q, &actions::LOGINS_EXPORT).await?;
    query.ascending = true;
    query.limit = MAX_PAGE;
    let header_line = csv_line(
        &<LoginRecord as crate::cli::Columns>::header()
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    );
    let pages = futures::stream::unfold(Some(query), move |state| {
        let service = service.clone();
        async move {
            let mut query = state?;
            match service.login_page(&query).await {
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
                Ok(items) if items.is_empty() => None,
                Ok(items) => {
                    let mut chunk = Vec::new();
                    for item in &items {
                        let cells: Vec<String> = crate::cli::Columns::values(item)
                            .iter()
                            .map(|c| crate::audit::spreadsheet_safe(c).into_owned())
                            .collect();
                        chunk.extend_from_slice(&csv_line(&cells));
                    }
                    let more = items.len() == query.limit as usize;
                    query.cursor = items.last().map(|r| r.id);
                    Some((Ok(Bytes::from(chunk)), more.then_some(query)))
                }
            }
        }
    });
    let body = futures::stream::once(async move { Ok(header_line) }).chain(pages);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"logins.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
pub struct AuditListQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Only records about this unit or below (default: the auditor's subtree; a whole-tree
    /// auditor also sees records about no unit).
    pub unit: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `success`, `denied` or `failed`.
    pub result: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The audit trail, newest first (auditor).
#[utoipa::path(get, path = "/api/v1/audit", tag = "records", params(AuditListQuery),
    responses((status = 200, body = Page<AuditRecord>), (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn audit(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<AuditListQuery>,
) -> Result<Json<Page<AuditRecord>>, HttpError> {
    let lang = auth.lang;
    let result = q
        .result
        .as_deref()
        .map(|r| {
            AuditResult::parse(r).ok_or_else(|| {
                HttpError::bad_request(
                    format!("unknown result {r:?}; use success, denied or failed"),
                    lang,
                )
            })
        })
        .transpose()?;
    let from = instant(q.from.as_deref(), lang)?;
    let to = instant(q.to.as_deref(), lang)?;
    let after_id = cursor(q.cursor.as_deref(), lang)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let under = list_under(&service, &auth, &actions::AUDIT_LIST, q.unit.as_deref()).await?;
    // The page is read before this read is recorded, so it never shows its own record.
    let items: Vec<AuditRecord> = service
        .audit_records(AuditQuery {
            from,
            to,
            under_path: under.path.clone(),
            actor: q.actor.clone(),
            action: q.action.clone(),
            result,
            after_id,
            descending: true,
            limit: Some(limit),
        })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| auth.err(e.into()))?;
    service
        .record_read(
            &under.by,
            &actions::AUDIT_LIST,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            serde_json::Map::new(),
        )
        .await
        .map_err(|e| auth.err(e))?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

#[derive(Deserialize, IntoParams)]
pub struct AuditExportQuery {
    /// From this date (YYYY-MM-DD, Asia/Shanghai) or RFC 3339 instant.
    pub since: String,
    pub until: Option<String>,
    pub unit: Option<String>,
    /// `jsonl` (default) or `csv`.
    pub format: Option<ExportFormat>,
}

/// The audit trail for a SIEM, oldest first, streamed: JSON lines or CSV (cells a
/// spreadsheet would run as formulas are escaped).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "records", params(AuditExportQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn audit_export(
    State(service): State<Service>,
    auth: Authenticated,
    Query(q): Query<AuditExportQuery>,
) -> Result<Response, HttpError> {
    let lang = auth.lang;
    let from = instant(Some(&q.since), lang)?;
    let to = instant(q.until.as_deref(), lang)?;
    let format = q.format.unwrap_or(ExportFormat::Jsonl);
    let under = list_under(&service, &auth, &actions::AUDIT_EXPORT, q.unit.as_deref()).await?;
    let mut detail = serde_json::Map::new();
    detail.insert("since".into(), q.since.clone().into());
    detail.insert("until".into(), q.until.clone().into());
    service
        .record_read(
            &under.by,
            &actions::AUDIT_EXPORT,
            under.unit.as_ref().map(|u| format!("unit:{u}")),
            under.unit.as_ref(),
            detail,
        )
        .await
        .map_err(|e| auth.err(e))?;
    let records = service.audit_records(AuditQuery {
        from,
        to,
        under_path: under.path,
        ..AuditQuery::default()
    });
    let lines = records.map(move |r| {
        r.map(|r| match format {
            ExportFormat::Jsonl => Bytes::from(json_line(&r)),
            ExportFormat::Csv => csv_line(&csv_row(&r)),
        })
        .map_err(|e| std::io::Error::other(e.to_string()))
    });
    let (content_type, name) = match format {
        ExportFormat::Jsonl => ("application/x-ndjson", "audit.jsonl"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "audit.csv"),
    };
    let head = match format {
        ExportFormat::Csv => csv_line(
            &crate::audit::CSV_HEADER
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        ),
        ExportFormat::Jsonl => Bytes::new(),
    };
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(lines);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-{name}\"",
                    shanghai_rfc3339(service.clock().now())
                        .get(..10)
                        .unwrap_or("")
                ),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Walk the whole chain (auditor with every unit in scope): the first broken record is named.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "records",
    responses((status = 200, description = "the verification report; `broken` names the first broken record"),
        (status = 403, body = ApiError)),
    security(("session_cookie" = []), ("bearer" = [])))]
pub(super) async fn audit_verify(
    State(service): State<Service>,
    auth: Authenticated,
) -> Result<Json<crate::audit::VerifyReport>, HttpError> {
    let by = service
        .authorize(&auth.operator, &actions::AUDIT_VERIFY, Target::Global)
        .await
        .map_err(|e| auth.err(e))?;
    let report = service.verify_audit().await.map_err(|e| auth.err(e))?;
    let mut detail = serde_json::Map::new();
    detail.insert("intact".into(), report.is_intact().into());
    if let Some(b) = &report.broken {
        detail.insert("broken".into(), b.to_string().into());
    }
    service
        .record_read(
            &by,
            &actions::AUDIT_VERIFY,
            Some("audit".into()),
            None,
            detail,
        )
        .await
        .map_err(|e| auth.err(e))?;
    Ok(Json(report))
}
