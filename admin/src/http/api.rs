//! API v1: the token API (thin handlers over the service), the management API
//! ([`super::manage`]), and the OpenAPI document of both.

use super::ConnectionInfo;
use super::error::HttpError;
use crate::service::{RequestContext, Service};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ukey_proto::Lang;
use ukey_proto::api::{
    ApiError, CLIENT_VERSION_HEADER, CreateSessionRequest, Refusal, SESSION_HEADER, SessionInfo,
    UnitRef,
};
use utoipa::OpenApi;
use uuid::Uuid;

/// The API's routes.
pub fn router(service: Service) -> Router {
    Router::new()
        .route("/api/v1/sessions", post(create_session))
        .route("/api/v1/sessions/{id}", delete(end_session))
        .route("/api/v1/me", get(me))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(health))
        .merge(super::manage::routes())
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(service)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ukey-admin token API", version = "1"),
    paths(create_session, end_session, me),
    components(schemas(CreateSessionRequest, SessionInfo, UnitRef, ApiError, Refusal))
)]
struct ApiDoc;

/// The OpenAPI document of API v1.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::manage::ManageDoc::openapi());
    doc
}

/// The request's context: client certificate and address from the connection, language from
/// `Accept-Language`, client version from its header.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<ConnectionInfo>();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Ctx(RequestContext {
            peer: info.and_then(|i| i.peer.clone()),
            source: info.map(|i| i.remote),
            lang: header(header::ACCEPT_LANGUAGE.as_str())
                .map(|h| Lang::from_accept_language(&h))
                .unwrap_or_default(),
            client_version: header(CLIENT_VERSION_HEADER),
        }))
    }
}

/// Create a session for the token whose certificate is on the connection.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    request_body(content = CreateSessionRequest, description = "may be empty"),
    responses(
        (status = 201, description = "session created and login recorded", body = SessionInfo),
        (status = 401, description = "no client certificate", body = ApiError),
        (status = 403, description = "token refused (the code says why); the attempt is recorded", body = ApiError),
        (status = 503, description = "the login could not be recorded", body = ApiError),
    )
)]
async fn create_session(
    State(service): State<Service>,
    Ctx(mut ctx): Ctx,
    body: Bytes,
) -> Result<impl IntoResponse, HttpError> {
    let lang = ctx.lang;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let request: CreateSessionRequest = serde_json::from_slice(&body)
            .map_err(|e| HttpError::bad_request(format!("body: {e}"), lang))?;
        if request.client_version.is_some() {
            ctx.client_version = request.client_version;
        }
    }
    let info = service
        .create_session(&ctx)
        .await
        .map_err(|e| HttpError::new(e, lang))?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// End a session (logout). The client certificate must be the session's token.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    params(("id" = Uuid, Path, description = "session id")),
    responses(
        (status = 204, description = "session ended"),
        (status = 401, description = "no client certificate, or the session has already ended", body = ApiError),
        (status = 403, description = "token refused", body = ApiError),
    )
)]
async fn end_session(
    State(service): State<Service>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let lang = ctx.lang;
    let id = Uuid::parse_str(&id)
        .map_err(|_| HttpError::bad_request(format!("{id:?} is not a session id"), lang))?;
    service
        .end_session(&ctx, id)
        .await
        .map_err(|e| HttpError::new(e, lang))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The session named by the `x-ukey-session` header, with its token and unit.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    params(("x-ukey-session" = Uuid, Header, description = "session id from POST /api/v1/sessions")),
    responses(
        (status = 200, description = "the session", body = SessionInfo),
        (status = 401, description = "no client certificate, or the session has ended", body = ApiError),
        (status = 403, description = "token refused (suspended, revoked, …)", body = ApiError),
    )
)]
async fn me(
    State(service): State<Service>,
    Ctx(ctx): Ctx,
    headers: axum::http::HeaderMap,
) -> Result<Json<SessionInfo>, HttpError> {
    let lang = ctx.lang;
    let session = match headers.get(SESSION_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| Uuid::parse_str(s.trim()).ok())
                .ok_or_else(|| {
                    HttpError::bad_request(format!("{SESSION_HEADER} is not a session id"), lang)
                })?,
        ),
    };
    let info = service
        .current_session(&ctx, session)
        .await
        .map_err(|e| HttpError::new(e, lang))?;
    Ok(Json(info))
}

async fn openapi() -> impl IntoResponse {
    Json(openapi_document())
}

/// Liveness and database reachability, for load balancers and systemd.
async fn health(State(service): State<Service>) -> StatusCode {
    match service.storage().ping().await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
