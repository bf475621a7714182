//! Compiled rules and the decision.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use gatehouse_core::model::Principal;
use gatehouse_core::policy::Verdict;
use gatehouse_core::policy::json_path::JsonPath;
use gatehouse_core::policy::spec::{
    Action, PolicyError, PolicySpec, RuleSpec, parse_day, parse_hours, parse_utc_offset,
};
use serde::Serialize;

use crate::analyze::{Analysis, Class, ColumnRefs, analyze, column_refs};
use crate::analyze_mysql::{analyze_mysql, column_refs_mysql};
use crate::detect::Detectors;
use crate::mask::{MaskPlan, STORE_REFUSAL, alter_refusal, holds_column_samples};
use gatehouse_core::model::ConnectionKind;
use gatehouse_core::policy::spec::{DetectorKind, Level};

/// The SQL dialect a statement's text is in: how it is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SqlDialect {
    /// PostgreSQL, with PostgreSQL's own grammar.
    #[default]
    Postgres,
    /// MySQL and MariaDB, with sqlparser's MySQL dialect.
    Mysql,
}

impl SqlDialect {
    /// The dialect of statements on a connection of this kind, if it takes SQL.
    pub fn for_connection(kind: ConnectionKind) -> Option<SqlDialect> {
        match kind {
            ConnectionKind::Postgres => Some(SqlDialect::Postgres),
            ConnectionKind::Mysql => Some(SqlDialect::Mysql),
            ConnectionKind::Http | ConnectionKind::Aws => None,
        }
    }
}

/// A compiled condition on a JSON request body.
#[derive(Debug)]
struct JsonTest {
    path: JsonPath,
    equals: Option<String>,
    pattern: Option<regex::Regex>,
}

impl JsonTest {
    fn holds(&self, doc: &serde_json::Value) -> bool {
        self.path.select(doc).into_iter().any(|v| {
            if self.equals.is_none() && self.pattern.is_none() {
                return true;
            }
            let text = match v {
                serde_json::Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
                other => std::borrow::Cow::Owned(other.to_string()),
            };
            self.equals.as_deref().is_some_and(|e| e == text)
                || self.pattern.as_ref().is_some_and(|p| p.is_match(&text))
        })
    }
}

/// A rule ready to match.
#[derive(Debug)]
struct Rule {
    spec: RuleSpec,
    json: Vec<JsonTest>,
    pattern: Option<regex::Regex>,
    hours: Option<(u32, u32)>,
    /// Bit d set: day d (0 = Monday) matches; 0: every day.
    days: u8,
    offset_min: i32,
}

/// The outcome for one statement.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    #[serde(serialize_with = "verdict_json")]
    pub verdict: Verdict,
    /// `None` when no rule applies to the caller on the connection, so the
    /// statement was not analysed.
    #[serde(skip)]
    pub analysis: Option<Arc<Analysis>>,
    /// For an allowed statement: how its results are masked, if they are.
    #[serde(skip)]
    pub mask: Option<StatementMask>,
}

fn verdict_json<S: serde::Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("action", v.label())?;
    m.serialize_entry("rule", &v.rule())?;
    match v {
        Verdict::Allow { .. } => {}
        Verdict::Deny { message, .. } => m.serialize_entry("message", message)?,
        Verdict::Review {
            message,
            approvers,
            approvals,
            ..
        } => {
            m.serialize_entry("message", message)?;
            m.serialize_entry("approvers", approvers)?;
            m.serialize_entry("approvals", approvals)?;
        }
    }
    m.end()
}

const CACHE_SHARDS: usize = 16;
/// Analyses kept per shard; a full shard is emptied (cheap, bounded).
const CACHE_PER_SHARD: usize = 1024;
/// Texts longer than this are analysed every time, not cached.
const CACHE_MAX_TEXT: usize = 16 * 1024;

type Shard<T> = Mutex<HashMap<Arc<str>, Arc<T>>>;

/// A bounded cache of per-text results (analyses, column references).
#[derive(Debug)]
struct Cache<T> {
    shards: [Shard<T>; CACHE_SHARDS],
    hasher: std::collections::hash_map::RandomState,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl<T> Cache<T> {
    fn get(&self, sql: &str, compute: impl Fn(&str) -> T) -> Arc<T> {
        self.get_shared(sql, |s| Arc::new(compute(s)))
    }

    /// [`Self::get`] with a result that may be shared with another cache.
    fn get_shared(&self, sql: &str, compute: impl Fn(&str) -> Arc<T>) -> Arc<T> {
        if sql.len() > CACHE_MAX_TEXT {
            return compute(sql);
        }
        let shard = &self.shards[(self.hasher.hash_one(sql) as usize) % CACHE_SHARDS];
        if let Some(a) = lock(shard).get(sql) {
            return a.clone();
        }
        let a = compute(sql);
        let mut m = lock(shard);
        if m.len() >= CACHE_PER_SHARD {
            m.clear();
        }
        m.insert(Arc::from(sql), a.clone());
        a
    }
}

/// A connection and a caller's sorted groups.
type PlanKey = (String, Vec<String>);

/// What masking a statement's results needs.
#[derive(Debug, Clone)]
pub struct StatementMask {
    pub plan: Arc<MaskPlan>,
    /// Computed result columns (no table of origin) may carry masked data.
    pub taint: bool,
    /// The server's errors and notices about the statement may show masked
    /// values where quoting does not mark them: a row in a constraint's
    /// `DETAIL` (`Failing row contains (1, null, hunter2)`), JSON or XML
    /// input in the `CONTEXT` or `DETAIL`, SQL built from values in the
    /// internal query. Set where the statement names a table with masked
    /// columns or a relation leading to one, writes (triggers run), calls
    /// a function defined in the database that raises its own messages,
    /// writes or cannot be read, or could not be analysed; with
    /// [`Self::taint`], see [`Self::scrubs_errors`].
    pub scrub_errors: bool,
    /// The message itself may be anything the statement's functions chose
    /// (`RAISE EXCEPTION '%', secret` in a function given or reading masked
    /// data): withheld too, but for its SQLSTATE.
    pub withhold_message: bool,
}

impl StatementMask {
    /// Whether errors and notices about the statement are scrubbed (it
    /// reads masked data, or [`Self::scrub_errors`]): their detail, context
    /// and internal query withheld, quoted parts of the message and hint
    /// redacted.
    pub fn scrubs_errors(&self) -> bool {
        self.taint || self.scrub_errors
    }

    /// A mask that masks only columns that come from masked ones.
    pub fn plain(plan: Arc<MaskPlan>) -> Self {
        Self {
            plan,
            taint: false,
            scrub_errors: false,
            withhold_message: false,
        }
    }
}

/// The SQL-level prepared statements and cursors of one session, by name
/// (`statement:NAME`, `cursor:NAME`), with the texts that defined them, so
/// that an `EXECUTE` or `FETCH` is masked as the query whose rows it
/// returns would be ([`Engine::follow_sources`]). A name the session did
/// not define where Gatehouse saw it (a cursor a function opened, a
/// statement prepared at the protocol level, more names or definitions
/// than are kept) counts as reading masked data.
#[derive(Debug, Default)]
pub struct ResultSources {
    by_name: HashMap<String, Vec<Arc<str>>>,
    /// What the views the statement being decided names read (set by the
    /// proxy before it decides: [`Engine::to_resolve`]).
    views: ViewReads,
    /// Names defined by a statement whose computed columns were masked
    /// (it called a function defined in the database, say): what they
    /// return counts as masked data too.
    tainted: HashSet<String>,
}

/// What the views among a statement's relations read, as the database's
/// catalog says (views over views followed): for each name the statement
/// uses that is a view or a materialized view, the relations it reads as
/// `schema.name`. Names that are not views are absent. Deny and review
/// rules' `tables` conditions are met by a statement that reads or writes
/// a table through a view ([`Engine::decide_in_session`]).
#[derive(Debug, Default, Clone)]
pub struct ViewReads {
    by_name: HashMap<String, Arc<[String]>>,
    /// Why the catalog could not be asked, if it could not: then deny and
    /// review rules' table conditions count as met (fail closed).
    unknown: Option<String>,
    /// The functions the statement calls that are defined in the database
    /// rather than built in ([`Engine::to_resolve`]), with what
    /// calling each may read (the relations their sources name, and the
    /// markers [`CALLS_FUNCTIONS`] and [`STORES_DATA`]): under column
    /// masks, what they return may be masked data read inside them, and
    /// what they are given may be kept where it is read back unmasked.
    functions: HashMap<String, Arc<[String]>>,
    /// The functions could not be looked up: any call counts as one that
    /// reads masked data (fail closed).
    functions_unknown: bool,
}

impl ViewReads {
    /// Views as the catalog gave them: a name and the relations it reads.
    pub fn new(views: impl IntoIterator<Item = (String, Arc<[String]>)>) -> Self {
        Self {
            by_name: views.into_iter().filter(|(_, r)| !r.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// The catalog could not be asked (`why`).
    pub fn unknown(why: String) -> Self {
        Self {
            unknown: Some(why),
            ..Self::default()
        }
    }

    /// What a look-up answered: [`Self::new`], or [`Self::unknown`] for its
    /// error.
    pub fn of(answer: Result<HashMap<String, Arc<[String]>>, String>) -> Self {
        answer.map_or_else(Self::unknown, Self::new)
    }

    /// With what the look-up of the statement's functions answered
    /// ([`Engine::to_resolve`]): those defined in the database,
    /// with what each may read, or its error (then every call counts as
    /// one that reads masked data).
    pub fn with_functions(
        mut self,
        answer: Result<HashMap<String, Arc<[String]>>, String>,
    ) -> Self {
        match answer {
            Ok(f) => self.functions = f,
            Err(_) => self.functions_unknown = true,
        }
        self
    }

    /// Whether a function the statement calls may return data `plan` masks
    /// (any does if they could not be looked up).
    fn function_reads_masked(&self, plan: &MaskPlan) -> bool {
        self.functions_unknown
            || self
                .functions
                .values()
                .any(|reads| plan.reads_masked(reads))
    }

    /// A function (or operator, or what runs without a call) the statement
    /// calls that reads a masked table (directly, through a view or through
    /// the functions it calls) or may run statements Gatehouse does not
    /// see, so that what it returns may be masked data: its key, or `""`
    /// when the functions could not be looked up. Compiled code that cannot
    /// be read does not count (`uuid_generate_v4()`), as in
    /// [`Self::storing_function`]; what a write runs is asked there.
    ///
    /// With `unread_counts` (MySQL, whose stored functions' bodies are not
    /// read: [`CALLS_FUNCTIONS`]), what cannot be read counts too.
    /// Without `implicit`, what runs without a call (casts' and domains'
    /// functions, [`crate::routine::IMPLICIT_CALLS`]) does not count; nor do
    /// the functions in `not_called` (which the statement only creates or
    /// drops).
    fn function_returning_masked(
        &self,
        plan: &MaskPlan,
        unread_counts: bool,
        implicit: bool,
        not_called: &BTreeSet<String>,
    ) -> Option<&str> {
        if self.functions_unknown {
            return Some("");
        }
        self.functions
            .iter()
            .find(|(name, reads)| {
                crate::routine::written_table(name).is_none()
                    && (implicit || *name != crate::routine::IMPLICIT_CALLS)
                    && !not_called.contains(*name)
                    && (may_read_masked(plan, reads)
                        || unread_counts && reads.iter().any(|t| t == CALLS_FUNCTIONS))
            })
            .map(|(name, _)| name.as_str())
    }

    /// A function the statement calls that stores or sends on what it is
    /// given or reads (or may: an opaque one), and would store masked data:
    /// the statement reads masked data itself (`reads_masked`), the
    /// function is known to read a masked table, or it may run statements
    /// Gatehouse does not see ([`RUNS_ANY_SQL`]; compiled code, opaque
    /// otherwise, is not refused for what it might read). Of what a write
    /// runs by itself ([`crate::routine::writes_key`]): what reads a masked
    /// table or may run any statement (what it reads may go into the row
    /// written), and what stores, or may, when the table written leads to
    /// masked columns (it is given their values: `NEW` and `OLD`).
    /// `Some("")` when the functions could not be looked up and the
    /// statement reads masked data or writes (fail closed).
    fn storing_function(&self, plan: &MaskPlan, reads_masked: bool, writes: bool) -> Option<&str> {
        if self.functions_unknown && (reads_masked || writes) {
            return Some("");
        }
        self.functions
            .iter()
            .find(|(name, reads)| {
                let stores = reads.iter().any(|t| t == STORES_DATA);
                let reads_masked_table = may_read_masked(plan, reads);
                match crate::routine::written_table(name) {
                    Some(table) => {
                        reads_masked_table
                            || (stores && (plan.masks_table(table) || self.leads_to(table, plan)))
                    }
                    None => stores && (reads_masked || reads_masked_table),
                }
            })
            .map(|(name, _)| name.as_str())
    }

    /// Whether the function `name` may run statements Gatehouse does not
    /// see ([`RUNS_ANY_SQL`]).
    fn runs_any_sql(&self, name: &str) -> bool {
        self.functions
            .get(name)
            .is_some_and(|reads| reads.iter().any(|t| t == RUNS_ANY_SQL))
    }

    /// Whether the relation `name` leads to a table `plan` masks (every
    /// name does if the look-up failed).
    fn leads_to(&self, name: &str, plan: &MaskPlan) -> bool {
        self.unknown.is_some()
            || self
                .by_name
                .get(name)
                .is_some_and(|reads| plan.reads_masked(reads))
    }

    /// Masks the computed columns of a statement whose references are
    /// `refs` (`mask.taint`) when a relation it names leads to a masked
    /// table, or it calls a function defined in the database that may read
    /// masked data itself (or the functions it calls could not be looked
    /// up) ([`Engine::masks_through_views`]).
    ///
    /// Errors about such a statement, or one that calls a function defined
    /// in the database that may report data ([`Self::functions_may_report`]),
    /// have their details withheld ([`StatementMask::scrub_errors`]); where
    /// the statement reads masked data and calls such a function, their
    /// message too ([`StatementMask::withhold_message`]).
    fn taint(&self, refs: &ColumnRefs, mask: &mut StatementMask) {
        if self.is_empty() || !mask.plan.has_columns() {
            return;
        }
        if !mask.taint {
            mask.taint = self.function_reads_masked(&mask.plan)
                || refs
                    .relations
                    .iter()
                    .any(|(n, _)| self.leads_to(n, &mask.plan));
        }
        let reports = self.functions_may_report();
        mask.scrub_errors |= reports;
        mask.withhold_message |= mask.taint && reports;
    }

    /// Whether a function the statement calls may report data in an error
    /// or notice of its own making, or touch tables whose errors show rows
    /// (the functions could not be looked up; or one raises its own
    /// messages, writes, where triggers run, or cannot be read). Compiled
    /// code declared immutable and functions that only read do not count.
    fn functions_may_report(&self) -> bool {
        self.functions_unknown
            || self.functions.values().any(|reads| {
                reads
                    .iter()
                    .any(|t| t == REPORTS || t == STORES_DATA || t == CALLS_FUNCTIONS)
            })
    }

    fn is_empty(&self) -> bool {
        self.by_name.is_empty()
            && self.unknown.is_none()
            && self.functions.is_empty()
            && !self.functions_unknown
    }
}

impl ResultSources {
    /// What the views the next statement names read ([`ViewReads`]).
    pub fn set_views(&mut self, views: ViewReads) {
        self.views = views;
    }

    /// The next statement names no view.
    #[inline]
    pub fn clear_views(&mut self) {
        if !self.views.is_empty() {
            self.views = ViewReads::default();
        }
    }

    /// Notes that `name` (`statement:NAME` or `cursor:NAME`) was defined
    /// with `sql`: by a statement ([`Engine::follow_sources`] notes those)
    /// or at the protocol level (a named `Bind`: its portal shares the
    /// names of SQL's cursors).
    pub fn define(&mut self, name: &str, sql: &Arc<str>) {
        if !self.by_name.contains_key(name) && self.by_name.len() >= MAX_SOURCE_NAMES {
            return;
        }
        let texts = self.by_name.entry(name.to_string()).or_default();
        if texts.len() < MAX_SOURCE_TEXTS && !texts.iter().any(|t| t == sql) {
            texts.push(sql.clone());
        }
    }
}

/// What the proxy looks up before it decides a statement
/// ([`Engine::to_resolve`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToResolve {
    /// Relation names, as views ([`crate::ViewCache`]).
    pub relations: Vec<String>,
    /// Function names and operator keys ([`ViewReads::with_functions`]).
    pub functions: Vec<String>,
}

impl ToResolve {
    /// Nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.relations.is_empty() && self.functions.is_empty()
    }
}

/// Whether a function that reads `reads` (as [`ViewReads`]' functions
/// are given) reads a masked table, directly or through what it calls, or
/// may run statements Gatehouse does not see ([`RUNS_ANY_SQL`]).
fn may_read_masked(plan: &MaskPlan, reads: &[String]) -> bool {
    reads
        .iter()
        .any(|t| t == RUNS_ANY_SQL || holds_column_samples(t) || plan.masks_table(t))
}

/// How a refusal names the function `name` (a key of
/// [`ViewReads::functions`]): an operator's or what runs without a call
/// in words.
fn called(name: &str) -> String {
    match crate::routine::operator_of(name) {
        Some(op) => format!("the operator {op}"),
        None if name == crate::routine::IMPLICIT_CALLS => {
            "a cast's or a domain's function, which runs without a call".into()
        }
        None => name.to_string(),
    }
}

/// Refuses `d` under rule `masking` with `message` (and why the relations
/// could not be looked up, if they could not).
fn refuse(d: &mut Decision, views: &ViewReads, message: String) {
    let message = match &views.unknown {
        Some(why) => format!(
            "{message}; Gatehouse could not look up the relations this statement names ({why})"
        ),
        None => message,
    };
    d.verdict = Verdict::Deny {
        rule: "masking".into(),
        message,
    };
    d.mask = None;
}

/// What a view that calls a function defined in the database reads as
/// well as its relations ([`ViewReads`]): under column masks it counts as
/// leading to masked data (what the function returns is not known).
pub const CALLS_FUNCTIONS: &str = "(functions)";

/// What a function defined in the database that stores or sends on data
/// (writes a table, a setting, a notification: [`crate::routine`]) reads
/// as well as its relations ([`ViewReads`]): under column masks, giving it
/// masked data is refused.
pub const STORES_DATA: &str = "(stores)";

/// What a function defined in the database that raises errors or notices
/// in words of its own (PL/pgSQL's `RAISE` and `ASSERT`) reads as well as
/// its relations ([`ViewReads`]): under column masks, what it reports about
/// a statement that reads masked data is withheld
/// ([`StatementMask::withhold_message`]). Functions that cannot be read
/// ([`CALLS_FUNCTIONS`], MySQL's stored functions among them) count as
/// reporting too.
pub const REPORTS: &str = "(reports)";

/// What a function defined in the database that may run statements
/// Gatehouse does not see reads as well as its relations ([`ViewReads`]:
/// SQL built at run time, code in a language it does not read, an
/// extension's function that runs SQL given as text;
/// [`crate::routine::Routine::runs_any_sql`]): it could copy masked data
/// into a table by itself, so under column masks calling it is refused.
pub const RUNS_ANY_SQL: &str = "(any sql)";

/// PostgreSQL's built-in functions that run a query given as text, or
/// read a table, schema or database named by text or a cursor: under
/// column masks their results count as masked data (a statement calling
/// one has its computed columns masked).
pub const QUERY_TEXT_FUNCTIONS: &[&str] = &[
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "table_to_xml",
    "table_to_xml_and_xmlschema",
    "cursor_to_xml",
    "schema_to_xml",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "ts_rewrite",
];

/// Names a session's [`ResultSources`] keeps, and definitions per name (a
/// name defined again keeps every definition: the server may have refused
/// the later one).
const MAX_SOURCE_NAMES: usize = 1024;
const MAX_SOURCE_TEXTS: usize = 8;

/// The compiled policy.
#[derive(Debug)]
pub struct Engine {
    spec: PolicySpec,
    rules: Vec<Rule>,
    cache: Cache<Analysis>,
    refs: Cache<Option<ColumnRefs>>,
    /// PostgreSQL column references by the text's shape (its constants
    /// replaced by `$n`, `pg_query::normalize`): they do not depend on
    /// constants, so texts that differ only in them (a simple-protocol
    /// client's queries, each with its own values) are walked once.
    refs_by_shape: Cache<Option<ColumnRefs>>,
    /// The same for MySQL text (the same text may mean something else there).
    mysql_cache: Cache<Analysis>,
    mysql_refs: Cache<Option<ColumnRefs>>,
    /// Mask plans by (connection, the caller's sorted groups).
    plans: Mutex<HashMap<PlanKey, Option<Arc<MaskPlan>>>>,
    detectors: Mutex<HashMap<Vec<DetectorKind>, Arc<Detectors>>>,
    /// Some deny or review rule has a condition on tables.
    has_table_rules: bool,
}

fn glob(pattern: &str, text: &str) -> bool {
    // Iterative wildcard match ('*' only), ASCII case-insensitive.
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && p[i] != b'*' && p[i].eq_ignore_ascii_case(&t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Whether a table as a statement names it matches a rule's pattern. An
/// unqualified name matches whatever schema the pattern gives: the
/// search_path decides at run time which table it is.
fn table_matches(pattern: &str, table: &str) -> bool {
    let (ps, pt) = match pattern.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, pattern),
    };
    let (ts, tt) = match table.rsplit_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, table),
    };
    glob(pt, tt)
        && match (ps, ts) {
            (Some(ps), Some(ts)) => glob(ps, ts),
            _ => true,
        }
}

