//! SoftHSM2: PKCS#11 without PC/SC — listing, slow-poll hotplug, keys, signatures, PINs, URIs.

use crate::support::*;
use ring::signature::{self, UnparsedPublicKey};
use std::time::Duration;
use ukey_testkit::{SoftToken, TestPki};
use ukeyd::token::{
    KeySpec, LimitSource, LoginOptions, PinChangeReason, Pkcs11Uri, SignAlgorithm, TokenError,
    TokenState,
};

#[test]
fn a_soft_token_is_listed_by_serial_with_its_flags_and_the_pin_limits_its_module_reports() {
    let token = SoftToken::new("listed");
    token.with_env(|| {
        let manager = soft_manager();
        let status = manager
            .token(&serial(token.serial()))
            .expect("listed by serial");
        assert_eq!(status.label, "listed");
        assert_eq!(status.state, TokenState::Present);
        assert!(status.flags.token_initialized && status.flags.user_pin_initialized);
        assert!(status.flags.login_required);
        assert_eq!(status.pin.source, LimitSource::Module);
        assert_eq!(status.insertion, 1);
        assert!(status.reader.is_none(), "SoftHSM needs no reader");
    });
}

#[test]
fn a_token_added_or_removed_while_running_is_seen_after_the_slow_poll() {
    let token = SoftToken::new("first");
    token.with_env(|| {
        let manager = soft_manager();
        let mut events = manager.subscribe();
        let second = serial(&token.add_token("second"));
        wait(
            &manager,
            "second token present",
            Duration::from_secs(5),
            |t| {
                t.get(&second)
                    .is_some_and(|s| s.state == TokenState::Present)
            },
        );
        token.remove_token(second.as_str());
        wait(
            &manager,
            "second token absent",
            Duration::from_secs(5),
            |t| {
                t.get(&second)
                    .is_some_and(|s| s.state == TokenState::Absent)
            },
        );
        let seen: Vec<TokenState> = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|e| e.serial == second)
            .map(|e| e.state)
            .collect();
        assert_eq!(seen, vec![TokenState::Present, TokenState::Absent]);
        assert_eq!(
            manager
                .login(&second, secret("123456"), LoginOptions::default())
                .unwrap_err()
                .code(),
            "token_absent"
        );
    });
}

#[test]
fn keys_generated_on_the_token_sign_with_every_algorithm_they_offer_and_the_signatures_verify() {
    let token = SoftToken::new("sign");
    token.with_env(|| {
        let manager = soft_manager();
        let s = serial(token.serial());
        manager
            .login(&s, secret(token.user_pin()), LoginOptions::default())
            .unwrap();
        manager
            .generate_key_pair(&s, KeySpec::EcP256, &[1], "ec")
            .unwrap();
        manager
            .generate_key_pair(&s, KeySpec::Rsa2048, &[2], "rsa")
            .unwrap();

        let ec = manager.key(&s, &[1]).unwrap();
        assert_eq!(ec.algorithms(), &[SignAlgorithm::EcdsaP256Sha256]);
        let sig = ec.sign(SignAlgorithm::EcdsaP256Sha256, b"message").unwrap();
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &ec.public_key().raw)
            .verify(b"message", &sig)
            .expect("DER ECDSA verifies");

        let rsa = manager.key(&s, &[2]).unwrap();
        let checks: [(SignAlgorithm, &dyn signature::VerificationAlgorithm); 4] = [
            (
                SignAlgorithm::RsaPssSha256,
                &signature::RSA_PSS_2048_8192_SHA256,
            ),
            (
                SignAlgorithm::RsaPssSha512,
                &signature::RSA_PSS_2048_8192_SHA512,
            ),
            (
                SignAlgorithm::RsaPkcs1Sha256,
                &signature::RSA_PKCS1_2048_8192_SHA256,
            ),
            (
                SignAlgorithm::RsaPkcs1Sha384,
                &signature::RSA_PKCS1_2048_8192_SHA384,
            ),
        ];
        for (alg, verify) in checks {
            assert!(rsa.algorithms().contains(&alg), "{alg:?} offered");
            let sig = rsa.sign(alg, b"message").unwrap();
            UnparsedPublicKey::new(verify, &rsa.public_key().raw)
                .verify(b"message", &sig)
                .unwrap_or_else(|_| panic!("{alg:?} verifies"));
        }
        let wrong = ec.sign(SignAlgorithm::RsaPssSha256, b"m").unwrap_err();
        assert_eq!(wrong.code(), "mechanism_unsupported");
    });
}

