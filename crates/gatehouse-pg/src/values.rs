//! PostgreSQL's text form of values that came in binary format, for the
//! recording: a client that asks for binary results (asyncpg,
//! tokio-postgres, JDBC for some types) should not leave hex in the
//! recording where a text client would have left `42` or `alice`.
//!
//! Only types whose binary layout is fixed and whose text form does not
//! depend on session settings are rendered, the way the server's output
//! functions render them with default settings (`DateStyle` ISO,
//! `extra_float_digits` 1); `timestamptz` is rendered in UTC (`+00`), since
//! the session's `TimeZone` is not known here. Anything else, and any value
//! whose bytes do not fit its type, is left to the caller (kept as hex).
//! The text written is at most about 2 KiB plus the value's own length.

use std::fmt::Write as _;

/// Type OIDs (from `pg_type`) this module renders.
mod oid {
    pub const BOOL: u32 = 16;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Appends the text form of `v`, a binary value of type `type_oid`, to
/// `out`. `None` (and `out` as it was) when the type is not one rendered
/// here or the bytes do not fit it.
pub fn render(type_oid: u32, v: &[u8], out: &mut String) -> Option<()> {
    let start = out.len();
    let done = render_into(type_oid, v, out);
    if done.is_none() {
        out.truncate(start);
    }
    done
}

fn render_into(type_oid: u32, v: &[u8], out: &mut String) -> Option<()> {
    match type_oid {
        oid::BOOL => match v {
            [0] => out.push('f'),
            [1] => out.push('t'),
            _ => return None,
        },
        oid::INT2 => push_int(out, i16::from_be_bytes(v.try_into().ok()?)),
        oid::INT4 => push_int(out, i32::from_be_bytes(v.try_into().ok()?)),
        oid::INT8 => push_int(out, i64::from_be_bytes(v.try_into().ok()?)),
        oid::OID => push_int(out, u32::from_be_bytes(v.try_into().ok()?)),
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::JSON
        | oid::XML
        | oid::UNKNOWN => out.push_str(std::str::from_utf8(v).ok()?),
        // `"char"`: one byte; the zero byte reads as the empty string (a
        // byte over 0x7f, which the server writes as an octal escape, is
        // left as hex).
        oid::CHAR => match v {
            [] | [0] => {}
            [b] if b.is_ascii() => out.push(char::from(*b)),
            _ => return None,
        },
        oid::JSONB => match v.split_first() {
            // Version 1 is the only one: the JSON text follows.
            Some((1, text)) => out.push_str(std::str::from_utf8(text).ok()?),
            _ => return None,
        },
        oid::FLOAT4 => float(out, f64::from(f32::from_be_bytes(v.try_into().ok()?)), true),
        oid::FLOAT8 => float(out, f64::from_be_bytes(v.try_into().ok()?), false),
        oid::UUID => {
            let b: [u8; 16] = v.try_into().ok()?;
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                let _ = write!(out, "{byte:02x}");
            }
        }
        oid::NUMERIC => numeric(out, v)?,
        oid::DATE => {
            let days = i32::from_be_bytes(v.try_into().ok()?);
            match days {
                i32::MAX => out.push_str("infinity"),
                i32::MIN => out.push_str("-infinity"),
                d => date(out, i64::from(d))?,
            }
        }
        oid::TIME => {
            let us = i64::from_be_bytes(v.try_into().ok()?);
            if !(0..=86_400_000_000).contains(&us) {
                return None;
            }
            time_of_day(out, us);
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let us = i64::from_be_bytes(v.try_into().ok()?);
            match us {
                i64::MAX => out.push_str("infinity"),
                i64::MIN => out.push_str("-infinity"),
                us => {
                    date(out, us.div_euclid(86_400_000_000))?;
                    out.push(' ');
                    time_of_day(out, us.rem_euclid(86_400_000_000));
                    if type_oid == oid::TIMESTAMPTZ {
                        out.push_str("+00");
                    }
                }
            }
        }
        _ => return None,
    }
    Some(())
}

