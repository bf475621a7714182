//! What a function (or procedure) defined in a PostgreSQL database reads
//! and does, from its source as the catalog gives it: the relations its
//! statements name, the functions it calls, whether it stores or sends
//! data on, or that this cannot be known.
//!
//! Under column masks a call of such a function may return masked data
//! read inside it, or keep what it is given where it is read back
//! unmasked. Functions written in SQL or PL/pgSQL are read here so that
//! only those that do either are treated so; any other language, a source
//! that does not parse, dynamic SQL (PL/pgSQL's `EXECUTE`) and the
//! built-ins that run a query given as text make the function opaque, and
//! the proxies treat an opaque function as one that does both (fail
//! closed).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::analyze::{self, Class, KEEPING_FUNCTIONS, calls_in, objects, operators_of, tables_in};
use crate::rules::QUERY_TEXT_FUNCTIONS;

/// Sources longer than this are not read: the function counts as opaque.
pub const MAX_SOURCE: usize = 256 * 1024;

/// PL/pgSQL bodies with more expressions than this are not read.
const MAX_EXPRESSIONS: usize = 4096;

/// What a function's source shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Routine {
    /// The relations its statements name (read or written), as written
    /// (`name` or `schema.name`), without the names of its CTEs.
    pub relations: BTreeSet<String>,
    /// The functions it calls, unqualified and lower-case, and the
    /// operators it uses ([`operator_key`]).
    pub calls: BTreeSet<String>,
    /// It writes to tables, changes definitions, or gives data to one of
    /// [`KEEPING_FUNCTIONS`] (a setting, a notification, a large object).
    pub stores: bool,
    /// It raises errors or notices in words of its own (PL/pgSQL's
    /// `RAISE` and `ASSERT`), which may carry any value it has.
    pub reports: bool,
    /// Why what it does cannot be known, if it cannot.
    pub opaque: Option<String>,
    /// It may run statements Gatehouse does not see, by itself (SQL built
    /// at run time, a `DO` block, code in a language Gatehouse does not
    /// read other than compiled code, or a source that cannot be read): it
    /// could read any table and store what it reads anywhere. Compiled
    /// code (`c`, `internal`), which only a superuser installs, and the
    /// built-ins that run a query given as text (which only read) are
    /// opaque without this.
    pub runs_any_sql: bool,
}

impl Routine {
    /// A function whose doings cannot be known (`why`), which may run any
    /// statement ([`Self::runs_any_sql`]).
    pub fn opaque(why: impl Into<String>) -> Self {
        Self {
            opaque: Some(why.into()),
            runs_any_sql: true,
            ..Self::default()
        }
    }

    /// Adds what another of the function's statements does (or another
    /// function of the same name, or one it calls).
    pub fn absorb(&mut self, other: Routine) {
        self.relations.extend(other.relations);
        self.calls.extend(other.calls);
        self.stores |= other.stores;
        self.reports |= other.reports;
        self.runs_any_sql |= other.runs_any_sql;
        if self.opaque.is_none() {
            self.opaque = other.opaque;
        }
    }

    /// Notes the calls that make a function opaque or storing, whatever
    /// else it does.
    fn note_calls(&mut self) {
        if let Some(f) = self
            .calls
            .iter()
            .find(|f| QUERY_TEXT_FUNCTIONS.contains(&f.as_str()))
            && self.opaque.is_none()
        {
            self.opaque = Some(format!("it calls {f}, which runs a query given as text"));
        }
        self.stores |= self
            .calls
            .iter()
            .any(|f| KEEPING_FUNCTIONS.contains(&f.as_str()));
    }
}

/// Reads a function's source. `language` is its language's name
/// (`pg_language.lanname`); `source` its `prosrc`; `definition` its whole
/// `CREATE FUNCTION` as `pg_get_functiondef` writes it (needed for
/// PL/pgSQL, and for SQL functions whose body is SQL-standard, `BEGIN
/// ATOMIC … END` or `RETURN …`, which have no `prosrc`).
pub fn routine(language: &str, source: Option<&str>, definition: Option<&str>) -> Routine {
    let too_long = |t: Option<&str>| t.is_some_and(|t| t.len() > MAX_SOURCE || t.contains('\0'));
    if too_long(source) || too_long(definition) {
        return Routine::opaque("its source is too long to read");
    }
    let mut r = match language {
        "sql" => match (source.filter(|s| !s.trim().is_empty()), definition) {
            (Some(source), _) => statements(source),
            (None, Some(definition)) => standard_body(definition),
            (None, None) => Routine::opaque("its source could not be read"),
        },
        "plpgsql" => match definition {
            Some(definition) => plpgsql(definition),
            None => Routine::opaque("its source could not be read"),
        },
        "c" | "internal" => Routine {
            opaque: Some("it is compiled code, which Gatehouse does not read".into()),
            ..Routine::default()
        },
        other => Routine::opaque(format!(
            "it is written in {other}, which Gatehouse does not read"
        )),
    };
    r.note_calls();
    r
}

