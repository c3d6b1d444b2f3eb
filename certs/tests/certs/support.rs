//! Helpers shared by the test modules: running openssl, temp files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

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
    let dir = tempfile::tempdir().unwrap();
    let pubkey = dir.path().join("pub.pem");
    let spki = dir.path().join("spki.der");
    let cert = cert_path.to_str().unwrap();
    openssl(&[
        "x509",
        "-in",
        cert,
        "-noout",
        "-pubkey",
        "-out",
        pubkey.to_str().unwrap(),
    ]);
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