/// No patterns, or one of them matches one of the tables.
fn any_table<'a>(pats: &[String], mut tables: impl Iterator<Item = &'a String>) -> bool {
    pats.is_empty() || tables.any(|t| pats.iter().any(|p| table_matches(p, t)))
}

/// Minute of the day and day of the week (0 = Monday) at `now_ms`, shifted
/// by `offset_min`.
fn local_time(now_ms: i64, offset_min: i32) -> (u32, u32) {
    let minutes = now_ms.div_euclid(60_000) + i64::from(offset_min);
    let minute = u32::try_from(minutes.rem_euclid(1440)).unwrap_or(0);
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    let day = u32::try_from((minutes.div_euclid(1440) + 3).rem_euclid(7)).unwrap_or(0);
    (minute, day)
}

impl Rule {
    fn compile(spec: &RuleSpec) -> Rule {
        // Validated before: these parse.
        let pattern = spec.pattern.as_deref().and_then(|p| {
            regex::RegexBuilder::new(p)
                .size_limit(gatehouse_core::policy::spec::PATTERN_SIZE_LIMIT)
                .build()
                .ok()
        });
        let days = spec
            .days
            .iter()
            .filter_map(|d| parse_day(d))
            .fold(0u8, |acc, d| acc | (1 << d));
        let json = spec
            .json
            .iter()
            .filter_map(|j| {
                Some(JsonTest {
                    path: JsonPath::parse(&j.path).ok()?,
                    equals: j.equals.clone(),
                    pattern: j.pattern.as_deref().and_then(|p| {
                        regex::RegexBuilder::new(p)
                            .size_limit(gatehouse_core::policy::spec::PATTERN_SIZE_LIMIT)
                            .build()
                            .ok()
                    }),
                })
            })
            .collect();
        Rule {
            spec: spec.clone(),
            json,
            pattern,
            hours: spec.hours.as_deref().and_then(parse_hours),
            days,
            offset_min: spec
                .utc_offset
                .as_deref()
                .and_then(parse_utc_offset)
                .unwrap_or(0),
        }
    }

    /// Whether the rule is about this caller on this connection.
    fn applies(&self, principal: &Principal, connection: &str) -> bool {
        (self.spec.connections.is_empty() || self.spec.connections.iter().any(|c| c == connection))
            && (self.spec.groups.is_empty() || principal.in_any(&self.spec.groups))
    }

    /// A deny or review rule with a condition on tables.
    fn refuses_by_table(&self) -> bool {
        let s = &self.spec;
        s.action != Action::Allow
            && !(s.tables.is_empty() && s.tables_read.is_empty() && s.tables_written.is_empty())
    }

    fn in_time(&self, now_ms: i64) -> bool {
        if self.hours.is_none() && self.days == 0 {
            return true;
        }
        let (minute, day) = local_time(now_ms, self.offset_min);
        let day_ok = self.days == 0 || self.days & (1 << day) != 0;
        let hour_ok = match self.hours {
            None => true,
            Some((s, e)) if s <= e => minute >= s && minute < e,
            Some((s, e)) => minute >= s || minute < e,
        };
        day_ok && hour_ok
    }

    /// Whether the statement meets every condition the rule names. For
    /// text that does not parse, conditions on its content cannot be
    /// checked: they count as met for deny and review rules (fail closed)
    /// and as unmet for allow rules.
    fn matches(&self, a: &Analysis, sql: &str, now_ms: i64) -> bool {
        let s = &self.spec;
        if !self.in_time(now_ms) {
            return false;
        }
        if let Some(p) = &self.pattern
            && !p.is_match(sql)
        {
            return false;
        }
        if s.is_http_only() {
            return false;
        }
        let Some(class) = a.class else {
            return s.unparsed || s.action != Action::Allow;
        };
        if s.unparsed {
            return false;
        }
        // Statements run from text the analysis does not see could touch
        // any table and call any function: for deny and review rules those
        // conditions are met (fail closed), for allow rules not.
        let unseen = a.unseen && s.action != Action::Allow;
        (s.statements.is_empty() || s.statements.contains(&class))
            && (unseen
                || (any_table(
                    &s.tables,
                    a.tables_read.iter().chain(a.tables_written.iter()),
                ) && any_table(&s.tables_read, a.tables_read.iter())
                    && any_table(&s.tables_written, a.tables_written.iter())))
            && (s.functions.is_empty()
                || unseen
                || a.functions
                    .iter()
                    .any(|f| s.functions.iter().any(|p| glob(p, f))))
    }

    /// Whether an HTTP or AWS request meets every condition the rule
    /// names. What cannot be known (an AWS action Gatehouse cannot name, a
    /// body that is not JSON or was too large to read) counts as met for
    /// deny and review rules and as unmet for allow rules.
    fn matches_http(&self, req: &HttpRequest<'_>, now_ms: i64) -> bool {
        let s = &self.spec;
        if s.is_sql_only() || !self.in_time(now_ms) {
            return false;
        }
        let unknown = s.action != Action::Allow;
        if let Some(p) = &self.pattern
            && !p.is_match(&req.text())
        {
            return false;
        }
        if !s.statements.is_empty() && !s.statements.contains(&req.class) {
            return false;
        }
        if !s.methods.is_empty() && !s.methods.iter().any(|m| m.eq_ignore_ascii_case(req.method)) {
            return false;
        }
        if !s.paths.is_empty() && !s.paths.iter().any(|p| glob(p, req.path)) {
            return false;
        }
        if !s.actions.is_empty() {
            match req.action {
                Some(a) => {
                    let names = std::iter::once(a).chain(req.also.iter().map(String::as_str));
                    if !names
                        .into_iter()
                        .any(|n| s.actions.iter().any(|p| glob(p, n)))
                    {
                        return false;
                    }
                }
                None if !req.aws => return false,
                None => {
                    if !unknown {
                        return false;
                    }
                }
            }
        }
        for t in &self.json {
            let met = match req.body {
                HttpBody::Json(doc) => t.holds(doc),
                HttpBody::Empty => false,
                HttpBody::Unreadable => unknown,
            };
            if !met {
                return false;
            }
        }
        true
    }

    fn verdict(&self, a: &Analysis, policy: &PolicySpec) -> Verdict {
        self.verdict_why(&a.reasons, "statement", policy)
    }

    fn verdict_why(&self, reasons: &[String], what: &str, policy: &PolicySpec) -> Verdict {
        let s = &self.spec;
        let why = if reasons.is_empty() {
            String::new()
        } else {
            format!(" (the {what} {})", reasons.join("; "))
        };
        match s.action {
            Action::Allow => Verdict::Allow {
                rule: Some(s.name.clone()),
            },
            Action::Deny => Verdict::Deny {
                rule: s.name.clone(),
                message: format!(
                    "{}{why}",
                    s.message
                        .clone()
                        .unwrap_or_else(|| format!("denied by rule {}", s.name))
                ),
            },
            Action::Review => Verdict::Review {
                rule: s.name.clone(),
                message: format!(
                    "{}{why}",
                    s.message.clone().unwrap_or_else(|| format!(
                        "rule {} requires {} approval(s) by members of {}",
                        s.name,
                        s.approvals.unwrap_or(1),
                        s.approvers.join(", ")
                    ))
                ),
                approvers: s.approvers.clone(),
                approvals: s.approvals.unwrap_or(1),
                timeout_ms: policy.review_timeout_ms(Some(s)),
                require_reason: s.require_reason,
            },
        }
    }
}

