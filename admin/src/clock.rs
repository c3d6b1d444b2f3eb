//! Time as a parameter: everything that depends on "now" asks a [`Clock`], so tests can set it.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime, UtcOffset};

/// China Standard Time. Asia/Shanghai has kept UTC+08:00 without daylight saving since 1991,
/// so a fixed offset shows every time this service records correctly without a tz database.
pub const SHANGHAI: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// A source of the current time, in UTC.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock, truncated to microseconds (what both databases store).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to; for tests and for replaying a scenario at a given time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    pub fn at(t: OffsetDateTime) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(truncate_to_micros(t))))
    }

    pub fn set(&self, t: OffsetDateTime) {
        if let Ok(mut now) = self.0.lock() {
            *now = truncate_to_micros(t);
        }
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Drops sub-microsecond precision, so a time read back from either database equals the one
/// written.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// Formats a UTC instant in Asia/Shanghai time, RFC 3339 (`2026-01-31T23:59:59+08:00`).
pub fn shanghai_rfc3339(t: OffsetDateTime) -> String {
    let local = t.to_offset(SHANGHAI);
    let local = local.replace_nanosecond(0).unwrap_or(local);
    local
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A date (`2026-01-31`, midnight in Asia/Shanghai) or an RFC 3339 instant.
pub fn parse_date_or_instant(s: &str) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .map(|d| d.midnight().assume_offset(SHANGHAI))
        .map_err(|_| format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"))
}

/// Microseconds since the Unix epoch: how SQLite stores instants (an indexable integer).
pub fn to_unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub fn from_unix_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
