//! Sessions and login records. A login record is written for every session creation, refused
//! or not, and for every refused request; it is append-only. A session is the mutable part
//! (its end).

use serde::Serialize;
use std::net::SocketAddr;
use time::OffsetDateTime;
use ukey_proto::api::Refusal;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};
use uuid::Uuid;

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginKind {
    /// `POST /api/v1/sessions`: the login proper.
    Login,
    /// Any other request by a token (recorded only when refused).
    Request,
}

impl LoginKind {
    pub fn code(self) -> &'static str {
        match self {
            LoginKind::Login => "login",
            LoginKind::Request => "request",
        }
    }

    pub fn parse(s: &str) -> Option<LoginKind> {
        match s {
            "login" => Some(LoginKind::Login),
            "request" => Some(LoginKind::Request),
            _ => None,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginOutcome {
    Success,
    Refused(Refusal),
}

impl LoginOutcome {
    /// Stored as `success` or the refusal's code.
    pub fn code(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Refused(r) => r.code(),
        }
    }

    pub fn parse(s: &str) -> Option<LoginOutcome> {
        if s == "success" {
            Some(LoginOutcome::Success)
        } else {
            Refusal::from_code(s).map(LoginOutcome::Refused)
        }
    }
}

impl Serialize for LoginOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// A session to create together with a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: Uuid,
    pub expires_at: OffsetDateTime,
}

/// One login record to write (and, for a successful login, its session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginWrite {
    pub at: OffsetDateTime,
    pub kind: LoginKind,
    pub outcome: LoginOutcome,
    /// The registered token, when the certificate belongs to one.
    pub token_id: Option<i64>,
    pub unit_id: Option<i64>,
    /// The presented certificate's key, when one was presented.
    pub fingerprint: Option<SpkiFingerprint>,
    /// The token serial the certificate claims (`urn:ukey:token:`), for unknown certificates.
    pub claimed_serial: Option<String>,
    pub source: Option<SocketAddr>,
    pub client_version: Option<String>,
    /// For a successful login: the session it creates. For a refused request: the session it
    /// was made in, if any (not created).
    pub session: Option<NewSession>,
    /// A refused request's session id (the session already exists).
    pub in_session: Option<Uuid>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: Uuid,
    pub token_id: i64,
    pub token_serial: TokenSerial,
    pub unit_id: i64,
    pub unit_code: UnitCode,
    pub unit_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl Session {
    /// Whether requests may still be made in this session at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.ended_at.is_none() && now < self.expires_at
    }
}

/// A login record as read back for lists and exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LoginRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: LoginKind,
    /// `success` or a refusal code.
    #[schema(value_type = String)]
    pub outcome: LoginOutcome,
    pub token_serial: Option<TokenSerial>,
    pub unit_code: Option<UnitCode>,
    pub unit_name: Option<String>,
    pub fingerprint: Option<SpkiFingerprint>,
    pub claimed_serial: Option<String>,
    pub source: Option<String>,
    pub client_version: Option<String>,
    pub session_id: Option<Uuid>,
    /// When the session this login created ended (logout), if it has.
    #[serde(with = "time::serde::rfc3339::option")]
    pub logout_at: Option<OffsetDateTime>,
}