fn push_int(out: &mut String, v: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// As `float8out`/`float4out` with `extra_float_digits` 1 (the default
/// since PostgreSQL 12): the shortest digits that read back exactly, fixed
/// point for decimal exponents from -4 up to 14 (5 for `real`), otherwise
/// `d.ddde+XX`.
fn float(out: &mut String, v: f64, single: bool) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Ryū does.
    let sci = if single {
        #[allow(clippy::cast_possible_truncation)] // the value came from an f32
        let f = v as f32;
        format!("{f:e}")
    } else {
        format!("{v:e}")
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    let fixed_below = if single { 6 } else { 15 };
    if (-4..fixed_below).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// `numeric` in binary: digit count, weight (of the first digit, in base
/// 10000), sign, display scale, then the base-10000 digits.
fn numeric(out: &mut String, v: &[u8]) -> Option<()> {
    let word = |i: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            v.get(2 * i..2 * i + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::from(word(0)?);
    #[allow(clippy::cast_possible_wrap)] // the weight is a signed 16-bit field
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    // PostgreSQL displays at most 1000 digits after the point; values with
    // over 1000 digits before it are left to the caller (kept as hex).
    if v.len() != 8 + 2 * ndigits || dscale > 1000 || weight > 250 {
        return None;
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => {
            out.push_str("NaN");
            return Some(());
        }
        0xD000 => {
            out.push_str("Infinity");
            return Some(());
        }
        0xF000 => {
            out.push_str("-Infinity");
            return Some(());
        }
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    if digits.iter().any(|&d| d > 9999) {
        return None;
    }
    // Digit `i` (base 10000) stands for 10000^(weight - i).
    let digit = |pos: i32| -> u16 {
        usize::try_from(weight - pos)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        let _ = write!(out, "{}", digit(weight));
        for pos in (0..weight).rev() {
            let _ = write!(out, "{:04}", digit(pos));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut pos = -1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(pos));
            pos -= 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Some(())
}

/// `YYYY-MM-DD` of a day counted from 2000-01-01; `None` before year 1
/// (PostgreSQL writes those with `BC`, not rendered here) or after 9999.
fn date(out: &mut String, days_since_2000: i64) -> Option<()> {
    let (year, month, day) = gatehouse_core::duration::civil_date(days_since_2000 + 10_957);
    if !(1..=9999).contains(&year) {
        return None;
    }
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    Some(())
}

/// `HH:MM:SS` and, when there are any, the microseconds without trailing zeros.
fn time_of_day(out: &mut String, us: i64) {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(type_oid: u32, v: &[u8]) -> Option<String> {
        let mut s = String::from("kept");
        let r = render(type_oid, v, &mut s).map(|()| s[4..].to_string());
        if r.is_none() {
            assert_eq!(s, "kept", "nothing is left behind on failure");
        }
        r
    }

    #[test]
    fn fixed_width_types() {
        assert_eq!(text(oid::BOOL, &[1]).as_deref(), Some("t"));
        assert_eq!(text(oid::BOOL, &[0]).as_deref(), Some("f"));
        assert_eq!(text(oid::BOOL, &[2]), None);
        assert_eq!(
            text(oid::INT2, &(-7i16).to_be_bytes()).as_deref(),
            Some("-7")
        );
        assert_eq!(text(oid::INT4, &7i32.to_be_bytes()).as_deref(), Some("7"));
        assert_eq!(
            text(oid::INT8, &i64::MIN.to_be_bytes()).as_deref(),
            Some("-9223372036854775808")
        );
        assert_eq!(
            text(oid::OID, &u32::MAX.to_be_bytes()).as_deref(),
            Some("4294967295")
        );
        assert_eq!(text(oid::INT4, &[0, 0, 7]), None, "wrong length");
        assert_eq!(
            text(
                oid::UUID,
                &[
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11
                ]
            )
            .as_deref(),
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
    }

    #[test]
    fn text_types() {
        assert_eq!(text(oid::TEXT, "ünï".as_bytes()).as_deref(), Some("ünï"));
        assert_eq!(text(oid::VARCHAR, &[0xff]), None, "not UTF-8");
        assert_eq!(text(oid::CHAR, b"c").as_deref(), Some("c"));
        assert_eq!(text(oid::CHAR, &[0]).as_deref(), Some(""));
        assert_eq!(text(oid::CHAR, &[0x81]), None);
        assert_eq!(
            text(oid::JSONB, b"\x01{\"a\": 1}").as_deref(),
            Some("{\"a\": 1}")
        );
        assert_eq!(text(oid::JSONB, b"\x02{}"), None, "unknown jsonb version");
        assert_eq!(text(17, b"x"), None, "bytea stays hex (its text form)");
        assert_eq!(text(9999, b"x"), None, "unknown types stay hex");
    }

    #[test]
    fn floats_as_the_server_writes_them() {
        let f8 = |v: f64| text(oid::FLOAT8, &v.to_be_bytes()).unwrap();
        let f4 = |v: f32| text(oid::FLOAT4, &v.to_be_bytes()).unwrap();
        assert_eq!(f8(1.5), "1.5");
        assert_eq!(f8(100.0), "100");
        assert_eq!(f8(0.1), "0.1");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(1e14), "100000000000000");
        assert_eq!(f8(1e15), "1e+15");
        assert_eq!(f8(-1.25e300), "-1.25e+300");
        assert_eq!(f8(f64::NAN), "NaN");
        assert_eq!(f8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(f8(-0.0), "-0");
        assert_eq!(f4(0.1), "0.1");
        assert_eq!(f4(123456.0), "123456");
        assert_eq!(f4(1234567.0), "1.234567e+06");
    }

    fn numeric_bytes(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight.cast_unsigned(), sign, dscale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        let n = |w: i16, s: u16, d: u16, digits: &[u16]| {
            text(
                oid::NUMERIC,
                &numeric_bytes(digits.len() as u16, w, s, d, digits),
            )
        };
        // 12.340 → digits [12, 3400], weight 0, scale 3
        assert_eq!(n(0, 0, 3, &[12, 3400]).as_deref(), Some("12.340"));
        // -123456789 → [1, 2345, 6789], weight 2
        assert_eq!(
            n(2, 0x4000, 0, &[1, 2345, 6789]).as_deref(),
            Some("-123456789")
        );
        // 0.00012 → [1, 2000], weight -1, scale 5
        assert_eq!(n(-1, 0, 5, &[1, 2000]).as_deref(), Some("0.00012"));
        // 10000 → [1], weight 1 (trailing zero digits are not sent)
        assert_eq!(n(1, 0, 0, &[1]).as_deref(), Some("10000"));
        assert_eq!(n(0, 0, 2, &[]).as_deref(), Some("0.00"));
        assert_eq!(n(0, 0xC000, 0, &[]).as_deref(), Some("NaN"));
        assert_eq!(n(0, 0, 0, &[10000]), None, "digit out of range");
        assert_eq!(text(oid::NUMERIC, &[0, 1, 0, 0]), None, "truncated");
    }

    #[test]
    fn dates_and_times() {
        let d = |days: i32| text(oid::DATE, &days.to_be_bytes());
        assert_eq!(d(0).as_deref(), Some("2000-01-01"));
        assert_eq!(d(-1).as_deref(), Some("1999-12-31"));
        assert_eq!(d(59).as_deref(), Some("2000-02-29"));
        assert_eq!(d(9_132).as_deref(), Some("2025-01-01"));
        assert_eq!(d(i32::MAX).as_deref(), Some("infinity"));
        assert_eq!(d(-800_000), None, "BC dates stay hex");
        let ts = |us: i64, tz: bool| {
            text(
                if tz { oid::TIMESTAMPTZ } else { oid::TIMESTAMP },
                &us.to_be_bytes(),
            )
        };
        assert_eq!(ts(0, false).as_deref(), Some("2000-01-01 00:00:00"));
        assert_eq!(ts(-1, false).as_deref(), Some("1999-12-31 23:59:59.999999"));
        assert_eq!(
            ts(86_400_000_000 + 3_723_500_000, true).as_deref(),
            Some("2000-01-02 01:02:03.5+00")
        );
        assert_eq!(
            text(oid::TIME, &45_296_000_001i64.to_be_bytes()).as_deref(),
            Some("12:34:56.000001")
        );
    }
}
