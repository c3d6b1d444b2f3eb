//! Running a parsed command.

use super::output::{self, Format};
use super::{
    AdminsCommand, Change, Cli, Command, LoginsArgs, LoginsCommand, TokensCommand, UnitsCommand,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::domain::{Month, NewUnit, TokenChange, TokenStatus, UnitKind};
use crate::http::tls::TlsError;
use crate::http::{self, ServerLimits};
use crate::import::{self, ImportError};
use crate::service::registry::{TokenRegistration, parse_kind};
use crate::service::{Actor, Service, ServiceError, actions};
use crate::storage::{LoginQuery, StorageError, TokenFilter};
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use ukey_proto::{TokenSerial, UnitCode};

/// What a command can fail on; `main` prints it and exits non-zero.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Init(#[from] super::InitError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    /// `audit verify` found the chain broken (already reported on standard output).
    #[error("the audit trail is broken: {0}")]
    AuditBroken(String),
}

fn unit_code(s: &str) -> Result<UnitCode, CliError> {
    UnitCode::parse(s).map_err(|e| CliError::Invalid(e.to_string()))
}

fn serial(s: &str) -> Result<TokenSerial, CliError> {
    TokenSerial::parse(s).map_err(|e| CliError::Invalid(e.to_string()))
}

/// Opens the database and the audit key, and starts the service over them. Without the key,
/// nothing that must be audited can be done, so nothing starts.
pub(super) async fn open_service(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Service, CliError> {
    let settings = config.settings()?;
    let key = config.audit_key()?;
    let storage = config.database_location().open().await?;
    Ok(Service::new(storage, clock, settings, key))
}

/// Opens the output file, or standard output.
pub(super) fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>, CliError> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |source| CliError::File {
                path: p.to_owned(),
                source,
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// Runs a management command (everything but `init` and `serve`).
pub async fn execute(cli: Cli, config: Config) -> Result<(), CliError> {
    let service = open_service(&config, Arc::new(SystemClock)).await?;
    let by = Actor::cli();
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Init(_) | Command::Serve => {
            return Err(CliError::Invalid("not a management command".into()));
        }
        Command::Units(cmd) => units(&service, cmd, &by, &mut out).await?,
        Command::Admins(AdminsCommand::Add { unit, name, mobile }) => {
            let admin = service
                .add_administrator(unit_code(&unit)?, &name, &mobile, &by)
                .await?;
            writeln!(
                out,
                "added administrator {} ({}) to {} {}",
                admin.name, admin.mobile, admin.unit_code, admin.unit_name
            )?;
        }
        Command::Admins(AdminsCommand::List { unit, format }) => {
            let under = unit.as_deref().map(unit_code).transpose()?;
            let admins = service.administrators(under.as_ref()).await?;
            output::write_all(&admins, format, &mut out)?;
        }
        Command::Tokens(cmd) => tokens(&service, cmd, &by, &mut out).await?,
        Command::Logins(cmd) => {
            let (args, format, export) = match cmd {
                LoginsCommand::List { args, format } => (args, format, false),
                LoginsCommand::Export { args, format } => (args, format, true),
            };
            logins(&service, &args, format, export.then_some(&by)).await?;
        }
        Command::Audit(cmd) => super::audit::audit(&service, &config, cmd, &by, &mut out).await?,
        Command::Accounts(cmd) => super::audit::accounts(&service, cmd, &by, &mut out).await?,
    }
    Ok(())
}

async fn units(
    service: &Service,
    cmd: UnitsCommand,
    by: &Actor,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        UnitsCommand::Import {
            file,
            parent,
            dry_run,
        } => {
            let parent = parent.as_deref().map(unit_code).transpose()?;
            let rows = import::read_rows(&file).map_err(ImportError::from)?;
            let existing = service.units(None).await?;
            let admins = service.administrators(None).await?;
            let (form, plan) = import::plan(&rows, &existing, &admins, parent.as_ref())?;
            for unit in &plan.units {
                writeln!(
                    out,
                    "{} unit {} {} ({}) under {}",
                    if dry_run { "would add" } else { "adding" },
                    unit.code,
                    unit.name,
                    unit.kind.label(),
                    unit.parent.as_ref().map_or("(top)", UnitCode::as_str)
                )?;
            }
            for admin in &plan.administrators {
                writeln!(
                    out,
                    "{} administrator {} {} to {}",
                    if dry_run { "would add" } else { "adding" },
                    admin.name,
                    admin.mobile,
                    admin.unit
                )?;
            }
            if !dry_run {
                service
                    .import(&plan.units, &plan.administrators, parent.as_ref(), by)
                    .await?;
            }
            writeln!(
                out,
                "{form:?} form: {} unit(s), {} administrator(s){}, {} row(s) already present{}",
                plan.units.len(),
                plan.administrators.len(),
                if dry_run {
                    " would be imported"
                } else {
                    " imported"
                },
                plan.unchanged,
                if dry_run {
                    " (dry run: nothing stored)"
                } else {
                    ""
                },
            )?;
        }
        UnitsCommand::Export { format, output } => {
            let units = service.units(None).await?;
            let mut detail = serde_json::Map::new();
            detail.insert("units".into(), units.len().into());
            service
                .record_read(by, &actions::UNITS_EXPORT, None, None, detail)
                .await?;
            let mut w = open_output(output.as_deref())?;
            output::write_all(&units, format, &mut w)?;
            w.flush()?;
        }
        UnitsCommand::List { under, format } => {
            let under = under.as_deref().map(unit_code).transpose()?;
            let units = service.units(under.as_ref()).await?;
            if format == Format::Table {
                let base = units.first().map_or(0, |u| u.depth);
                for u in &units {
                    let indent = "  ".repeat(usize::try_from(u.depth - base).unwrap_or(0));
                    let flags = format!(
                        "{}{}",
                        if u.examinee { " [考核对象]" } else { "" },
                        if u.active { "" } else { " [停用]" }
                    );
                    writeln!(
                        out,
                        "{indent}{} {} ({}){flags}",
                        u.code,
                        u.name,
                        u.kind.label()
                    )?;
                }
            } else {
                output::write_all(&units, format, out)?;
            }
        }
        UnitsCommand::Add {
            code,
            name,
            short_name,
            kind,
            parent,
            examinee,
            contact,
            phone,
        } => {
            let kind = match kind {
                Some(k) => parse_kind(&k)?,
                None => UnitKind::infer_from_name(&name),
            };
            let unit = service
                .add_unit(
                    NewUnit {
                        code: unit_code(&code)?,
                        name,
                        short_name,
                        kind,
                        parent: parent.as_deref().map(unit_code).transpose()?,
                        examinee,
                        contact_name: contact,
                        contact_phone: phone,
                    },
                    by,
                )
                .await?;
            writeln!(
                out,
                "added unit {} {} ({})",
                unit.code,
                unit.name,
                unit.kind.label()
            )?;
        }
        UnitsCommand::Move { code, to, top: _ } => {
            let parent = to.as_deref().map(unit_code).transpose()?;
            let unit = service
                .move_unit(&unit_code(&code)?, parent.as_ref(), by)
                .await?;
            writeln!(
                out,
                "moved {} {} under {}",
                unit.code,
                unit.name,
                unit.parent_code.as_ref().map_or("(top)", UnitCode::as_str)
            )?;
        }
        UnitsCommand::Deactivate { code } => {
            let unit = service
                .set_unit_active(&unit_code(&code)?, false, by)
                .await?;
            writeln!(out, "deactivated {} {}", unit.code, unit.name)?;
        }
        UnitsCommand::Activate { code } => {
            let unit = service
                .set_unit_active(&unit_code(&code)?, true, by)
                .await?;
            writeln!(out, "activated {} {}", unit.code, unit.name)?;
        }
    }
    Ok(())
}

