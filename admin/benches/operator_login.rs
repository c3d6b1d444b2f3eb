//! Operator login timing at the real Argon2id cost (m=19456 KiB, t=2, p=1), on SQLite:
//! an unknown user, a wrong password, a locked account and a success should cost the same
//! (one Argon2 verification and one audited commit each), so that timing tells an attacker
//! nothing. Prints the median and 90th percentile of each, and the largest median gap.
//!
//! `make bench`, or `cargo bench -p ukey-admin --bench operator_login`.
//! UKEY_BENCH_ROUNDS (default 30) attempts of each kind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ukey_admin::audit::AuditKey;
use ukey_admin::clock::SystemClock;
use ukey_admin::domain::account::{Role, SecurityPolicy};
use ukey_admin::service::{
    AccountSettings, Actor, OperatorLogin, RequestContext, Service, Settings,
};
use ukey_admin::storage::SqliteStorage;

const PASSWORD: &str = "Xq7#plum-Harbor-93";

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("UKEY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(
        SqliteStorage::open(&dir.path().join("bench.db"))
            .await
            .unwrap(),
    );
    let settings = Settings {
        accounts: AccountSettings {
            operator_login: OperatorLogin::Password,
            ..AccountSettings::default()
        },
        ..Settings::default()
    };
    let service = Service::new(
        storage,
        Arc::new(SystemClock),
        settings,
        AuditKey::generate(),
    );
    let by = Actor::cli();
    let policy = SecurityPolicy {
        lockout_threshold: 10,
        ..SecurityPolicy::default()
    };
    service.set_security_policy(&policy, &by).await.unwrap();
    let ctx = RequestContext::default();
    let mut accounts = Vec::new();
    for name in ["alice", "locked"] {
        let (account, secret) = service
            .create_account(name, "压测账户", None, &by)
            .await
            .unwrap();
        service
            .grant_role(&account, Role::Operator, &by)
            .await
            .unwrap();
        let first = service.operator_login(&ctx, name, &secret).await.unwrap();
        let op = service
            .operator_session(&ctx, secrecy::ExposeSecret::expose_secret(&first.token))
            .await
            .unwrap();
        service
            .change_password(&op, None, &SecretString::from(PASSWORD))
            .await
            .unwrap();
        accounts.push(account);
    }
    for _ in 0..10 {
        let _ = service
            .operator_login(&ctx, "locked", &SecretString::from("wrong"))
            .await;
    }
    let right = SecretString::from(PASSWORD);
    let wrong = SecretString::from("Wrong-password-1");
    let mut times: [(&str, Vec<Duration>); 4] = [
        ("unknown user", Vec::new()),
        ("wrong password", Vec::new()),
        ("locked account", Vec::new()),
        ("success", Vec::new()),
    ];
    for round in 0..rounds {
        for (i, (_, samples)) in times.iter_mut().enumerate() {
            let (user, password) = match i {
                0 => ("nobody", &right),
                1 => ("alice", &wrong),
                2 => ("locked", &right),
                _ => ("alice", &right),
            };
            let start = Instant::now();
            let result = service.operator_login(&ctx, user, password).await;
            samples.push(start.elapsed());
            assert_eq!(result.is_ok(), i == 3, "round {round}, {user}");
        }
        if round % 8 == 7 {
            // Keep alice below the lockout threshold (not timed).
            service.unlock_account(&accounts[0], &by).await.unwrap();
        }
    }
    println!("operator login at the real cost, SQLite (synchronous=FULL), {rounds} rounds:");
    let mut medians = Vec::new();
    for (name, samples) in times {
        let (median, p90) = stats(samples);
        medians.push(median);
        println!(
            "  {name:<15} median {:>7.1} ms   p90 {:>7.1} ms",
            median.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3
        );
    }
    let failures = &medians[..3];
    let (lo, hi) = (
        failures.iter().min().unwrap(),
        failures.iter().max().unwrap(),
    );
    println!(
        "  largest gap between the three failures: {:.1} ms ({:.1}% of the fastest)",
        (*hi - *lo).as_secs_f64() * 1e3,
        (*hi - *lo).as_secs_f64() / lo.as_secs_f64() * 100.0
    );
}
