//! Organisation administrators (党组织管理员): a name and a mainland mobile number per unit.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use ukey_proto::UnitCode;

/// A mainland China mobile number: 11 digits, `1[3-9]\d{9}`. The assessment counts a unit's
/// administrator only with one ("以录入管理员准确信息尤其是联系手机信息为依据").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mobile(String);

/// Why a mobile number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a mainland mobile number (11 digits starting 13–19)")]
pub struct MobileError(pub String);

impl Mobile {
    /// Accepts the number with spaces or dashes between digit groups and an optional `+86`.
    pub fn parse(raw: &str) -> Result<Mobile, MobileError> {
        let compact: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{3000}'))
            .collect();
        let digits = compact
            .strip_prefix("+86")
            .or_else(|| compact.strip_prefix("0086"))
            .unwrap_or(&compact);
        let b = digits.as_bytes();
        let ok = b.len() == 11
            && b.iter().all(u8::is_ascii_digit)
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1]);
        if ok {
            Ok(Mobile(digits.to_owned()))
        } else {
            Err(MobileError(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Mobile {
    type Error = MobileError;
    fn try_from(s: String) -> Result<Self, MobileError> {
        Mobile::parse(&s)
    }
}

impl From<Mobile> for String {
    fn from(m: Mobile) -> String {
        m.0
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An administrator to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdministrator {
    pub unit: UnitCode,
    pub name: String,
    pub mobile: Mobile,
}

/// An administrator as stored, with the unit it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Administrator {
    pub id: i64,
    pub unit_code: UnitCode,
    pub unit_name: String,
    pub name: String,
    #[schema(value_type = String, example = "13812345678")]
    pub mobile: Mobile,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobiles_are_eleven_digits_starting_13_to_19() {
        assert_eq!(
            Mobile::parse("13812345678").unwrap().as_str(),
            "13812345678"
        );
        assert_eq!(
            Mobile::parse("138 1234 5678").unwrap().as_str(),
            "13812345678"
        );
        assert_eq!(
            Mobile::parse("+86 138-1234-5678").unwrap().as_str(),
            "13812345678"
        );
        for bad in [
            "12812345678",
            "1381234567",
            "138123456789",
            "023-72864814",
            "",
            "1381234567x",
        ] {
            assert!(Mobile::parse(bad).is_err(), "{bad}");
        }
    }
}
