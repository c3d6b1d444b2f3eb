//! Figures for the CA's hot paths, printed (no timing assertions anywhere):
//! reading a client identity (done per session, possibly per request), checking a CSR,
//! issuing a token certificate, and signing a large CRL. Run with `make bench` or
//! `cargo bench -p ukey-certs --bench certs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use ukey_certs::{
    CaOptions, CertSerial, CertificateAuthority, CheckedCsr, ClientIdentity, KeyAlgorithm,
    RevocationReason, Revoked, TokenProfile,
};
use ukey_proto::{TokenSerial, UnitCode};

fn measure(what: &str, iterations: u32, mut f: impl FnMut()) {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed() / iterations;
    let per_second = if per > Duration::ZERO {
        1.0 / per.as_secs_f64()
    } else {
        f64::INFINITY
    };
    println!(
        "{what:<52} {:>10.1} µs/op {per_second:>12.0} op/s",
        per.as_secs_f64() * 1e6
    );
}

fn run(key: KeyAlgorithm) {
    println!("CA key {key}:");
    let tmp = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let options = CaOptions {
        key_algorithm: key,
        ..CaOptions::default()
    };
    let ca = CertificateAuthority::create(tmp.path(), &options, now).unwrap();
    let token_key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::new())
        .unwrap()
        .serialize_request(&token_key)
        .unwrap();
    let csr = csr.der().to_vec();
    let profile = TokenProfile::new(
        UnitCode::parse("01").unwrap(),
        "中共太极集团有限公司委员会",
        TokenSerial::parse("0123456789abcdef").unwrap(),
    );
    let issued = ca.issue_token(&csr, &profile, now).unwrap();

    measure(
        "ClientIdentity::from_der (per session/request)",
        20_000,
        || {
            black_box(ClientIdentity::from_der(black_box(&issued.der)).unwrap());
        },
    );
    measure(
        "CheckedCsr::parse (EC P-256 CSR, signature checked)",
        2_000,
        || {
            black_box(CheckedCsr::parse(black_box(&csr)).unwrap());
        },
    );
    measure("issue_token (EC P-256 token key)", 500, || {
        black_box(ca.issue_token(&csr, &profile, now).unwrap());
    });
    let revoked: Vec<Revoked> = (0..10_000u32)
        .map(|i| Revoked {
            serial: CertSerial::from_be_bytes(&(u128::from(i) + (1 << 120)).to_be_bytes()).unwrap(),
            revoked_at: now,
            reason: RevocationReason::KeyCompromise,
        })
        .collect();
    let mut size = 0;
    measure("crl with 10 000 revoked serials", 5, || {
        let crl = ca
            .crl(&revoked, 1, now, now + time::Duration::days(7))
            .unwrap();
        size = crl.der.len();
    });
    println!("{:<52} {size:>10} bytes DER", "  CRL size");
}

fn main() {
    run(KeyAlgorithm::EcP256);
    run(KeyAlgorithm::Rsa2048);
}
