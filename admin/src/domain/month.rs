//! Calendar months in Asia/Shanghai time, as the assessment and the login exports count them.

use crate::clock::SHANGHAI;
use std::fmt;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// A calendar month (`YYYY-MM`) in Asia/Shanghai time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: time::Month,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month; write YYYY-MM, e.g. 2026-01")]
pub struct MonthError(pub String);

impl Month {
    pub fn parse(s: &str) -> Result<Month, MonthError> {
        let err = || MonthError(s.to_owned());
        let (y, m) = s.trim().split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let year: i32 = y.parse().map_err(|_| err())?;
        let month: u8 = m.parse().map_err(|_| err())?;
        let month = time::Month::try_from(month).map_err(|_| err())?;
        Ok(Month { year, month })
    }

    /// The month an instant falls in, in Shanghai time.
    pub fn containing(t: OffsetDateTime) -> Month {
        let local = t.to_offset(SHANGHAI);
        Month {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The first instant of the month (inclusive).
    pub fn start(self) -> OffsetDateTime {
        let first = Date::from_calendar_date(self.year, self.month, 1).unwrap_or(Date::MIN);
        PrimitiveDateTime::new(first, Time::MIDNIGHT)
            .assume_offset(SHANGHAI)
            .to_offset(time::UtcOffset::UTC)
    }

    /// The first instant of the next month (exclusive end).
    pub fn end(self) -> OffsetDateTime {
        self.next().start()
    }

    pub fn next(self) -> Month {
        if self.month == time::Month::December {
            Month {
                year: self.year + 1,
                month: time::Month::January,
            }
        } else {
            Month {
                year: self.year,
                month: self.month.next(),
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

impl std::str::FromStr for Month {
    type Err = MonthError;
    fn from_str(s: &str) -> Result<Self, MonthError> {
        Month::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn months_begin_at_midnight_in_shanghai() {
        let jan = Month::parse("2026-01").unwrap();
        assert_eq!(jan.start(), datetime!(2025-12-31 16:00 UTC));
        assert_eq!(jan.end(), datetime!(2026-01-31 16:00 UTC));
        assert_eq!(Month::containing(datetime!(2026-01-31 23:59:59 +8)), jan);
        assert_eq!(
            Month::containing(datetime!(2026-02-01 00:00 +8)).to_string(),
            "2026-02"
        );
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert!(Month::parse("2026-13").is_err());
        assert!(Month::parse("2026-1").is_err());
    }
}
