//! Creating and loading a CA, and the server profile.

use super::support::{mode_of, openssl, write};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use time::{Duration, OffsetDateTime};
use ukey_certs::{
    CaError, CaOptions, CertificateAuthority, ExtendedKeyUsage, IssueError, KeyAlgorithm, KeyUsage,
    PublicKeyAlgorithm, ServerProfile,
};
use x509_parser::prelude::{FromDer, X509Certificate};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn new_ca(dir: &Path, key_algorithm: KeyAlgorithm) -> CertificateAuthority {
    let options = CaOptions {
        organization: "中共太极集团有限公司委员会".into(),
        name: "Taiji ukey".into(),
        key_algorithm,
        ..CaOptions::default()
    };
    CertificateAuthority::create(dir, &options, now()).unwrap()
}

#[test]
fn a_new_ca_has_0600_keys_in_a_0700_directory_and_a_chain_openssl_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = new_ca(&dir, KeyAlgorithm::EcP256);
    let paths = ca.paths();

    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&paths.root_key), 0o600);
    assert_eq!(mode_of(&paths.issuing_key), 0o600);
    assert_eq!(mode_of(&paths.issuing_cert), 0o644);

    let out = openssl(&[
        "verify",
        "-CAfile",
        paths.root_cert.to_str().unwrap(),
        paths.issuing_cert.to_str().unwrap(),
    ]);
    assert!(out.contains(": OK"), "{out}");

    let root = ca.root_info();
    let issuing = ca.issuing_info();
    assert!(root.is_ca && issuing.is_ca);
    assert_eq!(root.path_len, Some(1));
    assert_eq!(issuing.path_len, Some(0));
    assert_eq!(
        issuing.key_usage,
        Some(vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign])
    );
    assert_eq!(issuing.key_algorithm, PublicKeyAlgorithm::EcP256);
    assert!(issuing.subject.contains("CN=Taiji ukey Issuing CA"));
    assert!(issuing.subject.contains("中共太极集团有限公司委员会"));
    assert!(issuing.not_after <= root.not_after);
    assert_eq!(
        fs::read_to_string(&paths.chain).unwrap(),
        ca.chain_pem(),
        "ca-chain.pem holds the issuing CA then the root"
    );
}

#[test]
fn creating_a_ca_where_one_exists_refuses_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(tmp.path(), KeyAlgorithm::EcP256);
    let key_before = fs::read(&ca.paths().issuing_key).unwrap();

    let err = CertificateAuthority::create(tmp.path(), &CaOptions::default(), now()).unwrap_err();
    assert!(matches!(err, CaError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(&ca.paths().issuing_key).unwrap(), key_before);
}

#[test]
fn a_partial_ca_directory_is_not_completed_over() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("issuing-ca.key"), "someone else's key");
    let err = CertificateAuthority::create(tmp.path(), &CaOptions::default(), now()).unwrap_err();
    assert!(matches!(err, CaError::Exists { ref path } if path.ends_with("issuing-ca.key")));
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn loading_needs_only_the_issuing_key_so_the_root_key_can_go_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let created = new_ca(tmp.path(), KeyAlgorithm::EcP256);
    fs::remove_file(&created.paths().root_key).unwrap();
    let loaded = CertificateAuthority::load(tmp.path()).unwrap();
    assert_eq!(
        loaded.issuing_certificate_der(),
        created.issuing_certificate_der()
    );
    assert_eq!(
        loaded.root_certificate_der(),
        created.root_certificate_der()
    );
}

#[test]
fn loading_refuses_a_key_file_others_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(tmp.path(), KeyAlgorithm::EcP256);
    let key = &ca.paths().issuing_key;
    fs::set_permissions(key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = CertificateAuthority::load(tmp.path()).unwrap_err();
    assert!(
        matches!(err, CaError::KeyExposed { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn loading_refuses_a_key_that_belongs_to_another_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = new_ca(&tmp.path().join("ours"), KeyAlgorithm::EcP256);
    let theirs = new_ca(&tmp.path().join("theirs"), KeyAlgorithm::EcP256);
    fs::remove_file(&ours.paths().issuing_key).unwrap();
    fs::copy(&theirs.paths().issuing_key, &ours.paths().issuing_key).unwrap();
    let err = CertificateAuthority::load(&tmp.path().join("ours")).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
}

#[test]
fn loading_refuses_an_issuing_ca_that_the_root_did_not_sign() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = new_ca(&tmp.path().join("ours"), KeyAlgorithm::EcP256);
    let theirs = new_ca(&tmp.path().join("theirs"), KeyAlgorithm::EcP256);
    fs::remove_file(&ours.paths().root_cert).unwrap();
    fs::copy(&theirs.paths().root_cert, &ours.paths().root_cert).unwrap();
    let err = CertificateAuthority::load(&tmp.path().join("ours")).unwrap_err();
    assert!(
        err.to_string().contains("not signed by the root CA"),
        "{err}"
    );
}

#[test]
fn loading_an_empty_directory_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = CertificateAuthority::load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("issuing-ca.pem"), "{err}");
}

/// Checks a server certificate with openssl: chain, purpose, and that the key file matches.
fn assert_openssl_accepts_server(
    ca: &CertificateAuthority,
    dir: &Path,
    cert_pem: &str,
    key_pem: &str,
) {
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    write(&cert, cert_pem);
    ukey_certs::write_private_file(&key, key_pem.as_bytes()).unwrap();
    let out = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca.paths().root_cert.to_str().unwrap(),
        "-untrusted",
        ca.paths().issuing_cert.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(out.contains(": OK"), "{out}");
    let from_cert = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let from_key = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert_eq!(from_cert, from_key, "the key file is the certificate's key");
}

