//! Importing units and administrators from the forms the seed documents use, checked in full
//! before anything is stored: every bad row is reported (line, column, reason) and a file with
//! any bad row imports nothing.
//!
//! Forms, told apart by their header row (which may follow title rows):
//! - the examinee list (考核对象名单): `简码, 单位简称`, possibly several pairs side by side as
//!   in the seed; imported under a parent named on the command line, flagged as examinees;
//! - the purchase list (U-Key 购买清单): `隶属关系, 党组织名称, 管理员姓名, 联系电话` (optional
//!   `简码`); 隶属关系 is the path of names down to the unit's parent
//!   (`重庆市委 - 沙坪坝区委 - 区委党校`), or down to the unit itself;
//! - the unit export of `ukey-admin units export`, so an export imports back.

pub(crate) mod forms;
pub mod read;

pub use forms::EXPORT_HEADER as UNIT_EXPORT_HEADER;
pub use read::{ReadError, Row, read_rows, read_rows_from_bytes};

use crate::domain::{Administrator, NewAdministrator, NewUnit, Unit};
use serde::Serialize;
use std::fmt;
use ukey_proto::UnitCode;

/// One thing wrong with one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    pub line: usize,
    /// The column's header, as in the file.
    pub column: String,
    pub reason: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

/// Which form a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Examinees,
    Purchase,
    UnitExport,
}

/// What an import would store: units (parents first) and administrators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub units: Vec<NewUnit>,
    pub administrators: Vec<NewAdministrator>,
    /// Rows that are already in the database exactly as given, skipped.
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "no header row found in the first {0} rows; expected one of: 简码,单位简称 (examinee list); 隶属关系,党组织名称,管理员姓名,联系电话 (purchase list); or the header of `units export`"
    )]
    NoHeader(usize),
    #[error("{} bad row(s); nothing was imported:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    BadRows(Vec<RowProblem>),
    #[error("the examinee list is imported under a parent unit: {0}")]
    Parent(String),
}

/// How many leading rows may be titles before the header.
const HEADER_SEARCH: usize = 10;

/// Checks `rows` against the units already stored and returns what to store.
pub fn plan(
    rows: &[Row],
    existing: &[Unit],
    existing_admins: &[Administrator],
    parent: Option<&UnitCode>,
) -> Result<(Form, Plan), ImportError> {
    let (index, form) = rows
        .iter()
        .take(HEADER_SEARCH)
        .enumerate()
        .find_map(|(i, row)| forms::detect(&row.cells).map(|f| (i, f)))
        .ok_or(ImportError::NoHeader(HEADER_SEARCH))?;
    let header = &rows[index].cells;
    let body: Vec<&Row> = rows[index + 1..]
        .iter()
        .filter(|r| r.cells.iter().any(|c| !c.is_empty()))
        .collect();
    let mut known = forms::Known::new(existing);
    let plan = match form {
        Form::Examinees => {
            if let Some(p) = parent
                && !known.exists(p)
            {
                return Err(ImportError::Parent(format!("unit {p} does not exist")));
            }
            forms::examinees(header, &body, parent, &mut known)?
        }
        Form::Purchase => forms::purchase(header, &body, &mut known, existing_admins)?,
        Form::UnitExport => forms::unit_export(header, &body, &mut known)?,
    };
    Ok((form, plan))
}
