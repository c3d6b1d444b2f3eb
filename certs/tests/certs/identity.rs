//! Reading a token's identity back out of its certificate.

use super::support::openssl_spki_sha256;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use ukey_certs::{
    ClientIdentity, ExtendedKeyUsage, IdentityError, KeyUsage, PublicKeyAlgorithm, spki_fingerprint,
};
use ukey_proto::{TokenSerial, UnitCode};
use ukey_testkit::TestPki;

fn unit() -> UnitCode {
    UnitCode::parse("01").unwrap()
}

fn serial() -> TokenSerial {
    TokenSerial::parse("a1b2c3d4").unwrap()
}

#[test]
fn a_token_certificate_yields_its_unit_token_and_the_fingerprint_openssl_computes() {
    let pki = TestPki::new();
    let cert = pki.token_client(&unit(), &serial());

    let from_der = ClientIdentity::from_der(&cert.cert_der).unwrap();
    let from_pem = ClientIdentity::from_pem_or_der(cert.cert_pem.as_bytes()).unwrap();
    assert_eq!(from_der, from_pem);
    assert_eq!(from_der.unit, unit());
    assert_eq!(from_der.token, serial());
    assert_eq!(
        from_der.fingerprint().to_hex(),
        openssl_spki_sha256(&cert.cert_path)
    );
    assert_eq!(
        spki_fingerprint(&cert.cert_der).unwrap(),
        from_der.fingerprint()
    );
    assert_eq!(
        spki_fingerprint(cert.cert_pem.as_bytes()).unwrap(),
        from_der.fingerprint()
    );

    let info = &from_der.certificate;
    assert_eq!(info.key_algorithm, PublicKeyAlgorithm::EcP256);
    assert_eq!(info.key_usage, Some(vec![KeyUsage::DigitalSignature]));
    assert_eq!(
        info.extended_key_usage,
        Some(vec![ExtendedKeyUsage::ClientAuth])
    );
    assert!(info.subject.contains("CN=01 a1b2c3d4"), "{}", info.subject);
    assert!(!info.is_ca);
    assert!(info.not_before < info.not_after);
}

#[test]
fn the_certificate_serial_reads_as_openssl_prints_it() {
    let pki = TestPki::new();
    let cert = pki.token_client(&unit(), &serial());
    let printed = super::support::openssl(&[
        "x509",
        "-in",
        cert.cert_path.to_str().unwrap(),
        "-noout",
        "-serial",
    ]);
    let hex = printed.trim().trim_start_matches("serial=");
    let identity = ClientIdentity::from_der(&cert.cert_der).unwrap();
    assert_eq!(identity.serial().to_hex(), hex.to_lowercase());
}

#[test]
fn a_server_certificate_is_not_a_client_identity() {
    let pki = TestPki::new();
    let err = ClientIdentity::from_der(&pki.server().cert_der).unwrap_err();
    assert_eq!(err, IdentityError::NoClientAuth);
}

fn signed(params: CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn token_shaped(uris: &[String]) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI(u.clone().try_into().unwrap()))
        .collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

#[test]
fn a_certificate_naming_two_units_is_refused_as_ambiguous() {
    let other = UnitCode::parse("02").unwrap();
    let der = signed(token_shaped(&[unit().urn(), other.urn(), serial().urn()]));
    assert_eq!(
        ClientIdentity::from_der(&der).unwrap_err(),
        IdentityError::UriCount {
            what: "unit",
            count: 2
        }
    );
}

#[test]
fn a_certificate_without_a_token_uri_is_refused() {
    let der = signed(token_shaped(&[unit().urn()]));
    let err = ClientIdentity::from_der(&der).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate has 0 token URIs in subjectAltName; a token certificate has exactly one"
    );
}

#[test]
fn a_unit_uri_with_an_invalid_code_is_refused_with_the_uri() {
    let der = signed(token_shaped(&[
        "urn:ukey:unit:a%20b".to_owned(),
        serial().urn(),
    ]));
    assert!(matches!(
        ClientIdentity::from_der(&der).unwrap_err(),
        IdentityError::BadUri { what: "unit", .. }
    ));
}

#[test]
fn a_ca_certificate_is_refused_even_with_token_uris() {
    let mut params = token_shaped(&[unit().urn(), serial().urn()]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    assert_eq!(
        ClientIdentity::from_der(&signed(params)).unwrap_err(),
        IdentityError::IsCa
    );
}

#[test]
fn a_certificate_whose_key_usage_forbids_signing_is_refused() {
    let mut params = token_shaped(&[unit().urn(), serial().urn()]);
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    assert_eq!(
        ClientIdentity::from_der(&signed(params)).unwrap_err(),
        IdentityError::NoDigitalSignature
    );
}

#[test]
fn garbage_is_reported_as_not_a_certificate() {
    assert!(matches!(
        ClientIdentity::from_der(b"\x30\x03\x02\x01\x05").unwrap_err(),
        IdentityError::Malformed(_)
    ));
    assert!(matches!(
        spki_fingerprint(b"-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n")
            .unwrap_err(),
        IdentityError::Malformed(m) if m.contains("no CERTIFICATE block")
    ));
}