#[test]
fn a_server_certificate_carries_its_names_and_server_auth_and_verifies_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(&tmp.path().join("ca"), KeyAlgorithm::EcP256);
    let profile = ServerProfile::new(
        vec!["admin.example.cn".into(), "localhost".into()],
        vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
    );
    let t = now();
    let server = ca.issue_server(&profile, t).unwrap();
    let info = &server.certificate.info;

    assert_eq!(info.dns_names, ["admin.example.cn", "localhost"]);
    assert_eq!(info.ip_addresses, profile.ip_addresses);
    assert_eq!(
        info.extended_key_usage,
        Some(vec![ExtendedKeyUsage::ServerAuth])
    );
    assert_eq!(info.key_usage, Some(vec![KeyUsage::DigitalSignature]));
    assert!(!info.is_ca);
    assert!(info.not_before <= t);
    let days = (info.not_after - t).whole_days();
    assert!((396..=397).contains(&days), "{days}");
    assert!(server.chain_pem.starts_with(&server.certificate.pem));
    assert!(server.chain_pem.ends_with(&ca.issuing_certificate_pem()));

    use secrecy::ExposeSecret;
    assert_openssl_accepts_server(
        &ca,
        tmp.path(),
        &server.certificate.pem,
        server.key_pem.expose_secret(),
    );
    assert!(
        !format!("{server:?}").contains("PRIVATE KEY"),
        "Debug hides the key"
    );
}

#[test]
fn an_rsa_2048_ca_issues_certificates_openssl_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(&tmp.path().join("ca"), KeyAlgorithm::Rsa2048);
    assert_eq!(
        ca.issuing_info().key_algorithm,
        PublicKeyAlgorithm::Rsa { bits: 2048 }
    );
    assert_eq!(
        ca.root_info().key_algorithm,
        PublicKeyAlgorithm::Rsa { bits: 2048 }
    );

    // A reload reads the RSA key back from its PKCS#8 file.
    let ca = CertificateAuthority::load(&tmp.path().join("ca")).unwrap();
    let server = ca
        .issue_server(&ServerProfile::new(vec!["localhost".into()], vec![]), now())
        .unwrap();
    use secrecy::ExposeSecret;
    assert_openssl_accepts_server(
        &ca,
        tmp.path(),
        &server.certificate.pem,
        server.key_pem.expose_secret(),
    );
}

#[test]
fn certificates_name_their_issuer_byte_for_byte_as_the_ca_names_itself() {
    // webpki matches issuer to subject by bytes, not by openssl's canonical form.
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(tmp.path(), KeyAlgorithm::EcP256);
    let server = ca
        .issue_server(&ServerProfile::new(vec!["localhost".into()], vec![]), now())
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(&server.certificate.der).unwrap();
    let (_, issuing) = X509Certificate::from_der(ca.issuing_certificate_der()).unwrap();
    let (_, root) = X509Certificate::from_der(ca.root_certificate_der()).unwrap();
    assert_eq!(leaf.issuer().as_raw(), issuing.subject().as_raw());
    assert_eq!(issuing.issuer().as_raw(), root.subject().as_raw());
}

#[test]
fn a_certificate_never_outlives_the_issuing_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let options = CaOptions {
        issuing_validity_days: 30,
        ..CaOptions::default()
    };
    let ca = CertificateAuthority::create(tmp.path(), &options, now()).unwrap();
    let server = ca
        .issue_server(&ServerProfile::new(vec!["localhost".into()], vec![]), now())
        .unwrap();
    assert_eq!(
        server.certificate.info.not_after,
        ca.issuing_info().not_after
    );
}

#[test]
fn an_expired_issuing_ca_issues_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(tmp.path(), KeyAlgorithm::EcP256);
    let later = ca.issuing_info().not_after + Duration::days(1);
    let err = ca
        .issue_server(&ServerProfile::new(vec!["localhost".into()], vec![]), later)
        .unwrap_err();
    assert!(matches!(err, IssueError::CaNotValid { .. }), "{err}");
}

#[test]
fn bad_ca_options_are_refused_before_any_key_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let long = CaOptions {
        organization: "组".repeat(65),
        ..CaOptions::default()
    };
    let err = CertificateAuthority::create(tmp.path(), &long, now()).unwrap_err();
    assert!(err.to_string().contains("65 characters"), "{err}");
    let inverted = CaOptions {
        root_validity_days: 10,
        issuing_validity_days: 20,
        ..CaOptions::default()
    };
    let err = CertificateAuthority::create(tmp.path(), &inverted, now()).unwrap_err();
    assert!(err.to_string().contains("cannot outlive the root"), "{err}");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_ca_can_be_shared_by_the_admin_service_across_threads() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let tmp = tempfile::tempdir().unwrap();
    let ca = new_ca(tmp.path(), KeyAlgorithm::EcP256);
    shared(&ca);
    let ca = std::sync::Arc::new(ca);
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let ca = ca.clone();
            std::thread::spawn(move || {
                let name = format!("s{i}.example.cn");
                ca.issue_server(&ServerProfile::new(vec![name], vec![]), now())
                    .unwrap()
                    .certificate
                    .info
                    .serial
            })
        })
        .collect();
    let serials: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(serials[0], serials[1]);
}
