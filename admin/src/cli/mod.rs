//! The `ukey-admin` command line. Management commands act on the database directly: whoever
//! can run them already owns the data. They call the same service functions as the
//! management API and are audited the same way, the actor being the local OS user
//! (`cli:<user>`).

mod audit;
mod init;
mod output;
mod run;

pub use init::{BootstrapAccount, InitError, InitOptions, Initialized, init};
pub use output::{Columns, Format, write_all};
pub use run::{CliError, execute, serve};

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/ukey-admin/ukey-admin.toml";

#[derive(Debug, Parser)]
#[command(
    name = "ukey-admin",
    version,
    about = "The ukey admin service and its management commands"
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "UKEY_ADMIN_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Database to use instead of the configuration's: `postgres://…` or `sqlite:FILE`.
    #[arg(long, global = true)]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an installation: database, CA, server certificate and configuration file.
    Init(InitArgs),
    /// Run the HTTPS service.
    Serve,
    /// Organisation units.
    #[command(subcommand)]
    Units(UnitsCommand),
    /// Organisation administrators (党组织管理员).
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// Tokens (U-Keys).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Login records.
    #[command(subcommand)]
    Logins(LoginsCommand),
    /// The audit trail: verify the chain, export it, seal what is past retention.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Operator accounts (break-glass recovery; day-to-day management is the API's).
    #[command(subcommand)]
    Accounts(AccountsCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; name the first broken record and exit non-zero if there is one.
    Verify,
    /// Write records for a SIEM, oldest first.
    Export {
        /// From this date (YYYY-MM-DD, Asia/Shanghai) or instant (RFC 3339).
        #[arg(long)]
        since: String,
        /// Up to (not including) this date or instant.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = crate::audit::ExportFormat::Jsonl)]
        format: crate::audit::ExportFormat,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Seal and delete records older than the retention period (at least 180 days).
    Seal {
        /// Days to keep; default: the configuration's `[audit] retention_days`.
        #[arg(long)]
        retention_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Issue a one-time secret in place of an account's password (when no system
    /// administrator can: e.g. the security administrator's or the auditor's own account).
    Reset { username: String },
    /// Lift an account's lockout.
    Unlock { username: String },
}

impl Command {
    /// Whether the command reads the configuration file (`init` writes it).
    pub fn needs_config(&self) -> bool {
        !matches!(self, Command::Init(_))
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for the database, the CA, the TLS files and the configuration.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address the service listens on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// DNS names (and IP addresses) in the server certificate; default: localhost and the
    /// listen address.
    #[arg(long = "server-name")]
    pub server_names: Vec<String>,
    /// Organisation named in the CA certificates.
    #[arg(long, default_value = "ukey")]
    pub organization: String,
    /// How operators log in: `token+password` (two factors) or `password` (a lab only).
    #[arg(long, default_value = "token+password")]
    pub operator_login: String,
}

#[derive(Debug, Subcommand)]
pub enum UnitsCommand {
    /// Import units (and administrators) from CSV or XLSX: the examinee list (简码,单位简称),
    /// the purchase list (隶属关系,党组织名称,管理员姓名,联系电话) or a `units export`.
    Import {
        file: PathBuf,
        /// Unit under which the examinee list's units go.
        #[arg(long)]
        parent: Option<String>,
        /// Check and show what would be imported; store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export every unit (CSV imports back).
    Export {
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List units as a tree.
    List {
        /// Only this unit and those below it.
        #[arg(long)]
        under: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Add one unit.
    Add {
        #[arg(long)]
        code: String,
        /// Full name (公章上的全称).
        #[arg(long)]
        name: String,
        #[arg(long)]
        short_name: Option<String>,
        /// 党委, 党工委, 党总支, 党支部, 党组 or 其他; guessed from the name if omitted.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        parent: Option<String>,
        /// Assessed each month (考核对象).
        #[arg(long)]
        examinee: bool,
        #[arg(long)]
        contact: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Move a unit (with everything below it) under another unit.
    Move {
        code: String,
        /// The new parent.
        #[arg(long, conflicts_with = "top", required_unless_present = "top")]
        to: Option<String>,
        /// Make it a top-level unit.
        #[arg(long)]
        top: bool,
    },
    /// Deactivate a unit: its tokens are refused until it is activated again.
    Deactivate {
        code: String,
    },
    Activate {
        code: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    Add {
        #[arg(long)]
        unit: String,
        #[arg(long)]
        name: String,
        /// Mainland mobile number (11 digits).
        #[arg(long)]
        mobile: String,
    },
    List {
        /// Only administrators of this unit and those below it.
        #[arg(long)]
        unit: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Args)]
pub struct Change {
    #[arg(long)]
    pub serial: String,
    /// Why (recorded in the token's history).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Register a token from its certificate (PEM or DER), bound to --unit if given.
    Register {
        #[arg(long)]
        serial: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        manufacturer: Option<String>,
        #[arg(long, default_value = "registered from its certificate")]
        reason: String,
    },
    /// Bind an unbound token to a unit (activates a registered token).
    Bind {
        #[command(flatten)]
        change: Change,
        #[arg(long)]
        unit: String,
    },
    /// Move a bound token to another unit.
    Rebind {
        #[command(flatten)]
        change: Change,
        #[arg(long)]
        unit: String,
    },
    Suspend(Change),
    /// End a suspension.
    Resume(Change),
    /// Report a token lost.
    Lost(Change),
    Revoke {
        #[command(flatten)]
        change: Change,
        /// The token that replaces this one.
        #[arg(long)]
        replaced_by: Option<String>,
    },
    List {
        /// Only tokens bound to this unit or below it.
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A token's history of status and binding changes.
    History {
        #[arg(long)]
        serial: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Args)]
pub struct LoginsArgs {
    /// Month in Asia/Shanghai time, YYYY-MM.
    #[arg(long)]
    pub month: String,
    /// Only logins of tokens bound to this unit or below it.
    #[arg(long)]
    pub unit: Option<String>,
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum LoginsCommand {
    List {
        #[command(flatten)]
        args: LoginsArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    Export {
        #[command(flatten)]
        args: LoginsArgs,
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
}
