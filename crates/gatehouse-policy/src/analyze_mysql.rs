//! SQL analysis for the MySQL and MariaDB dialect, with sqlparser's
//! `MySqlDialect`: the same [`Analysis`] and [`ColumnRefs`] as the
//! PostgreSQL analysis, with the same meaning.
//!
//! The text is first lexed with the server's own rules (`lex`): comments
//! are removed, strings re-quoted, and executable comments (`/*! … */`,
//! `/*!50000 … */`, MariaDB's `/*M! … */`) turned into code. Because what
//! the server runs depends on its version (a versioned executable comment
//! runs only on servers at least that recent) and on the session's
//! `sql_mode` (`NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES` change where strings
//! end), the text is analysed in every reading that can differ, and the
//! results are merged: the strictest class, the union of tables and
//! functions. Every reading must parse; a reading in which the server
//! itself would stop at a lexical error counts for the statements before
//! it.
//!
//! Statements sqlparser does not know are split off at `;` and, for a
//! known set of MySQL statements, classified by their leading keywords
//! (`fallback`); anything else leaves the text unparsed, which the policy
//! refuses (fail closed).
//!
//! Table names are lower-cased, quoted or not (whether the server compares
//! them with regard to case depends on its `lower_case_table_names`), and
//! written `db.table` when qualified.

mod fallback;
mod lex;
mod read_only;
mod stack;
pub use read_only::lifts_read_only_mysql;

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, ContextModifier, CreateTableLikeKind, Delete, Expr,
    FromTable, LockTableType, ObjectName, ObjectType, Query, Select, SelectItem, Set, SetExpr,
    ShowCreateObject, Statement, TableFactor, TableObject, TableWithJoins, Update,
    UpdateTableFromKind, Value, ValueWithSpan, Visit, Visitor,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::analyze::{Analysis, Class, ColumnRefs};
use lex::{Family, Quotes};

/// Longer texts are not analysed (they count as unparsed).
pub const MAX_MYSQL_TEXT: usize = 4 << 20;
/// sqlparser's limit on nesting (subqueries, parentheses, operators).
const RECURSION_LIMIT: usize = 64;
/// Tokens allowed in a row without a `,`, `;` or parenthesis: a chain of
/// operators (`a + b + …`, `x OR y OR …`) nests the tree one level per
/// operator without sqlparser's recursion limit noticing.
const MAX_RUN: usize = 10_000;
/// Readings of one text (server versions × `sql_mode`s) analysed at most.
const MAX_READINGS: usize = 16;
/// `PREPARE … FROM '…'` inside prepared text, analysed this deep.
const MAX_PREPARE_DEPTH: usize = 3;

/// Functions that act on the server, its files or the operating system
/// rather than on data: calling one makes a statement `admin`.
const ADMIN_FUNCTIONS: &[&str] = &[
    "load_file",
    // The lib_mysqludf_sys functions: shell commands and environment.
    "sys_exec",
    "sys_eval",
    "sys_bineval",
    "sys_get",
    "sys_set",
    "set_firewall_mode",
];

/// Prefixes of server plugin and component functions that change the
/// server (the audit log, the keyring, replication, the firewall).
const ADMIN_FUNCTION_PREFIXES: &[&str] = &[
    "audit_log_",
    "keyring_",
    "group_replication_",
    "asynchronous_connection_failover_",
    "mysql_firewall_",
    "version_tokens_",
];

/// Functions that change state when called.
const WRITE_FUNCTIONS: &[&str] = &[
    "get_lock",
    "release_lock",
    "release_all_locks",
    // MariaDB sequences.
    "nextval",
    "setval",
];

/// Session variables whose change is about the server's logs and
/// replication rather than the session: setting one is `admin`.
const ADMIN_SESSION_VARIABLES: &[&str] = &[
    "sql_log_bin",
    "sql_log_off",
    "binlog_format",
    "binlog_row_image",
    "pseudo_thread_id",
    "pseudo_replica_mode",
    "pseudo_slave_mode",
    "gtid_next",
    "debug",
];

fn is_admin_function(name: &str) -> bool {
    ADMIN_FUNCTIONS.contains(&name) || ADMIN_FUNCTION_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Analyses a MySQL or MariaDB statement string.
/// The reason the analysis gives a `KILL` statement: the MySQL proxy looks
/// for it, and passes on a KILL only of one of the caller's own sessions.
pub const KILL_REASON: &str = "KILL ends a statement or a session";

pub fn analyze_mysql(sql: &str) -> Analysis {
    match run(sql) {
        Ok((a, _)) => a,
        Err(e) => Analysis {
            class: None,
            parse_error: Some(e),
            tables_read: BTreeSet::new(),
            tables_written: BTreeSet::new(),
            functions: BTreeSet::new(),
            anonymous_code: false,
            unseen: false,
            prepared: false,
            backend_signals: Vec::new(),
            reasons: Vec::new(),
            defined_and_called: BTreeSet::new(),
            only_defined: BTreeSet::new(),
            views_defined_and_read: BTreeSet::new(),
        },
    }
}

/// Whether `sql` holds `word` (ASCII, lower-case) in any case, anywhere
/// (inside other words too). A cheap look on the data path before a parse:
/// text without the word cannot be what the parse looks for.
pub fn mentions(sql: &str, word: &[u8]) -> bool {
    let (b, Some(&first)) = (sql.as_bytes(), word.first()) else {
        return true;
    };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), b).any(|i| {
        b.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    })
}

