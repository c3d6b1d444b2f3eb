//! `ukey-admin audit …` and `ukey-admin accounts …`, and the daily retention job of `serve`.

use super::output;
use super::run::{CliError, open_output};
use super::{AccountsCommand, AuditCommand};
use crate::audit::{AuditQuery, ExportFormat, csv_row, json_line};
use crate::config::Config;
use crate::service::{Actor, Service, actions};
use futures::StreamExt;
use secrecy::ExposeSecret;
use std::io::Write;
use time::OffsetDateTime;

/// A date (`2026-01-31`, midnight in Asia/Shanghai) or an RFC 3339 instant.
pub fn parse_instant(s: &str) -> Result<OffsetDateTime, CliError> {
    crate::clock::parse_date_or_instant(s).map_err(CliError::Invalid)
}

pub(super) async fn audit(
    service: &Service,
    config: &Config,
    cmd: AuditCommand,
    by: &Actor,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Verify => {
            let report = service.verify_audit().await?;
            writeln!(out, "{report}")?;
            let mut detail = serde_json::Map::new();
            detail.insert("intact".into(), report.is_intact().into());
            detail.insert("records".into(), report.records.into());
            if let Some(b) = &report.broken {
                detail.insert("broken".into(), b.to_string().into());
            }
            // Recorded after the walk: the record itself is not part of what was verified.
            service
                .record_read(
                    by,
                    &actions::AUDIT_VERIFY,
                    Some("audit".into()),
                    None,
                    detail,
                )
                .await?;
            if let Some(broken) = report.broken {
                return Err(CliError::AuditBroken(broken.to_string()));
            }
        }
        AuditCommand::Export {
            since,
            until,
            format,
            output: path,
        } => {
            let from = parse_instant(&since)?;
            let to = until.as_deref().map(parse_instant).transpose()?;
            let mut detail = serde_json::Map::new();
            detail.insert("since".into(), since.clone().into());
            detail.insert("until".into(), until.clone().into());
            service
                .record_read(
                    by,
                    &actions::AUDIT_EXPORT,
                    Some("audit".into()),
                    None,
                    detail,
                )
                .await?;
            let mut records = service.audit_records(AuditQuery {
                from: Some(from),
                to,
                ..AuditQuery::default()
            });
            let mut w = open_output(path.as_deref())?;
            let mut count = 0u64;
            match format {
                ExportFormat::Jsonl => {
                    while let Some(r) = records.next().await {
                        w.write_all(&json_line(&r?))?;
                        count += 1;
                    }
                }
                ExportFormat::Csv => {
                    let mut csv = csv::Writer::from_writer(&mut w);
                    csv.write_record(crate::audit::CSV_HEADER)
                        .map_err(std::io::Error::from)?;
                    while let Some(r) = records.next().await {
                        csv.write_record(csv_row(&r?))
                            .map_err(std::io::Error::from)?;
                        count += 1;
                    }
                    csv.flush()?;
                }
            }
            w.flush()?;
            if path.is_some() {
                eprintln!("{count} audit record(s) written");
            }
        }
        AuditCommand::Seal { retention_days } => {
            let days = retention_days.unwrap_or(config.audit.retention_days);
            match service.seal_audit(days, by).await? {
                Some((checkpoint, deleted)) => writeln!(
                    out,
                    "sealed records up to {} with a checkpoint; {deleted} record(s) older than {days} days deleted",
                    checkpoint.sealed_through
                )?,
                None => writeln!(out, "no record is older than {days} days")?,
            }
        }
    }
    Ok(())
}

pub(super) async fn accounts(
    service: &Service,
    cmd: AccountsCommand,
    by: &Actor,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let find = |name: String| async move {
        service
            .account(&name.trim().to_ascii_lowercase())
            .await?
            .ok_or_else(|| CliError::Invalid(format!("no account named {name:?}")))
    };
    match cmd {
        AccountsCommand::List { format } => {
            let accounts = service
                .accounts(&crate::domain::account::Scope::All)
                .await?;
            service
                .record_read(
                    by,
                    &actions::ACCOUNTS_LIST,
                    None,
                    None,
                    serde_json::Map::new(),
                )
                .await?;
            output::write_all(&accounts, format, out)?;
        }
        AccountsCommand::Reset { username } => {
            let account = find(username).await?;
            let secret = service.reset_password(&account, by).await?;
            writeln!(
                out,
                "one-time secret for {} (hand it over in person; it works once, within {} hours, and only to set a new password):\n\n    {}\n",
                account.username,
                service.account_settings().secret_ttl.as_secs() / 3600,
                secret.expose_secret()
            )?;
        }
        AccountsCommand::Unlock { username } => {
            let account = find(username).await?;
            service.unlock_account(&account, by).await?;
            writeln!(out, "account {} unlocked", account.username)?;
        }
    }
    Ok(())
}

/// Seals what is past retention once a day (and once at start), while the service runs.
/// Replicas may all run it: the chain head lock makes the second one find nothing to do.
pub async fn retention_job(service: Service, retention_days: u32) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    loop {
        tick.tick().await;
        if let Err(e) = service.seal_audit(retention_days, &Actor::system()).await {
            tracing::error!(error = %e, "audit retention failed; will retry tomorrow");
        }
    }
}
