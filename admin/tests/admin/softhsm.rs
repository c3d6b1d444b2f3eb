//! A key that never leaves a SoftHSM token logs in through an independent client (curl with
//! OpenSSL's PKCS#11 engine), against the real `ukey-admin serve`, with a certificate issued by
//! the installation's CA from a CSR signed on the token.

use crate::support::Installation;
use std::process::Command;
use ukey_testkit::{SoftToken, unavailable};

const ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_key_on_a_softhsm_token_logs_in_through_curl_with_the_pkcs11_engine() {
    if !std::path::Path::new(ENGINE).exists() {
        return unavailable::<()>("libengine-pkcs11-openssl is not installed").unwrap_or(());
    }
    let inst = Installation::sqlite();
    inst.ok(&["units", "add", "--code", "FL", "--name", "涪陵区委"]);
    inst.ok(&[
        "units",
        "add",
        "--code",
        "01",
        "--name",
        "李渡街道党工委",
        "--parent",
        "FL",
    ]);
    let token = SoftToken::new("ukey");
    let with_token = |cmd: &mut Command| {
        cmd.envs(token.env())
            .env("PKCS11_MODULE_PATH", token.module());
    };
    let mut keygen = Command::new("pkcs11-tool");
    keygen
        .arg("--module")
        .arg(token.module())
        .args([
            "--token-label",
            "ukey",
            "--login",
            "--pin",
            token.user_pin(),
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
            "--label",
            "ukey",
        ]);
    with_token(&mut keygen);
    run(&mut keygen);
    let key_uri = format!(
        "pkcs11:serial={};id=%01;type=private;pin-value={}",
        token.serial(),
        token.user_pin()
    );
    let csr = inst.dir.path().join("token.csr");
    let mut req = Command::new("openssl");
    req.args([
        "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", &key_uri,
    ])
    .args(["-subj", "/CN=csr", "-out"])
    .arg(&csr);
    with_token(&mut req);
    run(&mut req);

    let profile = ukey_certs::TokenProfile::new(
        crate::support::code("01"),
        "李渡街道党工委",
        crate::support::serial(token.serial()),
    );
    let issued = inst
        .ca()
        .issue_token(
            &std::fs::read(&csr).unwrap(),
            &profile,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let cert = inst.dir.path().join("token.pem");
    std::fs::write(&cert, &issued.pem).unwrap();
    inst.ok(&[
        "tokens",
        "register",
        "--serial",
        token.serial(),
        "--cert",
        cert.to_str().unwrap(),
        "--unit",
        "01",
        "--model",
        "SoftHSM v2",
    ]);

    let (mut server, addr) = inst.serve();
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--engine",
        "pkcs11",
        "--key-type",
        "ENG",
        "--key",
        &key_uri,
        "--cert",
    ])
    .arg(&cert)
    .arg("--cacert")
    .arg(inst.data().join("ca/root-ca.pem"))
    .args([
        "-X",
        "POST",
        "-H",
        "x-ukey-client: curl",
        "-w",
        "\n%{http_code}",
    ])
    .arg(format!("https://127.0.0.1:{}/api/v1/sessions", addr.port()));
    with_token(&mut curl);
    let out = run(&mut curl);
    let _ = server.kill();
    let _ = server.wait();
    let (body, status) = out.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(status, "201", "{body}");
    let info: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(info["token_serial"], token.serial());
    assert_eq!(info["unit"]["code"], "01");

    let month = ukey_admin::domain::Month::containing(time::OffsetDateTime::now_utc()).to_string();
    let logins = inst.ok(&[
        "logins", "export", "--month", &month, "--unit", "FL", "--format", "csv",
    ]);
    let row = logins.lines().nth(1).unwrap_or_default().to_owned();
    assert!(
        row.contains(",login,success,") && row.contains(token.serial()) && row.contains(",curl,"),
        "{logins}"
    );
}
