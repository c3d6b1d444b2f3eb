//! Login throughput: N concurrent clients, each doing a full mutual-TLS handshake (EC P-256
//! client certificate, no resumption) and `POST /api/v1/sessions`, against the service in this
//! process, on SQLite (WAL, synchronous=FULL) and on PostgreSQL (fsync on). Every login is
//! acknowledged only after its commit. Prints logins/s and latency percentiles.
//!
//! `make bench`, or `cargo bench -p ukey-admin --bench logins`. Settings (environment):
//! UKEY_BENCH_CLIENTS (64), UKEY_BENCH_SECONDS (10), UKEY_BENCH_BACKENDS (sqlite,postgres).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http_body_util::{BodyExt, Full};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ukey_admin::clock::SystemClock;
use ukey_admin::domain::{NewToken, NewUnit, UnitKind};
use ukey_admin::service::{Service, Settings};
use ukey_admin::storage::{PostgresStorage, SqliteStorage, Storage};
use ukey_proto::{TokenSerial, UnitCode};
use ukey_testkit::{ClientCert, TestPki, TestPostgres};

const TOKENS: usize = 32;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn client_config(pki: &TestPki, cert: &ClientCert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![cert.cert_der.clone().into()],
        rustls_pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One full login: TCP connect, TLS handshake, POST, read the answer.
async fn login(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let Ok(tls) = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    else {
        return false;
    };
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await
    else {
        return false;
    };
    tokio::spawn(conn);
    let req = hyper::Request::post("/api/v1/sessions")
        .header("host", "localhost")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    match sender.send_request(req).await {
        Ok(resp) => {
            let ok = resp.status() == 201;
            let _ = resp.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}

async fn run(name: &str, storage: Arc<dyn Storage>, clients: usize, seconds: u64) {
    let pki = TestPki::new();
    let now = time::OffsetDateTime::now_utc();
    let key = Arc::new(ukey_admin::audit::AuditKey::generate());
    storage
        .insert_unit(
            &NewUnit {
                code: UnitCode::parse("B").unwrap(),
                name: "bench".into(),
                short_name: None,
                kind: UnitKind::Branch,
                parent: None,
                examinee: false,
                contact_name: None,
                contact_phone: None,
            },
            now,
            ukey_admin::storage::Audited {
                key: key.clone(),
                entry: ukey_admin::audit::AuditEntry::new(
                    now,
                    "bench",
                    "bench",
                    ukey_admin::audit::AuditResult::Success,
                ),
            },
        )
        .await
        .unwrap();
    let mut configs = Vec::new();
    for i in 0..TOKENS {
        let serial = TokenSerial::parse(&format!("B{i}")).unwrap();
        let cert = pki.token_client(&UnitCode::parse("B").unwrap(), &serial);
        let info = ukey_certs::CertificateInfo::from_der(&cert.cert_der).unwrap();
        let token = NewToken {
            serial,
            model: None,
            manufacturer: None,
            cert_der: cert.cert_der.clone(),
            fingerprint: info.spki_fingerprint,
            cert_serial: info.serial.to_hex(),
            not_before: info.not_before,
            not_after: info.not_after,
        };
        storage
            .register_token(
                &token,
                Some(&UnitCode::parse("B").unwrap()),
                "bench",
                "bench",
                now,
                ukey_admin::storage::Audited {
                    key: key.clone(),
                    entry: ukey_admin::audit::AuditEntry::new(
                        now,
                        "bench",
                        "bench",
                        ukey_admin::audit::AuditResult::Success,
                    ),
                },
            )
            .await
            .unwrap();
        configs.push(client_config(&pki, &cert));
    }
    let service = Service::new(
        storage.clone(),
        Arc::new(SystemClock),
        Settings::default(),
        (*key).clone(),
    );
    let tls = ukey_admin::http::tls::server_config(
        &pki.server().cert_path,
        &pki.server().key_path,
        &pki.ca_path(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ukey_admin::http::run(
        listener,
        tls,
        ukey_admin::http::api::router(service),
        ukey_admin::http::ServerLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));

    // Warm-up, then the measured run.
    for c in &configs {
        assert!(login(addr, c.clone()).await, "warm-up login failed");
    }
    let running = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..clients {
        let config = configs[w % TOKENS].clone();
        let running = running.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            while running.load(Ordering::Relaxed) {
                let t = Instant::now();
                if login(addr, config.clone()).await {
                    latencies.push(t.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    running.store(false, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await.unwrap();
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "{name:>10}: {clients} clients, {:.0} durable logins/s ({} in {elapsed:.1} s, {failures} failed), latency p50 {:.1} ms, p99 {:.1} ms",
        all.len() as f64 / elapsed,
        all.len(),
        pct(0.50),
        pct(0.99),
    );
    let _ = stop.send(());
    server.await.unwrap();
}

fn main() {
    let clients: usize = env_or("UKEY_BENCH_CLIENTS", "64").parse().unwrap();
    let seconds: u64 = env_or("UKEY_BENCH_SECONDS", "10").parse().unwrap();
    let backends = env_or("UKEY_BENCH_BACKENDS", "sqlite,postgres");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ukey-admin login benchmark: full mTLS handshake (EC P-256) + POST /api/v1/sessions; client and server share {cores} cores"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for backend in backends.split(',') {
            match backend.trim() {
                "sqlite" => {
                    let dir = tempfile::tempdir().unwrap();
                    let storage = SqliteStorage::open(&dir.path().join("bench.db"))
                        .await
                        .unwrap();
                    run("sqlite", Arc::new(storage), clients, seconds).await;
                }
                "postgres" => {
                    // fsync on, as in production (unless TEST_DATABASE_URL names a server).
                    let pg = TestPostgres::start_durable();
                    let db = pg.create_database();
                    let storage = PostgresStorage::connect(db.url()).await.unwrap();
                    let fsync: String = sqlx::query_scalar("SHOW fsync")
                        .fetch_one(&sqlx::PgPool::connect(db.url()).await.unwrap())
                        .await
                        .unwrap();
                    assert_eq!(fsync, "on");
                    run("postgres", Arc::new(storage), clients, seconds).await;
                }
                other => panic!("unknown backend {other:?}"),
            }
        }
    });
}
