//! Masking: which result columns a caller sees masked, and how values are
//! rewritten. Columns are matched by where the data comes from (the table
//! and column a result column originates in), not by the name the result
//! gives it, so aliases do not dodge a mask.

use std::sync::Arc;

use gatehouse_core::model::Principal;
use gatehouse_core::policy::spec::{DetectorKind, MaskMethod, PolicySpec};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::analyze::ColumnRefs;
use crate::detect::Detectors;
use gatehouse_core::policy::json_path::JsonPath;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

#[derive(Debug, Clone)]
struct ColumnPattern {
    schema: Option<String>,
    table: String,
    column: String,
    method: MaskMethod,
}

/// The masks and detectors that apply to one caller on one connection.
#[derive(Debug)]
pub struct MaskPlan {
    columns: Vec<ColumnPattern>,
    /// Fields of JSON responses (HTTP and AWS connections).
    json_paths: Vec<(JsonPath, MaskMethod)>,
    /// Content detectors for text values, if any apply.
    pub detectors: Option<Arc<Detectors>>,
}

/// How strict a method is, to pick one when several masks apply to a
/// column: `null` > `redact` > `partial` > `hash`.
pub fn strictness(m: MaskMethod) -> u8 {
    match m {
        MaskMethod::Hash => 0,
        MaskMethod::Partial => 1,
        MaskMethod::Redact => 2,
        MaskMethod::Null => 3,
    }
}

impl MaskPlan {
    /// The plan for `principal` on `connection`; `None` when no mask or
    /// detector applies (results then pass through untouched).
    pub fn for_caller(
        spec: &PolicySpec,
        principal: &Principal,
        connection: &str,
        detectors: &dyn Fn(&[DetectorKind]) -> Arc<Detectors>,
    ) -> Option<MaskPlan> {
        let applies = |conns: &[String], except: &[String]| {
            (conns.is_empty() || conns.iter().any(|c| c == connection)) && !principal.in_any(except)
        };
        let mut columns = Vec::new();
        let mut json_paths = Vec::new();
        for m in &spec.masks {
            if !applies(&m.connections, &m.except_groups) {
                continue;
            }
            // Validated with the policy: these parse.
            json_paths.extend(
                m.json_paths
                    .iter()
                    .filter_map(|p| JsonPath::parse(p).ok())
                    .map(|p| (p, m.method)),
            );
            for c in &m.columns {
                let parts: Vec<String> = c.split('.').map(str::to_lowercase).collect();
                let (schema, table, column) = match parts.as_slice() {
                    [s, t, c] => (Some(s.clone()), t.clone(), c.clone()),
                    [t, c] => (None, t.clone(), c.clone()),
                    _ => continue,
                };
                columns.push(ColumnPattern {
                    schema,
                    table,
                    column,
                    method: m.method,
                });
            }
        }
        let mut kinds: Vec<DetectorKind> = spec
            .detectors
            .iter()
            .filter(|d| applies(&d.connections, &d.except_groups))
            .flat_map(|d| d.kinds.iter().copied())
            .collect();
        kinds.sort_by_key(|k| k.name());
        kinds.dedup();
        if columns.is_empty() && kinds.is_empty() && json_paths.is_empty() {
            return None;
        }
        Some(MaskPlan {
            columns,
            json_paths,
            detectors: (!kinds.is_empty()).then(|| detectors(&kinds)),
        })
    }

    /// The method for a table column, if a mask names it (the strictest
    /// when several do).
    pub fn method_for(&self, schema: &str, table: &str, column: &str) -> Option<MaskMethod> {
        self.columns
            .iter()
            .filter(|p| {
                p.table.eq_ignore_ascii_case(table)
                    && p.column.eq_ignore_ascii_case(column)
                    && p.schema
                        .as_deref()
                        .is_none_or(|s| s.eq_ignore_ascii_case(schema))
            })
            .map(|p| p.method)
            .max_by_key(|m| strictness(*m))
    }

