//! Dates on the command line: absolute (`2026-11-24`, RFC 3339) or an age
//! (`90m`, `12h`, `7d`, `2w`), for `runs list --since` and `gc --older-than`.

use chrono::{DateTime, NaiveDate, Utc};

use orchestrator::clock::rfc3339;
use orchestrator::error::Error;

/// A date, a time or an age given as `flag` (`--since`, `--older-than`),
/// in the registry's timestamp format so SQL compares text.
pub fn parse_when(flag: &str, s: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
    let bad = || {
        Error::usage_with_hint(
            format!("cannot read `{flag} {s}` as a date"),
            "use 2026-11-24, 2026-11-24T08:00:00Z, or an age like 90m, 12h, 7d, 2w",
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(rfc3339(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
        return Ok(rfc3339(t));
    }
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" | "min" => n,
        "h" => n.checked_mul(60).ok_or_else(bad)?,
        "d" => n.checked_mul(24 * 60).ok_or_else(bad)?,
        "w" => n.checked_mul(7 * 24 * 60).ok_or_else(bad)?,
        _ => return Err(bad().into()),
    };
    let delta = chrono::TimeDelta::try_minutes(minutes).ok_or_else(bad)?;
    Ok(rfc3339(now.checked_sub_signed(delta).ok_or_else(bad)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_dates_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_when("--since", "2026-11-20", now).unwrap(),
            "2026-11-20T00:00:00.000Z"
        );
        assert_eq!(
            parse_when("--since", "2026-11-20T08:30:00+01:00", now).unwrap(),
            "2026-11-20T07:30:00.000Z"
        );
        assert_eq!(
            parse_when("--since", "90m", now).unwrap(),
            "2026-11-24T10:30:00.000Z"
        );
        assert_eq!(
            parse_when("--since", "2d", now).unwrap(),
            "2026-11-22T12:00:00.000Z"
        );
        for bad in ["", "yesterday", "12", "5y", "2026-13-01", "99999999999999w"] {
            assert!(parse_when("--since", bad, now).is_err(), "{bad}");
        }
    }
}