/// Column references of a MySQL statement string, for masking; `None` when
/// it does not parse. The whole tree is walked with sqlparser's visitor, so
/// that a reference inside any kind of expression is found.
pub fn column_refs_mysql(sql: &str) -> Option<ColumnRefs> {
    run(sql).ok().map(|(_, r)| r)
}

fn run(sql: &str) -> Result<(Analysis, ColumnRefs), String> {
    if sql.contains('\0') {
        return Err("the text contains a NUL byte".into());
    }
    if sql.len() > MAX_MYSQL_TEXT {
        return Err(format!(
            "the text is {} bytes, over the {MAX_MYSQL_TEXT}-byte limit for analysis",
            sql.len()
        ));
    }
    let owned = sql.to_owned();
    stack::on_large_stack(move || analyse_text(&owned, 0))
        .unwrap_or_else(|| Err("the analysis could not be run (no thread for it)".into()))
}

/// What the analysis gathers, over every statement of every reading.
#[derive(Debug, Default)]
struct Acc {
    /// `None` until a statement is seen.
    class: Option<Class>,
    tables_read: BTreeSet<String>,
    tables_written: BTreeSet<String>,
    functions: BTreeSet<String>,
    anonymous_code: bool,
    /// Statements run from text the analysis does not see.
    unseen: bool,
    /// SQL's `PREPARE` or `EXECUTE` (of a name, noted in `refs`).
    prepared: bool,
    /// Texts `EXECUTE IMMEDIATE` runs, as written (with their quote), to
    /// analyse once the statement is walked.
    immediate: Vec<(String, char)>,
    reasons: Vec<String>,
    refs: ColumnRefs,
    /// Functions and procedures created or dropped, and those called.
    defined: BTreeSet<String>,
    called: BTreeSet<String>,
    /// Views created or replaced.
    views: BTreeSet<String>,
    /// Names of the CTEs the statements define.
    ctes: BTreeSet<String>,
    /// A `SELECT … INTO` (variables, a file) or a `:=` assignment to a
    /// variable was seen: the statement keeps what it reads.
    stores_all: bool,
}

impl Acc {
    fn raise(&mut self, c: Class) {
        if self.class.is_none_or(|old| c > old) {
            self.class = Some(c);
        }
    }

    fn reason(&mut self, why: impl Into<String>) {
        let why = why.into();
        if !self.reasons.contains(&why) {
            self.reasons.push(why);
        }
    }

    /// A call of the function `name` (lower-case, unqualified).
    fn call(&mut self, name: String) {
        if is_admin_function(&name) {
            self.raise(Class::Admin);
            self.reason(format!("calls {name}"));
        } else if WRITE_FUNCTIONS.contains(&name.as_str()) {
            self.raise(Class::Write);
            self.reason(format!("calls {name}"));
        }
        self.called.insert(name.clone());
        self.functions.insert(name);
    }

    /// A function or procedure the statement creates or drops (named,
    /// not called).
    fn define(&mut self, name: String) {
        self.defined.insert(name.clone());
        self.functions.insert(name);
    }

    /// Adds what another analysis found (a statement prepared from text),
    /// with the prepared statements it defines and runs.
    fn merge(&mut self, a: Analysis, refs: ColumnRefs) {
        if let Some(c) = a.class {
            self.raise(c);
        }
        self.tables_read.extend(a.tables_read);
        self.tables_written.extend(a.tables_written);
        self.called.extend(a.functions.iter().cloned());
        self.functions.extend(a.functions);
        self.anonymous_code |= a.anonymous_code;
        self.unseen |= a.unseen;
        self.prepared |= a.prepared;
        for name in refs.defines {
            self.define_name(name);
        }
        for name in refs.uses {
            self.use_name(name);
        }
        self.refs.texts.extend(refs.texts);
        for r in a.reasons {
            self.reason(r);
        }
    }

    /// `PREPARE name FROM …`: `name` (the token after PREPARE) is defined,
    /// as `texts` (the string's text in each reading; none from a
    /// variable). Statement names are not case-sensitive.
    fn prepare(&mut self, name: &Token, texts: Vec<String>) {
        self.prepared = true;
        // Not a name the server takes otherwise: nothing is prepared.
        if let Token::Word(w) = name {
            let name = format!("statement:{}", w.value.to_lowercase());
            for text in texts {
                self.refs.texts.push((name.clone(), text));
            }
            self.define_name(name);
        }
    }

