//! `ukey-admin init`: a new installation in one directory — database, CA and server
//! certificate (through ukey-certs), and the configuration file. It never overwrites: an
//! existing installation is refused, and a failed init removes what it wrote.

use crate::config::{Config, ServerSection};
use crate::storage::{DatabaseLocation, StorageError};
use secrecy::ExposeSecret;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use ukey_certs::{CaOptions, CertificateAuthority, ServerProfile};

/// Names of the files an installation holds, relative to its directory.
pub const CONFIG_FILE: &str = "ukey-admin.toml";
pub const DATABASE_FILE: &str = "ukey-admin.db";
pub const CA_DIR: &str = "ca";
pub const SERVER_CERT: &str = "tls/server.pem";
pub const SERVER_KEY: &str = "tls/server.key";

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub server_names: Vec<String>,
    pub organization: String,
    /// A PostgreSQL URL; SQLite in the data directory when `None`.
    pub database: Option<String>,
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates the installation and returns the path of its configuration file.
pub async fn init(options: &InitOptions, now: OffsetDateTime) -> Result<PathBuf, InitError> {
    let dir = &options.data_dir;
    for existing in [CONFIG_FILE, DATABASE_FILE, CA_DIR, "tls"] {
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
            ] {
                let path = dir.join(made);
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }
    result
}

async fn create(options: &InitOptions, now: OffsetDateTime) -> Result<PathBuf, InitError> {
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
    let location = DatabaseLocation::parse(&database, dir);
    drop(location.open().await?);

    let mut config = Config::with_database(&database, dir);
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
    Ok(path)
}
