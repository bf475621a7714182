//! SQL analysis for the PostgreSQL dialect with PostgreSQL's own grammar
//! (libpg_query): what kind of statement this is, which tables it reads
//! and writes, which functions it calls.
//!
//! A string may hold several statements; the strictest wins, and nested
//! statements count (a `DELETE` inside a CTE makes a write). Text that does
//! not parse is reported as such, and the policy denies it unless a rule
//! allows unparsed statements (fail closed).

use std::collections::BTreeSet;

use serde::Serialize;

pub use gatehouse_core::policy::spec::Class;

/// What a statement string does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// `None` when the text does not parse.
    pub class: Option<Class>,
    /// Why the text did not parse.
    pub parse_error: Option<String>,
    /// Tables (as written, lower-cased by the parser unless quoted;
    /// `schema.table` when qualified) read.
    pub tables_read: BTreeSet<String>,
    /// Tables inserted into, updated, deleted from, copied into, or whose
    /// definition changes.
    pub tables_written: BTreeSet<String>,
    /// Functions called or defined, unqualified and lower-case.
    pub functions: BTreeSet<String>,
    /// The string holds an anonymous code block (`DO`), whose effects the
    /// parser cannot see.
    pub anonymous_code: bool,
    /// The string runs statements the analysis cannot see: a `DO` block,
    /// MySQL's `PREPARE … FROM` a variable or an expression, `EXECUTE
    /// IMMEDIATE`. They could touch any table and call any function, so
    /// deny and review rules' `tables` and `functions` conditions count as
    /// met (fail closed).
    pub unseen: bool,
    /// The string prepares or runs statements with SQL's `PREPARE` and
    /// `EXECUTE`: what an `EXECUTE` runs is decided by its `PREPARE`'s text
    /// ([`crate::Engine::follow_prepared`]).
    pub prepared: bool,
    /// Why the class is what it is, when it is not the statement's own kind
    /// (e.g. "calls pg_terminate_backend"). For `policy test` and errors.
    pub reasons: Vec<String>,
    /// Each call of a function that signals another backend
    /// ([`BACKEND_SIGNALS`]) the parser sees, with the process id it names.
    pub backend_signals: Vec<SignalTarget>,
    /// Functions the text both creates, replaces or drops and calls: what
    /// such a call runs is not what the database's catalog holds before
    /// the text runs.
    #[serde(skip)]
    pub defined_and_called: BTreeSet<String>,
    /// Functions the text only creates, replaces, drops or alters (named
    /// by DDL, not called).
    #[serde(skip)]
    pub only_defined: BTreeSet<String>,
    /// Views the text creates (or replaces) and reads: what such a read
    /// gives is not what the catalog says before the text runs.
    #[serde(skip)]
    pub views_defined_and_read: BTreeSet<String>,
}

/// The process id a call of one of [`BACKEND_SIGNALS`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalTarget {
    /// A literal process id.
    Pid(i32),
    /// The bound parameter `$n` (from 1), known only when the statement is
    /// bound. Only in a statement that is one plain query (`SELECT …`),
    /// where `$n` can be nothing but the protocol's parameter (not a
    /// function's, nor one of SQL's `PREPARE`).
    Param(u16),
    /// Anything else: computed in the statement.
    Computed,
}

/// Functions that cancel or end another backend's work. Every session of a
/// connection logs in upstream as the same role, which may signal any of
/// its backends, so the PostgreSQL proxy lets these reach only the caller's
/// own sessions.
pub const BACKEND_SIGNALS: &[&str] = &["pg_cancel_backend", "pg_terminate_backend"];

/// Functions that act on the server, its files or other sessions rather
/// than on data: calling one makes a statement `admin`.
const ADMIN_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
    "set_config",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "dblink_open",
    "dblink_fetch",
    "dblink_get_result",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    // Read every change to every table (logical decoding), or move a slot on.
    "pg_logical_slot_get_changes",
    "pg_logical_slot_peek_changes",
    "pg_logical_slot_get_binary_changes",
    "pg_logical_slot_peek_binary_changes",
    "pg_replication_slot_advance",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_logical_emit_message",
    "pg_replication_origin_create",
    "pg_replication_origin_drop",
    "pg_replication_origin_advance",
    "pg_replication_origin_session_setup",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_drop_subscription",
    // Run a query given as text, out of the parser's sight.
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    // Read whole tables, schemas or the database by name.
    "table_to_xml",
    "table_to_xml_and_xmlschema",
    "table_to_xmlschema",
    "schema_to_xml",
    "schema_to_xml_and_xmlschema",
    "schema_to_xmlschema",
    "database_to_xml",
    "database_to_xml_and_xmlschema",
    "database_to_xmlschema",
];

/// Functions that change data when called.
const WRITE_FUNCTIONS: &[&str] = &[
    "setval",
    "nextval",
    "lo_unlink",
    "lo_create",
    "lo_creat",
    "lo_from_bytea",
    "lo_put",
    "lo_truncate",
    "lowrite",
    "pg_advisory_lock",
    "pg_notify",
];

/// The class of one statement node by its type name.
fn class_of(stmt_type: &str) -> Class {
    match stmt_type {
        "TransactionStmt" => Class::Transaction,
        "SelectStmt" | "CopyStmt" | "DeclareCursorStmt" | "FetchStmt" | "ClosePortalStmt"
        | "ExplainStmt" | "VariableShowStmt" => Class::Read,
        "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" | "TruncateStmt" | "CallStmt"
        | "LockStmt" | "RefreshMatViewStmt" => Class::Write,
        "ListenStmt" | "UnlistenStmt" | "NotifyStmt" | "DiscardStmt" | "DeallocateStmt"
        | "PrepareStmt" | "ExecuteStmt" | "ConstraintsSetStmt" | "VariableSetStmt" => Class::Other,
        "GrantStmt"
        | "GrantRoleStmt"
        | "CreateRoleStmt"
        | "AlterRoleStmt"
        | "AlterRoleSetStmt"
        | "DropRoleStmt"
        | "AlterDefaultPrivilegesStmt"
        | "ReassignOwnedStmt"
        | "DropOwnedStmt"
        | "CreatePolicyStmt"
        | "AlterPolicyStmt"
        | "SecLabelStmt"
        | "AlterOwnerStmt" => Class::Dcl,
        "AlterSystemStmt"
        | "VacuumStmt"
        | "ClusterStmt"
        | "ReindexStmt"
        | "CheckPointStmt"
        | "LoadStmt"
        | "DoStmt"
        | "CreatedbStmt"
        | "DropdbStmt"
        | "AlterDatabaseStmt"
        | "AlterDatabaseSetStmt"
        | "AlterDatabaseRefreshCollStmt"
        | "CreateTableSpaceStmt"
        | "DropTableSpaceStmt"
        | "AlterTableSpaceOptionsStmt"
        | "AlterTableMoveAllStmt"
        | "CreateExtensionStmt"
        | "AlterExtensionStmt"
        | "AlterExtensionContentsStmt"
        | "CreateFdwStmt"
        | "AlterFdwStmt"
        | "CreateForeignServerStmt"
        | "AlterForeignServerStmt"
        | "CreateUserMappingStmt"
        | "AlterUserMappingStmt"
        | "DropUserMappingStmt"
        | "ImportForeignSchemaStmt"
        | "CreateSubscriptionStmt"
        | "AlterSubscriptionStmt"
        | "DropSubscriptionStmt"
        | "CreatePublicationStmt"
        | "AlterPublicationStmt"
        | "CreateEventTrigStmt"
        | "AlterEventTrigStmt"
        | "CreateConversionStmt"
        | "CreatePLangStmt"
        | "AlterCollationStmt" => Class::Admin,
        s if s.starts_with("Create")
            || s.starts_with("Alter")
            || s.starts_with("Drop")
            || s == "RenameStmt"
            || s == "CommentStmt"
            || s == "DefineStmt"
            || s == "CompositeTypeStmt"
            || s == "IndexStmt"
            || s == "ViewStmt"
            || s == "RuleStmt" =>
        {
            Class::Ddl
        }
        // Parts of statements the walker also reports.
        "AlterTableCmd" | "RawStmt" | "WithClause" | "CommonTableExpr" => Class::Read,
        // A kind of statement this version does not know: the strictest class.
        _ => Class::Admin,
    }
}

