//! The one place wall-clock time enters the program.
//!
//! Timestamps appear only in meta records, run summaries and the registry,
//! never in artifact bytes. Code that records time takes a `&dyn Clock`, so
//! tests can pin it.

use chrono::{DateTime, SecondsFormat, Utc};

pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that always reads the same instant.
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// RFC 3339 in UTC with millisecond precision and a `Z` suffix, the one
/// timestamp format the registry and meta files use (it sorts as text).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_millis_with_z_so_they_sort_as_text() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T09:05:03.5+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(FixedClock(t).now()), "2026-11-24T08:05:03.500Z");
    }
}
