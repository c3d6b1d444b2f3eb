//! Audit records: what is appended ([`AuditEntry`]), what is stored ([`AuditRecord`]) and the
//! exact bytes its MAC covers.

use crate::domain::{LoginKind, LoginOutcome, LoginWrite};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use ukey_proto::UnitCode;

/// The "previous MAC" of the first record ever written.
pub const CHAIN_START: [u8; 32] = [0; 32];

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    Success,
    /// Refused by authentication or authorization (a 401/403).
    Denied,
    /// Attempted and failed (bad input, a conflict, something missing).
    Failed,
}

impl AuditResult {
    pub fn code(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Denied => "denied",
            AuditResult::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<AuditResult> {
        [
            AuditResult::Success,
            AuditResult::Denied,
            AuditResult::Failed,
        ]
        .into_iter()
        .find(|r| r.code() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Event,
    /// Written by the retention job: seals (and allows deleting) every record up to a position.
    Checkpoint,
}

impl RecordKind {
    pub fn code(self) -> &'static str {
        match self {
            RecordKind::Event => "event",
            RecordKind::Checkpoint => "checkpoint",
        }
    }
}

/// A record to append; the writer gives it its position and MAC.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: OffsetDateTime,
    /// Who: `op:<username>`, `cli:<os user>`, `token:<serial>`, `cert:<fingerprint>`, `system`.
    pub actor: String,
    /// The actor's roles at the time, comma-separated (empty for tokens and the CLI).
    pub actor_roles: String,
    /// What, as a stable code: `unit.create`, `token.suspend`, `operator.login`, …
    pub action: String,
    /// On what: `unit:<code>`, `token:<serial>`, `account:<username>`, …
    pub target: Option<String>,
    /// The unit the action concerns, which decides which auditors see the record.
    pub unit: Option<UnitCode>,
    /// Its materialized path; filled in by the writer from `unit` when not given.
    pub unit_path: Option<String>,
    pub result: AuditResult,
    /// The client's address, or `local` for the command line.
    pub source: Option<String>,
    /// Before/after summaries, the reason, the error: a JSON object.
    pub detail: Map<String, Value>,
}

impl AuditEntry {
    pub fn new(at: OffsetDateTime, actor: &str, action: &str, result: AuditResult) -> AuditEntry {
        AuditEntry {
            at,
            actor: actor.to_owned(),
            actor_roles: String::new(),
            action: action.to_owned(),
            target: None,
            unit: None,
            unit_path: None,
            result,
            source: None,
            detail: Map::new(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn unit(mut self, unit: Option<&UnitCode>) -> Self {
        self.unit = unit.cloned();
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// A record as stored. Text columns are kept as stored (not parsed), so that a tampered record
/// is reported by its MAC rather than failing to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// The record's position in the chain: 1, 2, 3, …
    pub id: i64,
    /// `event` or `checkpoint`.
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub actor: String,
    pub actor_roles: String,
    pub action: String,
    pub target: Option<String>,
    pub unit_code: Option<String>,
    #[serde(skip)]
    pub unit_path: Option<String>,
    /// `success`, `denied` or `failed`.
    pub result: String,
    pub source: Option<String>,
    /// JSON object, as stored.
    pub detail: String,
    /// For a checkpoint: the last record it seals.
    pub sealed_through: Option<i64>,
    #[serde(skip)]
    pub sealed_mac: Option<[u8; 32]>,
    #[serde(skip)]
    pub prev_mac: [u8; 32],
    /// HMAC-SHA256, hex.
    #[serde(serialize_with = "hex_mac")]
    #[schema(value_type = String)]
    pub mac: [u8; 32],
}

fn hex_mac<S: serde::Serializer>(mac: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(mac))
}

fn put(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        Some(bytes) => {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX - 1);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

impl AuditRecord {
    /// The bytes the MAC covers: a version tag, then every column but the MAC itself, each
    /// length-prefixed (absent values distinct from empty ones), then the previous MAC.
    pub fn content_bytes(&self) -> Vec<u8> {
        let mut out = b"ukey-audit-v1\0".to_vec();
        out.extend_from_slice(&self.id.to_be_bytes());
        put(&mut out, Some(self.kind.as_bytes()));
        out.extend_from_slice(&crate::clock::to_unix_micros(self.at).to_be_bytes());
        put(&mut out, Some(self.actor.as_bytes()));
        put(&mut out, Some(self.actor_roles.as_bytes()));
        put(&mut out, Some(self.action.as_bytes()));
        put(&mut out, self.target.as_deref().map(str::as_bytes));
        put(&mut out, self.unit_code.as_deref().map(str::as_bytes));
        put(&mut out, self.unit_path.as_deref().map(str::as_bytes));
        put(&mut out, Some(self.result.as_bytes()));
        put(&mut out, self.source.as_deref().map(str::as_bytes));
        put(&mut out, Some(self.detail.as_bytes()));
        let sealed = self.sealed_through.map(i64::to_be_bytes);
        put(&mut out, sealed.as_ref().map(|b| b.as_slice()));
        put(&mut out, self.sealed_mac.as_ref().map(|m| m.as_slice()));
        out.extend_from_slice(&self.prev_mac);
        out
    }

    /// Builds the record an entry becomes at position `id` after `prev_mac` (MAC not yet set).
    pub fn from_entry(entry: &AuditEntry, id: i64, prev_mac: [u8; 32]) -> AuditRecord {
        AuditRecord {
            id,
            kind: RecordKind::Event.code().to_owned(),
            at: entry.at,
            actor: entry.actor.clone(),
            actor_roles: entry.actor_roles.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            unit_code: entry.unit.as_ref().map(|u| u.as_str().to_owned()),
            unit_path: entry.unit_path.clone(),
            result: entry.result.code().to_owned(),
            source: entry.source.clone(),
            detail: Value::Object(entry.detail.clone()).to_string(),
            sealed_through: None,
            sealed_mac: None,
            prev_mac,
            mac: [0; 32],
        }
    }

    pub fn is_checkpoint(&self) -> bool {
        self.kind == RecordKind::Checkpoint.code()
    }
}

/// What a checkpoint seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub sealed_through: i64,
    pub sealed_mac: [u8; 32],
}

/// The chain head: the last position and its MAC, with the MAC of both and the key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub last_id: i64,
    pub last_mac: [u8; 32],
    pub key_id: Option<[u8; 8]>,
    pub head_mac: Option<[u8; 32]>,
}

/// What the verifier reads, from one consistent snapshot: the head first, then (when the
/// first kept record is not the first ever written) the checkpoint that sealed what came
/// before it, if there is one, then every record in chain order.
#[derive(Debug, Clone)]
pub enum ChainItem {
    Head(AuditHead),
    Anchor(Option<Box<AuditRecord>>),
    Record(Box<AuditRecord>),
}

/// Which records to read (newest first when `descending`), after a cursor position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Only records about units in this subtree (by materialized path prefix); `None` = all.
    pub under_path: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub result: Option<AuditResult>,
    /// Positions strictly after (ascending) or before (descending) this one.
    pub after_id: Option<i64>,
    pub descending: bool,
    pub limit: Option<u32>,
}

/// The audit entry of a login record: a token login, or a refused token request.
pub fn login_entry(
    login: &LoginWrite,
    serial: Option<&str>,
    unit: Option<&UnitCode>,
    unit_path: Option<&str>,
) -> AuditEntry {
    let actor = match (serial, &login.fingerprint) {
        (Some(s), _) => format!("token:{s}"),
        (None, Some(fp)) => format!("cert:{}", &fp.to_hex()[..16]),
        (None, None) => "anonymous".to_owned(),
    };
    let action = match login.kind {
        LoginKind::Login => "token.login",
        LoginKind::Request => "token.request",
    };
    let result = match login.outcome {
        LoginOutcome::Success => AuditResult::Success,
        LoginOutcome::Refused(_) => AuditResult::Denied,
    };
    let mut entry = AuditEntry::new(login.at, &actor, action, result);
    entry.unit = unit.cloned();
    entry.unit_path = unit_path.map(str::to_owned);
    entry.target = unit.map(|u| format!("unit:{u}"));
    entry.source = login.source.map(|s| s.to_string());
    entry = entry.detail("outcome", login.outcome.code());
    if let Some(session) = login.session.as_ref().map(|s| s.id).or(login.in_session) {
        entry = entry.detail("session", session.to_string());
    }
    if let Some(v) = &login.client_version {
        entry = entry.detail("client_version", v.clone());
    }
    if let Some(claimed) = &login.claimed_serial {
        entry = entry.detail("claimed_serial", claimed.clone());
    }
    entry
}
