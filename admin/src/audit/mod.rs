//! The audit trail: every operator action and every login event, appended to a hash chain.
//!
//! Each record carries the HMAC-SHA256 (key in a file outside the database, [`AuditKey`]) of
//! its content and of the previous record's MAC, so editing, deleting or reordering a record
//! breaks the chain at that record; the chain head (last position and MAC, itself MAC'd)
//! catches a cut tail. The database refuses UPDATE and DELETE on the trail (triggers on both
//! backends) except the retention job's deletes of sealed records older than 180 days: a
//! checkpoint record names the last sealed record and its MAC, so the chain still verifies
//! from the first kept record. Records are written in the same transaction as the change they
//! describe, so an action whose record cannot be written does not happen.

mod export;
mod key;
mod record;
mod verify;

pub use export::{CSV_HEADER, ExportFormat, csv_row, json_line, spreadsheet_safe};
pub use key::{AuditKey, AuditKeyError};
pub use record::{
    AuditEntry, AuditHead, AuditQuery, AuditRecord, AuditResult, CHAIN_START, ChainItem,
    Checkpoint, RecordKind, login_entry,
};
pub use verify::{Break, Problem, VerifyReport, verify};

/// Records younger than this are never deleted; the databases' triggers enforce the same.
pub const MIN_RETENTION_DAYS: u32 = 180;