    /// `EXECUTE name …`: what it runs is decided by the text that defined
    /// the name ([`crate::Engine::follow_prepared`]); without a name the
    /// analysis can read, it runs text the analysis does not see.
    fn execute(&mut self, name: Option<&Token>) {
        self.prepared = true;
        match name {
            Some(Token::Word(w)) => self.use_name(format!("statement:{}", w.value.to_lowercase())),
            _ => self.unseen = true,
        }
    }

    fn define_name(&mut self, name: String) {
        if !self.refs.defines.contains(&name) {
            self.refs.defines.push(name);
        }
    }

    fn use_name(&mut self, name: String) {
        if !self.refs.uses.contains(&name) {
            self.refs.uses.push(name);
        }
    }

    fn finish(mut self) -> (Analysis, ColumnRefs) {
        let views_defined_and_read = self
            .views
            .intersection(&self.tables_read)
            .cloned()
            .collect();
        // Data stored from a CTE comes from its query, elsewhere in the
        // statement: then all of it counts as the source.
        if self.stores_all || self.refs.stores_from(&self.ctes) {
            self.refs.store_all();
        }
        (
            Analysis {
                // Only comments or whitespace: nothing runs.
                class: Some(self.class.unwrap_or(Class::Other)),
                parse_error: None,
                tables_read: self.tables_read,
                tables_written: self.tables_written,
                functions: self.functions,
                anonymous_code: self.anonymous_code,
                unseen: self.unseen,
                prepared: self.prepared,
                reasons: self.reasons,
                backend_signals: Vec::new(),
                defined_and_called: self.defined.intersection(&self.called).cloned().collect(),
                only_defined: self.defined.difference(&self.called).cloned().collect(),
                views_defined_and_read,
            },
            self.refs,
        )
    }
}

/// Analyses `sql` in every reading of it (see the module documentation).
fn analyse_text(sql: &str, depth: usize) -> Result<(Analysis, ColumnRefs), String> {
    let mut acc = Acc::default();
    for (text, quotes) in readings(sql)? {
        parse_into(&text, &mut acc, depth).map_err(|e| format!("{e}{}", quotes.describe()))?;
    }
    Ok(acc.finish())
}

/// The distinct texts the server may run, each with how its strings were
/// read; the first is the one with every executable comment as code.
fn readings(sql: &str) -> Result<Vec<(String, Quotes)>, String> {
    let mut modes = vec![Quotes::Default];
    if sql.contains('\\') {
        modes.push(Quotes::NoBackslash);
        if sql.contains('"') {
            modes.push(Quotes::Ansi);
        }
    }
    let mut out: Vec<(String, Quotes)> = Vec::new();
    for (k, &mode) in modes.iter().enumerate() {
        let lexed = lex::lex(sql, mode).map_err(|e| format!("{e}{}", mode.describe()))?;
        if k == 0
            && let Some(why) = &lexed.broken
        {
            return Err(why.clone());
        }
        let mut push = |text: String| {
            if !out.iter().any(|(t, _)| *t == text) {
                out.push((text, mode));
            }
        };
        push(lex::render(&lexed.chunks, |_, _| true));
        let mut mysql_versions = BTreeSet::new();
        let mut all_versions = BTreeSet::new();
        let mut any_exec = false;
        for c in &lexed.chunks {
            if let lex::Chunk::Exec {
                family, version, ..
            } = c
            {
                any_exec = true;
                if let Some(v) = version {
                    all_versions.insert(*v);
                    if *family == Family::Mysql {
                        mysql_versions.insert(*v);
                    }
                }
            }
        }
        if any_exec {
            // A MySQL server of each version that makes a difference
            // (MySQL skips /*M! … */), then a MariaDB server of each.
            for s in std::iter::once(0).chain(mysql_versions) {
                push(lex::render(&lexed.chunks, |f, v| {
                    f == Family::Mysql && v.is_none_or(|v| v <= s)
                }));
            }
            for s in std::iter::once(0).chain(all_versions) {
                push(lex::render(&lexed.chunks, |_, v| v.is_none_or(|v| v <= s)));
            }
        }
        if out.len() > MAX_READINGS {
            return Err(format!(
                "the text reads differently on more than {MAX_READINGS} kinds of server (versioned executable comments), too many to analyse"
            ));
        }
    }
    Ok(out)
}

/// Parses every statement of `tokens`. Not `Parser::parse_statements`,
/// which stops without an error at an `END` after a statement
/// (`SELECT 1 END; DELETE FROM t` would hide the `DELETE`): here every
/// token must belong to a statement.
fn parser(tokens: Vec<TokenWithSpan>) -> Result<Vec<Statement>, ParserError> {
    let dialect = MySqlDialect {};
    let mut p = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.peek_token_ref().token == Token::EOF {
            return Ok(statements);
        }
        statements.push(p.parse_statement()?);
        let next = p.peek_token_ref();
        if !matches!(next.token, Token::SemiColon | Token::EOF) {
            return p.expected_ref("end of statement", next);
        }
    }
}

/// Tokenizes rewritten text.
fn tokens_of(text: &str) -> Result<Vec<TokenWithSpan>, String> {
    Tokenizer::new(&MySqlDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| e.to_string())
}