async fn tokens(
    service: &Service,
    cmd: TokensCommand,
    actor: &Actor,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (change, what) = match cmd {
        TokensCommand::Register {
            serial: s,
            cert,
            unit,
            model,
            manufacturer,
            reason,
        } => {
            let certificate = std::fs::read(&cert).map_err(|source| CliError::File {
                path: cert.clone(),
                source,
            })?;
            let token = service
                .register_token(
                    TokenRegistration {
                        serial: serial(&s)?,
                        certificate,
                        unit: unit.as_deref().map(unit_code).transpose()?,
                        model,
                        manufacturer,
                    },
                    &reason,
                    actor,
                )
                .await?;
            writeln!(
                out,
                "registered token {} ({}), {}",
                token.serial,
                token.status,
                token
                    .unit_code
                    .as_ref()
                    .map_or("not bound".to_owned(), |u| format!("bound to {u}"))
            )?;
            return Ok(());
        }
        TokensCommand::List {
            unit,
            status,
            format,
        } => {
            let filter = TokenFilter {
                under: unit.as_deref().map(unit_code).transpose()?,
                status: status
                    .as_deref()
                    .map(|s| TokenStatus::parse(s).ok_or_else(|| CliError::Invalid(format!("unknown status {s:?}; use registered, active, suspended, lost or revoked"))))
                    .transpose()?,
            };
            output::write_all(&service.tokens(&filter).await?, format, out)?;
            return Ok(());
        }
        TokensCommand::History { serial: s, format } => {
            let serial = serial(&s)?;
            service.token(&serial).await?;
            output::write_all(&service.token_history(&serial).await?, format, out)?;
            return Ok(());
        }
        TokensCommand::Bind { change, unit } => (change, TokenChange::Bind(unit_code(&unit)?)),
        TokensCommand::Rebind { change, unit } => (change, TokenChange::Rebind(unit_code(&unit)?)),
        TokensCommand::Suspend(change) => (change, TokenChange::Suspend),
        TokensCommand::Resume(change) => (change, TokenChange::Resume),
        TokensCommand::Lost(change) => (change, TokenChange::Lost),
        TokensCommand::Revoke {
            change,
            replaced_by,
        } => (
            change,
            TokenChange::Revoke {
                replaced_by: replaced_by.as_deref().map(serial).transpose()?,
            },
        ),
    };
    let Change { serial: s, reason } = change;
    let token = service
        .change_token(&serial(&s)?, &what, &reason, actor)
        .await?;
    writeln!(
        out,
        "token {} is {}{}",
        token.serial,
        token.status,
        token
            .unit_code
            .as_ref()
            .map_or(String::new(), |u| format!(", bound to {u}"))
    )?;
    Ok(())
}

