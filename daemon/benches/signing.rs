//! Signatures per second through the token signer (what rustls calls in a handshake: the
//! module's owner thread, the state check, host hashing, DER conversion, the counter) against
//! raw cryptoki doing the same work (host hash, `C_Sign`, DER conversion) on the caller's own
//! session, on SoftHSM (target: at most 5% overhead) and on the virtual PIV card.
//!
//! Run with `make bench` (or `cargo bench -p ukeyd --bench signing`). Rounds of the two paths
//! alternate; each figure is the best round (the least disturbed by other load: the signer
//! needs two free cores, raw cryptoki one). `UKEY_BENCH_ROUND_MS` sets the round length.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{Session, UserType};
use rustls::SignatureScheme;
use rustls::sign::SigningKey;
use secrecy::SecretString;
use std::path::Path;
use std::time::{Duration, Instant};
use ukey_proto::TokenSerial;
use ukey_testkit::{SoftToken, VirtualCards};
use ukeyd::token::{
    KeySpec, LoginOptions, Role, SignAlgorithm, TokenConfig, TokenManager, TokenSigningKey,
    ecdsa_raw_to_der,
};

const ROUNDS: usize = 7;

fn round_time() -> Duration {
    let ms = std::env::var("UKEY_BENCH_ROUND_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    Duration::from_millis(ms)
}

/// A TLS 1.3 CertificateVerify input: 64 spaces, the context string, a zero, a transcript hash.
fn message(i: u64) -> Vec<u8> {
    let mut m = vec![b' '; 64];
    m.extend_from_slice(b"TLS 1.3, client CertificateVerify\0");
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&i.to_le_bytes());
    m.extend_from_slice(&hash);
    m
}

/// Signatures per second of `sign` over one round.
fn rate(mut sign: impl FnMut(u64)) -> f64 {
    let round = round_time();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < round {
        sign(n);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(0.0, f64::max)
}

fn raw_session(module: &Path, serial: &str, pin: &str) -> (Pkcs11, Session) {
    let ctx = Pkcs11::new(module).unwrap();
    // The manager has initialised the library already in this process: that is fine.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().serial_number().trim() == serial)
        .expect("token by serial");
    let session = ctx.open_rw_session(slot).unwrap();
    // Login state is per application: already logged in through the manager is normal.
    let _ = session.login(UserType::User, Some(&SecretString::from(pin.to_owned())));
    (ctx, session)
}

struct Case {
    name: &'static str,
    scheme: SignatureScheme,
    key_id: u8,
}

fn compare(
    case: &Case,
    manager: &TokenManager,
    serial: &TokenSerial,
    session: &Session,
) -> (f64, f64) {
    let key = manager.key(serial, &[case.key_id]).unwrap();
    let signing = TokenSigningKey::new(key);
    let signer = signing
        .choose_scheme(&[case.scheme])
        .expect("scheme offered");
    let handle = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![case.key_id]),
        ])
        .unwrap()[0];
    let algorithm = SignAlgorithm::from_tls_scheme(case.scheme).unwrap();
    let raw_sign = |i: u64| {
        let m = message(i);
        match algorithm {
            SignAlgorithm::EcdsaP256Sha256 => {
                let digest = ring::digest::digest(&ring::digest::SHA256, &m);
                let sig = session
                    .sign(&Mechanism::Ecdsa, handle, digest.as_ref())
                    .unwrap();
                std::hint::black_box(ecdsa_raw_to_der(&sig, 32).unwrap());
            }
            SignAlgorithm::RsaPssSha256 => {
                let digest = ring::digest::digest(&ring::digest::SHA256, &m);
                let pss = Mechanism::RsaPkcsPss(cryptoki::mechanism::rsa::PkcsPssParams {
                    hash_alg: cryptoki::mechanism::MechanismType::SHA256,
                    mgf: cryptoki::mechanism::rsa::PkcsMgfType::MGF1_SHA256,
                    s_len: 32u64.into(),
                });
                std::hint::black_box(session.sign(&pss, handle, digest.as_ref()).unwrap());
            }
            other => panic!("no raw path for {other:?}"),
        }
    };
    let signer_sign = |i: u64| {
        std::hint::black_box(signer.sign(&message(i)).unwrap());
    };
    // Warm both paths up.
    for i in 0..50 {
        raw_sign(i);
        signer_sign(i);
    }
    let mut raw = Vec::new();
    let mut through = Vec::new();
    for _ in 0..ROUNDS {
        raw.push(rate(raw_sign));
        through.push(rate(signer_sign));
    }
    let counted = signing.metrics().signatures();
    assert!(counted > 0, "the signer counts its signatures");
    (best(raw), best(through))
}

