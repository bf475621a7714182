//! MySQL statements sqlparser does not parse, classified here.
//!
//! Two ways: a statement close to one sqlparser knows is rewritten into it
//! and parsed (`DO …` as `SELECT …`, `SELECT … INTO OUTFILE` without its
//! `INTO` clause, `UPDATE a, b SET …` as `UPDATE a CROSS JOIN b SET …`,
//! `SET PERSIST` as `SET GLOBAL`, `LOAD DATA … SET …` as an `UPDATE`),
//! so that its tables and functions are still found; a statement that
//! holds no query (`SHUTDOWN`, `CREATE USER 'u'@'%'`, `CHANGE MASTER …`)
//! is classified by its leading keywords, provided it holds no subquery
//! (one would read tables unseen). Anything else is left unparsed.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use super::lex::decode_string;
use super::{Acc, MAX_PREPARE_DEPTH, analyse_text, parser, walk};
use crate::analyze::Class;

fn is_ws(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// The upper-case text of an unquoted word.
pub(super) fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn is_word(t: &Token, w: &str) -> bool {
    word(t).as_deref() == Some(w)
}

fn tok(t: Token) -> TokenWithSpan {
    TokenWithSpan::wrap(t)
}

fn kw(s: &str) -> TokenWithSpan {
    tok(Token::make_keyword(s))
}

fn space() -> TokenWithSpan {
    tok(Token::Whitespace(Whitespace::Space))
}

/// The first words of a statement, for messages.
pub(super) fn head(piece: &[TokenWithSpan]) -> String {
    piece
        .iter()
        .filter(|t| !is_ws(&t.token))
        .take(3)
        .map(|t| t.token.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Classifies a statement sqlparser could not parse, adding what it does
/// to `acc`. `Ok(false)`: not a statement known here; `Err`: known, but
/// not analysed, for the reason given.
pub(super) fn classify(
    piece: &[TokenWithSpan],
    acc: &mut Acc,
    depth: usize,
) -> Result<bool, String> {
    // Indices of the significant tokens.
    let idx: Vec<usize> = (0..piece.len())
        .filter(|&i| !is_ws(&piece[i].token))
        .collect();
    let sig: Vec<&Token> = idx.iter().map(|&i| &piece[i].token).collect();
    let w = |k: usize| sig.get(k).and_then(|t| word(t)).unwrap_or_default();
    let (w0, w1, w2) = (w(0), w(1), w(2));
    match (w0.as_str(), w1.as_str()) {
        ("DO", _) => rewrite_head(piece, &idx, 1, vec![kw("SELECT")], acc),
        ("TABLE", _) => rewrite_head(
            piece,
            &idx,
            1,
            vec![kw("SELECT"), space(), tok(Token::Mul), space(), kw("FROM")],
            acc,
        ),
        ("SET", "PASSWORD") => keywords(&sig, acc, Class::Dcl, None),
        ("SET", "DEFAULT") if w2 == "ROLE" => keywords(&sig, acc, Class::Dcl, None),
        ("SET", "RESOURCE") => keywords(&sig, acc, Class::Admin, None),
        ("SET", "GLOBAL" | "PERSIST" | "PERSIST_ONLY") if w2 == "TRANSACTION" => keywords(
            &sig,
            acc,
            Class::Admin,
            Some("SET GLOBAL changes the server's configuration"),
        ),
        ("SET", "TRANSACTION") => keywords(&sig, acc, Class::Other, None),
        ("SET", "SESSION" | "LOCAL") if w2 == "TRANSACTION" => {
            keywords(&sig, acc, Class::Other, None)
        }
        ("SET", _) => set_rewrite(piece, &idx, acc),
        ("SELECT" | "WITH", _) => select_rewrite(piece, &idx, acc),
        _ if matches!(sig.first(), Some(Token::LParen)) => select_rewrite(piece, &idx, acc),
        ("UPDATE", _) => update_rewrite(piece, &idx, acc),
        ("LOAD", "DATA" | "XML") => load_data(piece, &idx, acc),
        ("PREPARE", _) => prepare(&sig, acc, depth),
        ("EXECUTE", _) => {
            acc.anonymous_code = true;
            if w1 == "IMMEDIATE" {
                acc.unseen = true;
            } else {
                acc.execute(sig.get(1).copied());
            }
            keywords(
                &sig,
                acc,
                Class::Admin,
                Some(
                    "EXECUTE runs a statement prepared from text, which the analysis does not see",
                ),
            )
        }
        ("DEALLOCATE" | "DROP", "PREPARE") => keywords(&sig, acc, Class::Other, None),
        ("HANDLER", _) => handler(&sig, acc),
        ("LOCK", "TABLES" | "TABLE") => lock_tables(&sig, acc),
        ("XA", _) => keywords(&sig, acc, Class::Transaction, None),
        ("SHOW", _) => keywords(&sig, acc, Class::Read, None),
        ("HELP" | "SIGNAL" | "RESIGNAL", _) | ("GET", "DIAGNOSTICS") => {
            keywords(&sig, acc, Class::Other, None)
        }
        (
            "SHUTDOWN" | "RESTART" | "BINLOG" | "CLONE" | "PURGE" | "RESET" | "CHANGE" | "INSTALL"
            | "UNINSTALL" | "FLUSH" | "CACHE" | "IMPORT",
            _,
        )
        | ("START" | "STOP", "SLAVE" | "REPLICA" | "GROUP_REPLICATION")
        | ("LOCK" | "UNLOCK" | "ALTER", "INSTANCE")
        | ("LOAD", "INDEX")
        | (
            "CREATE" | "ALTER" | "DROP",
            "DATABASE" | "SCHEMA" | "TABLESPACE" | "LOGFILE" | "SERVER" | "RESOURCE" | "SPATIAL"
            | "UNDO",
        ) => keywords(&sig, acc, Class::Admin, None),
        ("KILL", _) => keywords(&sig, acc, Class::Admin, Some(super::KILL_REASON)),
        ("OPTIMIZE" | "REPAIR" | "CHECK" | "CHECKSUM" | "ANALYZE", _) => {
            maintenance(&sig, acc, w0 == "OPTIMIZE" || w0 == "REPAIR")
        }
        ("CREATE" | "ALTER" | "DROP" | "RENAME", "USER")
        | ("CREATE" | "ALTER" | "DROP", "ROLE")
        | ("GRANT" | "REVOKE", _) => keywords(&sig, acc, Class::Dcl, None),
        ("ALTER", "TABLE") | ("CREATE", "TABLE" | "TEMPORARY") => table_ddl(&sig, acc),
        ("CREATE" | "ALTER" | "DROP", _) => routine(&sig, acc),
        _ => Ok(false),
    }
}

/// `SET GLOBAL|PERSIST|PERSIST_ONLY …` and `SET @@global.…` in any
/// statement of `tokens`, whatever sqlparser makes of them (it drops the
/// scope of `SET GLOBAL TRANSACTION …`): `admin`.
pub(super) fn global_sets(tokens: &[TokenWithSpan], acc: &mut Acc) {
    for piece in tokens.split(|t| t.token == Token::SemiColon) {
        let sig: Vec<&Token> = piece
            .iter()
            .map(|t| &t.token)
            .filter(|t| !is_ws(t))
            .collect();
        if !sig.first().is_some_and(|t| is_word(t, "SET")) {
            continue;
        }
        let global = sig.iter().enumerate().any(|(k, t)| {
            let scope_at = k == 1 || (k > 1 && matches!(sig[k - 1], Token::Comma));
            (scope_at
                && (is_word(t, "GLOBAL") || is_word(t, "PERSIST") || is_word(t, "PERSIST_ONLY")))
                || matches!(t, Token::Word(w) if {
                    let v = w.value.to_ascii_lowercase();
                    v.starts_with("@@global") || v.starts_with("@@persist")
                })
        });
        if global {
            acc.raise(Class::Admin);
            acc.reason("SET GLOBAL changes the server's configuration");
        }
    }
}

/// Whether a statement holds no query (`SELECT`, or a parenthesised
/// `TABLE`/`VALUES`/`WITH`) whose tables would go unseen.
fn holds_no_query(sig: &[&Token]) -> bool {
    !sig.iter().enumerate().any(|(i, t)| {
        is_word(t, "SELECT")
            || (matches!(t, Token::LParen)
                && sig.get(i + 1).is_some_and(|n| {
                    is_word(n, "TABLE") || is_word(n, "VALUES") || is_word(n, "WITH")
                }))
    })
}

/// Words followed by `(` are function calls (`KILL CONNECTION_ID()`).
fn calls(sig: &[&Token], acc: &mut Acc) {
    for (i, t) in sig.iter().enumerate() {
        if let Token::Word(w) = t
            && matches!(sig.get(i + 1), Some(Token::LParen))
            && !matches!(
                w.keyword,
                Keyword::PARTITION
                    | Keyword::IN
                    | Keyword::ON
                    | Keyword::AS
                    | Keyword::USING
                    | Keyword::VALUES
                    | Keyword::KEY
                    | Keyword::INDEX
                    | Keyword::TABLE
                    | Keyword::TO
                    | Keyword::FROM
                    | Keyword::BY
                    | Keyword::ROW
            )
        {
            acc.call(w.value.to_lowercase());
        }
    }
}

/// A statement classified by its keywords.
fn keywords(
    sig: &[&Token],
    acc: &mut Acc,
    class: Class,
    why: Option<&str>,
) -> Result<bool, String> {
    if !holds_no_query(sig) {
        return Err(format!(
            "MySQL statement \"{} …\" holds a query, which Gatehouse cannot analyse in this kind of statement",
            sig.iter()
                .take(2)
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    calls(sig, acc);
    acc.raise(class);
    if let Some(why) = why {
        acc.reason(why);
    }
    Ok(true)
}

/// Parses rewritten tokens and walks them; `Ok(false)` if they still do
/// not parse (the caller reports the original error).
fn parse_walk(tokens: Vec<TokenWithSpan>, acc: &mut Acc) -> Result<bool, String> {
    match parser(tokens) {
        Ok(statements) => {
            for s in &statements {
                walk(s, acc);
            }
            Ok(!statements.is_empty())
        }
        Err(sqlparser::parser::ParserError::RecursionLimitExceeded) => {
            Err("the statement is nested too deeply to analyse".into())
        }
        Err(_) => Ok(false),
    }
}

/// Replaces the first `n` significant tokens with `with` and parses.
fn rewrite_head(
    piece: &[TokenWithSpan],
    idx: &[usize],
    n: usize,
    with: Vec<TokenWithSpan>,
    acc: &mut Acc,
) -> Result<bool, String> {
    let Some(&after) = idx.get(n - 1) else {
        return Ok(false);
    };
    let mut tokens = with;
    tokens.extend_from_slice(&piece[after + 1..]);
    parse_walk(tokens, acc)
}

/// Significant token positions at parenthesis depth 0.
fn top_level(piece: &[TokenWithSpan], idx: &[usize]) -> Vec<bool> {
    let mut depth = 0usize;
    idx.iter()
        .map(|&i| match piece[i].token {
            Token::LParen => {
                depth += 1;
                depth == 1
            }
            Token::RParen => {
                depth = depth.saturating_sub(1);
                depth == 0
            }
            _ => depth == 0,
        })
        .collect()
}

/// `SET PERSIST x = …` (as `SET GLOBAL`), `SET @a := …` (as `=`).
fn set_rewrite(piece: &[TokenWithSpan], idx: &[usize], acc: &mut Acc) -> Result<bool, String> {
    let top = top_level(piece, idx);
    let mut tokens = piece.to_vec();
    let mut changed = false;
    for (k, &i) in idx.iter().enumerate() {
        if !top[k] {
            continue;
        }
        let prev_starts = k == 1 || (k > 1 && piece[idx[k - 1]].token == Token::Comma);
        match &piece[i].token {
            t if prev_starts && (is_word(t, "PERSIST") || is_word(t, "PERSIST_ONLY")) => {
                tokens[i] = kw("GLOBAL");
                changed = true;
            }
            Token::Assignment => {
                tokens[i] = tok(Token::Eq);
                changed = true;
            }
            _ => {}
        }
    }
    if !changed {
        return Ok(false);
    }
    parse_walk(tokens, acc)
}

/// `SELECT … INTO OUTFILE|DUMPFILE 'file' …` (admin: it writes a file on
/// the server), `SELECT … INTO @var` at the end, `LOCK IN SHARE MODE`.
fn select_rewrite(piece: &[TokenWithSpan], idx: &[usize], acc: &mut Acc) -> Result<bool, String> {
    let top = top_level(piece, idx);
    let sig = |k: usize| idx.get(k).map(|&i| &piece[i].token);
    let mut drop = vec![false; piece.len()];
    let mut replace: Vec<(usize, Vec<TokenWithSpan>)> = Vec::new();
    let mut file = false;
    let mut changed = false;
    let mut k = 0;
    while k < idx.len() {
        let t = &piece[idx[k]].token;
        if !top[k] {
            k += 1;
            continue;
        }
        let next_is = |w: &str| sig(k + 1).is_some_and(|t| is_word(t, w));
        if is_word(t, "INTO") && (next_is("OUTFILE") || next_is("DUMPFILE")) {
            // INTO OUTFILE 'file' [CHARACTER SET cs] [FIELDS …] [LINES …]
            let mut end = k + 2;
            if matches!(
                sig(end),
                Some(Token::SingleQuotedString(_) | Token::DoubleQuotedString(_))
            ) {
                end += 1;
            }
            while let Some(t) = sig(end) {
                let opt = matches!(
                    word(t).as_deref(),
                    Some(
                        "CHARACTER"
                            | "FIELDS"
                            | "COLUMNS"
                            | "TERMINATED"
                            | "OPTIONALLY"
                            | "ENCLOSED"
                            | "ESCAPED"
                            | "LINES"
                            | "STARTING"
                            | "BY"
                    )
                ) || matches!(
                    t,
                    Token::SingleQuotedString(_) | Token::DoubleQuotedString(_)
                );
                if is_word(t, "SET") || is_word(t, "CHARSET") {
                    end += 2;
                } else if opt {
                    end += 1;
                } else {
                    break;
                }
            }
            for j in k..end.min(idx.len()) {
                drop[idx[j]] = true;
            }
            file = true;
            changed = true;
            k = end;
        } else if is_word(t, "INTO")
            && matches!(sig(k + 1), Some(Token::Word(w)) if w.value.starts_with('@'))
        {
            let mut end = k + 2;
            while matches!(sig(end), Some(Token::Comma))
                && matches!(sig(end + 1), Some(Token::Word(w)) if w.value.starts_with('@'))
            {
                end += 2;
            }
            for j in k..end.min(idx.len()) {
                drop[idx[j]] = true;
            }
            changed = true;
            k = end;
        } else if is_word(t, "LOCK")
            && next_is("IN")
            && sig(k + 2).is_some_and(|t| is_word(t, "SHARE"))
            && sig(k + 3).is_some_and(|t| is_word(t, "MODE"))
        {
            for j in k..k + 4 {
                drop[idx[j]] = true;
            }
            replace.push((idx[k], vec![kw("FOR"), space(), kw("SHARE")]));
            changed = true;
            k += 4;
        } else {
            k += 1;
        }
    }
    if !changed {
        return Ok(false);
    }
    let mut tokens = Vec::with_capacity(piece.len());
    for (i, t) in piece.iter().enumerate() {
        if let Some((_, with)) = replace.iter().find(|(at, _)| *at == i) {
            tokens.extend(with.iter().cloned());
        } else if !drop[i] {
            tokens.push(t.clone());
        }
    }
    let parsed = parse_walk(tokens, acc)?;
    if parsed && file {
        acc.raise(Class::Admin);
        acc.reason("SELECT … INTO OUTFILE writes a file on the database server");
        acc.refs.copy_out = true;
    }
    Ok(parsed)
}

/// `UPDATE a, b SET …` as `UPDATE a CROSS JOIN b SET …`.
fn update_rewrite(piece: &[TokenWithSpan], idx: &[usize], acc: &mut Acc) -> Result<bool, String> {
    let top = top_level(piece, idx);
    let Some(set_at) = (1..idx.len()).find(|&k| top[k] && is_word(&piece[idx[k]].token, "SET"))
    else {
        return Ok(false);
    };
    let commas: Vec<usize> = (1..set_at)
        .filter(|&k| top[k] && piece[idx[k]].token == Token::Comma)
        .map(|k| idx[k])
        .collect();
    if commas.is_empty() {
        return Ok(false);
    }
    let mut tokens = Vec::with_capacity(piece.len() + 4 * commas.len());
    for (i, t) in piece.iter().enumerate() {
        if commas.contains(&i) {
            tokens.extend([space(), kw("CROSS"), space(), kw("JOIN"), space()]);
        } else {
            tokens.push(t.clone());
        }
    }
    parse_walk(tokens, acc)
}

/// `LOAD DATA|XML [LOW_PRIORITY|CONCURRENT] [LOCAL] INFILE 'f'
/// [REPLACE|IGNORE] INTO TABLE t … [SET col = expr, …]`.
fn load_data(piece: &[TokenWithSpan], idx: &[usize], acc: &mut Acc) -> Result<bool, String> {
    let sig = |k: usize| idx.get(k).map(|&i| &piece[i].token);
    let is = |k: usize, w: &str| sig(k).is_some_and(|t| is_word(t, w));
    let mut k = 2;
    if is(k, "LOW_PRIORITY") || is(k, "CONCURRENT") {
        k += 1;
    }
    let local = is(k, "LOCAL");
    if local {
        k += 1;
    }
    if !is(k, "INFILE")
        || !matches!(
            sig(k + 1),
            Some(Token::SingleQuotedString(_) | Token::DoubleQuotedString(_))
        )
    {
        return Ok(false);
    }
    k += 2;
    if is(k, "REPLACE") || is(k, "IGNORE") {
        k += 1;
    }
    if !is(k, "INTO") || !is(k + 1, "TABLE") {
        return Ok(false);
    }
    k += 2;
    // The table: name [. name].
    let name_from = k;
    if !matches!(sig(k), Some(Token::Word(_))) {
        return Ok(false);
    }
    k += 1;
    while matches!(sig(k), Some(Token::Period)) && matches!(sig(k + 1), Some(Token::Word(_))) {
        k += 2;
    }
    let name_to = k;
    let top = top_level(piece, idx);
    let set_at =
        (k..idx.len()).find(|&j| top[j] && is(j, "SET") && !(j > 0 && (is(j - 1, "CHARACTER"))));
    let middle: Vec<&Token> = (k..set_at.unwrap_or(idx.len())).filter_map(sig).collect();
    if !holds_no_query(&middle) {
        return Err("LOAD DATA with a query in it is not analysed".into());
    }
    calls(&middle, acc);
    let name_tokens: Vec<TokenWithSpan> = (name_from..name_to)
        .map(|j| piece[idx[j]].clone())
        .collect();
    match set_at {
        Some(s) => {
            // The SET list as an UPDATE of the table: its reads and calls.
            let mut tokens = vec![kw("UPDATE"), space()];
            tokens.extend(name_tokens);
            tokens.push(space());
            tokens.extend_from_slice(&piece[idx[s]..]);
            if !parse_walk(tokens, acc)? {
                return Ok(false);
            }
        }
        None => {
            let name = name_tokens
                .iter()
                .map(|t| match &t.token {
                    Token::Word(w) => w.value.to_lowercase(),
                    other => other.to_string(),
                })
                .collect::<String>();
            acc.tables_written.insert(name);
        }
    }
    if local {
        acc.raise(Class::Write);
        acc.reason("LOAD DATA LOCAL loads rows from a file the client sends");
    } else {
        acc.raise(Class::Admin);
        acc.reason("LOAD DATA INFILE reads a file on the database server");
    }
    Ok(true)
}

/// `PREPARE name FROM 'text'` (the text is analysed too) or
/// `PREPARE name FROM @variable` (unseen).
fn prepare(sig: &[&Token], acc: &mut Acc, depth: usize) -> Result<bool, String> {
    if sig.len() != 4 || !is_word(sig[2], "FROM") {
        return Ok(false);
    }
    let (raw, quote) = match sig[3] {
        Token::SingleQuotedString(s) => (Some(s), '\''),
        Token::DoubleQuotedString(s) => (Some(s), '"'),
        Token::Word(w) if w.quote_style.is_none() && w.value.starts_with('@') => (None, ' '),
        _ => return Ok(false),
    };
    acc.raise(Class::Admin);
    acc.anonymous_code = true;
    let Some(raw) = raw else {
        acc.prepare(sig[1], Vec::new());
        acc.unseen = true;
        acc.reason("PREPARE … FROM a variable makes a statement the analysis cannot see");
        return Ok(true);
    };
    acc.reason("PREPARE … FROM makes a statement from text, for EXECUTE to run");
    let texts = prepared_text(raw, quote, acc, depth, "PREPARE … FROM")?;
    acc.prepare(sig[1], texts);
    Ok(true)
}

/// Adds what the statement text `raw` (a string quoted with `quote`, as
/// written) that `what` runs does to `acc`; returns that text in each way
/// the server may read the string.
pub(super) fn prepared_text(
    raw: &str,
    quote: char,
    acc: &mut Acc,
    depth: usize,
    what: &str,
) -> Result<Vec<String>, String> {
    if depth >= MAX_PREPARE_DEPTH {
        return Err(format!("{what} statements nested too deeply to analyse"));
    }
    // The string as the server reads it: with backslash escapes, which
    // must parse; without them (NO_BACKSLASH_ESCAPES), where a text that
    // does not parse is one the server would not prepare either.
    let text = decode_string(raw, quote, true);
    let (a, refs) = analyse_text(&text, depth + 1)
        .map_err(|e| format!("the statement {what} gives does not parse: {e}"))?;
    acc.merge(a, refs);
    let mut texts = vec![text];
    if raw.contains('\\') {
        let plain = decode_string(raw, quote, false);
        if let Ok((a, refs)) = analyse_text(&plain, depth + 1) {
            acc.merge(a, refs);
            texts.push(plain);
        }
    }
    Ok(texts)
}

/// `HANDLER t OPEN [[AS] alias]`, `HANDLER t READ …`, `HANDLER t CLOSE`:
/// reads rows of a table directly.
fn handler(sig: &[&Token], acc: &mut Acc) -> Result<bool, String> {
    let mut k = 1;
    let mut name = String::new();
    while let Some(Token::Word(w)) = sig.get(k) {
        name.push_str(&w.value.to_lowercase());
        if matches!(sig.get(k + 1), Some(Token::Period)) {
            name.push('.');
            k += 2;
        } else {
            k += 1;
            break;
        }
    }
    let action = sig.get(k).and_then(|t| word(t)).unwrap_or_default();
    if name.is_empty() || !matches!(action.as_str(), "OPEN" | "READ" | "CLOSE") {
        return Ok(false);
    }
    let class = if action == "CLOSE" {
        Class::Other
    } else {
        Class::Read
    };
    keywords(sig, acc, class, None)?;
    if action == "OPEN" {
        let alias = match (sig.get(k + 1), sig.get(k + 2)) {
            (Some(a), Some(Token::Word(w))) if is_word(a, "AS") => Some(w.value.to_lowercase()),
            (Some(Token::Word(w)), _) => Some(w.value.to_lowercase()),
            _ => None,
        };
        acc.refs.relations.push((name.clone(), alias));
    }
    if action == "READ" {
        // Whole rows of the table (or of the handler's alias).
        acc.refs.star = true;
        acc.refs.relations.push((name.clone(), None));
    }
    if action != "CLOSE" {
        acc.tables_read.insert(name);
    }
    Ok(true)
}

/// `LOCK TABLES db.t [[AS] alias] {READ [LOCAL] | [LOW_PRIORITY] WRITE}, …`
/// (sqlparser takes only unqualified names): `write`, the tables locked
/// for reading read and those locked for writing written.
fn lock_tables(sig: &[&Token], acc: &mut Acc) -> Result<bool, String> {
    let mut locks = Vec::new();
    let mut k = 2;
    loop {
        let mut name = String::new();
        while let Some(Token::Word(w)) = sig.get(k) {
            name.push_str(&w.value.to_lowercase());
            if matches!(sig.get(k + 1), Some(Token::Period)) {
                name.push('.');
                k += 2;
            } else {
                k += 1;
                break;
            }
        }
        if name.is_empty() {
            return Ok(false);
        }
        // Up to the lock type: an optional alias.
        let mut write = None;
        while let Some(t) = sig.get(k) {
            if is_word(t, "READ") {
                write = Some(false);
            } else if is_word(t, "WRITE") {
                write = Some(true);
            } else if matches!(t, Token::Comma) {
                break;
            }
            k += 1;
        }
        let Some(write) = write else {
            return Ok(false);
        };
        locks.push((name, write));
        if matches!(sig.get(k), Some(Token::Comma)) {
            k += 1;
        } else {
            break;
        }
    }
    keywords(sig, acc, Class::Write, None)?;
    for (name, write) in locks {
        if write {
            acc.tables_written.insert(name);
        } else {
            acc.tables_read.insert(name);
        }
    }
    Ok(true)
}

/// `OPTIMIZE|REPAIR|CHECK|CHECKSUM|ANALYZE [NO_WRITE_TO_BINLOG|LOCAL]
/// TABLE t [, t …] …`: table maintenance, `admin`.
fn maintenance(sig: &[&Token], acc: &mut Acc, writes: bool) -> Result<bool, String> {
    let Some(at) = sig
        .iter()
        .position(|t| is_word(t, "TABLE") || is_word(t, "TABLES"))
    else {
        return Ok(false);
    };
    keywords(sig, acc, Class::Admin, None)?;
    let mut k = at + 1;
    loop {
        let mut name = String::new();
        while let Some(Token::Word(w)) = sig.get(k) {
            name.push_str(&w.value.to_lowercase());
            if matches!(sig.get(k + 1), Some(Token::Period)) {
                name.push('.');
                k += 2;
            } else {
                k += 1;
                break;
            }
        }
        if name.is_empty() {
            break;
        }
        if writes {
            acc.tables_written.insert(name);
        } else {
            acc.tables_read.insert(name);
        }
        if matches!(sig.get(k), Some(Token::Comma)) {
            k += 1;
        } else {
            break;
        }
    }
    Ok(true)
}

/// `ALTER TABLE t …` and `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] t …`
/// in forms sqlparser does not know (`ALTER TABLE t DISABLE KEYS`, table
/// options): `ddl` writing `t`, provided nothing after the name could be a
/// query (`SELECT`, `TABLE`, `VALUES`, `WITH`).
fn table_ddl(sig: &[&Token], acc: &mut Acc) -> Result<bool, String> {
    let mut k = 1;
    while sig.get(k).is_some_and(|t| {
        ["TEMPORARY", "TABLE", "IF", "NOT", "EXISTS"]
            .iter()
            .any(|w| is_word(t, w))
    }) {
        k += 1;
    }
    let mut name = String::new();
    while let Some(Token::Word(w)) = sig.get(k) {
        name.push_str(&w.value.to_lowercase());
        if matches!(sig.get(k + 1), Some(Token::Period)) {
            name.push('.');
            k += 2;
        } else {
            k += 1;
            break;
        }
    }
    if name.is_empty() {
        return Ok(false);
    }
    if sig[k..].iter().any(|t| {
        ["SELECT", "TABLE", "VALUES", "WITH"]
            .iter()
            .any(|w| is_word(t, w))
    }) {
        return Err(format!(
            "this form of {} TABLE with a query in it is not analysed",
            word(sig[0]).unwrap_or_default()
        ));
    }
    keywords(sig, acc, Class::Ddl, None)?;
    acc.tables_written.insert(name);
    Ok(true)
}

/// `CREATE|ALTER|DROP … PROCEDURE|FUNCTION|TRIGGER|EVENT`: `ddl` (the body
/// runs later, when called or triggered), except `CREATE FUNCTION …
/// SONAME`, which loads a library into the server (`admin`). A body with
/// `BEGIN … END` holds `;`s the statement split cannot follow: it is not
/// analysed.
fn routine(sig: &[&Token], acc: &mut Acc) -> Result<bool, String> {
    let Some(at) = sig.iter().take(16).position(|t| {
        is_word(t, "PROCEDURE")
            || is_word(t, "FUNCTION")
            || is_word(t, "TRIGGER")
            || is_word(t, "EVENT")
    }) else {
        return Ok(false);
    };
    // Another object named before it (CREATE TABLE … COMMENT 'FUNCTION')?
    if sig[..at].iter().any(|t| {
        [
            "TABLE", "VIEW", "INDEX", "USER", "ROLE", "DATABASE", "SCHEMA",
        ]
        .iter()
        .any(|w| is_word(t, w))
    }) {
        return Ok(false);
    }
    if sig.iter().any(|t| is_word(t, "BEGIN")) {
        return Err(
            "a stored program with a BEGIN … END body is not analysed (its statements cannot be told apart from the ones after it)"
                .into(),
        );
    }
    let object = word(sig[at]).unwrap_or_default();
    let mut k = at + 1;
    while sig
        .get(k)
        .is_some_and(|t| is_word(t, "IF") || is_word(t, "NOT") || is_word(t, "EXISTS"))
    {
        k += 1;
    }
    let mut name = None;
    while let Some(Token::Word(w)) = sig.get(k) {
        name = Some(w.value.to_lowercase());
        if matches!(sig.get(k + 1), Some(Token::Period)) {
            k += 2;
        } else {
            break;
        }
    }
    if sig.iter().any(|t| is_word(t, "SONAME")) {
        acc.raise(Class::Admin);
        acc.reason("CREATE FUNCTION … SONAME loads a library into the database server");
    } else {
        acc.raise(Class::Ddl);
    }
    match object.as_str() {
        "PROCEDURE" | "FUNCTION" => {
            if let Some(n) = name {
                acc.define(n);
            }
        }
        "TRIGGER" => {
            // … {BEFORE|AFTER} {INSERT|UPDATE|DELETE} ON table …
            if let Some(on) = sig.iter().position(|t| is_word(t, "ON")) {
                let mut table = String::new();
                let mut j = on + 1;
                while let Some(Token::Word(w)) = sig.get(j) {
                    table.push_str(&w.value.to_lowercase());
                    if matches!(sig.get(j + 1), Some(Token::Period)) {
                        table.push('.');
                        j += 2;
                    } else {
                        break;
                    }
                }
                if !table.is_empty() {
                    acc.refs.altered.push(table.clone());
                    acc.tables_written.insert(table);
                }
            }
            acc.refs.attaches_code = true;
        }
        // A scheduled event runs its statement later, by itself.
        "EVENT" if is_word(sig[0], "CREATE") || is_word(sig[0], "ALTER") => {
            acc.refs.attaches_code = true;
        }
        _ => {}
    }
    Ok(true)
}
