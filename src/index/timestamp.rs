//! [`Timestamp`]: an RFC 3339 instant that keeps the offset it was written in, so it can be
//! written back both in git's form (`git log --format=%aI`, which `last_modified.json` holds)
//! and in Go's (which the registry index's `lastModified` holds: a zero offset becomes `Z`,
//! fractional seconds are kept without trailing zeros).
//!
//! It sits below both [`super::model`] (the index entries carry it) and
//! [`super::last_modified`] (the file it is read from), so neither imports the other.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An instant with the UTC offset it was written in (seconds east of UTC).
///
/// Equality compares the instant *and* the offset (the written form); use
/// [`Timestamp::cmp_instant`] to order by time alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    unix_seconds: i64,
    nanos: u32,
    offset_seconds: i32,
}

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("`{text}` is not an RFC 3339 timestamp: {reason}")]
#[diagnostic(
    code(airgap::index::timestamp),
    help("write it as `2024-05-13T12:32:02+02:00` or `2024-05-13T10:32:02Z`")
)]
pub struct TimestampError {
    pub text: String,
    pub reason: &'static str,
}

impl Timestamp {
    /// Earliest and latest years Go's `time.Time` JSON encoding accepts.
    const MIN_YEAR: i64 = 0;
    const MAX_YEAR: i64 = 9999;

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let fail = |reason| TimestampError {
            text: text.to_owned(),
            reason,
        };
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(fail("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let part = &b[range];
            if part.iter().all(u8::is_ascii_digit) {
                Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
            } else {
                Err(fail("expected digits"))
            }
        };
        let year = num(0..4)?;
        let month = num(5..7)?;
        let day = num(8..10)?;
        let hour = num(11..13)?;
        let minute = num(14..16)?;
        let second = num(17..19)?;
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return Err(fail("expected `YYYY-MM-DDT`"));
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(fail("expected `HH:MM:SS`"));
        }
        if !(1..=12).contains(&month) {
            return Err(fail("month out of range"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(fail("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(fail("time of day out of range"));
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &b[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return Err(fail("fractional seconds need 1 to 9 digits"));
            }
            for k in 0..9 {
                let d = digits.get(k).map_or(0, |d| u32::from(d - b'0'));
                nanos = nanos * 10 + d;
            }
        }
        let offset_seconds = match &b[i..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(fail("expected a `±HH:MM` offset"));
                }
                let hours = i32::from(h1 - b'0') * 10 + i32::from(h2 - b'0');
                let minutes = i32::from(m1 - b'0') * 10 + i32::from(m2 - b'0');
                if hours > 23 || minutes > 59 {
                    return Err(fail("offset out of range"));
                }
                let magnitude = hours * 3600 + minutes * 60;
                if *sign == b'-' { -magnitude } else { magnitude }
            }
            _ => return Err(fail("expected `Z` or a `±HH:MM` offset at the end")),
        };
        let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        Ok(Timestamp {
            unix_seconds: local - i64::from(offset_seconds),
            nanos,
            offset_seconds,
        })
    }

    /// A timestamp from seconds since the Unix epoch and the offset it is shown in, in
    /// minutes east of UTC (what git records for a commit: `git2::Time::offset_minutes`).
    pub fn from_unix(unix_seconds: i64, offset_minutes: i32) -> Result<Self, TimestampError> {
        let t = Timestamp {
            unix_seconds,
            nanos: 0,
            offset_seconds: offset_minutes.saturating_mul(60),
        };
        let fail = |reason| TimestampError {
            text: format!("{unix_seconds} {offset_minutes:+}min"),
            reason,
        };
        if offset_minutes.abs() >= 24 * 60 {
            return Err(fail("offset out of range"));
        }
        let (year, ..) = t.local_fields();
        if !(Self::MIN_YEAR..=Self::MAX_YEAR).contains(&year) {
            return Err(fail("year outside 0000..=9999"));
        }
        Ok(t)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.unix_seconds
    }

    /// Nanoseconds past [`Timestamp::unix_seconds`].
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Offset from UTC in seconds east.
    pub fn offset_seconds(&self) -> i32 {
        self.offset_seconds
    }

    /// Orders by the instant alone, ignoring the offset it is written in.
    pub fn cmp_instant(&self, other: &Self) -> std::cmp::Ordering {
        (self.unix_seconds, self.nanos).cmp(&(other.unix_seconds, other.nanos))
    }

    /// Go's `time.RFC3339Nano` form, as `index.json` carries it: `Z` for a zero offset,
    /// fractional seconds only when non-zero and without trailing zeros.
    pub fn to_go_rfc3339(&self) -> String {
        let mut s = self.date_time();
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            let _ = write!(s, ".{}", frac.trim_end_matches('0'));
        }
        if self.offset_seconds == 0 {
            s.push('Z');
        } else {
            s.push_str(&self.offset_text());
        }
        s
    }

    /// git's `%aI` form (strict ISO 8601), as `last_modified.json` carries it:
    /// whole seconds, `+00:00` for a zero offset.
    pub fn to_git_iso_strict(&self) -> String {
        let mut s = self.date_time();
        s.push_str(&self.offset_text());
        s
    }

    fn offset_text(&self) -> String {
        let sign = if self.offset_seconds < 0 { '-' } else { '+' };
        let minutes = self.offset_seconds.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    fn date_time(&self) -> String {
        let (year, month, day, hour, minute, second) = self.local_fields();
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")
    }

    fn local_fields(&self) -> (i64, i64, i64, i64, i64, i64) {
        let local = self.unix_seconds + i64::from(self.offset_seconds);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        (year, month, day, secs / 3600, secs % 3600 / 60, secs % 60)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_go_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_go_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
