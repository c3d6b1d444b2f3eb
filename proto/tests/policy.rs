//! The password and PIN policy, as the admin service and the daemon will see it.

use proptest::prelude::*;
use ukey_proto::password::normalize;
use ukey_proto::{Lang, MAX_SECRET_BYTES, PasswordContext, PasswordPolicy};

fn codes(password: &str, ctx: &PasswordContext<'_>) -> Vec<&'static str> {
    match PasswordPolicy::default().check(password, ctx) {
        Ok(()) => vec![],
        Err(r) => r.codes(),
    }
}

const NO_CONTEXT: PasswordContext<'static> = PasswordContext {
    username: None,
    display_name: None,
    unit_name: None,
    unit_code: None,
};

#[test]
fn the_seed_rule_table_accepts_and_refuses_what_it_should() {
    let table: &[(&str, &[&str])] = &[
        ("Tz8#kq2!Lm", &[]),
        ("correct-horse-7-battery", &[]),
        ("短密码1!", &["too_short"]),
        ("Tz8kq2yLmw", &["missing_special"]),
        ("Tz#kq!yLmw", &["missing_digit"]),
        ("83#41!0927", &["missing_letter"]),
        ("abc", &["too_short", "missing_digit", "missing_special"]),
        (
            "",
            &[
                "too_short",
                "missing_letter",
                "missing_digit",
                "missing_special",
            ],
        ),
        ("Tz8#kq\n2!Lm", &["control_character"]),
        ("Password1!", &["guessable"]),
        ("Qwerty123!@#", &["guessable"]),
        ("P@ssw0rd2024!", &["guessable"]),
    ];
    for (password, expected) in table {
        assert_eq!(
            codes(password, &NO_CONTEXT),
            *expected,
            "password {password:?}"
        );
    }
}

#[test]
fn unicode_passwords_count_characters_not_bytes() {
    // 10 characters, 28 bytes: 汉字 are letters, and length is counted in characters.
    let p = "党建平台管理8#好用";
    assert_eq!(p.chars().count(), 10);
    assert_eq!(codes(p, &NO_CONTEXT), Vec::<&str>::new());
    // Nine characters are too few, however many bytes they take.
    assert_eq!(codes("党建平台管理8#好", &NO_CONTEXT), vec!["too_short"]);
}

#[test]
fn full_width_input_is_the_same_password_as_half_width() {
    assert_eq!(normalize("Ｔｚ８＃ｋｑ２！Ｌｍ"), "Tz8#kq2!Lm");
}

#[test]
fn long_passwords_up_to_the_limit_are_accepted_whole() {
    // A varied 256-byte password (a repeated pattern would be guessable).
    let alphabet: Vec<char> = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789#!%&*+?@"
        .chars()
        .collect();
    let long: String = (0..MAX_SECRET_BYTES)
        .map(|i| alphabet[(i * 37 + i / 7) % alphabet.len()])
        .collect();
    assert!(long.len() <= MAX_SECRET_BYTES);
    assert_eq!(codes(&long, &NO_CONTEXT), Vec::<&str>::new());
    let over = format!("{long}7!a#5");
    assert!(over.len() > MAX_SECRET_BYTES);
    assert_eq!(codes(&over, &NO_CONTEXT), vec!["too_long"]);
}

#[test]
fn passwords_containing_the_username_or_unit_are_refused() {
    let ctx = PasswordContext {
        username: Some("zhangwei"),
        display_name: Some("张伟"),
        unit_name: Some("李渡街道党工委"),
        unit_code: Some("LD01"),
    };
    assert!(codes("Zhangwei#2024xq", &ctx).contains(&"contains_context"));
    assert!(codes("李渡街道党工委#2024xq", &ctx).contains(&"contains_context"));
    assert!(codes("x7#Qvld01Tz", &ctx).contains(&"contains_context"));
    // Two-character context words are not looked for.
    let short = PasswordContext {
        unit_code: Some("01"),
        ..NO_CONTEXT
    };
    assert_eq!(codes("Tz8#kq01!Lm", &short), Vec::<&str>::new());
}

#[test]
fn every_reason_has_a_message_in_both_languages() {
    let err = PasswordPolicy::default()
        .check("abc", &NO_CONTEXT)
        .unwrap_err();
    let en = err.message(Lang::En);
    let zh = err.message(Lang::ZhCn);
    assert!(
        en.contains("at least 10 characters") && en.contains("digit") && en.contains("special"),
        "{en}"
    );
    assert!(
        zh.contains("至少为 10 个字符") && zh.contains("数字") && zh.contains("特殊字符"),
        "{zh}"
    );
}

#[test]
fn a_deployment_can_raise_but_not_lower_the_minimum() {
    assert_eq!(PasswordPolicy::with_min_chars(6).min_chars(), 10);
    assert_eq!(PasswordPolicy::with_min_chars(14).min_chars(), 14);
    let strict = PasswordPolicy::with_min_chars(14);
    assert!(strict.check("Tz8#kq2!Lm", &NO_CONTEXT).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_accepted_password_satisfies_every_rule(password in "\\PC{0,40}") {
        if PasswordPolicy::default().check(&password, &NO_CONTEXT).is_ok() {
            let normal = normalize(&password);
            prop_assert!(normal.chars().count() >= 10);
            prop_assert!(normal.chars().any(char::is_alphabetic));
            prop_assert!(normal.chars().any(char::is_numeric));
            prop_assert!(normal.chars().any(|c| !c.is_alphanumeric() && !c.is_control()));
            prop_assert!(!normal.chars().any(char::is_control));
            prop_assert!(password.len() <= MAX_SECRET_BYTES);
        }
    }

    #[test]
    fn passwords_built_to_the_rule_are_accepted_unless_guessable(
        letters in "[a-zA-Z]{6,12}", digits in "[0-9]{2,6}", specials in "[!#%&*+?@^~]{2,4}",
    ) {
        let password = format!("{letters}{specials}{digits}");
        let result = PasswordPolicy::default().check(&password, &NO_CONTEXT);
        if let Err(r) = result {
            prop_assert_eq!(r.codes(), vec!["guessable"]);
        }
    }

    #[test]
    fn every_password_over_the_limit_is_refused_for_length_alone(
        extra in 1usize..4096, unit in "\\PC",
    ) {
        let password = unit.repeat(MAX_SECRET_BYTES / unit.len() + extra);
        prop_assert!(password.len() > MAX_SECRET_BYTES);
        let r = PasswordPolicy::default().check(&password, &NO_CONTEXT).unwrap_err();
        prop_assert_eq!(r.codes(), vec!["too_long"]);
    }

    #[test]
    fn context_words_are_found_whatever_their_case(name in "[a-z]{3,10}", pre in "[0-9]{1,3}") {
        let ctx = PasswordContext { username: Some(&name), ..NO_CONTEXT };
        let password = format!("{pre}#{}!Qx", name.to_uppercase());
        prop_assert!(codes(&password, &ctx).contains(&"contains_context"));
    }
}

#[test]
fn a_ten_megabyte_password_is_refused_without_being_read() {
    // Matching 10 MB with zxcvbn would take minutes; the byte limit answers at once.
    let huge = "a1!".repeat(3_500_000);
    assert_eq!(codes(&huge, &NO_CONTEXT), vec!["too_long"]);
}
