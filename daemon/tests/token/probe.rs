//! `ukeyd probe` as a black box.

use std::process::Command;
use ukey_testkit::{SoftToken, VirtualCards};

fn probe(envs: Vec<(&'static str, std::ffi::OsString)>, module: &str, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ukeyd"));
    cmd.args(["probe", "--module", module]).envs(envs);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn probe_json_lists_the_serial_and_flags_of_each_virtual_card() {
    let Some(cards) = VirtualCards::up(2) else {
        return;
    };
    let json: serde_json::Value =
        serde_json::from_str(&probe(cards.env(), VirtualCards::YKCS11, true)).unwrap();
    assert_eq!(json["pcsc"]["service"], "up");
    let tokens = json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{json:#}");
    for t in tokens {
        assert!(t["serial"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(t["reader"].as_str().unwrap().contains("jcecard"));
        assert_eq!(t["state"]["state"], "present");
        assert_eq!(t["flags"]["user_pin_locked"], false);
        assert_eq!(t["flags"]["login_required"], true);
        assert_eq!(t["retries"], "full");
        assert_eq!(t["pin"]["effective"]["max_len"], 8);
        assert_eq!(t["pin"]["reported_max"], 48);
    }
    assert_ne!(tokens[0]["serial"], tokens[1]["serial"]);
}

#[test]
fn probe_text_shows_a_soft_token_without_pcsc_and_a_broken_module_is_reported_not_fatal() {
    let token = SoftToken::new("probed");
    let mut envs = token.env();
    envs.push(("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm".into()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ukeyd"));
    cmd.args([
        "probe",
        "--module",
        SoftToken::MODULE,
        "--module",
        "/nonexistent/libnothing.so",
    ])
    .envs(envs);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("PC/SC: not available"), "{text}");
    assert!(
        text.contains(&format!("token {} \"probed\"", token.serial())),
        "{text}"
    );
    assert!(text.contains("/nonexistent/libnothing.so: ERROR"), "{text}");
    let _ = probe(token.env(), SoftToken::MODULE, false);
}
