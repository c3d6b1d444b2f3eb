//! Issuing a token's client certificate from a CSR, and refusing bad CSRs.

use super::support::{Fixture, openssl, openssl_csr_spki_sha256, write};
use rcgen::{CertificateParams, KeyPair};
use time::{Duration, OffsetDateTime};
use ukey_certs::{
    CheckedCsr, ClientIdentity, CsrError, ExtendedKeyUsage, IssueError, KeyUsage,
    PublicKeyAlgorithm, TokenProfile,
};
use ukey_proto::{TokenSerial, UnitCode};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

const UNIT_NAME: &str = "中共太极集团有限公司委员会";

trait CsrMaker {
    fn openssl_csr(&self, name: &str, newkey: &[&str], extra: &[&str]) -> Vec<u8>;
    fn ec_csr(&self, name: &str, curve: &str, extra: &[&str]) -> Vec<u8>;
    fn openssl_verify_client(&self, cert_pem: &str) -> String;
}

impl CsrMaker for Fixture {
    /// A CSR made by the openssl CLI with `newkey` (e.g. `ec:…` or `rsa:2048`) and extra
    /// `req` arguments; returns its DER.
    fn openssl_csr(&self, name: &str, newkey: &[&str], extra: &[&str]) -> Vec<u8> {
        let csr = self.path(&format!("{name}.csr"));
        let key = self.path(&format!("{name}.key"));
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=whatever the token says",
        ];
        args.extend_from_slice(newkey);
        args.extend_from_slice(&[
            "-keyout",
            key.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            csr.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        openssl(&args);
        std::fs::read(&csr).unwrap()
    }

    fn ec_csr(&self, name: &str, curve: &str, extra: &[&str]) -> Vec<u8> {
        let opt = format!("ec_paramgen_curve:{curve}");
        self.openssl_csr(name, &["-newkey", "ec", "-pkeyopt", &opt], extra)
    }

    /// `openssl verify` of a client certificate against the root, with the issuing CA as the
    /// intermediate.
    fn openssl_verify_client(&self, cert_pem: &str) -> String {
        let cert = self.path("client.pem");
        write(&cert, cert_pem);
        openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            self.ca.paths().root_cert.to_str().unwrap(),
            "-untrusted",
            self.ca.paths().issuing_cert.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
    }
}

fn profile() -> TokenProfile {
    TokenProfile::new(
        UnitCode::parse("01").unwrap(),
        UNIT_NAME,
        TokenSerial::parse("0123456789abcdef").unwrap(),
    )
}

fn pubkey_fingerprint_of_csr(fx: &Fixture, name: &str) -> String {
    openssl_csr_spki_sha256(&fx.path(&format!("{name}.csr")))
}

#[test]
fn a_token_csr_from_openssl_gets_the_token_profile_and_nothing_it_asked_for() {
    let fx = Fixture::new();
    // The CSR asks for a server name and serverAuth: the profile ignores both.
    let csr = fx.ec_csr(
        "token",
        "P-256",
        &[
            "-addext",
            "subjectAltName=DNS:evil.example",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    let now = OffsetDateTime::now_utc();
    let issued = fx.ca.issue_token(&csr, &profile(), now).unwrap();

    let out = fx.openssl_verify_client(&issued.pem);
    assert!(out.contains(": OK"), "{out}");

    let identity = ClientIdentity::from_der(&issued.der).unwrap();
    assert_eq!(identity.unit.as_str(), "01");
    assert_eq!(identity.token.as_str(), "0123456789abcdef");
    assert_eq!(identity.fingerprint(), issued.info.spki_fingerprint);
    assert_eq!(
        identity.fingerprint().to_hex(),
        pubkey_fingerprint_of_csr(&fx, "token")
    );
    assert_eq!(
        CheckedCsr::parse(&csr).unwrap().fingerprint(),
        identity.fingerprint(),
        "the certificate carries exactly the CSR's key"
    );

    let info = &issued.info;
    assert_eq!(
        info.uris,
        ["urn:ukey:unit:01", "urn:ukey:token:0123456789abcdef"]
    );
    assert!(info.dns_names.is_empty(), "requested DNS name dropped");
    assert_eq!(
        info.extended_key_usage,
        Some(vec![ExtendedKeyUsage::ClientAuth])
    );
    assert_eq!(info.key_usage, Some(vec![KeyUsage::DigitalSignature]));
    assert_eq!(info.key_algorithm, PublicKeyAlgorithm::EcP256);
    assert!(!info.is_ca);
    assert_eq!(
        info.subject,
        format!("O={UNIT_NAME}, CN=01 0123456789abcdef")
    );
    assert_eq!(
        (info.not_after - now.replace_nanosecond(0).unwrap()).whole_days(),
        730
    );
    assert!(info.not_before <= now);

    let text = openssl(&[
        "x509",
        "-in",
        fx.path("client.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("evil.example"));
}

#[test]
fn serials_are_random_positive_and_128_bits_wide() {
    let fx = Fixture::new();
    let csr = fx.ec_csr("token", "P-256", &[]);
    let now = OffsetDateTime::now_utc();
    let a = fx
        .ca
        .issue_token(&csr, &profile(), now)
        .unwrap()
        .info
        .serial;
    let b = fx
        .ca
        .issue_token(&csr, &profile(), now)
        .unwrap()
        .info
        .serial;
    assert_ne!(a, b);
    for serial in [a, b] {
        // 16 random octets; a leading zero octet (1 in 256) only shortens the magnitude.
        assert!((14..=16).contains(&serial.as_bytes().len()), "{serial}");
    }
    // openssl reads the serial as a positive integer of at most 16 octets.
    let issued = fx.ca.issue_token(&csr, &profile(), now).unwrap();
    write(&fx.path("s.pem"), &issued.pem);
    let printed = openssl(&[
        "x509",
        "-in",
        fx.path("s.pem").to_str().unwrap(),
        "-noout",
        "-serial",
    ]);
    let hex = printed.trim().trim_start_matches("serial=");
    assert!(!hex.starts_with('-') && hex.len() <= 32, "{hex}");
    assert_eq!(
        hex.to_lowercase().trim_start_matches('0'),
        issued.info.serial.to_hex().trim_start_matches('0')
    );
}

#[test]
fn the_validity_is_configurable() {
    let fx = Fixture::new();
    let csr = fx.ec_csr("token", "P-384", &[]);
    let mut profile = profile();
    profile.validity_days = 30;
    profile.crl_distribution_points = vec!["http://ukey.example.cn/crl.der".into()];
    let now = OffsetDateTime::now_utc();
    let issued = fx.ca.issue_token(&csr, &profile, now).unwrap();
    assert_eq!(issued.info.key_algorithm, PublicKeyAlgorithm::EcP384);
    assert_eq!(
        issued.info.not_after,
        now.replace_nanosecond(0).unwrap() + Duration::days(30)
    );
    write(&fx.path("c.pem"), &issued.pem);
    let text = openssl(&[
        "x509",
        "-in",
        fx.path("c.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(
        text.contains("URI:http://ukey.example.cn/crl.der"),
        "{text}"
    );
}

#[test]
fn an_rsa_2048_token_csr_is_issued_and_verifies() {
    let fx = Fixture::new();
    let csr = fx.openssl_csr("rsa", &["-newkey", "rsa:2048"], &[]);
    let issued = fx
        .ca
        .issue_token(&csr, &profile(), OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(
        issued.info.key_algorithm,
        PublicKeyAlgorithm::Rsa { bits: 2048 }
    );
    assert_eq!(
        issued.info.spki_fingerprint.to_hex(),
        pubkey_fingerprint_of_csr(&fx, "rsa")
    );
    let out = fx.openssl_verify_client(&issued.pem);
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn a_pem_csr_is_accepted_as_well_as_der() {
    let fx = Fixture::new();
    let key = KeyPair::generate().unwrap();
    let csr = CertificateParams::new(Vec::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let issued = fx
        .ca
        .issue_token(
            csr.pem().unwrap().as_bytes(),
            &profile(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(
        issued.info.spki_fingerprint,
        CheckedCsr::parse(csr.der()).unwrap().fingerprint()
    );
}

fn refusal(fx: &Fixture, csr: &[u8]) -> CsrError {
    match fx
        .ca
        .issue_token(csr, &profile(), OffsetDateTime::now_utc())
    {
        Err(IssueError::Csr(e)) => e,
        other => panic!("expected a CSR refusal, got {other:?}"),
    }
}

#[test]
fn an_rsa_1024_csr_is_refused_as_a_weak_key() {
    let fx = Fixture::new();
    let csr = fx.openssl_csr("rsa1024", &["-newkey", "rsa:1024"], &[]);
    let err = refusal(&fx, &csr);
    assert_eq!(
        err,
        CsrError::WeakKey("RSA-1024 is below the 2048-bit minimum".into())
    );
    assert_eq!(
        IssueError::Csr(err).to_string(),
        "weak key refused: RSA-1024 is below the 2048-bit minimum"
    );
}

#[test]
fn a_csr_on_an_unknown_curve_is_refused_naming_the_curve() {
    let fx = Fixture::new();
    let csr = fx.ec_csr("k1", "secp256k1", &[]);
    let err = refusal(&fx, &csr);
    assert!(matches!(err, CsrError::UnsupportedKey(_)), "{err}");
    assert!(
        err.to_string().contains("secp256k1 (1.3.132.0.10)"),
        "{err}"
    );
}

/// DER length octets for `len`.
fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

/// The CSR fields after the CertificationRequestInfo: signature algorithm and signature.
fn signature_part(csr_der: &[u8]) -> Vec<u8> {
    let (_, csr) = X509CertificationRequest::from_der(csr_der).unwrap();
    let info = csr.certification_request_info.raw;
    let start = csr_der.windows(info.len()).position(|w| w == info).unwrap() + info.len();
    csr_der[start..].to_vec()
}

#[test]
fn a_csr_whose_signature_does_not_match_its_key_is_refused() {
    let fx = Fixture::new();
    let honest = fx.ec_csr("a", "P-256", &[]);
    let other = fx.ec_csr("b", "P-256", &[]);
    // B's request info (B's key) with A's signature: well formed, but not signed by B's key.
    let (_, b) = X509CertificationRequest::from_der(&other).unwrap();
    let mut body = b.certification_request_info.raw.to_vec();
    body.extend(signature_part(&honest));
    let mut forged = vec![0x30];
    forged.extend(der_len(body.len()));
    forged.extend(body);

    assert!(CheckedCsr::parse(&honest).is_ok(), "the honest CSR passes");
    let err = refusal(&fx, &forged);
    assert_eq!(err, CsrError::BadSignature);
    assert!(
        err.to_string()
            .contains("does not verify with the public key it carries")
    );
}

#[test]
fn a_csr_asking_for_a_ca_certificate_is_refused() {
    let fx = Fixture::new();
    let csr = fx.ec_csr(
        "ca",
        "P-256",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let err = refusal(&fx, &csr);
    assert_eq!(err, CsrError::RequestsCa("basicConstraints cA=TRUE"));
    assert!(
        err.to_string().contains("asks for a CA certificate"),
        "{err}"
    );

    let signer = fx.ec_csr("ku", "P-256", &["-addext", "keyUsage=keyCertSign"]);
    assert!(matches!(refusal(&fx, &signer), CsrError::RequestsCa(_)));
}

#[test]
fn a_csr_signed_with_sha1_is_refused() {
    let fx = Fixture::new();
    let csr = fx.openssl_csr("sha1", &["-newkey", "rsa:2048", "-sha1"], &[]);
    assert_eq!(refusal(&fx, &csr), CsrError::WeakSignature("SHA-1"));
}

#[test]
fn garbage_and_certificates_are_not_csrs() {
    let fx = Fixture::new();
    assert!(matches!(refusal(&fx, b"not a csr"), CsrError::Malformed(_)));
    let cert = fx.ca.issuing_certificate_pem();
    let err = refusal(&fx, cert.as_bytes());
    assert!(err.to_string().contains("found: CERTIFICATE"), "{err}");
}

#[test]
fn a_bad_profile_is_refused_before_the_csr_is_looked_at() {
    let fx = Fixture::new();
    let mut p = profile();
    p.unit_name = String::new();
    let err = fx
        .ca
        .issue_token(b"", &p, OffsetDateTime::now_utc())
        .unwrap_err();
    assert!(matches!(err, IssueError::Profile(_)), "{err}");
}
