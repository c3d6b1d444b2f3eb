//! JSON types of the token API (`/api/v1/sessions`, `/api/v1/me`) that ukeyd speaks to the
//! admin service, and the error body every API answers with.

use crate::{Lang, TokenSerial, UnitCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Header with which ukeyd tells the admin service its version; recorded with each login.
pub const CLIENT_VERSION_HEADER: &str = "x-ukey-client";

/// Header carrying the session id (from [`SessionInfo::session_id`]) on requests made within a
/// session, such as `GET /api/v1/me`. The client certificate must still be the session's token.
pub const SESSION_HEADER: &str = "x-ukey-session";

/// Body of `POST /api/v1/sessions`. The token is identified by the client certificate of the
/// mutual-TLS connection, never by anything in the body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// The client software and version, e.g. `ukeyd/0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
}

/// A unit as the token API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitRef {
    pub code: UnitCode,
    /// Full name (公章上的全称).
    pub name: String,
}

/// A session created for a token: the answer to `POST /api/v1/sessions` and `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub session_id: Uuid,
    pub unit: UnitRef,
    pub token_serial: TokenSerial,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
}

/// Why the admin service refused a token. Recorded with the refused login and returned as the
/// error `code`, so the daemon can tell the user what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// No client certificate on the connection.
    NoClientCertificate,
    /// The certificate's key belongs to no registered token.
    UnknownCertificate,
    /// The token's certificate is outside its validity period.
    CertificateExpired,
    /// The token is registered but not yet active.
    NotActive,
    Suspended,
    Lost,
    Revoked,
    /// The token is bound to no unit.
    NotBound,
    /// The unit the token is bound to is deactivated.
    UnitInactive,
    /// The session has ended, expired or belongs to another token.
    SessionEnded,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoClientCertificate => "no_client_certificate",
            Refusal::UnknownCertificate => "unknown_certificate",
            Refusal::CertificateExpired => "certificate_expired",
            Refusal::NotActive => "not_active",
            Refusal::Suspended => "suspended",
            Refusal::Lost => "lost",
            Refusal::Revoked => "revoked",
            Refusal::NotBound => "not_bound",
            Refusal::UnitInactive => "unit_inactive",
            Refusal::SessionEnded => "session_ended",
        }
    }

    pub fn from_code(code: &str) -> Option<Refusal> {
        ALL_REFUSALS.iter().copied().find(|r| r.code() == code)
    }

    /// What the token's user is told.
    pub fn message(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Refusal::NoClientCertificate, Lang::En) => "no U-Key certificate was presented",
            (Refusal::NoClientCertificate, Lang::ZhCn) => "未出示 U-Key 证书",
            (Refusal::UnknownCertificate, Lang::En) => {
                "this U-Key is not registered; ask IT staff to provision it"
            }
            (Refusal::UnknownCertificate, Lang::ZhCn) => "此 U-Key 未登记,请联系信息化部门办理",
            (Refusal::CertificateExpired, Lang::En) => {
                "this U-Key's certificate has expired; ask IT staff to renew it"
            }
            (Refusal::CertificateExpired, Lang::ZhCn) => {
                "此 U-Key 的证书已过期,请联系信息化部门更新"
            }
            (Refusal::NotActive, Lang::En) => "this U-Key has not been activated yet",
            (Refusal::NotActive, Lang::ZhCn) => "此 U-Key 尚未启用",
            (Refusal::Suspended, Lang::En) => "this U-Key is suspended; ask IT staff",
            (Refusal::Suspended, Lang::ZhCn) => "此 U-Key 已被暂停使用,请联系信息化部门",
            (Refusal::Lost, Lang::En) => "this U-Key was reported lost",
            (Refusal::Lost, Lang::ZhCn) => "此 U-Key 已挂失",
            (Refusal::Revoked, Lang::En) => "this U-Key's certificate was revoked",
            (Refusal::Revoked, Lang::ZhCn) => "此 U-Key 的证书已被吊销",
            (Refusal::NotBound, Lang::En) => "this U-Key is not bound to any organisation unit",
            (Refusal::NotBound, Lang::ZhCn) => "此 U-Key 未绑定党组织",
            (Refusal::UnitInactive, Lang::En) => {
                "the organisation unit of this U-Key is deactivated"
            }
            (Refusal::UnitInactive, Lang::ZhCn) => "此 U-Key 所属的党组织已停用",
            (Refusal::SessionEnded, Lang::En) => "the session has ended; log in again",
            (Refusal::SessionEnded, Lang::ZhCn) => "会话已结束,请重新登录",
        }
    }
}

/// Every refusal, e.g. for storing and reading back codes.
pub const ALL_REFUSALS: &[Refusal] = &[
    Refusal::NoClientCertificate,
    Refusal::UnknownCertificate,
    Refusal::CertificateExpired,
    Refusal::NotActive,
    Refusal::Suspended,
    Refusal::Lost,
    Refusal::Revoked,
    Refusal::NotBound,
    Refusal::UnitInactive,
    Refusal::SessionEnded,
];

/// The body of every API error: a stable code and a message in the request's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_code_reads_back_as_itself() {
        for r in ALL_REFUSALS {
            assert_eq!(Refusal::from_code(r.code()), Some(*r));
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.code()));
        }
    }

    #[test]
    fn session_info_serialises_times_as_rfc3339() {
        let info = SessionInfo {
            session_id: Uuid::nil(),
            unit: UnitRef {
                code: UnitCode::parse("01").unwrap(),
                name: "李渡街道党工委".into(),
            },
            token_serial: TokenSerial::parse("abc").unwrap(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["expires_at"], "1970-01-01T00:00:00Z");
        let back: SessionInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }
}
