//! MySQL's lexical rules, applied before the parser sees the text.
//!
//! The parser (sqlparser) and the server must agree on where strings,
//! identifiers, comments and statements begin and end, or a statement can
//! hide from the analysis: inside what the parser takes for a comment or a
//! string. So this lexer, which follows the server's rules, rewrites the
//! text into a form the parser cannot read differently:
//!
//! - every comment becomes a space (a `#` or `-- ` comment keeps its end of
//!   line), so the parser never decides what is a comment;
//! - executable comments (`/*! … */`, `/*!50000 … */`, MariaDB's
//!   `/*M! … */`) become [`Chunk::Exec`]: their text is code the server
//!   runs, or skips when its version is lower than the comment's, and the
//!   caller renders them both ways;
//! - every quoted string is re-quoted so that its only escapes are `\\`
//!   and `\'` (or `\"`): where a string ends no longer depends on escape
//!   rules. Its content is the text as written (escapes left undecoded);
//! - `--` that does not start a comment becomes `- -` (the same tokens for
//!   the server), and `\N` becomes `NULL`.
//!
//! How strings end depends on the session's `sql_mode`: with
//! `NO_BACKSLASH_ESCAPES` a backslash is an ordinary character, and with
//! `ANSI_QUOTES` a double-quoted text is an identifier (no escapes). The
//! text is lexed once per [`Quotes`] mode that could change it.

/// How quoted text is read (the session's `sql_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quotes {
    /// Backslash escapes in `'…'` and `"…"` (MySQL's default).
    Default,
    /// `ANSI_QUOTES`: `"…"` is an identifier, without escapes.
    Ansi,
    /// `NO_BACKSLASH_ESCAPES`: no escapes at all.
    NoBackslash,
}

impl Quotes {
    fn escapes(self, quote: u8) -> bool {
        match self {
            Quotes::Default => true,
            Quotes::Ansi => quote == b'\'',
            Quotes::NoBackslash => false,
        }
    }

    /// How a statement read this way is described in messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Quotes::Default => "",
            Quotes::Ansi => " (read as the server reads it when sql_mode has ANSI_QUOTES)",
            Quotes::NoBackslash => {
                " (read as the server reads it when sql_mode has NO_BACKSLASH_ESCAPES)"
            }
        }
    }
}

/// Which servers run an executable comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `/*! … */`: MySQL and MariaDB.
    Mysql,
    /// `/*M! … */`: MariaDB only (MySQL skips it).
    Mariadb,
}

/// A piece of the rewritten text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Code, rewritten as described in the module's documentation.
    Code(String),
    /// A `;` outside executable comments.
    Semicolon,
    /// The code of an executable comment; run when the server's version
    /// is at least `version` (always when there is none).
    Exec {
        family: Family,
        version: Option<u32>,
        code: String,
    },
}

/// The rewritten text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lexed {
    pub chunks: Vec<Chunk>,
    /// The text has an error the server stops at (an unterminated string,
    /// identifier or comment, a stray backslash): its message. `chunks`
    /// then hold only the statements before the one with the error (those
    /// the server may still run).
    pub broken: Option<String>,
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Where the writer puts code: the current code chunk, or the open
/// executable comment.
struct Writer {
    chunks: Vec<Chunk>,
    code: String,
    exec: Option<OpenExec>,
}

struct OpenExec {
    family: Family,
    version: Option<u32>,
    /// Byte offset of the `*/` that closes it (the first after it opens).
    close_at: usize,
    code: String,
}

impl Writer {
    fn push(&mut self, s: &str) {
        match &mut self.exec {
            Some(e) => e.code.push_str(s),
            None => self.code.push_str(s),
        }
    }

    fn flush_code(&mut self) {
        if !self.code.is_empty() {
            self.chunks
                .push(Chunk::Code(std::mem::take(&mut self.code)));
        }
    }
}