fn report(token: &str, case: &Case, raw: f64, through: f64, target: Option<f64>) {
    let overhead = (1.0 - through / raw) * 100.0;
    let per_call_us = (1.0 / through - 1.0 / raw) * 1e6;
    let verdict = match target {
        Some(t) if overhead <= t => format!("  (target <= {t}%: met)"),
        Some(t) => format!("  (target <= {t}%: NOT met)"),
        None => String::new(),
    };
    println!(
        "{token:<12} {:<12} raw cryptoki {raw:>8.0}/s   signer {through:>8.0}/s   overhead {overhead:>5.1}% ({per_call_us:>5.1} us/signature){verdict}",
        case.name
    );
}

fn softhsm() {
    let token = SoftToken::new("bench");
    token.with_env(|| {
        let mut config = TokenConfig::with_modules([SoftToken::MODULE]);
        config.pcsc = false;
        config.poll_interval = Duration::from_secs(3600);
        let manager = TokenManager::start(config).unwrap();
        let serial = TokenSerial::parse(token.serial()).unwrap();
        let pin = SecretString::from(token.user_pin().to_owned());
        manager
            .login(&serial, pin, LoginOptions::default())
            .unwrap();
        manager
            .generate_key_pair(&serial, KeySpec::EcP256, &[1], "ec")
            .unwrap();
        manager
            .generate_key_pair(&serial, KeySpec::Rsa2048, &[2], "rsa")
            .unwrap();
        let (_ctx, session) =
            raw_session(SoftToken::MODULE.as_ref(), token.serial(), token.user_pin());
        for case in [
            Case {
                name: "EC P-256",
                scheme: SignatureScheme::ECDSA_NISTP256_SHA256,
                key_id: 1,
            },
            Case {
                name: "RSA-2048 PSS",
                scheme: SignatureScheme::RSA_PSS_SHA256,
                key_id: 2,
            },
        ] {
            let (raw, through) = compare(&case, &manager, &serial, &session);
            report("SoftHSM", &case, raw, through, Some(5.0));
        }
    });
}

fn virtual_card() {
    let Some(cards) = VirtualCards::up(1) else {
        println!("virtual PIV card: skipped (see above)");
        return;
    };
    cards.with_env(|| {
        let manager =
            TokenManager::start(TokenConfig::with_modules([VirtualCards::YKCS11])).unwrap();
        let serial = manager
            .tokens()
            .present()
            .next()
            .expect("the card")
            .serial
            .clone();
        let secret = |s: &str| SecretString::from(s.to_owned());
        manager
            .login_as(
                &serial,
                Role::SecurityOfficer,
                secret(VirtualCards::FACTORY_SO_PIN),
                LoginOptions::default(),
            )
            .unwrap();
        manager
            .generate_key_pair(&serial, KeySpec::EcP256, &[1], "ec")
            .unwrap();
        manager
            .login(
                &serial,
                secret(VirtualCards::FACTORY_PIN),
                LoginOptions::default(),
            )
            .unwrap();
        let (_ctx, session) = raw_session(
            VirtualCards::YKCS11.as_ref(),
            serial.as_str(),
            VirtualCards::FACTORY_PIN,
        );
        let case = Case {
            name: "EC P-256",
            scheme: SignatureScheme::ECDSA_NISTP256_SHA256,
            key_id: 1,
        };
        let (raw, through) = compare(&case, &manager, &serial, &session);
        report("virtual PIV", &case, raw, through, None);
    });
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: run either way.
    println!(
        "token signing: signatures/s, best of {ROUNDS} alternating rounds of {:?} per path",
        round_time()
    );
    softhsm();
    virtual_card();
}