impl Engine {
    /// Compiles a policy; it is validated first.
    pub fn new(spec: PolicySpec) -> Result<Engine, PolicyError> {
        spec.validate()?;
        let rules: Vec<Rule> = spec.rules.iter().map(Rule::compile).collect();
        let has_table_rules = rules.iter().any(Rule::refuses_by_table);
        Ok(Engine {
            spec,
            rules,
            cache: Cache::default(),
            refs: Cache::default(),
            refs_by_shape: Cache::default(),
            mysql_cache: Cache::default(),
            mysql_refs: Cache::default(),
            plans: Mutex::default(),
            detectors: Mutex::default(),
            has_table_rules,
        })
    }

    /// An engine with no rules: everything is allowed, nothing analysed.
    pub fn empty() -> Engine {
        Engine {
            spec: PolicySpec::default(),
            rules: Vec::new(),
            cache: Cache::default(),
            refs: Cache::default(),
            refs_by_shape: Cache::default(),
            mysql_cache: Cache::default(),
            mysql_refs: Cache::default(),
            plans: Mutex::default(),
            detectors: Mutex::default(),
            has_table_rules: false,
        }
    }

    /// The policy has no rules, masks or detectors and allows by default:
    /// every statement is allowed as it is, unanalysed, whoever sends it
    /// (what [`Self::decide`] would say, without its work).
    pub fn allows_everything(&self) -> bool {
        self.rules.is_empty()
            && self.spec.masks.is_empty()
            && self.spec.detectors.is_empty()
            && self.spec.default == Action::Allow
    }

    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Analyses a PostgreSQL statement (cached).
    pub fn analysis(&self, sql: &str) -> Arc<Analysis> {
        self.analysis_in(SqlDialect::Postgres, sql)
    }

    /// Analyses a statement in `dialect` (cached per dialect).
    pub fn analysis_in(&self, dialect: SqlDialect, sql: &str) -> Arc<Analysis> {
        match dialect {
            SqlDialect::Postgres => self.cache.get(sql, analyze),
            SqlDialect::Mysql => self.mysql_cache.get(sql, analyze_mysql),
        }
    }

    /// Column references of a PostgreSQL statement (cached); `None` if it
    /// does not parse.
    pub fn column_refs(&self, sql: &str) -> Arc<Option<ColumnRefs>> {
        self.column_refs_in(SqlDialect::Postgres, sql)
    }

    /// Column references of a statement in `dialect` (cached per dialect);
    /// `None` if it does not parse.
    pub fn column_refs_in(&self, dialect: SqlDialect, sql: &str) -> Arc<Option<ColumnRefs>> {
        match dialect {
            SqlDialect::Postgres => self.refs.get_shared(sql, |s| match pg_query::normalize(s) {
                Ok(shape) if shape != s => self.refs_by_shape.get(&shape, |_| column_refs(s)),
                _ => Arc::new(column_refs(s)),
            }),
            SqlDialect::Mysql => self.mysql_refs.get(sql, column_refs_mysql),
        }
    }

    /// The masks and detectors for this caller on this connection, if any.
    pub fn mask_plan(&self, principal: &Principal, connection: &str) -> Option<Arc<MaskPlan>> {
        if self.spec.masks.is_empty() && self.spec.detectors.is_empty() {
            return None;
        }
        let mut groups = principal.groups.clone();
        groups.sort();
        let key = (connection.to_string(), groups);
        if let Some(p) = lock(&self.plans).get(&key) {
            return p.clone();
        }
        let plan = MaskPlan::for_caller(&self.spec, principal, connection, &|kinds| {
            lock(&self.detectors)
                .entry(kinds.to_vec())
                .or_insert_with(|| Arc::new(Detectors::new(kinds)))
                .clone()
        })
        .map(Arc::new);
        let mut plans = lock(&self.plans);
        if plans.len() > 10_000 {
            plans.clear();
        }
        plans.insert(key, plan.clone());
        plan
    }

    /// How to mask the results of PostgreSQL `sql` under `plan` (from
    /// [`Self::mask_plan`]).
    pub fn mask_for(&self, plan: Arc<MaskPlan>, sql: &str) -> StatementMask {
        self.mask_for_in(SqlDialect::Postgres, plan, sql)
    }

    /// How to mask the results of `sql` in `dialect` under `plan`.
    pub fn mask_for_in(
        &self,
        dialect: SqlDialect,
        plan: Arc<MaskPlan>,
        sql: &str,
    ) -> StatementMask {
        let refs = self.column_refs_in(dialect, sql);
        self.statement_mask(plan, dialect, sql, refs.as_ref().as_ref())
    }

    /// How to mask `sql` under `plan`, from what the statement itself says
    /// (its references `refs`; what the views and functions it names do is
    /// added by [`ViewReads::taint`]).
    fn statement_mask(
        &self,
        plan: Arc<MaskPlan>,
        dialect: SqlDialect,
        sql: &str,
        refs: Option<&ColumnRefs>,
    ) -> StatementMask {
        let taint = self.statement_taints(&plan, dialect, sql, refs);
        let scrub_errors = plan.has_columns()
            && (refs.is_none_or(|r| r.relations.iter().any(|(n, _)| plan.masks_table(n)))
                || self
                    .analysis_in(dialect, sql)
                    .class
                    .is_none_or(|c| c > Class::Read));
        StatementMask {
            plan,
            taint,
            scrub_errors,
            withhold_message: false,
        }
    }

    /// Completes `mask`, the mask of PostgreSQL statement `sql` of a session
    /// whose prepared statements and cursors are `sources`: an `EXECUTE` or
    /// `FETCH` has its computed columns masked when the query it returns
    /// rows of may read masked data (or is unknown); a `PREPARE` or
    /// `DECLARE` is noted in `sources`.
    pub fn follow_sources(
        &self,
        sql: &Arc<str>,
        mask: &mut StatementMask,
        sources: &mut ResultSources,
    ) {
        let refs = self.column_refs_in(SqlDialect::Postgres, sql);
        // Unparsed text is masked as tainted already.
        let Some(refs) = refs.as_ref() else { return };
        // What the proxy looked up for this statement (views, functions).
        sources.views.taint(refs, mask);
        if refs.defines.is_empty() && refs.uses.is_empty() {
            return;
        }
        if mask.plan.has_columns() && !mask.taint {
            mask.taint = refs.uses.iter().any(|name| {
                sources.tainted.contains(name)
                    || self.source_taints(sources.by_name.get(name), &mask.plan)
            });
        }
        for name in &refs.defines {
            sources.define(name, sql);
            if mask.taint && sources.by_name.contains_key(name) {
                sources.tainted.insert(name.clone());
            }
        }
    }

    /// Completes `mask`, the mask of a protocol-level `Execute` of the named
    /// portal `portal`: the portal may also be a cursor that SQL's
    /// `DECLARE` opened under that name, so its computed columns are masked
    /// if any text that defined the name may read masked data.
    pub fn follow_portal(&self, portal: &str, mask: &mut StatementMask, sources: &ResultSources) {
        if !mask.plan.has_columns() || mask.taint {
            return;
        }
        let name = format!("cursor:{portal}");
        if let Some(texts) = sources.by_name.get(&name) {
            mask.taint =
                sources.tainted.contains(&name) || self.source_taints(Some(texts), &mask.plan);
        }
    }

    /// Whether what a name returns may carry data `plan` masks, given the
    /// texts that defined it (`None`: unknown, so it may).
    fn source_taints(&self, texts: Option<&Vec<Arc<str>>>, plan: &MaskPlan) -> bool {
        let Some(texts) = texts else { return true };
        texts.len() >= MAX_SOURCE_TEXTS
            || texts.iter().any(|text| {
                let r = self.column_refs_in(SqlDialect::Postgres, text);
                // A source that itself returns another's rows counts as
                // tainted.
                r.as_ref().as_ref().is_none_or(|r| !r.uses.is_empty())
                    || self.statement_taints(plan, SqlDialect::Postgres, text, r.as_ref().as_ref())
            })
    }

    /// Decides one PostgreSQL statement at `now_ms` (Unix milliseconds);
    /// an allowed statement comes with how its results are masked, if they
    /// are.
    pub fn decide(
        &self,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
    ) -> Decision {
        self.decide_with_grant(principal, connection, sql, now_ms, None)
    }

    /// Like [`Self::decide`] for a statement in `dialect`.
    pub fn decide_in(
        &self,
        dialect: SqlDialect,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
    ) -> Decision {
        self.decide_with_grant_in(dialect, principal, connection, sql, now_ms, None)
    }

    /// Like [`Self::decide`] for a caller holding a just-in-time grant
    /// (`(grant id, level)`) on the connection: a statement the grant's
    /// level covers runs without review, and where the policy's default
    /// would refuse it; deny rules still apply.
    pub fn decide_with_grant(
        &self,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
        grant: Option<(&str, Level)>,
    ) -> Decision {
        self.decide_with_grant_in(
            SqlDialect::Postgres,
            principal,
            connection,
            sql,
            now_ms,
            grant,
        )
    }

    /// Like [`Self::decide_with_grant`] for a statement in `dialect`.
    pub fn decide_with_grant_in(
        &self,
        dialect: SqlDialect,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
        grant: Option<(&str, Level)>,
    ) -> Decision {
        let mut decision = self.decide_rules(dialect, principal, connection, sql, now_ms);
        if let Some((id, level)) = grant {
            let by_default =
                matches!(&decision.verdict, Verdict::Deny { rule, .. } if rule == "default");
            let covered = decision
                .analysis
                .as_ref()
                .and_then(|a| a.class)
                .is_some_and(|c| level.covers(c));
            if covered && (by_default || matches!(decision.verdict, Verdict::Review { .. })) {
                decision.verdict = Verdict::Allow {
                    rule: Some(format!("grant:{id}")),
                };
            }
        }
        // A statement held for review gets its mask now: it runs if approved.
        if matches!(decision.verdict, Verdict::Deny { .. }) {
            return decision;
        }
        let Some(plan) = self.mask_plan(principal, connection) else {
            return decision;
        };
        let refs = self.column_refs_in(dialect, sql);
        let refusal = plan
            .refuse_copy(refs.as_ref().as_ref())
            .map(|m| match dialect {
                SqlDialect::Postgres => m,
                SqlDialect::Mysql => "SELECT … INTO OUTFILE of data under a mask or a content detector is not allowed; run the SELECT without INTO (its results are masked)".to_string(),
            })
            .or_else(|| match refs.as_ref() {
                Some(r) => plan.refuse_store(r).or_else(|| plan.refuse_alter(r)),
                // Too deep to walk for its references (its analysis may
                // still tell a query): it could store masked data.
                None if plan.has_columns()
                    && self.analysis_in(dialect, sql).class != Some(Class::Read) =>
                {
                    Some("Gatehouse could not analyse what this statement reads, and where columns are masked a statement that may store data is refused".into())
                }
                None => None,
            })
            .or_else(|| {
                // MySQL's diagnostics quote values of the last statement's
                // (`Truncated incorrect DOUBLE value: 'ann@example.com'`):
                // SHOW WARNINGS has them scrubbed, but GET DIAGNOSTICS
                // would copy them into variables first.
                (dialect == SqlDialect::Mysql
                    && plan.has_columns()
                    && crate::analyze::may_begin_with(sql, &[b"get"])
                    && crate::analyze_mysql::mentions(sql, b"diagnostics"))
                .then(|| "GET DIAGNOSTICS is not allowed where columns are masked: it copies messages that may quote masked values into variables; run SHOW WARNINGS instead (its messages are scrubbed)".to_string())
            })
            .or_else(|| {
            (plan.has_columns() && self.analysis_in(dialect, sql).anonymous_code).then(|| {
                match dialect {
                    SqlDialect::Postgres => "DO blocks are not allowed where columns are masked: code run inside them could read masked columns and report them unmasked",
                    SqlDialect::Mysql => "statements prepared from text (PREPARE, EXECUTE) are not allowed where columns are masked: the statement they run could read masked columns and report them unmasked",
                }
                .to_string()
            })
        });
        match refusal {
            Some(message) => {
                decision.verdict = Verdict::Deny {
                    rule: "masking".into(),
                    message,
                };
            }
            None => {
                decision.mask =
                    Some(self.statement_mask(plan, dialect, sql, refs.as_ref().as_ref()));
            }
        }
        decision
    }

    /// Whether deciding requests of this caller on this connection looks
    /// at their JSON bodies (so the body must be read first).
    pub fn http_needs_body(&self, principal: &Principal, connection: &str) -> bool {
        self.rules
            .iter()
            .any(|r| !r.json.is_empty() && r.applies(principal, connection))
    }

    /// Decides one HTTP or AWS request at `now_ms`; an allowed (or held)
    /// request comes with how its response is masked, if it is. A grant
    /// covers the request's class as it covers a statement's.
    pub fn decide_http(
        &self,
        principal: &Principal,
        connection: &str,
        req: &HttpRequest<'_>,
        now_ms: i64,
        grant: Option<(&str, Level)>,
    ) -> Decision {
        let mut best: Option<&Rule> = None;
        for r in self
            .rules
            .iter()
            .filter(|r| r.applies(principal, connection))
        {
            if r.matches_http(req, now_ms) && best.is_none_or(|b| r.spec.action > b.spec.action) {
                best = Some(r);
            }
        }
        let mut verdict = match best {
            Some(r) => r.verdict_why(&[], "request", &self.spec),
            None => match self.spec.default {
                Action::Deny => Verdict::Deny {
                    rule: "default".into(),
                    message: "no rule allows this request and the policy's default is deny".into(),
                },
                _ => Verdict::Allow { rule: None },
            },
        };
        if let Some((id, level)) = grant {
            let by_default = matches!(&verdict, Verdict::Deny { rule, .. } if rule == "default");
            if level.covers(req.class) && (by_default || matches!(verdict, Verdict::Review { .. }))
            {
                verdict = Verdict::Allow {
                    rule: Some(format!("grant:{id}")),
                };
            }
        }
        let mask = if matches!(verdict, Verdict::Deny { .. }) {
            None
        } else {
            self.mask_plan(principal, connection)
                .map(StatementMask::plain)
        };
        Decision {
            verdict,
            analysis: None,
            mask,
        }
    }