#[test]
fn a_csr_built_on_the_token_key_verifies_and_the_certificate_written_back_is_read_and_parsed() {
    let token = SoftToken::new("csr");
    let pki = TestPki::new();
    token.with_env(|| {
        let manager = soft_manager();
        let key = provision_soft(&manager, &token, KeySpec::EcP256, &pki);
        let csr = rcgen::CertificateParams::new(Vec::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_der(csr.der())
            .expect("the CSR's signature, made on the token, verifies");
        assert_eq!(
            rcgen::PublicKeyData::der_bytes(&parsed.public_key),
            key.public_key().raw.as_slice()
        );

        let cert = key.certificate().expect("certificate read back");
        let details = cert.details.as_ref().unwrap();
        assert_eq!(details.unit.as_ref().unwrap().as_str(), "01");
        assert_eq!(details.token.as_ref().unwrap().as_str(), token.serial());
        assert!(details.valid_at(time::OffsetDateTime::now_utc()));
        assert_eq!(
            details.public_key.as_ref().unwrap().spki_sha256,
            key.public_key().spki_sha256
        );
    });
}

#[test]
fn pin_change_to_a_factory_or_short_pin_is_refused_with_the_policys_reasons_and_a_good_one_works() {
    let token = SoftToken::new("pins");
    token.with_env(|| {
        let manager = soft_manager();
        let s = serial(token.serial());
        let outcome = manager
            .login(&s, secret("123456"), LoginOptions::default())
            .unwrap();
        assert_eq!(
            outcome.pin_change_required,
            Some(PinChangeReason::FactoryPin)
        );

        for (bad, expected) in [
            (
                "654321",
                vec![
                    "too_short",
                    "missing_letter",
                    "missing_special",
                    "factory_or_trivial",
                ],
            ),
            ("Ab1!", vec!["too_short"]),
        ] {
            match manager.change_pin(&s, secret("123456"), secret(bad), LoginOptions::default()) {
                Err(TokenError::PinPolicy { rejection, .. }) => {
                    for code in expected {
                        assert!(
                            rejection.codes().contains(&code),
                            "{bad}: {:?}",
                            rejection.codes()
                        );
                    }
                }
                other => panic!("{bad} accepted or wrong error: {other:?}"),
            }
        }
        let good = "Tz8#kq2!Lm";
        manager
            .change_pin(&s, secret("123456"), secret(good), LoginOptions::default())
            .unwrap();
        manager.logout(&s).unwrap();
        let outcome = manager
            .login(&s, secret(good), LoginOptions::default())
            .unwrap();
        assert_eq!(outcome.pin_change_required, None);
        manager.logout(&s).unwrap();
        assert!(matches!(
            manager.login(&s, secret("123456"), LoginOptions::default()),
            Err(TokenError::PinIncorrect { .. })
        ));
    });
}

#[test]
fn the_security_officer_sets_a_user_pin_that_passes_the_policy() {
    let token = SoftToken::new("so");
    token.with_env(|| {
        let manager = soft_manager();
        let s = serial(token.serial());
        let refused = manager
            .init_user_pin(&s, secret(token.so_pin()), secret("111111"))
            .unwrap_err();
        assert_eq!(refused.code(), "pin_policy");
        manager
            .init_user_pin(&s, secret(token.so_pin()), secret("Tz8#kq2!Lm"))
            .unwrap();
        manager
            .login(&s, secret("Tz8#kq2!Lm"), LoginOptions::default())
            .unwrap();
        assert_eq!(state_of(&manager, &s), Some(TokenState::LoggedIn));
    });
}

#[test]
fn a_key_is_selected_by_pkcs11_uri_and_signing_needs_a_login() {
    let token = SoftToken::new("uri label");
    let pki = TestPki::new();
    token.with_env(|| {
        let manager = soft_manager();
        let key = provision_soft(&manager, &token, KeySpec::EcP256, &pki);
        let by_serial: Pkcs11Uri = format!("pkcs11:serial={};id=%01", token.serial())
            .parse()
            .unwrap();
        assert_eq!(manager.find_key(&by_serial).unwrap().id(), key.id());
        let by_labels: Pkcs11Uri = "pkcs11:token=uri%20label;object=ukey;type=private"
            .parse()
            .unwrap();
        assert_eq!(manager.find_key(&by_labels).unwrap().serial(), key.serial());
        let missing: Pkcs11Uri = format!("pkcs11:serial={};id=%02", token.serial())
            .parse()
            .unwrap();
        assert_eq!(
            manager.find_key(&missing).unwrap_err().code(),
            "key_not_found"
        );
        let nowhere: Pkcs11Uri = "pkcs11:serial=nosuch".parse().unwrap();
        assert_eq!(
            manager.find_key(&nowhere).unwrap_err().code(),
            "no_matching_token"
        );

        manager.logout(key.serial()).unwrap();
        assert_eq!(state_of(&manager, key.serial()), Some(TokenState::Present));
        let refused = key.sign(SignAlgorithm::EcdsaP256Sha256, b"m").unwrap_err();
        assert_eq!(refused.code(), "not_logged_in");
        assert_eq!(
            manager.find_key(&by_serial).unwrap_err().code(),
            "not_logged_in"
        );
    });
}
