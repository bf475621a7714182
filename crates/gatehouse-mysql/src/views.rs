//! Views in the upstream database. MySQL and MariaDB keep a view's
//! definition as text (`information_schema.VIEWS`), and report a view, not
//! its tables, as a result column's origin; what a view reads is what
//! Gatehouse's own analysis finds in that text, views over views followed
//! [`MAX_DEPTH`] deep. It serves two things:
//!
//! - deny and review rules on tables: a rule on `vault` is met by a
//!   statement that reads `vault` through a view over it
//!   ([`gatehouse_policy::ViewReads`]);
//! - masking: a view whose definition reads a masked column has its
//!   columns masked ([`gatehouse_policy::MaskPlan::method_for_view`]).
//!
//! The look-up runs over a short-lived side login with the connection's
//! stored credential, only where such a rule or a column mask applies to
//! the caller, and its answers are kept per connection for a minute
//! ([`gatehouse_policy::ViewCache`]). Whatever stops it from answering (no
//! login, no answer in time, a definition it cannot see or parse) is its
//! error, and then the rules' table conditions count as met and the
//! result's columns are masked.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use gatehouse_core::secret::Secret;
use gatehouse_policy::view_cache::Found;
use gatehouse_policy::{ColumnRefs, ViewCache};

use crate::MysqlProxy;
use crate::local::{CHARSET, LOCAL_CAPS};
use crate::relay::Ctx;
use crate::upstream::Upstream;

/// Views over views are followed this deep; deeper is an error.
pub const MAX_DEPTH: usize = 8;

/// What a view is, as its definition says, views over views merged.
#[derive(Debug, Default)]
pub struct ViewInfo {
    /// The relations it reads, as `db.table`.
    pub reads: Arc<[String]>,
    /// The column references of its definition and of the definitions of
    /// the views it reads (their tables as `db.table`), for masking.
    pub refs: ColumnRefs,
    /// Its definition (or one of a view it reads) calls a stored
    /// function, which may return data it reads itself.
    pub calls_functions: bool,
}

/// What each of `names` is if it is a view (`names` as the analysis or a
/// column definition writes relations: `table` or `db.table`,
/// lower-case). An unqualified name is the session's database's (any
/// database's if the connection names none). Asked over a side login as
/// the session's caller.
pub(crate) async fn look_up(
    ctx: &Ctx,
    names: &[String],
) -> Result<HashMap<String, Arc<ViewInfo>>, String> {
    look_up_with(
        &ctx.proxy.views,
        &ctx.connection,
        ctx.database.as_deref(),
        names,
        || caller_login(ctx),
    )
    .await
}

/// Which of `names` (functions as statements call them, and procedures
/// as `CALL` names them, unqualified, lower case) are stored functions or
/// procedures of the upstream database (`information_schema.ROUTINES`,
/// any database), as the session's caller finds them: cached with the
/// views. Their bodies are not read, so each counts as reading anything
/// (what it returns, or a procedure's result sets, is masked; what it
/// raises withheld) and maybe storing what it is given
/// ([`gatehouse_policy::CALLS_FUNCTIONS`], [`gatehouse_policy::STORES_DATA`]).
pub(crate) async fn stored_functions(
    ctx: &Ctx,
    names: &[String],
) -> Result<HashMap<String, Arc<[String]>>, String> {
    functions_with(&ctx.proxy.functions, &ctx.connection, names, || {
        caller_login(ctx)
    })
    .await
}

/// What the relay's `stored_functions` gives, for `policy test`, logged
/// in with the connection's stored `password`.
pub async fn stored_functions_named(
    proxy: &MysqlProxy,
    connection: &str,
    url: &str,
    password: Option<&Secret>,
    names: &[String],
) -> Result<HashMap<String, Arc<[String]>>, String> {
    functions_with(&proxy.functions, connection, names, || {
        stored_login(url, password)
    })
    .await
}

