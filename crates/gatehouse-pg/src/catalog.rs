//! Where result columns come from: table OIDs in a `RowDescription` are
//! resolved against the upstream's catalog, over a separate short-lived
//! connection opened with the stored credential, and cached per connection
//! and OID. A view is resolved to the table columns it reads (through
//! `pg_depend`), so a view over a masked column is masked too; a partition
//! or inheritance child to the tables above it (`pg_inherits`), whose
//! columns it shares by name, so its rows are masked as theirs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use gatehouse_core::secret::Secret;
use gatehouse_policy::ViewCache;
use tokio::io::AsyncReadExt;

use crate::codec;
use crate::stream::write_flush;
use crate::upstream::{self, Target};
use crate::values::UserType;

/// A table, view or other relation, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// `pg_class.relkind`: `r` table, `v` view, `m` materialized view, …
    pub kind: char,
    /// Column number → name.
    pub columns: HashMap<i16, String>,
    /// For views: the (table OID, column number) pairs the view reads.
    pub reads: Vec<(u32, i16)>,
    /// For tables: the tables it is a partition or an inheritance child
    /// of (`pg_inherits`), whose columns it shares by name.
    pub parents: Vec<u32>,
    /// For views whose definition calls functions defined in the database
    /// (outside `pg_catalog` and `information_schema`): what those may
    /// read, as [`Catalog::functions`] gives it (empty for other views).
    pub function_reads: Arc<[String]>,
}

/// How long a resolved relation is trusted (renamed columns are seen after this).
const TTL: Duration = Duration::from_secs(60);
/// Cached relations, at most (the cache is emptied when full).
const MAX_CACHED: usize = 50_000;
/// Views over views are followed this deep; deeper counts as unresolved.
const MAX_DEPTH: usize = 8;
const CATALOG_LIMIT: usize = 16 << 20;

/// Access to one connection's catalog.
#[derive(Debug, Clone)]
pub struct CatalogAccess {
    pub connection: String,
    pub target: Target,
    pub password: Option<Secret>,
}

/// What was read of a connection's catalog, by OID, and when: trusted for
/// [`TTL`], at most [`MAX_CACHED`] entries (emptied when full).
#[derive(Debug)]
struct Cache<V>(Mutex<HashMap<(String, u32), (Instant, V)>>);

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> Cache<V> {
    /// The map, whatever a panic elsewhere left it as.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), (Instant, V)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, connection: &str, oid: u32) -> Option<V> {
        self.lock()
            .get(&(connection.to_string(), oid))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    /// Puts what is cached of `wanted` into `out`; the rest, to be fetched.
    fn known(&self, connection: &str, wanted: &[u32], out: &mut HashMap<u32, V>) -> Vec<u32> {
        let mut missing = Vec::new();
        for o in wanted {
            match self.get(connection, *o) {
                Some(v) => {
                    out.insert(*o, v);
                }
                None => missing.push(*o),
            }
        }
        missing
    }

    /// Forgets what is cached for `connection`.
    fn forget(&self, connection: &str) {
        self.lock().retain(|(c, _), _| c != connection);
    }

    fn store(&self, connection: &str, found: &HashMap<u32, V>) {
        let mut g = self.lock();
        if g.len() + found.len() > MAX_CACHED {
            g.clear();
        }
        let now = Instant::now();
        for (oid, v) in found {
            g.insert((connection.to_string(), *oid), (now, v.clone()));
        }
    }
}

#[derive(Debug)]
pub struct Catalog {
    relations: Cache<Arc<Relation>>,
    types: Cache<UserType>,
    views: ViewCache,
    /// What calling each function (or operator, or what runs implicitly)
    /// defined in the database may read and do, by name
    /// ([`Self::functions`]).
    functions: ViewCache<Arc<[String]>>,
    /// Moves each time what views read may have changed somewhere
    /// ([`Self::forget_views`]): sessions then resolve their results'
    /// relations again ([`crate::mask::Session::keep_up`]).
    changes: AtomicU64,
    /// How long one look-up (connecting, logging in, the queries) may take.
    timeout: Duration,
}

/// How long a look-up waits for the upstream by default: results wait for
/// it, so an upstream that accepts but does not answer must not hold them
/// for long.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Catalog {
    fn default() -> Self {
        Self::with_timeout(LOOKUP_TIMEOUT)
    }
}

/// A short-lived session on the upstream for catalog queries, opened at
/// the first query and ended when dropped with [`CatalogSession::end`].
struct CatalogSession<'a> {
    access: &'a CatalogAccess,
    up: Option<upstream::Upstream>,
}

impl<'a> CatalogSession<'a> {
    fn new(access: &'a CatalogAccess) -> Self {
        Self { access, up: None }
    }

    async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        if self.up.is_none() {
            self.up = Some(
                upstream::connect(
                    &self.access.target,
                    self.access.password.as_ref(),
                    &[("application_name", "gatehouse catalog")],
                )
                .await
                .map_err(|e| e.to_string())?,
            );
        }
        let Some(up) = self.up.as_mut() else {
            return Err("no catalog session".into());
        };
        simple_query(up, sql).await
    }

    async fn end(self) {
        if let Some(mut up) = self.up {
            let mut b = BytesMut::new();
            b.extend_from_slice(b"X\0\0\0\x04");
            let _ = write_flush(&mut up.stream, &b).await;
        }
    }
}