/// Analyses a statement string.
pub fn analyze(sql: &str) -> Analysis {
    let mut a = Analysis {
        class: None,
        parse_error: None,
        tables_read: BTreeSet::new(),
        tables_written: BTreeSet::new(),
        functions: BTreeSet::new(),
        anonymous_code: false,
        unseen: false,
        prepared: false,
        reasons: Vec::new(),
        backend_signals: Vec::new(),
        defined_and_called: BTreeSet::new(),
        only_defined: BTreeSet::new(),
        views_defined_and_read: BTreeSet::new(),
    };
    if sql.contains('\0') {
        a.parse_error = Some("the text contains a NUL byte".into());
        return a;
    }
    let summary = match pg_query::summary(sql, pg_query::ParserOptions::DEFAULT, -1) {
        Ok(s) => s,
        Err(e) => {
            a.parse_error = Some(e.to_string());
            return a;
        }
    };
    if summary.statement_types.is_empty() {
        // Only comments or whitespace: nothing runs.
        a.class = Some(Class::Other);
        return a;
    }
    let mut class = Class::Transaction;
    let raise = |class: &mut Class, c: Class| {
        if c > *class {
            *class = c;
        }
    };
    let mut needs_tree = false;
    // Statements whose function calls the summary may leave out (a
    // column's DEFAULT, a CHECK, a rule's action, a cursor's query): their
    // tree is walked for every call.
    let mut all_calls = false;
    let returning = contains_word(sql, "returning");
    for t in &summary.statement_types {
        all_calls |= !SUMMARY_LISTS_CALLS.contains(&t.as_str())
            // Nor a RETURNING list's.
            || (returning && matches!(t.as_str(), "InsertStmt" | "UpdateStmt" | "DeleteStmt"));
        raise(&mut class, class_of(t));
        if t == "DoStmt" && !a.unseen {
            a.anonymous_code = true;
            a.unseen = true;
            a.reasons.push(
                "runs a DO block, whose statements Gatehouse does not see (they could touch any table or call any function)".into(),
            );
        }
        a.prepared |= matches!(t.as_str(), "PrepareStmt" | "ExecuteStmt");
        needs_tree |= matches!(
            t.as_str(),
            "CopyStmt" | "VariableSetStmt" | "ExplainStmt" | "DeclareCursorStmt"
        );
    }
    // The summary does not list every call (not those in a cursor's query,
    // for one): a text that may name a backend signal is walked whole.
    needs_tree |= may_name_backend_signal(sql);
    for t in &summary.tables {
        let name = unquoted(&t.name);
        match t.context {
            pg_query::protobuf::summary_result::Context::Dml => {
                a.tables_written.insert(name);
                raise(&mut class, Class::Write);
            }
            pg_query::protobuf::summary_result::Context::Ddl => {
                a.tables_written.insert(name);
                // TRUNCATE names its tables in DDL context; it removes rows.
                let truncate = summary.statement_types.iter().all(|s| s == "TruncateStmt");
                raise(&mut class, if truncate { Class::Write } else { Class::Ddl });
            }
            _ => {
                a.tables_read.insert(name);
            }
        }
    }
    if summary.statement_types.iter().any(|t| t == "ViewStmt") {
        // (The view's name is in DDL context, what it reads is not.)
        let created = summary
            .tables
            .iter()
            .filter(|t| matches!(t.context, pg_query::protobuf::summary_result::Context::Ddl));
        a.views_defined_and_read = created
            .map(|t| unquoted(&t.name))
            .filter(|n| a.tables_read.contains(n))
            .collect();
    }
    let (mut named_by_ddl, mut used) = (BTreeSet::new(), BTreeSet::new());
    for f in &summary.functions {
        let name = f.function_name.to_ascii_lowercase();
        if matches!(f.context, pg_query::protobuf::summary_result::Context::Ddl) {
            named_by_ddl.insert(name.clone());
        } else {
            used.insert(name.clone());
        }
        if matches!(f.context, pg_query::protobuf::summary_result::Context::Call) {
            if let Some(c) = note_call(&mut a, &name) {
                raise(&mut class, c);
            }
            needs_tree |= BACKEND_SIGNALS.contains(&name.as_str());
        }
        a.functions.insert(name);
    }
    a.defined_and_called = named_by_ddl.intersection(&used).cloned().collect();
    a.only_defined = named_by_ddl.difference(&used).cloned().collect();
    needs_tree |= all_calls;
    if needs_tree {
        match pg_query::parse(sql, pg_query::ParserOptions::DEFAULT) {
            Ok(tree) => {
                let one_query = matches!(
                    tree.protobuf.stmts.as_slice(),
                    [raw] if matches!(
                        raw.stmt.as_ref().and_then(|n| n.node.as_ref()),
                        Some(pg_query::NodeEnum::SelectStmt(_))
                    )
                );
                let json = match serde_json::to_value(&tree.protobuf) {
                    Ok(json) => json,
                    Err(e) => {
                        a.parse_error = Some(format!("walking the parse tree: {e}"));
                        return a;
                    }
                };
                for (name, call) in calls_in(&json) {
                    if BACKEND_SIGNALS.contains(&name.as_str()) {
                        a.backend_signals.push(signal_target(call, one_query));
                    }
                    if all_calls {
                        if let Some(c) = note_call(&mut a, &name) {
                            raise(&mut class, c);
                        }
                        a.functions.insert(name);
                    }
                }
                if all_calls {
                    // And the tables it names that the summary left out
                    // (a RETURNING list's subquery, MERGE's source): read.
                    for t in tables_in(&json) {
                        if !a.tables_written.contains(&t) {
                            a.tables_read.insert(t);
                        }
                    }
                }
                for (node, _, _, _) in tree.protobuf.nodes() {
                    for (c, why) in refine(node, &mut a) {
                        raise(&mut class, c);
                        a.reasons.push(why);
                    }
                }
                // A cursor's query is not in the summary: analysed on its
                // own, as what it is (the statement reads what it reads).
                for raw in &tree.protobuf.stmts {
                    let Some(pg_query::NodeEnum::DeclareCursorStmt(d)) =
                        raw.stmt.as_ref().and_then(|n| n.node.as_ref())
                    else {
                        continue;
                    };
                    let Some(query) = d.query.as_ref().and_then(|n| n.node.as_ref()) else {
                        continue;
                    };
                    if has_complex_typmod(&json) {
                        a.parse_error = Some(
                            "a cursor's query: type modifiers must be simple constants or identifiers"
                                .into(),
                        );
                        return a;
                    }
                    let inner = match query.deparse(pg_query::DeparseOptions::default()) {
                        Ok(text) => analyze(&text),
                        Err(e) => {
                            a.parse_error = Some(format!("a cursor's query: {e}"));
                            return a;
                        }
                    };
                    if let Some(e) = inner.parse_error {
                        a.parse_error = Some(format!("a cursor's query: {e}"));
                        return a;
                    }
                    raise(&mut class, inner.class.unwrap_or(Class::Admin));
                    a.tables_read.extend(inner.tables_read);
                    a.tables_written.extend(inner.tables_written);
                    a.functions.extend(inner.functions);
                    a.reasons.extend(inner.reasons);
                    a.anonymous_code |= inner.anonymous_code;
                    a.unseen |= inner.unseen;
                    a.prepared |= inner.prepared;
                    // Its backend signals are in this tree's already.
                }
            }
            Err(e) => {
                a.parse_error = Some(tree_error(&e));
                return a;
            }
        }
    }
    a.class = Some(class);
    a
}

/// What to say of a full parse that failed where the summary parser had
/// read the text: libpg_query's tree reaches Rust as protobuf, which
/// `pg_query` decodes with a limit of 100 nested messages (two per level of
/// an expression), so an expression nested more than about 45 levels deep
/// (`1 + (1 + (…))`, `a || b || … ` with 45 operands) cannot be read.
fn tree_error(e: &pg_query::Error) -> String {
    match e {
        pg_query::Error::Decode(_) => {
            "its expressions are nested too deeply for Gatehouse to read (about 45 levels at most)"
                .into()
        }
        e => e.to_string(),
    }
}

/// Whether a statement of `sql` (its first, or one after a `;`) may begin
/// with one of `words` (lower case): it does, or it begins with a comment
/// (not looked into: maybe). Cheap enough for the data path; wrong only
/// towards "maybe" (a `;` inside a literal), for either dialect.
pub fn may_begin_with(sql: &str, words: &[&[u8]]) -> bool {
    statement_starts(sql)
        .any(|rest| begins_with_comment(rest) || words.iter().any(|w| begins_with_word(rest, w)))
}