/// What a PL/pgSQL trigger function (`RETURNS trigger`) whose body is
/// `source` (its `prosrc`) reads and does, as [`routine`] tells it. The
/// body is read inside a function that declares what PostgreSQL gives a
/// trigger (`NEW`, `OLD`, `TG_OP`, `TG_ARGV`…): libpg_query's output for a
/// function declared as a trigger does not parse.
pub fn trigger_routine(source: Option<&str>) -> Routine {
    let Some(source) = source else {
        return Routine::opaque("its source could not be read");
    };
    if source.len() > MAX_SOURCE {
        return Routine::opaque("its source is too long to read");
    }
    // A dollar quote the body does not hold.
    let Some(tag) = (0..64)
        .map(|n| format!("$gh_trigger_{n}$"))
        .find(|t| !source.contains(t.as_str()))
    else {
        return Routine::opaque("its source could not be read");
    };
    let body = source.trim_end();
    let body = body.strip_suffix(';').unwrap_or(body);
    let definition = format!(
        "CREATE FUNCTION gatehouse_trigger() RETURNS record LANGUAGE plpgsql AS {tag}
DECLARE new record; old record; tg_name name; tg_when text; tg_level text; tg_op text;
  tg_relid oid; tg_relname name; tg_table_name name; tg_table_schema name;
  tg_nargs integer; tg_argv text[];
BEGIN
{body};
END {tag}"
    );
    routine("plpgsql", None, Some(&definition))
}

/// One or more SQL statements (a SQL function's `prosrc`, or one of a
/// PL/pgSQL function's).
fn statements(sql: &str) -> Routine {
    let a = analyze::analyze(sql);
    let Some(class) = a.class else {
        return Routine::opaque("one of its statements does not parse");
    };
    if a.unseen {
        return Routine::opaque("it runs a DO block");
    }
    let mut r = Routine {
        relations: a.tables_read.into_iter().chain(a.tables_written).collect(),
        calls: a.functions,
        stores: class >= Class::Write,
        reports: false,
        opaque: None,
        runs_any_sql: false,
    };
    // The summary may leave some out (a RETURNING list's, a VALUES
    // list's): the tree is walked as well.
    if let Ok(tree) = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
        && let Ok(json) = serde_json::to_value(&tree.protobuf)
    {
        walk_tree(&json, &mut r);
    }
    r
}

/// The key under which the function an operator runs is looked up with
/// functions ([`Routine::calls`], `Engine::to_resolve`): the
/// operator's name after a NUL, which no function's name has.
pub fn operator_key(operator: &str) -> String {
    format!("\0{operator}")
}

/// The key under which the functions PostgreSQL runs without a call in
/// the statement are looked up with the functions it calls: those of casts
/// (`CREATE CAST … WITH FUNCTION`, run by `x::t` and by implicit casts
/// alike) and of domains' constraints (run by a cast to the domain), as
/// the database defines them. Every statement counts as calling them.
pub const IMPLICIT_CALLS: &str = "\u{1}implicit";

/// The key under which what PostgreSQL runs by itself when a statement
/// writes `table` is looked up with the functions the statement calls:
/// the table's triggers (and their `WHEN` conditions), rules, column
/// defaults and generated columns, and `CHECK` constraints, and those of
/// the tables the write reaches (partitions and inheritance children, the
/// tables under an updatable view, rows a cascading foreign key changes).
/// What a write runs puts what it reads in the row written, or elsewhere.
pub fn writes_key(table: &str) -> String {
    format!("{WRITES}{table}")
}

/// The table a key of [`writes_key`] stands for, if it is one.
pub fn written_table(key: &str) -> Option<&str> {
    key.strip_prefix(WRITES)
}

const WRITES: &str = "\u{1}writes ";

