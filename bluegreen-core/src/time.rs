//! Time as plain data: the machine is always *handed* the time, it never reads a clock.
//!
//! [`Timestamp`] is milliseconds since the Unix epoch so that deadlines (bake end, drain end,
//! approval timeout) survive a process restart byte-for-byte; `std::time::Instant` would not.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself; useful as a starting point for simulated clocks.
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating: a far-future deadline never wraps into the past.
    #[must_use]
    pub const fn plus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`; zero when `earlier` is later.
    pub const fn ms_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T03:04:05.678Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parse a human duration (`"90s"`, `"5m"`, `"1h30m"`, `"250ms"`, or a bare number of
/// milliseconds) into milliseconds. Units: `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration_ms(text: &str) -> Result<u64, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().map_err(|_| DurationError::Overflow);
    }
    let bytes = text.as_bytes();
    let mut total_ms: u64 = 0;
    let mut i = 0;
    // Bounded: every iteration consumes at least one byte.
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(DurationError::Malformed(text.to_string()));
        }
        let value: u64 = text[start..i]
            .parse()
            .map_err(|_| DurationError::Overflow)?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor_ms: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            // "5 minutes": something follows the number, but not a unit.
            "" if i < bytes.len() => return Err(DurationError::Malformed(text.to_string())),
            "" => return Err(DurationError::MissingUnit(text.to_string())),
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        total_ms = value
            .checked_mul(factor_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or(DurationError::Overflow)?;
    }
    Ok(total_ms)
}

/// Format milliseconds the way [`parse_duration_ms`] reads them back (`"1h30m"`, `"250ms"`).
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (factor, unit) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ] {
        if rest >= factor {
            out.push_str(&format!("{}{unit}", rest / factor));
            rest %= factor;
        }
    }
    out
}

/// Format milliseconds for people: whole units down to seconds, and under a minute a
/// decimal fraction instead of a millisecond part (`"2.049s"`, `"2m50s"`, `"250ms"`),
/// never the compound `"2s49ms"`. Not parseable back; use [`format_duration_ms`] for that.
pub fn format_duration_human(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let text = format!("{:.3}", ms as f64 / 1000.0);
        return format!("{}s", text.trim_end_matches('0').trim_end_matches('.'));
    }
    // A minute or more: sub-second parts are noise; round to the nearest second.
    format_duration_ms((ms + 500) / 1000 * 1000)
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error(
        "malformed duration {0:?}: write a number and a unit (ms, s, m, h, d) with no space, e.g. \"90s\", \"5m\", \"1h30m\""
    )]
    Malformed(String),
    #[error("duration {0:?} has a number without a unit (ms, s, m, h, d)")]
    MissingUnit(String),
    #[error("unknown duration unit {0:?} (use ms, s, m, h, d, e.g. \"5m\")")]
    UnknownUnit(String),
    #[error("duration too large")]
    Overflow,
}

/// Serde adapter: a duration field is written as `"5m"` and read from either `"5m"` or a
/// number of milliseconds. Use with `#[serde(with = "bluegreen_core::time::duration")]`.
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Ms(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Ms(ms) => Ok(ms),
            Either::Text(t) => super::parse_duration_ms(&t).map_err(de::Error::custom),
        }
    }
}

/// Like [`duration`] for `Option<u64>` fields.
pub mod duration_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => super::duration::serialize(ms, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::duration")] u64);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations_and_bare_millis() {
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("1500"), Ok(1500));
        assert_eq!(parse_duration_ms(" 2s "), Ok(2000));
    }

    #[test]
    fn rejects_bad_durations_with_a_reason() {
        assert_eq!(parse_duration_ms(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration_ms("5x"),
            Err(DurationError::UnknownUnit("x".into()))
        );
        assert_eq!(
            parse_duration_ms("5m3"),
            Err(DurationError::MissingUnit("5m3".into()))
        );
        assert!(matches!(
            parse_duration_ms("m5"),
            Err(DurationError::Malformed(_))
        ));
        assert_eq!(
            parse_duration_ms("99999999999999999999d"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn a_spelled_out_unit_is_told_how_to_write_it() {
        let e = parse_duration_ms("5 minutes").unwrap_err();
        assert!(matches!(e, DurationError::Malformed(_)));
        let text = e.to_string();
        assert!(
            text.contains("\"5m\"") && !text.contains("without a unit"),
            "{text}"
        );
        assert!(
            parse_duration_ms("5minutes")
                .unwrap_err()
                .to_string()
                .contains("\"5m\"")
        );
    }

    #[test]
    fn human_durations_have_no_millisecond_part_beside_seconds() {
        assert_eq!(format_duration_human(2_049), "2.049s");
        assert_eq!(format_duration_human(2_000), "2s");
        assert_eq!(format_duration_human(250), "250ms");
        assert_eq!(format_duration_human(170_149), "2m50s");
        assert_eq!(format_duration_human(3_600_400), "1h");
        // A minute exactly is "1m", not "60s".
        assert_eq!(format_duration_human(59_999), "59.999s");
        assert_eq!(format_duration_human(60_000), "1m");
    }

    #[test]
    fn every_day_from_1970_to_2500_displays_as_the_day_after_the_one_before() {
        // An independent calendar, counted a day at a time with the Gregorian rules
        // (century years leap only every 400), against the display of each midnight.
        let leap = |y: u32| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let (mut y, mut m, mut d) = (1970_u32, 1_u32, 1_u32);
        let mut day = 0_u64;
        while y < 2500 {
            let want = format!("{y:04}-{m:02}-{d:02}T00:00:00.000Z");
            assert_eq!(Timestamp::from_millis(day * 86_400_000).to_string(), want);
            day += 1;
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }

    #[test]
    fn format_round_trips_through_parse() {
        for ms in [0, 1, 999, 1000, 61_000, 5_400_000, 90_061_001] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn timestamps_display_as_rfc3339_utc() {
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000Z");
        // 2026-11-22T03:04:05.678Z
        assert_eq!(
            Timestamp::from_millis(1_795_316_645_678).to_string(),
            "2026-11-22T03:04:05.678Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(u64::MAX - 1);
        assert_eq!(t.plus_ms(10), Timestamp::from_millis(u64::MAX));
        assert_eq!(Timestamp::EPOCH.ms_since(t), 0);
    }
}