/// Refuses token streams whose tree could be deeper than the analysis
/// threads' stack allows (see [`MAX_RUN`]).
fn check_runs(tokens: &[TokenWithSpan]) -> Result<(), String> {
    let mut runs: Vec<usize> = vec![0];
    for t in tokens {
        let bump = |runs: &mut Vec<usize>| {
            if let Some(r) = runs.last_mut() {
                *r += 1;
            }
        };
        match &t.token {
            Token::Whitespace(_) => {}
            Token::LParen | Token::LBracket | Token::LBrace => {
                bump(&mut runs);
                runs.push(0);
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if runs.len() > 1 {
                    runs.pop();
                }
                bump(&mut runs);
            }
            Token::Comma | Token::SemiColon => {
                if let Some(r) = runs.last_mut() {
                    *r = 0;
                }
            }
            _ => bump(&mut runs),
        }
        if runs.last().is_some_and(|&r| r > MAX_RUN) {
            return Err(format!(
                "an expression of more than {MAX_RUN} tokens without a comma or parenthesis is too long to analyse"
            ));
        }
    }
    Ok(())
}

/// Parses one reading and adds what it does to `acc`, with what the texts
/// `EXECUTE IMMEDIATE` runs do.
fn parse_into(text: &str, acc: &mut Acc, depth: usize) -> Result<(), String> {
    parse_statements(text, acc, depth)?;
    for (raw, quote) in std::mem::take(&mut acc.immediate) {
        fallback::prepared_text(&raw, quote, acc, depth, "EXECUTE IMMEDIATE")?;
    }
    Ok(())
}

