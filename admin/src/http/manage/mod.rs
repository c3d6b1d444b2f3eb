//! Management API v1: operator sessions, units, administrators, tokens, operator accounts and
//! roles, the security policy, login records and the audit trail. Every endpoint takes an
//! [`auth::Authenticated`] operator and calls [`Service::authorize`] before doing anything;
//! handlers are thin, and errors become responses in `http::error` only.

pub mod accounts;
pub mod administrators;
pub mod auth;
pub mod records;
pub mod tokens;
pub mod units;
pub mod views;

pub use auth::{Authenticated, SESSION_COOKIE};

use crate::domain::Unit;
use crate::http::error::HttpError;
use crate::service::{Action, Actor, Service, ServiceError, Target};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use ukey_proto::{Lang, TokenSerial, UnitCode};
use utoipa::OpenApi;

/// Largest import upload.
const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;

/// The management routes (merged into `http::api::router`).
pub fn routes() -> Router<Service> {
    Router::new()
        .route("/api/v1/operator/login", post(auth::login))
        .route("/api/v1/operator/logout", post(auth::logout))
        .route("/api/v1/operator/me", get(auth::me))
        .route("/api/v1/operator/password", post(auth::change_password))
        .route("/api/v1/units", get(units::list).post(units::create))
        .route(
            "/api/v1/units/import",
            post(units::import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/v1/units/export", get(units::export))
        .route(
            "/api/v1/units/{code}",
            get(units::read).patch(units::update).delete(units::remove),
        )
        .route("/api/v1/units/{code}/move", post(units::move_unit))
        .route(
            "/api/v1/administrators",
            get(administrators::list).post(administrators::create),
        )
        .route(
            "/api/v1/administrators/{id}",
            put(administrators::update).delete(administrators::remove),
        )
        .route("/api/v1/tokens", get(tokens::list).post(tokens::register))
        .route("/api/v1/tokens/{serial}", get(tokens::read))
        .route("/api/v1/tokens/{serial}/history", get(tokens::history))
        .route("/api/v1/tokens/{serial}/{change}", post(tokens::change))
        .route(
            "/api/v1/accounts",
            get(accounts::list).post(accounts::create),
        )
        .route("/api/v1/accounts/{username}", get(accounts::read))
        .route(
            "/api/v1/accounts/{username}/{operation}",
            post(accounts::operate),
        )
        .route("/api/v1/accounts/{username}/roles", post(accounts::grant))
        .route(
            "/api/v1/accounts/{username}/roles/{role}",
            delete(accounts::revoke),
        )
        .route("/api/v1/accounts/{username}/scope", put(accounts::scope))
        .route(
            "/api/v1/policy",
            get(accounts::policy).put(accounts::set_policy),
        )
        .route("/api/v1/logins", get(records::logins))
        .route("/api/v1/logins/export", get(records::logins_export))
        .route("/api/v1/audit", get(records::audit))
        .route("/api/v1/audit/export", get(records::audit_export))
        .route("/api/v1/audit/verify", get(records::audit_verify))
        .layer(axum::middleware::map_response(no_store))
}

/// Management answers hold personal data and secrets: never cached, never sniffed.
async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityScheme;
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ukey-admin management API", version = "1"),
    modifiers(&SecuritySchemes),
    paths(
        auth::login, auth::logout, auth::me, auth::change_password,
        units::list, units::create, units::read, units::update, units::remove, units::move_unit,
        units::import, units::export,
        administrators::list, administrators::create, administrators::update,
        administrators::remove,
        tokens::list, tokens::register, tokens::read, tokens::history, tokens::change,
        accounts::list, accounts::create, accounts::read, accounts::operate, accounts::grant,
        accounts::revoke, accounts::scope, accounts::policy, accounts::set_policy,
        records::logins, records::logins_export, records::audit, records::audit_export,
        records::audit_verify,
    ),
    components(schemas(
        views::AccountView, views::UnitView, views::OneTimeSecret,
        crate::domain::account::SecurityPolicy, crate::domain::account::Role,
        crate::domain::Token, crate::domain::TokenEvent, crate::domain::Administrator,
        crate::domain::LoginRecord, crate::audit::AuditRecord,
    )),
    tags(
        (name = "operator", description = "operator login, session and password"),
        (name = "units", description = "organisation units"),
        (name = "administrators", description = "organisation administrators (党组织管理员)"),
        (name = "tokens", description = "U-Keys: registration, binding and status"),
        (name = "accounts", description = "operator accounts, roles, scopes and the security policy"),
        (name = "records", description = "login records and the audit trail"),
    )
)]
pub struct ManageDoc;

pub(crate) fn unit_code(s: &str, lang: Lang) -> Result<UnitCode, HttpError> {
    UnitCode::parse(s.trim()).map_err(|e| HttpError::bad_request(e.to_string(), lang))
}

pub(crate) fn serial(s: &str, lang: Lang) -> Result<TokenSerial, HttpError> {
    TokenSerial::parse(s.trim()).map_err(|e| HttpError::bad_request(e.to_string(), lang))
}

/// Authorizes `action` on the unit named `code`: the unit and the actor, or a 403 (404 for a
/// whole-tree actor when it does not exist) already audited.
pub(crate) async fn on_unit(
    service: &Service,
    auth: &Authenticated,
    action: &Action,
    code: &UnitCode,
) -> Result<(Actor, Unit), HttpError> {
    let label = format!("unit:{code}");
    let unit = service
        .storage()
        .unit(code)
        .await
        .map_err(|e| auth.err(e.into()))?;
    match unit {
        Some(unit) => {
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
            Ok((by, unit))
        }
        None => Err(auth.err(
            service
                .authorize(&auth.operator, action, Target::Missing { label: &label })
                .await
                .err()
                .unwrap_or(ServiceError::NotFound(label)),
        )),
    }
}

/// Where a list looks: the unit asked for (which must be in scope) or the actor's subtree.
pub(crate) struct Under {
    pub by: Actor,
    /// `None`: every unit (a whole-tree actor asking for everything).
    pub unit: Option<UnitCode>,
    pub path: Option<String>,
}

pub(crate) async fn list_under(
    service: &Service,
    auth: &Authenticated,
    action: &Action,
    asked: Option<&str>,
) -> Result<Under, HttpError> {
    match asked.map(str::trim).filter(|s| !s.is_empty()) {
        Some(code) => {
            let code = unit_code(code, auth.lang)?;
            let (by, unit) = on_unit(service, auth, action, &code).await?;
            Ok(Under {
                by,
                unit: Some(unit.code),
                path: Some(unit.path),
            })
        }
        None => {
            let by = service
                .authorize(&auth.operator, action, Target::OwnScope)
                .await
                .map_err(|e| auth.err(e))?;
            let top = auth.operator.scope().unit().cloned();
            Ok(Under {
                by,
                unit: top.as_ref().map(|u| u.code.clone()),
                path: top.map(|u| u.path),
            })
        }
    }
}

/// The body of a JSON request, with a clear error naming what is wrong.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    lang: Lang,
) -> Result<T, HttpError> {
    serde_json::from_slice(body).map_err(|e| HttpError::bad_request(format!("body: {e}"), lang))
}
