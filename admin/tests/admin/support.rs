//! Shared helpers: stores on both backends, units and tokens made from the test PKI.

use std::sync::Arc;
use tempfile::TempDir;
use time::OffsetDateTime;
use ukey_admin::domain::{NewToken, NewUnit, UnitKind};
use ukey_admin::storage::{PostgresStorage, SqliteStorage, Storage};
use ukey_proto::{TokenSerial, UnitCode};
use ukey_testkit::{ClientCert, TestDatabase, TestPki, TestPostgres};

/// A store and whatever must live as long as it.
pub struct Store {
    pub storage: Arc<dyn Storage>,
    _guard: Guard,
}

#[allow(dead_code)]
enum Guard {
    Sqlite(TempDir),
    Postgres(TestPostgres, TestDatabase),
}

impl Store {
    pub async fn sqlite() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("ukey-admin.db"))
            .await
            .unwrap();
        Store {
            storage: Arc::new(storage),
            _guard: Guard::Sqlite(dir),
        }
    }

    pub async fn postgres() -> Store {
        let pg = TestPostgres::start();
        let db = pg.create_database();
        let storage = PostgresStorage::connect(db.url()).await.unwrap();
        Store {
            storage: Arc::new(storage),
            _guard: Guard::Postgres(pg, db),
        }
    }
}

pub fn code(s: &str) -> UnitCode {
    UnitCode::parse(s).unwrap()
}

pub fn serial(s: &str) -> TokenSerial {
    TokenSerial::parse(s).unwrap()
}

pub fn new_unit(c: &str, name: &str, kind: UnitKind, parent: Option<&str>) -> NewUnit {
    NewUnit {
        code: code(c),
        name: name.to_owned(),
        short_name: None,
        kind,
        parent: parent.map(code),
        examinee: false,
        contact_name: None,
        contact_phone: None,
    }
}

/// A token certificate for `unit`/`serial` from the PKI, as a token to register.
pub fn new_token(pki: &TestPki, unit: &str, s: &str) -> (NewToken, ClientCert) {
    let cert = pki.token_client(&code(unit), &serial(s));
    (token_from_cert(&cert, s), cert)
}

pub fn token_from_cert(cert: &ClientCert, s: &str) -> NewToken {
    let info = ukey_certs::CertificateInfo::from_der(&cert.cert_der).unwrap();
    NewToken {
        serial: serial(s),
        model: Some("SoftHSM".into()),
        manufacturer: None,
        cert_der: cert.cert_der.clone(),
        fingerprint: info.spki_fingerprint,
        cert_serial: info.serial.to_hex(),
        not_before: info.not_before,
        not_after: info.not_after,
    }
}

/// A fixed instant for tests: 2026-01-15 10:00 Shanghai time.
pub fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-01-15 02:00 UTC)
}