/// Where each statement of `sql` may begin, leading whitespace skipped: the
/// text's start and after each `;` (one inside a literal too).
#[inline]
pub fn statement_starts(sql: &str) -> impl Iterator<Item = &[u8]> {
    let b = sql.as_bytes();
    std::iter::once(0)
        .chain(memchr::memchr_iter(b';', b).map(|i| i + 1))
        .map(move |at| {
            let rest = &b[at..];
            let start = rest
                .iter()
                .position(|c| !c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            &rest[start..]
        })
}

/// Whether `rest` begins with a comment (`/*`, `--`, MySQL's `#`).
#[inline]
pub fn begins_with_comment(rest: &[u8]) -> bool {
    rest.starts_with(b"/*") || rest.starts_with(b"--") || rest.starts_with(b"#")
}

/// Whether `rest` begins with `word` (lower case) as a whole word, in any
/// case.
#[inline]
pub fn begins_with_word(rest: &[u8], word: &[u8]) -> bool {
    rest.len() >= word.len()
        && rest[..word.len()].eq_ignore_ascii_case(word)
        && rest.get(word.len()).is_none_or(|&c| !in_word(c))
}

/// Whether `c` can be part of an SQL word (an identifier or keyword).
#[inline]
pub fn in_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Whether `sql` may call one of [`BACKEND_SIGNALS`]: it has `_backend` (in
/// any case) or a Unicode-escaped name (`U&"…"`). Cheap (the PostgreSQL
/// proxy asks it of every statement when no rule needs an analysis), and
/// wrong only towards "maybe".
pub fn may_name_backend_signal(sql: &str) -> bool {
    let b = sql.as_bytes();
    memchr::memchr_iter(b'_', b).any(|i| {
        b.get(i + 1..i + 8)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"backend"))
    }) || has_unicode_escape(b)
}

/// Whether `b` has `U&` (in any case): a Unicode-escaped identifier or
/// string, whose text names nothing literally.
fn has_unicode_escape(b: &[u8]) -> bool {
    memchr::memchr_iter(b'&', b).any(|i| i > 0 && b[i - 1].eq_ignore_ascii_case(&b'u'))
}

/// Statement kinds whose every function call and table libpg_query's
/// summary lists (but for a write's RETURNING list). Of other kinds (DDL
/// expressions, a rule's action, a cursor's query, COPY's WHERE, MERGE's
/// source) the tree is walked for them as well.
const SUMMARY_LISTS_CALLS: &[&str] = &[
    "SelectStmt",
    "InsertStmt",
    "UpdateStmt",
    "DeleteStmt",
    "ExplainStmt",
    "CreateTableAsStmt",
    "ViewStmt",
    "CallStmt",
    "PrepareStmt",
    "ExecuteStmt",
    "DeallocateStmt",
    "TransactionStmt",
    "VariableSetStmt",
    "VariableShowStmt",
    "FetchStmt",
    "ClosePortalStmt",
    "ListenStmt",
    "UnlistenStmt",
    "NotifyStmt",
    "DiscardStmt",
    "LockStmt",
    "TruncateStmt",
];

/// A table's name as the summary writes it (`"Secrets"`, `public."order"`),
/// without the quotes of its parts (`Secrets`, `public.order`), as rules
/// name tables.
fn unquoted(name: &str) -> String {
    if !name.contains('"') {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            ('"', true) => quoted = false,
            (c, _) => out.push(c),
        }
    }
    out
}

/// Every object of a parse tree's JSON (each node, and the objects inside
/// it), depth first and in order.
pub(crate) fn objects(
    json: &serde_json::Value,
) -> impl Iterator<Item = &serde_json::Map<String, serde_json::Value>> {
    use serde_json::Value;
    let mut stack = vec![json];
    std::iter::from_fn(move || {
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    // Children pushed last to first, so they come in order.
                    stack.extend(m.values().rev());
                    return Some(m);
                }
                Value::Array(items) => stack.extend(items.iter().rev()),
                _ => {}
            }
        }
        None
    })
}

/// Every table a parse tree's JSON names (`schema.table` or `table`), but
/// the names of its common table expressions.
pub(crate) fn tables_in(json: &serde_json::Value) -> std::collections::BTreeSet<String> {
    use serde_json::Value;
    let mut tables = std::collections::BTreeSet::new();
    let mut ctes = std::collections::BTreeSet::new();
    for m in objects(json) {
        if let Some(Value::Object(r)) = m.get("RangeVar")
            && let Some(rel) = r.get("relname").and_then(Value::as_str)
        {
            tables.insert(match r.get("schemaname").and_then(Value::as_str) {
                Some(schema) if !schema.is_empty() => format!("{schema}.{rel}"),
                _ => rel.to_string(),
            });
        }
        if let Some(Value::Object(c)) = m.get("CommonTableExpr")
            && let Some(name) = c.get("ctename").and_then(Value::as_str)
        {
            ctes.insert(name.to_string());
        }
    }
    tables.retain(|t| !ctes.contains(t));
    tables
}

/// Whether `name` (a setting, in any case) decides whether transactions are
/// read-only.
pub fn is_read_only_setting(name: &str) -> bool {
    name.eq_ignore_ascii_case("default_transaction_read_only")
        || name.eq_ignore_ascii_case("transaction_read_only")
}

/// Whether `sql` may change whether transactions are read-only (see
/// [`lifts_read_only`]): it names `read_only`, has both `read` and `write`,
/// calls `set_config`, or has a Unicode-escaped name (`U&"…"`). Cheap, and
/// wrong only towards "maybe".
pub fn may_lift_read_only(sql: &str) -> bool {
    has_unicode_escape(sql.as_bytes())
        || contains_word(sql, "read_only")
        || contains_word(sql, "set_config")
        || (contains_word(sql, "read") && contains_word(sql, "write"))
}

/// Whether `sql` would take a session out of read-only mode: a `SET` (or
/// `SET LOCAL`, or a `set_config` call) of `default_transaction_read_only`
/// or `transaction_read_only` to anything but on (`RESET` and `SET … TO
/// DEFAULT` go back to the session's start, which is read-only), `READ
/// WRITE` in `BEGIN`, `START TRANSACTION`, `SET TRANSACTION` or `SET
/// SESSION CHARACTERISTICS`, or a `set_config` whose setting is not a
/// literal. Text that does not parse counts as doing so.
pub fn lifts_read_only(sql: &str) -> bool {
    use serde_json::Value;
    let Ok(tree) = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT) else {
        return true;
    };
    let Ok(json) = serde_json::to_value(&tree.protobuf) else {
        return true;
    };
    // A constant that is on: `on`, `true`, `yes`, `1`, TRUE.
    let is_on = |v: Option<&Value>| {
        let Some(("AConst", c)) = json_node(v) else {
            return false;
        };
        let Some((kind, body)) = c
            .get("val")
            .and_then(Value::as_object)
            .and_then(|m| m.iter().next())
        else {
            return false;
        };
        match kind.as_str() {
            "Boolval" => body.get("boolval").and_then(Value::as_bool) == Some(true),
            "Ival" => body
                .get("ival")
                .and_then(Value::as_i64)
                .is_some_and(|i| i != 0),
            "Sval" => body.get("sval").and_then(Value::as_str).is_some_and(|s| {
                ["on", "true", "yes", "1"]
                    .iter()
                    .any(|t| s.trim().eq_ignore_ascii_case(t))
            }),
            _ => false,
        }
    };
    objects(&json).any(|m| {
        if let Some(Value::Object(set)) = m.get("VariableSetStmt")
            && set
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_read_only_setting)
        {
            // VAR_SET_DEFAULT (2) and VAR_RESET (5) go back to the session's
            // start.
            let kind = set.get("kind").and_then(Value::as_i64);
            let args = set.get("args").and_then(Value::as_array);
            let to_on = args.is_some_and(|a| a.len() == 1 && is_on(a.first()));
            return !matches!(kind, Some(2 | 5)) && !to_on;
        }
        if let Some(Value::Object(d)) = m.get("DefElem")
            && d.get("defname").and_then(Value::as_str) == Some("transaction_read_only")
        {
            return !is_on(d.get("arg"));
        }
        if let Some((name, call)) = call_of(m)
            && name == "set_config"
        {
            let args = call.get("args").and_then(Value::as_array);
            return match json_node(args.and_then(|a| a.first())) {
                Some(("AConst", c)) => c
                    .get("val")
                    .and_then(|v| v.get("Sval"))
                    .and_then(|v| v.get("sval"))
                    .and_then(Value::as_str)
                    .is_none_or(|setting| {
                        is_read_only_setting(setting) && !is_on(args.and_then(|a| a.get(1)))
                    }),
                _ => true,
            };
        }
        false
    })
}

/// Whether `sql` has `word` (in lower case) in any case, anywhere (in a
/// literal too: cheap, and wrong only towards "yes").
fn contains_word(sql: &str, word: &str) -> bool {
    sql.as_bytes()
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// Notes a call of `name` in `a`: the class it raises the statement to (with
/// the reason), if any.
fn note_call(a: &mut Analysis, name: &str) -> Option<Class> {
    let class = if ADMIN_FUNCTIONS.contains(&name) {
        Class::Admin
    } else if WRITE_FUNCTIONS.contains(&name) {
        Class::Write
    } else {
        return None;
    };
    let why = format!("calls {name}");
    if !a.reasons.contains(&why) {
        a.reasons.push(why);
    }
    Some(class)
}

/// The node inside a `{"node": {Kind: {...}}}` wrapper of a parse tree's
/// JSON, with its kind.
fn json_node(v: Option<&serde_json::Value>) -> Option<(&str, &serde_json::Value)> {
    let m = v?.get("node")?.as_object()?;
    let (kind, body) = m.iter().next()?;
    Some((kind.as_str(), body))
}

/// Whether a parse tree's JSON has a type modifier that is not a constant,
/// a parameter or a name (`t(f(x)) '…'`). PostgreSQL refuses one when the
/// statement runs ("type modifiers must be simple constants or
/// identifiers"), and libpg_query's deparser cannot write one back (it
/// drops it, or aborts the process where its assertions are compiled in).
fn has_complex_typmod(json: &serde_json::Value) -> bool {
    objects(json).any(|m| {
        m.get("typmods")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|mods| {
                mods.iter().any(|n| {
                    !matches!(
                        json_node(Some(n)),
                        Some(("A_Const" | "ParamRef" | "ColumnRef", _))
                    )
                })
            })
    })
}

