//! The service's configuration: a TOML file (unknown keys refused, so a typo never silently
//! falls back to a default), then `UKEY_ADMIN_*` environment variables over it. Relative paths
//! are resolved against the configuration file's directory.

use crate::audit::{AuditKey, AuditKeyError, MIN_RETENTION_DAYS};
use crate::service::{AccountSettings, HashParams, OperatorLogin, SessionSettings, Settings};
use crate::storage::DatabaseLocation;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variables that override the file, and the setting each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("UKEY_ADMIN_DATABASE", "database"),
    ("UKEY_ADMIN_LISTEN", "server.listen"),
    ("UKEY_ADMIN_SERVER_CERT", "server.cert"),
    ("UKEY_ADMIN_SERVER_KEY", "server.key"),
    ("UKEY_ADMIN_CLIENT_CA", "server.client_ca"),
    ("UKEY_ADMIN_MAX_CONNECTIONS", "server.max_connections"),
    ("UKEY_ADMIN_SESSION_TTL_MINUTES", "sessions.ttl_minutes"),
    ("UKEY_ADMIN_CA_DIR", "ca_dir"),
    ("UKEY_ADMIN_OPERATOR_LOGIN", "accounts.operator_login"),
    ("UKEY_ADMIN_AUDIT_KEY", "audit.key_file"),
    ("UKEY_ADMIN_LOG_LEVEL", "log.level"),
    ("UKEY_ADMIN_LOG_FORMAT", "log.format"),
];

/// Variables with the prefix that are not settings (read by the command line itself).
const ENV_NOT_SETTINGS: &[&str] = &["UKEY_ADMIN_CONFIG"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("{name}={value:?}: {detail}")]
    Env {
        name: String,
        value: String,
        detail: String,
    },
    #[error("unknown environment variable {0}; the settings are {known}", known = ENV_OVERRIDES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    UnknownEnv(String),
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    AuditKey(#[from] AuditKeyError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite:FILE` (relative to this file) or `postgres://user@host/db`.
    pub database: String,
    /// The CA directory (`ukey-certs` layout) that issues token certificates.
    #[serde(default = "default_ca_dir")]
    pub ca_dir: PathBuf,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub sessions: SessionsSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub accounts: AccountsSection,
    #[serde(default)]
    pub audit: AuditSection,
    /// Where this configuration was read from (its directory anchors relative paths).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: SocketAddr,
    /// Server certificate chain, PEM.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Trust anchors for client (token) certificates, PEM.
    pub client_ca: PathBuf,
    pub max_connections: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            cert: PathBuf::from("tls/server.pem"),
            key: PathBuf::from("tls/server.key"),
            client_ca: PathBuf::from("ca/ca-chain.pem"),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsSection {
    /// How long a token session lasts.
    pub ttl_minutes: u64,
}

impl Default for SessionsSection {
    fn default() -> Self {
        SessionsSection { ttl_minutes: 480 }
    }
}

/// Operator accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsSection {
    /// `"token+password"` (a U-Key bound within the operator's subtree, then the password;
    /// the default) or `"password"` (a lab only).
    pub operator_login: OperatorLogin,
    /// Argon2id memory cost in KiB (at least 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (at least 2).
    pub argon2_iterations: u32,
    /// Hours a one-time secret (bootstrap, new account, reset) stays usable.
    pub secret_ttl_hours: u32,
}

impl Default for AccountsSection {
    fn default() -> Self {
        AccountsSection {
            operator_login: OperatorLogin::TokenAndPassword,
            argon2_memory_kib: HashParams::MIN_MEMORY_KIB,
            argon2_iterations: HashParams::MIN_ITERATIONS,
            secret_ttl_hours: 24,
        }
    }
}

/// The audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The HMAC key of the chain (created owner-only by `ukey-admin init`), outside the
    /// database.
    pub key_file: PathBuf,
    /// Days records are kept (at least 180); older ones are sealed and deleted once a day.
    pub retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            key_file: PathBuf::from("audit.key"),
            retention_days: 365,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// A tracing filter, e.g. `info` or `ukey_admin=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

fn default_ca_dir() -> PathBuf {
    PathBuf::from("ca")
}

impl Config {
    /// A configuration with defaults and the given database, anchored at `base_dir`.
    pub fn with_database(database: &str, base_dir: &Path) -> Config {
        Config {
            database: database.to_owned(),
            ca_dir: default_ca_dir(),
            server: ServerSection::default(),
            sessions: SessionsSection::default(),
            log: LogSection::default(),
            accounts: AccountsSection::default(),
            audit: AuditSection::default(),
            base_dir: base_dir.to_owned(),
        }
    }

