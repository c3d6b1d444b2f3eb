//! Reading stored codes back into domain types; a value this version cannot read is reported
//! as corrupt data, naming the column, rather than panicking.

use super::StorageError;
use crate::domain::login::{LoginKind, LoginOutcome};
use crate::domain::token::{TokenEventKind, TokenStatus};
use crate::domain::unit::UnitKind;
use ukey_proto::{SpkiFingerprint, TokenSerial, UnitCode};

fn corrupt(what: &str, value: &str) -> StorageError {
    StorageError::Corrupt(format!("{what} {value:?}"))
}

pub(crate) fn unit_code(s: &str) -> Result<UnitCode, StorageError> {
    UnitCode::parse(s).map_err(|_| corrupt("unit code", s))
}

pub(crate) fn opt_unit_code(s: Option<String>) -> Result<Option<UnitCode>, StorageError> {
    s.as_deref().map(unit_code).transpose()
}

pub(crate) fn serial(s: &str) -> Result<TokenSerial, StorageError> {
    TokenSerial::parse(s).map_err(|_| corrupt("token serial", s))
}

pub(crate) fn opt_serial(s: Option<String>) -> Result<Option<TokenSerial>, StorageError> {
    s.as_deref().map(serial).transpose()
}

pub(crate) fn kind(s: &str) -> Result<UnitKind, StorageError> {
    crate::domain::unit::ALL_KINDS
        .iter()
        .copied()
        .find(|k| k.code() == s)
        .ok_or_else(|| corrupt("unit kind", s))
}

pub(crate) fn status(s: &str) -> Result<TokenStatus, StorageError> {
    TokenStatus::parse(s).ok_or_else(|| corrupt("token status", s))
}

pub(crate) fn event_kind(s: &str) -> Result<TokenEventKind, StorageError> {
    TokenEventKind::parse(s).ok_or_else(|| corrupt("token event kind", s))
}

pub(crate) fn login_kind(s: &str) -> Result<LoginKind, StorageError> {
    LoginKind::parse(s).ok_or_else(|| corrupt("login kind", s))
}

pub(crate) fn outcome(s: &str) -> Result<LoginOutcome, StorageError> {
    LoginOutcome::parse(s).ok_or_else(|| corrupt("login outcome", s))
}

pub(crate) fn fingerprint(b: &[u8]) -> Result<SpkiFingerprint, StorageError> {
    <[u8; 32]>::try_from(b)
        .map(SpkiFingerprint::from_bytes)
        .map_err(|_| StorageError::Corrupt(format!("fingerprint of {} bytes", b.len())))
}

pub(crate) fn opt_fingerprint(b: Option<Vec<u8>>) -> Result<Option<SpkiFingerprint>, StorageError> {
    b.as_deref().map(fingerprint).transpose()
}
