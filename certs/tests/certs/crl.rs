//! CRLs: signed by the issuing CA, read by openssl, honoured by openssl verify -crl_check.

use super::support::{Fixture, openssl, write};
use time::{Duration, OffsetDateTime};
use ukey_certs::{CrlError, CrlInfo, IssuedCertificate, RevocationReason, Revoked};

#[test]
fn openssl_lists_each_revoked_serial_with_its_reason_and_the_crl_number() {
    let fx = Fixture::new();
    let lost = fx.token("lost-1");
    let replaced = fx.token("replaced-1");
    let now = OffsetDateTime::now_utc();
    let revoked = [
        Revoked {
            serial: lost.info.serial.clone(),
            revoked_at: now - Duration::hours(1),
            reason: RevocationReason::KeyCompromise,
        },
        Revoked {
            serial: replaced.info.serial.clone(),
            revoked_at: now,
            reason: "replaced".parse().unwrap(),
        },
    ];
    let crl = fx
        .ca
        .crl(&revoked, 7, now, now + Duration::days(7))
        .unwrap();
    let crl_path = fx.path("crl.pem");
    write(&crl_path, &crl.pem);

    let text = openssl(&["crl", "-in", crl_path.to_str().unwrap(), "-noout", "-text"]);
    let upper = |s: &ukey_certs::CertSerial| s.to_hex().to_uppercase();
    let after_lost = text
        .split(&format!("Serial Number: {}", upper(&lost.info.serial)))
        .nth(1)
        .unwrap_or_else(|| panic!("lost serial missing from\n{text}"));
    let lost_entry = after_lost.split("Serial Number:").next().unwrap();
    assert!(lost_entry.contains("Key Compromise"), "{text}");
    assert!(
        text.contains(&format!("Serial Number: {}", upper(&replaced.info.serial))),
        "{text}"
    );
    assert!(text.contains("Superseded"), "{text}");
    assert!(text.contains("X509v3 CRL Number:"), "{text}");
    assert!(text.contains("Next Update:"), "{text}");

    // Signed by the issuing CA.
    let verified = std::process::Command::new("openssl")
        .args([
            "crl",
            "-in",
            crl_path.to_str().unwrap(),
            "-noout",
            "-CAfile",
        ])
        .arg(&fx.ca.paths().chain)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verified.stderr).contains("verify OK"),
        "{verified:?}"
    );

    // Read back as given.
    assert_eq!(crl.info.number, Some(7));
    assert_eq!(crl.info.entries.len(), 2);
    assert_eq!(crl.info.entries[0].serial, lost.info.serial);
    assert_eq!(
        crl.info.entries[0].reason,
        Some(RevocationReason::KeyCompromise)
    );
    assert_eq!(
        crl.info.entries[1].reason,
        Some(RevocationReason::Superseded)
    );
    assert_eq!(
        CrlInfo::from_pem_or_der(crl.pem.as_bytes()).unwrap(),
        crl.info
    );
}

#[test]
fn openssl_verify_with_the_crl_refuses_the_revoked_certificate_and_accepts_the_other() {
    let fx = Fixture::new();
    let revoked = fx.token("gone");
    let kept = fx.token("kept");
    let now = OffsetDateTime::now_utc();
    let crl = fx
        .ca
        .crl(
            &[Revoked {
                serial: revoked.info.serial.clone(),
                revoked_at: now,
                reason: RevocationReason::CessationOfOperation,
            }],
            1,
            now,
            now + Duration::days(1),
        )
        .unwrap();
    let bundle = fx.path("bundle.pem");
    write(&bundle, &format!("{}{}", fx.ca.chain_pem(), crl.pem));
    let verify = |cert: &IssuedCertificate, name: &str| {
        let path = fx.path(name);
        write(&path, &cert.pem);
        let out = std::process::Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(&bundle)
            .arg(&path)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(verify(&kept, "kept.pem").contains(": OK"));
    let out = verify(&revoked, "gone.pem");
    assert!(out.contains("certificate revoked"), "{out}");
}

#[test]
fn an_empty_crl_is_signed_and_reads_back_empty() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let crl = fx.ca.crl(&[], 1, now, now + Duration::days(7)).unwrap();
    assert!(crl.info.entries.is_empty());
    assert_eq!(
        crl.info.next_update,
        Some((now + Duration::days(7)).replace_nanosecond(0).unwrap())
    );
    write(&fx.path("empty.pem"), &crl.pem);
    let text = openssl(&[
        "crl",
        "-in",
        fx.path("empty.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(text.contains("No Revoked Certificates"), "{text}");
}

#[test]
fn an_unspecified_reason_is_left_out_as_rfc_5280_asks() {
    let fx = Fixture::new();
    let cert = fx.token("t");
    let now = OffsetDateTime::now_utc();
    let crl = fx
        .ca
        .crl(
            &[Revoked {
                serial: cert.info.serial.clone(),
                revoked_at: now,
                reason: RevocationReason::Unspecified,
            }],
            2,
            now,
            now + Duration::days(1),
        )
        .unwrap();
    assert_eq!(crl.info.entries[0].reason, None);
}

#[test]
fn bad_crl_requests_are_refused_with_the_reason() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let err = fx.ca.crl(&[], 1, now, now).unwrap_err();
    assert!(matches!(err, CrlError::NextUpdateNotAfter { .. }), "{err}");

    let cert = fx.token("t");
    let entry = Revoked {
        serial: cert.info.serial.clone(),
        revoked_at: now,
        reason: RevocationReason::KeyCompromise,
    };
    let err = fx
        .ca
        .crl(&[entry.clone(), entry], 1, now, now + Duration::days(1))
        .unwrap_err();
    assert_eq!(err, CrlError::Duplicate(cert.info.serial));
}
