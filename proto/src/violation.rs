//! What a password or PIN can fail on, with a stable code and a message in each language.

use crate::Lang;
use serde::Serialize;

/// One rule a password or PIN failed. A rejection lists every rule that failed, not just the
/// first, so that the user can fix everything at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Violation {
    /// Longer than [`crate::MAX_SECRET_BYTES`]; nothing else was checked.
    TooLong { max_bytes: usize },
    /// Fewer characters than required.
    TooShort { min_chars: usize },
    /// More characters than the token can store.
    LongerThanToken { max_chars: usize },
    /// No letter.
    MissingLetter,
    /// No digit.
    MissingDigit,
    /// No special character (anything that is neither a letter nor a digit).
    MissingSpecial,
    /// A control character (newline, tab, NUL, …), which keyboards cannot type reliably.
    ControlCharacter,
    /// A character the token cannot take (for PINs: only printable ASCII, or digits only).
    UnsupportedCharacter { allowed: &'static str },
    /// A common password or one made of predictable patterns.
    Guessable,
    /// Contains the username, the unit name or the unit code.
    ContainsContext { field: ContextField },
    /// A factory default (123456, 12345678, …) or a trivial sequence or repetition.
    FactoryOrTrivial,
    /// The same as the secret it replaces.
    SameAsCurrent,
    /// One of the account's `count` most recent passwords (the current one included).
    RecentlyUsed { count: usize },
}

/// Which piece of context a password contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextField {
    Username,
    DisplayName,
    UnitName,
    UnitCode,
}

impl Violation {
    /// Stable machine-readable code, e.g. for API error bodies and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::TooLong { .. } => "too_long",
            Violation::TooShort { .. } => "too_short",
            Violation::LongerThanToken { .. } => "longer_than_token",
            Violation::MissingLetter => "missing_letter",
            Violation::MissingDigit => "missing_digit",
            Violation::MissingSpecial => "missing_special",
            Violation::ControlCharacter => "control_character",
            Violation::UnsupportedCharacter { .. } => "unsupported_character",
            Violation::Guessable => "guessable",
            Violation::ContainsContext { .. } => "contains_context",
            Violation::FactoryOrTrivial => "factory_or_trivial",
            Violation::SameAsCurrent => "same_as_current",
            Violation::RecentlyUsed { .. } => "recently_used",
        }
    }

    /// The message shown to the user.
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (Violation::TooLong { max_bytes }, Lang::En) => {
                format!("must not be longer than {max_bytes} bytes")
            }
            (Violation::TooLong { max_bytes }, Lang::ZhCn) => format!("长度不能超过 {max_bytes} 字节"),
            (Violation::TooShort { min_chars }, Lang::En) => {
                format!("must be at least {min_chars} characters long")
            }
            (Violation::TooShort { min_chars }, Lang::ZhCn) => format!("长度至少为 {min_chars} 个字符"),
            (Violation::LongerThanToken { max_chars }, Lang::En) => {
                format!("the token stores at most {max_chars} characters")
            }
            (Violation::LongerThanToken { max_chars }, Lang::ZhCn) => {
                format!("该 U-Key 最多只能保存 {max_chars} 个字符")
            }
            (Violation::MissingLetter, Lang::En) => "must contain a letter".into(),
            (Violation::MissingLetter, Lang::ZhCn) => "必须包含字母".into(),
            (Violation::MissingDigit, Lang::En) => "must contain a digit".into(),
            (Violation::MissingDigit, Lang::ZhCn) => "必须包含数字".into(),
            (Violation::MissingSpecial, Lang::En) => {
                "must contain a special character (neither letter nor digit)".into()
            }
            (Violation::MissingSpecial, Lang::ZhCn) => "必须包含特殊字符(字母和数字以外的字符)".into(),
            (Violation::ControlCharacter, Lang::En) => {
                "must not contain control characters such as tabs or line breaks".into()
            }
            (Violation::ControlCharacter, Lang::ZhCn) => "不能包含制表符、换行等控制字符".into(),
            (Violation::UnsupportedCharacter { allowed }, Lang::En) => {
                format!("may only contain {allowed}")
            }
            (Violation::UnsupportedCharacter { allowed }, Lang::ZhCn) => {
                let allowed = match *allowed {
                    crate::pin::DIGITS_ONLY => "数字",
                    _ => "可打印的 ASCII 字符(英文字母、数字和符号)",
                };
                format!("只能包含{allowed}")
            }
            (Violation::Guessable, Lang::En) => {
                "is a common password or too easy to guess; avoid words, names, dates and keyboard patterns".into()
            }
            (Violation::Guessable, Lang::ZhCn) => {
                "是常见密码或容易被猜到;请避免使用单词、姓名、日期和键盘序列".into()
            }
            (Violation::ContainsContext { field }, lang) => {
                let what = match (field, lang) {
                    (ContextField::Username, Lang::En) => "the username",
                    (ContextField::Username, Lang::ZhCn) => "用户名",
                    (ContextField::DisplayName, Lang::En) => "the person's name",
                    (ContextField::DisplayName, Lang::ZhCn) => "姓名",
                    (ContextField::UnitName, Lang::En) => "the unit's name",
                    (ContextField::UnitName, Lang::ZhCn) => "组织名称",
                    (ContextField::UnitCode, Lang::En) => "the unit's code",
                    (ContextField::UnitCode, Lang::ZhCn) => "组织代码",
                };
                match lang {
                    Lang::En => format!("must not contain {what}"),
                    Lang::ZhCn => format!("不能包含{what}"),
                }
            }
            (Violation::FactoryOrTrivial, Lang::En) => {
                "must not be a factory default (such as 123456) or a simple sequence or repetition".into()
            }
            (Violation::FactoryOrTrivial, Lang::ZhCn) => {
                "不能使用出厂默认值(如 123456)或简单的顺序、重复字符".into()
            }
            (Violation::SameAsCurrent, Lang::En) => "must differ from the current one".into(),
            (Violation::SameAsCurrent, Lang::ZhCn) => "不能与当前的相同".into(),
            (Violation::RecentlyUsed { count }, Lang::En) => {
                format!("must differ from the last {count} passwords")
            }
            (Violation::RecentlyUsed { count }, Lang::ZhCn) => {
                format!("不能与最近使用过的 {count} 个密码相同")
            }
        }
    }
}

/// A password or PIN that failed the policy, with every rule it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.message(Lang::En))]
pub struct PolicyRejection {
    pub violations: Vec<Violation>,
}

impl PolicyRejection {
    /// All reasons in one sentence, e.g. for a CLI or an API error message.
    pub fn message(&self, lang: Lang) -> String {
        let reasons: Vec<String> = self.violations.iter().map(|v| v.message(lang)).collect();
        match lang {
            Lang::En => format!("rejected: {}", reasons.join("; ")),
            Lang::ZhCn => format!("不符合要求:{}", reasons.join(";")),
        }
    }

    /// The stable codes of every failed rule.
    pub fn codes(&self) -> Vec<&'static str> {
        self.violations.iter().map(Violation::code).collect()
    }

    pub(crate) fn from_violations(violations: Vec<Violation>) -> Result<(), PolicyRejection> {
        if violations.is_empty() {
            Ok(())
        } else {
            Err(PolicyRejection { violations })
        }
    }
}
