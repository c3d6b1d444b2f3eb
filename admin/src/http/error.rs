//! The one place where errors become HTTP responses: a status and an [`ApiError`] body
//! `{code, message}` in the request's language.

use crate::service::ServiceError;
use crate::storage::StorageError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ukey_proto::Lang;
use ukey_proto::api::{ApiError, Refusal};

/// An error on its way out, with the language to tell it in.
#[derive(Debug)]
pub struct HttpError {
    pub error: ServiceError,
    pub lang: Lang,
}

impl HttpError {
    pub fn new(error: ServiceError, lang: Lang) -> HttpError {
        HttpError { error, lang }
    }

    pub fn bad_request(detail: String, lang: Lang) -> HttpError {
        HttpError::new(ServiceError::InvalidInput(detail), lang)
    }
}

fn refusal_status(r: Refusal) -> StatusCode {
    match r {
        Refusal::NoClientCertificate | Refusal::SessionEnded => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

fn text(lang: Lang, zh: &str, en: &str) -> String {
    match lang {
        Lang::ZhCn => zh.to_owned(),
        Lang::En => en.to_owned(),
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let lang = self.lang;
        let (status, code, message) = match &self.error {
            ServiceError::Refused(r) => (refusal_status(*r), r.code(), r.message(lang).to_owned()),
            ServiceError::InvalidInput(detail) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{}: {detail}", text(lang, "请求无效", "invalid request")),
            ),
            ServiceError::Storage(StorageError::UnknownUnit(_) | StorageError::UnknownToken(_)) => {
                (StatusCode::NOT_FOUND, "not_found", self.error.to_string())
            }
            ServiceError::Storage(
                StorageError::Transition(_)
                | StorageError::DuplicateSerial(_)
                | StorageError::DuplicateFingerprint(_)
                | StorageError::DuplicateUnitCode(_)
                | StorageError::DuplicateUnitName { .. }
                | StorageError::Cycle { .. },
            ) => (StatusCode::CONFLICT, "conflict", self.error.to_string()),
            ServiceError::Certificate(_)
            | ServiceError::CertificateMismatch { .. }
            | ServiceError::MissingReason => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                self.error.to_string(),
            ),
            ServiceError::ShuttingDown
            | ServiceError::LoginNotRecorded(_)
            | ServiceError::Storage(_) => {
                tracing::error!(error = %self.error, "request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    text(
                        lang,
                        "服务暂时不可用,请稍后重试",
                        "the service is temporarily unavailable; try again shortly",
                    ),
                )
            }
        };
        let mut response = (
            status,
            Json(ApiError {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response();
        response.headers_mut().insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.tag()),
        );
        response
    }
}
