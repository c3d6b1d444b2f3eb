//! `ukey-ca`: the offline CA. Parses arguments, starts tracing and calls `ukey_certs::store`;
//! what it prints is in `render.rs`.

mod render;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use ukey_certs::store::{CaStore, DEFAULT_CRL_DAYS, StoreSettings, write_output};
use ukey_certs::{
    CaOptions, CertSerial, KeyAlgorithm, RevocationReason, ServerProfile, TokenProfile,
};
use ukey_proto::{TokenSerial, UnitCode};

/// The ukey certificate authority, for offline use over a CA directory.
///
/// The directory holds the root and issuing CA, an index of everything issued and revoked,
/// and the current CRL. The admin service issues through the same library.
#[derive(Debug, Parser)]
#[command(name = "ukey-ca", version)]
struct Cli {
    /// The CA directory.
    #[arg(
        long,
        short = 'd',
        env = "UKEY_CA_DIR",
        global = true,
        default_value = "."
    )]
    dir: PathBuf,
    /// Print data as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a root and an issuing CA, the index and the first CRL in the directory.
    Init(InitArgs),
    /// Issue a TLS server certificate with a new key (for ukey-admin).
    IssueServer(ServerArgs),
    /// Issue a certificate from a CSR made on a token.
    Issue(IssueArgs),
    /// Revoke a certificate this CA issued and write a new CRL.
    Revoke(RevokeArgs),
    /// Write a new CRL (run from a timer before the current one's nextUpdate).
    Crl(CrlArgs),
    /// List the certificates this CA issued, with their status.
    List,
    /// Show a certificate, a CSR or a CRL (PEM or DER).
    Show {
        /// The file to show.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct InitArgs {
    /// organizationName of the CA certificates.
    #[arg(long, default_value = "ukey")]
    org: String,
    /// The CAs are named "<NAME> Root CA" and "<NAME> Issuing CA".
    #[arg(long, default_value = "ukey")]
    name: String,
    /// Key algorithm of both CAs: ec-p256 or rsa-2048.
    #[arg(long, default_value = "ec-p256")]
    key: KeyAlgorithm,
    /// Validity of the root CA, in days.
    #[arg(long, default_value_t = 7300)]
    root_days: u32,
    /// Validity of the issuing CA, in days.
    #[arg(long, default_value_t = 3650)]
    ca_days: u32,
    /// CRL distribution point written into every certificate (repeatable).
    #[arg(long = "crl-url")]
    crl_urls: Vec<String>,
    /// Validity of each CRL, in days.
    #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
    crl_days: u32,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// DNS name (repeatable).
    #[arg(long = "dns")]
    dns: Vec<String>,
    /// IP address (repeatable).
    #[arg(long = "ip")]
    ips: Vec<IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = ukey_certs::DEFAULT_SERVER_DAYS)]
    days: u32,
    /// Key algorithm: ec-p256 or rsa-2048.
    #[arg(long, default_value = "ec-p256")]
    key: KeyAlgorithm,
    /// Where to write the certificate chain (server then issuing CA).
    #[arg(long)]
    cert: PathBuf,
    /// Where to write the private key (created 0600).
    #[arg(long = "key-out")]
    key_out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProfileArg {
    Token,
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// The CSR (PEM or DER), made on the token.
    #[arg(long)]
    csr: PathBuf,
    /// The certificate profile.
    #[arg(long, value_enum, default_value = "token")]
    profile: ProfileArg,
    /// The unit's code (urn:ukey:unit:<CODE>).
    #[arg(long)]
    unit: UnitCode,
    /// The unit's full name (the subject's O).
    #[arg(long)]
    unit_name: String,
    /// The token's serial number (urn:ukey:token:<SERIAL>).
    #[arg(long)]
    serial: TokenSerial,
    /// Validity in days.
    #[arg(long, default_value_t = ukey_certs::DEFAULT_TOKEN_DAYS)]
    days: u32,
    /// Write the certificate here instead of to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The certificate's serial number, in hex (as `ukey-ca list` or openssl print it).
    serial: CertSerial,
    /// Why: lost, broken, replaced, key-compromise, affiliation-changed, superseded,
    /// cessation-of-operation, privilege-withdrawn, ca-compromise, unspecified.
    #[arg(long)]
    reason: RevocationReason,
}

#[derive(Debug, Args)]
struct CrlArgs {
    /// Validity of this CRL in days (default: the directory's setting).
    #[arg(long)]
    days: Option<u32>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UKEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ukey-ca: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let now = OffsetDateTime::now_utc();
    let out = render::Output { json: cli.json };
    let dir = cli.dir.as_path();
    match cli.command {
        Command::Init(a) => {
            let options = CaOptions {
                organization: a.org,
                name: a.name,
                key_algorithm: a.key,
                root_validity_days: a.root_days,
                issuing_validity_days: a.ca_days,
            };
            let settings = StoreSettings {
                crl_urls: a.crl_urls,
                crl_days: a.crl_days,
            };
            let store = CaStore::init(dir, &options, settings, now)?;
            out.init(&store)
        }
        Command::IssueServer(a) => {
            let mut profile = ServerProfile::new(a.dns, a.ips);
            profile.validity_days = a.days;
            profile.key_algorithm = a.key;
            refuse_existing(&[a.cert.as_path(), a.key_out.as_path()])?;
            let mut store = CaStore::open(dir)?;
            let (entry, creds) = store.issue_server(&profile, now)?;
            use secrecy::ExposeSecret;
            write_output(&a.key_out, creds.key_pem.expose_secret().as_bytes(), true)?;
            write_output(&a.cert, creds.chain_pem.as_bytes(), false)?;
            out.issued(&entry, None, &[a.cert.as_path(), a.key_out.as_path()])
        }
        Command::Issue(a) => {
            let ProfileArg::Token = a.profile;
            let csr = std::fs::read(&a.csr)
                .with_context(|| format!("reading the CSR {}", a.csr.display()))?;
            let mut profile = TokenProfile::new(a.unit, a.unit_name, a.serial);
            profile.validity_days = a.days;
            if let Some(path) = &a.out {
                refuse_existing(&[path.as_path()])?;
            }
            let mut store = CaStore::open(dir)?;
            let (entry, issued) = store.issue_token(&csr, &profile, now)?;
            match &a.out {
                Some(path) => {
                    write_output(path, issued.pem.as_bytes(), false)?;
                    out.issued(&entry, Some(&issued.pem), &[path.as_path()])
                }
                None => out.issued_to_stdout(&entry, &issued.pem),
            }
        }
        Command::Revoke(a) => {
            let mut store = CaStore::open(dir)?;
            let (entry, crl) = store.revoke(&a.serial, a.reason, now)?;
            out.revoked(&entry, &crl, &store.crl_path())
        }
        Command::Crl(a) => {
            let mut store = CaStore::open(dir)?;
            let crl = store.crl(now, a.days)?;
            out.crl(&crl.info, Some(&store.crl_path()))
        }
        Command::List => {
            let store = CaStore::open(dir)?;
            out.list(store.certificates(), now)
        }
        Command::Show { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            out.show(&bytes, now)
        }
    }
}

/// Checks output paths before anything is issued, so a typo does not cost a certificate.
fn refuse_existing(paths: &[&Path]) -> Result<()> {
    for path in paths {
        if path.symlink_metadata().is_ok() {
            anyhow::bail!("{}: already exists; refusing to overwrite", path.display());
        }
    }
    Ok(())
}