    fn decide_rules(
        &self,
        dialect: SqlDialect,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
    ) -> Decision {
        let applicable = self.applicable(principal, connection);
        if applicable.is_empty() && self.spec.default == Action::Allow {
            return Decision {
                verdict: Verdict::Allow { rule: None },
                analysis: None,
                mask: None,
            };
        }
        let a = self.analysis_in(dialect, sql);
        Decision {
            verdict: self.verdict_of(&a, sql, &applicable, now_ms),
            analysis: Some(a),
            mask: None,
        }
    }

    /// The rules that apply to the caller on the connection.
    fn applicable(&self, principal: &Principal, connection: &str) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.applies(principal, connection))
            .collect()
    }

    /// The verdict of the rules that apply to the caller (`applicable`) on
    /// a statement analysed as `a`.
    fn verdict_of(&self, a: &Analysis, sql: &str, applicable: &[&Rule], now_ms: i64) -> Verdict {
        let mut best: Option<&Rule> = None;
        for r in applicable {
            if r.matches(a, sql, now_ms) && best.is_none_or(|b| r.spec.action > b.spec.action) {
                best = Some(r);
            }
        }
        match (best, a.class) {
            (Some(r), _) => r.verdict(a, &self.spec),
            (None, None) => Verdict::Deny {
                rule: "unparsed".into(),
                message: format!(
                    "Gatehouse could not parse this statement ({}), so it is refused; a rule with unparsed = true can allow such statements",
                    a.parse_error.as_deref().unwrap_or("unknown error")
                ),
            },
            (None, Some(_)) => match self.spec.default {
                Action::Deny => Verdict::Deny {
                    rule: "default".into(),
                    message: "no rule allows this statement and the policy's default is deny"
                        .into(),
                },
                _ => Verdict::Allow { rule: None },
            },
        }
    }

    /// Makes `decision`, the decision for the statement `sql` in `dialect`,
    /// as strict as the decisions for what SQL's `EXECUTE` in it runs:
    /// each text that defined the name in this session (`sources` keeps
    /// them all, since the server may have refused a later definition).
    /// `EXECUTE` names no table, so without this a `DELETE` approved once
    /// as a `PREPARE` would run again and again, with any parameters, and a
    /// statement prepared before a deny rule would still run after it.
    /// A name no statement of the session prepared (a function or a `DO`
    /// block may have) cannot be decided: it is decided as text that does
    /// not parse (refused unless a rule allows unparsed statements).
    #[allow(clippy::too_many_arguments)]
    pub fn follow_prepared(
        &self,
        dialect: SqlDialect,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
        grant: Option<(&str, Level)>,
        decision: &mut Decision,
        sources: &ResultSources,
    ) {
        if !decision.analysis.as_ref().is_some_and(|a| a.prepared) {
            return;
        }
        let refs = self.column_refs_in(dialect, sql);
        // Text that does not parse is refused already.
        let Some(refs) = refs.as_ref() else { return };
        for name in refs.uses.iter().filter(|n| n.starts_with("statement:")) {
            let shown = &name["statement:".len()..];
            let texts = sources.by_name.get(name).map_or(&[][..], Vec::as_slice);
            if texts.is_empty() && !refs.defines.contains(name) {
                let applicable = self.applicable(principal, connection);
                let unknown = Analysis {
                    class: None,
                    parse_error: Some(format!(
                        "EXECUTE runs the statement prepared as {shown}, which was not prepared through Gatehouse in this session"
                    )),
                    tables_read: BTreeSet::new(),
                    tables_written: BTreeSet::new(),
                    functions: BTreeSet::new(),
                    anonymous_code: false,
                    unseen: false,
                    prepared: true,
                    reasons: Vec::new(),
                    backend_signals: Vec::new(),
                    defined_and_called: BTreeSet::new(),
                    views_defined_and_read: BTreeSet::new(),
                    only_defined: BTreeSet::new(),
                };
                let v = self.verdict_of(&unknown, sql, &applicable, now_ms);
                stricter(&mut decision.verdict, v, None);
            }
            for text in texts {
                let mut d =
                    self.decide_with_grant_in(dialect, principal, connection, text, now_ms, grant);
                self.through_views(
                    principal,
                    connection,
                    text,
                    now_ms,
                    grant,
                    &mut d,
                    &sources.views,
                );
                let v = d.verdict;
                stricter(&mut decision.verdict, v, Some((shown, text)));
            }
        }
    }

    /// Decides `sql` in a session whose statements SQL's `PREPARE` defined
    /// are `sources`: [`Self::decide_with_grant_in`], made as strict as what
    /// its `EXECUTE`s run ([`Self::follow_prepared`]).
    #[allow(clippy::too_many_arguments)]
    pub fn decide_in_session(
        &self,
        dialect: SqlDialect,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
        grant: Option<(&str, Level)>,
        sources: &ResultSources,
    ) -> Decision {
        let mut d = self.decide_with_grant_in(dialect, principal, connection, sql, now_ms, grant);
        self.through_views(
            principal,
            connection,
            sql,
            now_ms,
            grant,
            &mut d,
            &sources.views,
        );
        self.masks_through_views(dialect, sql, &mut d, &sources.views);
        if d.analysis.as_ref().is_some_and(|a| a.prepared) {
            self.follow_prepared(
                dialect, principal, connection, sql, now_ms, grant, &mut d, sources,
            );
        }
        d
    }

    /// Whether `sql`, decided as `d` and let through, may define, replace
    /// or drop views or the tables they read, so that what the proxies know
    /// of the connection's views ([`crate::ViewCache`]) must be asked
    /// again: a `ddl`, `admin` or unparsed statement, or code the analysis
    /// does not see. A statement decided without an analysis (no rule
    /// applied to its caller) is judged by the words its statements begin
    /// with, so that a caller no rule holds cannot change a view under
    /// another's rules or masks unseen. Never, where no rule on tables and
    /// no mask could use what views read.
    pub fn may_change_views(&self, sql: &str, d: &Decision) -> bool {
        if matches!(d.verdict, Verdict::Deny { .. })
            || !self.has_table_rules && self.spec.masks.is_empty()
        {
            return false;
        }
        match &d.analysis {
            Some(a) => {
                a.unseen
                    || matches!(
                        a.class,
                        Some(crate::Class::Ddl | crate::Class::Admin) | None
                    )
            }
            None => Self::may_change_definitions(sql),
        }
    }

    /// Whether `sql` may change views or functions, judged by the words
    /// its statements begin with (DDL, or code that may run some): what
    /// [`Self::may_change_views`] says of a statement decided without an
    /// analysis.
    pub fn may_change_definitions(sql: &str) -> bool {
        crate::analyze::may_begin_with(
            sql,
            &[
                b"create",
                b"alter",
                b"drop",
                b"rename",
                b"truncate",
                b"call",
                b"do",
                b"execute",
                b"exec",
                b"import",
                b"flush",
            ],
        )
    }

    /// Whether a deny or review rule that applies to the caller on the
    /// connection has a condition on tables: only then does reading a
    /// table through a view matter to the decision.
    #[inline]
    pub fn table_rules_apply(&self, principal: &Principal, connection: &str) -> bool {
        self.has_table_rules
            && self
                .rules
                .iter()
                .any(|r| r.refuses_by_table() && r.applies(principal, connection))
    }

    /// Whether column masks apply to the caller on the connection.
    fn masks_columns(&self, principal: &Principal, connection: &str) -> bool {
        !self.spec.masks.is_empty()
            && self
                .mask_plan(principal, connection)
                .is_some_and(|p| p.has_columns())
    }

    /// What the proxy looks up in the database's catalog before it decides
    /// `sql` (and the texts its `EXECUTE`s run, as `sources` knows them):
    /// the relations, as views ([`ResultSources::set_views`]): for deny or
    /// review rules with a condition on tables that apply to the caller,
    /// the tables it reads and writes; under column masks, every relation
    /// it names. And under column masks only, the functions it calls and
    /// the operators it uses ([`crate::routine::operator_key`]), with, on
    /// PostgreSQL, what runs without a call
    /// ([`crate::routine::IMPLICIT_CALLS`]) ([`ViewReads::with_functions`]):
    /// one defined in the database may return masked data it reads
    /// itself, or keep what it is given.
    pub fn to_resolve(
        &self,
        dialect: SqlDialect,
        principal: &Principal,
        connection: &str,
        sql: &str,
        sources: &ResultSources,
    ) -> ToResolve {
        let rules = self.table_rules_apply(principal, connection);
        let masks = self.masks_columns(principal, connection);
        if !rules && !masks {
            return ToResolve::default();
        }
        let (mut relations, mut functions) = (BTreeSet::new(), BTreeSet::new());
        self.each_text(dialect, sql, sources, |text| {
            if rules {
                let a = self.analysis_in(dialect, text);
                relations.extend(a.tables_read.iter().chain(a.tables_written.iter()).cloned());
            }
            if masks {
                functions.extend(
                    self.analysis_in(dialect, text)
                        .functions
                        .iter()
                        .filter(|f| !QUERY_TEXT_FUNCTIONS.contains(&f.as_str()))
                        .cloned(),
                );
                // What the tables it writes run by themselves.
                functions.extend(
                    self.analysis_in(dialect, text)
                        .tables_written
                        .iter()
                        .map(|t| crate::routine::writes_key(t)),
                );
                if let Some(refs) = self.column_refs_in(dialect, text).as_ref() {
                    relations.extend(refs.relations.iter().map(|(n, _)| n.clone()));
                    relations.extend(refs.altered.iter().cloned());
                    // An operator runs a function too.
                    functions.extend(
                        refs.operators
                            .iter()
                            .map(|o| crate::routine::operator_key(o)),
                    );
                }
            }
        });
        if masks && dialect == SqlDialect::Postgres {
            functions.insert(crate::routine::IMPLICIT_CALLS.to_string());
        }
        ToResolve {
            relations: relations.into_iter().collect(),
            functions: functions.into_iter().collect(),
        }
    }

    /// Calls `f` with `sql` and with each text its `EXECUTE`s run, as
    /// `sources` knows them.
    fn each_text(
        &self,
        dialect: SqlDialect,
        sql: &str,
        sources: &ResultSources,
        mut f: impl FnMut(&str),
    ) {
        f(sql);
        for (_, text) in self.prepared_texts(dialect, sql, sources) {
            f(&text);
        }
    }

    /// Whether the computed columns of `sql` (whose references are `refs`)
    /// may carry data `plan` masks: by what it names ([`MaskPlan::taints`]),
    /// or because it calls a built-in function that runs a query given as
    /// text, or reads a table named by text ([`QUERY_TEXT_FUNCTIONS`]), so
    /// that what it returns may be any table's data.
    fn statement_taints(
        &self,
        plan: &MaskPlan,
        dialect: SqlDialect,
        sql: &str,
        refs: Option<&ColumnRefs>,
    ) -> bool {
        plan.has_columns()
            && (plan.taints(refs)
                || self
                    .analysis_in(dialect, sql)
                    .functions
                    .iter()
                    .any(|f| QUERY_TEXT_FUNCTIONS.contains(&f.as_str())))
    }

    /// Makes the masking of `d` (the decision for `sql`) follow the
    /// relations the statement names to the tables behind them (views,
    /// partitions, inheritance children, `views`): where one leads to a
    /// masked table, the statement's computed columns are masked, and
    /// storing what it reads, or changing it with DDL, is refused (rule
    /// `masking`). Which of such a relation's columns carry masked data is
    /// not worked out. If the look-up failed, every named relation counts
    /// as leading to one (fail closed).
    pub fn masks_through_views(
        &self,
        dialect: SqlDialect,
        sql: &str,
        d: &mut Decision,
        views: &ViewReads,
    ) {
        if matches!(d.verdict, Verdict::Deny { .. })
            || !d.mask.as_ref().is_some_and(|m| m.plan.has_columns())
        {
            return;
        }
        let analysis = self.analysis_in(dialect, sql);
        if let Some(name) = analysis.defined_and_called.iter().next() {
            return refuse(
                d,
                views,
                format!(
                    "calling {name} in the text that creates (or drops) it is not allowed where columns are masked: Gatehouse reads what a function does from the database before the text runs, so it cannot tell what this one returns or keeps; create it in a statement of its own first"
                ),
            );
        }
        if let Some(name) = analysis.views_defined_and_read.iter().next() {
            return refuse(
                d,
                views,
                format!(
                    "reading {name} in the text that creates it is not allowed where columns are masked: Gatehouse reads what a view reads from the database before the text runs, so it cannot tell whether this one holds masked data; create it in a statement of its own first"
                ),
            );
        }
        if views.is_empty() {
            return;
        }
        let Some(mask) = d.mask.as_mut().filter(|m| m.plan.has_columns()) else {
            return;
        };
        let refs = self.column_refs_in(dialect, sql);
        let Some(refs) = refs.as_ref() else {
            // Unparsed: its computed columns are masked already.
            return;
        };
        let plan = mask.plan.clone();
        let leads = |name: &str| views.leads_to(name, &plan);
        // Whether the statement gives what it reads masked data, before
        // what its functions return is counted.
        let reads_masked = mask.taint || refs.relations.iter().any(|(n, _)| leads(n));
        views.taint(refs, mask);
        let stored = refs
            .stored
            .as_ref()
            .and_then(|s| s.relations.iter().find(|(n, _)| leads(n)));
        let message = if let Some((name, _)) = stored {
            format!("{STORE_REFUSAL} ({name} reads masked columns)")
        } else if let Some(name) = refs.altered.iter().find(|n| leads(n)) {
            alter_refusal(name)
        } else if let Some(name) =
            views.storing_function(&plan, reads_masked, !analysis.tables_written.is_empty())
        {
            if name.is_empty() {
                "Gatehouse could not look up the functions and operators this statement may run, nor what the tables it writes run by themselves (a function defined in the database could keep masked data unmasked), so statements that read masked columns or write are refused until it can; try again, and see the gateway's log for why".to_string()
            } else {
                let any_sql = !reads_masked && views.runs_any_sql(name);
                if let Some(table) = crate::routine::written_table(name) {
                    return refuse(
                        d,
                        views,
                        format!(
                            "writing {table} is not allowed where columns are masked: a trigger, rule, column default or CHECK constraint on it (or on a table the write reaches) runs code defined in the database that reads masked columns, keeps the row it is given while that row holds masked columns, or may run statements Gatehouse does not see, so masked data could be copied where it is read back unmasked"
                        ),
                    );
                }
                let name = called(name);
                if any_sql {
                    format!(
                        "calling {name} is not allowed where columns are masked: it is defined in the database and may run statements Gatehouse does not see (SQL built at run time, code in a language Gatehouse does not read, or SQL given as text), so it could copy masked data into a table where it is read back unmasked"
                    )
                } else {
                    format!(
                        "calling {name} here is not allowed where columns are masked: it is defined in the database and stores or sends on data (to a table, a setting, a notification), or Gatehouse cannot tell that it does not, and it would be given or read masked data, whose copy would be read back unmasked; call it without masked columns"
                    )
                }
            }
        } else if let Some(name) = views
            // (For DDL, its own calls: a statement counts as running
            // every cast's function.)
            .function_returning_masked(
                &plan,
                dialect == SqlDialect::Mysql,
                refs.stored.is_some(),
                &analysis.only_defined,
            )
            // (DDL, or more, may keep expressions whose values fill a
            // table's rows: a column's default or generated value.)
            .filter(|_| refs.stored.is_some() || analysis.class >= Some(Class::Ddl))
        {
            // What the statement stores (or, as DDL, keeps as a column's
            // default or generated value, which fills existing rows) may
            // be what the function returns.
            let what = if name.is_empty() {
                "Gatehouse could not look up the functions it calls".to_string()
            } else {
                format!("{}, which it calls, may return masked data", called(name))
            };
            format!(
                "{STORE_REFUSAL} ({what}; a column default or generated column added by DDL keeps what it returns too)"
            )
        } else {
            return;
        };
        refuse(d, views, message);
    }

    /// Makes `d` as strict as deciding the statement as reading (and
    /// writing) the tables behind the views it names would be: a deny or
    /// review rule on a table is met through a view over it, or through
    /// views over views. Allow rules and the default are not widened.
    #[allow(clippy::too_many_arguments)]
    pub fn through_views(
        &self,
        principal: &Principal,
        connection: &str,
        sql: &str,
        now_ms: i64,
        grant: Option<(&str, Level)>,
        d: &mut Decision,
        views: &ViewReads,
    ) {
        if views.is_empty() || matches!(d.verdict, Verdict::Deny { .. }) {
            return;
        }
        let Some(a) = d.analysis.as_ref().filter(|a| a.class.is_some()) else {
            return;
        };
        let mut wider = (**a).clone();
        wider.reasons.clear();
        let mut through = Vec::new();
        for (name, written) in a
            .tables_read
            .iter()
            .map(|n| (n, false))
            .chain(a.tables_written.iter().map(|n| (n, true)))
        {
            let Some(reads) = views.by_name.get(name) else {
                continue;
            };
            let set = if written {
                &mut wider.tables_written
            } else {
                &mut wider.tables_read
            };
            set.extend(reads.iter().cloned());
            let path = format!("the view {name}, which reads {}", reads.join(", "));
            // A view both read and written is named once.
            if !through.contains(&path) {
                through.push(path);
            }
        }
        if let Some(why) = &views.unknown {
            // Any table could be behind any name.
            wider.unseen = true;
            through.push(format!(
                "names relations Gatehouse could not look up as views ({why})"
            ));
        }
        if through.is_empty() {
            return;
        }
        wider.reasons = vec![format!("goes through {}", through.join("; "))];
        let applicable = self.applicable(principal, connection);
        let v = self.verdict_of(&wider, sql, &applicable, now_ms);
        let covered = grant.is_some_and(|(_, level)| wider.class.is_some_and(|c| level.covers(c)));
        match v {
            Verdict::Review { .. } if covered => {}
            Verdict::Deny { ref rule, .. } if rule == "default" => {}
            v => stricter(&mut d.verdict, v, None),
        }
    }

    /// What SQL's `EXECUTE` in `sql` runs: each name and every text that
    /// defined it in this session, for people reviewing the statement.
    pub fn prepared_texts(
        &self,
        dialect: SqlDialect,
        sql: &str,
        sources: &ResultSources,
    ) -> Vec<(String, Arc<str>)> {
        // Only statements that run one are walked for names.
        if !self.analysis_in(dialect, sql).prepared {
            return Vec::new();
        }
        let refs = self.column_refs_in(dialect, sql);
        let Some(refs) = refs.as_ref() else {
            return Vec::new();
        };
        refs.uses
            .iter()
            .filter_map(|n| Some((n.strip_prefix("statement:")?, sources.by_name.get(n)?)))
            .flat_map(|(name, texts)| texts.iter().map(|t| (name.to_string(), t.clone())))
            .collect()
    }

    /// `sql` as people reviewing it see it (and as an approval is bound
    /// to): with every text that defined each name its `EXECUTE` runs.
    pub fn reviewed_text(&self, dialect: SqlDialect, sql: &str, sources: &ResultSources) -> String {
        let mut statement = sql.to_string();
        for (name, text) in self.prepared_texts(dialect, sql, sources) {
            statement.push_str(&format!("\n-- {name} was prepared as: {text}"));
        }
        statement
    }

    /// After `sql` was decided as `d` in a session whose statements SQL's
    /// `PREPARE` defined are `sources`: notes what it defines, unless it was
    /// refused (it never reaches the server, so a later `PREPARE` of the
    /// name is what `EXECUTE` runs); one held for review is noted whatever
    /// the reviewers decide (stricter, never looser). `may_prepare` says,
    /// for a statement decided without an analysis (no rule applied),
    /// whether its text may prepare something (then it is parsed for it).
    pub fn note_decided(
        &self,
        dialect: SqlDialect,
        sql: &str,
        d: &Decision,
        sources: &mut ResultSources,
        may_prepare: impl FnOnce() -> bool,
    ) {
        let prepares = d.analysis.as_ref().map_or_else(may_prepare, |a| a.prepared);
        if prepares && !matches!(d.verdict, Verdict::Deny { .. }) {
            self.note_prepared(dialect, sql, sources);
        }
    }

    /// Notes in `sources` the statements SQL's `PREPARE` in `sql` defines,
    /// for [`Self::follow_prepared`] (`sql` was analysed and prepares
    /// something: see [`Analysis::prepared`]).
    pub fn note_prepared(&self, dialect: SqlDialect, sql: &str, sources: &mut ResultSources) {
        let refs = self.column_refs_in(dialect, sql);
        let Some(refs) = refs.as_ref() else { return };
        if refs.defines.is_empty() {
            return;
        }
        let text: Arc<str> = sql.into();
        for name in refs.defines.iter().filter(|n| n.starts_with("statement:")) {
            // MySQL's PREPARE … FROM 'text' runs that text (its own class
            // is admin, whatever it prepares); from a variable, what it
            // runs is decided as the PREPARE is.
            let mut prepared = refs.texts.iter().filter(|(n, _)| n == name).peekable();
            if prepared.peek().is_none() {
                sources.define(name, &text);
            }
            for (_, t) in prepared {
                sources.define(name, &Arc::from(t.as_str()));
            }
        }
    }
}

