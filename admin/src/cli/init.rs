//! `ukey-admin init`: a new installation in one directory — database, CA and server
//! certificate (through ukey-certs), the audit key, the configuration file, and the three
//! officers' first accounts with one-time bootstrap secrets (there is no built-in default
//! account). It never overwrites: an existing installation is refused, and a failed init
//! removes what it wrote.

use crate::audit::{AuditKey, AuditKeyError};
use crate::clock::ManualClock;
use crate::config::{AccountsSection, Config, ServerSection};
use crate::domain::account::Role;
use crate::service::{Actor, OperatorLogin, Service, ServiceError};
use crate::storage::{DatabaseLocation, StorageError};
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use ukey_certs::{CaOptions, CertificateAuthority, ServerProfile};

/// Names of the files an installation holds, relative to its directory.
pub const CONFIG_FILE: &str = "ukey-admin.toml";
pub const DATABASE_FILE: &str = "ukey-admin.db";
pub const CA_DIR: &str = "ca";
pub const SERVER_CERT: &str = "tls/server.pem";
pub const SERVER_KEY: &str = "tls/server.key";
pub const AUDIT_KEY: &str = "audit.key";

/// The three officers' first accounts: username, display name, role.
pub const OFFICERS: &[(&str, &str, Role)] = &[
    ("sysadmin", "系统管理员", Role::Sysadmin),
    ("secadmin", "安全保密管理员", Role::Secadmin),
    ("auditor", "安全审计员", Role::Auditor),
];

/// An officer's first account and its one-time bootstrap secret (shown once).
#[derive(Debug)]
pub struct BootstrapAccount {
    pub username: String,
    pub role: Role,
    pub secret: SecretString,
    pub expires_at: OffsetDateTime,
}

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    pub config: PathBuf,
    pub officers: Vec<BootstrapAccount>,
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub server_names: Vec<String>,
    pub organization: String,
    /// A PostgreSQL URL; SQLite in the data directory when `None`.
    pub database: Option<String>,
    pub operator_login: OperatorLogin,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error("{} already exists: refusing to overwrite an existing installation", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("creating the CA: {0}")]
    Ca(#[from] ukey_certs::CaError),
    #[error("issuing the server certificate: {0}")]
    Issue(#[from] ukey_certs::IssueError),
    #[error("creating the database: {0}")]
    Database(#[from] StorageError),
    #[error("writing the configuration: {0}")]
    Config(#[from] toml::ser::Error),
    #[error("creating the audit key: {0}")]
    AuditKey(#[from] AuditKeyError),
    #[error("the database already holds operator accounts: {0} is not a new installation")]
    NotEmpty(String),
    #[error("creating the officers' accounts: {0}")]
    Accounts(#[from] ServiceError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates the installation; returns its configuration file and the officers' secrets.
pub async fn init(options: &InitOptions, now: OffsetDateTime) -> Result<Initialized, InitError> {
    let dir = &options.data_dir;
    for existing in [CONFIG_FILE, DATABASE_FILE, CA_DIR, "tls", AUDIT_KEY] {
        let path = dir.join(existing);
        if path.exists() {
            return Err(InitError::Exists(path));
        }
    }
    let created_dir = !dir.exists();
    let result = create(options, now).await;
    if result.is_err() {
        // Leave nothing half-made behind; a directory that existed keeps only what it had.
        if created_dir {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            for made in [
                CONFIG_FILE,
                DATABASE_FILE,
                "ukey-admin.db-wal",
                "ukey-admin.db-shm",
                CA_DIR,
                "tls",
                AUDIT_KEY,
            ] {
                let path = dir.join(made);
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }
    result
}

async fn create(options: &InitOptions, now: OffsetDateTime) -> Result<Initialized, InitError> {
    let dir = &options.data_dir;
    ukey_certs::create_private_dir(dir).map_err(io(dir))?;
    let ca_options = CaOptions {
        organization: options.organization.clone(),
        name: options.organization.clone(),
        ..CaOptions::default()
    };
    let ca = CertificateAuthority::create(&dir.join(CA_DIR), &ca_options, now)?;

    let (mut dns, mut ips): (Vec<String>, Vec<IpAddr>) = (Vec::new(), Vec::new());
    let mut names = options.server_names.clone();
    if names.is_empty() {
        names.push("localhost".into());
        names.push("127.0.0.1".into());
        if !options.listen.ip().is_unspecified() {
            names.push(options.listen.ip().to_string());
        }
    }
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(&name) => dns.push(name),
            Err(_) => {}
        }
    }
    let server = ca.issue_server(&ServerProfile::new(dns, ips), now)?;
    let tls = dir.join("tls");
    ukey_certs::create_private_dir(&tls).map_err(io(&tls))?;
    let cert = dir.join(SERVER_CERT);
    ukey_certs::write_public_file(&cert, server.chain_pem.as_bytes()).map_err(io(&cert))?;
    let key = dir.join(SERVER_KEY);
    ukey_certs::write_private_file(&key, server.key_pem.expose_secret().as_bytes())
        .map_err(io(&key))?;

    let database = options
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{DATABASE_FILE}"));
    let audit_key = AuditKey::create(&dir.join(AUDIT_KEY))?;
    let location = DatabaseLocation::parse(&database, dir);
    let storage = location.open().await?;
    if let Some(existing) = storage.accounts().await?.first() {
        // A PostgreSQL database may outlive a data directory: never add officers twice.
        return Err(InitError::NotEmpty(existing.username.to_string()));
    }

    let mut config = Config::with_database(&database, dir);
    config.accounts = AccountsSection {
        operator_login: options.operator_login,
        ..AccountsSection::default()
    };
    let settings = config
        .settings()
        .map_err(|e| InitError::Accounts(ServiceError::InvalidInput(e.to_string())))?;
    let service = Service::new(storage, Arc::new(ManualClock::at(now)), settings, audit_key);
    let mut init_actor = Actor::cli();
    init_actor.name = format!("{} (init)", init_actor.name);
    let made = service.bootstrap_officers(OFFICERS, &init_actor).await?;
    let officers = made
        .into_iter()
        .map(|(account, secret)| BootstrapAccount {
            username: account.username.to_string(),
            role: account.roles.first().copied().unwrap_or(Role::Operator),
            secret,
            expires_at: account.secret_expires_at.unwrap_or(now),
        })
        .collect();
    config.ca_dir = PathBuf::from(CA_DIR);
    config.server = ServerSection {
        listen: options.listen,
        cert: PathBuf::from(SERVER_CERT),
        key: PathBuf::from(SERVER_KEY),
        client_ca: PathBuf::from(CA_DIR).join("ca-chain.pem"),
        ..ServerSection::default()
    };
    let text = format!(
        "# ukey-admin configuration, written by `ukey-admin init`.\n\
         # Every setting can be overridden by a UKEY_ADMIN_* environment variable.\n{}",
        toml::to_string(&config)?
    );
    let path = dir.join(CONFIG_FILE);
    // The file may hold a PostgreSQL password: owner-only.
    ukey_certs::write_private_file(&path, text.as_bytes()).map_err(io(&path))?;
    Ok(Initialized {
        config: path,
        officers,
    })
}
