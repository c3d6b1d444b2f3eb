//! The token PIN rule. A token's PIN guards a key that cannot be copied, and the token locks
//! after a few wrong tries, so a PIN is weaker than a password by design. What the rule does
//! forbid is the factory PIN every token ships with (seed 004: "每个UK的登陆初始密码都是:123456")
//! and its trivial cousins. Where the token can hold ten characters or more, the password rule
//! applies; otherwise the strongest rule the token's limits allow: its full length, with every
//! character class it can store.

use crate::password::{self, composition_violations};
use crate::violation::{PolicyRejection, Violation};
use crate::{MAX_SECRET_BYTES, PasswordContext, PasswordPolicy};
use serde::{Deserialize, Serialize};

pub(crate) const DIGITS_ONLY: &str = "digits";
pub(crate) const PRINTABLE_ASCII: &str = "printable ASCII characters (letters, digits and symbols)";

/// Which characters a token accepts in its PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinCharset {
    /// Tokens with a PIN pad, or whose firmware only takes digits.
    Digits,
    /// Printable ASCII. PKCS#11 allows UTF-8, but tokens and middleware disagree on how to
    /// encode anything else, which locks users out; ukey never sets such a PIN.
    #[default]
    PrintableAscii,
}

/// A token's real PIN limits (after correcting what its module reports; see the daemon's
/// table of known token models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinConstraints {
    pub min_len: usize,
    pub max_len: usize,
    pub charset: PinCharset,
}

/// PINs every vendor ships or users pick first; checked after removing case.
const FACTORY_PINS: &[&str] = &[
    "0000",
    "1111",
    "1234",
    "000000",
    "111111",
    "123456",
    "654321",
    "666666",
    "888888",
    "123123",
    "112233",
    "520520",
    "521521",
    "147258",
    "1234567",
    "12345678",
    "87654321",
    "00000000",
    "11111111",
    "88888888",
    "12341234",
    "11223344",
    "123456789",
    "1234567890",
    "5201314",
    "147258369",
    "123qwe",
    "qwe123",
    "abc123",
    "a123456",
    "123456a",
    "password",
    "admin123",
    "qwerty",
    "1q2w3e4r",
    "1qaz2wsx",
];

/// The rule for token PINs. It shares the password rule for tokens that can hold one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinPolicy {
    password: PasswordPolicy,
}

impl PinPolicy {
    pub fn new(password: PasswordPolicy) -> Self {
        PinPolicy { password }
    }

    /// How many characters a new PIN needs on this token.
    pub fn required_len(&self, token: &PinConstraints) -> usize {
        let max = token.max_len.max(token.min_len);
        if max >= self.password.min_chars() {
            self.password.min_chars().max(token.min_len)
        } else {
            max
        }
    }

    /// Whether a new PIN must mix letters, digits and special characters on this token.
    pub fn requires_classes(&self, token: &PinConstraints) -> bool {
        token.charset == PinCharset::PrintableAscii && self.required_len(token) >= 3
    }

    /// Checks a new PIN for a token with the given limits and lists every rule it fails.
    pub fn check(&self, pin: &str, token: &PinConstraints) -> Result<(), PolicyRejection> {
        if pin.len() > MAX_SECRET_BYTES {
            return Err(PolicyRejection {
                violations: vec![Violation::TooLong {
                    max_bytes: MAX_SECRET_BYTES,
                }],
            });
        }
        let mut violations = Vec::new();
        let allowed = match token.charset {
            PinCharset::Digits => DIGITS_ONLY,
            PinCharset::PrintableAscii => PRINTABLE_ASCII,
        };
        let fits_charset = |c: char| match token.charset {
            PinCharset::Digits => c.is_ascii_digit(),
            PinCharset::PrintableAscii => c.is_ascii_graphic() || c == ' ',
        };
        if !pin.chars().all(fits_charset) {
            violations.push(Violation::UnsupportedCharacter { allowed });
        }
        let max = token.max_len.max(token.min_len);
        if pin.chars().count() > max {
            violations.push(Violation::LongerThanToken { max_chars: max });
        }
        let required = self.required_len(token);
        if self.requires_classes(token) {
            violations.extend(composition_violations(pin, required));
        } else if pin.chars().count() < required {
            violations.push(Violation::TooShort {
                min_chars: required,
            });
        }
        if is_factory_or_trivial(pin) {
            violations.push(Violation::FactoryOrTrivial);
        }
        // Long enough to be a password: then it must also pass as one.
        if violations.is_empty()
            && required >= self.password.min_chars()
            && self.requires_classes(token)
            && let Err(rejection) = self.password.check(pin, &PasswordContext::default())
        {
            violations.extend(rejection.violations);
        }
        PolicyRejection::from_violations(violations)
    }
}