    /// Reads `path`, then applies the `UKEY_ADMIN_*` variables among `env`.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config.apply_env(env)?;
        Ok(config)
    }

    /// Applies `UKEY_ADMIN_*` overrides; an unknown variable with the prefix is an error (a
    /// misspelt override would otherwise be ignored).
    pub fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in env {
            if !name.starts_with("UKEY_ADMIN_") || ENV_NOT_SETTINGS.contains(&name.as_str()) {
                continue;
            }
            let bad = |detail: String| ConfigError::Env {
                name: name.clone(),
                value: value.clone(),
                detail,
            };
            match name.as_str() {
                "UKEY_ADMIN_DATABASE" => self.database = value.clone(),
                "UKEY_ADMIN_LISTEN" => {
                    self.server.listen = value.parse().map_err(|e| bad(format!("{e}")))?;
                }
                "UKEY_ADMIN_SERVER_CERT" => self.server.cert = value.clone().into(),
                "UKEY_ADMIN_SERVER_KEY" => self.server.key = value.clone().into(),
                "UKEY_ADMIN_CLIENT_CA" => self.server.client_ca = value.clone().into(),
                "UKEY_ADMIN_MAX_CONNECTIONS" => {
                    self.server.max_connections = value.parse().map_err(|e| bad(format!("{e}")))?;
                }
                "UKEY_ADMIN_SESSION_TTL_MINUTES" => {
                    self.sessions.ttl_minutes = value.parse().map_err(|e| bad(format!("{e}")))?;
                }
                "UKEY_ADMIN_CA_DIR" => self.ca_dir = value.clone().into(),
                "UKEY_ADMIN_OPERATOR_LOGIN" => {
                    self.accounts.operator_login = match value.as_str() {
                        "token+password" => OperatorLogin::TokenAndPassword,
                        "password" => OperatorLogin::Password,
                        _ => return Err(bad("use token+password or password".into())),
                    };
                }
                "UKEY_ADMIN_AUDIT_KEY" => self.audit.key_file = value.clone().into(),
                "UKEY_ADMIN_LOG_LEVEL" => self.log.level = value.clone(),
                "UKEY_ADMIN_LOG_FORMAT" => {
                    self.log.format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad("use text or json".into())),
                    };
                }
                _ => return Err(ConfigError::UnknownEnv(name)),
            }
        }
        Ok(())
    }

    /// A path from the configuration, resolved against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    pub fn database_location(&self) -> DatabaseLocation {
        DatabaseLocation::parse(&self.database, &self.base_dir)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.sessions.ttl_minutes.saturating_mul(60))
    }

    /// The service's settings, with every bound checked (hashing cost, retention).
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let a = &self.accounts;
        let hashing = HashParams::new(a.argon2_memory_kib, a.argon2_iterations)
            .map_err(|e| ConfigError::Setting(format!("[accounts] {e}")))?;
        if !(1..=168).contains(&a.secret_ttl_hours) {
            return Err(ConfigError::Setting(
                "[accounts] secret_ttl_hours must be between 1 and 168".into(),
            ));
        }
        if self.audit.retention_days < MIN_RETENTION_DAYS {
            return Err(ConfigError::Setting(format!(
                "[audit] retention_days must be at least {MIN_RETENTION_DAYS}"
            )));
        }
        Ok(Settings {
            sessions: SessionSettings {
                ttl: self.session_ttl(),
            },
            accounts: AccountSettings {
                operator_login: a.operator_login,
                hashing,
                secret_ttl: Duration::from_secs(u64::from(a.secret_ttl_hours) * 3600),
            },
        })
    }

    pub fn audit_key_path(&self) -> PathBuf {
        self.resolve(&self.audit.key_file)
    }

    /// Reads the audit key (refusing a file others can read).
    pub fn audit_key(&self) -> Result<AuditKey, ConfigError> {
        Ok(AuditKey::load(&self.audit_key_path())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ukey-admin.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn unknown_keys_are_refused_with_the_key_named() {
        let (_d, path) =
            write("database = \"sqlite:x.db\"\n[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n");
        let err = Config::load(&path, []).unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn hashing_below_the_floor_and_short_retention_are_refused() {
        let (_d, path) = write(
            "database = \"sqlite:x.db\"\n[accounts]\noperator_login = \"password\"\n\
             argon2_memory_kib = 4096\nargon2_iterations = 2\nsecret_ttl_hours = 24\n",
        );
        let config = Config::load(&path, []).unwrap();
        assert_eq!(config.accounts.operator_login, OperatorLogin::Password);
        assert!(config.settings().unwrap_err().to_string().contains("19456"));
        let (_d, path) =
            write("database = \"sqlite:x.db\"\n[audit]\nkey_file = \"k\"\nretention_days = 90\n");
        let config = Config::load(&path, []).unwrap();
        assert!(config.settings().unwrap_err().to_string().contains("180"));
        let defaults = Config::with_database("sqlite:x.db", Path::new("/"));
        let settings = defaults.settings().unwrap();
        assert_eq!(
            settings.accounts.operator_login,
            OperatorLogin::TokenAndPassword
        );
    }

    #[test]
    fn environment_variables_override_the_file() {
        let (_d, path) = write("database = \"sqlite:x.db\"\n");
        let env = [
            ("UKEY_ADMIN_LISTEN".to_owned(), "0.0.0.0:9443".to_owned()),
            (
                "UKEY_ADMIN_DATABASE".to_owned(),
                "postgres://u@h/db".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = Config::load(&path, env).unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9443");
        assert!(matches!(
            config.database_location(),
            DatabaseLocation::Postgres(_)
        ));
        let typo = Config::load(&path, [("UKEY_ADMIN_LISTN".to_owned(), "x".to_owned())]);
        assert!(matches!(typo, Err(ConfigError::UnknownEnv(_))));
        let bad = Config::load(
            &path,
            [("UKEY_ADMIN_LISTEN".to_owned(), "nowhere".to_owned())],
        );
        assert!(matches!(bad, Err(ConfigError::Env { .. })));
    }
}