/// How strict a verdict is: deny, then review, then allow.
fn strictness(v: &Verdict) -> u8 {
    match v {
        Verdict::Allow { .. } => 0,
        Verdict::Review { .. } => 1,
        Verdict::Deny { .. } => 2,
    }
}

/// Replaces `verdict` by `other` if `other` is stricter; `prepared` (the
/// name and text of the prepared statement `other` is for) is added to its
/// message, so that the caller and the reviewers see what would run.
fn stricter(verdict: &mut Verdict, mut other: Verdict, prepared: Option<(&str, &str)>) {
    if strictness(&other) <= strictness(verdict) {
        return;
    }
    if let (Some((name, text)), Verdict::Deny { message, .. } | Verdict::Review { message, .. }) =
        (prepared, &mut other)
    {
        const SHOWN: usize = 500;
        let cut = text
            .char_indices()
            .nth(SHOWN)
            .map_or(text.len(), |(i, _)| i);
        let more = if cut < text.len() { "…" } else { "" };
        message.push_str(&format!(
            " (EXECUTE runs the statement prepared as {name}: {}{more})",
            &text[..cut]
        ));
    }
    *verdict = other;
}

/// What the body of an HTTP request is, for rules on its JSON fields.
#[derive(Debug, Clone, Copy)]
pub enum HttpBody<'a> {
    /// No body.
    Empty,
    /// A JSON document.
    Json(&'a serde_json::Value),
    /// Not JSON, or not read (too large): conditions on it cannot be checked.
    Unreadable,
}

/// One HTTP or AWS request, as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// Upper case, e.g. `GET`.
    pub method: &'a str,
    /// The path, percent-decoded and normalised (no `.`/`..` segments).
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// Whether this is an AWS request (an action is expected).
    pub aws: bool,
    /// AWS: `service:Action`, when Gatehouse can name it.
    pub action: Option<&'a str>,
    /// AWS: other names `actions` rules match for this request: the IAM
    /// permissions its operation needs (`s3:DeleteObject` for
    /// `s3:DeleteObjects`).
    pub also: &'a [String],
    /// `read` for requests that only read (GET, HEAD, OPTIONS; AWS Get,
    /// List, Describe… actions), `write` otherwise.
    pub class: gatehouse_core::policy::spec::Class,
    pub body: HttpBody<'a>,
}

impl HttpRequest<'_> {
    /// `METHOD /path?query`, the text `pattern` rules match and recordings show.
    pub fn text(&self) -> String {
        let mut t = format!("{} {}", self.method, self.path);
        if let Some(q) = self.query.filter(|q| !q.is_empty()) {
            t.push('?');
            t.push_str(q);
        }
        if let Some(a) = self.action {
            t.push_str(" (");
            t.push_str(a);
            t.push(')');
        }
        t
    }
}

/// Where the data path gets the policy in force (it may change while a
/// session runs; each statement is decided by the engine in force).
pub trait PolicySource: Send + Sync + std::fmt::Debug {
    fn engine(&self) -> Arc<Engine>;
    /// Moves whenever [`PolicySource::engine`] would return another engine
    /// (an atomic load). Sessions keep their engine ([`CachedEngine`]) and
    /// ask again only when it moves: fetching the engine per statement
    /// would bounce the lock and reference count of one shared `Arc`
    /// between the CPUs of the session threads.
    fn generation(&self) -> u64;
}

/// A session's copy of the engine in force, and its caller's mask plan
/// under it.
#[derive(Debug, Clone)]
pub struct CachedEngine {
    generation: u64,
    engine: Arc<Engine>,
    /// [`Engine::mask_plan`] for the session's caller, once asked under
    /// this engine.
    plan: Option<Option<Arc<MaskPlan>>>,
}

impl CachedEngine {
    pub fn new(source: &dyn PolicySource) -> Self {
        let generation = source.generation();
        Self {
            generation,
            engine: source.engine(),
            plan: None,
        }
    }

    /// Which policy the engine is: it changes when the policy does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes up the engine in force if it changed since the last look.
    pub fn refresh(&mut self, source: &dyn PolicySource) {
        let generation = source.generation();
        if generation != self.generation {
            self.engine = source.engine();
            self.generation = generation;
            self.plan = None;
        }
    }

    /// The masks and detectors of the session's caller (`principal` on
    /// `connection`: the same at every call) under the engine in force,
    /// asked of the engine once per engine rather than per statement.
    pub fn mask_plan(&mut self, principal: &Principal, connection: &str) -> Option<Arc<MaskPlan>> {
        self.plan
            .get_or_insert_with(|| self.engine.mask_plan(principal, connection))
            .clone()
    }