fn parse_statements(text: &str, acc: &mut Acc, depth: usize) -> Result<(), String> {
    let tokens = tokens_of(text)?;
    check_runs(&tokens)?;
    fallback::global_sets(&tokens, acc);
    match parser(tokens.clone()) {
        Ok(statements) => {
            for s in &statements {
                walk(s, acc);
            }
            Ok(())
        }
        Err(ParserError::RecursionLimitExceeded) => {
            Err("the statement is nested too deeply to analyse".into())
        }
        Err(_) => {
            // One statement sqlparser does not know: analyse them one by one.
            for piece in tokens.split(|t| t.token == Token::SemiColon) {
                if piece
                    .iter()
                    .all(|t| matches!(t.token, Token::Whitespace(_)))
                {
                    continue;
                }
                match parser(piece.to_vec()) {
                    Ok(statements) => {
                        for s in &statements {
                            walk(s, acc);
                        }
                    }
                    Err(ParserError::RecursionLimitExceeded) => {
                        return Err("the statement is nested too deeply to analyse".into());
                    }
                    Err(e) => {
                        if !fallback::classify(piece, acc, depth)? {
                            return Err(format!(
                                "MySQL statement \"{} …\" not understood: {e}",
                                fallback::head(piece)
                            ));
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Adds what one parsed statement does to `acc`.
fn walk(s: &Statement, acc: &mut Acc) {
    let mut w = Walker {
        acc,
        targets: HashSet::new(),
        ctes: Vec::new(),
    };
    let _ = s.visit(&mut w);
}

/// Lower-case text of an identifier.
fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// `db.table` (or `table`), lower-case.
fn object_name(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| match p.as_ident() {
            Some(i) => lower(&i.value),
            None => lower(&p.to_string()),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The last part of a name, lower-case.
fn last_part(n: &ObjectName) -> Option<String> {
    n.0.last().map(|p| match p.as_ident() {
        Some(i) => lower(&i.value),
        None => lower(&p.to_string()),
    })
}

/// The part before the last (`t` in `t.col`, `db.t.col`), lower-case.
fn qualifier(n: &ObjectName) -> Option<String> {
    let k = n.0.len();
    (k >= 2)
        .then(|| n.0.get(k - 2))
        .flatten()
        .map(|p| match p.as_ident() {
            Some(i) => lower(&i.value),
            None => lower(&p.to_string()),
        })
}

/// The address of an AST node: nodes are told apart by where they are.
fn addr<T>(t: &T) -> usize {
    std::ptr::from_ref(t) as usize
}

/// The tables of a `FROM` list entry with their aliases.
fn factors<'t>(twj: &'t TableWithJoins, out: &mut Vec<(&'t ObjectName, Option<String>)>) {
    factor(&twj.relation, out);
    for j in &twj.joins {
        factor(&j.relation, out);
    }
}

fn factor<'t>(tf: &'t TableFactor, out: &mut Vec<(&'t ObjectName, Option<String>)>) {
    match tf {
        TableFactor::Table { name, alias, .. } => {
            out.push((name, alias.as_ref().map(|a| lower(&a.name.value))));
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => factors(table_with_joins, out),
        _ => {}
    }
}

/// Whether a table entry is the one `key` (an alias or a table name) names.
fn names_entry(name: &ObjectName, alias: Option<&str>, key: &str) -> bool {
    alias == Some(key) || last_part(name).as_deref() == Some(key)
}

/// The CTE names of one `WITH` and how many of them are visible so far.
#[derive(Debug)]
struct CteScope {
    query: usize,
    names: Vec<String>,
    queries: Vec<usize>,
    recursive: bool,
    visible: usize,
}

struct Walker<'a> {
    acc: &'a mut Acc,
    /// Addresses of the table names a statement writes to.
    targets: HashSet<usize>,
    ctes: Vec<CteScope>,
}

/// The column references of AST parts, as the walk finds them.
fn refs_of(parts: &[&dyn VisitPart]) -> ColumnRefs {
    let mut acc = Acc::default();
    let mut w = Walker {
        acc: &mut acc,
        targets: HashSet::new(),
        ctes: Vec::new(),
    };
    for p in parts {
        p.visit_with(&mut w);
    }
    acc.refs
}

/// A part of a statement the walk can visit ([`refs_of`]).
trait VisitPart {
    fn visit_with(&self, w: &mut Walker<'_>);
}

impl<T: Visit> VisitPart for T {
    fn visit_with(&self, w: &mut Walker<'_>) {
        let _ = self.visit(w);
    }
}

impl Walker<'_> {
    fn write_target(&mut self, n: &ObjectName) {
        self.targets.insert(addr(n));
        self.acc.tables_written.insert(object_name(n));
    }

    fn function(&mut self, n: &ObjectName) {
        if let Some(name) = last_part(n) {
            self.acc.call(name);
        }
    }

    fn is_cte(&self, n: &ObjectName) -> bool {
        if n.0.len() != 1 {
            return false;
        }
        last_part(n).is_some_and(|name| self.is_cte_name(&name))
    }

    fn is_cte_name(&self, name: &str) -> bool {
        self.ctes.iter().any(|s| {
            s.names[..s.visible.min(s.names.len())]
                .iter()
                .any(|n| n == name)
        })
    }

    /// `TABLE t` (a query of every column of `t`) in a query's body:
    /// sqlparser keeps its name outside the relations the visitor reports.
    fn table_statements(&mut self, e: &SetExpr, own_ctes: &[String]) {
        match e {
            SetExpr::Table(t) => {
                let Some(name) = &t.table_name else { return };
                let name = lower(&name.value);
                let full = match &t.schema_name {
                    Some(s) => format!("{}.{name}", lower(&s.value)),
                    None if own_ctes.contains(&name) || self.is_cte_name(&name) => return,
                    None => name,
                };
                self.acc.tables_read.insert(full.clone());
                self.acc.refs.relations.push((full, None));
                self.acc.refs.star = true;
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.table_statements(left, own_ctes);
                self.table_statements(right, own_ctes);
            }
            _ => {}
        }
    }

    fn statement(&mut self, s: &Statement) {
        use Statement as S;
        match s {
            S::Query(_) => self.acc.raise(Class::Read),
            S::Insert(ins) => {
                self.acc.raise(Class::Write);
                let mut source = refs_of(&[&ins.source, &ins.assignments, &ins.on]);
                if ins.on.is_some()
                    && let TableObject::TableName(n) = &ins.table
                {
                    // ON DUPLICATE KEY UPDATE reads the row it updates.
                    source.relations.push((object_name(n), None));
                }
                self.acc.refs.store(&source);
                match &ins.table {
                    TableObject::TableName(n) => self.write_target(n),
                    _ => {
                        self.acc.raise(Class::Admin);
                        self.acc.reason("inserts through a table function");
                    }
                }
            }
            S::Update(u) => {
                self.acc.raise(Class::Write);
                self.update_targets(u);
                // Its new values, and the tables they may read (not the
                // condition that picks its rows).
                self.acc
                    .refs
                    .store(&refs_of(&[&u.assignments, &u.table, &u.from]));
            }
            S::Delete(d) => {
                self.acc.raise(Class::Write);
                self.delete_targets(d);
            }
            S::Truncate(t) => {
                self.acc.raise(Class::Write);
                for x in &t.table_names {
                    self.write_target(&x.name);
                }
            }
            S::Merge(_) | S::Lock(_) => self.acc.raise(Class::Write),
            S::Call(f) => {
                self.acc.raise(Class::Write);
                self.function(&f.name);
            }
            S::LockTables { tables } => {
                self.acc.raise(Class::Write);
                for t in tables {
                    let name = lower(&t.table.value);
                    match t.lock_type {
                        LockTableType::Read { .. } => self.acc.tables_read.insert(name),
                        LockTableType::Write { .. } => self.acc.tables_written.insert(name),
                    };
                }
            }
            S::UnlockTables | S::Deallocate { .. } | S::Discard { .. } => {
                self.acc.raise(Class::Other);
            }
            S::CreateTable(ct) => {
                self.acc.raise(Class::Ddl);
                self.write_target(&ct.name);
                if ct.query.is_some() {
                    self.acc.refs.store(&refs_of(&[&ct.query]));
                }
                if let Some(CreateTableLikeKind::Plain(l) | CreateTableLikeKind::Parenthesized(l)) =
                    &ct.like
                {
                    self.acc.tables_read.insert(object_name(&l.name));
                }
            }
            S::CreateView(v) => {
                self.acc.raise(Class::Ddl);
                self.write_target(&v.name);
                self.acc.views.insert(object_name(&v.name));
            }
            S::CreateIndex(ci) => {
                self.acc.raise(Class::Ddl);
                self.write_target(&ci.table_name);
            }
            S::AlterTable(at) => {
                self.acc.raise(Class::Ddl);
                self.write_target(&at.name);
                self.acc.refs.altered.push(object_name(&at.name));
            }
            S::AlterView(av) => {
                self.acc.raise(Class::Ddl);
                self.write_target(&av.name);
            }
            S::AlterIndex { .. } | S::Comment { .. } => self.acc.raise(Class::Ddl),
            S::Drop {
                object_type,
                names,
                table,
                ..
            } => match object_type {
                ObjectType::Table | ObjectType::View | ObjectType::MaterializedView => {
                    self.acc.raise(Class::Ddl);
                    for n in names {
                        self.write_target(n);
                    }
                }
                ObjectType::Index => {
                    self.acc.raise(Class::Ddl);
                    if let Some(t) = table {
                        self.write_target(t);
                    }
                }
                ObjectType::Schema | ObjectType::Database => self.acc.raise(Class::Admin),
                ObjectType::Role | ObjectType::User | ObjectType::Group => {
                    self.acc.raise(Class::Dcl);
                }
                _ => self.acc.raise(Class::Ddl),
            },
            S::DropFunction(f) => {
                self.acc.raise(Class::Ddl);
                for d in &f.func_desc {
                    if let Some(n) = last_part(&d.name) {
                        self.acc.define(n);
                    }
                }
            }
            S::DropProcedure { proc_desc, .. } => {
                self.acc.raise(Class::Ddl);
                for d in proc_desc {
                    if let Some(n) = last_part(&d.name) {
                        self.acc.define(n);
                    }
                }
            }
            S::DropTrigger(t) => {
                self.acc.raise(Class::Ddl);
                if let Some(tn) = &t.table_name {
                    self.write_target(tn);
                }
            }
            S::CreateTrigger(t) => {
                self.acc.raise(Class::Ddl);
                self.write_target(&t.table_name);
                self.acc.refs.altered.push(object_name(&t.table_name));
                self.acc.refs.attaches_code = true;
            }
            S::CreateFunction(f) => {
                self.acc.raise(Class::Ddl);
                if let Some(n) = last_part(&f.name) {
                    self.acc.define(n);
                }
            }
            S::CreateProcedure { name, .. } => {
                self.acc.raise(Class::Ddl);
                if let Some(n) = last_part(name) {
                    self.acc.define(n);
                }
            }
            S::RenameTable(v) => {
                self.acc.raise(Class::Ddl);
                for r in v {
                    self.write_target(&r.old_name);
                    self.write_target(&r.new_name);
                    self.acc.refs.altered.push(object_name(&r.old_name));
                }
            }
            S::CreateDatabase { .. } | S::CreateSchema { .. } | S::AlterSchema(_) => {
                self.acc.raise(Class::Admin);
            }
            S::Grant(_)
            | S::Revoke(_)
            | S::GrantRole(_)
            | S::RevokeRole(_)
            | S::Deny(_)
            | S::AlterDefaultPrivileges(_)
            | S::CreateRole(_)
            | S::AlterRole { .. }
            | S::CreateUser(_)
            | S::AlterUser(_) => self.acc.raise(Class::Dcl),
            S::Set(set) => self.set(set),
            S::Use(_) => {
                self.acc.raise(Class::Other);
                self.acc.reason("changes database");
            }
            S::Kill { .. } => {
                self.acc.raise(Class::Admin);
                self.acc.reason(KILL_REASON);
            }
            S::Flush { .. }
            | S::Reset(_)
            | S::Analyze(_)
            | S::OptimizeTable { .. }
            | S::CreateServer(_) => self.acc.raise(Class::Admin),
            S::ShowFunctions { .. }
            | S::ShowVariable { .. }
            | S::ShowStatus { .. }
            | S::ShowVariables { .. }
            | S::ShowColumns { .. }
            | S::ShowCatalogs { .. }
            | S::ShowDatabases { .. }
            | S::ShowProcessList { .. }
            | S::ShowSchemas { .. }
            | S::ShowCharset(_)
            | S::ShowObjects(_)
            | S::ShowTables { .. }
            | S::ShowViews { .. }
            | S::ShowCollation { .. }
            | S::ExplainTable { .. }
            | S::Declare { .. }
            | S::Fetch { .. }
            | S::Open(_)
            | S::Close { .. } => self.acc.raise(Class::Read),
            S::ShowCreate { obj_type, obj_name } => {
                self.acc.raise(Class::Read);
                if matches!(obj_type, ShowCreateObject::Table | ShowCreateObject::View) {
                    self.acc.tables_read.insert(object_name(obj_name));
                }
            }
            S::Explain { analyze, .. } => {
                // The explained statement is walked too and raises the class.
                self.acc.raise(Class::Read);
                if *analyze {
                    self.acc
                        .reason("EXPLAIN ANALYZE runs the statement it explains");
                }
            }
            S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. } => self.acc.raise(Class::Transaction),
            S::Prepare { .. } => {
                self.acc.raise(Class::Admin);
                self.acc.anonymous_code = true;
                self.acc
                    .reason("PREPARE makes a statement for EXECUTE to run later");
            }
            S::Execute {
                immediate,
                name,
                parameters,
                ..
            } => {
                self.acc.raise(Class::Admin);
                self.acc.anonymous_code = true;
                // EXECUTE IMMEDIATE (which sqlparser's MySQL dialect reads
                // as a statement named IMMEDIATE) runs text the analysis
                // does not look into; EXECUTE name runs what a PREPARE
                // decided on made.
                let named_immediate = name.as_ref().is_some_and(|n| {
                    matches!(n.0.as_slice(), [p] if p.as_ident().is_some_and(|i| {
                        i.quote_style.is_none() && i.value.eq_ignore_ascii_case("immediate")
                    }))
                });
                if *immediate || named_immediate {
                    // A string is analysed as what it runs; anything else
                    // (a variable, an expression) is not seen.
                    match parameters.as_slice() {
                        [Expr::Value(v)]
                            if matches!(
                                v.value,
                                Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)
                            ) =>
                        {
                            let (Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)) =
                                &v.value
                            else {
                                unreachable!()
                            };
                            let quote = if matches!(v.value, Value::SingleQuotedString(_)) {
                                '\''
                            } else {
                                '"'
                            };
                            self.acc.immediate.push((s.clone(), quote));
                        }
                        _ => self.acc.unseen = true,
                    }
                } else {
                    self.acc.prepared = true;
                    match name.as_ref().map(|n| n.0.as_slice()) {
                        Some([p]) if let Some(i) = p.as_ident() => self
                            .acc
                            .use_name(format!("statement:{}", i.value.to_lowercase())),
                        _ => self.acc.unseen = true,
                    }
                }
                self.acc.reason(
                    "EXECUTE runs a statement prepared from text, which the analysis does not see",
                );
            }
            _ => {
                // A kind of statement this analysis does not know: the strictest class.
                self.acc.raise(Class::Admin);
                self.acc
                    .reason("is a kind of statement Gatehouse does not classify for MySQL");
            }
        }
    }

    fn set(&mut self, set: &Set) {
        match set {
            Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            } => {
                self.variable(scope.as_ref(), variable);
                // A variable keeps what it is set to for later statements.
                self.acc.refs.store(&refs_of(&[values]));
            }
            Set::MultipleAssignments { assignments } => {
                for a in assignments {
                    self.variable(a.scope.as_ref(), &a.name);
                    self.acc.refs.store(&refs_of(&[&a.value]));
                }
            }
            Set::ParenthesizedAssignments { variables, .. } => {
                for v in variables {
                    self.variable(None, v);
                }
            }
            Set::SetRole { .. } | Set::SetSessionAuthorization(_) => {
                self.acc.raise(Class::Dcl);
                self.acc.reason("SET ROLE changes whose privileges apply");
            }
            Set::SetSessionParam(_)
            | Set::SetTimeZone { .. }
            | Set::SetNames { .. }
            | Set::SetNamesDefault {}
            | Set::SetTransaction { .. } => self.acc.raise(Class::Other),
        }
    }

    fn variable(&mut self, scope: Option<&ContextModifier>, name: &ObjectName) {
        let first = name
            .0
            .first()
            .and_then(|p| p.as_ident())
            .map(|i| lower(&i.value))
            .unwrap_or_default();
        let global = matches!(scope, Some(ContextModifier::Global))
            || first.starts_with("@@global")
            || first.starts_with("@@persist");
        let user_variable = first.starts_with('@') && !first.starts_with("@@");
        let var = last_part(name).unwrap_or_default();
        let var = var.trim_start_matches('@');
        if global {
            self.acc.raise(Class::Admin);
            self.acc
                .reason("SET GLOBAL changes the server's configuration");
        } else if !user_variable && ADMIN_SESSION_VARIABLES.contains(&var) {
            self.acc.raise(Class::Admin);
            self.acc.reason(format!(
                "SET {var} changes how the server logs or replicates the session"
            ));
        } else {
            self.acc.raise(Class::Other);
        }
    }

    /// A multi-table `UPDATE` writes the tables its assignments name
    /// (`SET a.x = …`); an unqualified column could be any table's.
    fn update_targets(&mut self, u: &Update) {
        let mut fs = Vec::new();
        factors(&u.table, &mut fs);
        if let Some(UpdateTableFromKind::BeforeSet(v) | UpdateTableFromKind::AfterSet(v)) = &u.from
        {
            for t in v {
                factors(t, &mut fs);
            }
        }
        let mut quals: Vec<Option<String>> = Vec::new();
        for a in &u.assignments {
            match &a.target {
                AssignmentTarget::ColumnName(n) => quals.push(qualifier(n)),
                AssignmentTarget::Tuple(v) => quals.extend(v.iter().map(qualifier)),
            }
        }
        let mut chosen: Vec<&ObjectName> = Vec::new();
        let mut all = fs.len() <= 1 || quals.iter().any(Option::is_none);
        if !all {
            for q in quals.iter().flatten() {
                let m: Vec<&ObjectName> = fs
                    .iter()
                    .filter(|(n, al)| names_entry(n, al.as_deref(), q))
                    .map(|(n, _)| *n)
                    .collect();
                if m.is_empty() {
                    all = true;
                    break;
                }
                chosen.extend(m);
            }
        }
        if all {
            chosen = fs.iter().map(|(n, _)| *n).collect();
        }
        for n in chosen {
            self.write_target(n);
        }
    }

    /// `DELETE FROM t …` writes `t`; `DELETE a, b FROM … JOIN …` writes
    /// the tables `a` and `b` name.
    fn delete_targets(&mut self, d: &Delete) {
        let from = match &d.from {
            FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v,
        };
        let mut ffrom = Vec::new();
        for t in from {
            factors(t, &mut ffrom);
        }
        if d.tables.is_empty() {
            for (n, _) in ffrom {
                self.write_target(n);
            }
            return;
        }
        let mut fall = ffrom;
        if let Some(using) = &d.using {
            for t in using {
                factors(t, &mut fall);
            }
        }
        for t in &d.tables {
            let key = last_part(t).unwrap_or_default();
            let m: Vec<&ObjectName> = fall
                .iter()
                .filter(|(n, al)| names_entry(n, al.as_deref(), &key))
                .map(|(n, _)| *n)
                .collect();
            if m.is_empty() {
                self.acc.tables_written.insert(object_name(t));
            }
            for n in m {
                self.write_target(n);
            }
        }
    }
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        // A query anywhere (`SET @a = (SELECT …)`) reads.
        self.acc.raise(Class::Read);
        let a = addr(q);
        // A CTE's own query sees the CTEs before it (all of them if RECURSIVE).
        for s in &mut self.ctes {
            if let Some(i) = s.queries.iter().position(|&x| x == a) {
                s.visible = if s.recursive { s.names.len() } else { i };
            }
        }
        let own: Vec<String> = q
            .with
            .iter()
            .flat_map(|w| w.cte_tables.iter().map(|c| lower(&c.alias.name.value)))
            .collect();
        self.acc.ctes.extend(own.iter().cloned());
        self.table_statements(&q.body, &own);
        if let Some(with) = &q.with {
            self.ctes.push(CteScope {
                query: a,
                names: with
                    .cte_tables
                    .iter()
                    .map(|c| lower(&c.alias.name.value))
                    .collect(),
                queries: with.cte_tables.iter().map(|c| addr(&*c.query)).collect(),
                recursive: with.recursive,
                visible: 0,
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let a = addr(q);
        if self.ctes.last().is_some_and(|s| s.query == a) {
            self.ctes.pop();
        }
        for s in &mut self.ctes {
            if let Some(i) = s.queries.iter().position(|&x| x == a) {
                s.visible = if s.recursive { s.names.len() } else { i + 1 };
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, n: &ObjectName) -> ControlFlow<()> {
        if !self.targets.contains(&addr(n)) && !self.is_cte(n) {
            self.acc.tables_read.insert(object_name(n));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = tf {
            self.acc.refs.relations.push((
                object_name(name),
                alias.as_ref().map(|a| lower(&a.name.value)),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if s.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(..) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            self.acc.refs.star = true;
        }
        // `SELECT … INTO @v`: what it selects is kept (the whole
        // statement counts as its source).
        if s.into.is_some() {
            self.acc.stores_all = true;
        }
        // `INTO OUTFILE` that sqlparser took for a variable named outfile.
        if let Some(into) = &s.into
            && into.targets.iter().any(|t| {
                matches!(t, Expr::Identifier(i) if i.value.eq_ignore_ascii_case("outfile") || i.value.eq_ignore_ascii_case("dumpfile"))
            })
        {
            self.acc.raise(Class::Admin);
            self.acc
                .reason("SELECT … INTO OUTFILE writes a file on the database server");
            self.acc.refs.copy_out = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Identifier(i) => {
                self.acc.refs.names.insert(lower(&i.value));
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(i) = parts.last() {
                    self.acc.refs.names.insert(lower(&i.value));
                }
            }
            Expr::Function(f) => self.function(&f.name),
            Expr::Wildcard(..) | Expr::QualifiedWildcard(..) => self.acc.refs.star = true,
            // `@e := email`: the variable keeps the value for later
            // statements (the whole statement counts as its source).
            Expr::BinaryOp {
                op: BinaryOperator::Assignment,
                ..
            } => self.acc.stores_all = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, v: &ValueWithSpan) -> ControlFlow<()> {
        // With ANSI_QUOTES, "email" is the column email.
        if let Value::DoubleQuotedString(s) = &v.value {
            self.acc.refs.names.insert(lower(s));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        self.statement(s);
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests;
