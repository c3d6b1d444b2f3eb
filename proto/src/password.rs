//! The password rule for operator accounts (seed 002: at least ten characters with letters,
//! digits and special characters), strengthened the way NIST SP 800-63B asks: common and
//! context-derived passwords are refused, long and Unicode passwords are welcome and never
//! truncated, and oversized input is refused before any expensive work.

use crate::MAX_SECRET_BYTES;
use crate::violation::{ContextField, PolicyRejection, Violation};
use unicode_normalization::UnicodeNormalization;

/// What a password is checked against besides itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    pub username: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub unit_name: Option<&'a str>,
    pub unit_code: Option<&'a str>,
}

/// The password rule. [`PasswordPolicy::default`] is the product's rule; the fields exist so a
/// deployment can only make it stricter (see [`PasswordPolicy::min_chars`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: Self::SEED_MIN_CHARS,
        }
    }
}

/// Context words shorter than this are not looked for: a two-digit unit code such as `01`
/// would otherwise forbid every password containing those two digits.
const MIN_CONTEXT_CHARS: usize = 3;

/// zxcvbn score (0–4) a password must reach: 3 means "safely unguessable" (about 10^8 guesses
/// or more), which rules out dictionary words with a digit and a symbol appended.
const MIN_ZXCVBN_SCORE: u8 = 3;

impl PasswordPolicy {
    /// The minimum length set by seed 002.
    pub const SEED_MIN_CHARS: usize = 10;

    /// A rule demanding at least `min_chars` characters; values below the seed's ten are raised
    /// to ten, because the seed's rule is the floor.
    pub fn with_min_chars(min_chars: usize) -> Self {
        PasswordPolicy {
            min_chars: min_chars.max(Self::SEED_MIN_CHARS),
        }
    }

    pub fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Checks a password and lists every rule it fails.
    ///
    /// Input longer than [`MAX_SECRET_BYTES`] is refused with only [`Violation::TooLong`],
    /// without normalising or matching it.
    pub fn check(
        &self,
        password: &str,
        context: &PasswordContext<'_>,
    ) -> Result<(), PolicyRejection> {
        if password.len() > MAX_SECRET_BYTES {
            return Err(PolicyRejection {
                violations: vec![Violation::TooLong {
                    max_bytes: MAX_SECRET_BYTES,
                }],
            });
        }
        let password = normalize(password);
        let mut violations = composition_violations(&password, self.min_chars);
        violations.extend(context_violations(&password, context));
        if violations.is_empty() && is_guessable(&password, context) {
            violations.push(Violation::Guessable);
        }
        PolicyRejection::from_violations(violations)
    }
}

/// The form in which passwords are checked and hashed: Unicode NFKC, so that the same password
/// typed on two keyboards (full-width and half-width characters, say) is the same password.
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Which character classes a secret holds. Letters and digits are Unicode-aware (汉字 count as
/// letters); anything else printable is special.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Classes {
    pub letter: bool,
    pub digit: bool,
    pub special: bool,
    pub control: bool,
}

pub(crate) fn classes(secret: &str) -> Classes {
    let mut c = Classes::default();
    for ch in secret.chars() {
        if ch.is_control() {
            c.control = true;
        } else if ch.is_alphabetic() {
            c.letter = true;
        } else if ch.is_numeric() {
            c.digit = true;
        } else {
            c.special = true;
        }
    }
    c
}

/// Length and the three character classes: the rule of seed 002.
pub(crate) fn composition_violations(secret: &str, min_chars: usize) -> Vec<Violation> {
    let mut violations = Vec::new();
    if secret.chars().count() < min_chars {
        violations.push(Violation::TooShort { min_chars });
    }
    let c = classes(secret);
    if !c.letter {
        violations.push(Violation::MissingLetter);
    }
    if !c.digit {
        violations.push(Violation::MissingDigit);
    }
    if !c.special {
        violations.push(Violation::MissingSpecial);
    }
    if c.control {
        violations.push(Violation::ControlCharacter);
    }
    violations
}

fn context_violations(password: &str, context: &PasswordContext<'_>) -> Vec<Violation> {
    let folded = password.to_lowercase();
    let fields = [
        (context.username, ContextField::Username),
        (context.display_name, ContextField::DisplayName),
        (context.unit_name, ContextField::UnitName),
        (context.unit_code, ContextField::UnitCode),
    ];
    fields
        .into_iter()
        .filter_map(|(word, field)| {
            let word = normalize(word?.trim()).to_lowercase();
            (word.chars().count() >= MIN_CONTEXT_CHARS && folded.contains(&word))
                .then_some(Violation::ContainsContext { field })
        })
        .collect()
}

/// zxcvbn's dictionaries (30,000 common passwords, names, English words) and pattern matchers
/// (keyboard walks, dates, repeats, sequences, l33t) decide whether a password is guessable.
/// It only understands ASCII; non-ASCII characters each add a symbol zxcvbn cannot match, so
/// the ASCII part is judged and the rest counts as unguessable, as its authors advise.
fn is_guessable(password: &str, context: &PasswordContext<'_>) -> bool {
    let inputs: Vec<&str> = [
        context.username,
        context.display_name,
        context.unit_name,
        context.unit_code,
    ]
    .into_iter()
    .flatten()
    .collect();
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    u8::from(entropy.score()) < MIN_ZXCVBN_SCORE
}