    /// Masks a JSON document in place: the fields the plan's JSON paths
    /// select, then what the detectors find in string values. Returns how
    /// many values changed.
    pub fn mask_json(&self, doc: &mut serde_json::Value, hash_key: &[u8]) -> usize {
        crate::json_mask::mask_json(doc, &self.json_paths, self.detectors.as_deref(), hash_key)
    }

    /// Whether masks name columns at all (not only detectors).
    pub fn has_columns(&self) -> bool {
        !self.columns.is_empty()
    }

    /// Whether a table as a statement names it (`t` or `s.t`) may hold a
    /// masked column. An unqualified name matches any schema.
    pub(crate) fn masks_table(&self, name: &str) -> bool {
        self.masks_on(name).next().is_some()
    }

    /// Whether reading `reads` (the relations a view or a function defined
    /// in the database reads, as the proxies' catalog look-ups give them)
    /// may give data this plan masks: one is a masked table or holds
    /// planner statistics, or what is read is not known
    /// ([`crate::CALLS_FUNCTIONS`]).
    pub fn reads_masked(&self, reads: &[String]) -> bool {
        reads
            .iter()
            .any(|t| t == crate::CALLS_FUNCTIONS || holds_column_samples(t) || self.masks_table(t))
    }

    /// The column masks a table as a statement names it (`t` or `s.t`)
    /// may be under.
    fn masks_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = MaskMethod> + 'a {
        let (schema, table) = match name.rsplit_once('.') {
            Some((s, t)) => (Some(s), t),
            None => (None, name),
        };
        self.columns
            .iter()
            .filter(move |p| {
                p.table.eq_ignore_ascii_case(table)
                    && match (&p.schema, schema) {
                        (Some(ps), Some(s)) => ps.eq_ignore_ascii_case(s),
                        _ => true,
                    }
            })
            .map(|p| p.method)
    }

    /// The method for every column of a view whose definition (its
    /// references, views over views merged) is `refs`, if it reads masked
    /// data ([`Self::taints`]): the strictest of the masks on the tables
    /// it reads. Which view column carries the data is not worked out, so
    /// all of them are masked (as for PostgreSQL's views).
    pub fn method_for_view(&self, refs: &ColumnRefs) -> Option<MaskMethod> {
        if !self.taints(Some(refs)) {
            return None;
        }
        refs.relations
            .iter()
            .flat_map(|(name, _)| self.masks_on(name))
            .max_by_key(|m| strictness(*m))
    }

    /// Whether result columns computed by this statement (with no table of
    /// origin) may carry masked data: it mentions a masked column's name, a
    /// `*`, or a masked table (or its alias) as a whole row, or it reads
    /// planner statistics ([`holds_column_samples`]). `None` (the
    /// statement did not parse) counts as yes.
    pub fn taints(&self, refs: Option<&ColumnRefs>) -> bool {
        if self.columns.is_empty() {
            return false;
        }
        let Some(refs) = refs else { return true };
        if refs.relations.iter().any(|(n, _)| holds_column_samples(n)) {
            return true;
        }
        let masked_tables: Vec<&(String, Option<String>)> = refs
            .relations
            .iter()
            .filter(|(name, _)| self.masks_table(name))
            .collect();
        if masked_tables.is_empty() {
            // A masked column name on a table no mask covers is not masked
            // data; only views and functions could hide one: views report
            // their own origin, and are resolved by the data path.
            return refs
                .names
                .iter()
                .any(|n| self.columns.iter().any(|p| p.column == *n))
                && refs.relations.is_empty();
        }
        refs.star
            || refs.names.iter().any(|n| {
                self.columns.iter().any(|p| p.column == *n)
                    || masked_tables.iter().any(|(name, alias)| {
                        alias.as_deref() == Some(n.as_str())
                            || name.rsplit('.').next() == Some(n.as_str())
                    })
            })
    }

    /// Why a statement that stores data in tables must be refused, if it
    /// must: what it stores is read from masked columns (as
    /// [`Self::taints`] tells from its sources, [`ColumnRefs::stored`]), and
    /// a copy would be read back unmasked.
    pub fn refuse_store(&self, refs: &ColumnRefs) -> Option<String> {
        let stored = refs.stored.as_deref()?;
        (self.has_columns() && self.taints(Some(stored))).then(|| STORE_REFUSAL.to_string())
    }

    /// Why DDL must be refused, if it must: it renames, moves or changes a
    /// masked table (or its schema), or hangs code on it, after which the
    /// masks, which name tables and columns, would no longer find the
    /// data; or, where columns are masked, it hangs code on any table
    /// ([`ColumnRefs::attaches_code`]: it would run on unmasked sessions'
    /// writes too, [`ATTACH_REFUSAL`]).
    pub fn refuse_alter(&self, refs: &ColumnRefs) -> Option<String> {
        if let Some(name) = refs.altered.iter().find(|n| self.masks_table(n)) {
            return Some(alter_refusal(name));
        }
        if refs.attaches_code && self.has_columns() {
            return Some(ATTACH_REFUSAL.to_string());
        }
        let schema = refs.renamed_schemas.iter().find(|schema| {
            self.columns.iter().any(|p| {
                p.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(schema))
            })
        })?;
        Some(alter_refusal(&format!("the schema {schema}")))
    }

    /// Why a statement that copies data out must be refused, if it must:
    /// `COPY` streams rows in a format the masker does not rewrite.
    pub fn refuse_copy(&self, refs: Option<&ColumnRefs>) -> Option<String> {
        let refs = refs?;
        if !refs.copy_out || self.columns.is_empty() && self.detectors.is_none() {
            return None;
        }
        if self.detectors.is_some() || refs.relations.iter().any(|(n, _)| self.masks_table(n)) {
            return Some(
                "COPY … TO of data under a mask or a content detector is not allowed; run a SELECT instead (its results are masked)"
                    .into(),
            );
        }
        None
    }
}

