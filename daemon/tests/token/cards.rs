//! Virtual PIV cards over a private pcscd: the real PC/SC path with hotplug, pcscd restarts,
//! several cards, PIN retry counters and lockout.

use crate::support::*;
use std::time::{Duration, Instant};
use ukey_testkit::{TestPki, VirtualCards};
use ukeyd::token::{
    KeySpec, LimitSource, LoginOptions, PcscChange, PinRetries, SignAlgorithm, TokenError,
    TokenState,
};

#[test]
fn an_unplugged_card_is_absent_within_a_second_and_signs_again_after_plug_and_login() {
    let Some(cards) = VirtualCards::up(1) else {
        return;
    };
    let pki = TestPki::new();
    cards.with_env(|| {
        let manager = cards_manager();
        let s = present_serials(&manager).pop().expect("the card is listed");
        let status = manager.token(&s).unwrap();
        assert_eq!(
            status
                .reader
                .as_deref()
                .map(|r| r.starts_with(&cards.reader_name(0))),
            Some(true)
        );
        let key = provision_card(&manager, &s, KeySpec::EcP256, &pki);
        key.sign(SignAlgorithm::EcdsaP256Sha256, b"before").unwrap();
        let mut pcsc = manager.subscribe_pcsc();
        let mut events = manager.subscribe();

        cards.unplug(0);
        // `unplug` returns once PC/SC reports the card gone: that is the event we time from.
        let unplugged = Instant::now();
        wait(&manager, "card absent", Duration::from_secs(1), |t| {
            t.get(&s).is_some_and(|x| x.state == TokenState::Absent)
        });
        let removed = std::iter::from_fn(|| pcsc.try_recv().ok())
            .find(|e| matches!(e.change, PcscChange::CardRemoved { .. }))
            .expect("a CardRemoved event");
        let absent = std::iter::from_fn(|| events.try_recv().ok())
            .find(|e| e.serial == s && e.state == TokenState::Absent)
            .expect("an Absent event");
        assert!(
            absent.at >= removed.at
                && absent.at.duration_since(removed.at) < Duration::from_secs(1)
        );
        assert!(unplugged.elapsed() < Duration::from_secs(1));
        let gone = key
            .sign(SignAlgorithm::EcdsaP256Sha256, b"while out")
            .unwrap_err();
        assert_eq!(gone.code(), "token_absent");

        cards.plug(0);
        let table = wait(
            &manager,
            "card present again",
            Duration::from_secs(5),
            |t| t.get(&s).is_some_and(|x| x.state == TokenState::Present),
        );
        assert_eq!(table.get(&s).unwrap().insertion, 2);
        assert_eq!(
            key.sign(SignAlgorithm::EcdsaP256Sha256, b"m")
                .unwrap_err()
                .code(),
            "not_logged_in"
        );
        manager
            .login(
                &s,
                secret(VirtualCards::FACTORY_PIN),
                LoginOptions::default(),
            )
            .unwrap();
        let sig = key.sign(SignAlgorithm::EcdsaP256Sha256, b"after").unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &key.public_key().raw,
        )
        .verify(b"after", &sig)
        .expect("the same key signs after reinsertion");
    });
}

#[test]
fn after_a_pcscd_restart_the_same_cards_come_back_and_sign_with_the_same_keys_after_a_new_login() {
    let Some(cards) = VirtualCards::up(1) else {
        return;
    };
    let pki = TestPki::new();
    cards.with_env(|| {
        let manager = cards_manager();
        let s = present_serials(&manager).pop().expect("the card is listed");
        let key = provision_card(&manager, &s, KeySpec::EcP256, &pki);
        let mut pcsc = manager.subscribe_pcsc();

        cards.restart();
        wait(
            &manager,
            "card present after the restart",
            Duration::from_secs(10),
            |t| t.get(&s).is_some_and(|x| x.state == TokenState::Present),
        );
        let changes: Vec<PcscChange> = std::iter::from_fn(|| pcsc.try_recv().ok())
            .map(|e| e.change)
            .collect();
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, PcscChange::ServiceLost { .. })),
            "{changes:?}"
        );
        assert!(
            changes.iter().any(|c| matches!(c, PcscChange::ServiceUp)),
            "{changes:?}"
        );
        assert_eq!(present_serials(&manager), vec![s.clone()]);

        manager
            .login(
                &s,
                secret(VirtualCards::FACTORY_PIN),
                LoginOptions::default(),
            )
            .unwrap();
        let again = manager.key(&s, KEY_ID).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let sig = again
            .sign(SignAlgorithm::EcdsaP256Sha256, b"after restart")
            .unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &key.public_key().raw,
        )
        .verify(b"after restart", &sig)
        .expect("the same key signs after the restart");
    });
}

