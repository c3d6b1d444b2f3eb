//! Walking the chain: the first record that is altered, missing, out of place or unsealed is
//! named, with what is wrong with it.

use super::key::AuditKey;
use super::record::{AuditHead, AuditRecord, CHAIN_START, ChainItem};
use crate::storage::StorageError;
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::fmt;

/// What is wrong at the first broken place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The key file is not the key this trail was written with.
    WrongKey,
    /// The chain head (last position and MAC) was changed.
    HeadAltered,
    /// The record's content does not match its MAC.
    Altered,
    /// The record is not there: the next one present is `next_present` (none: the tail is cut).
    Missing { next_present: Option<i64> },
    /// The record's MAC is fine but it does not follow the record before it (moved, or the
    /// record before it was replaced).
    OutOfPlace,
    /// The trail starts after position 1 without a checkpoint sealing what came before.
    Unsealed,
    /// The record lies beyond the chain head: it was not appended by the service.
    BeyondHead { head: i64 },
    /// The record could not be read (a value of the wrong type was written into it).
    Unreadable { detail: String },
}

/// The first broken place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The record's position (0 for the chain head).
    pub id: i64,
    #[serde(flatten)]
    pub problem: Problem,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id;
        match &self.problem {
            Problem::WrongKey => write!(
                f,
                "the audit key file is not the key this trail was written with"
            ),
            Problem::HeadAltered => write!(f, "the chain head was altered"),
            Problem::Altered => write!(
                f,
                "record {id} was altered: its content does not match its MAC"
            ),
            Problem::Missing {
                next_present: Some(next),
            } => write!(
                f,
                "record {id} is missing (deleted): the chain goes on at record {next}"
            ),
            Problem::Missing { next_present: None } => write!(
                f,
                "record {id} is missing (deleted): the trail was cut after record {}",
                id - 1
            ),
            Problem::OutOfPlace => write!(
                f,
                "record {id} does not follow the record before it (reordered or replaced)"
            ),
            Problem::Unsealed => write!(
                f,
                "records before {id} are missing and no checkpoint seals them (deleted)"
            ),
            Problem::BeyondHead { head } => write!(
                f,
                "record {id} lies beyond the chain head ({head}): it was not written by the service"
            ),
            Problem::Unreadable { detail } => write!(f, "record {id} cannot be read: {detail}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    /// Records up to here were sealed and removed by the retention job.
    pub sealed_through: Option<i64>,
    pub broken: Option<Break>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.broken, self.first_id, self.last_id) {
            (Some(b), _, _) => write!(f, "audit trail BROKEN: {b}"),
            (None, Some(first), Some(last)) => write!(
                f,
                "audit trail intact: {} record(s), {first} to {last}{}",
                self.records,
                self.sealed_through
                    .map(|s| format!(" (records up to {s} sealed by retention)"))
                    .unwrap_or_default()
            ),
            _ => write!(f, "audit trail intact: no records yet"),
        }
    }
}

/// Where the walk is.
struct Walk<'k> {
    key: &'k AuditKey,
    report: VerifyReport,
    head: Option<AuditHead>,
    /// What a verified checkpoint says the first kept record must follow.
    anchor: Option<(i64, [u8; 32])>,
    /// The next position and the MAC it must chain to; `None` before the first record.
    expect: Option<(i64, [u8; 32])>,
}

impl Walk<'_> {
    fn fail(&mut self, id: i64, problem: Problem) {
        if self.report.broken.is_none() {
            self.report.broken = Some(Break { id, problem });
        }
    }

    fn head(&mut self, head: AuditHead) {
        if head.key_id.is_some_and(|k| k != self.key.id()) {
            self.fail(0, Problem::WrongKey);
        } else if head.last_id > 0
            && head.head_mac != Some(self.key.head_mac(head.last_id, &head.last_mac))
        {
            self.fail(0, Problem::HeadAltered);
        }
        self.head = Some(head);
    }

    /// The checkpoint that seals what lies before the first kept record; a forged one (bad
    /// MAC) seals nothing.
    fn anchor(&mut self, checkpoint: Option<&AuditRecord>) {
        self.anchor = checkpoint
            .filter(|c| c.is_checkpoint() && self.key.verify(c))
            .and_then(|c| Some((c.sealed_through?, c.sealed_mac?)));
        if let Some((sealed, _)) = self.anchor {
            self.report.sealed_through = Some(sealed);
        }
    }

    fn record(&mut self, r: &AuditRecord) {
        self.report.records += 1;
        self.report.last_id = Some(r.id);
        if let Some(head) = &self.head
            && r.id > head.last_id
        {
            let head_id = head.last_id;
            return self.fail(r.id, Problem::BeyondHead { head: head_id });
        }
        if !self.key.verify(r) {
            return self.fail(r.id, Problem::Altered);
        }
        match self.expect {
            None => {
                self.report.first_id = Some(r.id);
                let anchored = if r.id == 1 {
                    r.prev_mac == CHAIN_START
                } else {
                    self.anchor == Some((r.id - 1, r.prev_mac))
                };
                if !anchored {
                    return self.fail(r.id, Problem::Unsealed);
                }
            }
            Some((id, _)) if r.id > id => {
                return self.fail(
                    id,
                    Problem::Missing {
                        next_present: Some(r.id),
                    },
                );
            }
            Some((_, prev)) if r.prev_mac != prev => return self.fail(r.id, Problem::OutOfPlace),
            Some(_) => {}
        }
        self.expect = Some((r.id + 1, r.mac));
    }

    fn finish(mut self) -> VerifyReport {
        if self.report.broken.is_none()
            && let Some(head) = &self.head
        {
            let last = self.expect.map_or(0, |(next, _)| next - 1);
            let (head_last, head_mac) = (head.last_id, head.last_mac);
            if head_last > last {
                self.fail(last + 1, Problem::Missing { next_present: None });
            } else if let Some((_, mac)) = self.expect
                && head_last == last
                && head_mac != mac
            {
                self.fail(last, Problem::OutOfPlace);
            }
        }
        self.report
    }
}

/// Verifies the chain read from `items` (see [`crate::storage::Storage::audit_chain`]).
/// Storage errors end the walk as an error; a record that cannot be decoded is reported as
/// the break.
pub async fn verify(
    key: &AuditKey,
    mut items: impl Stream<Item = Result<ChainItem, StorageError>> + Unpin,
) -> Result<VerifyReport, StorageError> {
    let mut walk = Walk {
        key,
        report: VerifyReport::default(),
        head: None,
        anchor: None,
        expect: None,
    };
    while let Some(item) = items.next().await {
        match item {
            Ok(ChainItem::Head(head)) => walk.head(head),
            Ok(ChainItem::Anchor(checkpoint)) => walk.anchor(checkpoint.as_deref()),
            Ok(ChainItem::Record(r)) => walk.record(&r),
            Err(StorageError::Corrupt(detail)) => {
                let id = walk.expect.map_or(1, |(next, _)| next);
                walk.fail(id, Problem::Unreadable { detail });
            }
            Err(e) => return Err(e),
        }
        if walk.report.broken.is_some() {
            break;
        }
    }
    Ok(walk.finish())
}