/// The operator a key of [`operator_key`] stands for, if it is one.
pub fn operator_of(key: &str) -> Option<&str> {
    key.strip_prefix('\0')
}

/// Adds the relations, calls and operators a parse tree's JSON names, and
/// whether it writes.
fn walk_tree(json: &Value, r: &mut Routine) {
    r.relations.extend(tables_in(json));
    r.calls.extend(calls_in(json).map(|(name, _)| name));
    for m in objects(json) {
        for (kind, node) in m {
            r.calls
                .extend(operators_of(kind, node).map(|o| operator_key(&o)));
        }
    }
    r.stores |= objects(json).any(|m| {
        m.contains_key("InsertStmt")
            || m.contains_key("UpdateStmt")
            || m.contains_key("DeleteStmt")
            || m.contains_key("MergeStmt")
            || m.contains_key("CreateTableAsStmt")
            || m.get("SelectStmt")
                .and_then(|s| s.get("into_clause"))
                .is_some_and(|c| !c.is_null())
    });
}

/// A SQL function whose body is SQL-standard (`BEGIN ATOMIC … END`,
/// `RETURN …`): the body is in the definition's parse tree.
fn standard_body(definition: &str) -> Routine {
    let parsed = pg_query::parse(definition, pg_query::ParserOptions::DEFAULT)
        .ok()
        .and_then(|tree| serde_json::to_value(&tree.protobuf).ok());
    let Some(json) = parsed else {
        return Routine::opaque("its definition does not parse");
    };
    let body = objects(&json).find_map(|m| {
        m.get("CreateFunctionStmt")
            .and_then(|c| c.get("sql_body"))
            .filter(|b| !b.is_null())
    });
    let Some(body) = body else {
        return Routine::opaque("its body could not be found in its definition");
    };
    let mut r = Routine::default();
    walk_tree(body, &mut r);
    r
}

/// A PL/pgSQL function: every SQL expression and statement in it (its
/// variables' defaults and cursors' queries too), parsed in the mode
/// PL/pgSQL parses it in. Dynamic SQL makes it opaque.
fn plpgsql(definition: &str) -> Routine {
    let json = match pg_query::parse_plpgsql(definition) {
        Ok(json) => json,
        Err(e) => return Routine::opaque(format!("its body does not parse ({e})")),
    };
    let mut r = Routine::default();
    let mut expressions = 0usize;
    for m in objects(&json) {
        if m.keys().any(|k| k.starts_with("PLpgSQL_stmt_dyn"))
            || m.get("dynquery").is_some_and(|q| !q.is_null())
        {
            return Routine::opaque("it runs SQL built at run time (EXECUTE)");
        }
        r.reports |= m.contains_key("PLpgSQL_stmt_raise") || m.contains_key("PLpgSQL_stmt_assert");
        let Some(expr) = m.get("PLpgSQL_expr") else {
            continue;
        };
        expressions += 1;
        if expressions > MAX_EXPRESSIONS {
            return Routine::opaque("its body is too large to read");
        }
        let Some(query) = expr.get("query").and_then(Value::as_str) else {
            continue;
        };
        let mode = expr.get("parseMode").and_then(Value::as_i64).unwrap_or(0);
        let part = if mode == 0 {
            statements(query)
        } else {
            expression(query, mode)
        };
        r.absorb(part);
        if r.opaque.is_some() {
            return r;
        }
    }
    r
}

