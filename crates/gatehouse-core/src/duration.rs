//! Human durations: `90s`, `30m`, `24h`, `7d`, or combinations like `1h30m`;
//! and the calendar date of a day count.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: use a number with a unit, e.g. 90s, 30m, 24h or 7d")]
pub struct DurationError {
    input: String,
}

/// The date (year, month 1–12, day 1–31, proleptic Gregorian) of a day
/// counted from 1970-01-01 (negative before it).
pub fn civil_date(days_since_1970: i64) -> (i64, i64, i64) {
    let z = days_since_1970 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                's' => "s",
                'm' => "m",
                'h' => "h",
                'd' => "d",
                'w' => "w",
                _ => return Err(err()),
            }
        };
        let n: u64 = digits.parse().map_err(|_| err())?;
        digits.clear();
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            _ => n.checked_mul(604_800_000),
        }
        .ok_or_else(err)?;
        total = total.checked_add(ms).ok_or_else(err)?;
        saw_unit = true;
    }
    if !digits.is_empty() || !saw_unit {
        return Err(err());
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it (largest units first).
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(10_957 + 59), (2000, 2, 29));
        assert_eq!(civil_date(-719_162), (1, 1, 1));
    }

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m").ok(), Some(Duration::from_secs(1800)));
        assert_eq!(
            parse_duration("24h").ok(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("7d").ok(),
            Some(Duration::from_secs(604_800))
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "10", "h", "1x", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["90s", "1h30m", "2d", "250ms"] {
            let d = parse_duration(s).unwrap_or_default();
            assert_eq!(parse_duration(&format_duration(d)).ok(), Some(d));
        }
    }
}
