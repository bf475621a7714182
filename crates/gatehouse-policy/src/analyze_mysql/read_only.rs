//! Statements that would take a MySQL or MariaDB session out of read-only
//! mode (`SET SESSION TRANSACTION READ ONLY`, which a read-only connection's
//! sessions start with): the MySQL proxy refuses them there.
//!
//! Looked for in every reading of the text (executable comments as code or
//! not, each way of reading strings), statement by statement, anywhere in a
//! statement (inside `BEGIN NOT ATOMIC … END` too):
//! - `SET` of `tx_read_only` or `transaction_read_only` in any scope or
//!   spelling (`@@session.`, backticks, `SET STATEMENT … FOR`);
//! - `READ WRITE` (`SET TRANSACTION`, `START TRANSACTION`);
//! - text run as a statement (`PREPARE … FROM`, `EXECUTE IMMEDIATE`): a
//!   string is looked into the same way, anything else (a variable, an
//!   expression) cannot be seen and counts as leaving.

use sqlparser::tokenizer::Token;

use super::fallback::word;
use super::lex::decode_string;
use super::{MAX_PREPARE_DEPTH, readings, tokens_of};

/// Whether `sql` may leave read-only mode at all: it holds `read` (every
/// spelling above does), or `prepare` or `execute` (text made at run
/// time), in any case. Text without them cannot, whatever else it holds.
fn may_lift(sql: &str) -> bool {
    [&b"read"[..], b"prepare", b"execute"]
        .iter()
        .any(|w| super::mentions(sql, w))
}

/// Whether `sql` would (or might: text that cannot be read counts, if it
/// holds one of the words above) take the session out of read-only mode.
/// Text without those words is let through at once, so this is cheap on
/// the data path.
pub fn lifts_read_only_mysql(sql: &str) -> bool {
    lifts(sql, 0)
}

fn lifts(sql: &str, depth: usize) -> bool {
    if !may_lift(sql) {
        return false;
    }
    if depth > MAX_PREPARE_DEPTH {
        return true;
    }
    let Ok(texts) = readings(sql) else {
        return true;
    };
    texts.iter().any(|(text, _)| {
        let Ok(tokens) = tokens_of(text) else {
            return true;
        };
        tokens.split(|t| t.token == Token::SemiColon).any(|piece| {
            let sig: Vec<&Token> = piece
                .iter()
                .map(|t| &t.token)
                .filter(|t| !matches!(t, Token::Whitespace(_)))
                .collect();
            statement_lifts(&sig, depth)
        })
    })
}

/// Whether `t` names the session's read-only setting (`tx_read_only`,
/// `@@session.tx_read_only`'s last part, `` `transaction_read_only` ``).
fn names_setting(t: &Token) -> bool {
    let Token::Word(w) = t else {
        return false;
    };
    let name = w.value.rsplit('.').next().unwrap_or_default();
    let name = name.trim_start_matches('@');
    name.eq_ignore_ascii_case("tx_read_only") || name.eq_ignore_ascii_case("transaction_read_only")
}

fn statement_lifts(sig: &[&Token], depth: usize) -> bool {
    let is = |k: usize, w: &str| sig.get(k).and_then(|t| word(t)).as_deref() == Some(w);
    let sets = (0..sig.len()).any(|k| is(k, "SET"));
    for k in 0..sig.len() {
        if sets && names_setting(sig[k]) {
            return true;
        }
        if is(k, "READ") && is(k + 1, "WRITE") {
            return true;
        }
        // PREPARE name FROM <text>, EXECUTE IMMEDIATE <text>: the text is
        // the token after these words, alone up to the statement's end (or
        // to USING, for EXECUTE IMMEDIATE).
        let text_at = if is(k, "PREPARE") && is(k + 2, "FROM") {
            Some(k + 3)
        } else if is(k, "EXECUTE") && is(k + 1, "IMMEDIATE") {
            Some(k + 2)
        } else {
            None
        };
        if let Some(at) = text_at {
            let text = match sig.get(at) {
                Some(Token::SingleQuotedString(s)) => Some((s, '\'')),
                Some(Token::DoubleQuotedString(s)) => Some((s, '"')),
                _ => None,
            };
            let alone = sig.len() == at + 1 || is(at + 1, "USING");
            match text {
                Some((raw, quote)) if alone => {
                    let decoded = [true, false].map(|escapes| decode_string(raw, quote, escapes));
                    if decoded.iter().any(|text| lifts(text, depth + 1)) {
                        return true;
                    }
                }
                _ => return true,
            }
        }
    }
    false
}