/// Whether the relation `name` (`table` or `schema.table`) is one of
/// PostgreSQL's planner statistics, or a view of them, which hold sample
/// values of every analysed column (`pg_stats.most_common_vals`,
/// `histogram_bounds`), or MariaDB's and MySQL's (`mysql.column_stats`'s
/// `min_value` and `max_value`, `information_schema.COLUMN_STATISTICS`'s
/// histograms): under column masks it counts as masked data. They are
/// known by name: the catalog records no dependency of `pg_stats` on the
/// system tables it reads (a user's view over `pg_stats` does depend on
/// it, and leads to it as to any relation).
pub fn holds_column_samples(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((schema, table)) => holds_column_samples_in(Some(schema), table),
        None => holds_column_samples_in(None, name),
    }
}

/// [`holds_column_samples`] of `table` in `schema` (`None`: unqualified).
pub fn holds_column_samples_in(schema: Option<&str>, table: &str) -> bool {
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match schema {
        Some(s) if is(s, "mysql") => is(table, "column_stats"),
        Some(s) if is(s, "information_schema") => is(table, "column_statistics"),
        Some(s) if !is(s, "pg_catalog") => false,
        _ => [
            "pg_statistic",
            "pg_statistic_ext_data",
            "pg_stats",
            "pg_stats_ext",
            "pg_stats_ext_exprs",
        ]
        .iter()
        .any(|t| is(table, t)),
    }
}

/// The text of an error, notice or warning about a statement that reads
/// masked columns: servers quote values in their messages (`invalid input
/// syntax for type integer: "alice@example.com"`, `Duplicate entry
/// 'alice@example.com1' for key …`), so every quoted part is redacted
/// (and the rest of the text after an unbalanced quote). Numbers are not
/// quoted (`date field value out of range: 150000-13-01` from
/// `make_date(salary, 13, 1)`, `requested character too large for
/// encoding: 15000000`, `invalid byte sequence for encoding "UTF8": 0xe9
/// 0x6c`), so every number outside quotes is redacted too (see
/// `push_unquoted`). The content detectors, if any, run over what is
/// left.
pub fn scrub_message(text: &str, detectors: Option<&Detectors>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['"', '\'', '`']) {
        let q = rest[i..].chars().next().unwrap_or('"');
        push_unquoted(&mut out, &rest[..i]);
        out.push(q);
        let after = &rest[i + 1..];
        match after.find(q) {
            Some(j) => {
                out.push_str(REDACTED);
                out.push(q);
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(REDACTED);
                rest = "";
            }
        }
    }
    push_unquoted(&mut out, rest);
    match detectors.and_then(|d| d.redact(&out)) {
        Some(r) => r,
        None => out,
    }
}

