//! What the admin service will do with these certificates: rustls's client verifier (ring),
//! trusting the issuing CA, with the CRL this library signs.

use super::support::Fixture;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error, RootCertStore};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use ukey_certs::{IssuedCertificate, RevocationReason, Revoked};

fn verifier(
    anchor: &[u8],
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Arc<dyn ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(anchor.to_vec())).unwrap();
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .with_crls(crls)
    .build()
    .unwrap()
}

fn verify(v: &Arc<dyn ClientCertVerifier>, cert: &IssuedCertificate) -> Result<(), Error> {
    let leaf = CertificateDer::from(cert.der.clone());
    v.verify_client_cert(&leaf, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn rustls_accepts_a_token_certificate_alone_when_it_trusts_the_issuing_ca() {
    let fx = Fixture::new();
    let ca = &fx.ca;
    let cert = fx.token("t1");

    // A token presents only its own certificate: the issuing CA must be the anchor.
    assert!(verify(&verifier(ca.issuing_certificate_der(), vec![]), &cert).is_ok());
    let root_only = verify(&verifier(ca.root_certificate_der(), vec![]), &cert);
    assert!(
        matches!(
            root_only,
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ),
        "{root_only:?}"
    );
}

#[test]
fn rustls_refuses_a_token_certificate_on_the_crl_and_accepts_the_others() {
    let fx = Fixture::new();
    let ca = &fx.ca;
    let now = OffsetDateTime::now_utc();
    let revoked = fx.token("lost");
    let kept = fx.token("kept");
    let crl = ca
        .crl(
            &[Revoked {
                serial: revoked.info.serial.clone(),
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            }],
            1,
            now,
            now + Duration::days(7),
        )
        .unwrap();
    let v = verifier(
        ca.issuing_certificate_der(),
        vec![CertificateRevocationListDer::from(crl.der)],
    );
    assert!(verify(&v, &kept).is_ok());
    let err = verify(&v, &revoked);
    assert!(
        matches!(
            err,
            Err(Error::InvalidCertificate(CertificateError::Revoked))
        ),
        "{err:?}"
    );
}