/// Appends `raw` (the text between the quotes, as written) re-quoted with
/// `quote`, escaping only backslashes and the quote.
fn requote(w: &mut Writer, quote: u8, raw: &str) {
    let q = char::from(quote);
    let mut s = String::with_capacity(raw.len() + 2);
    s.push(q);
    for ch in raw.chars() {
        if ch == '\\' || ch == q {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push(q);
    w.push(&s);
}

/// End (exclusive) of the quoted text starting at `start` (the quote), or
/// `None` when it is not closed.
fn quoted_end(b: &[u8], start: usize, quote: u8, escapes: bool) -> Option<usize> {
    let mut j = start + 1;
    while j < b.len() {
        let c = b[j];
        if escapes && c == b'\\' {
            j += 2;
            continue;
        }
        if c == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// Lexes `sql` with MySQL's rules. `Err` when the text is ambiguous: the
/// server could read it in ways that differ in what runs (a comment or a
/// string that crosses the end of an executable comment), so it is not
/// analysed at all.
pub(crate) fn lex(sql: &str, quotes: Quotes) -> Result<Lexed, String> {
    let b = sql.as_bytes();
    let mut w = Writer {
        chunks: Vec::new(),
        code: String::new(),
        exec: None,
    };
    let mut i = 0;
    let mut broken = None;
    while i < b.len() {
        if let Some(e) = &w.exec
            && i == e.close_at
        {
            if let Some(e) = w.exec.take() {
                w.flush_code();
                w.chunks.push(Chunk::Exec {
                    family: e.family,
                    version: e.version,
                    code: e.code,
                });
            }
            w.push(" ");
            i += 2;
            continue;
        }
        let in_exec = w.exec.is_some();
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let escapes = c != b'`' && quotes.escapes(c);
                let Some(end) = quoted_end(b, i, c, escapes) else {
                    broken = Some((
                        i,
                        match c {
                            b'`' => "an identifier in backticks is not closed",
                            _ => "a quoted string is not closed",
                        },
                    ));
                    break;
                };
                if let Some(e) = &w.exec
                    && e.close_at < end
                {
                    return Err(
                        "a quoted string or identifier runs past the end of an executable comment (/*! … */); the server could read it in more than one way, so it is not analysed".into(),
                    );
                }
                let raw = &sql[i + 1..end - 1];
                if c == b'`' {
                    w.push(&sql[i..end]);
                } else {
                    requote(&mut w, c, raw);
                }
                i = end;
            }
            b'#' => {
                if in_exec {
                    return Err(comment_in_exec());
                }
                i = line_end(b, i);
                w.push(" ");
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let after = b.get(i + 2).copied();
                if after.is_none_or(|a| a <= b' ' || a == 0x7f) {
                    if in_exec {
                        return Err(comment_in_exec());
                    }
                    i = line_end(b, i);
                    w.push(" ");
                } else {
                    // Two minus signs, not a comment: keep them apart so
                    // that no parser reads a comment here.
                    w.push("- ");
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                if in_exec {
                    return Err(comment_in_exec());
                }
                let Some(rel) = sql[i + 2..].find("*/") else {
                    broken = Some((i, "a comment (/* … */) is not closed"));
                    break;
                };
                let close_at = i + 2 + rel;
                let (family, marker) = match (b.get(i + 2), b.get(i + 3)) {
                    (Some(b'!'), _) => (Some(Family::Mysql), 3),
                    (Some(b'M'), Some(b'!')) => (Some(Family::Mariadb), 4),
                    _ => (None, 0),
                };
                match family {
                    None => {
                        w.push(" ");
                        i = close_at + 2;
                    }
                    Some(family) => {
                        let mut j = i + marker;
                        // The server's rule: five digits, or six, are a version.
                        let digits = b[j..close_at]
                            .iter()
                            .take(6)
                            .take_while(|d| d.is_ascii_digit())
                            .count();
                        let version = if digits >= 5 {
                            let v = sql[j..j + digits].parse::<u32>().ok();
                            j += digits;
                            v
                        } else {
                            None
                        };
                        w.flush_code();
                        w.exec = Some(OpenExec {
                            family,
                            version,
                            close_at,
                            code: String::new(),
                        });
                        i = j;
                    }
                }
            }
            b';' => {
                if in_exec {
                    w.push(";");
                } else {
                    w.flush_code();
                    w.chunks.push(Chunk::Semicolon);
                }
                i += 1;
            }
            b'\\' => {
                if b.get(i + 1) == Some(&b'N') {
                    // MySQL's old spelling of NULL.
                    w.push(" NULL ");
                    i += 2;
                } else {
                    broken = Some((i, "a backslash outside a quoted string"));
                    break;
                }
            }
            c if is_ident_byte(c) => {
                let start = i;
                while i < b.len() && is_ident_byte(b[i]) {
                    i += 1;
                }
                let word = &sql[start..i];
                let next = b.get(i).copied();
                let single = word.len() == 1;
                match (word.as_bytes(), next) {
                    ([b'x' | b'X'], Some(b'\'')) if single => {
                        // X'…': hex digits up to the next quote, no escapes.
                        match literal_of(b, i, |d| d.is_ascii_hexdigit()) {
                            Some(end) => {
                                w.push(&sql[start..end]);
                                i = end;
                            }
                            None => {
                                broken = Some((start, "a malformed X'…' literal"));
                                break;
                            }
                        }
                    }
                    ([b'b' | b'B'], Some(b'\'')) if single => {
                        match literal_of(b, i, |d| d == b'0' || d == b'1') {
                            Some(end) => {
                                w.push(&sql[start..end]);
                                i = end;
                            }
                            None => {
                                broken = Some((start, "a malformed B'…' literal"));
                                break;
                            }
                        }
                    }
                    ([b'n' | b'N'], Some(b'\'')) if single => {
                        // N'…': the string follows without a space.
                        w.push(word);
                    }
                    _ => {
                        w.push(word);
                        if matches!(next, Some(b'\'' | b'"')) {
                            w.push(" ");
                        }
                    }
                }
            }
            _ => {
                // One ASCII character (whitespace, an operator, a parenthesis).
                w.push(&sql[i..i + 1]);
                i += 1;
            }
        }
    }
    if let Some((at, why)) = broken {
        // Keep only the statements before the one with the error.
        if w.exec.is_some() {
            return Err(format!(
                "{why} inside an executable comment (/*! … */); the text is not analysed"
            ));
        }
        let last_semi = w.chunks.iter().rposition(|c| *c == Chunk::Semicolon);
        let kept = last_semi.map_or(0, |p| p + 1);
        if w.chunks[kept..]
            .iter()
            .any(|c| matches!(c, Chunk::Exec { code, .. } if code.contains(';')))
        {
            return Err(format!(
                "{why}, in a statement after an executable comment (/*! … */) that holds a `;`; the text is not analysed"
            ));
        }
        w.chunks.truncate(kept);
        return Ok(Lexed {
            chunks: w.chunks,
            broken: Some(format!("{why} (at byte {at})")),
        });
    }
    if w.exec.is_some() {
        // Cannot happen: the loop closes it at `close_at`, which is inside the text.
        return Err("an executable comment is not closed".into());
    }
    w.flush_code();
    Ok(Lexed {
        chunks: w.chunks,
        broken: None,
    })
}

fn comment_in_exec() -> String {
    "a comment inside an executable comment (/*! … */); the server could read it in more than one way, so the text is not analysed".into()
}

/// Index of the `\n` ending the line comment at `i` (or the end).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// End (exclusive) of an `X'…'`/`B'…'` literal whose quote is at `q`, if
/// all its characters pass `ok`.
fn literal_of(b: &[u8], q: usize, ok: impl Fn(u8) -> bool) -> Option<usize> {
    let mut j = q + 1;
    while j < b.len() {
        if b[j] == b'\'' {
            return Some(j + 1);
        }
        if !ok(b[j]) {
            return None;
        }
        j += 1;
    }
    None
}

/// The text a server runs: executable comments for which `runs` is true
/// become code, the others are skipped.
pub(crate) fn render(chunks: &[Chunk], runs: impl Fn(Family, Option<u32>) -> bool) -> String {
    let mut s = String::new();
    for c in chunks {
        match c {
            Chunk::Code(code) => s.push_str(code),
            Chunk::Semicolon => s.push(';'),
            Chunk::Exec {
                family,
                version,
                code,
            } => {
                s.push(' ');
                if runs(*family, *version) {
                    s.push_str(code);
                    s.push(' ');
                }
            }
        }
    }
    s
}

/// The content of a string literal as the server reads it: `raw` is the
/// text between the quotes as written.
pub(crate) fn decode_string(raw: &str, quote: char, escapes: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if escapes && c == '\\' {
            match chars.next() {
                Some('0') => out.push('\0'),
                Some('b') => out.push('\u{8}'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('Z') => out.push('\u{1a}'),
                // Kept with their backslash, for LIKE patterns.
                Some(c @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(c);
                }
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        } else if c == quote && chars.peek() == Some(&quote) {
            chars.next();
            out.push(quote);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(sql: &str) -> String {
        let l = lex(sql, Quotes::Default).expect("lexes");
        assert_eq!(l.broken, None, "{sql}");
        render(&l.chunks, |_, _| true)
    }

    #[test]
    fn comments_become_spaces() {
        assert_eq!(code("SELECT 1 # x; DROP\n, 2"), "SELECT 1  \n, 2");
        assert_eq!(code("SELECT 1 -- x; DROP"), "SELECT 1  ");
        assert_eq!(code("SELECT 1 --x"), "SELECT 1 - -x");
        assert_eq!(code("SELECT 1/* ; DROP */+1"), "SELECT 1 +1");
        assert_eq!(code("SELECT 1--\t;x"), "SELECT 1 ");
    }

    #[test]
    fn strings_are_requoted() {
        assert_eq!(
            code(r"SELECT 'it\'s', 'a''b'"),
            r"SELECT 'it\\\'s', 'a\'\'b'"
        );
        assert_eq!(code(r#"SELECT "x\"y""#), r#"SELECT "x\\\"y""#);
        assert_eq!(code("SELECT ';*/'"), "SELECT ';*/'");
        assert_eq!(code("SELECT `a``b;`"), "SELECT `a``b;`");
        assert_eq!(
            code("SELECT b\"x\", _utf8'x', N'x', X'41'"),
            "SELECT b \"x\", _utf8 'x', N'x', X'41'"
        );
    }

    #[test]
    fn executable_comments() {
        let l = lex(
            "SELECT 1 /*!40001 SQL_NO_CACHE */ /*M!100100 ; DROP TABLE t */",
            Quotes::Default,
        )
        .expect("lexes");
        assert_eq!(
            l.chunks,
            vec![
                Chunk::Code("SELECT 1 ".into()),
                Chunk::Exec {
                    family: Family::Mysql,
                    version: Some(40001),
                    code: " SQL_NO_CACHE ".into()
                },
                Chunk::Code("  ".into()),
                Chunk::Exec {
                    family: Family::Mariadb,
                    version: Some(100100),
                    code: " ; DROP TABLE t ".into()
                },
                Chunk::Code(" ".into()),
            ]
        );
        assert!(lex("SELECT /*! '*/' */", Quotes::Default).is_err());
        assert!(lex("SELECT /*! -- */ 1", Quotes::Default).is_err());
        assert!(lex("SELECT /*!99999 # */ 1", Quotes::Default).is_err());
        assert!(lex("SELECT /*! /* */ 1", Quotes::Default).is_err());
        assert_eq!(code("SELECT /*!1234 5 */"), "SELECT  1234 5   ");
    }

    #[test]
    fn errors_keep_the_statements_before() {
        let l = lex("SELECT 1; SELECT 'x", Quotes::Default).expect("lexes");
        assert_eq!(
            l.chunks,
            vec![Chunk::Code("SELECT 1".into()), Chunk::Semicolon]
        );
        assert!(l.broken.is_some());
        let l = lex(r"SELECT 'it\'s'", Quotes::NoBackslash).expect("lexes");
        assert!(l.chunks.is_empty() && l.broken.is_some(), "{l:?}");
        let l = lex(r"SELECT 1 \G", Quotes::Default).expect("lexes");
        assert!(l.broken.is_some());
        assert_eq!(code(r"SELECT \N"), "SELECT  NULL ");
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_string(r"it\'s a\\b\n", '\'', true), "it's a\\b\n");
        assert_eq!(decode_string(r"it''s", '\'', true), "it's");
        assert_eq!(decode_string(r"a\b", '\'', false), "a\\b");
    }
}
