//! `ukey-ca` as a black box: the binary, a CA directory, openssl to check what it writes.

use super::support::{mode_of, openssl};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Ca {
    tmp: tempfile::TempDir,
}

impl Ca {
    fn new() -> Ca {
        Ca {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("ca")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ukey-ca"))
            .arg("--dir")
            .arg(self.dir())
            .args(args)
            .env_remove("UKEY_CA_DIR")
            .output()
            .unwrap()
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ukey-ca {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "ukey-ca {args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// A CSR made with openssl; returns its path.
    fn csr(&self, name: &str, newkey: &[&str]) -> PathBuf {
        let csr = self.path(&format!("{name}.csr"));
        let key = self.path(&format!("{name}.key"));
        let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=token"];
        args.extend_from_slice(newkey);
        args.extend_from_slice(&[
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&args);
        csr
    }

    fn ec_csr(&self, name: &str) -> PathBuf {
        self.csr(
            name,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        )
    }

    fn verify(&self, cert: &Path, crl_check: bool) -> String {
        let bundle = self.path("bundle.pem");
        let mut contents = std::fs::read_to_string(self.dir().join("ca-chain.pem")).unwrap();
        if crl_check {
            contents.push_str(&std::fs::read_to_string(self.dir().join("crl.pem")).unwrap());
        }
        std::fs::write(&bundle, contents).unwrap();
        let mut cmd = Command::new("openssl");
        cmd.arg("verify");
        if crl_check {
            cmd.arg("-crl_check");
        }
        let out = cmd.arg("-CAfile").arg(&bundle).arg(cert).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ukey_ca_issues_revokes_and_publishes_a_crl_that_openssl_honours() {
    let ca = Ca::new();
    let init = ca.json(&[
        "init",
        "--org",
        "中共太极集团有限公司委员会",
        "--crl-url",
        "http://ukey.example.cn/crl.der",
    ]);
    assert_eq!(init["issuing"]["is_ca"], true);
    assert_eq!(mode_of(&ca.dir().join("issuing-ca.key")), 0o600);
    assert_eq!(mode_of(&ca.dir().join("root-ca.key")), 0o600);

    // The admin service's server certificate.
    let (cert, key) = (ca.path("server.pem"), ca.path("server.key"));
    ca.ok(&[
        "issue-server",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--cert",
        s(&cert),
        "--key-out",
        s(&key),
    ]);
    assert_eq!(mode_of(&key), 0o600);
    assert!(ca.verify(&cert, false).contains(": OK"));

    // A token's certificate from its CSR.
    let csr = ca.ec_csr("token");
    let token_pem = ca.path("token.pem");
    let issued = ca.json(&[
        "issue",
        "--csr",
        s(&csr),
        "--profile",
        "token",
        "--unit",
        "01",
        "--unit-name",
        "第一党支部",
        "--serial",
        "0123ABCD",
        "--days",
        "365",
        "--out",
        s(&token_pem),
    ]);
    let serial = issued["certificate"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(issued["certificate"]["unit"], "01");
    assert_eq!(issued["certificate"]["token"], "0123ABCD");
    assert!(ca.verify(&token_pem, true).contains(": OK"));
    let text = openssl(&["x509", "-in", s(&token_pem), "-noout", "-text"]);
    assert!(text.contains("URI:urn:ukey:unit:01"), "{text}");
    assert!(
        text.contains("URI:http://ukey.example.cn/crl.der"),
        "{text}"
    );
    assert!(ca.dir().join(format!("issued/{serial}.pem")).exists());

    let list = ca.json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "valid")
    );

    // Revoke it: the CRL is rewritten at once, and openssl now refuses the certificate.
    let revoked = ca.json(&["revoke", &serial.to_uppercase(), "--reason", "lost"]);
    assert_eq!(
        revoked["certificate"]["revoked"]["reason"],
        "key-compromise"
    );
    assert_eq!(revoked["crl"]["number"], 2, "init wrote CRL 1");
    let crl_text = openssl(&[
        "crl",
        "-in",
        s(&ca.dir().join("crl.pem")),
        "-noout",
        "-text",
    ]);
    assert!(
        crl_text.contains(&format!("Serial Number: {}", serial.to_uppercase())),
        "{crl_text}"
    );
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");
    assert!(ca.verify(&token_pem, true).contains("certificate revoked"));
    let der = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        s(&ca.dir().join("crl.der")),
        "-noout",
        "-crlnumber",
    ]);
    assert!(der.contains("crlNumber=0x02"), "{der}");

    // Revoking twice, or a serial this CA never issued, says so.
    assert!(
        ca.fails(&["revoke", &serial, "--reason", "lost"])
            .contains("already revoked")
    );
    let unknown = ca.fails(&["revoke", "abcdef", "--reason", "broken"]);
    assert!(
        unknown.contains("no certificate with serial abcdef"),
        "{unknown}"
    );

    // A scheduled CRL takes the next number and keeps the revocation.
    let crl = ca.json(&["crl", "--days", "2"]);
    assert_eq!(crl["crl"]["number"], 3);
    assert_eq!(crl["crl"]["entries"][0]["serial"], serial.as_str());

    let list = ca.ok(&["list"]);
    assert!(
        list.contains("revoked") && list.contains("unit 01, token 0123ABCD"),
        "{list}"
    );
}

#[test]
fn ukey_ca_refuses_bad_csrs_with_their_reason_and_records_nothing() {
    let ca = Ca::new();
    ca.ok(&["init"]);
    let issue = |csr: &Path| {
        ca.fails(&[
            "issue",
            "--csr",
            s(csr),
            "--unit",
            "01",
            "--unit-name",
            "u",
            "--serial",
            "s1",
        ])
    };
    let weak = ca.csr("weak", &["-newkey", "rsa:1024"]);
    assert!(issue(&weak).contains("RSA-1024 is below the 2048-bit minimum"));
    let ca_csr = ca.csr(
        "ca",
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    assert!(issue(&ca_csr).contains("asks for a CA certificate"));
    let missing = issue(&ca.path("nope.csr"));
    assert!(
        missing.contains("reading the CSR") && missing.contains("nope.csr"),
        "{missing}"
    );
    assert_eq!(ca.json(&["list"]), serde_json::json!([]));

    // show says the same before anyone tries to issue.
    let out = Command::new(env!("CARGO_BIN_EXE_ukey-ca"))
        .args(["show", s(&weak)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("would be refused"));
}

#[test]
fn ukey_ca_prints_the_certificate_when_no_output_file_is_given() {
    let ca = Ca::new();
    ca.ok(&["init"]);
    let csr = ca.ec_csr("t");
    let out = ca.run(&[
        "issue",
        "--csr",
        s(&csr),
        "--unit",
        "01",
        "--unit-name",
        "u",
        "--serial",
        "s1",
    ]);
    assert!(out.status.success());
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unit 01, token s1"));
    std::fs::write(ca.path("t.pem"), &pem).unwrap();
    let shown = ca.ok(&["show", s(&ca.path("t.pem"))]);
    assert!(shown.contains("token s1 of unit 01"), "{shown}");
}

#[test]
fn ukey_ca_never_overwrites_a_ca_or_an_output_file() {
    let ca = Ca::new();
    ca.ok(&["init"]);
    assert!(ca.fails(&["init"]).contains("already exists"));
    let existing = ca.path("taken.pem");
    std::fs::write(&existing, "mine").unwrap();
    let err = ca.fails(&[
        "issue-server",
        "--dns",
        "localhost",
        "--cert",
        s(&existing),
        "--key-out",
        s(&ca.path("k")),
    ]);
    assert!(err.contains("taken.pem: already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine");
    assert_eq!(
        ca.json(&["list"]),
        serde_json::json!([]),
        "nothing issued for nothing"
    );
}

#[test]
fn a_second_ukey_ca_on_a_busy_directory_is_refused_rather_than_interleaved() {
    let ca = Ca::new();
    ca.ok(&["init"]);
    let _held = ukey_certs::store::CaStore::open(&ca.dir()).unwrap();
    let err = ca.fails(&["crl"]);
    assert!(err.contains("another ukey-ca command is working"), "{err}");
}

#[test]
fn ukey_ca_explains_a_directory_that_is_not_a_ca() {
    let ca = Ca::new();
    std::fs::create_dir(ca.dir()).unwrap();
    let err = ca.fails(&["list"]);
    assert!(
        err.contains("not a ukey-ca directory") && err.contains("ukey-ca init"),
        "{err}"
    );
    let garbage = ca.path("garbage.txt");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = ca.fails(&["show", s(&garbage)]);
    assert!(
        err.contains("not a certificate, CSR or CRL (PEM block PRIVATE KEY)"),
        "{err}"
    );
}

#[test]
fn ukey_ca_makes_an_rsa_2048_ca_on_request() {
    let ca = Ca::new();
    let init = ca.json(&["init", "--key", "rsa-2048"]);
    assert_eq!(
        init["issuing"]["key_algorithm"],
        serde_json::json!({"type": "rsa", "bits": 2048})
    );
    let csr = ca.ec_csr("t");
    let pem = ca.path("t.pem");
    ca.ok(&[
        "issue",
        "--csr",
        s(&csr),
        "--unit",
        "01",
        "--unit-name",
        "u",
        "--serial",
        "s1",
        "--out",
        s(&pem),
    ]);
    assert!(ca.verify(&pem, true).contains(": OK"));
    let text = openssl(&["x509", "-in", s(&pem), "-noout", "-text"]);
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
}