async fn functions_with<F, Fut>(
    cache: &ViewCache<()>,
    connection: &str,
    names: &[String],
    login: F,
) -> Result<HashMap<String, Arc<[String]>>, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Upstream, String>>,
{
    cache
        .look_up(connection, names, |missing| {
            on_side_login(login, async move |up| {
                Ok(functions_named(up, &missing)
                    .await?
                    .into_iter()
                    .map(|n| (n, ()))
                    .collect())
            })
        })
        .await
        .map(|found| {
            let unknown: Arc<[String]> = [
                gatehouse_policy::CALLS_FUNCTIONS.to_string(),
                gatehouse_policy::STORES_DATA.to_string(),
            ]
            .into();
            // A trigger's body is not read either, and it runs whenever
            // its table is written: it may copy anything anywhere.
            let trigger: Arc<[String]> = [
                gatehouse_policy::CALLS_FUNCTIONS.to_string(),
                gatehouse_policy::STORES_DATA.to_string(),
                gatehouse_policy::RUNS_ANY_SQL.to_string(),
            ]
            .into();
            found
                .into_keys()
                .map(|n| {
                    let reads = if gatehouse_policy::routine::written_table(&n).is_some() {
                        trigger.clone()
                    } else {
                        unknown.clone()
                    };
                    (n, reads)
                })
                .collect()
        })
}

/// `asked`, given up (as an error) after the catalog's time limit.
async fn bounded<T>(asked: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    let limit = gatehouse_pg::catalog::LOOKUP_TIMEOUT;
    tokio::time::timeout(limit, asked)
        .await
        .unwrap_or_else(|_| Err(format!("the database did not answer within {limit:?}")))
}

/// Those of `names` that are stored functions or procedures (a view
/// calls only functions; a statement may `CALL` a procedure), and those
/// that are keys of [`gatehouse_policy::routine::writes_key`] of a table
/// with triggers (of that name, in any database).
async fn functions_named(up: &mut Upstream, names: &[String]) -> Result<HashSet<String>, String> {
    // A key's table, unqualified and lower case.
    let table_of = |key: &str| {
        let t = gatehouse_policy::routine::written_table(key).unwrap_or_default();
        t.rsplit('.').next().unwrap_or(t).to_lowercase()
    };
    let (written, names): (Vec<&String>, Vec<&String>) = names
        .iter()
        .partition(|n| gatehouse_policy::routine::written_table(n).is_some());
    let mut found = HashSet::new();
    if !written.is_empty() {
        let tables: Vec<String> = written.iter().map(|k| table_of(k)).collect();
        let results = up
            .query(&format!(
                "SELECT DISTINCT LOWER(EVENT_OBJECT_TABLE) FROM information_schema.TRIGGERS \
                 WHERE HEX(LOWER(EVENT_OBJECT_TABLE)) IN ({})",
                hex_list(tables.iter().map(String::as_str))
            ))
            .await
            .map_err(|e| format!("looking up triggers: {e}"))?;
        let with_triggers: HashSet<String> = first_column(results).collect();
        found.extend(
            written
                .into_iter()
                .filter(|k| with_triggers.contains(&table_of(k)))
                .cloned(),
        );
    }
    if names.is_empty() {
        return Ok(found);
    }
    let results = up
        .query(&format!(
            "SELECT DISTINCT LOWER(ROUTINE_NAME) FROM information_schema.ROUTINES \
             WHERE ROUTINE_TYPE IN ('FUNCTION', 'PROCEDURE') AND HEX(LOWER(ROUTINE_NAME)) IN ({})",
            hex_list(names.iter().map(|n| n.as_str()))
        ))
        .await
        .map_err(|e| format!("looking up stored functions: {e}"))?;
    found.extend(first_column(results));
    Ok(found)
}