    /// The engine as of the last [`CachedEngine::refresh`].
    pub fn get(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// A policy that never changes (tests, tools).
#[derive(Debug, Clone)]
pub struct FixedPolicy(pub Arc<Engine>);

impl PolicySource for FixedPolicy {
    fn engine(&self) -> Arc<Engine> {
        self.0.clone()
    }

    fn generation(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::who;
    use gatehouse_core::policy::spec::Class;

    #[test]
    fn planner_statistics_are_known_by_name() {
        for n in [
            "pg_stats",
            "pg_catalog.pg_stats",
            "PG_CATALOG.pg_statistic",
            "pg_stats_ext_exprs",
        ] {
            assert!(holds_column_samples(n), "{n}");
        }
        for n in [
            "public.pg_stats",
            "stats",
            "pg_class",
            "pg_catalog.pg_stat_activity",
            "column_stats",
            "test.column_stats",
        ] {
            assert!(!holds_column_samples(n), "{n}");
        }
        for n in ["MySQL.column_stats", "information_schema.COLUMN_STATISTICS"] {
            assert!(holds_column_samples(n), "{n}");
        }
    }

    fn engine(toml_rules: &str) -> Engine {
        let spec: PolicySpec = toml::from_str(toml_rules).expect("toml");
        Engine::new(spec).expect("valid")
    }

    /// A session asks its engine for the caller's mask plan once per
    /// policy, and again once the policy in force changes.
    #[test]
    fn a_sessions_mask_plan_follows_the_policy_in_force() {
        #[derive(Debug)]
        struct Swapped(std::sync::Mutex<(u64, Arc<Engine>)>);
        impl PolicySource for Swapped {
            fn engine(&self) -> Arc<Engine> {
                self.0.lock().unwrap().1.clone()
            }
            fn generation(&self) -> u64 {
                self.0.lock().unwrap().0
            }
        }
        let masked = Arc::new(engine(
            "default = \"allow\"\n[[masks]]\ncolumns = [\"public.customers.email\"]\nmethod = \"redact\"",
        ));
        let source = Swapped(std::sync::Mutex::new((1, masked)));
        let mut cached = CachedEngine::new(&source);
        let first = cached.mask_plan(&who(&[]), "shop").expect("a plan");
        let again = cached.mask_plan(&who(&[]), "shop").expect("a plan");
        assert!(Arc::ptr_eq(&first, &again), "asked once");
        *source.0.lock().unwrap() = (2, Arc::new(engine("default = \"allow\"")));
        cached.refresh(&source);
        assert!(
            cached.mask_plan(&who(&[]), "shop").is_none(),
            "the new policy masks nothing"
        );
    }

    #[test]
    fn functions_mask_and_are_refused_by_what_they_read_and_keep() {
        let e = engine(
            "default = \"allow\"\n[[masks]]\ncolumns = [\"public.customers.email\"]\nmethod = \"redact\"",
        );
        let reads = |r: &[&str]| -> Arc<[String]> { r.iter().map(|s| s.to_string()).collect() };
        let known = HashMap::from([
            ("harmless".to_string(), reads(&["public.items"])),
            ("leaks".to_string(), reads(&["public.customers"])),
            ("opaque".to_string(), reads(&[CALLS_FUNCTIONS, STORES_DATA])),
            (
                "dynamic".to_string(),
                reads(&[CALLS_FUNCTIONS, REPORTS, RUNS_ANY_SQL, STORES_DATA]),
            ),
            ("keeps".to_string(), reads(&["public.log", STORES_DATA])),
            (
                "copies".to_string(),
                reads(&["customers", "public.log", STORES_DATA]),
            ),
        ]);
        // What the proxy's look-up gives for a statement: the functions
        // it calls that the database defines.
        let looked_up = |sql: &str| {
            let called = e.analysis_in(SqlDialect::Postgres, sql).functions.clone();
            ViewReads::default().with_functions(Ok(known
                .iter()
                .filter(|(n, _)| called.contains(*n))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect()))
        };
        // (taint, refused) of each statement.
        let check = |sql: &str, views: &ViewReads| {
            let mut d = e.decide(&who(&["agents"]), "shop", sql, NOON_WED);
            e.masks_through_views(SqlDialect::Postgres, sql, &mut d, views);
            match (&d.verdict, &d.mask) {
                (Verdict::Deny { rule, message }, _) => {
                    assert_eq!(rule, "masking", "{sql}: {rule} {message}");
                    (true, true)
                }
                (_, Some(m)) => (m.taint, false),
                (_, None) => (false, false),
            }
        };
        for (sql, want) in [
            ("SELECT harmless(1)", (false, false)),
            ("SELECT leaks(1)", (true, false)),
            ("SELECT opaque(1)", (true, false)),
            ("SELECT keeps('x')", (false, false)),
            ("SELECT keeps(email) FROM customers", (true, true)),
            ("SELECT opaque(email) FROM customers", (true, true)),
            ("SELECT copies()", (true, true)),
            // One that may run any statement by itself could copy masked
            // data whatever it is given.
            ("SELECT dynamic(1)", (true, true)),
            ("SELECT lower(name) FROM items", (false, false)),
        ] {
            assert_eq!(check(sql, &looked_up(sql)), want, "{sql}");
        }
        // The functions could not be looked up: computed columns are
        // masked, and a statement reading masked data is refused.
        let unknown = ViewReads::default().with_functions(Err("down".into()));
        assert_eq!(check("SELECT harmless(1)", &unknown), (true, false));
        assert_eq!(check("SELECT email FROM customers", &unknown), (true, true));
    }

    #[test]
    fn errors_are_scrubbed_where_statements_involve_masked_columns() {
        let e = engine(
            "default = \"allow\"\n[[masks]]\ncolumns = [\"public.customers.email\"]\nmethod = \"redact\"",
        );
        let reads = |r: &[&str]| -> Arc<[String]> { r.iter().map(|s| s.to_string()).collect() };
        let functions = |names: &[(&str, &[&str])]| {
            ViewReads::default().with_functions(Ok(names
                .iter()
                .map(|(n, r)| (n.to_string(), reads(r)))
                .collect()))
        };
        // (scrub_errors, withhold_message) of each statement, with what the
        // proxy looked up for it.
        let check = |sql: &str, views: &ViewReads| {
            let mut d = e.decide(&who(&["agents"]), "shop", sql, NOON_WED);
            e.masks_through_views(SqlDialect::Postgres, sql, &mut d, views);
            let m = d.mask.expect(sql);
            (m.scrubs_errors(), m.withhold_message)
        };
        let none = ViewReads::default();
        for (sql, views, want) in [
            // Reads masked data.
            ("SELECT email::json FROM customers", &none, (true, false)),
            // Names a masked table: a constraint's DETAIL shows the row.
            (
                "UPDATE customers SET name = NULL WHERE id = 1",
                &none,
                (true, false),
            ),
            ("SELECT id FROM customers", &none, (true, false)),
            // Writes: the table's triggers could touch masked ones.
            ("INSERT INTO items VALUES (1)", &none, (true, false)),
            // Calls a function defined in the database that raises its own
            // messages, writes (triggers run) or cannot be read, with or
            // without masked data.
            (
                "SELECT r(1)",
                &functions(&[("r", &[REPORTS])]),
                (true, false),
            ),
            (
                "SELECT w(1)",
                &functions(&[("w", &["public.log", STORES_DATA])]),
                (true, false),
            ),
            (
                "SELECT r(email) FROM customers",
                &functions(&[("r", &[REPORTS])]),
                (true, true),
            ),
            (
                "SELECT o(email) FROM customers",
                &functions(&[("o", &[CALLS_FUNCTIONS])]),
                (true, true),
            ),
            (
                "SELECT g(1)",
                &functions(&[("g", &["public.customers", REPORTS])]),
                (true, true),
            ),
            // One that only reads: what it reports comes from the server's
            // own messages (quoted values), as for built-ins.
            (
                "SELECT f(1)",
                &functions(&[("f", &["public.items"])]),
                (false, false),
            ),
            (
                "SELECT f(email) FROM customers",
                &functions(&[("f", &[])]),
                (true, false),
            ),
            (
                "SELECT g(1)",
                &functions(&[("g", &["public.customers"])]),
                (true, false),
            ),
            // Involves no masked column: errors pass as they are.
            ("SELECT note::json FROM items", &none, (false, false)),
            ("SELECT upper(name) FROM items", &none, (false, false)),
        ] {
            assert_eq!(check(sql, views), want, "{sql}");
        }
    }

    #[test]
    fn texts_that_differ_in_constants_share_their_column_references() {
        let e = engine("");
        for (a, b) in [
            (
                "SELECT abalance FROM a WHERE aid = 1",
                "SELECT abalance FROM a WHERE aid = 2",
            ),
            (
                "SELECT email, 'x' || name FROM c WHERE note LIKE 'a%' LIMIT 5",
                "SELECT email, 'yy' || name FROM c WHERE note LIKE 'b%' LIMIT 10",
            ),
            (
                "INSERT INTO t (a, b) SELECT secret, 1 FROM c WHERE d > '2024-01-01'::date",
                "INSERT INTO t (a, b) SELECT secret, 2 FROM c WHERE d > '2025-01-01'::date",
            ),
            (
                "SELECT query_to_xml('select secret from c', true, false, '')",
                "SELECT query_to_xml('select 1', true, false, '')",
            ),
            (
                "SELECT pg_notify('c', 'v'), $$a$$, E'\\x'",
                "SELECT pg_notify('d', 'w'), $$b$$, E'\\y'",
            ),
        ] {
            let (ra, rb) = (
                e.column_refs_in(SqlDialect::Postgres, a),
                e.column_refs_in(SqlDialect::Postgres, b),
            );
            assert!(Arc::ptr_eq(&ra, &rb), "{a} / {b}");
            assert_eq!(*rb, column_refs(b), "{b}");
        }
        // Texts of other shapes are not.
        let (ra, rb) = (
            e.column_refs_in(SqlDialect::Postgres, "SELECT a FROM t WHERE b = 1"),
            e.column_refs_in(SqlDialect::Postgres, "SELECT a FROM t WHERE c = 1"),
        );
        assert!(!Arc::ptr_eq(&ra, &rb));
        assert_eq!(*rb, column_refs("SELECT a FROM t WHERE c = 1"));
    }

    const NOON_WED: i64 = 1_764_763_200_000; // 2025-12-03 12:00 UTC, a Wednesday

    fn decide(e: &Engine, groups: &[&str], sql: &str) -> Verdict {
        e.decide(&who(groups), "shop", sql, NOON_WED).verdict
    }

    fn http<'a>(
        method: &'a str,
        path: &'a str,
        action: Option<&'a str>,
        body: HttpBody<'a>,
    ) -> HttpRequest<'a> {
        HttpRequest {
            method,
            path,
            query: None,
            aws: action.is_some() || path.starts_with("/aws"),
            action,
            also: &[],
            class: if matches!(method, "GET" | "HEAD") {
                Class::Read
            } else {
                Class::Write
            },
            body,
        }
    }

    #[test]
    fn only_an_empty_allowing_policy_allows_everything() {
        assert!(Engine::empty().allows_everything());
        assert!(engine("").allows_everything());
        for policy in [
            "default = \"deny\"",
            "[[rules]]\nname = \"r\"\nstatements = [\"read\"]\naction = \"allow\"",
            "[[masks]]\ncolumns = [\"t.c\"]\nmethod = \"redact\"",
        ] {
            assert!(!engine(policy).allows_everything(), "{policy}");
        }
    }

    /// Decides `sql` as a session does: as strictly as what its EXECUTEs
    /// run, noting what its PREPAREs define.
    fn decide_following(
        e: &Engine,
        dialect: SqlDialect,
        who: &Principal,
        sql: &str,
        sources: &mut ResultSources,
    ) -> Verdict {
        let d = e.decide_in_session(dialect, who, "shop", sql, NOON_WED, None, sources);
        e.note_decided(dialect, sql, &d, sources, || true);
        d.verdict
    }

    #[test]
    fn statements_that_may_change_views_are_told_apart_whoever_sends_them() {
        let e = engine(
            r#"
default = "allow"
[[rules]]
name = "no-vault"
groups = ["agents"]
tables = ["vault"]
action = "deny"
"#,
        );
        let may = |groups: &[&str], sql: &str| {
            let d = e.decide(&who(groups), "shop", sql, NOON_WED);
            e.may_change_views(sql, &d)
        };
        assert!(may(&["agents"], "CREATE OR REPLACE VIEW v AS SELECT 1"));
        assert!(
            !may(&["agents"], "DO $$ BEGIN END $$"),
            "unseen code meets the rule's tables: refused"
        );
        assert!(!may(&["agents"], "SELECT * FROM t"));
        assert!(
            !may(&["agents"], "CREATE VIEW v AS SELECT * FROM vault"),
            "refused: it never ran"
        );
        // A caller no rule holds.
        assert!(may(&["ops"], "create or replace view v as select 1"));
        assert!(may(&["ops"], "SELECT 1; ALTER TABLE t RENAME TO u"));
        assert!(may(&["ops"], "DO $$ BEGIN END $$"));
        assert!(!may(&["ops"], "SELECT created FROM t"));
        // Where no rule on tables and no mask could use views: never.
        let plain = engine(
            "default = \"allow\"\n[[rules]]\nname = \"r\"\nstatements = [\"admin\"]\naction = \"deny\"\n",
        );
        let sql = "CREATE VIEW v AS SELECT 1";
        let d = plain.decide(&who(&[]), "shop", sql, NOON_WED);
        assert!(!plain.may_change_views(sql, &d));
    }

    #[test]
    fn a_deny_or_review_rule_on_a_table_is_met_through_a_view_over_it() {
        let e = engine(
            r#"
default = "deny"
[[rules]]
name = "no-vault"
statements = ["read", "write"]
tables = ["vault"]
action = "deny"
[[rules]]
name = "orders-reviewed"
tables_written = ["public.orders"]
action = "review"
approvers = ["dba"]
[[rules]]
name = "reads"
statements = ["read", "write", "other"]
action = "allow"
"#,
        );
        let bot = who(&["agents"]);
        let mut sources = ResultSources::default();
        let views = ViewReads::new([
            (
                "vault_v".to_string(),
                Arc::from(["public.vault".to_string()]),
            ),
            (
                "crm.summary".to_string(),
                Arc::from(["crm.totals".to_string(), "public.vault".to_string()]),
            ),
            (
                "orders_v".to_string(),
                Arc::from(["public.orders".to_string()]),
            ),
            (
                "plain_v".to_string(),
                Arc::from(["public.items".to_string()]),
            ),
            ("not_a_view".to_string(), Arc::from(Vec::<String>::new())),
        ]);
        assert!(e.table_rules_apply(&bot, "shop"));
        assert_eq!(
            e.to_resolve(
                SqlDialect::Postgres,
                &bot,
                "shop",
                "SELECT * FROM vault_v JOIN crm.summary USING (id)",
                &sources
            )
            .relations,
            vec!["crm.summary".to_string(), "vault_v".to_string()]
        );
        sources.set_views(views.clone());
        let decide = |sql: &str, sources: &ResultSources| {
            e.decide_in_session(
                SqlDialect::Postgres,
                &bot,
                "shop",
                sql,
                NOON_WED,
                None,
                sources,
            )
            .verdict
        };
        for sql in [
            "SELECT * FROM vault_v",
            "SELECT count(*) FROM crm.summary",
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM vault_v)",
            "UPDATE vault_v SET x = 1",
        ] {
            match decide(sql, &sources) {
                Verdict::Deny { rule, message } => {
                    assert_eq!(rule, "no-vault", "{sql}");
                    assert!(message.contains("which reads"), "{sql}: {message}");
                    assert!(message.contains("public.vault"), "{sql}: {message}");
                }
                v => panic!("{sql}: {v:?}"),
            }
        }
        // A write through a view is a write of its table.
        assert!(matches!(
            decide("INSERT INTO orders_v VALUES (1)", &sources),
            Verdict::Review { rule, .. } if rule == "orders-reviewed"
        ));
        // Reading it is not.
        assert!(matches!(
            decide("SELECT * FROM orders_v", &sources),
            Verdict::Allow { .. }
        ));
        // Views over other tables, and names that are not views.
        for sql in ["SELECT * FROM plain_v", "SELECT * FROM not_a_view"] {
            assert!(
                matches!(decide(sql, &sources), Verdict::Allow { .. }),
                "{sql}"
            );
        }
        // Without the catalog's answer the view is another name; when the
        // catalog could not be asked, table conditions count as met.
        sources.clear_views();
        assert!(matches!(
            decide("SELECT * FROM vault_v", &sources),
            Verdict::Allow { .. }
        ));
        sources.set_views(ViewReads::unknown("timed out".into()));
        match decide("SELECT * FROM items", &sources) {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "no-vault");
                assert!(message.contains("timed out"), "{message}");
            }
            v => panic!("{v:?}"),
        }
        // SQL's PREPARE of a read of the view is decided through it, and
        // so is the EXECUTE of a name prepared so before the rule came: the
        // names its text reads are looked up for it.
        sources.set_views(views);
        assert!(matches!(
            decide("PREPARE p AS SELECT * FROM vault_v", &sources),
            Verdict::Deny { .. }
        ));
        sources.define(
            "statement:q",
            &Arc::from("PREPARE q AS SELECT * FROM vault_v"),
        );
        assert_eq!(
            e.to_resolve(SqlDialect::Postgres, &bot, "shop", "EXECUTE q", &sources)
                .relations,
            vec!["vault_v".to_string()]
        );
        match decide("EXECUTE q", &sources) {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "no-vault");
                assert!(message.contains("the view vault_v"), "{message}");
            }
            v => panic!("{v:?}"),
        }
        // Allow rules are not widened: a view over an allowed table is not
        // allowed by a rule naming the table.
        let allow_only = engine(
            "default = \"deny\"\n[[rules]]\nname = \"vault-ok\"\ntables = [\"vault\"]\naction = \"allow\"\n",
        );
        assert!(!allow_only.table_rules_apply(&bot, "shop"));
        assert!(matches!(
            allow_only
                .decide_in_session(
                    SqlDialect::Postgres,
                    &bot,
                    "shop",
                    "SELECT * FROM vault_v",
                    NOON_WED,
                    None,
                    &sources
                )
                .verdict,
            Verdict::Deny { rule, .. } if rule == "default"
        ));
    }

    #[test]
    fn execute_is_decided_as_strictly_as_every_text_that_prepared_its_name() {
        let e = engine(
            r#"
[[rules]]
name = "no-writes"
statements = ["write"]
action = "deny"
"#,
        );
        let bot = who(&["agents"]);
        let mut sources = ResultSources::default();
        let decide = |sql: &str, sources: &mut ResultSources| {
            decide_following(&e, SqlDialect::Postgres, &bot, sql, sources)
        };
        let allowed = |v: &Verdict| matches!(v, Verdict::Allow { .. });
        assert!(allowed(&decide("PREPARE r AS SELECT 1", &mut sources)));
        assert!(allowed(&decide("EXECUTE r", &mut sources)));
        // Prepared while allowed elsewhere (the server may keep this text
        // rather than a later one): every EXECUTE of the name is refused,
        // saying what it runs.
        let del = "PREPARE r AS DELETE FROM t WHERE id = $1";
        sources.define("statement:r", &Arc::from(del));
        for sql in [
            "EXECUTE r(1)",
            "EXPLAIN ANALYZE EXECUTE r(1)",
            "SELECT 1; EXECUTE r(2)",
        ] {
            match decide(sql, &mut sources) {
                Verdict::Deny { rule, message } => {
                    assert_eq!(rule, "no-writes", "{sql}");
                    assert!(
                        message.ends_with(&format!(
                            "(EXECUTE runs the statement prepared as r: {del})"
                        )),
                        "{message}"
                    );
                }
                v => panic!("{sql}: {v:?}"),
            }
        }
        // Defined and run in one string: the string's own verdict covers it.
        assert!(allowed(&decide(
            "PREPARE s AS SELECT 2; EXECUTE s",
            &mut sources
        )));
        assert!(!allowed(&decide(
            "PREPARE w AS DELETE FROM t; EXECUTE w",
            &mut sources
        )));
        // A name never seen prepared cannot be decided.
        assert!(matches!(
            decide("EXECUTE nobody", &mut sources),
            Verdict::Deny { rule, .. } if rule == "no-writes" || rule == "unparsed"
        ));
        assert_eq!(
            e.prepared_texts(SqlDialect::Postgres, "EXECUTE r(3)", &sources)
                .iter()
                .map(|(n, t)| format!("{n}={t}"))
                .collect::<Vec<_>>(),
            ["r=PREPARE r AS SELECT 1", format!("r={del}").as_str()]
        );
    }

    #[test]
    fn a_mysql_execute_is_decided_as_the_text_its_name_was_prepared_from() {
        let e = engine(
            r#"
[[rules]]
name = "no-secrets"
statements = ["read"]
tables = ["secrets"]
action = "deny"
"#,
        );
        let bot = who(&["agents"]);
        let mut sources = ResultSources::default();
        let decide = |sql: &str, sources: &mut ResultSources| {
            decide_following(&e, SqlDialect::Mysql, &bot, sql, sources)
        };
        let allowed = |v: &Verdict| matches!(v, Verdict::Allow { .. });
        assert!(allowed(&decide(
            "PREPARE Ok_1 FROM 'SELECT 6 * 7'",
            &mut sources
        )));
        // Names are not case-sensitive, and may be quoted.
        for sql in ["EXECUTE ok_1", "EXECUTE `OK_1`", "execute OK_1 USING @a"] {
            assert!(allowed(&decide(sql, &mut sources)), "{sql}");
        }
        // PREPARE itself is an admin statement, which the rule does not
        // name; what it prepares is refused when it runs.
        assert!(allowed(&decide(
            "PREPARE s FROM 'SELECT * FROM secrets'",
            &mut sources
        )));
        assert!(!allowed(&decide("EXECUTE s", &mut sources)));
        // Prepared before the rule came (under a policy with none): every
        // EXECUTE of the name is decided as the text it runs (a read of
        // the table, though PREPARE itself is an admin statement), in
        // every form that runs it.
        let before = engine("");
        before.note_prepared(
            SqlDialect::Mysql,
            "PREPARE old FROM 'SELECT email FROM secrets WHERE id = ?'",
            &mut sources,
        );
        for sql in [
            "EXECUTE old USING @id",
            "/*!EXECUTE old */",
            "SELECT 1; EXECUTE old",
            "EXECUTE IMMEDIATE 'EXECUTE old'",
        ] {
            match decide(sql, &mut sources) {
                Verdict::Deny { rule, message } => {
                    assert_eq!(rule, "no-secrets", "{sql}");
                    assert!(
                        message.ends_with(
                            "(EXECUTE runs the statement prepared as old: SELECT email FROM secrets WHERE id = ?)"
                        ),
                        "{sql}: {message}"
                    );
                }
                v => panic!("{sql}: {v:?}"),
            }
        }
        // A name prepared from a variable runs what nobody saw: decided as
        // its PREPARE is.
        let vars = engine(
            r#"
[[rules]]
name = "no-secrets"
tables = ["secrets"]
action = "deny"
"#,
        );
        before.note_prepared(SqlDialect::Mysql, "PREPARE v FROM @s", &mut sources);
        let v = decide_following(&vars, SqlDialect::Mysql, &bot, "EXECUTE v", &mut sources);
        assert!(!allowed(&v), "{v:?}");
        // A name never seen prepared cannot be decided.
        assert!(matches!(
            decide("EXECUTE nobody", &mut sources),
            Verdict::Deny { rule, .. } if rule == "no-secrets"
        ));
        assert_eq!(
            e.reviewed_text(SqlDialect::Mysql, "EXECUTE OLD", &sources),
            "EXECUTE OLD\n-- old was prepared as: SELECT email FROM secrets WHERE id = ?"
        );
    }

    #[test]
    fn http_requests_match_methods_paths_actions_and_json() {
        let e = engine(
            r#"
[[rules]]
name = "no-deletes-on-crm"
connections = ["shop"]
methods = ["DELETE"]
paths = ["/customers/*"]
action = "deny"

[[rules]]
name = "refunds-reviewed"
methods = ["post"]
paths = ["/refunds"]
action = "review"
approvers = ["dba"]

[[rules]]
name = "big"
json = [{ path = "$.amount", pattern = "^[0-9]{5,}$" }]
action = "deny"

[[rules]]
name = "no-s3-deletes"
actions = ["s3:Delete*"]
action = "deny"

[[rules]]
name = "sql-only"
tables = ["customers"]
action = "deny"
"#,
        );
        let who = who(&["agents"]);
        let v = |r: &HttpRequest<'_>| e.decide_http(&who, "shop", r, NOON_WED, None).verdict;
        let empty = HttpBody::Empty;
        assert_eq!(
            v(&http("GET", "/customers/1", None, empty)),
            Verdict::Allow { rule: None }
        );
        assert!(
            matches!(v(&http("DELETE", "/customers/1", None, empty)), Verdict::Deny { rule, .. } if rule == "no-deletes-on-crm")
        );
        assert!(matches!(
            v(&http("DELETE", "/CUSTOMERS/1", None, empty)),
            Verdict::Deny { .. }
        ));
        assert!(
            matches!(v(&http("POST", "/refunds", None, empty)), Verdict::Review { rule, .. } if rule == "refunds-reviewed")
        );
        let small = serde_json::json!({"amount": 120});
        let big = serde_json::json!({"amount": 123456});
        assert!(matches!(
            v(&http("POST", "/refunds", None, HttpBody::Json(&small))),
            Verdict::Review { .. }
        ));
        // Deny beats review.
        assert!(
            matches!(v(&http("POST", "/refunds", None, HttpBody::Json(&big))), Verdict::Deny { rule, .. } if rule == "big")
        );
        // A body that cannot be read meets deny conditions on it (fail closed).
        assert!(
            matches!(v(&http("PUT", "/x", None, HttpBody::Unreadable)), Verdict::Deny { rule, .. } if rule == "big")
        );
        assert_eq!(
            v(&http("PUT", "/x", None, HttpBody::Empty)),
            Verdict::Allow { rule: None }
        );
        // AWS actions: by name, by the IAM permission, and unknown ones.
        assert!(
            matches!(v(&http("DELETE", "/b/k", Some("s3:DeleteObject"), empty)), Verdict::Deny { rule, .. } if rule == "no-s3-deletes")
        );
        assert_eq!(
            v(&http("GET", "/b/k", Some("s3:GetObject"), empty)),
            Verdict::Allow { rule: None }
        );
        assert!(
            matches!(v(&http("POST", "/aws/b", None, empty)), Verdict::Deny { rule, .. } if rule == "no-s3-deletes")
        );
        let also = vec!["s3:DeleteObject".to_string()];
        let mut batch = http("POST", "/b", Some("s3:RemoveMany"), empty);
        batch.also = &also;
        assert!(matches!(v(&batch), Verdict::Deny { rule, .. } if rule == "no-s3-deletes"));
        // SQL rules never match requests; HTTP rules never match SQL.
        assert_eq!(
            v(&http("GET", "/customers", None, empty)),
            Verdict::Allow { rule: None }
        );
        assert_eq!(
            decide(&e, &["agents"], "DELETE FROM orders"),
            Verdict::Allow { rule: None }
        );
    }

    #[test]
    fn grants_cover_http_requests_by_class_and_masks_come_with_the_decision() {
        let e = engine(
            r#"
default = "deny"

[[rules]]
name = "reads"
methods = ["GET"]
action = "allow"

[[masks]]
json_paths = ["$..email"]
method = "redact"
"#,
        );
        let who = who(&["agents"]);
        let empty = HttpBody::Empty;
        let d = e.decide_http(
            &who,
            "crm",
            &http("POST", "/x", None, empty),
            NOON_WED,
            None,
        );
        assert!(matches!(d.verdict, Verdict::Deny { ref rule, .. } if rule == "default"));
        assert!(d.mask.is_none());
        let d = e.decide_http(
            &who,
            "crm",
            &http("POST", "/x", None, empty),
            NOON_WED,
            Some(("g1", Level::Write)),
        );
        assert_eq!(
            d.verdict,
            Verdict::Allow {
                rule: Some("grant:g1".into())
            }
        );
        let d = e.decide_http(
            &who,
            "crm",
            &http("POST", "/x", None, empty),
            NOON_WED,
            Some(("g1", Level::Read)),
        );
        assert!(matches!(d.verdict, Verdict::Deny { .. }));
        let d = e.decide_http(&who, "crm", &http("GET", "/x", None, empty), NOON_WED, None);
        let mut doc = serde_json::json!({"a": [{"email": "x@y.z"}]});
        assert_eq!(d.mask.expect("masked").plan.mask_json(&mut doc, b"k"), 1);
        assert_eq!(doc, serde_json::json!({"a": [{"email": "[REDACTED]"}]}));
    }

    #[test]
    fn the_documented_read_only_rule() {
        let e = engine(
            r#"
[[rules]]
name = "agents-read-only"
connections = ["shop"]
groups = ["agents"]
statements = ["write", "ddl", "dcl", "admin"]
action = "deny"
message = "agents are read-only on shop"
"#,
        );
        assert_eq!(
            decide(&e, &["agents"], "SELECT * FROM t"),
            Verdict::Allow { rule: None }
        );
        match decide(
            &e,
            &["agents"],
            "WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x",
        ) {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "agents-read-only");
                assert_eq!(message, "agents are read-only on shop");
            }
            v => panic!("{v:?}"),
        }
        match decide(&e, &["agents"], "SELECT pg_terminate_backend(1)") {
            Verdict::Deny { message, .. } => {
                assert!(message.contains("calls pg_terminate_backend"), "{message}")
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(
            decide(&e, &["humans"], "DROP TABLE t"),
            Verdict::Allow { rule: None },
            "other groups are not concerned"
        );
        assert_eq!(
            e.decide(&who(&["agents"]), "crm", "DROP TABLE t", NOON_WED)
                .verdict,
            Verdict::Allow { rule: None },
            "other connections are not concerned"
        );
    }

    #[test]
    fn deny_beats_review_beats_allow() {
        let e = engine(
            r#"
[[rules]]
name = "ok"
action = "allow"
[[rules]]
name = "check-deletes"
statements = ["write"]
action = "review"
approvers = ["dba"]
[[rules]]
name = "no-orders"
tables = ["public.orders"]
action = "deny"
"#,
        );
        assert_eq!(
            decide(&e, &[], "SELECT 1"),
            Verdict::Allow {
                rule: Some("ok".into())
            }
        );
        assert!(
            matches!(decide(&e, &[], "DELETE FROM t"), Verdict::Review { rule, .. } if rule == "check-deletes")
        );
        assert!(
            matches!(decide(&e, &[], "DELETE FROM orders"), Verdict::Deny { rule, .. } if rule == "no-orders")
        );
        assert!(
            matches!(decide(&e, &[], "select * from PUBLIC.orders"), Verdict::Deny { rule, .. } if rule == "no-orders")
        );
        assert_eq!(
            decide(&e, &[], "SELECT * FROM crm.orders"),
            Verdict::Allow {
                rule: Some("ok".into())
            },
            "another schema's table"
        );
    }

    #[test]
    fn unparsed_statements_are_denied_unless_a_rule_allows_them() {
        let e = engine(
            "default = \"allow\"\n[[rules]]\nname = \"x\"\nstatements = [\"admin\"]\naction = \"deny\"\n",
        );
        match decide(&e, &[], "SELEC 1") {
            Verdict::Deny { rule, message } => {
                assert_eq!(
                    rule, "x",
                    "a deny rule's conditions count as met for unparsed text"
                );
                assert!(!message.is_empty());
            }
            v => panic!("{v:?}"),
        }
        let e = engine("[[rules]]\nname = \"t\"\ntables = [\"secrets\"]\naction = \"allow\"\n");
        assert!(
            matches!(decide(&e, &[], "SELEC 1"), Verdict::Deny { rule, .. } if rule == "unparsed")
        );
        let e = engine("[[rules]]\nname = \"legacy\"\nunparsed = true\naction = \"allow\"\n");
        assert_eq!(
            decide(&e, &[], "SELEC 1"),
            Verdict::Allow {
                rule: Some("legacy".into())
            }
        );
    }

    #[test]
    fn code_the_analysis_cannot_see_meets_table_and_function_conditions_of_deny_rules() {
        let e = engine(
            "default = \"allow\"\n[[rules]]\nname = \"no-secrets\"\ntables = [\"secrets\"]\naction = \"deny\"\n\
             [[rules]]\nname = \"no-files\"\nfunctions = [\"pg_read_file\"]\nstatements = [\"read\"]\naction = \"deny\"\n",
        );
        let my = |sql: &str| {
            e.decide_in(SqlDialect::Mysql, &who(&[]), "shop", sql, NOON_WED)
                .verdict
        };
        // A DO block could read any table.
        match decide(&e, &[], "DO $$ BEGIN PERFORM count(*) FROM secrets; END $$") {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "no-secrets");
                assert!(message.contains("denied by rule no-secrets"), "{message}");
            }
            v => panic!("{v:?}"),
        }
        // MySQL: text from a variable, EXECUTE IMMEDIATE.
        for sql in [
            "PREPARE p FROM @s",
            "EXECUTE IMMEDIATE @s",
            "EXECUTE IMMEDIATE CONCAT('SELECT * FROM ', 'orders')",
            "EXECUTE IMMEDIATE 'SELECT * FROM secrets'",
            "EXECUTE IMMEDIATE 'EXECUTE IMMEDIATE ''SELECT * FROM secrets'''",
        ] {
            assert!(
                matches!(my(sql), Verdict::Deny { ref rule, .. } if rule == "no-secrets"),
                "{sql}: {:?}",
                my(sql)
            );
        }
        // What the analysis does see is decided as what it is.
        assert_eq!(
            my("PREPARE p FROM 'SELECT * FROM orders'"),
            Verdict::Allow { rule: None }
        );
        assert!(matches!(
            my("PREPARE p FROM 'SELECT * FROM secrets'"),
            Verdict::Deny { rule, .. } if rule == "no-secrets"
        ));
        assert_eq!(my("EXECUTE p USING @a"), Verdict::Allow { rule: None });
        assert_eq!(
            my("EXECUTE IMMEDIATE 'SELECT * FROM orders WHERE id = ?' USING 1"),
            Verdict::Allow { rule: None }
        );
        assert_eq!(
            decide(&e, &[], "SELECT * FROM orders"),
            Verdict::Allow { rule: None }
        );
        // Other conditions still apply: no-files is for reads only.
        let e = engine(
            "[[rules]]\nname = \"no-files\"\nfunctions = [\"pg_read_file\"]\nstatements = [\"read\"]\naction = \"deny\"\n\
             [[rules]]\nname = \"open\"\naction = \"allow\"\n",
        );
        assert_eq!(
            decide(&e, &[], "DO $$ BEGIN PERFORM 1; END $$"),
            Verdict::Allow {
                rule: Some("open".into())
            }
        );
        // An allow rule's tables are not met by code nobody can see.
        let e = engine(
            "default = \"deny\"\n[[rules]]\nname = \"orders\"\ntables = [\"orders\"]\naction = \"allow\"\n",
        );
        assert!(matches!(
            decide(&e, &[], "DO $$ BEGIN PERFORM count(*) FROM orders; END $$"),
            Verdict::Deny { rule, .. } if rule == "default"
        ));
    }

    #[test]
    fn functions_patterns_and_time() {
        let e = engine(
            r#"
[[rules]]
name = "no-dblink"
functions = ["dblink*"]
action = "deny"
[[rules]]
name = "no-sleep-text"
pattern = "(?i)pg_sleep"
action = "deny"
[[rules]]
name = "office-hours-writes"
statements = ["write"]
hours = "18:00-08:00"
action = "deny"
[[rules]]
name = "weekend"
statements = ["ddl"]
days = ["sat", "sun"]
action = "deny"
"#,
        );
        assert!(
            matches!(decide(&e, &[], "SELECT dblink_exec('x', 'y')"), Verdict::Deny { rule, .. } if rule == "no-dblink")
        );
        assert!(
            matches!(decide(&e, &[], "select PG_SLEEP(1)"), Verdict::Deny { rule, .. } if rule == "no-sleep-text")
        );
        assert_eq!(
            decide(&e, &[], "UPDATE t SET a = 1"),
            Verdict::Allow { rule: None },
            "noon is inside office hours"
        );
        let night = NOON_WED + 10 * 3_600_000; // 22:00
        assert!(
            matches!(e.decide(&who(&[]), "shop", "UPDATE t SET a = 1", night).verdict, Verdict::Deny { rule, .. } if rule == "office-hours-writes")
        );
        assert_eq!(
            decide(&e, &[], "CREATE TABLE x (a int)"),
            Verdict::Allow { rule: None }
        );
        let saturday = NOON_WED + 3 * 86_400_000;
        assert!(
            matches!(e.decide(&who(&[]), "shop", "CREATE TABLE x (a int)", saturday).verdict, Verdict::Deny { rule, .. } if rule == "weekend")
        );
    }

    #[test]
    fn default_deny() {
        let e = engine(
            "default = \"deny\"\n[[rules]]\nname = \"reads\"\nstatements = [\"read\"]\naction = \"allow\"\n",
        );
        assert_eq!(
            decide(&e, &[], "SELECT 1"),
            Verdict::Allow {
                rule: Some("reads".into())
            }
        );
        assert!(
            matches!(decide(&e, &[], "INSERT INTO t VALUES (1)"), Verdict::Deny { rule, .. } if rule == "default")
        );
    }

    fn decide_mysql(e: &Engine, groups: &[&str], sql: &str) -> Verdict {
        e.decide_in(SqlDialect::Mysql, &who(groups), "shop", sql, NOON_WED)
            .verdict
    }

    #[test]
    fn mysql_statements_meet_the_same_rules() {
        let e = engine(
            r#"
[[rules]]
name = "read-only"
statements = ["write"]
action = "deny"
[[rules]]
name = "no-users"
tables = ["users"]
action = "deny"
[[rules]]
name = "no-file-reads"
functions = ["load_file"]
action = "deny"
"#,
        );
        assert!(
            matches!(decide_mysql(&e, &[], "DELETE FROM orders"), Verdict::Deny { rule, .. } if rule == "read-only")
        );
        assert!(
            matches!(decide_mysql(&e, &[], "SELECT 1 /*! ; DELETE FROM orders */"), Verdict::Deny { rule, .. } if rule == "read-only"),
            "an executable comment is code"
        );
        assert_eq!(
            decide_mysql(&e, &[], "SELECT * FROM orders"),
            Verdict::Allow { rule: None }
        );
        for sql in [
            "SELECT * FROM `users`",
            "SELECT * FROM shop.users",
            "SELECT * FROM `Shop`.`Users` u",
            "SELECT 1 FROM dual WHERE EXISTS (SELECT 1 FROM users)",
        ] {
            assert!(
                matches!(decide_mysql(&e, &[], sql), Verdict::Deny { ref rule, .. } if rule == "no-users"),
                "{sql}"
            );
        }
        assert!(
            matches!(decide_mysql(&e, &[], "SELECT LOAD_FILE('/etc/passwd')"), Verdict::Deny { rule, .. } if rule == "no-file-reads")
        );
        // Text that does not parse is refused (fail closed), naming why.
        match decide_mysql(&e, &[], "HANDLER t READ NEXT; FOO") {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "read-only", "deny rules count as met: {message}");
            }
            v => panic!("{v:?}"),
        }
        let e = engine("[[rules]]\nname = \"t\"\ntables = [\"x\"]\naction = \"allow\"\n");
        match decide_mysql(&e, &[], "SELECT `unterminated") {
            Verdict::Deny { rule, message } => {
                assert_eq!(rule, "unparsed");
                assert!(message.contains("not closed"), "{message}");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn dialects_have_their_own_caches() {
        let e = engine("[[rules]]\nname = \"w\"\nstatements = [\"write\"]\naction = \"deny\"\n");
        // A backtick means nothing to PostgreSQL; in MySQL it quotes a name.
        let sql = "SELECT `a` FROM t";
        for _ in 0..2 {
            assert_eq!(e.analysis_in(SqlDialect::Postgres, sql).class, None);
            assert_eq!(
                e.analysis_in(SqlDialect::Mysql, sql).class,
                Some(gatehouse_core::policy::spec::Class::Read)
            );
        }
        // '\'' ends a string in PostgreSQL but not in MySQL's default mode.
        assert_eq!(
            e.analysis("SELECT 'a\\'").class,
            Some(gatehouse_core::policy::spec::Class::Read)
        );
        assert_eq!(e.analysis_in(SqlDialect::Mysql, "SELECT 'a\\'").class, None);
        assert!(matches!(
            e.decide(&who(&[]), "shop", "SELECT 'a\\'", NOON_WED)
                .verdict,
            Verdict::Allow { .. }
        ));
        assert!(
            matches!(decide_mysql(&e, &[], "SELECT 'a\\'"), Verdict::Deny { rule, .. } if rule == "w")
        );
        assert_eq!(
            SqlDialect::for_connection(gatehouse_core::model::ConnectionKind::Mysql),
            Some(SqlDialect::Mysql)
        );
        assert_eq!(
            SqlDialect::for_connection(gatehouse_core::model::ConnectionKind::Http),
            None
        );
    }

    #[test]
    fn a_statement_too_deep_to_walk_is_refused_under_column_masks_unless_a_query() {
        let e = engine(
            r#"
[[masks]]
columns = ["public.customers.email"]
method = "redact"
"#,
        );
        let nested = |depth: usize| format!("{}1{}", "(1 + ".repeat(depth), ")".repeat(depth));
        let deep = nested(400);
        assert!(
            column_refs(&format!("SELECT {deep}")).is_none(),
            "the walk's depth limit is reached"
        );
        let d = e.decide(
            &who(&[]),
            "shop",
            &format!("INSERT INTO t SELECT {deep}"),
            NOON_WED,
        );
        assert!(
            matches!(d.verdict, Verdict::Deny { ref rule, .. } if rule == "masking"),
            "{:?}",
            d.verdict
        );
        let d = e.decide(&who(&[]), "shop", &format!("SELECT {deep}"), NOON_WED);
        assert_eq!(d.verdict, Verdict::Allow { rule: None });
        // A statement the walk reaches the end of is decided as usual.
        let d = e.decide(
            &who(&[]),
            "shop",
            &format!("INSERT INTO t SELECT {}", nested(20)),
            NOON_WED,
        );
        assert_eq!(d.verdict, Verdict::Allow { rule: None });
    }

    #[test]
    fn mysql_masking() {
        let e = engine(
            r#"
[[masks]]
columns = ["shop.customers.email"]
method = "redact"
"#,
        );
        let mask = |sql: &str| {
            let d = e.decide_in(SqlDialect::Mysql, &who(&[]), "shop", sql, NOON_WED);
            (d.verdict, d.mask.map(|m| m.taint))
        };
        // A computed column that mentions a masked column is tainted.
        for sql in [
            "SELECT CONCAT(c.email, '') FROM customers c",
            "SELECT upper(email) FROM shop.customers",
            "SELECT CASE WHEN id > 0 THEN email END FROM customers",
            "SELECT JSON_OBJECT('e', email) FROM customers",
            "SELECT GROUP_CONCAT(email) FROM customers",
            "SELECT * FROM customers",
            "SELECT /*!40001 upper(email) AS e, */ 1 FROM customers",
        ] {
            assert_eq!(
                mask(sql),
                (Verdict::Allow { rule: None }, Some(true)),
                "{sql}"
            );
        }
        for sql in [
            "SELECT count(*) FROM customers",
            "SELECT upper(name) FROM customers",
            "SELECT upper(email) FROM staff",
        ] {
            assert_eq!(
                mask(sql),
                (Verdict::Allow { rule: None }, Some(false)),
                "{sql}"
            );
        }
        let plan = e.mask_plan(&who(&[]), "shop").expect("a plan");
        assert!(
            e.mask_for_in(
                SqlDialect::Mysql,
                plan.clone(),
                "SELECT upper(`email`) FROM `customers`"
            )
            .taint
        );
        assert!(
            !e.mask_for_in(
                SqlDialect::Mysql,
                plan.clone(),
                "SELECT upper(`name`) FROM `customers`"
            )
            .taint
        );
        assert!(
            e.mask_for_in(SqlDialect::Mysql, plan, "SELEC garbage")
                .taint,
            "unparsed counts as tainted"
        );
        // Statements prepared from text could read masked columns unseen;
        // and INTO OUTFILE writes masked data to a file.
        for sql in [
            "PREPARE s FROM @q",
            "EXECUTE s",
            "SELECT email FROM customers INTO OUTFILE '/tmp/x'",
        ] {
            assert!(
                matches!(mask(sql).0, Verdict::Deny { ref rule, .. } if rule == "masking"),
                "{sql}"
            );
        }
        match mask("SELECT email FROM customers INTO OUTFILE '/tmp/x'").0 {
            Verdict::Deny { message, .. } => assert!(message.contains("INTO OUTFILE"), "{message}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn globs() {
        assert!(glob("dblink*", "dblink_exec"));
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbbd"));
        assert!(table_matches("public.orders", "orders"));
        assert!(table_matches("orders", "crm.orders"));
        assert!(!table_matches("public.orders", "crm.orders"));
        assert!(table_matches("crm.*", "crm.anything"));
    }
}
