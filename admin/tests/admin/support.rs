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
    /// Another `Store` keeps the database alive.
    Shared,
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

    /// The same database, for a second service over it (the original must outlive this).
    pub fn share(&self) -> Store {
        Store {
            storage: self.storage.clone(),
            _guard: Guard::Shared,
        }
    }

    /// The SQLite file, when this store is one.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self._guard {
            Guard::Sqlite(dir) => Some(dir.path().join("ukey-admin.db")),
            _ => None,
        }
    }

    /// The PostgreSQL URL, when this store is one.
    pub fn postgres_url(&self) -> Option<String> {
        match &self._guard {
            Guard::Postgres(_, db) => Some(db.url().to_owned()),
            _ => None,
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

/// The audit key of every store in this test process (each test runs in its own process).
pub fn test_key() -> Arc<ukey_admin::audit::AuditKey> {
    Arc::new(ukey_admin::audit::AuditKey::from_bytes(&[7; 32]))
}

/// An audit record for a storage call made directly by a test.
pub fn audited() -> ukey_admin::storage::Audited {
    ukey_admin::storage::Audited {
        key: test_key(),
        entry: ukey_admin::audit::AuditEntry::new(
            t0(),
            "test",
            "test.setup",
            ukey_admin::audit::AuditResult::Success,
        ),
    }
}

/// A fixed instant for tests: 2026-01-15 10:00 Shanghai time.
pub fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-01-15 02:00 UTC)
}

/// The service in this process on 127.0.0.1:0, with the test PKI and a clock the test holds.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub service: ukey_admin::service::Service,
    pub clock: ukey_admin::clock::ManualClock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(pki: &TestPki, storage: Arc<dyn Storage>) -> TestServer {
        let clock = ukey_admin::clock::ManualClock::at(OffsetDateTime::now_utc());
        let service = ukey_admin::service::Service::new(
            storage,
            Arc::new(clock.clone()),
            ukey_admin::service::Settings::default(),
            (*test_key()).clone(),
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
        let app = ukey_admin::http::api::router(service.clone());
        let task = tokio::spawn(ukey_admin::http::run(
            listener,
            tls,
            app,
            ukey_admin::http::ServerLimits::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            service,
            clock,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// A TLS client with a client certificate (or none) that keeps TLS sessions for resumption.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

/// One HTTP/1.1 connection over TLS.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    pub resumed: bool,
}

impl TlsClient {
    pub fn new(ca_pem: &str, cert: Option<&ClientCert>) -> TlsClient {
        Self::with_resumption(ca_pem, cert, true)
    }

    /// Without resumption every connection is a full handshake.
    pub fn with_resumption(ca_pem: &str, cert: Option<&ClientCert>, resume: bool) -> TlsClient {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match cert {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![rustls_pki_types::CertificateDer::from(c.cert_der.clone())],
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        TlsClient {
            config: Arc::new(config),
        }
    }

    pub async fn connect(&self, addr: std::net::SocketAddr) -> std::io::Result<Connection> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender, resumed })
    }
}

impl Connection {
    /// Sends a request with extra headers; returns the status, the headers and the JSON body.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<(u16, http::HeaderMap, serde_json::Value)> {
        use http_body_util::BodyExt;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap();
        self.sender.ready().await.map_err(std::io::Error::other)?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok((
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// Sends a request and returns the status and the JSON body (`Null` when empty).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        session: Option<uuid::Uuid>,
        body: &str,
    ) -> std::io::Result<(u16, serde_json::Value)> {
        use http_body_util::BodyExt;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header(ukey_proto::api::CLIENT_VERSION_HEADER, "test-client/1");
        if let Some(id) = session {
            req = req.header(ukey_proto::api::SESSION_HEADER, id.to_string());
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap();
        self.sender.ready().await.map_err(std::io::Error::other)?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        };
        Ok((status, json))
    }
}

/// An installation made by the real `ukey-admin init`, driven through the real binary.
pub struct Installation {
    pub dir: TempDir,
    pub config: std::path::PathBuf,
    init_stdout: String,
    /// Kept for PostgreSQL installations.
    _pg: Option<(TestPostgres, TestDatabase)>,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_ukey-admin");

impl Installation {
    pub fn sqlite() -> Installation {
        Self::init(None)
    }

    pub fn postgres() -> Installation {
        let pg = TestPostgres::start();
        let db = pg.create_database();
        let url = db.url().to_owned();
        let mut inst = Self::init(Some(&url));
        inst._pg = Some((pg, db));
        inst
    }

    fn init(database: Option<&str>) -> Installation {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("init").arg("--data-dir").arg(&data);
        if let Some(db) = database {
            cmd.args(["--database", db]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Installation {
            config: data.join("ukey-admin.toml"),
            init_stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            dir,
            _pg: None,
        }
    }

    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The PostgreSQL URL of a PostgreSQL installation.
    pub fn database_url(&self) -> Option<&str> {
        self._pg.as_ref().map(|(_, db)| db.url())
    }

    /// Stdout of `ukey-admin init`: the bootstrap secrets are printed there.
    pub fn init_output(&self) -> &str {
        &self.init_stdout
    }

    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--config").arg(&self.config);
        cmd
    }

    /// Runs a management command; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.command().args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "ukey-admin {args:?} failed:\n{stderr}");
        stdout
    }

    pub fn ca(&self) -> ukey_certs::CertificateAuthority {
        ukey_certs::CertificateAuthority::load(&self.data().join("ca")).unwrap()
    }

    pub fn root_pem(&self) -> String {
        std::fs::read_to_string(self.data().join("ca/root-ca.pem")).unwrap()
    }

    /// A token certificate issued by this installation's CA from a CSR made here (the key in
    /// a file, for the rustls test client).
    pub fn issue_token(&self, unit: &str, unit_name: &str, s: &str) -> ClientCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(Vec::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        let profile = ukey_certs::TokenProfile::new(code(unit), unit_name, serial(s));
        let issued = self
            .ca()
            .issue_token(csr.der(), &profile, OffsetDateTime::now_utc())
            .unwrap();
        let cert_path = self.dir.path().join(format!("{s}.pem"));
        let key_path = self.dir.path().join(format!("{s}.key"));
        std::fs::write(&cert_path, &issued.pem).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        ClientCert {
            cert_pem: issued.pem,
            key_pem: key.serialize_pem(),
            cert_der: issued.der,
            cert_path,
            key_path,
        }
    }

    /// Starts `ukey-admin serve` on a free port and waits until it accepts connections.
    pub fn serve(&self) -> (std::process::Child, std::net::SocketAddr) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let child = self
            .command()
            .arg("serve")
            .env("UKEY_ADMIN_LISTEN", addr.to_string())
            .env("UKEY_ADMIN_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ukey-admin serve did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (child, addr)
    }
}
