//! Tokens (U-Keys): status lifecycle and binding to exactly one unit.
//!
//! ```text
//! registered ──bind──▶ active ──suspend──▶ suspended ──resume──▶ active
//!     │                  │  └────lost────▶ lost
//!     └──revoke──▶ revoked ◀──revoke── (active, suspended, lost)
//! ```
//! Every change is an explicit operation with a reason and lands in an append-only history
//! that keeps the status and unit after the change, so "what was true at instant T" is a query.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use ukey_proto::api::Refusal;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenStatus {
    /// Known (from its certificate) but not yet bound and active.
    Registered,
    Active,
    Suspended,
    Lost,
    /// Terminal: the certificate is revoked.
    Revoked,
}

pub const ALL_STATUSES: &[TokenStatus] = &[
    TokenStatus::Registered,
    TokenStatus::Active,
    TokenStatus::Suspended,
    TokenStatus::Lost,
    TokenStatus::Revoked,
];

impl TokenStatus {
    pub fn code(self) -> &'static str {
        match self {
            TokenStatus::Registered => "registered",
            TokenStatus::Active => "active",
            TokenStatus::Suspended => "suspended",
            TokenStatus::Lost => "lost",
            TokenStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<TokenStatus> {
        ALL_STATUSES.iter().copied().find(|st| st.code() == s)
    }

    /// Why a token in this status may not log in; `None` when it may.
    pub fn refusal(self) -> Option<Refusal> {
        match self {
            TokenStatus::Active => None,
            TokenStatus::Registered => Some(Refusal::NotActive),
            TokenStatus::Suspended => Some(Refusal::Suspended),
            TokenStatus::Lost => Some(Refusal::Lost),
            TokenStatus::Revoked => Some(Refusal::Revoked),
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A token entering the system from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub serial: TokenSerial,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    pub cert_der: Vec<u8>,
    pub fingerprint: SpkiFingerprint,
    /// The certificate's serial number, lowercase hex.
    pub cert_serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub id: i64,
    pub serial: TokenSerial,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub cert_der: Vec<u8>,
    pub fingerprint: SpkiFingerprint,
    pub cert_serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub status: TokenStatus,
    pub unit_id: Option<i64>,
    pub unit_code: Option<UnitCode>,
    pub replaced_by: Option<TokenSerial>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An explicit change to a token; each is recorded with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenChange {
    /// Binds an unbound token to a unit (and activates a registered one).
    Bind(UnitCode),
    /// Moves a bound token to another unit.
    Rebind(UnitCode),
    Suspend,
    /// Ends a suspension.
    Resume,
    /// Reported lost.
    Lost,
    /// Revokes the token, optionally naming the token that replaces it.
    Revoke {
        replaced_by: Option<TokenSerial>,
    },
}

/// What kind of entry a history row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenEventKind {
    Registered,
    Bound,
    Rebound,
    Suspended,
    Resumed,
    Lost,
    Revoked,
}

pub const ALL_EVENT_KINDS: &[TokenEventKind] = &[
    TokenEventKind::Registered,
    TokenEventKind::Bound,
    TokenEventKind::Rebound,
    TokenEventKind::Suspended,
    TokenEventKind::Resumed,
    TokenEventKind::Lost,
    TokenEventKind::Revoked,
];

impl TokenEventKind {
    pub fn code(self) -> &'static str {
        match self {
            TokenEventKind::Registered => "registered",
            TokenEventKind::Bound => "bound",
            TokenEventKind::Rebound => "rebound",
            TokenEventKind::Suspended => "suspended",
            TokenEventKind::Resumed => "resumed",
            TokenEventKind::Lost => "lost",
            TokenEventKind::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<TokenEventKind> {
        ALL_EVENT_KINDS.iter().copied().find(|k| k.code() == s)
    }
}

/// One row of a token's history: what happened, and the status and unit afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenEvent {
    pub id: i64,
    pub serial: TokenSerial,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: TokenEventKind,
    pub status: TokenStatus,
    pub unit_code: Option<UnitCode>,
    pub reason: String,
    pub actor: String,
}

/// A token's status and binding at some instant, read back from its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenState {
    pub serial: TokenSerial,
    pub status: TokenStatus,
    pub unit_code: Option<UnitCode>,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// A change that the token's current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    #[error("token {serial} is already bound to unit {unit}; use rebind to move it")]
    AlreadyBound { serial: TokenSerial, unit: UnitCode },
    #[error("token {serial} is not bound to any unit; use bind")]
    NotBound { serial: TokenSerial },
    #[error("token {serial} is already bound to unit {unit}")]
    SameUnit { serial: TokenSerial, unit: UnitCode },
    #[error("token {serial} is {status}; it cannot be {action}")]
    Status {
        serial: TokenSerial,
        status: TokenStatus,
        action: &'static str,
    },
    #[error("a token cannot replace itself")]
    ReplacesItself,
    #[error("a reason is required")]
    MissingReason,
}

/// The effect of an allowed change: the event to record and the state afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TokenEventKind,
    pub status: TokenStatus,
    /// The unit afterwards, by code (`None`: unchanged from `current_unit`).
    pub unit: Option<UnitCode>,
}

/// Checks `change` against the token's current status and unit.
pub fn transition(
    serial: &TokenSerial,
    status: TokenStatus,
    current_unit: Option<&UnitCode>,
    change: &TokenChange,
) -> Result<Transition, TransitionError> {
    use TokenStatus as S;
    let refuse = |action: &'static str| TransitionError::Status {
        serial: serial.clone(),
        status,
        action,
    };
    match change {
        TokenChange::Bind(unit) => {
            if let Some(current) = current_unit {
                return Err(TransitionError::AlreadyBound {
                    serial: serial.clone(),
                    unit: current.clone(),
                });
            }
            let status_after = match status {
                S::Registered | S::Active => S::Active,
                S::Suspended => S::Suspended,
                S::Lost | S::Revoked => return Err(refuse("bound")),
            };
            Ok(Transition {
                kind: TokenEventKind::Bound,
                status: status_after,
                unit: Some(unit.clone()),
            })
        }
        TokenChange::Rebind(unit) => {
            let Some(current) = current_unit else {
                return Err(TransitionError::NotBound {
                    serial: serial.clone(),
                });
            };
            if current == unit {
                return Err(TransitionError::SameUnit {
                    serial: serial.clone(),
                    unit: unit.clone(),
                });
            }
            if matches!(status, S::Lost | S::Revoked) {
                return Err(refuse("rebound"));
            }
            Ok(Transition {
                kind: TokenEventKind::Rebound,
                status,
                unit: Some(unit.clone()),
            })
        }
        TokenChange::Suspend => match status {
            S::Active => Ok(Transition {
                kind: TokenEventKind::Suspended,
                status: S::Suspended,
                unit: None,
            }),
            _ => Err(refuse("suspended")),
        },
        TokenChange::Resume => match status {
            S::Suspended => Ok(Transition {
                kind: TokenEventKind::Resumed,
                status: S::Active,
                unit: None,
            }),
            _ => Err(refuse("resumed")),
        },
        TokenChange::Lost => match status {
            S::Active | S::Suspended => Ok(Transition {
                kind: TokenEventKind::Lost,
                status: S::Lost,
                unit: None,
            }),
            _ => Err(refuse("reported lost")),
        },
        TokenChange::Revoke { replaced_by } => {
            if replaced_by.as_ref() == Some(serial) {
                return Err(TransitionError::ReplacesItself);
            }
            match status {
                S::Revoked => Err(refuse("revoked")),
                _ => Ok(Transition {
                    kind: TokenEventKind::Revoked,
                    status: S::Revoked,
                    unit: None,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial() -> TokenSerial {
        TokenSerial::parse("T1").unwrap()
    }
    fn unit(c: &str) -> UnitCode {
        UnitCode::parse(c).unwrap()
    }

    #[test]
    fn binding_a_registered_token_activates_it() {
        let t = transition(
            &serial(),
            TokenStatus::Registered,
            None,
            &TokenChange::Bind(unit("01")),
        )
        .unwrap();
        assert_eq!(t.status, TokenStatus::Active);
        assert_eq!(t.unit, Some(unit("01")));
    }

    #[test]
    fn a_bound_token_moves_only_by_rebind() {
        let err = transition(
            &serial(),
            TokenStatus::Active,
            Some(&unit("01")),
            &TokenChange::Bind(unit("02")),
        )
        .unwrap_err();
        assert!(matches!(err, TransitionError::AlreadyBound { .. }));
        let t = transition(
            &serial(),
            TokenStatus::Active,
            Some(&unit("01")),
            &TokenChange::Rebind(unit("02")),
        )
        .unwrap();
        assert_eq!(t.kind, TokenEventKind::Rebound);
        assert!(
            transition(
                &serial(),
                TokenStatus::Active,
                None,
                &TokenChange::Rebind(unit("02"))
            )
            .is_err()
        );
    }

    #[test]
    fn revoked_is_terminal_and_lost_cannot_resume() {
        for change in [
            TokenChange::Resume,
            TokenChange::Suspend,
            TokenChange::Lost,
            TokenChange::Revoke { replaced_by: None },
        ] {
            assert!(
                transition(&serial(), TokenStatus::Revoked, Some(&unit("01")), &change).is_err()
            );
        }
        assert!(
            transition(
                &serial(),
                TokenStatus::Lost,
                Some(&unit("01")),
                &TokenChange::Resume
            )
            .is_err()
        );
        assert!(
            transition(
                &serial(),
                TokenStatus::Lost,
                Some(&unit("01")),
                &TokenChange::Revoke { replaced_by: None }
            )
            .is_ok()
        );
    }
}
