//! Each harness component proved against the real thing it stands for.

// Helpers in an integration-test crate fail the test by panicking, like the tests themselves.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use std::process::Command;
use std::time::{Duration, Instant};
use ukey_testkit::{SoftToken, TestPki, TestPostgres, VirtualCards};

/// P-256 as the DER-encoded OID that CKA_EC_PARAMS takes.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

#[test]
fn a_soft_token_generates_a_p256_key_and_signs_through_cryptoki() {
    let token = SoftToken::new("harness");
    token.with_env(|| {
        let pkcs11 = Pkcs11::new(token.module()).unwrap();
        pkcs11
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = pkcs11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| pkcs11.get_token_info(*s).unwrap().serial_number().trim() == token.serial())
            .expect("the token is listed by its serial");
        let session = pkcs11.open_rw_session(slot).unwrap();
        session
            .login(UserType::User, Some(&AuthPin::new(token.user_pin().into())))
            .unwrap();
        let (public, private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::EcParams(P256_OID.to_vec()),
                    Attribute::Token(true),
                    Attribute::Verify(true),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Sign(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                ],
            )
            .unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, b"hello token");
        let signature = session
            .sign(&Mechanism::Ecdsa, private, digest.as_ref())
            .unwrap();
        assert_eq!(signature.len(), 64, "raw r||s for P-256");

        // Verify outside the token with ring, from the EC point the token exports.
        let point = match session
            .get_attributes(public, &[cryptoki::object::AttributeType::EcPoint])
            .unwrap()
            .pop()
        {
            Some(Attribute::EcPoint(p)) => p,
            other => panic!("no EC point: {other:?}"),
        };
        // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point.
        let raw = &point[point.len() - 65..];
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, raw)
            .verify(b"hello token", &signature)
            .expect("the token's signature verifies");

        let keys = session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap();
        assert_eq!(keys.len(), 1);
    });
}

#[test]
fn soft_tokens_are_private_to_their_owner_and_removed_on_drop() {
    let a = SoftToken::new("a");
    let b = SoftToken::new("b");
    assert_ne!(a.conf(), b.conf());
    let dir = a.dir().to_path_buf();
    let second = a.add_token("a2");
    assert_ne!(second, a.serial());
    drop(a);
    assert!(!dir.exists());
}

#[test]
fn two_virtual_cards_are_seen_over_pcsc_and_unplug_and_plug_are_state_changes() {
    let Some(cards) = VirtualCards::up(2) else {
        return;
    };
    cards.with_env(|| {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
        let mut buf = [0u8; 4096];
        let readers: Vec<String> = ctx
            .list_readers(&mut buf)
            .unwrap()
            .map(|r| r.to_string_lossy().into_owned())
            .collect();
        let ours: Vec<&String> = readers.iter().filter(|r| r.contains("jcecard")).collect();
        assert_eq!(ours.len(), 2, "readers: {readers:?}");

        // Reader order is pcscd's, not card order: find card 1's reader by name.
        let name = ours
            .iter()
            .find(|r| r.starts_with(&format!("{} ", cards.reader_name(1))))
            .expect("card 1's reader");
        let reader = std::ffi::CString::new(name.as_str()).unwrap();
        let mut states = vec![pcsc::ReaderState::new(reader.clone(), pcsc::State::UNAWARE)];
        ctx.get_status_change(Duration::from_secs(1), &mut states)
            .unwrap();
        assert!(states[0].event_state().contains(pcsc::State::PRESENT));
        states[0].sync_current_state();

        cards.unplug(1);
        let removed = wait_for_change(&ctx, &mut states);
        assert!(
            removed.contains(pcsc::State::EMPTY),
            "after unplug: {removed:?}"
        );

        cards.plug(1);
        let inserted = wait_for_change(&ctx, &mut states);
        assert!(
            inserted.contains(pcsc::State::PRESENT),
            "after plug: {inserted:?}"
        );
    });
}

fn wait_for_change(ctx: &pcsc::Context, states: &mut [pcsc::ReaderState]) -> pcsc::State {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match ctx.get_status_change(Duration::from_millis(500), states) {
            Ok(()) if states[0].event_state().contains(pcsc::State::CHANGED) => {
                let state = states[0].event_state();
                states[0].sync_current_state();
                return state;
            }
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => panic!("get_status_change: {e}"),
        }
    }
    panic!("no PC/SC state change within 3 s")
}

#[test]
fn virtual_cards_keep_their_serial_across_a_pcscd_restart() {
    let Some(cards) = VirtualCards::up(1) else {
        return;
    };
    let before = cards.status();
    let serial_line = |s: &str| {
        s.lines()
            .find(|l| l.contains("serial num"))
            .map(str::to_owned)
    };
    let serial = serial_line(&before).expect("a token serial in vtoken status");
    cards.restart();
    assert_eq!(serial_line(&cards.status()), Some(serial));
}

#[tokio::test]
async fn test_postgres_answers_select_1() {
    let pg = TestPostgres::start();
    let db = pg.create_database();
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn two_test_databases_are_separate() {
    let pg = TestPostgres::start();
    let first = pg.create_database();
    let second = pg.create_database();
    assert_ne!(first.name(), second.name());
    let a = sqlx::PgPool::connect(first.url()).await.unwrap();
    let b = sqlx::PgPool::connect(second.url()).await.unwrap();
    sqlx::query("create table marker (x int)")
        .execute(&a)
        .await
        .unwrap();
    let in_b: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_name = 'marker'",
    )
    .fetch_one(&b)
    .await
    .unwrap();
    assert_eq!(in_b, 0);
}

#[test]
fn the_test_pki_issues_certificates_openssl_verifies() {
    let pki = TestPki::new();
    let verify = |path: &std::path::Path| {
        Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(pki.ca_path())
            .arg(path)
            .output()
            .unwrap()
    };
    assert!(verify(&pki.server().cert_path).status.success());
    let client = pki.token_client(&"01".parse().unwrap(), &"abc123".parse().unwrap());
    let out = verify(&client.cert_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
        ])
        .arg(&client.cert_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("URI:urn:ukey:unit:01") && text.contains("TLS Web Client Authentication"),
        "{text}"
    );
    let (_, stranger) = TestPki::untrusted_client();
    assert!(!verify(&stranger.cert_path).status.success());
}