impl Catalog {
    /// A catalog whose look-ups give up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            relations: Cache::default(),
            types: Cache::default(),
            views: ViewCache::new(TTL, MAX_CACHED),
            functions: ViewCache::new(TTL, MAX_CACHED),
            changes: AtomicU64::new(0),
            timeout,
        }
    }

    /// `lookup`, given up (as an error) after the catalog's timeout.
    async fn bounded<T>(
        &self,
        lookup: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::time::timeout(self.timeout, lookup)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the upstream did not answer within {:?}",
                    self.timeout
                ))
            })
    }

    /// What the catalog says of the types `oids` (created in the database,
    /// see [`crate::values::needs_catalog`]) and of the types they are made
    /// of, transitively. A type the catalog does not know is absent.
    pub async fn types(
        &self,
        access: &CatalogAccess,
        oids: &[u32],
    ) -> Result<HashMap<u32, UserType>, String> {
        self.bounded(self.types_unbounded(access, oids)).await
    }

    async fn types_unbounded(
        &self,
        access: &CatalogAccess,
        oids: &[u32],
    ) -> Result<HashMap<u32, UserType>, String> {
        let mut out = HashMap::new();
        let mut wanted: Vec<u32> = oids.to_vec();
        let mut session = CatalogSession::new(access);
        let mut result = Ok(());
        for _ in 0..=MAX_DEPTH {
            wanted.retain(|o| crate::values::needs_catalog(*o) && !out.contains_key(o));
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                break;
            }
            let missing = self.types.known(&access.connection, &wanted, &mut out);
            let mut parts = Vec::new();
            if !missing.is_empty() {
                match fetch_types(&mut session, &missing).await {
                    Ok((fresh, made_of)) => {
                        self.types.store(&access.connection, &fresh);
                        out.extend(fresh);
                        parts = made_of;
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            // What the types found are made of: array elements and
            // domains' base types (a composite's fields were fetched with it).
            parts.extend(out.values().filter_map(|t| match t {
                UserType::Array(e) | UserType::Domain(e) => Some(*e),
                _ => None,
            }));
            wanted = parts;
        }
        session.end().await;
        result.map(|()| out)
    }

    /// For each of `names` (relations as statements write them: `name`,
    /// or `schema.name`, case as the parser left it) that is a view or a
    /// materialized view, the relations it reads as `schema.name`,
    /// transitively through views over views; for a table that is a
    /// partition or an inheritance child, the tables above it (whose rows
    /// it holds), likewise. Other names are absent. An unqualified name is
    /// looked for in every schema (the caller's `search_path` is not known
    /// here), so a view of that name anywhere counts. Cached per connection for `TTL`, and forgotten
    /// when a statement that may change definitions runs
    /// ([`Self::forget_views`]).
    pub async fn views(
        &self,
        access: &CatalogAccess,
        names: &[String],
    ) -> Result<HashMap<String, Arc<[String]>>, String> {
        self.views
            .look_up(&access.connection, names, |missing| {
                self.bounded(async move {
                    let mut session = CatalogSession::new(access);
                    let r = fetch_views(&mut session, &missing, true).await;
                    session.end().await;
                    r.map(|found| found.into_iter().map(|(n, r)| (n, r.into())).collect())
                })
            })
            .await
    }

    /// For each of `names` (functions as a statement calls them,
    /// unqualified, lower case) that is defined in the database (a function
    /// of that name exists outside `pg_catalog` and `information_schema`,
    /// in any schema: the caller's `search_path` is not known here), what
    /// calling it may read and do, from the sources of every function of
    /// that name and of the functions they call
    /// ([`gatehouse_policy::routine`]): the relations they name, the
    /// relations views among those read (as [`Self::views`] gives them),
    /// [`gatehouse_policy::CALLS_FUNCTIONS`] if one is opaque, and
    /// [`gatehouse_policy::STORES_DATA`] if one stores or sends data on, or
    /// is opaque.
    /// Cached per connection as [`Self::views`] is, and forgotten with it.
    pub async fn functions(
        &self,
        access: &CatalogAccess,
        names: &[String],
    ) -> Result<HashMap<String, Arc<[String]>>, String> {
        self.functions
            .look_up(&access.connection, names, |missing| {
                self.bounded(async move {
                    let mut session = CatalogSession::new(access);
                    let r = fetch_functions(&mut session, &missing).await;
                    session.end().await;
                    r
                })
            })
            .await
    }

    /// Forgets what the connection's views read: a statement that may
    /// define or replace one is running there.
    pub fn forget_views(&self, connection: &str) {
        self.views.forget(connection);
        self.functions.forget(connection);
        // A view's relation (what its columns read, for masking) too.
        self.relations.forget(connection);
        self.changes.fetch_add(1, Ordering::Release);
    }

    /// How many times what views read may have changed
    /// ([`Self::forget_views`]).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The relations for `oids` and, for views among them, the relations
    /// they read, transitively. OIDs the catalog does not know are absent.
    pub async fn resolve(
        &self,
        access: &CatalogAccess,
        oids: &[u32],
    ) -> Result<HashMap<u32, Arc<Relation>>, String> {
        self.bounded(self.resolve_unbounded(access, oids)).await
    }

    async fn resolve_unbounded(
        &self,
        access: &CatalogAccess,
        oids: &[u32],
    ) -> Result<HashMap<u32, Arc<Relation>>, String> {
        let mut out = HashMap::new();
        let mut wanted: Vec<u32> = oids.to_vec();
        let mut session = CatalogSession::new(access);
        let mut result = Ok(());
        for _ in 0..=MAX_DEPTH {
            wanted.retain(|o| *o != 0 && !out.contains_key(o));
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                break;
            }
            let missing = self.relations.known(&access.connection, &wanted, &mut out);
            if !missing.is_empty() {
                match fetch(&mut session, &missing).await {
                    Ok(fresh) => {
                        self.relations.store(&access.connection, &fresh);
                        out.extend(fresh);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            wanted = out
                .values()
                .flat_map(|r| {
                    r.reads
                        .iter()
                        .map(|(o, _)| *o)
                        .chain(r.parents.iter().copied())
                })
                .collect();
        }
        session.end().await;
        result.map(|()| out)
    }
}

/// The rows of `pg_type` for `oids`: each type as rendering needs it, and
/// the types that composites among them are made of (their fields').
async fn fetch_types(
    session: &mut CatalogSession<'_>,
    oids: &[u32],
) -> Result<(HashMap<u32, UserType>, Vec<u32>), String> {
    let list = oid_list(oids);
    // An enum is sent as its label, and a type whose send function is
    // text's (citext's calls it) as its text; hstore has a layout of its
    // own. Only built-in or C functions of those names are trusted.
    let rows = session
        .query(&format!(
            "SELECT t.oid::int8, t.typtype, t.typelem::int8, t.typbasetype::int8,
                    (p.prosrc IN ('textsend', 'citextsend') AND l.lanname IN ('internal', 'c'))
                      OR t.typtype = 'e',
                    p.prosrc = 'array_send' AND l.lanname = 'internal',
                    p.prosrc = 'hstore_send' AND l.lanname = 'c',
                    (SELECT pg_catalog.string_agg(a.atttypid::text, ',')
                       FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
             FROM pg_catalog.pg_type t
             LEFT JOIN pg_catalog.pg_proc p ON p.oid = t.typsend
             LEFT JOIN pg_catalog.pg_language l ON l.oid = p.prolang
             WHERE t.oid IN ({list})"
        ))
        .await?;
    let num = number::<u32>;
    let mut types = HashMap::new();
    let mut parts = Vec::new();
    for row in &rows {
        let [oid, kind, element, base, as_text, array, hstore, fields] = row.as_slice() else {
            return Err("unexpected catalog row".into());
        };
        let Some(oid) = num(oid) else {
            continue;
        };
        let yes = |v: &Option<String>| v.as_deref() == Some("t");
        let t = match kind.as_deref() {
            Some("c") => {
                parts.extend(
                    fields
                        .as_deref()
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|f| f.parse::<u32>().ok()),
                );
                UserType::Composite
            }
            Some("d") => num(base).map_or(UserType::Opaque, UserType::Domain),
            _ if yes(as_text) => UserType::Text,
            Some("b") if yes(hstore) => UserType::Hstore,
            Some("b") if yes(array) => num(element)
                .filter(|e| *e != 0)
                .map_or(UserType::Opaque, UserType::Array),
            _ => UserType::Opaque,
        };
        types.insert(oid, t);
    }
    Ok((types, parts))
}

fn oid_list(oids: &[u32]) -> String {
    oids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn fetch(
    session: &mut CatalogSession<'_>,
    oids: &[u32],
) -> Result<HashMap<u32, Arc<Relation>>, String> {
    let list = oid_list(oids);
    let columns = session
        .query(&format!(
            "SELECT c.oid::int8, n.nspname, c.relname, c.relkind, a.attnum, a.attname,
                    (SELECT pg_catalog.string_agg(i.inhparent::text, ',')
                     FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.oid IN ({list})"
        ))
        .await?;
    let reads = session
        .query(&format!(
            "SELECT DISTINCT r.ev_class::int8, d.refobjid::int8, d.refobjsubid
             FROM pg_catalog.pg_rewrite r
             JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.refobjsubid >= 0 AND d.refobjid <> r.ev_class
             WHERE r.ev_class IN ({list})"
        ))
        .await?;
    let mut rels: HashMap<u32, Relation> = HashMap::new();
    for row in &columns {
        let [oid, schema, name, kind, attnum, attname, parents] = row.as_slice() else {
            return Err("unexpected catalog row".into());
        };
        let Some(oid) = number::<u32>(oid) else {
            continue;
        };
        let rel = rels.entry(oid).or_insert_with(|| Relation {
            schema: schema.clone().unwrap_or_default(),
            name: name.clone().unwrap_or_default(),
            kind: kind
                .as_deref()
                .and_then(|k| k.chars().next())
                .unwrap_or('?'),
            columns: HashMap::new(),
            reads: Vec::new(),
            function_reads: Arc::from([]),
            parents: parents
                .as_deref()
                .map(|p| p.split(',').filter_map(|o| o.parse().ok()).collect())
                .unwrap_or_default(),
        });
        if let (Some(n), Some(col)) = (number::<i16>(attnum), attname) {
            rel.columns.insert(n, col.clone());
        }
    }
    // Views whose definition reads whole rows (`SELECT c AS r FROM
    // customers c`, `row_to_json(c)`): the catalog records no column of
    // the table for that (at most the table itself, as column 0), so such
    // a view counts as reading every column of each table it reads.
    let views = rels
        .iter()
        .filter(|(_, r)| matches!(r.kind, 'v' | 'm'))
        .map(|(o, _)| *o)
        .collect::<Vec<_>>();
    let mut whole_rows = std::collections::HashSet::new();
    // Views calling functions defined in the database, and their names.
    let mut calling: Vec<(u32, Vec<String>)> = Vec::new();
    if !views.is_empty() {
        let definitions = session
            .query(&format!(
                "SELECT c.oid::int8, pg_catalog.pg_get_viewdef(c.oid),
                        (SELECT pg_catalog.string_agg(DISTINCT x.call, ',') FROM ({}) x)
                 FROM pg_catalog.pg_class c WHERE c.oid IN ({})",
                view_calls_sql("c.oid"),
                oid_list(&views)
            ))
            .await?;
        for row in &definitions {
            let [oid, definition, calls] = row.as_slice() else {
                return Err("unexpected catalog row".into());
            };
            let Some(oid) = number::<u32>(oid) else {
                continue;
            };
            // A definition that does not parse counts as reading whole rows.
            if definition.as_deref().is_none_or(|d| {
                gatehouse_policy::analyze::column_refs(d).is_none_or(|r| r.reads_whole_rows())
            }) {
                whole_rows.insert(oid);
            }
            if let Some(calls) = calls.as_deref().filter(|c| !c.is_empty()) {
                calling.push((
                    oid,
                    calls
                        .split(',')
                        .map(|h| unhex_call(h).unwrap_or_default())
                        .collect(),
                ));
            }
        }
    }
    // What the functions views call may read (their names came in hex;
    // one that does not decode counts as opaque).
    if !calling.is_empty() {
        let names: Vec<String> = calling
            .iter()
            .flat_map(|(_, n)| n.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let found = Box::pin(fetch_functions(session, &names)).await?;
        for (oid, called) in calling {
            let mut reads: Vec<String> = called
                .iter()
                .flat_map(|n| match found.get(n) {
                    Some(r) => r.to_vec(),
                    // Not found as a function of that name: opaque.
                    None => vec![gatehouse_policy::CALLS_FUNCTIONS.to_string()],
                })
                .collect();
            reads.sort();
            reads.dedup();
            if let Some(r) = rels.get_mut(&oid) {
                r.function_reads = reads.into();
            }
        }
    }
    for row in &reads {
        let [view, table, col] = row.as_slice() else {
            return Err("unexpected catalog row".into());
        };
        let (Some(view), Some(table), Some(col)) = (
            number::<u32>(view),
            number::<u32>(table),
            number::<i16>(col),
        ) else {
            continue;
        };
        let Some(r) = rels.get_mut(&view) else {
            continue;
        };
        if whole_rows.contains(&view) {
            // Every column of each table it reads.
            if !r.reads.contains(&(table, 0)) {
                r.reads.push((table, 0));
            }
        } else if col > 0 {
            r.reads.push((table, col));
        }
    }
    Ok(rels.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

/// Extensions' compiled functions that run SQL given as text, by
/// themselves or later (dblink's, on a connection that may be to this
/// database; pg_cron's schedules; pg_background's workers): like code
/// Gatehouse cannot read, they may read any table and store anywhere
/// ([`gatehouse_policy::routine::Routine::runs_any_sql`]).
const SQL_RUNNING_COMPILED: &[&str] = &[
    "dblink",
    "dblink_exec",
    "dblink_open",
    "dblink_send_query",
    "schedule",
    "schedule_in_database",
    "alter_job",
    "pg_background_launch",
];

/// What calling each of `names` that names a function defined in the
/// database may read and do ([`Catalog::functions`]).
async fn fetch_functions(
    session: &mut CatalogSession<'_>,
    names: &[String],
) -> Result<HashMap<String, Arc<[String]>>, String> {
    use gatehouse_policy::routine::Routine;
    // Each name asked so far: what its functions' sources show (every
    // overload's together), or `None` for a name no function defined in
    // the database has (a built-in's).
    let mut known: HashMap<String, Option<Routine>> = HashMap::new();
    let mut wanted: Vec<String> = names.to_vec();
    for _ in 0..=MAX_DEPTH {
        if wanted.is_empty() {
            break;
        }
        // Operators (keys of `routine::operator_key`) and what runs
        // implicitly (`routine::IMPLICIT_CALLS`) are asked apart.
        let implicit = wanted
            .iter()
            .any(|n| n == gatehouse_policy::routine::IMPLICIT_CALLS);
        let written: Vec<String> = wanted
            .iter()
            .filter_map(|n| gatehouse_policy::routine::written_table(n))
            .map(str::to_string)
            .collect();
        let (operators, functions): (Vec<String>, Vec<String>) = wanted
            .iter()
            .filter(|n| {
                *n != gatehouse_policy::routine::IMPLICIT_CALLS
                    && gatehouse_policy::routine::written_table(n).is_none()
            })
            .cloned()
            .partition(|n| gatehouse_policy::routine::operator_of(n).is_some());
        for name in &wanted {
            known.insert(name.clone(), None);
        }
        if !written.is_empty() {
            for (table, r) in what_writes_run(session, &written).await? {
                known.insert(gatehouse_policy::routine::writes_key(&table), Some(r));
            }
        }
        if implicit {
            let rows = session.query(&implicit_calls_sql()).await?;
            let mut r = Routine::default();
            for row in rows {
                match row
                    .into_iter()
                    .next()
                    .flatten()
                    .as_deref()
                    .and_then(unhex_call)
                {
                    Some(call) => {
                        r.calls.insert(call);
                    }
                    None => r.absorb(Routine::opaque("a function's name is unreadable")),
                }
            }
            if !r.calls.is_empty() || r.opaque.is_some() {
                known.insert(
                    gatehouse_policy::routine::IMPLICIT_CALLS.to_string(),
                    Some(r),
                );
            }
        }
        if !operators.is_empty() {
            let names: Vec<String> = operators
                .iter()
                .filter_map(|k| gatehouse_policy::routine::operator_of(k))
                .map(str::to_string)
                .collect();
            // What an operator defined in the database runs: its function
            // (which may be a built-in, then not found in turn).
            let rows = session
                .query(&format!(
                    "SELECT w.name, pg_catalog.encode(pg_catalog.convert_to(pg_catalog.lower(p.proname), 'UTF8'), 'hex')
                     FROM pg_catalog.unnest(ARRAY[{}]::pg_catalog.text[]) AS w(name)
                     JOIN pg_catalog.pg_operator o ON o.oprname = w.name
                     JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                     JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
                     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
                    hex_texts(&names)
                ))
                .await?;
            for row in rows {
                let [Some(name), function] = <[Option<String>; 2]>::try_from(row)
                    .map_err(|_| "unexpected catalog row".to_string())?
                else {
                    continue;
                };
                let r = known
                    .entry(gatehouse_policy::routine::operator_key(&name))
                    .or_default()
                    .get_or_insert_with(Routine::default);
                match function.as_deref().and_then(unhex_name) {
                    Some(f) => {
                        r.calls.insert(f);
                    }
                    None => r.absorb(Routine::opaque("its function's name is unreadable")),
                }
            }
        }
        let rows = if functions.is_empty() {
            Vec::new()
        } else {
            session
            .query(&format!(
                "SELECT w.name, l.lanname, p.prosrc,
                        CASE WHEN p.prokind IN ('f', 'p')
                               AND (l.lanname = 'plpgsql' OR (l.lanname = 'sql' AND p.prosrc = ''))
                             THEN pg_catalog.pg_get_functiondef(p.oid) END,
                        p.prokind = 'a', p.provolatile = 'i',
                        p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype,
                        (SELECT pg_catalog.string_agg(DISTINCT pg_catalog.encode(pg_catalog.convert_to(pg_catalog.lower(f.proname), 'UTF8'), 'hex'), ',')
                         FROM pg_catalog.pg_aggregate a
                         JOIN pg_catalog.pg_proc f ON f.oid IN (a.aggtransfn::pg_catalog.oid, a.aggfinalfn::pg_catalog.oid,
                           a.aggcombinefn::pg_catalog.oid, a.aggserialfn::pg_catalog.oid, a.aggdeserialfn::pg_catalog.oid,
                           a.aggmtransfn::pg_catalog.oid, a.aggminvtransfn::pg_catalog.oid, a.aggmfinalfn::pg_catalog.oid)
                         WHERE a.aggfnoid = p.oid)
                 FROM pg_catalog.unnest(ARRAY[{}]::pg_catalog.text[]) AS w(name)
                 JOIN pg_catalog.pg_proc p ON pg_catalog.lower(p.proname) = w.name
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 JOIN pg_catalog.pg_language l ON l.oid = p.prolang
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
                hex_texts(&functions)
            ))
            .await?
        };
        for row in rows {
            let [
                Some(name),
                language,
                source,
                definition,
                aggregate,
                immutable,
                trigger,
                parts,
            ] = <[Option<String>; 8]>::try_from(row)
                .map_err(|_| "unexpected catalog row".to_string())?
            else {
                continue;
            };
            let language = language.as_deref().unwrap_or("");
            let body = if aggregate.as_deref() == Some("t") {
                // An aggregate does what its support functions do.
                let mut r = Routine::default();
                for hex in parts
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .filter(|h| !h.is_empty())
                {
                    match unhex_name(hex) {
                        Some(n) => {
                            r.calls.insert(n);
                        }
                        None => r = Routine::opaque("a support function's name is unreadable"),
                    }
                }
                r
            } else if language == "plpgsql" && trigger.as_deref() == Some("t") {
                // Run by a write's trigger ([`what_writes_run`]).
                gatehouse_policy::routine::trigger_routine(source.as_deref())
            } else if matches!(language, "c" | "internal") && immutable.as_deref() == Some("t") {
                // Compiled code only a superuser can install (an
                // extension's, mostly), declared immutable: it reads no
                // tables and changes nothing, on the installer's word
                // (citext's, pgcrypto's `digest`).
                Routine::default()
            } else {
                let mut r = gatehouse_policy::routine::routine(
                    language,
                    source.as_deref(),
                    definition.as_deref(),
                );
                r.runs_any_sql |= matches!(language, "c" | "internal")
                    && SQL_RUNNING_COMPILED.contains(&name.as_str());
                r
            };
            known
                .entry(name)
                .or_default()
                .get_or_insert_with(Routine::default)
                .absorb(follow_writes(body));
        }
        wanted = known
            .values()
            .flatten()
            .flat_map(|r| r.calls.iter())
            .filter(|c| !known.contains_key(*c))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
    }
    // Calls nested deeper than that are not followed: opaque.
    for name in wanted {
        known.insert(
            name,
            Some(Routine::opaque("it calls functions nested too deep")),
        );
    }
    // Each asked-for function with everything it calls, transitively.
    let mut whole: HashMap<String, Routine> = HashMap::new();
    for name in names {
        if !matches!(known.get(name), Some(Some(_))) {
            continue;
        }
        let mut all = Routine::default();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![name.as_str()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            if let Some(Some(r)) = known.get(n) {
                all.absorb(r.clone());
                stack.extend(r.calls.iter().map(String::as_str));
            }
        }
        whole.insert(name.clone(), all);
    }
    // What views among the relations they name read.
    let relations: Vec<String> = whole
        .values()
        .flat_map(|r| r.relations.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let views = if relations.is_empty() {
        HashMap::new()
    } else {
        // (Views those read that call functions count as opaque: calls
        // are not followed through views again.)
        Box::pin(fetch_views(session, &relations, false)).await?
    };
    Ok(whole
        .into_iter()
        .map(|(name, r)| {
            let mut reads: Vec<String> = Vec::new();
            for rel in &r.relations {
                reads.push(rel.clone());
                reads.extend(views.get(rel).into_iter().flatten().cloned());
            }
            if r.opaque.is_some() {
                reads.push(gatehouse_policy::CALLS_FUNCTIONS.to_string());
            }
            // An opaque function may store what it is given, too.
            if r.stores || r.opaque.is_some() {
                reads.push(gatehouse_policy::STORES_DATA.to_string());
            }
            // (What cannot be read counts as reporting too, by its
            // CALLS_FUNCTIONS.)
            if r.reports {
                reads.push(gatehouse_policy::REPORTS.to_string());
            }
            if r.runs_any_sql {
                reads.push(gatehouse_policy::RUNS_ANY_SQL.to_string());
            }
            reads.sort();
            reads.dedup();
            (name, reads.into())
        })
        .collect())
}

/// What PostgreSQL runs by itself when a statement writes each of
/// `tables` ([`gatehouse_policy::routine::writes_key`]): the functions and
/// operators that the triggers (enabled ones, with their `WHEN`
/// conditions), column defaults and generated columns, and `CHECK`
/// constraints of the table and of the tables the write reaches depend
/// on, and its rules (but a view's `SELECT` rule), read from their
/// definitions. The write reaches partitions and inheritance children,
/// the relations under a view (an updatable view writes its table), and
/// the tables whose foreign keys cascade or set values when it changes
/// rows, 8 deep. A table with none of these is left out.
async fn what_writes_run(
    session: &mut CatalogSession<'_>,
    tables: &[String],
) -> Result<HashMap<String, gatehouse_policy::routine::Routine>, String> {
    use gatehouse_policy::routine::Routine;
    let calls = |class: &str, objects: &str| {
        format!(
            "SELECT t.name, 'c', c.call FROM reached t CROSS JOIN LATERAL ({}) AS c(call)",
            calls_of_sql(class, objects)
        )
    };
    let rows = session
        .query(&format!(
            "WITH RECURSIVE reached(name, rel, depth) AS (
               SELECT w.name, c.oid, 0
               FROM pg_catalog.unnest(ARRAY[{list}]::pg_catalog.text[]) AS w(name)
               JOIN pg_catalog.pg_class c ON c.relkind IN ('r', 'p', 'f', 'v')
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relname = w.name OR n.nspname || '.' || c.relname = w.name
               UNION
               SELECT t.name, x.rel, t.depth + 1
               FROM reached t
               CROSS JOIN LATERAL (
                 SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = t.rel
                 UNION
                 SELECT k.conrelid FROM pg_catalog.pg_constraint k
                 WHERE k.confrelid = t.rel AND k.contype = 'f'
                   AND (k.confupdtype IN ('c', 'n', 'd') OR k.confdeltype IN ('c', 'n', 'd'))
                 UNION
                 SELECT d.refobjid FROM pg_catalog.pg_rewrite w
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                   AND d.objid = w.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                   AND d.refobjid <> t.rel
                 WHERE w.ev_class = t.rel AND w.ev_type = '1'
               ) AS x(rel)
               WHERE t.depth < {MAX_DEPTH}
             )
             {triggers}
             UNION
             {defaults}
             UNION
             {checks}
             UNION
             SELECT t.name, 'r', pg_catalog.pg_get_ruledef(w.oid)
             FROM reached t
             JOIN pg_catalog.pg_rewrite w ON w.ev_class = t.rel AND w.ev_type <> '1' AND w.ev_enabled <> 'D'",
            list = hex_texts(tables),
            triggers = calls(
                "pg_trigger",
                "SELECT g.oid FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.rel AND g.tgenabled <> 'D'"
            ),
            defaults = calls(
                "pg_attrdef",
                "SELECT a.oid FROM pg_catalog.pg_attrdef a WHERE a.adrelid = t.rel"
            ),
            checks = calls(
                "pg_constraint",
                "SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = t.rel AND k.contype = 'c'"
            ),
        ))
        .await?;
    let mut found: HashMap<String, Routine> = HashMap::new();
    for row in rows {
        let [Some(table), Some(kind), text] = <[Option<String>; 3]>::try_from(row)
            .map_err(|_| "unexpected catalog row".to_string())?
        else {
            continue;
        };
        let r = found.entry(table).or_default();
        match (kind.as_str(), text) {
            ("c", Some(hex)) => match unhex_call(&hex) {
                Some(call) => {
                    r.calls.insert(call);
                }
                None => r.absorb(Routine::opaque("a function's name is unreadable")),
            },
            // A rule's definition is a statement (`CREATE RULE … DO ALSO
            // INSERT …`), read as a SQL function's body would be.
            ("r", Some(definition)) => r.absorb(follow_writes(gatehouse_policy::routine::routine(
                "sql",
                Some(&definition),
                None,
            ))),
            _ => r.absorb(Routine::opaque("a rule's definition is unreadable")),
        }
    }
    Ok(found)
}

/// `r`, calling as well what the tables it names run when written
/// ([`gatehouse_policy::routine::writes_key`]) if it writes (which of its
/// relations it writes is not told apart): a function or a trigger that
/// inserts into a table runs that table's triggers too.
fn follow_writes(mut r: gatehouse_policy::routine::Routine) -> gatehouse_policy::routine::Routine {
    if r.stores {
        let keys: Vec<String> = r
            .relations
            .iter()
            .map(|t| gatehouse_policy::routine::writes_key(t))
            .collect();
        r.calls.extend(keys);
    }
    r
}

/// A name the catalog gave in hex (so that no character of it, a comma
/// included, is taken for a separator). An empty name, which no function
/// has, stands for one that does not decode where a caller needs a name.
fn unhex_name(hex: &str) -> Option<String> {
    hex::decode(hex)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// A query of what the view `rel` (an SQL expression of its OID) calls
/// that the database defines, from its rewrite rule's dependencies (read
/// by [`unhex_call`]).
fn view_calls_sql(rel: &str) -> String {
    calls_of_sql(
        "pg_rewrite",
        &format!("SELECT w.oid FROM pg_catalog.pg_rewrite w WHERE w.ev_class = {rel}"),
    )
}

/// The functions (and operators) that PostgreSQL runs without a call in
/// the statement and that the database defines
/// ([`gatehouse_policy::routine::IMPLICIT_CALLS`]): casts' functions and
/// what domains' constraints call, each as [`calls_of_sql`] writes it.
fn implicit_calls_sql() -> String {
    format!(
        "SELECT pg_catalog.encode(pg_catalog.convert_to(pg_catalog.lower(p.proname), 'UTF8'), 'hex')
         FROM pg_catalog.pg_cast c
         JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION
         {}",
        calls_of_sql(
            "pg_constraint",
            "SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.contypid <> 0",
        )
    )
}

/// A query of the functions and operators defined in the database that
/// the objects of catalog `class` whose OIDs `objects` (a query) gives
/// depend on: each function's lower-case name in hex, and each operator's
/// name in hex after an `o` (read by [`unhex_call`]).
fn calls_of_sql(class: &str, objects: &str) -> String {
    let depends = |on: &str| {
        format!(
            "FROM pg_catalog.pg_depend d
             JOIN pg_catalog.{on} x ON x.oid = d.refobjid
             JOIN pg_catalog.pg_namespace pn ON pn.oid = x.{space}
             WHERE d.classid = 'pg_catalog.{class}'::pg_catalog.regclass
               AND d.refclassid = 'pg_catalog.{on}'::pg_catalog.regclass
               AND d.objid IN ({objects})
               AND pn.nspname NOT IN ('pg_catalog', 'information_schema')",
            space = if on == "pg_proc" {
                "pronamespace"
            } else {
                "oprnamespace"
            }
        )
    };
    format!(
        "SELECT pg_catalog.encode(pg_catalog.convert_to(pg_catalog.lower(x.proname), 'UTF8'), 'hex') AS call {}
         UNION
         SELECT 'o' || pg_catalog.encode(pg_catalog.convert_to(x.oprname, 'UTF8'), 'hex') {}",
        depends("pg_proc"),
        depends("pg_operator")
    )
}

/// A call as [`view_calls_sql`] gives it: a function's name, or an
/// operator's key ([`gatehouse_policy::routine::operator_key`]).
fn unhex_call(hex: &str) -> Option<String> {
    match hex.strip_prefix('o') {
        Some(op) => unhex_name(op).map(|o| gatehouse_policy::routine::operator_key(&o)),
        None => unhex_name(hex),
    }
}

/// `names` as a list of SQL text expressions, each given as hex so that no
/// quoting of theirs matters.
fn hex_texts(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "pg_catalog.convert_from(pg_catalog.decode('{}', 'hex'), 'UTF8')",
                hex::encode(n)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The relations each of `names` reads if it is a view, or holds rows of
/// if it is a partition or inheritance child ([`Catalog::views`]); a view
/// that calls a function defined in the database (itself, or a view it
/// reads) also "reads" what that function may read, as
/// [`fetch_functions`] gives it when `follow_functions`, or else
/// [`gatehouse_policy::CALLS_FUNCTIONS`].
async fn fetch_views(
    session: &mut CatalogSession<'_>,
    names: &[String],
    follow_functions: bool,
) -> Result<HashMap<String, Vec<String>>, String> {
    let list = hex_texts(names);
    let rows = session
        .query(&format!(
            "WITH RECURSIVE named(name, rel) AS (
               SELECT w.name, c.oid
               FROM pg_catalog.unnest(ARRAY[{list}]) AS w(name)
               JOIN pg_catalog.pg_class c ON c.relkind IN ('v', 'm', 'r', 'p', 'f')
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relname = w.name OR n.nspname || '.' || c.relname = w.name
             ), reads(name, rel, depth) AS (
               SELECT name, rel, 0 FROM named
               UNION
               SELECT r.name, above.rel, r.depth + 1
               FROM reads r
               CROSS JOIN LATERAL (
                 SELECT d.refobjid
                 FROM pg_catalog.pg_rewrite w
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                   AND d.objid = w.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                   AND d.refobjid <> r.rel
                 WHERE w.ev_class = r.rel
                 UNION
                 SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = r.rel
               ) AS above(rel)
               WHERE r.depth < {MAX_DEPTH}
             )
             SELECT DISTINCT r.name, n.nspname || '.' || c.relname
             FROM reads r
             JOIN pg_catalog.pg_class c ON c.oid = r.rel
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE r.depth > 0
             UNION
             SELECT DISTINCT r.name, '{CALLS_PREFIX}' || x.call
             FROM reads r
             CROSS JOIN LATERAL ({calls}) x
             ORDER BY 1, 2",
            calls = view_calls_sql("r.rel")
        ))
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    // The functions views call, by the name that led to each view.
    let mut calls: Vec<(String, String)> = Vec::new();
    for row in rows {
        let [Some(name), Some(rel)] = <[Option<String>; 2]>::try_from(row)
            .map_err(|_| "unexpected catalog row".to_string())?
        else {
            continue;
        };
        match rel.strip_prefix(CALLS_PREFIX) {
            Some(hex) => calls.push((name, unhex_call(hex).unwrap_or_default())),
            None => out.entry(name).or_default().push(rel),
        }
    }
    if calls.is_empty() {
        return Ok(out);
    }
    let found = if follow_functions {
        let names: Vec<String> = calls
            .iter()
            .map(|(_, f)| f.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        fetch_functions(session, &names).await?
    } else {
        HashMap::new()
    };
    for (name, function) in calls {
        let reads = out.entry(name).or_default();
        match found.get(&function) {
            Some(r) => reads.extend(r.iter().cloned()),
            // Not followed, or not found as a function of that name.
            None => reads.push(gatehouse_policy::CALLS_FUNCTIONS.to_string()),
        }
        reads.sort();
        reads.dedup();
    }
    Ok(out)
}

/// Marks a function (its lower-case name in hex) among what
/// [`fetch_views`]'s query says a view reads.
const CALLS_PREFIX: &str = "(call)";

/// Runs one simple query; rows as text values.
async fn simple_query(
    up: &mut upstream::Upstream,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut out = BytesMut::new();
    codec::query(&mut out, sql);
    write_flush(&mut up.stream, &out)
        .await
        .map_err(|e| format!("catalog query: {e}"))?;
    let buf = &mut up.leftover;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (tag, total) = match codec::frame(buf, CATALOG_LIMIT) {
            Ok(Some(f)) => f,
            Ok(None) => {
                if up
                    .stream
                    .read_buf(buf)
                    .await
                    .map_err(|e| format!("catalog query: {e}"))?
                    == 0
                {
                    return Err("the upstream closed the catalog session".into());
                }
                continue;
            }
            Err(e) => return Err(format!("catalog query: {e}")),
        };
        let mut msg = buf.split_to(total);
        msg.advance(5);
        match tag {
            b'D' => {
                let values = codec::parse_data_row(&msg).map_err(|e| e.to_string())?;
                rows.push(
                    values
                        .into_iter()
                        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                );
            }
            b'E' => {
                let (code, m) = codec::parse_error(&msg);
                error = Some(format!("{code}: {m}"));
            }
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(format!("catalog query failed: {e}")),
        None => Ok(rows),
    }
}

/// A catalog value read as text (the queries cast numbers to `int8`) as a
/// number of the type it is kept in; `None` when NULL or out of range.
fn number<T: TryFrom<i64>>(v: &Option<String>) -> Option<T> {
    v.as_deref()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|n| T::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that accepts connections and never answers: both
    /// look-ups end with an error (masking then withholds the columns,
    /// the recording keeps hex) instead of holding the results.
    #[tokio::test]
    async fn look_ups_give_up_on_an_upstream_that_does_not_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let access = CatalogAccess {
            connection: "silent".into(),
            target: Target::from_url(&format!(
                "postgres://someone@127.0.0.1:{port}/db?sslmode=disable"
            ))
            .unwrap(),
            password: None,
        };
        let catalog = Catalog::with_timeout(Duration::from_millis(200));
        let e = catalog.resolve(&access, &[16_500]).await.unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        let e = catalog.types(&access, &[16_500]).await.unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
    }
}
