//! PostgreSQL for tests: `TEST_DATABASE_URL` when given, otherwise a throwaway cluster made
//! with Debian's `initdb` and `pg_ctl` in a temp dir. Either way each test gets a database of
//! its own, dropped afterwards.

use crate::process::{free_port, is_root, run};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A PostgreSQL server for one test.
#[derive(Debug)]
pub struct TestPostgres {
    /// URL of the maintenance database, used to create and drop test databases.
    admin_url: String,
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    dir: TempDir,
    bin: PathBuf,
}

/// A database of its own; dropped when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
}

const SUPERUSER: &str = "postgres";

impl TestPostgres {
    /// Connects to `TEST_DATABASE_URL`, or starts a private cluster on a free port (with
    /// fsync off: tests do not survive power loss anyway, and it is much faster).
    pub fn start() -> TestPostgres {
        Self::start_with(false)
    }

    /// As [`start`](Self::start), but a private cluster keeps fsync and full-page writes on,
    /// as in production: for benchmarks of durable commits.
    pub fn start_durable() -> TestPostgres {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> TestPostgres {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return TestPostgres {
                admin_url: url,
                cluster: None,
            };
        }
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("ukey-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let data = dir.path().join("data");
        copy_template(&bin, &data);
        let sockets = dir.path().join("sock");
        std::fs::create_dir(&sockets).expect("socket dir");
        chown_to_postgres(dir.path());
        let cluster = Cluster { dir, bin };
        // The port may be taken between choosing and binding; try a few.
        for attempt in 0..5 {
            let port = free_port();
            let speed = if durable {
                ""
            } else {
                " -c fsync=off -c full_page_writes=off"
            };
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1{speed} -c max_connections=200",
                sockets.display()
            );
            let log = cluster.dir.path().join("server.log");
            let started = as_postgres(
                Command::new(cluster.bin.join("pg_ctl"))
                    .args(["start", "-w", "-t", "30", "-s", "-D"]),
            )
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &opts])
            .status()
            .is_ok_and(|s| s.success());
            if started {
                return TestPostgres {
                    admin_url: format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres"),
                    cluster: Some(cluster),
                };
            }
            if attempt == 4 {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("PostgreSQL did not start:\n{log}");
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// A new, empty database on this server.
    pub fn create_database(&self) -> TestDatabase {
        let name = format!("ukey_test_{}", random_suffix());
        psql(&self.admin_url, &format!("CREATE DATABASE {name}"));
        TestDatabase {
            url: replace_database(&self.admin_url, &name),
            name,
            admin_url: self.admin_url.clone(),
        }
    }

    /// Whether this is a private cluster (rather than `TEST_DATABASE_URL`).
    pub fn is_private(&self) -> bool {
        self.cluster.is_some()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Some(cluster) = &self.cluster {
            let _ = as_postgres(Command::new(cluster.bin.join("pg_ctl")).args([
                "stop",
                "-m",
                "immediate",
                "-s",
                "-D",
            ]))
            .arg(cluster.dir.path().join("data"))
            .status();
        }
    }
}

impl TestDatabase {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &self.admin_url, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    run(Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]));
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{nanos}", std::process::id())
}

/// The newest Debian PostgreSQL under /usr/lib/postgresql.
fn pg_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server is not installed (/usr/lib/postgresql): run `make setup`")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no initdb under /usr/lib/postgresql/*/bin: run `make setup`")
}

/// `initdb` takes a second or two; a template cluster made once per machine and copied takes
/// a few milliseconds. The template is made under a file lock so parallel tests share it.
fn copy_template(bin: &Path, data: &Path) {
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = std::env::temp_dir().join(format!("ukey-testkit-pg{version}-template"));
    let template = root.join("data");
    let lock_path = std::env::temp_dir().join(format!("ukey-testkit-pg{version}-template.lock"));
    let lock = File::create(&lock_path).expect("template lock file");
    lock.lock().expect("lock the PostgreSQL template");
    let ready = root.join("ready");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("template dir");
        chown_to_postgres(&root);
        run(as_postgres(&mut Command::new(bin.join("initdb")))
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "-D",
            ])
            .arg(&template));
        File::create(&ready).expect("mark the template ready");
    }
    run(Command::new("cp").arg("-a").arg(&template).arg(data));
    drop(lock);
}

/// PostgreSQL refuses to run as root; as root, run it as the `postgres` user Debian creates.
fn as_postgres(cmd: &mut Command) -> &mut Command {
    if is_root() {
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
        *cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program).args(args);
    }
    cmd
}

fn chown_to_postgres(path: &Path) {
    if is_root() {
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path));
        // The temp dir's parent chain must be traversable by postgres.
        run(Command::new("chmod").arg("0755").arg(path));
    }
}
