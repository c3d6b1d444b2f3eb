//! Helpers shared by the test modules: a CA in a temp dir, running openssl, files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use time::OffsetDateTime;
use ukey_certs::{CaOptions, CertificateAuthority, IssuedCertificate, TokenProfile};
use ukey_proto::{TokenSerial, UnitCode};

/// A default CA in `<tmp>/ca`, and the temp dir for the test's other files.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub ca: CertificateAuthority,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(
            &tmp.path().join("ca"),
            &CaOptions::default(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        Fixture { tmp, ca }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A token certificate of unit 01 for a fresh rcgen key.
    pub fn token(&self, serial: &str) -> IssuedCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(Vec::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        let profile = TokenProfile::new(
            UnitCode::parse("01").unwrap(),
            "第一党支部",
            TokenSerial::parse(serial).unwrap(),
        );
        self.ca
            .issue_token(csr.der(), &profile, OffsetDateTime::now_utc())
            .unwrap()
    }
}

/// Runs openssl with `args`; panics with its output when it fails.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (installed by make setup)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo as openssl computes it, in lowercase hex.
pub fn openssl_spki_sha256(cert_path: &Path) -> String {
    openssl_pubkey_sha256(&["x509", "-in", cert_path.to_str().unwrap()])
}

/// The same for a DER CSR.
pub fn openssl_csr_spki_sha256(csr_path: &Path) -> String {
    openssl_pubkey_sha256(&["req", "-inform", "DER", "-in", csr_path.to_str().unwrap()])
}

/// `openssl <read> -noout -pubkey`, then the SHA-256 of that key's DER.
fn openssl_pubkey_sha256(read: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pubkey = dir.path().join("pub.pem");
    let spki = dir.path().join("spki.der");
    let mut args = read.to_vec();
    args.extend_from_slice(&["-noout", "-pubkey", "-out", pubkey.to_str().unwrap()]);
    openssl(&args);
    openssl(&[
        "pkey",
        "-pubin",
        "-in",
        pubkey.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        spki.to_str().unwrap(),
    ]);
    let digest = openssl(&["dgst", "-sha256", "-r", spki.to_str().unwrap()]);
    digest.split_whitespace().next().unwrap().to_owned()
}

/// The permission bits of a file or directory.
pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes a test file (not a key: keys go through `write_private_file`).
pub fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}
