//! What can go wrong with a token, named so that a user or IT staff knows what to do.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use ukey_proto::{PolicyRejection, TokenSerial};

/// A PKCS#11 call and what it returned, shown as `C_Login: CKR_PIN_INCORRECT`.
#[derive(Debug, Clone, Copy)]
pub struct Pkcs11Failure {
    pub call: Function,
    pub rv: RvError,
}

impl fmt::Display for Pkcs11Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C_{:?}: {}", self.call, ckr_name(self.rv))
    }
}

/// `RvError::PinIncorrect` → `CKR_PIN_INCORRECT`, the name in the PKCS#11 specification.
pub fn ckr_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// How many PIN tries a token has left, as far as PKCS#11 can tell: it reports flags
/// (`CKF_USER_PIN_COUNT_LOW`, `_FINAL_TRY`, `_LOCKED`), not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinRetries {
    /// No failed tries the token admits to.
    Full,
    /// At least one wrong PIN was entered since the last good one.
    Low,
    /// One try left: a wrong PIN now locks the token.
    FinalTry,
    /// No tries left: only IT staff can unblock it.
    Locked,
}

impl PinRetries {
    /// The number of tries left where the flags say it exactly.
    pub fn exact(self) -> Option<u32> {
        match self {
            PinRetries::FinalTry => Some(1),
            PinRetries::Locked => Some(0),
            PinRetries::Full | PinRetries::Low => None,
        }
    }
}

impl fmt::Display for PinRetries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinRetries::Full => "no wrong tries counted",
            PinRetries::Low => "fewer tries left (the token does not say how many)",
            PinRetries::FinalTry => "one try left: a wrong PIN now locks the token",
            PinRetries::Locked => "no tries left",
        })
    }
}

/// Everything the token layer can fail with. Each variant names the token (by serial) and,
/// where PKCS#11 was involved, the call and its return value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The module library could not be loaded or initialised.
    #[error("PKCS#11 module {}: {what}", module.display())]
    Module { module: PathBuf, what: String },

    /// A PKCS#11 call failed in a way that has no more specific variant.
    #[error("token {serial}: {failure}")]
    Pkcs11 {
        serial: TokenSerial,
        failure: Pkcs11Failure,
    },

    /// No token with this serial is known to any loaded module.
    #[error("no token with serial {serial} is known")]
    UnknownToken { serial: TokenSerial },

    /// The token was known but is not in its reader now.
    #[error("token {serial} is not present: insert it")]
    TokenAbsent { serial: TokenSerial },

    /// The token left during the operation (`CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`,
    /// `CKR_DEVICE_ERROR`, or a session that vanished); its login is gone.
    #[error(
        "token {serial} was removed or stopped answering during {failure}: insert it and log in again"
    )]
    TokenRemoved {
        serial: TokenSerial,
        failure: Pkcs11Failure,
    },

    /// The operation needs a login first (or the login was lost with a removal).
    #[error("token {serial} is not logged in: enter the PIN first")]
    NotLoggedIn { serial: TokenSerial },

    #[error("wrong PIN for token {serial}: {retries}")]
    PinIncorrect {
        serial: TokenSerial,
        retries: PinRetries,
    },

    /// The token reports one try left and the caller did not insist.
    #[error(
        "token {serial} has one PIN try left and a wrong PIN would lock it: login refused; try again only if you are sure of the PIN"
    )]
    FinalTryRefused { serial: TokenSerial },

    #[error(
        "the PIN of token {serial} is locked after too many wrong tries: IT staff must unblock it (with the PUK or SO PIN) before it can be used"
    )]
    PinLocked { serial: TokenSerial },

    /// The PUK or SO PIN given to unblock the user PIN was wrong (or is itself locked).
    #[error(
        "the PUK or SO PIN for token {serial} was refused; it has its own try counter, so check it before trying again"
    )]
    UnblockRefused { serial: TokenSerial },

    #[error("the PIN of token {serial} has expired: it must be changed")]
    PinExpired { serial: TokenSerial },

    /// A PIN outside the token's real length limits (checked before the token sees it, so no
    /// try is spent, or reported by the token as `CKR_PIN_LEN_RANGE`).
    #[error("token {serial} takes PINs of {min_len} to {max_len} characters ({source_of_limit})")]
    PinLength {
        serial: TokenSerial,
        min_len: usize,
        max_len: usize,
        source_of_limit: String,
    },

    /// A new PIN failed the PIN policy.
    #[error("new PIN for token {serial} {rejection}")]
    PinPolicy {
        serial: TokenSerial,
        rejection: PolicyRejection,
    },

    #[error("token {serial} has no key matching {selector}")]
    KeyNotFound {
        serial: TokenSerial,
        selector: String,
    },

    #[error("token {serial} has several keys matching {selector}: select one by id")]
    AmbiguousKey {
        serial: TokenSerial,
        selector: String,
    },

    /// The URI matches no token, or several.
    #[error("{0}")]
    NoMatchingToken(String),

    /// The key cannot be used for what was asked (wrong type, curve, size, or no `CKA_SIGN`).
    #[error("key {key} on token {serial} cannot be used: {reason}")]
    UnsupportedKey {
        serial: TokenSerial,
        key: String,
        reason: String,
    },

    /// The key needs the PIN for every signature (`CKA_ALWAYS_AUTHENTICATE`) and none was given.
    #[error(
        "key {key} on token {serial} needs the PIN for every signature (CKA_ALWAYS_AUTHENTICATE); it cannot sign unattended"
    )]
    PinPerSignature { serial: TokenSerial, key: String },

    /// The token has no mechanism for what was asked.
    #[error("token {serial} cannot {what}: its module offers no {mechanism}")]
    MechanismUnsupported {
        serial: TokenSerial,
        what: String,
        mechanism: String,
    },

    /// The module did not answer in time: the token or its reader hangs. Other modules are
    /// unaffected (each has its own thread).
    #[error("token module {} did not answer within {waited:?} ({operation}); the token or its reader may hang", module.display())]
    Timeout {
        module: PathBuf,
        operation: &'static str,
        waited: Duration,
    },

    /// The token layer is shutting down or the module's thread has ended.
    #[error("token module {} is no longer running", module.display())]
    ModuleStopped { module: PathBuf },

    /// What the token returned or holds is not what was expected (a malformed signature,
    /// certificate or public key).
    #[error("token {serial}: {what}")]
    Malformed { serial: TokenSerial, what: String },

    #[error(transparent)]
    Uri(#[from] crate::token::uri::UriError),
}