/// Appends `text` (a part of a message outside quotes) with every number
/// in it replaced by `[REDACTED]`. A number starts at a digit that does
/// not continue a word (`int4`, `UTF8` and `x86_64` are kept) and runs
/// over letters, digits and the `.`, `:`, `-` and `+` inside it, so that
/// a date (`2020-13-01`), a time (`25:00:00`), a range (`0..7`), an
/// exponent (`1e+20`) or a byte (`0xe9`) goes whole; the punctuation that
/// ends it (a sentence's full stop) is kept.
fn push_unquoted(out: &mut String, text: &str) {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut done = 0;
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && !(i > 0 && word(b[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i;
        let mut j = i;
        while j < b.len() && (word(b[j]) || b".:-+".contains(&b[j])) {
            j += 1;
            if word(b[j - 1]) {
                end = j;
            }
        }
        // All ASCII up to here: the slices fall on character boundaries.
        out.push_str(&text[done..i]);
        out.push_str(REDACTED);
        done = end;
        i = end;
    }
    out.push_str(&text[done..]);
}

/// Why a statement that stores masked data is refused.
pub const STORE_REFUSAL: &str = "storing data read from masked columns in a table is not allowed where those columns are masked (INSERT … SELECT, UPDATE … SET, CREATE TABLE … AS, SELECT … INTO): the copy would be read back unmasked; run a SELECT instead (its results are masked)";

/// Why hanging code on any table is refused where columns are masked.
pub const ATTACH_REFUSAL: &str = "creating a trigger, rule, row-level security policy, event trigger or scheduled event is not allowed where columns are masked: its code runs on every session's reads or writes, or by itself, where it could copy masked data into a table that is read back unmasked; ask someone whose columns are not masked to create it";

/// Why DDL on `what` (a masked relation, or a schema a mask names) is
/// refused.
pub fn alter_refusal(what: &str) -> String {
    format!(
        "changing {what}, which holds masked columns, is not allowed where they are masked (ALTER, RENAME, SET SCHEMA, CREATE TRIGGER, RULE or POLICY): renamed or moved columns, or code run on its rows, would escape the masks"
    )
}

/// Rewrites one text value; `None` means SQL NULL.
pub fn mask_text(method: MaskMethod, value: &str, hash_key: &[u8]) -> Option<String> {
    match method {
        MaskMethod::Null => None,
        MaskMethod::Redact => Some(REDACTED.into()),
        MaskMethod::Partial => {
            // Keep the last four characters; one pass, one allocation.
            let n = value.chars().count();
            if n <= 4 {
                return Some("*".repeat(n.max(4)));
            }
            let keep_from = value.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
            let tail = &value[keep_from..];
            let mut out = String::with_capacity(n - 4 + tail.len());
            out.extend(std::iter::repeat_n('*', n - 4));
            out.push_str(tail);
            Some(out)
        }
        MaskMethod::Hash => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(hash_key) else {
                return None;
            };
            mac.update(value.as_bytes());
            let tag = mac.finalize().into_bytes();
            Some(format!("h_{}", hex_lower(&tag[..12])))
        }
    }
}

fn hex_lower(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::column_refs;
    use crate::test_support::who;

    #[test]
    fn messages_lose_quoted_values_and_numbers_but_keep_words() {
        for (message, scrubbed) in [
            (
                "invalid input syntax for type integer: \"alice@example.com\"",
                "invalid input syntax for type integer: \"[REDACTED]\"",
            ),
            (
                "date field value out of range: 150000-13-01",
                "date field value out of range: [REDACTED]",
            ),
            (
                "time field value out of range: 150000:00:00",
                "time field value out of range: [REDACTED]",
            ),
            (
                "requested character too large for encoding: 15000000",
                "requested character too large for encoding: [REDACTED]",
            ),
            (
                "index 150000 out of valid range, 0..7",
                "index [REDACTED] out of valid range, [REDACTED]",
            ),
            (
                "invalid byte sequence for encoding \"UTF8\": 0xe9 0x6c 0x6c",
                "invalid byte sequence for encoding \"[REDACTED]\": [REDACTED] [REDACTED] [REDACTED]",
            ),
            (
                "timestamp out of range: 1e+20.",
                "timestamp out of range: [REDACTED].",
            ),
            (
                "Duplicate entry 'ann@example.com1' for key 'group_key'",
                "Duplicate entry '[REDACTED]' for key '[REDACTED]'",
            ),
            // Words with digits in them are not numbers.
            (
                "operator does not exist: int4 = x86_64, UTF8 (-12.5)",
                "operator does not exist: int4 = x86_64, UTF8 (-[REDACTED])",
            ),
            ("division by zero", "division by zero"),
            ("ünïcode 42 ü", "ünïcode [REDACTED] ü"),
        ] {
            assert_eq!(scrub_message(message, None), scrubbed, "{message}");
        }
    }

    fn plan(groups: &[&str]) -> Option<MaskPlan> {
        let spec: PolicySpec = toml::from_str(
            r#"
[[masks]]
connections = ["shop"]
columns = ["public.customers.email", "customers.card_number"]
method = "partial"
except_groups = ["support-leads"]
[[masks]]
columns = ["public.customers.email"]
method = "hash"
"#,
        )
        .expect("toml");
        MaskPlan::for_caller(&spec, &who(groups), "shop", &|k| {
            Arc::new(Detectors::new(k))
        })
    }

    #[test]
    fn storing_masked_data_and_changing_masked_tables_are_refused() {
        let p = plan(&["agents"]).expect("masks apply");
        let store = |sql: &str| p.refuse_store(&column_refs(sql).expect("parses")).is_some();
        for sql in [
            "INSERT INTO t SELECT id, email FROM customers",
            "INSERT INTO t SELECT * FROM public.customers",
            "INSERT INTO t VALUES ((SELECT email FROM customers LIMIT 1))",
            "INSERT INTO t SELECT row_to_json(c) FROM customers c",
            "UPDATE t SET a = (SELECT upper(email) FROM customers LIMIT 1)",
            "UPDATE customers SET name = email",
            "UPDATE t SET a = c.email FROM customers c WHERE c.id = t.id",
            "INSERT INTO customers (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = customers.email",
            "CREATE TABLE t AS SELECT email FROM customers",
            "CREATE TABLE t AS TABLE customers",
            "CREATE MATERIALIZED VIEW m AS SELECT email FROM customers",
            "SELECT email INTO t FROM customers",
            "WITH x AS (SELECT email FROM customers) INSERT INTO t SELECT * FROM x",
            "WITH x AS (SELECT email FROM customers), w AS (INSERT INTO t SELECT * FROM x RETURNING 1) SELECT 1",
            "MERGE INTO t USING customers c ON t.id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.email)",
            "PREPARE p AS INSERT INTO t SELECT email FROM customers",
        ] {
            assert!(store(sql), "{sql}");
        }
        for sql in [
            "SELECT email FROM customers",
            "INSERT INTO t VALUES (1, 'x')",
            "INSERT INTO customers (id, email) VALUES (1, 'x')",
            "INSERT INTO t SELECT id, 'x' FROM customers",
            "UPDATE customers SET name = 'x' WHERE email = 'a@example.com'",
            "UPDATE customers SET email = 'x' RETURNING email",
            "DELETE FROM customers WHERE email = 'a@example.com'",
            "INSERT INTO t SELECT id, email FROM orders",
            "CREATE VIEW v AS SELECT email FROM customers",
        ] {
            assert!(!store(sql), "{sql}");
        }
        let alter = |sql: &str| p.refuse_alter(&column_refs(sql).expect("parses"));
        for sql in [
            "ALTER TABLE customers RENAME COLUMN email TO e",
            "ALTER TABLE public.customers RENAME TO c2",
            "ALTER TABLE customers SET SCHEMA other",
            "ALTER TABLE customers ADD COLUMN e2 text GENERATED ALWAYS AS (email) STORED",
            "CREATE TRIGGER copy AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION f()",
            "ALTER SCHEMA public RENAME TO p2",
        ] {
            assert!(alter(sql).is_some(), "{sql}");
        }
        // Code hung on any table runs on other sessions' writes and reads.
        for sql in [
            "CREATE TRIGGER copy AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f()",
            "SELECT 1; CREATE TRIGGER t BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f()",
            "CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO kept SELECT email FROM customers",
            "CREATE POLICY p ON orders USING (f(id))",
            "CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION f()",
        ] {
            assert!(
                alter(sql).is_some_and(|m| m == ATTACH_REFUSAL),
                "{sql}: {:?}",
                alter(sql)
            );
        }
        assert!(
            alter("ALTER SCHEMA public RENAME TO p2")
                .is_some_and(|m| m.contains("the schema public")),
        );
        for sql in [
            "ALTER TABLE orders RENAME COLUMN email TO e",
            "ALTER SCHEMA crm RENAME TO c2",
            "CREATE INDEX ON customers (email)",
        ] {
            assert!(alter(sql).is_none(), "{sql}");
        }
        // MySQL's statements likewise.
        let store_mysql = |sql: &str| {
            p.refuse_store(&crate::analyze_mysql::column_refs_mysql(sql).expect("parses"))
                .is_some()
        };
        for sql in [
            "INSERT INTO t SELECT id, email FROM customers",
            "REPLACE INTO t SELECT * FROM customers",
            "INSERT INTO t SET a = (SELECT email FROM customers LIMIT 1)",
            "INSERT INTO customers (id) VALUES (1) ON DUPLICATE KEY UPDATE name = email",
            "UPDATE t JOIN customers c ON c.id = t.id SET t.a = c.email",
            "UPDATE customers SET name = email",
            "CREATE TABLE t AS SELECT email FROM customers",
            "CREATE TABLE t SELECT * FROM customers",
            "SET @e = (SELECT email FROM customers LIMIT 1)",
            "SELECT email INTO @e FROM customers LIMIT 1",
            "SELECT @e := email FROM customers LIMIT 1",
            "INSERT INTO t WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        ] {
            assert!(store_mysql(sql), "{sql}");
        }
        for sql in [
            "SELECT email FROM customers",
            "INSERT INTO t VALUES (1, 'x')",
            "INSERT INTO t SELECT id, 'x' FROM customers",
            "UPDATE customers SET name = 'x' WHERE email = 'a@example.com'",
            "SET @e = 'x'",
        ] {
            assert!(!store_mysql(sql), "{sql}");
        }
        for sql in [
            "ALTER TABLE customers RENAME COLUMN email TO e",
            "RENAME TABLE customers TO c2",
            "CREATE TRIGGER c AFTER INSERT ON customers FOR EACH ROW INSERT INTO t VALUES (NEW.email)",
            "CREATE TRIGGER c AFTER INSERT ON orders FOR EACH ROW INSERT INTO t SELECT email FROM customers",
            "CREATE EVENT e ON SCHEDULE EVERY 1 MINUTE DO INSERT INTO t SELECT email FROM customers",
        ] {
            let refs = crate::analyze_mysql::column_refs_mysql(sql).expect("parses");
            assert!(p.refuse_alter(&refs).is_some(), "{sql}");
        }
        // A column not masked for this caller may be copied.
        let lead = plan(&["support-leads"]).expect("the hash mask has no exception");
        assert!(
            lead.refuse_store(
                &column_refs("INSERT INTO t SELECT card_number FROM crm.customers")
                    .expect("parses")
            )
            .is_none()
        );
    }

    #[test]
    fn columns_by_origin_and_groups() {
        let p = plan(&["agents"]).expect("masks apply");
        assert_eq!(
            p.method_for("public", "customers", "email"),
            Some(MaskMethod::Partial),
            "the strictest of two"
        );
        assert_eq!(
            p.method_for("crm", "customers", "card_number"),
            Some(MaskMethod::Partial),
            "no schema: any"
        );
        assert_eq!(p.method_for("crm", "customers", "email"), None);
        assert_eq!(p.method_for("public", "customers", "name"), None);
        let lead = plan(&["support-leads"]).expect("the hash mask has no exception");
        assert_eq!(
            lead.method_for("public", "customers", "email"),
            Some(MaskMethod::Hash)
        );
        assert_eq!(lead.method_for("public", "customers", "card_number"), None);
    }

    #[test]
    fn computed_columns_are_tainted_by_masked_data() {
        let p = plan(&[]).expect("masks apply");
        let t = |sql: &str| p.taints(column_refs(sql).as_ref());
        assert!(t("SELECT upper(email) FROM customers"));
        assert!(t("SELECT email || '' FROM public.customers"));
        assert!(t("SELECT row_to_json(c) FROM customers c"));
        assert!(t("SELECT to_jsonb(customers) FROM customers"));
        assert!(t("SELECT json_agg(c.*) FROM customers c"));
        assert!(t("SELECT string_agg(x.email, ',') FROM customers x"));
        assert!(t("SELECT (c).email FROM customers c"));
        assert!(t("SELECT c FROM customers c"), "a whole row");
        assert!(t("SELECT (customers) FROM customers"), "a whole row");
        assert!(t("SELECT customers FROM public.customers"), "a whole row");
        assert!(!t("SELECT count(*) FROM customers"));
        assert!(!t("SELECT upper(name) FROM customers"));
        assert!(
            !t("SELECT upper(email) FROM staff"),
            "another table's email"
        );
        assert!(t("SELEC garbage"), "unparsed counts as tainted");
    }

    #[test]
    fn a_view_reading_a_masked_column_has_all_its_columns_masked_with_the_strictest() {
        let p = plan(&[]).expect("masks apply");
        let view = |definition: &str| {
            p.method_for_view(&crate::analyze_mysql::column_refs_mysql(definition).expect("parses"))
        };
        // Both masks on customers apply: partial beats hash.
        assert_eq!(
            view("select `public`.`customers`.`email` AS `contact` from `public`.`customers`"),
            Some(MaskMethod::Partial)
        );
        assert_eq!(
            view(
                "select `c`.`id` AS `id`, upper(`c`.`card_number`) AS `x` from `crm`.`customers` `c`"
            ),
            Some(MaskMethod::Partial)
        );
        assert_eq!(
            view("select `public`.`customers`.`id` AS `id` from `public`.`customers`"),
            None,
            "reads no masked column"
        );
        assert_eq!(
            view("select `o`.`email` AS `e` from `public`.`orders` `o`"),
            None
        );
    }

    #[test]
    fn methods() {
        let k = [7u8; 32];
        assert_eq!(
            mask_text(MaskMethod::Redact, "a@b.c", &k).as_deref(),
            Some(REDACTED)
        );
        assert_eq!(mask_text(MaskMethod::Null, "x", &k), None);
        assert_eq!(
            mask_text(MaskMethod::Partial, "4111111111111111", &k).as_deref(),
            Some("************1111")
        );
        assert_eq!(
            mask_text(MaskMethod::Partial, "abc", &k).as_deref(),
            Some("****")
        );
        assert_eq!(
            mask_text(MaskMethod::Partial, "ééééé5", &k).as_deref(),
            Some("**ééé5"),
            "characters, not bytes"
        );
        let a = mask_text(MaskMethod::Hash, "alice@example.com", &k);
        assert_eq!(
            a,
            mask_text(MaskMethod::Hash, "alice@example.com", &k),
            "deterministic"
        );
        assert_ne!(a, mask_text(MaskMethod::Hash, "bob@example.com", &k));
        assert_ne!(
            a,
            mask_text(MaskMethod::Hash, "alice@example.com", &[8u8; 32]),
            "keyed"
        );
        assert!(a.unwrap_or_default().starts_with("h_"));
    }
}