/// Every function call anywhere in a parse tree's JSON, in order: the
/// function's name (unqualified, in lower case) and the `FuncCall` node.
/// The tree is walked whole (pg_query's own walk leaves out parts: `VALUES`
/// lists, `PREPARE`'s and `DECLARE`'s queries).
pub(crate) fn calls_in(
    json: &serde_json::Value,
) -> impl Iterator<Item = (String, &serde_json::Map<String, serde_json::Value>)> {
    objects(json).filter_map(call_of)
}

/// The function an object of a parse tree's JSON calls, if it is a call
/// (`{"FuncCall": …}`): its name (unqualified, in lower case) and the node.
fn call_of(
    m: &serde_json::Map<String, serde_json::Value>,
) -> Option<(String, &serde_json::Map<String, serde_json::Value>)> {
    use serde_json::Value;
    let Some(Value::Object(call)) = m.get("FuncCall") else {
        return None;
    };
    let name = match json_node(call.get("funcname")?.as_array()?.last())? {
        ("String", s) => s.get("sval")?.as_str()?.to_ascii_lowercase(),
        _ => return None,
    };
    Some((name, call))
}

/// The process id a call (a `FuncCall` node's JSON) of one of
/// [`BACKEND_SIGNALS`] names. `$n` counts as the bound parameter only in
/// `one_query`, a statement that is one plain query.
fn signal_target(
    call: &serde_json::Map<String, serde_json::Value>,
    one_query: bool,
) -> SignalTarget {
    let param = |p: &serde_json::Value| match p
        .get("number")
        .and_then(serde_json::Value::as_u64)
        .map(u16::try_from)
    {
        Some(Ok(n)) if n > 0 && one_query => SignalTarget::Param(n),
        _ => SignalTarget::Computed,
    };
    let arg = call
        .get("args")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first());
    match json_node(arg) {
        Some(("AConst", c)) => match c
            .get("val")
            .and_then(|v| v.get("Ival"))
            .and_then(|i| i.get("ival"))
            .and_then(serde_json::Value::as_i64)
            .map(i32::try_from)
        {
            Some(Ok(pid)) => SignalTarget::Pid(pid),
            _ => SignalTarget::Computed,
        },
        Some(("ParamRef", p)) => param(p),
        // `$1::int4` and the like.
        Some(("TypeCast", c)) => match json_node(c.get("arg")) {
            Some(("ParamRef", p)) => param(p),
            _ => SignalTarget::Computed,
        },
        _ => SignalTarget::Computed,
    }
}

/// Statement kinds whose class depends on their details.
fn refine(node: pg_query::NodeRef<'_>, a: &mut Analysis) -> Vec<(Class, String)> {
    let mut out = Vec::new();
    let mut raise = |c: Class, why: String| out.push((c, why));
    match node {
        pg_query::NodeRef::CopyStmt(c) => {
            let table = c.relation.as_ref().map(|r| {
                if r.schemaname.is_empty() {
                    r.relname.clone()
                } else {
                    format!("{}.{}", r.schemaname, r.relname)
                }
            });
            if c.is_program {
                raise(
                    Class::Admin,
                    "COPY … PROGRAM runs a program on the database server".into(),
                );
            } else if c.is_from {
                if let Some(t) = table {
                    a.tables_written.insert(t);
                }
                raise(Class::Write, "COPY … FROM loads rows into a table".into());
            } else {
                if let Some(t) = table {
                    a.tables_read.insert(t);
                }
                if !c.filename.is_empty() {
                    raise(
                        Class::Admin,
                        "COPY … TO a file writes on the database server".into(),
                    );
                }
            }
            if c.is_from && !c.filename.is_empty() && !c.is_program {
                raise(
                    Class::Admin,
                    "COPY … FROM a file reads the database server's files".into(),
                );
            }
        }
        pg_query::NodeRef::VariableSetStmt(v) => {
            let name = v.name.to_ascii_lowercase();
            if matches!(
                name.as_str(),
                "role" | "session_authorization" | "session authorization"
            ) {
                raise(
                    Class::Dcl,
                    format!("SET {name} changes whose privileges apply"),
                );
            }
        }
        pg_query::NodeRef::ExplainStmt(e) => {
            let analyze = e.options.iter().any(|o| {
                matches!(&o.node, Some(pg_query::NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case("analyze"))
            });
            if analyze {
                a.reasons
                    .push("EXPLAIN ANALYZE runs the statement it explains".into());
            }
        }
        _ => {}
    }
    out
}

/// The columns a statement refers to, for masking: a computed result
/// column (no table origin) is masked when the statement mentions a masked
/// column, a `*`, or a masked table as a whole row (`row_to_json(c)`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnRefs {
    /// Last name of every column reference, lower-case (`c.email` → `email`;
    /// a bare `c` is listed too: it may be a whole-row reference).
    pub names: BTreeSet<String>,
    /// A `*` appears (`SELECT *`, `c.*`, `count(*)` does not count).
    pub star: bool,
    /// Tables referenced with their aliases: (`schema.table` or `table`, alias).
    pub relations: Vec<(String, Option<String>)>,
    /// The statement copies data out (`COPY … TO`).
    pub copy_out: bool,
    /// SQL-level prepared statements (`statement:NAME`) and cursors
    /// (`cursor:NAME`) the statement defines (`PREPARE`, `DECLARE … CURSOR`).
    pub defines: Vec<String>,
    /// Those whose rows it returns (`EXECUTE`, `FETCH`): their query, and
    /// so what its computed columns read, is in another statement.
    pub uses: Vec<String>,
    /// MySQL's `PREPARE name FROM 'text'`: each name (`statement:NAME`)
    /// with the text it prepares, as the server reads the string (in each
    /// way it may), which an `EXECUTE` of the name runs.
    pub texts: Vec<(String, String)>,
    /// Where the data that the statement stores in tables comes from
    /// (`INSERT`, `UPDATE`, `MERGE`, `CREATE TABLE … AS`, `SELECT … INTO`,
    /// `CREATE MATERIALIZED VIEW`): the references of the values and
    /// sources of each, with the table written (an `UPDATE`'s new values
    /// read its rows), but not the conditions that pick an `UPDATE`'s rows
    /// nor what `RETURNING` returns. `None` when it stores nothing.
    pub stored: Option<Box<ColumnRefs>>,
    /// Relations whose names, columns or place DDL changes, or on which it
    /// hangs code (`ALTER TABLE`, `RENAME`, `SET SCHEMA`, triggers, rules).
    pub altered: Vec<String>,
    /// Schemas DDL renames (lower-case).
    pub renamed_schemas: Vec<String>,
    /// The statement hangs code on a table, which runs on other sessions'
    /// reads or writes as well (a trigger, a rule, a row-level security
    /// policy, an event trigger; MySQL's scheduled event, which runs by
    /// itself).
    pub attaches_code: bool,
    /// Operators the statement uses (their names, without a schema): an
    /// operator runs a function, which may be one the database defines.
    pub operators: BTreeSet<String>,
}

impl ColumnRefs {
    /// Adds what `other` refers to (names, `*`, relations).
    pub(crate) fn merge(&mut self, other: &ColumnRefs) {
        self.names.extend(other.names.iter().cloned());
        self.star |= other.star;
        self.relations.extend(other.relations.iter().cloned());
    }

    /// Notes data read as `source` refers as stored ([`Self::stored`]).
    pub(crate) fn store(&mut self, source: &ColumnRefs) {
        self.stored.get_or_insert_with(Box::default).merge(source);
    }

    /// Whether what is stored comes from one of `ctes` (then from its
    /// query, elsewhere in the statement).
    pub(crate) fn stores_from(&self, ctes: &BTreeSet<String>) -> bool {
        self.stored
            .as_ref()
            .is_some_and(|s| s.relations.iter().any(|(n, _)| ctes.contains(n)))
    }