#[test]
fn two_cards_are_logged_in_and_sign_independently() {
    let Some(cards) = VirtualCards::up(2) else {
        return;
    };
    let pki = TestPki::new();
    cards.with_env(|| {
        let manager = cards_manager();
        let serials = present_serials(&manager);
        assert_eq!(serials.len(), 2, "{:#?}", manager.tokens());
        let keys: Vec<_> = serials
            .iter()
            .map(|s| provision_card(&manager, s, KeySpec::EcP256, &pki))
            .collect();
        assert_ne!(keys[0].public_key(), keys[1].public_key());
        let threads: Vec<_> = keys
            .iter()
            .cloned()
            .map(|key| {
                std::thread::spawn(move || {
                    for i in 0..20u8 {
                        let sig = key.sign(SignAlgorithm::EcdsaP256Sha256, &[i]).unwrap();
                        ring::signature::UnparsedPublicKey::new(
                            &ring::signature::ECDSA_P256_SHA256_ASN1,
                            &key.public_key().raw,
                        )
                        .verify(&[i], &sig)
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Logging one out leaves the other signing.
        manager.logout(&serials[0]).unwrap();
        assert_eq!(
            keys[0]
                .sign(SignAlgorithm::EcdsaP256Sha256, b"m")
                .unwrap_err()
                .code(),
            "not_logged_in"
        );
        keys[1].sign(SignAlgorithm::EcdsaP256Sha256, b"m").unwrap();
        assert_eq!(state_of(&manager, &serials[1]), Some(TokenState::LoggedIn));
    });
}

#[test]
fn wrong_pins_report_retries_the_final_try_is_refused_unless_forced_and_a_locked_card_names_the_remedy()
 {
    let Some(cards) = VirtualCards::up(1) else {
        return;
    };
    cards.with_env(|| {
        let manager = cards_manager();
        let s = present_serials(&manager).pop().expect("the card is listed");
        let wrong = || secret("99999999");
        let login = |pin, force| {
            manager.login(
                &s,
                pin,
                LoginOptions {
                    force_final_try: force,
                },
            )
        };
        match login(wrong(), false) {
            Err(TokenError::PinIncorrect { retries, .. }) => assert_eq!(retries, PinRetries::Low),
            other => panic!("{other:?}"),
        }
        match login(wrong(), false) {
            Err(TokenError::PinIncorrect { retries, .. }) => {
                assert_eq!(retries, PinRetries::FinalTry)
            }
            other => panic!("{other:?}"),
        }
        assert!(manager.token(&s).unwrap().flags.user_pin_final_try);
        // At the final try even the right PIN is not tried without insisting.
        let refused = login(secret(VirtualCards::FACTORY_PIN), false).unwrap_err();
        assert!(
            matches!(refused, TokenError::FinalTryRefused { .. }),
            "{refused:?}"
        );
        let locked = login(wrong(), true).unwrap_err();
        assert!(matches!(locked, TokenError::PinLocked { .. }), "{locked:?}");
        assert!(
            locked.to_string().contains("IT staff must unblock it"),
            "{locked}"
        );
        assert_eq!(state_of(&manager, &s), Some(TokenState::Locked));
        // Locked: refused without touching the card, even with the right PIN.
        let still = login(secret(VirtualCards::FACTORY_PIN), true).unwrap_err();
        assert!(matches!(still, TokenError::PinLocked { .. }));

        // IT staff unblock it with the PUK and a PIN that passes the policy.
        let bad_puk = manager
            .unblock_pin(&s, secret("00000000"), secret("k3#Pq9!z"))
            .unwrap_err();
        assert_eq!(bad_puk.code(), "unblock_refused");
        manager
            .unblock_pin(&s, secret(VirtualCards::FACTORY_PUK), secret("k3#Pq9!z"))
            .unwrap();
        assert_eq!(state_of(&manager, &s), Some(TokenState::Present));
        manager
            .login(&s, secret("k3#Pq9!z"), LoginOptions::default())
            .unwrap();
        assert_eq!(manager.token(&s).unwrap().retries, PinRetries::Full);
    });
}

#[test]
fn a_pin_longer_than_the_card_takes_is_refused_naming_the_limit_and_pin_changes_follow_the_policy()
{
    let Some(cards) = VirtualCards::up(1) else {
        return;
    };
    cards.with_env(|| {
        let manager = cards_manager();
        let s = present_serials(&manager).pop().expect("the card is listed");
        let status = manager.token(&s).unwrap();
        assert_eq!(status.pin.reported_max, 48, "ykcs11 claims 48");
        assert_eq!(
            (status.pin.effective.min_len, status.pin.effective.max_len),
            (6, 8)
        );
        assert!(matches!(status.pin.source, LimitSource::KnownModel { .. }));

        let long = manager
            .login(&s, secret("123456789"), LoginOptions::default())
            .unwrap_err();
        match &long {
            TokenError::PinLength { max_len: 8, .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(long.to_string().contains("6 to 8 characters"), "{long}");
        assert_eq!(
            manager.token(&s).unwrap().retries,
            PinRetries::Full,
            "no try spent"
        );

        let factory = secret(VirtualCards::FACTORY_PIN);
        for bad in ["12345678", "k3#Pq9!", "k3#Pq9!zz"] {
            let err = manager
                .change_pin(&s, factory.clone(), secret(bad), LoginOptions::default())
                .unwrap_err();
            assert_eq!(err.code(), "pin_policy", "{bad}: {err}");
        }
        manager
            .change_pin(
                &s,
                factory.clone(),
                secret("k3#Pq9!z"),
                LoginOptions::default(),
            )
            .unwrap();
        let outcome = manager
            .login(&s, secret("k3#Pq9!z"), LoginOptions::default())
            .unwrap();
        assert_eq!(outcome.pin_change_required, None);
    });
}
