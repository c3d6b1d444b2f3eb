//! Exports for a SIEM: JSON lines or CSV, with spreadsheet formulas defused.

use super::record::AuditRecord;
use crate::clock::shanghai_rfc3339;
use std::borrow::Cow;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// A CSV cell that a spreadsheet will show as text: a cell starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return would be read as a formula (OWASP "CSV injection"), so it gets a
/// leading apostrophe, which spreadsheets hide.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// The CSV export's columns.
pub const CSV_HEADER: &[&str] = &[
    "id", "time", "kind", "actor", "roles", "action", "target", "unit", "result", "source",
    "detail", "mac",
];

/// A record as a CSV row (every cell made [`spreadsheet_safe`]).
pub fn csv_row(record: &AuditRecord) -> Vec<String> {
    let id = record.id.to_string();
    let at = shanghai_rfc3339(record.at);
    let mac = hex::encode(record.mac);
    [
        id.as_str(),
        at.as_str(),
        record.kind.as_str(),
        record.actor.as_str(),
        record.actor_roles.as_str(),
        record.action.as_str(),
        record.target.as_deref().unwrap_or(""),
        record.unit_code.as_deref().unwrap_or(""),
        record.result.as_str(),
        record.source.as_deref().unwrap_or(""),
        record.detail.as_str(),
        mac.as_str(),
    ]
    .iter()
    .map(|c| spreadsheet_safe(c).into_owned())
    .collect()
}

/// A record as one JSON line (with its newline).
pub fn json_line(record: &AuditRecord) -> Vec<u8> {
    let mut line = serde_json::to_vec(record).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_as_formulas_are_defused() {
        for formula in ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(formula), format!("'{formula}"));
        }
        for plain in ["alice", "1-2", "李渡", ""] {
            assert_eq!(spreadsheet_safe(plain), plain);
        }
    }
}