    /// Whether the statement may read whole rows: a `*` inside an
    /// expression, or a bare name that is a relation's (or its alias's),
    /// as in `SELECT row_to_json(c) FROM customers c` (a column of the same
    /// name counts too).
    pub fn reads_whole_rows(&self) -> bool {
        self.star
            || self.names.iter().any(|n| {
                self.relations.iter().any(|(name, alias)| {
                    alias.as_deref() == Some(n.as_str()) || name.rsplit('.').next() == Some(n)
                })
            })
    }

    /// Counts all of the statement as the source of what it stores.
    pub(crate) fn store_all(&mut self) {
        let mut all = ColumnRefs::default();
        all.merge(self);
        self.stored = Some(Box::new(all));
    }
}

/// Column references of a statement; `None` when it does not parse.
///
/// The whole parse tree is walked (through its serialised form, so that no
/// kind of node is skipped: a reference hidden in `(c).email` or any other
/// construct is still found).
pub fn column_refs(sql: &str) -> Option<ColumnRefs> {
    if sql.contains('\0') {
        return None;
    }
    let tree = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    let value = serde_json::to_value(&tree.protobuf).ok()?;
    let mut refs = ColumnRefs::default();
    walk(&value, &mut refs, 0)?;
    // Data stored from a CTE comes from that CTE's query, elsewhere in the
    // statement; a setting, a notification, a WAL message or a large
    // object ([`KEEPING_FUNCTIONS`]) keeps what the statement gives it for
    // later statements or other sessions: then all of the statement counts
    // as the source.
    let from_cte = refs.stored.is_some() && {
        let mut ctes = BTreeSet::new();
        cte_names(&value, &mut ctes, 0);
        refs.stores_from(&ctes)
    };
    if from_cte
        || KEEPING_FUNCTIONS
            .iter()
            .any(|f| crate::analyze_mysql::mentions(sql, f.as_bytes()))
    {
        refs.store_all();
    }
    Some(refs)
}

/// PostgreSQL's built-in functions that keep what they are given where a
/// later statement, or another session, reads it back: a setting
/// (`current_setting`), a notification (to any session listening, the
/// caller's own included), a logical-decoding message, a large object.
/// Giving them masked data counts as storing it.
pub const KEEPING_FUNCTIONS: &[&str] = &[
    "set_config",
    "pg_notify",
    "pg_logical_emit_message",
    "lo_from_bytea",
    "lo_put",
    "lowrite",
];

/// Statements that store data, and the fields of each that do not feed
/// what is stored (the rows an `UPDATE` picks, what `RETURNING` returns,
/// the table an `INSERT` adds rows to unless `ON CONFLICT` updates its
/// rows from their own values).
fn stores(kind: &str, node: &serde_json::Value) -> Option<&'static [&'static str]> {
    match kind {
        "InsertStmt" if node.get("on_conflict_clause").is_none_or(|c| c.is_null()) => {
            Some(&["returning_clause", "relation"])
        }
        "InsertStmt" | "MergeStmt" | "CreateTableAsStmt" => Some(&["returning_clause"]),
        "UpdateStmt" => Some(&["where_clause", "returning_clause"]),
        "SelectStmt" if node.get("into_clause").is_some_and(|c| !c.is_null()) => Some(&[]),
        _ => None,
    }
}

/// DDL that renames a relation or its columns, moves it to another schema,
/// changes it, or hangs code on it: the relation it acts on.
const ALTERS: &[&str] = &[
    "AlterTableStmt",
    "RenameStmt",
    "AlterObjectSchemaStmt",
    "CreateTrigStmt",
    "RuleStmt",
    // Row-level security policies run their expressions on every row read.
    "CreatePolicyStmt",
    "AlterPolicyStmt",
];

/// Names of the CTEs defined anywhere in a parse tree (lower-case).
fn cte_names(v: &serde_json::Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > MAX_TREE_DEPTH {
        return;
    }
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| cte_names(i, out, depth + 1)),
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                if k == "CommonTableExpr"
                    && let Some(n) = child.get("ctename").and_then(|n| n.as_str())
                {
                    out.insert(n.to_lowercase());
                }
                cte_names(child, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The name of a `RangeVar` node's relation (`schema.name` or `name`,
/// lower-case).
fn range_var_name(rv: &serde_json::Value) -> String {
    let text = |f: &str| rv.get(f).and_then(|x| x.as_str()).unwrap_or("");
    if text("schemaname").is_empty() {
        text("relname").to_lowercase()
    } else {
        format!("{}.{}", text("schemaname"), text("relname")).to_lowercase()
    }
}

/// Deeper trees than this are not analysed (the statement counts as
/// unparsed, which fails closed).
const MAX_TREE_DEPTH: usize = 2000;

fn walk(v: &serde_json::Value, refs: &mut ColumnRefs, depth: usize) -> Option<()> {
    if depth > MAX_TREE_DEPTH {
        return None;
    }
    match v {
        serde_json::Value::Array(items) => {
            for i in items {
                walk(i, refs, depth + 1)?;
            }
        }
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                match k.as_str() {
                    "ColumnRef" => {
                        let last = child
                            .get("fields")
                            .and_then(|f| f.as_array())
                            .and_then(|f| f.last())
                            .and_then(|n| n.get("node"));
                        if let Some(n) = last {
                            if let Some(s) = n
                                .get("String")
                                .and_then(|s| s.get("sval"))
                                .and_then(|s| s.as_str())
                            {
                                refs.names.insert(s.to_lowercase());
                            } else if n.get("AStar").is_some() {
                                refs.star = true;
                            }
                        }
                    }
                    "RangeVar" => {
                        let name = range_var_name(child);
                        let alias = child
                            .get("alias")
                            .and_then(|a| a.get("aliasname"))
                            .and_then(|a| a.as_str())
                            .map(str::to_lowercase);
                        refs.relations.push((name, alias));
                    }
                    "PrepareStmt" | "ExecuteStmt" => {
                        let name = child.get("name").and_then(|n| n.as_str()).unwrap_or("");
                        let list = if k == "PrepareStmt" {
                            &mut refs.defines
                        } else {
                            &mut refs.uses
                        };
                        list.push(format!("statement:{name}"));
                    }
                    "DeclareCursorStmt" | "FetchStmt" => {
                        let name = child
                            .get("portalname")
                            .and_then(|n| n.as_str())
                            .unwrap_or("");
                        let moves = child
                            .get("ismove")
                            .and_then(|b| b.as_bool())
                            .unwrap_or(false);
                        if k == "DeclareCursorStmt" {
                            refs.defines.push(format!("cursor:{name}"));
                        } else if !moves {
                            refs.uses.push(format!("cursor:{name}"));
                        }
                    }
                    "AExpr" | "SubLink" | "SortBy" => {
                        refs.operators.extend(operators_of(k, child));
                    }
                    "CopyStmt"
                        if !child
                            .get("is_from")
                            .and_then(|b| b.as_bool())
                            .unwrap_or(false) =>
                    {
                        refs.copy_out = true;
                    }
                    "CreateEventTrigStmt" => refs.attaches_code = true,
                    k if ALTERS.contains(&k) => {
                        refs.attaches_code |= matches!(
                            k,
                            "CreateTrigStmt" | "RuleStmt" | "CreatePolicyStmt" | "AlterPolicyStmt"
                        );
                        // (A policy's relation is its `table`.)
                        if let Some(rv) = child.get("relation").or_else(|| child.get("table")) {
                            refs.altered.push(range_var_name(rv));
                        }
                        // ALTER SCHEMA … RENAME TO: a mask may name the schema.
                        if child.get("rename_type").and_then(serde_json::Value::as_i64)
                            == Some(pg_query::protobuf::ObjectType::ObjectSchema as i64)
                            && let Some(n) = child.get("subname").and_then(|n| n.as_str())
                        {
                            refs.renamed_schemas.push(n.to_lowercase());
                        }
                    }
                    _ => {}
                }
                if let Some(skip) = stores(k, child) {
                    let mut source = ColumnRefs::default();
                    if let serde_json::Value::Object(fields) = child {
                        for (f, v) in fields {
                            if !skip.contains(&f.as_str()) {
                                walk(v, &mut source, depth + 1)?;
                            }
                        }
                    }
                    // (A storing statement inside it is among its
                    // sources, and is met again by the walk below.)
                    refs.store(&source);
                }
                walk(child, refs, depth + 1)?;
            }
        }
        _ => {}
    }
    Some(())
}