impl TokenError {
    /// A stable code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Module { .. } => "module",
            TokenError::Pkcs11 { .. } => "pkcs11",
            TokenError::UnknownToken { .. } => "unknown_token",
            TokenError::TokenAbsent { .. } => "token_absent",
            TokenError::TokenRemoved { .. } => "token_removed",
            TokenError::NotLoggedIn { .. } => "not_logged_in",
            TokenError::PinIncorrect { .. } => "pin_incorrect",
            TokenError::FinalTryRefused { .. } => "final_try_refused",
            TokenError::PinLocked { .. } => "pin_locked",
            TokenError::UnblockRefused { .. } => "unblock_refused",
            TokenError::PinExpired { .. } => "pin_expired",
            TokenError::PinLength { .. } => "pin_length",
            TokenError::PinPolicy { .. } => "pin_policy",
            TokenError::KeyNotFound { .. } => "key_not_found",
            TokenError::AmbiguousKey { .. } => "ambiguous_key",
            TokenError::NoMatchingToken(_) => "no_matching_token",
            TokenError::UnsupportedKey { .. } => "unsupported_key",
            TokenError::PinPerSignature { .. } => "pin_per_signature",
            TokenError::MechanismUnsupported { .. } => "mechanism_unsupported",
            TokenError::Timeout { .. } => "timeout",
            TokenError::ModuleStopped { .. } => "module_stopped",
            TokenError::Malformed { .. } => "malformed",
            TokenError::Uri(_) => "uri",
        }
    }

    /// True when the token has gone (removed, absent, or stopped answering): a caller holding
    /// connections made with its key should drop them.
    pub fn token_gone(&self) -> bool {
        matches!(
            self,
            TokenError::TokenAbsent { .. } | TokenError::TokenRemoved { .. }
        )
    }
}

/// Return values that mean the token (or the whole reader/pcscd) went away under a session.
pub(crate) fn is_gone(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::DeviceError
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SlotIdInvalid
            | RvError::TokenNotRecognized
            | RvError::CryptokiNotInitialized
    )
}

/// The return value inside a cryptoki error, if the module returned one.
pub(crate) fn rv_of(err: &CkError) -> Option<(Function, RvError)> {
    match err {
        CkError::Pkcs11(rv, call) => Some((*call, *rv)),
        _ => None,
    }
}

/// Maps a cryptoki error from an operation on `serial` to the generic variants (removal or
/// a named failure). Specific callers match the PIN return values before calling this.
pub(crate) fn from_cryptoki(serial: &TokenSerial, call: Function, err: CkError) -> TokenError {
    match rv_of(&err) {
        Some((call, rv)) if is_gone(rv) => TokenError::TokenRemoved {
            serial: serial.clone(),
            failure: Pkcs11Failure { call, rv },
        },
        Some((call, RvError::UserNotLoggedIn)) if !matches!(call, Function::Logout) => {
            TokenError::NotLoggedIn {
                serial: serial.clone(),
            }
        }
        Some((call, rv)) => TokenError::Pkcs11 {
            serial: serial.clone(),
            failure: Pkcs11Failure { call, rv },
        },
        None => TokenError::Malformed {
            serial: serial.clone(),
            what: format!("C_{call:?}: {err}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_are_named_as_the_specification_names_them() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::UserAlreadyLoggedIn),
            "CKR_USER_ALREADY_LOGGED_IN"
        );
        let f = Pkcs11Failure {
            call: Function::Login,
            rv: RvError::PinLenRange,
        };
        assert_eq!(f.to_string(), "C_Login: CKR_PIN_LEN_RANGE");
    }
}
