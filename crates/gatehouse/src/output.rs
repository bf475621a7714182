//! Human-readable output: aligned tables and timestamps.
//!
//! What people read in a terminal comes partly from callers (statement
//! texts, parameters, results, errors in recordings and reviews): it goes
//! through [`printable`], so that it cannot steer the terminal that shows
//! it.

use std::borrow::Cow;

/// `text` as it can be shown in a terminal: control characters (escape,
/// carriage return, backspace, C1 controls, and newlines and tabs unless
/// `lines` keeps them) and Unicode's bidirectional formatting characters
/// written as visible escapes (`\x1b`, `\r`, `\n`, `\u{202e}`). Otherwise a
/// recorded statement or a statement held for review could move the
/// cursor, rewrite or hide lines, or reorder what the administrator reads
/// (and approves).
pub fn printable(text: &str, lines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(lines && matches!(c, '\n' | '\t')))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    Cow::Owned(out)
}

/// Prints `v` as JSON, or as `human` writes it (made [`printable`]).
pub fn print(
    v: &serde_json::Value,
    as_json: bool,
    human: impl FnOnce(&serde_json::Value) -> String,
) {
    if as_json {
        println!("{}", json(v));
    } else {
        print!("{}", printable(&human(v), true));
    }
}

/// An aligned table; each cell is made [`printable`] on one line.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c, false).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`; `-` for none.
pub fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "-".into() };
    let (y, m, d, h, mi, sec) = gatehouse_core::civil(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{sec:02} UTC")
}

/// The elements of a JSON array (none when it is not one).
pub fn items(v: &serde_json::Value) -> &[serde_json::Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A JSON array of arrays as table cells: strings as they are, other
/// values as JSON, `null` as `null_as`.
pub fn cells(rows: &serde_json::Value, null_as: &str) -> Vec<Vec<String>> {
    items(rows)
        .iter()
        .map(|r| {
            items(r)
                .iter()
                .map(|v| match v {
                    serde_json::Value::Null => null_as.to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

pub fn json(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub fn s(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(Some(1_795_867_200_000)), "2026-11-28 12:00:00 UTC");
        assert_eq!(time(None), "-");
    }

    #[test]
    fn what_could_steer_a_terminal_is_shown_escaped() {
        assert_eq!(printable("SELECT 1", false), "SELECT 1");
        assert!(matches!(printable("a\nb", true), Cow::Borrowed(_)));
        assert_eq!(printable("a\nb\tc", false), "a\\nb\\tc");
        assert_eq!(
            printable("SELECT 1 /* \x1b[2J\x1b]0;t\x07 */\rDROP", true),
            "SELECT 1 /* \\x1b[2J\\x1b]0;t\\x07 */\\rDROP"
        );
        assert_eq!(printable("\u{9b}31m", true), "\\x9b31m");
        assert_eq!(
            printable("DELETE \u{202e}erehw\u{2066}", true),
            "DELETE \\u{202e}erehw\\u{2066}"
        );
        // A cell cannot make a row of its own.
        let t = table(&["A"], &[vec!["x\n1  allow".into()]]);
        assert_eq!(t, "A\nx\\n1  allow\n");
    }

    #[test]
    fn aligns_tables() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