/// The operator a node of kind `kind` of a parse tree's JSON names, if it
/// is an expression with an operator (`a ### b`, `OPERATOR(s.###)`), a
/// subquery compared with one (`x ### ANY (SELECT …)`) or an ordering by
/// one (`ORDER BY x USING ###`): its name without a schema.
pub(crate) fn operators_of<'a>(
    kind: &str,
    node: &'a serde_json::Value,
) -> impl Iterator<Item = String> + 'a {
    let field = match kind {
        "AExpr" => "name",
        "SubLink" => "oper_name",
        "SortBy" => "use_op",
        _ => "",
    };
    node.get(field)
        .and_then(serde_json::Value::as_array)
        .and_then(|names| names.last())
        .and_then(|n| n.get("node"))
        .and_then(|n| n.get("String"))
        .and_then(|s| s.get("sval"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_a_text_both_creates_and_reads_are_told() {
        let a = analyze("CREATE VIEW v AS SELECT secret FROM t; INSERT INTO kept SELECT * FROM v");
        assert_eq!(a.views_defined_and_read, BTreeSet::from(["v".to_string()]));
        for sql in [
            "CREATE VIEW v AS SELECT secret FROM t",
            "CREATE VIEW v AS SELECT secret FROM t; SELECT 1",
            "SELECT * FROM v",
        ] {
            assert!(analyze(sql).views_defined_and_read.is_empty(), "{sql}");
        }
        let m = crate::analyze_mysql::analyze_mysql(
            "CREATE VIEW v AS SELECT email FROM t; INSERT INTO kept SELECT * FROM v",
        );
        assert_eq!(m.views_defined_and_read, BTreeSet::from(["v".to_string()]));
    }

    #[test]
    fn functions_a_text_both_creates_and_calls_are_told() {
        let a = analyze(
            "CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS 'SELECT 1'; SELECT leak()",
        );
        assert_eq!(a.defined_and_called, BTreeSet::from(["leak".to_string()]));
        for sql in [
            "CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS 'SELECT 1'",
            "SELECT leak()",
            "DROP FUNCTION other; SELECT leak()",
        ] {
            assert!(analyze(sql).defined_and_called.is_empty(), "{sql}");
        }
        let m = crate::analyze_mysql::analyze_mysql(
            "CREATE FUNCTION leak(n INT) RETURNS INT DETERMINISTIC RETURN n; SELECT leak(1)",
        );
        assert_eq!(m.defined_and_called, BTreeSet::from(["leak".to_string()]));
        assert!(
            crate::analyze_mysql::analyze_mysql("SELECT leak(1)")
                .defined_and_called
                .is_empty()
        );
    }

    #[test]
    fn expressions_too_deep_to_decode_are_refused_with_a_reason() {
        let nested = |depth: usize| {
            format!(
                "SELECT pg_cancel_backend({}1{})",
                "(1 + ".repeat(depth),
                ")".repeat(depth)
            )
        };
        // A statement that names a backend signal is read whole (for the
        // signal's target).
        let a = analyze(&nested(40));
        assert_eq!(a.class, Some(Class::Admin), "{a:?}");
        assert_eq!(a.backend_signals.len(), 1, "{a:?}");
        let a = analyze(&nested(60));
        assert_eq!(a.class, None, "refused, not read in part: {a:?}");
        assert_eq!(
            a.parse_error.as_deref(),
            Some(
                "its expressions are nested too deeply for Gatehouse to read (about 45 levels at most)"
            ),
            "a reason a person can act on, not prost's trail of 100 message names"
        );
        // The other full parses fail closed on it too.
        assert!(column_refs(&nested(60)).is_none());
        assert!(lifts_read_only(&nested(60)));
    }

    #[test]
    fn row_security_policies_alter_their_table() {
        for sql in [
            "CREATE POLICY p ON s.customers USING (f(email))",
            "ALTER POLICY p ON s.customers USING (g(email))",
        ] {
            assert_eq!(
                column_refs(sql).expect("parses").altered,
                vec!["s.customers"],
                "{sql}"
            );
        }
    }

    #[test]
    fn operators_are_listed() {
        let ops = |sql: &str| column_refs(sql).expect("parses").operators;
        let set = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(ops("SELECT 1 ### 2"), set(&["###"]));
        assert_eq!(ops("SELECT 1 OPERATOR(s.#~#) 2"), set(&["#~#"]));
        assert_eq!(
            ops("SELECT a FROM t WHERE a @@ ANY (SELECT b FROM u) ORDER BY a USING <~"),
            set(&["@@", "<~"])
        );
        assert_eq!(
            ops("SELECT f(x) FROM t WHERE x = 1 AND y < z - 2"),
            set(&["=", "<", "-"])
        );
    }

    #[test]
    fn whole_rows_are_told_from_columns_in_view_definitions() {
        let whole = |sql: &str| column_refs(sql).expect("parses").reads_whole_rows();
        // As pg_get_viewdef writes them.
        assert!(whole(" SELECT x.*::zz_t AS r, x.id FROM zz_t x;"));
        assert!(whole(" SELECT row_to_json(x.*) AS j FROM zz_t x;"));
        assert!(whole("SELECT row_to_json(zz_t) FROM public.zz_t"));
        assert!(whole("SELECT c AS r FROM customers c"));
        assert!(!whole(" SELECT x.id, x.secret AS s FROM zz_t x;"));
        assert!(!whole("SELECT count(*) FROM zz_t"));
    }

    #[test]
    fn a_statement_may_begin_with_a_word_where_a_statement_begins() {
        let ddl: &[&[u8]] = &[b"create", b"drop"];
        for sql in [
            "CREATE VIEW v AS SELECT 1",
            "  \n drop table t",
            "SELECT 1; create table t (a int)",
            "/* app */ SELECT 1",
            "-- note\nSELECT 1",
            "# note\nSELECT 1",
        ] {
            assert!(may_begin_with(sql, ddl), "{sql}");
        }
        for sql in [
            "SELECT created FROM t",
            "SELECT 'create'",
            "dropped",
            "UPDATE t SET a = 1",
        ] {
            assert!(!may_begin_with(sql, ddl), "{sql}");
        }
    }

    fn class(sql: &str) -> Class {
        analyze(sql)
            .class
            .unwrap_or_else(|| panic!("{sql:?} should parse: {:?}", analyze(sql).parse_error))
    }

    #[test]
    fn classes() {
        for (sql, want) in [
            ("SELECT 1", Class::Read),
            ("select * from t where a = 1", Class::Read),
            ("INSERT INTO t VALUES (1)", Class::Write),
            ("UPDATE t SET a = 1", Class::Write),
            ("DELETE FROM t", Class::Write),
            (
                "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
                Class::Write,
            ),
            ("TRUNCATE t", Class::Write),
            ("CREATE TABLE x (a int)", Class::Ddl),
            ("ALTER TABLE x ADD COLUMN b int", Class::Ddl),
            ("DROP TABLE x", Class::Ddl),
            ("CREATE INDEX ON x (a)", Class::Ddl),
            ("GRANT SELECT ON t TO bob", Class::Dcl),
            ("CREATE ROLE bob", Class::Dcl),
            ("ALTER ROLE bob SUPERUSER", Class::Dcl),
            ("SET ROLE postgres", Class::Dcl),
            ("SET SESSION AUTHORIZATION postgres", Class::Dcl),
            ("SET search_path = public", Class::Other),
            ("ALTER SYSTEM SET work_mem = '1GB'", Class::Admin),
            ("VACUUM t", Class::Admin),
            ("DO $$ BEGIN DELETE FROM t; END $$", Class::Admin),
            ("BEGIN", Class::Transaction),
            ("COMMIT", Class::Transaction),
            ("SHOW work_mem", Class::Read),
            ("LISTEN x", Class::Other),
            ("COPY t FROM STDIN", Class::Write),
            ("COPY t TO STDOUT", Class::Read),
            ("COPY (SELECT 1) TO STDOUT", Class::Read),
            ("COPY t TO PROGRAM 'curl evil'", Class::Admin),
            ("COPY t FROM PROGRAM 'id'", Class::Admin),
            ("COPY t TO '/tmp/x'", Class::Admin),
            ("SELECT pg_terminate_backend(123)", Class::Admin),
            (
                "select PG_CATALOG.pg_read_file('/etc/passwd')",
                Class::Admin,
            ),
            ("SELECT set_config('role', 'postgres', false)", Class::Admin),
            (
                "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(a int)",
                Class::Admin,
            ),
            ("SELECT lo_export(1, '/tmp/x')", Class::Admin),
            (
                "SELECT data FROM pg_logical_slot_get_changes('s', NULL, NULL)",
                Class::Admin,
            ),
            (
                "SELECT query_to_xml('delete from t returning *', true, true, '')",
                Class::Admin,
            ),
            (
                "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
                Class::Write,
            ),
            ("SELECT 1; DROP TABLE t", Class::Ddl),
            ("SELECT 1; GRANT ALL ON t TO x; VACUUM", Class::Admin),
            ("SELECT * INTO newt FROM t", Class::Ddl),
            // Calls the summary leaves out: in RETURNING, COPY's WHERE, DDL
            // expressions.
            (
                "INSERT INTO t VALUES (1) RETURNING pg_read_file('x')",
                Class::Admin,
            ),
            (
                "WITH d AS (DELETE FROM t RETURNING lo_export(1, '/tmp/x')) SELECT 1",
                Class::Admin,
            ),
            (
                "UPDATE t SET a = 1 returning pg_read_file('x')",
                Class::Admin,
            ),
            (
                "COPY t FROM STDIN WHERE pg_read_file('x') IS NULL",
                Class::Admin,
            ),
            (
                "ALTER TABLE t ADD COLUMN c text DEFAULT pg_read_file('/etc/passwd')",
                Class::Admin,
            ),
            (
                "CREATE RULE r AS ON INSERT TO t DO ALSO SELECT pg_terminate_backend(1)",
                Class::Admin,
            ),
            // A cursor's query is what the statement does.
            ("DECLARE c CURSOR FOR SELECT * FROM t", Class::Read),
            (
                "DECLARE c CURSOR WITH HOLD FOR SELECT pg_read_file('/etc/passwd')",
                Class::Admin,
            ),
            (
                "BEGIN; DECLARE c CURSOR FOR SELECT set_config('role', 'x', false); FETCH c",
                Class::Admin,
            ),
            ("CREATE TABLE a AS SELECT * FROM t", Class::Ddl),
            ("EXPLAIN ANALYZE DELETE FROM t", Class::Write),
            ("SELECT setval('s', 1)", Class::Write),
            ("", Class::Other),
            ("-- just a comment", Class::Other),
        ] {
            assert_eq!(class(sql), want, "{sql}");
        }
    }

    #[test]
    fn statements_that_leave_read_only_mode() {
        for sql in [
            "SET default_transaction_read_only = off",
            "set DEFAULT_TRANSACTION_READ_ONLY to 'false'",
            "SET LOCAL transaction_read_only = 0",
            "SET SESSION transaction_read_only TO no",
            "SET \"default_transaction_read_only\" = off",
            "SET U&\"default\\005ftransaction\\005fread\\005fonly\" = off",
            "SET TRANSACTION READ WRITE",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "BEGIN READ WRITE",
            "BEGIN; SELECT 1; COMMIT; START TRANSACTION READ WRITE",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT set_config('TRANSACTION_READ_ONLY', 'off', true)",
            "SELECT set_config(lower('DEFAULT_TRANSACTION_READ_ONLY'), 'off', false)",
            "SELECT set_config(E'default\\x5ftransaction\\x5fread\\x5fonly', 'off', false)",
            "SELECT 1 FROM t WHERE set_config('transaction_read_only', $1, true) IS NULL",
            "SET default_transaction_read_only =",
        ] {
            assert!(may_lift_read_only(sql), "{sql}");
            assert!(lifts_read_only(sql), "{sql}");
        }
        for sql in [
            "SET default_transaction_read_only = on",
            "SET transaction_read_only TO true",
            "RESET default_transaction_read_only",
            "SET default_transaction_read_only TO DEFAULT",
            "RESET ALL",
            "DISCARD ALL",
            "BEGIN READ ONLY",
            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE",
            "SET TRANSACTION READ ONLY",
            "SHOW transaction_read_only",
            "SELECT current_setting('default_transaction_read_only')",
            "SELECT set_config('application_name', 'read write', false)",
            "SELECT 'read_only' AS read, 'write' AS write",
        ] {
            assert!(!lifts_read_only(sql), "{sql}");
        }
        assert!(!may_lift_read_only("SELECT thread_id FROM t"));
    }

    #[test]
    fn calls_that_signal_backends_are_listed_with_their_literal_pid() {
        use SignalTarget::{Computed, Param, Pid};
        let signals = |sql: &str| analyze(sql).backend_signals;
        assert_eq!(signals("SELECT pg_terminate_backend(42)"), [Pid(42)]);
        assert_eq!(
            signals("SELECT pg_catalog.PG_CANCEL_BACKEND(7), pg_terminate_backend(8, 100)"),
            [Pid(7), Pid(8)]
        );
        assert_eq!(signals("SELECT pg_terminate_backend($1)"), [Param(1)]);
        assert_eq!(
            signals("SELECT pg_cancel_backend($2::int4), pg_cancel_backend($1::int2)"),
            [Param(2), Param(1)]
        );
        // `$1` is not the bound parameter where the text is not one query.
        assert_eq!(
            signals("PREPARE p(int) AS SELECT pg_terminate_backend($1)"),
            [Computed]
        );
        assert_eq!(
            signals("SELECT 1; SELECT pg_terminate_backend($1)"),
            [Computed]
        );
        assert_eq!(
            signals(
                "CREATE FUNCTION f(int) RETURNS bool BEGIN ATOMIC SELECT pg_terminate_backend($1); END"
            ),
            [Computed]
        );
        assert_eq!(
            signals("SELECT pg_cancel_backend(pid) FROM pg_stat_activity"),
            [Computed]
        );
        assert_eq!(
            signals("SELECT 1 WHERE EXISTS (SELECT pg_terminate_backend(3 + 4))"),
            [Computed]
        );
        assert_eq!(signals("SELECT pg_terminate_backend($1 + 0)"), [Computed]);
        // Where pg_query's own walk does not look.
        assert_eq!(signals("VALUES (pg_terminate_backend(5))"), [Pid(5)]);
        assert_eq!(
            signals("DECLARE c CURSOR FOR SELECT pg_cancel_backend(pid) FROM pg_stat_activity"),
            [Computed]
        );
        assert_eq!(
            signals("SELECT 1 LIMIT (SELECT count(pg_cancel_backend(6)))"),
            [Pid(6)]
        );
        assert_eq!(
            signals("ALTER TABLE t ADD CHECK (pg_terminate_backend(7))"),
            [Pid(7)]
        );
        assert_eq!(
            signals("SELECT U&\"pg_terminate\\005fbackend\"(9)"),
            [Pid(9)]
        );
        assert!(signals("SELECT pg_backend_pid()").is_empty());
        assert!(signals("SELECT 'pg_terminate_backend(1)'").is_empty());
    }

    #[test]
    fn tables_and_functions() {
        let a = analyze(
            "WITH gone AS (DELETE FROM public.orders RETURNING *) SELECT c.email FROM customers c JOIN gone ON true WHERE lower(c.name) = 'x'",
        );
        assert!(a.tables_written.contains("public.orders"), "{a:?}");
        assert!(a.tables_read.contains("customers"), "{a:?}");
        assert!(
            !a.tables_read.contains("gone"),
            "CTE names are not tables: {a:?}"
        );
        assert!(a.functions.contains("lower"));
        // Tables the summary leaves out, and quoted names without quotes.
        let a = analyze("INSERT INTO log VALUES (1) RETURNING (SELECT v FROM secrets LIMIT 1)");
        assert!(
            a.tables_read.contains("secrets") && a.tables_written.contains("log"),
            "{a:?}"
        );
        assert!(!a.tables_read.contains("log"), "{a:?}");
        let a = analyze(
            "MERGE INTO t USING crm.secrets s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.v",
        );
        assert!(a.tables_read.contains("crm.secrets"), "{a:?}");
        let a = analyze(
            "WITH secrets AS (SELECT 1 AS v) UPDATE t SET a = 1 RETURNING (SELECT v FROM secrets)",
        );
        assert!(
            !a.tables_read.contains("secrets"),
            "a CTE is not a table: {a:?}"
        );
        let a =
            analyze("SELECT * FROM \"order\" o JOIN public.\"Secrets\" s ON true, \"we\"\"ird\"");
        assert_eq!(
            a.tables_read.iter().map(String::as_str).collect::<Vec<_>>(),
            ["order", "public.Secrets", "we\"ird"]
        );
        // Calls the summary leaves out are listed too (rules match them).
        let a =
            analyze("CREATE TABLE u (n bigint DEFAULT nextval('s'), c text CHECK (lower(c) = c))");
        assert!(
            a.functions.contains("nextval") && a.functions.contains("lower"),
            "{a:?}"
        );
        assert_eq!(a.reasons, ["calls nextval"]);
        let a = analyze("DECLARE c SCROLL CURSOR FOR SELECT c.email FROM shop.customers c");
        assert!(a.tables_read.contains("shop.customers"), "{a:?}");
        let a = analyze("COPY shop.customers FROM STDIN");
        assert!(a.tables_written.contains("shop.customers"), "{a:?}");
        let a = analyze("UPDATE t SET a = (SELECT max(b) FROM u)");
        assert!(
            a.tables_written.contains("t") && a.tables_read.contains("u"),
            "{a:?}"
        );
    }

    #[test]
    fn a_cursor_whose_query_has_a_computed_type_modifier_is_not_deparsed() {
        // Found by fuzzing: libpg_query's deparser asserts on such a type
        // modifier (the process aborts where its assertions are on), and
        // PostgreSQL refuses it when the statement runs anyway.
        let a = analyze(
            "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT pg_read_f(pg_bad(5))$2; FETCH ALL FROM c",
        );
        assert_eq!(a.class, None, "{a:?}");
        assert!(
            a.parse_error
                .as_deref()
                .is_some_and(|e| e.contains("type modifiers must be simple constants")),
            "{a:?}"
        );
        // Simple modifiers are deparsed and analysed as before.
        let a = analyze("DECLARE c CURSOR FOR SELECT numeric(10, 2) '1.5' FROM t");
        assert!(a.tables_read.contains("t"), "{a:?}");
    }

    #[test]
    fn unparsable_text_says_why() {
        let a = analyze("SELEC 1");
        assert_eq!(a.class, None);
        assert!(
            a.parse_error
                .as_deref()
                .unwrap_or("")
                .contains("syntax error"),
            "{a:?}"
        );
        assert_eq!(analyze("SELECT 1\0; DROP TABLE t").class, None);
    }

    #[test]
    fn column_references() {
        let r = column_refs("SELECT upper(c.email) AS x, row_to_json(o) FROM public.customers c JOIN orders o ON true").expect("parses");
        assert!(r.names.contains("email") && r.names.contains("o"), "{r:?}");
        assert!(!r.star);
        assert!(
            r.relations
                .contains(&("public.customers".into(), Some("c".into()))),
            "{r:?}"
        );
        assert!(column_refs("SELECT * FROM t").expect("parses").star);
        assert!(
            !column_refs("SELECT count(*) FROM t").expect("parses").star,
            "count(*) reads no column"
        );
        assert!(column_refs("COPY t TO STDOUT").expect("parses").copy_out);
        assert!(column_refs("SELEC").is_none());
    }

    #[test]
    fn statements_defining_and_using_other_statements_results() {
        let r = |sql: &str| column_refs(sql).expect("parses");
        let p = r("PREPARE Leak (int) AS SELECT upper(email) FROM t WHERE id = $1");
        assert_eq!(p.defines, ["statement:leak"]);
        assert!(
            p.names.contains("email"),
            "the prepared query is walked: {p:?}"
        );
        assert_eq!(r("EXECUTE leak(1)").uses, ["statement:leak"]);
        assert_eq!(
            r("EXPLAIN ANALYZE EXECUTE leak(1)").uses,
            ["statement:leak"]
        );
        let d = r("DECLARE \"C1\" NO SCROLL CURSOR WITH HOLD FOR SELECT email FROM t");
        assert_eq!(d.defines, ["cursor:C1"]);
        for fetch in [
            "FETCH ALL FROM \"C1\"",
            "FETCH 10 \"C1\"",
            "FETCH NEXT IN \"C1\"",
        ] {
            assert_eq!(r(fetch).uses, ["cursor:C1"], "{fetch}");
        }
        assert!(
            r("MOVE ALL IN \"C1\"").uses.is_empty(),
            "MOVE returns no rows"
        );
        let both = r("DECLARE c CURSOR FOR SELECT 1; FETCH ALL FROM c");
        assert_eq!(
            (both.defines, both.uses),
            (vec!["cursor:c".to_string()], vec!["cursor:c".to_string()])
        );
        assert!(r("SELECT 1").defines.is_empty() && r("SELECT 1").uses.is_empty());
    }
}

#[cfg(test)]
mod summary_coverage {
    /// The analysis takes SELECT's and DML's calls and tables from
    /// libpg_query's summary (the whole tree is walked only for other
    /// kinds, and for RETURNING, COPY's WHERE, MERGE's source); this holds
    /// it to listing every call and table of these forms that the walk of
    /// the whole tree finds, so that a new version of the parser that
    /// lists fewer fails here rather than letting them past table and
    /// function rules.
    #[test]
    fn the_summary_lists_every_call_and_table_of_queries_and_dml() {
        let stmts = [
            "SELECT 1 ORDER BY f1()",
            "SELECT 1 GROUP BY GROUPING SETS ((f2()))",
            "SELECT sum(x) OVER (PARTITION BY f3()) FROM t",
            "SELECT * FROM t, LATERAL (SELECT f4()) s",
            "SELECT * FROM t TABLESAMPLE bernoulli (f5())",
            "SELECT * FROM ROWS FROM (f6(), f7()) AS x",
            "SELECT * FROM XMLTABLE('/a' PASSING f8() COLUMNS a int PATH f9())",
            "SELECT * FROM JSON_TABLE(f10(), '$' COLUMNS (a int PATH '$.a'))",
            "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = f11() WHERE f12()",
            "INSERT INTO t SELECT f13()",
            "UPDATE t SET a = 1 FROM u WHERE f14()",
            "DELETE FROM t USING u WHERE f15()",
            "WITH RECURSIVE r AS (SELECT f16() UNION ALL SELECT f17() FROM r) SELECT * FROM r",
            "CALL p(f18())",
            "EXPLAIN ANALYZE SELECT f19()",
            "CREATE TABLE x AS SELECT f20()",
            "SELECT f21() INTO y",
            "SELECT * FROM t WHERE a = ANY (ARRAY[f22()])",
            "SELECT CASE WHEN f23() THEN f24() ELSE f25() END",
            "SELECT (f26()).x",
            "SELECT ARRAY(SELECT f27())",
            "SELECT EXISTS (SELECT f28())",
            "SELECT f29() FILTER (WHERE f30()) FROM t",
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY f31()) FROM t",
            "SELECT * FROM t FOR UPDATE OF t SKIP LOCKED LIMIT f32() OFFSET f33()",
            "SELECT DISTINCT ON (f34()) a FROM t",
            "SELECT a FROM t GROUP BY a HAVING f35() > 0",
            "SELECT a FROM t WINDOW w AS (ORDER BY f36())",
            "VALUES (f37())",
            "SELECT * FROM (VALUES (f38())) v",
            "INSERT INTO t DEFAULT VALUES RETURNING f39()",
            "MERGE INTO t USING u ON f40() WHEN MATCHED THEN UPDATE SET a = f41() WHEN NOT MATCHED THEN INSERT VALUES (f42())",
            "SELECT COALESCE(f43(), NULLIF(f44(), 1), GREATEST(f45()))",
            "SELECT CAST(f46() AS int), f47()::text, x IS DISTINCT FROM f48()",
            "SELECT xmlelement(name a, f49())",
            "SELECT f50() COLLATE \"C\"",
            "SELECT * FROM t WHERE (a, b) IN (SELECT f51(), 1)",
            "LOCK TABLE t",
            "SELECT JSON_OBJECT('a': f52())",
            "SELECT JSON_QUERY(f53(), '$.a')",
            "SELECT * FROM t JOIN u ON f54()",
            "TABLE t",
            "SELECT f55() AT TIME ZONE f56()",
            "SELECT f57() IS JSON",
            "SELECT MERGE_ACTION() FROM t",
            "SELECT a FROM t ORDER BY a USING <",
            "SELECT * FROM t WHERE a = (SELECT f58() LIMIT 1)",
            "SELECT row(f59())",
            "SELECT SUBSTRING(f62() FROM f63() FOR f64())",
            "SELECT TRIM(BOTH f65() FROM f66())",
            "SELECT POSITION(f67() IN f68())",
            "SELECT EXTRACT(year FROM f69())",
            "SELECT OVERLAY(f70() PLACING f71() FROM 1)",
            "SELECT f72() BETWEEN f73() AND f74()",
            "SELECT f75() LIKE f76() ESCAPE f77()",
            "UPDATE t SET (a, b) = (SELECT f78(), f79())",
            "SELECT * FROM t ORDER BY f80() NULLS FIRST FETCH FIRST 1 ROWS WITH TIES",
            "SELECT JSON_ARRAYAGG(f81() ORDER BY f82())",
            "SELECT JSON_EXISTS(f83(), '$.a' PASSING f84() AS x)",
            "SELECT JSON_VALUE(f85(), '$' DEFAULT f86() ON EMPTY)",
            "SELECT JSON_SCALAR(f87()), JSON_SERIALIZE(f88()), JSON(f89())",
            "SELECT XMLPARSE(DOCUMENT f90()), XMLSERIALIZE(CONTENT f91() AS text)",
            "SELECT XMLEXISTS(f92() PASSING f93())",
            "SELECT * FROM t WHERE a = ALL (SELECT f94())",
        ];
        for sql in stmts {
            let a = super::analyze(sql);
            let tree = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).expect(sql);
            let json = serde_json::to_value(&tree.protobuf).unwrap();
            let calls: std::collections::BTreeSet<String> =
                super::calls_in(&json).map(|(n, _)| n).collect();
            let missing: Vec<_> = calls.iter().filter(|c| !a.functions.contains(*c)).collect();
            let tables = super::tables_in(&json);
            let mt: Vec<_> = tables
                .iter()
                .filter(|t| !a.tables_read.contains(*t) && !a.tables_written.contains(*t))
                .collect();
            assert!(
                missing.is_empty() && mt.is_empty(),
                "{sql}: calls {missing:?} and tables {mt:?} not in the summary"
            );
        }
    }
}