/// A PL/pgSQL expression or assignment (`parseMode` 2 to 5: PostgreSQL's
/// `RawParseMode`), which cannot store data by itself (a data-modifying
/// `WITH` is not an expression).
fn expression(query: &str, mode: i64) -> Routine {
    let options = match mode {
        2 => pg_query::ParserOptions::PLPGSQL_EXPR,
        3 => pg_query::ParserOptions::PLPGSQL_ASSIGN1,
        4 => pg_query::ParserOptions::PLPGSQL_ASSIGN2,
        5 => pg_query::ParserOptions::PLPGSQL_ASSIGN3,
        _ => return Routine::opaque(format!("an expression of an unknown kind ({mode})")),
    };
    let parsed = pg_query::parse(query, options)
        .ok()
        .and_then(|tree| serde_json::to_value(&tree.protobuf).ok());
    let Some(json) = parsed else {
        return Routine::opaque("one of its expressions does not parse");
    };
    let mut r = Routine::default();
    walk_tree(&json, &mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_sql_function_reads_what_its_statements_name() {
        let r = routine(
            "sql",
            Some("SELECT email FROM customers c JOIN app.orders o ON o.cid = c.id WHERE c.id = $1"),
            None,
        );
        assert_eq!(r.relations, set(&["customers", "app.orders"]));
        assert!(!r.stores && r.opaque.is_none(), "{r:?}");
        let pure = routine("sql", Some("SELECT lower($1) || '!'"), None);
        assert!(pure.relations.is_empty() && !pure.stores && pure.opaque.is_none());
        assert!(pure.calls.contains("lower"));
        let writes = routine(
            "sql",
            Some("INSERT INTO log(v) VALUES ($1); SELECT 1"),
            None,
        );
        assert!(
            writes.stores && writes.relations.contains("log"),
            "{writes:?}"
        );
    }

    #[test]
    fn a_standard_body_is_read_from_the_definition() {
        let def = "CREATE OR REPLACE FUNCTION public.f(i integer)\n RETURNS text\n LANGUAGE sql\nBEGIN ATOMIC\n SELECT customers.email FROM customers WHERE (customers.id = f.i);\nEND";
        let r = routine("sql", Some(""), Some(def));
        assert_eq!(r.relations, set(&["customers"]), "{r:?}");
        assert!(!r.stores && r.opaque.is_none());
        let ret = "CREATE OR REPLACE FUNCTION public.g()\n RETURNS text\n LANGUAGE sql\nRETURN (SELECT max(secret) FROM s.t)";
        let r = routine("sql", None, Some(ret));
        assert_eq!(r.relations, set(&["s.t"]), "{r:?}");
        let ins = "CREATE OR REPLACE PROCEDURE public.p(v text)\n LANGUAGE sql\nBEGIN ATOMIC\n INSERT INTO kept (v) VALUES (p.v);\nEND";
        assert!(routine("sql", Some(""), Some(ins)).stores);
    }

    #[test]
    fn trigger_functions_are_read_with_what_a_trigger_is_given() {
        // (Read as declared, the body does not parse.)
        let def = "CREATE OR REPLACE FUNCTION public.f() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN NEW.note := 'x'; RETURN NEW; END $f$";
        assert!(routine("plpgsql", None, Some(def)).opaque.is_some());
        let stamp = trigger_routine(Some(" BEGIN NEW.note := 'x'; RETURN NEW; END; "));
        assert!(stamp.opaque.is_none(), "{stamp:?}");
        assert!(stamp.relations.is_empty() && !stamp.stores && !stamp.runs_any_sql);
        let copy = trigger_routine(Some(
            "
<<outer>>
DECLARE v text;
BEGIN
  NEW.note := (SELECT secret FROM customers LIMIT 1);
  IF TG_OP = 'DELETE' THEN
    INSERT INTO audit.log VALUES (OLD.id, TG_TABLE_NAME, TG_ARGV[0], '$gh_trigger_0$');
  END IF;
  RETURN NEW;
END",
        ));
        assert!(copy.opaque.is_none(), "{copy:?}");
        assert!(copy.stores);
        assert!(copy.relations.contains("customers") && copy.relations.contains("audit.log"));
        let dynamic = trigger_routine(Some("BEGIN EXECUTE 'DELETE FROM t'; RETURN NULL; END"));
        assert!(dynamic.runs_any_sql);
        assert!(trigger_routine(None).opaque.is_some());
    }

    #[test]
    fn plpgsql_bodies_are_read_statement_by_statement() {
        let def = r#"CREATE OR REPLACE FUNCTION public.f(p integer) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
  v text := (SELECT name FROM defaults LIMIT 1);
  c CURSOR FOR SELECT note FROM notes;
  r record;
BEGIN
  SELECT email INTO v FROM customers WHERE id = p;
  v := v || (SELECT count(*) FROM orders)::text;
  IF EXISTS (SELECT 1 FROM flags) THEN
    PERFORM helper(v);
  END IF;
  FOR r IN SELECT * FROM audit.events LOOP
    v := v || r.id;
  END LOOP;
  RETURN upper(v);
END
$fn$"#;
        let r = routine("plpgsql", None, Some(def));
        assert_eq!(r.opaque, None);
        assert_eq!(
            r.relations,
            set(&[
                "defaults",
                "notes",
                "customers",
                "orders",
                "flags",
                "audit.events"
            ]),
            "{r:?}"
        );
        assert!(
            r.calls.contains("helper") && r.calls.contains("upper"),
            "{r:?}"
        );
        assert!(!r.stores);
        assert!(!r.reports, "raises nothing of its own");
    }

    #[test]
    fn plpgsql_that_raises_its_own_messages_is_seen() {
        for body in [
            "BEGIN RAISE EXCEPTION 'bad: %', v; END",
            "BEGIN IF v IS NULL THEN RAISE NOTICE 'saw %', v; END IF; RETURN v; END",
            "BEGIN RAISE; END",
            "BEGIN ASSERT v IS NULL, v; RETURN v; END",
        ] {
            let def = format!(
                "CREATE FUNCTION f(v text) RETURNS text LANGUAGE plpgsql AS $fn${body}$fn$"
            );
            let r = routine("plpgsql", None, Some(&def));
            assert!(r.reports && r.opaque.is_none(), "{body}: {r:?}");
        }
    }

    #[test]
    fn plpgsql_that_stores_or_builds_sql_is_seen() {
        let stores = r#"CREATE FUNCTION f(v text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN INSERT INTO kept VALUES (v); END $$"#;
        assert!(routine("plpgsql", None, Some(stores)).stores);
        let notifies = r#"CREATE FUNCTION f(v text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('c', v); END $$"#;
        assert!(routine("plpgsql", None, Some(notifies)).stores);
        let setting = r#"CREATE FUNCTION f(v text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE x text; BEGIN x := set_config('a.b', v, false); END $$"#;
        assert!(routine("plpgsql", None, Some(setting)).stores);
        for dynamic in [
            "BEGIN EXECUTE 'SELECT 1'; END",
            "DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END",
            "BEGIN RETURN QUERY EXECUTE 'SELECT 1'; END",
            "DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END",
        ] {
            let def = format!(
                "CREATE FUNCTION f() RETURNS SETOF int LANGUAGE plpgsql AS $$ {dynamic} $$"
            );
            let r = routine("plpgsql", None, Some(&def));
            assert!(r.opaque.is_some() && r.runs_any_sql, "{dynamic}: {r:?}");
        }
        // A query run from text only reads.
        let xml = r#"CREATE FUNCTION f() RETURNS xml LANGUAGE plpgsql AS $$
BEGIN RETURN query_to_xml('select 1', true, true, ''); END $$"#;
        let r = routine("plpgsql", None, Some(xml));
        assert!(r.opaque.is_some() && !r.runs_any_sql, "{r:?}");
    }

    #[test]
    fn what_may_run_any_statement_by_itself_is_told_apart() {
        // Compiled code, installed by a superuser: opaque, but it runs no
        // SQL of its own (the proxy names the extensions' functions that
        // do).
        let c = routine("c", Some("uuid_generate_v4"), None);
        assert!(c.opaque.is_some() && !c.runs_any_sql, "{c:?}");
        for r in [
            routine("plpython3u", Some("plpy.execute('INSERT …')"), None),
            routine("sql", Some("DO $$ BEGIN END $$"), None),
            routine("plpgsql", None, Some("not a function")),
        ] {
            assert!(r.runs_any_sql, "{r:?}");
        }
        // And it stays so for a function that calls one.
        let mut caller = routine("sql", Some("SELECT 1"), None);
        assert!(!caller.runs_any_sql);
        caller.absorb(routine("plperlu", Some("…"), None));
        assert!(caller.runs_any_sql);
    }

    #[test]
    fn what_cannot_be_read_is_opaque() {
        assert!(
            routine("c", Some("uuid_generate_v4"), None)
                .opaque
                .is_some()
        );
        assert!(
            routine("plpython3u", Some("return 1"), None)
                .opaque
                .is_some()
        );
        assert!(
            routine("sql", Some("SELEC email FROM"), None)
                .opaque
                .is_some()
        );
        assert!(
            routine("sql", Some("DO $$ BEGIN END $$"), None)
                .opaque
                .is_some()
        );
        assert!(
            routine("plpgsql", None, Some("not a function"))
                .opaque
                .is_some()
        );
        assert!(routine("plpgsql", None, None).opaque.is_some());
        let long = format!("SELECT 1{}", " ".repeat(MAX_SOURCE));
        assert!(routine("sql", Some(&long), None).opaque.is_some());
    }
}