/// Lists or exports a month of login records; an export (`exported_by`) is audited first.
async fn logins(
    service: &Service,
    args: &LoginsArgs,
    format: Format,
    exported_by: Option<&Actor>,
) -> Result<(), CliError> {
    let month = Month::parse(&args.month).map_err(|e| CliError::Invalid(e.to_string()))?;
    let under = args.unit.as_deref().map(unit_code).transpose()?;
    if let Some(u) = &under {
        service.unit(u).await?;
    }
    if let Some(by) = exported_by {
        let mut detail = serde_json::Map::new();
        detail.insert("month".into(), args.month.clone().into());
        service
            .record_read(
                by,
                &actions::LOGINS_EXPORT,
                under.as_ref().map(|u| format!("unit:{u}")),
                under.as_ref(),
                detail,
            )
            .await?;
    }
    let stream = service.logins(LoginQuery {
        from: month.start(),
        to: month.end(),
        under,
    });
    let mut w = open_output(args.output.as_deref())?;
    let count = output::write_stream(stream, format, &mut w).await?;
    w.flush()?;
    if args.output.is_some() {
        eprintln!("{count} login record(s) written");
    }
    Ok(())
}

/// Runs the service until `shutdown` completes. Binds the listener itself (use
/// [`crate::http::run`] with a bound listener in tests).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CliError> {
    let tls = http::tls::server_config(
        &config.resolve(&config.server.cert),
        &config.resolve(&config.server.key),
        &config.resolve(&config.server.client_ca),
    )?;
    let service = open_service(&config, Arc::new(SystemClock)).await?;
    let retention = tokio::spawn(super::audit::retention_job(
        service.clone(),
        config.audit.retention_days,
    ));
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| CliError::Listen { addr, source })?;
    tracing::info!(%local, backend = ?config.database_location().backend(), "listening");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let limits = ServerLimits {
        max_connections: config.server.max_connections,
        ..ServerLimits::default()
    };
    http::run(listener, tls, http::api::router(service), limits, shutdown).await;
    retention.abort();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopped");
    Ok(())
}