/// The first column of every row of `results`, as text.
fn first_column(results: Vec<crate::upstream::QueryResult>) -> impl Iterator<Item = String> {
    results
        .into_iter()
        .flat_map(|r| r.rows)
        .filter_map(|row| row.into_iter().next().flatten())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Names as a list of hex literals of their UTF-8, for `HEX(…) IN (…)`, so
/// that no quoting of theirs matters.
fn hex_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|t| format!("'{}'", hex::encode_upper(t.as_bytes())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A side login to the upstream as the session's caller.
async fn caller_login(ctx: &Ctx) -> Result<Upstream, String> {
    crate::proxy::side_login(
        &ctx.proxy,
        &ctx.principal,
        &ctx.connection,
        ctx.capabilities,
        ctx.charset,
    )
    .await
    .map_err(|r| r.message)
}

/// A login to the upstream at `url` with the connection's stored password.
async fn stored_login(url: &str, password: Option<&Secret>) -> Result<Upstream, String> {
    crate::proxy::open_upstream(url, password, LOCAL_CAPS, CHARSET)
        .await
        .map(|(up, _)| up)
        .map_err(|(_, e)| e)
}

/// What each of `names` reads, for the views among them.
pub(crate) fn reads(found: HashMap<String, Arc<ViewInfo>>) -> Found {
    found
        .into_iter()
        .map(|(name, v)| (name, v.reads.clone()))
        .collect()
}

/// What each of `names` reads if it is a view, as the relay's look-up
/// finds it, for `policy test`, which decides for callers without a
/// session: logged in with the connection's stored `password`.
pub async fn named(
    proxy: &MysqlProxy,
    connection: &str,
    url: &str,
    password: Option<&Secret>,
    names: &[String],
) -> Result<Found, String> {
    let database = crate::proxy::url_database(url);
    look_up_with(&proxy.views, connection, database.as_deref(), names, || {
        stored_login(url, password)
    })
    .await
    .map(reads)
}

/// The cache's answer, or the database's over a login `login` opens
/// (bounded in time, like the PostgreSQL catalog's).
async fn look_up_with<F, Fut>(
    cache: &ViewCache<Arc<ViewInfo>>,
    connection: &str,
    database: Option<&str>,
    names: &[String],
    login: F,
) -> Result<HashMap<String, Arc<ViewInfo>>, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Upstream, String>>,
{
    cache
        .look_up(connection, names, |missing| {
            on_side_login(login, async move |up| fetch(up, database, &missing).await)
        })
        .await
}

/// What `ask` gets from the database over a login `login` opens (bounded
/// in time, like the PostgreSQL catalog's), logged out after.
async fn on_side_login<T, F, Fut>(
    login: F,
    ask: impl AsyncFnOnce(&mut Upstream) -> Result<T, String>,
) -> Result<T, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Upstream, String>>,
{
    bounded(async {
        let mut up = login().await?;
        let found = ask(&mut up).await;
        let _ = up.quit().await;
        found
    })
    .await
}

/// `db.table` or `table` as (database, table).
fn split(name: &str) -> (Option<&str>, &str) {
    match name.rsplit_once('.') {
        Some((db, table)) => (Some(db), table),
        None => (None, name),
    }
}

/// A view as `information_schema.VIEWS` describes it (names lower-case).
struct View {
    db: String,
    name: String,
    definition: String,
}

impl View {
    /// Whether `name` (as the analysis writes it) is this view, in a
    /// session whose default database is `database`.
    fn is(&self, name: &str, database: Option<&str>) -> bool {
        let (db, table) = split(name);
        table == self.name
            && match db.or(database) {
                Some(db) => db.to_lowercase() == self.db,
                None => true,
            }
    }

    /// The relations the definition reads, as `db.table`, its column
    /// references (their relations qualified the same way) and the
    /// functions it calls.
    fn read(&self) -> Result<Definition, String> {
        if self.definition.trim().is_empty() {
            return Err(format!(
                "the definition of the view {}.{} is not visible to the connection's user (it needs SHOW VIEW)",
                self.db, self.name
            ));
        }
        let a = gatehouse_policy::analyze_mysql(&self.definition);
        let refs = gatehouse_policy::column_refs_mysql(&self.definition);
        let (Some(_), Some(mut refs)) = (a.class, refs) else {
            return Err(format!(
                "Gatehouse could not parse the definition of the view {}.{}",
                self.db, self.name
            ));
        };
        let qualified = |t: &String| match split(t) {
            (Some(_), _) => t.clone(),
            (None, table) => format!("{}.{table}", self.db),
        };
        for (t, _) in &mut refs.relations {
            *t = qualified(t).to_lowercase();
        }
        let reads = a
            .tables_read
            .iter()
            .chain(a.tables_written.iter())
            .map(qualified)
            .collect();
        Ok((reads, refs, a.functions))
    }
}

/// What a view's definition reads, refers to and calls ([`View::read`]).
type Definition = (BTreeSet<String>, ColumnRefs, BTreeSet<String>);

/// The views named `tables` (lower-case, in any database).
async fn views_named(up: &mut Upstream, tables: &BTreeSet<&str>) -> Result<Vec<View>, String> {
    // The names go in as hex, so that no quoting of theirs matters.
    let list = hex_list(tables.iter().copied());
    let results = up
        .query(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
             WHERE HEX(LOWER(TABLE_NAME)) IN ({list})"
        ))
        .await
        .map_err(|e| format!("looking up views: {e}"))?;
    let text = |v: &Option<Vec<u8>>| {
        String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned()
    };
    Ok(results
        .into_iter()
        .flat_map(|r| r.rows)
        .filter(|row| row.len() == 3)
        .map(|row| View {
            db: text(&row[0]).to_lowercase(),
            name: text(&row[1]).to_lowercase(),
            definition: text(&row[2]),
        })
        .collect())
}

/// What each of `names` is if it is a view ([`look_up`]).
async fn fetch(
    up: &mut Upstream,
    database: Option<&str>,
    names: &[String],
) -> Result<HashMap<String, Arc<ViewInfo>>, String> {
    let mut found: HashMap<String, Definition> = HashMap::new();
    // (the name asked for, a relation it reaches): the relations to look
    // at next, level by level.
    let mut frontier: Vec<(String, String)> =
        names.iter().map(|n| (n.clone(), n.clone())).collect();
    let mut seen: HashSet<(String, String)> = frontier.iter().cloned().collect();
    let mut definitions: HashMap<(String, String), Definition> = HashMap::new();
    for depth in 0..=MAX_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let tables: BTreeSet<&str> = frontier.iter().map(|(_, n)| split(n).1).collect();
        let views = views_named(up, &tables).await?;
        let mut next = Vec::new();
        for (asked, name) in &frontier {
            // Relations a view reads are qualified with its database, so
            // the session's is only that of an unqualified name asked for.
            for v in views.iter().filter(|v| v.is(name, database)) {
                if depth == MAX_DEPTH {
                    return Err(format!(
                        "{asked} goes through views nested deeper than {MAX_DEPTH}"
                    ));
                }
                let key = (v.db.clone(), v.name.clone());
                if !definitions.contains_key(&key) {
                    definitions.insert(key.clone(), v.read()?);
                }
                let (reads, refs, calls) = &definitions[&key];
                let (all, merged, called) = found.entry(asked.clone()).or_default();
                called.extend(calls.iter().cloned());
                merged.names.extend(refs.names.iter().cloned());
                merged.star |= refs.star;
                merged.relations.extend(refs.relations.iter().cloned());
                for r in reads {
                    all.insert(r.clone());
                    if seen.insert((asked.clone(), r.clone())) {
                        next.push((asked.clone(), r.clone()));
                    }
                }
            }
        }
        frontier = next;
    }
    // The stored functions among the functions the views call.
    let called: Vec<String> = found
        .values()
        .flat_map(|(_, _, called)| called.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let stored = functions_named(up, &called).await?;
    Ok(found
        .into_iter()
        .map(|(name, (mut reads, refs, called))| {
            let calls_functions = called.iter().any(|f| stored.contains(f));
            if calls_functions {
                reads.insert(gatehouse_policy::CALLS_FUNCTIONS.to_string());
            }
            let reads = reads.into_iter().collect::<Vec<_>>().into();
            (
                name,
                Arc::new(ViewInfo {
                    reads,
                    refs,
                    calls_functions,
                }),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(db: &str, name: &str, definition: &str) -> View {
        View {
            db: db.into(),
            name: name.into(),
            definition: definition.into(),
        }
    }

    #[test]
    fn a_name_is_a_view_in_its_database_or_the_sessions() {
        let v = view("shop", "vault_v", "select 1");
        assert!(v.is("vault_v", Some("shop")));
        assert!(v.is("vault_v", Some("SHOP")));
        assert!(v.is("shop.vault_v", Some("other")));
        assert!(v.is("vault_v", None));
        assert!(!v.is("vault_v", Some("other")));
        assert!(!v.is("other.vault_v", Some("shop")));
        assert!(!v.is("vault", Some("shop")));
    }

    #[test]
    fn a_definition_reads_its_tables_qualified_and_an_unreadable_one_is_an_error() {
        let v = view(
            "shop",
            "v",
            "select `shop`.`vault`.`id` AS `id`, `shop`.`tag`(`shop`.`vault`.`id`) AS `t` from (`shop`.`vault` join `hr`.`people` on(1)) where `id` in (select `id` from `kept`)",
        );
        let (reads, refs, calls) = v.read().unwrap();
        assert!(calls.contains("tag"), "{calls:?}");
        assert_eq!(
            reads.into_iter().collect::<Vec<_>>(),
            ["hr.people", "shop.kept", "shop.vault"]
        );
        let mut relations: Vec<&str> = refs.relations.iter().map(|(t, _)| t.as_str()).collect();
        relations.sort();
        assert_eq!(relations, ["hr.people", "shop.kept", "shop.vault"]);
        assert!(refs.names.contains("id"));
        let hidden = view("shop", "v", "");
        assert!(hidden.read().unwrap_err().contains("SHOW VIEW"));
        let garbled = view("shop", "v", "selec nonsense ((");
        assert!(garbled.read().unwrap_err().contains("could not parse"));
    }
}
