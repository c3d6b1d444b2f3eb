//! Operator sessions over HTTP: login, logout, the current account, password change, and the
//! [`Authenticated`] extractor every management endpoint takes.

use super::views::AccountView;
use crate::http::api::Ctx;
use crate::http::error::HttpError;
use crate::service::{Operator, RequestContext, Service, ServiceError};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ukey_proto::Lang;
use ukey_proto::api::ApiError;
use utoipa::ToSchema;

/// The session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-ukey_session";

/// The operator behind a request, from the session cookie or `Authorization: Bearer`,
/// checked in full (see [`Service::operator_session`]). Reuse it for any endpoint that needs
/// an operator, then call [`Service::authorize`].
pub struct Authenticated {
    pub operator: Operator,
    pub lang: Lang,
    pub ctx: RequestContext,
}

impl Authenticated {
    /// Wraps a service error in this request's language.
    pub fn err(&self, e: ServiceError) -> HttpError {
        HttpError::new(e, self.lang)
    }
}

/// The session token a request carries: the bearer form first, then the cookie.
fn session_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == SESSION_COOKIE).then(|| value.trim().to_owned())
            })
    })
}

impl FromRequestParts<Service> for Authenticated {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, service: &Service) -> Result<Self, HttpError> {
        let Ok(Ctx(ctx)) = Ctx::from_request_parts(parts, service).await;
        let lang = ctx.lang;
        let token = session_token(&parts.headers)
            .ok_or_else(|| HttpError::new(ServiceError::NotAuthenticated, lang))?;
        let operator = service
            .operator_session(&ctx, &token)
            .await
            .map_err(|e| HttpError::new(e, lang))?;
        Ok(Authenticated {
            operator,
            lang,
            ctx,
        })
    }
}

fn set_cookie(token: &str, max_age_secs: i64) -> HeaderValue {
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie() -> HeaderValue {
    set_cookie("", 0)
}

/// How the client wants the session: a cookie (browsers) or a bearer token (API clients).
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionForm {
    #[default]
    Cookie,
    Bearer,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    /// The password, or the one-time secret of a new account or a reset.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    #[serde(default)]
    pub session: SessionForm,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    pub account: AccountView,
    /// Only `POST /api/v1/operator/password` (and logout) is allowed until this is done.
    pub must_change_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub idle_timeout_seconds: i64,
    /// The bearer token, when asked for (`"session": "bearer"`); never with a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Log in with username and password. Under `operator_login = "token+password"` the request
/// must come over mutual TLS with a U-Key bound within the account's subtree; without one it
/// is refused before the password is looked at.
#[utoipa::path(
    post,
    path = "/api/v1/operator/login",
    tag = "operator",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in; the session is in the cookie or the body", body = LoginResponse),
        (status = 401, description = "invalid_credentials (one answer for every failure) or token_required", body = ApiError),
        (status = 403, description = "the U-Key on the connection is refused", body = ApiError),
    )
)]
pub(super) async fn login(
    State(service): State<Service>,
    Ctx(ctx): Ctx,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    let lang = ctx.lang;
    let request: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| HttpError::bad_request(format!("body: {e}"), lang))?;
    let done = service
        .operator_login(&ctx, &request.username, &request.password)
        .await
        .map_err(|e| HttpError::new(e, lang))?;
    let token = done.token.expose_secret().to_owned();
    let body = LoginResponse {
        account: AccountView::from(&done.account),
        must_change_password: done.must_change_password,
        expires_at: done.expires_at,
        idle_timeout_seconds: done.idle_timeout.whole_seconds(),
        token: matches!(request.session, SessionForm::Bearer).then(|| token.clone()),
    };
    let mut response = Json(body).into_response();
    if matches!(request.session, SessionForm::Cookie) {
        let max_age = (done.expires_at - service.clock().now())
            .whole_seconds()
            .max(0);
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie(&token, max_age));
    }
    Ok(response)
}

/// Log out: every session of the account ends.
#[utoipa::path(
    post,
    path = "/api/v1/operator/logout",
    tag = "operator",
    responses(
        (status = 204, description = "every session of the account ended"),
        (status = 401, description = "no live session", body = ApiError),
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub(super) async fn logout(
    State(service): State<Service>,
    auth: Authenticated,
) -> Result<Response, HttpError> {
    service
        .operator_logout(&auth.operator)
        .await
        .map_err(|e| auth.err(e))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub account: AccountView,
    pub must_change_password: bool,
    /// The U-Key the session is bound to (mode `token+password`).
    pub token_serial: Option<String>,
}

/// The account of the session (allowed while a password change is pending).
#[utoipa::path(
    get,
    path = "/api/v1/operator/me",
    tag = "operator",
    responses(
        (status = 200, description = "the session's account", body = MeResponse),
        (status = 401, description = "no live session", body = ApiError),
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub(super) async fn me(auth: Authenticated) -> Json<MeResponse> {
    Json(MeResponse {
        account: AccountView::from(&auth.operator.account),
        must_change_password: auth.operator.restricted,
        token_serial: auth.operator.token.as_ref().map(|t| t.serial.to_string()),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// Not needed in a session opened with a one-time secret.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub current_password: Option<SecretString>,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// Change the session's password: the rule of seed 002 and more (every failed rule listed),
/// not one of the last passwords; then every session of the account ends.
#[utoipa::path(
    post,
    path = "/api/v1/operator/password",
    tag = "operator",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "changed; log in again"),
        (status = 401, description = "no live session", body = ApiError),
        (status = 403, description = "wrong_password", body = ApiError),
        (status = 422, description = "password_rejected, with `violations`", body = ApiError),
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub(super) async fn change_password(
    State(service): State<Service>,
    auth: Authenticated,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    let request: PasswordChange = serde_json::from_slice(&body)
        .map_err(|e| HttpError::bad_request(format!("body: {e}"), auth.lang))?;
    service
        .change_password(
            &auth.operator,
            request.current_password.as_ref(),
            &request.new_password,
        )
        .await
        .map_err(|e| auth.err(e))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_form_wins_over_the_cookie_and_other_cookies_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-ukey_session=fromcookie; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("fromcookie"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer frombearer"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("frombearer"));
        let set = set_cookie("t", 60);
        let set = set.to_str().unwrap();
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
    }
}
