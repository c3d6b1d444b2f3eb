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

/// A message for a storage error in the request's language (the English one is the error's
/// own text).
fn storage_message(e: &StorageError, lang: Lang) -> String {
    if lang == Lang::En {
        return e.to_string();
    }
    match e {
        StorageError::UnknownUnit(c) => format!("组织 {c} 不存在"),
        StorageError::DuplicateUnitCode(c) => format!("组织代码 {c} 已被使用"),
        StorageError::DuplicateUnitName { name } => format!("同一上级组织下已有名为“{name}”的组织"),
        StorageError::Cycle { unit, parent } => {
            format!("不能把组织 {unit} 移到 {parent} 之下:{parent} 在 {unit} 的下级之中")
        }
        StorageError::UnknownToken(s) => format!("U-Key {s} 未登记"),
        StorageError::DuplicateSerial(s) => format!("U-Key 序列号 {s} 已登记"),
        StorageError::DuplicateFingerprint(s) => format!("此证书的密钥已登记为 U-Key {s}"),
        StorageError::Transition(t) => format!("U-Key 当前状态不允许此操作({t})"),
        StorageError::UnitInUse(c, what) => {
            let what = match *what {
                "units below it" => "下级组织",
                "administrators" => "管理员",
                "tokens" => "U-Key",
                "token history" => "U-Key 历史记录",
                "login records" => "登录记录",
                "sessions" => "会话",
                _ => "操作员账户",
            };
            format!("组织 {c} 仍有{what},不能删除;请改为停用")
        }
        StorageError::UnknownAdministrator(id) => format!("管理员 {id} 不存在"),
        StorageError::UnknownAccount(a) => format!("账户 {a} 不存在"),
        StorageError::DuplicateUsername(u) => format!("用户名 {u} 已被使用"),
        StorageError::RoleConflict(_) => {
            "系统管理员、安全保密管理员、安全审计员角色只能单独授予,不能与其他角色兼任".into()
        }
        StorageError::RoleNotHeld(r) => format!("该账户没有 {} 角色", r.label()),
        other => other.to_string(),
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let lang = self.lang;
        let mut violations = None;
        let (status, code, message) = match &self.error {
            ServiceError::Refused(r) => (refusal_status(*r), r.code(), r.message(lang).to_owned()),
            ServiceError::InvalidInput(detail) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{}: {detail}", text(lang, "请求无效", "invalid request")),
            ),
            ServiceError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                text(
                    lang,
                    "用户名或密码错误,或账户已被锁定",
                    "wrong username or password, or the account is locked",
                ),
            ),
            ServiceError::TokenRequired => (
                StatusCode::UNAUTHORIZED,
                "token_required",
                text(
                    lang,
                    "请插入本单位的 U-Key,通过 U-Key 客户端登录",
                    "a U-Key is required: log in through the U-Key client with your unit's U-Key",
                ),
            ),
            ServiceError::NotAuthenticated => (
                StatusCode::UNAUTHORIZED,
                "session_required",
                text(
                    lang,
                    "未登录或会话已结束,请重新登录",
                    "not logged in, or the session has ended; log in again",
                ),
            ),
            ServiceError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                text(
                    lang,
                    "没有权限执行此操作,或您的管理范围内没有该对象",
                    "not permitted, or no such object within your scope",
                ),
            ),
            ServiceError::PasswordChangeRequired => (
                StatusCode::FORBIDDEN,
                "password_change_required",
                text(lang, "请先修改密码", "change your password first"),
            ),
            ServiceError::WrongPassword => (
                StatusCode::FORBIDDEN,
                "wrong_password",
                text(lang, "当前密码错误", "the current password is wrong"),
            ),
            ServiceError::PasswordRejected(rejection) => {
                violations = Some(rejection.codes());
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "password_rejected",
                    rejection.message(lang),
                )
            }
            ServiceError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                match lang {
                    Lang::ZhCn => format!("{what} 不存在"),
                    Lang::En => format!("{what} does not exist"),
                },
            ),
            ServiceError::Storage(
                e @ (StorageError::UnknownUnit(_)
                | StorageError::UnknownToken(_)
                | StorageError::UnknownAdministrator(_)
                | StorageError::UnknownAccount(_)),
            ) => (StatusCode::NOT_FOUND, "not_found", storage_message(e, lang)),
            ServiceError::Storage(
                e @ (StorageError::Transition(_)
                | StorageError::DuplicateSerial(_)
                | StorageError::DuplicateFingerprint(_)
                | StorageError::DuplicateUnitCode(_)
                | StorageError::DuplicateUnitName { .. }
                | StorageError::Cycle { .. }
                | StorageError::UnitInUse(..)
                | StorageError::DuplicateUsername(_)
                | StorageError::RoleConflict(_)
                | StorageError::RoleNotHeld(_)),
            ) => (StatusCode::CONFLICT, "conflict", storage_message(e, lang)),
            ServiceError::Certificate(_)
            | ServiceError::CertificateMismatch { .. }
            | ServiceError::MissingReason => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                match (&self.error, lang) {
                    (ServiceError::MissingReason, Lang::ZhCn) => "此操作必须填写原因".to_owned(),
                    (_, Lang::ZhCn) => format!("证书不可用:{}", self.error),
                    _ => self.error.to_string(),
                },
            ),
            ServiceError::AuditNotWritten(_) => {
                tracing::error!(error = %self.error, "request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    text(
                        lang,
                        "审计记录无法写入,操作未执行",
                        "the action was not performed: its audit record could not be written",
                    ),
                )
            }
            ServiceError::ShuttingDown
            | ServiceError::LoginNotRecorded(_)
            | ServiceError::Hashing(_)
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
        let mut body = serde_json::json!(ApiError {
            code: code.to_owned(),
            message,
        });
        if let (Some(v), Some(obj)) = (violations, body.as_object_mut()) {
            obj.insert("violations".into(), v.into());
        }
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.tag()),
        );
        if status == StatusCode::UNAUTHORIZED {
            // Tells clients which credentials the API takes.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ukey-admin\""),
            );
        }
        response
    }
}
