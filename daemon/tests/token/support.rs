//! Shared set-up: managers on a SoftHSM token or on virtual cards, and keys with
//! certificates from the test PKI.

use secrecy::SecretString;
use std::time::Duration;
use ukey_proto::{TokenSerial, UnitCode};
use ukey_testkit::{SoftToken, TestPki, VirtualCards};
use ukeyd::token::{
    KeySpec, LoginOptions, Role, TokenConfig, TokenKey, TokenManager, TokenState, TokenTable,
};

pub const KEY_ID: &[u8] = &[0x01];

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

pub fn serial(s: &str) -> TokenSerial {
    TokenSerial::parse(s).unwrap()
}

pub fn unit() -> UnitCode {
    UnitCode::parse("01").unwrap()
}

/// Logs to the test's output with `UKEYD_LOG` (e.g. `UKEYD_LOG=ukeyd=debug`).
pub fn logs() {
    if let Ok(filter) = std::env::var("UKEYD_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A manager on SoftHSM only, polling fast so that added and removed tokens show quickly.
pub fn soft_manager() -> TokenManager {
    logs();
    let mut config = TokenConfig::with_modules([SoftToken::MODULE]);
    config.pcsc = false;
    config.poll_interval = Duration::from_millis(200);
    config.reinit_min_interval = Duration::from_millis(100);
    TokenManager::start(config).unwrap()
}

/// A manager on ykcs11 with PC/SC, as the daemon runs it.
pub fn cards_manager() -> TokenManager {
    logs();
    TokenManager::start(TokenConfig::with_modules([VirtualCards::YKCS11])).unwrap()
}

/// Waits (bounded) for a condition on the token table, failing with the table if it never holds.
pub fn wait(
    manager: &TokenManager,
    what: &str,
    timeout: Duration,
    done: impl Fn(&TokenTable) -> bool,
) -> TokenTable {
    manager
        .wait_until(timeout, done)
        .unwrap_or_else(|| panic!("{what} not reached in {timeout:?}: {:#?}", manager.tokens()))
}

pub fn state_of(manager: &TokenManager, serial: &TokenSerial) -> Option<TokenState> {
    manager.token(serial).map(|t| t.state)
}

/// The serials of the present tokens, in the manager's order.
pub fn present_serials(manager: &TokenManager) -> Vec<TokenSerial> {
    manager
        .tokens()
        .present()
        .map(|t| t.serial.clone())
        .collect()
}

/// Logs in as the user on a SoftHSM token, generates a key there and writes a certificate for
/// it from the test PKI; returns the key with its certificate.
pub fn provision_soft(
    manager: &TokenManager,
    token: &SoftToken,
    spec: KeySpec,
    pki: &TestPki,
) -> TokenKey {
    let serial = serial(token.serial());
    manager
        .login(&serial, secret(token.user_pin()), LoginOptions::default())
        .unwrap();
    let info = manager
        .generate_key_pair(&serial, spec, KEY_ID, "ukey")
        .unwrap();
    assert_eq!(info.local, Some(true), "generated on the token");
    assert_eq!(info.extractable, Some(false));
    let key = manager.key(&serial, KEY_ID).unwrap();
    let cert = pki.token_client_for_key(&unit(), &serial, &key);
    manager
        .write_certificate(&serial, KEY_ID, "ukey", &cert.cert_der)
        .unwrap();
    manager.key(&serial, KEY_ID).unwrap()
}

/// The same on a virtual PIV card: key generation and certificate writing need the SO
/// (management key) on PIV; signing needs the user PIN.
pub fn provision_card(
    manager: &TokenManager,
    serial: &TokenSerial,
    spec: KeySpec,
    pki: &TestPki,
) -> TokenKey {
    let so = || secret(VirtualCards::FACTORY_SO_PIN);
    manager
        .login_as(serial, Role::SecurityOfficer, so(), LoginOptions::default())
        .unwrap();
    let info = manager
        .generate_key_pair(serial, spec, KEY_ID, "ukey")
        .unwrap();
    assert_eq!(info.local, Some(true), "generated on the card");
    let public = manager.objects(serial).unwrap();
    let key_info = public.keys.iter().find(|k| k.id == KEY_ID).unwrap();
    assert!(key_info.public_key.is_some(), "{key_info:?}");
    manager
        .login(
            serial,
            secret(VirtualCards::FACTORY_PIN),
            LoginOptions::default(),
        )
        .unwrap();
    let key = manager.key(serial, KEY_ID).unwrap();
    let cert = pki.token_client_for_key(&unit(), serial, &key);
    manager
        .login_as(serial, Role::SecurityOfficer, so(), LoginOptions::default())
        .unwrap();
    manager
        .write_certificate(serial, KEY_ID, "ukey", &cert.cert_der)
        .unwrap();
    manager
        .login(
            serial,
            secret(VirtualCards::FACTORY_PIN),
            LoginOptions::default(),
        )
        .unwrap();
    manager.key(serial, KEY_ID).unwrap()
}
