//! Printing records as a table, CSV or JSON. Times are shown in Asia/Shanghai.

use crate::audit::spreadsheet_safe;
use crate::clock::shanghai_rfc3339;
use crate::domain::account::{Account, roles_text};
use crate::domain::{Administrator, LoginRecord, Token, TokenEvent, Unit};
use crate::storage::StorageError;
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// A record shown as named columns.
pub trait Columns: Serialize {
    fn header() -> &'static [&'static str];
    fn values(&self) -> Vec<String>;
}

fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Columns for Unit {
    fn header() -> &'static [&'static str] {
        crate::import::UNIT_EXPORT_HEADER
    }
    fn values(&self) -> Vec<String> {
        vec![
            self.code.to_string(),
            self.name.clone(),
            opt(self.short_name.as_ref()),
            self.kind.label().to_owned(),
            opt(self.parent_code.as_ref()),
            if self.examinee { "是" } else { "否" }.to_owned(),
            opt(self.contact_name.as_ref()),
            opt(self.contact_phone.as_ref()),
        ]
    }
}

impl Columns for Administrator {
    fn header() -> &'static [&'static str] {
        &["简码", "党组织名称", "管理员姓名", "联系电话"]
    }
    fn values(&self) -> Vec<String> {
        vec![
            self.unit_code.to_string(),
            self.unit_name.clone(),
            self.name.clone(),
            self.mobile.to_string(),
        ]
    }
}

impl Columns for Token {
    fn header() -> &'static [&'static str] {
        &[
            "serial",
            "status",
            "unit",
            "model",
            "cert_serial",
            "not_after",
            "spki_sha256",
            "replaced_by",
        ]
    }
    fn values(&self) -> Vec<String> {
        vec![
            self.serial.to_string(),
            self.status.to_string(),
            opt(self.unit_code.as_ref()),
            opt(self.model.as_ref()),
            self.cert_serial.clone(),
            shanghai_rfc3339(self.not_after),
            self.fingerprint.to_hex(),
            opt(self.replaced_by.as_ref()),
        ]
    }
}

impl Columns for TokenEvent {
    fn header() -> &'static [&'static str] {
        &["time", "event", "status", "unit", "reason", "by"]
    }
    fn values(&self) -> Vec<String> {
        vec![
            shanghai_rfc3339(self.at),
            self.kind.code().to_owned(),
            self.status.to_string(),
            opt(self.unit_code.as_ref()),
            self.reason.clone(),
            self.actor.clone(),
        ]
    }
}

impl Columns for LoginRecord {
    fn header() -> &'static [&'static str] {
        &[
            "time",
            "kind",
            "result",
            "token",
            "unit",
            "unit_name",
            "source",
            "client",
            "session",
            "logout",
        ]
    }
    fn values(&self) -> Vec<String> {
        vec![
            shanghai_rfc3339(self.at),
            self.kind.code().to_owned(),
            self.outcome.code().to_owned(),
            self.token_serial
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| self.claimed_serial.as_ref().map(|s| format!("({s})")))
                .unwrap_or_default(),
            opt(self.unit_code.as_ref()),
            opt(self.unit_name.as_ref()),
            opt(self.source.as_ref()),
            opt(self.client_version.as_ref()),
            opt(self.session_id.as_ref()),
            opt(self.logout_at.map(shanghai_rfc3339)),
        ]
    }
}

impl Columns for Account {
    fn header() -> &'static [&'static str] {
        &[
            "username",
            "name",
            "scope",
            "roles",
            "status",
            "locked_until",
            "last_login",
            "pending_secret",
        ]
    }
    fn values(&self) -> Vec<String> {
        vec![
            self.username.to_string(),
            self.display_name.clone(),
            self.unit
                .as_ref()
                .map_or("(all units)".to_owned(), |u| u.code.to_string()),
            roles_text(&self.roles),
            self.status.code().to_owned(),
            opt(self.locked_until.map(shanghai_rfc3339)),
            opt(self.last_login_at.map(shanghai_rfc3339)),
            opt(self.pending_secret.map(|p| p.code())),
        ]
    }
}

/// CSV cells a spreadsheet would run as formulas are defused (see [`spreadsheet_safe`]).
fn csv_values<T: Columns>(item: &T) -> Vec<String> {
    item.values()
        .iter()
        .map(|v| spreadsheet_safe(v).into_owned())
        .collect()
}

/// Writes a list in one go.
pub fn write_all<T: Columns>(
    items: &[T],
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Table => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::NOTHING);
            table.set_header(T::header().to_vec());
            for item in items {
                table.add_row(item.values());
            }
            writeln!(out, "{table}")
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(T::header())?;
            for item in items {
                w.write_record(csv_values(item))?;
            }
            w.flush()
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, items)?;
            writeln!(out)
        }
    }
}

/// Writes records as they arrive, so a month of logins never sits in memory. Returns how many
/// were written.
pub async fn write_stream<T: Columns>(
    mut items: impl Stream<Item = Result<T, StorageError>> + Unpin,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, super::CliError> {
    let mut count = 0u64;
    match format {
        Format::Table | Format::Csv => {
            let delimiter = if format == Format::Table { b'\t' } else { b',' };
            let mut w = csv::WriterBuilder::new()
                .delimiter(delimiter)
                .from_writer(out);
            w.write_record(T::header()).map_err(std::io::Error::from)?;
            while let Some(item) = items.next().await {
                let item = item?;
                let values = if format == Format::Csv {
                    csv_values(&item)
                } else {
                    item.values()
                };
                w.write_record(values).map_err(std::io::Error::from)?;
                count += 1;
            }
            w.flush()?;
        }
        Format::Json => {
            out.write_all(b"[")?;
            while let Some(item) = items.next().await {
                out.write_all(if count == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, &item?).map_err(std::io::Error::from)?;
                count += 1;
            }
            out.write_all(b"\n]\n")?;
        }
    }
    Ok(count)
}