/// True for a factory default PIN, a run of one character, a short pattern repeated
/// (`121212`, `abcabc`), or an ascending or descending sequence (`345678`, `987654`, `abcdef`).
pub fn is_factory_or_trivial(pin: &str) -> bool {
    let folded = password::normalize(pin).to_lowercase();
    let chars: Vec<char> = folded.chars().collect();
    if chars.is_empty() || FACTORY_PINS.contains(&folded.as_str()) {
        return true;
    }
    is_repetition(&chars) || is_sequence(&chars)
}

fn is_repetition(chars: &[char]) -> bool {
    let n = chars.len();
    (1..=n / 2).any(|period| {
        n.is_multiple_of(period)
            && chars
                .iter()
                .enumerate()
                .all(|(i, c)| *c == chars[i % period])
    })
}

fn is_sequence(chars: &[char]) -> bool {
    if chars.len() < 3 {
        return false;
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIV: PinConstraints = PinConstraints {
        min_len: 6,
        max_len: 8,
        charset: PinCharset::PrintableAscii,
    };
    const LONG: PinConstraints = PinConstraints {
        min_len: 4,
        max_len: 64,
        charset: PinCharset::PrintableAscii,
    };
    const PINPAD: PinConstraints = PinConstraints {
        min_len: 6,
        max_len: 6,
        charset: PinCharset::Digits,
    };

    fn codes(pin: &str, token: &PinConstraints) -> Vec<&'static str> {
        match PinPolicy::default().check(pin, token) {
            Ok(()) => vec![],
            Err(r) => r.codes(),
        }
    }

    #[test]
    fn factory_and_trivial_pins_are_refused_on_every_token() {
        for pin in [
            "123456", "000000", "111111", "12345678", "654321", "88888888", "234567", "987654",
            "121212", "abcabc",
        ] {
            assert!(is_factory_or_trivial(pin), "{pin} should be trivial");
        }
        for pin in ["839104", "k3#Pq9!z", "204817"] {
            assert!(!is_factory_or_trivial(pin), "{pin} should not be trivial");
        }
        assert!(codes("123456", &PINPAD).contains(&"factory_or_trivial"));
        assert!(codes("12345678", &PIV).contains(&"factory_or_trivial"));
    }

    #[test]
    fn a_short_token_needs_its_full_length_and_every_class() {
        assert_eq!(PinPolicy::default().required_len(&PIV), 8);
        assert_eq!(codes("k3#Pq9!z", &PIV), Vec::<&str>::new());
        assert_eq!(codes("k3#Pq9!", &PIV), vec!["too_short"]);
        assert_eq!(codes("k3aPq9bz", &PIV), vec!["missing_special"]);
        assert_eq!(codes("k3#Pq9!zz", &PIV), vec!["longer_than_token"]);
    }

    #[test]
    fn a_digits_only_token_needs_its_full_length_of_non_trivial_digits() {
        assert_eq!(codes("839104", &PINPAD), Vec::<&str>::new());
        assert_eq!(codes("83910", &PINPAD), vec!["too_short"]);
        assert_eq!(codes("83910a", &PINPAD), vec!["unsupported_character"]);
    }

    #[test]
    fn a_token_that_holds_ten_characters_gets_the_password_rule() {
        assert_eq!(PinPolicy::default().required_len(&LONG), 10);
        assert_eq!(codes("Tz8#kq2!Lm", &LONG), Vec::<&str>::new());
        assert_eq!(codes("k3#Pq9!z", &LONG), vec!["too_short"]);
        assert_eq!(codes("Password1!", &LONG), vec!["guessable"]);
    }

    #[test]
    fn non_ascii_and_control_characters_never_go_on_a_token() {
        assert!(codes("密码k3#Pq9!", &LONG).contains(&"unsupported_character"));
        assert!(codes("k3#Pq\t9!z", &PIV).contains(&"unsupported_character"));
    }

    #[test]
    fn an_oversized_pin_is_refused_with_that_reason_alone() {
        let huge = "9".repeat(10_000);
        assert_eq!(codes(&huge, &LONG), vec!["too_long"]);
    }
}
