//! Where result columns come from: table OIDs in a `RowDescription` are
//! resolved against the upstream's catalog, over a separate short-lived
//! connection opened with the stored credential, and cached per connection
//! and OID. A view is resolved to the table columns it reads (through
//! `pg_depend`), so a view over a masked column is masked too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use gatehouse_core::secret::Secret;
use tokio::io::AsyncReadExt;

use crate::codec;
use crate::stream::write_flush;
use crate::upstream::{self, Target};

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

/// A relation and when it was read.
type Cached = (Instant, Arc<Relation>);

#[derive(Debug, Default)]
pub struct Catalog {
    cache: Mutex<HashMap<(String, u32), Cached>>,
}

impl Catalog {
    fn cached(&self, connection: &str, oid: u32) -> Option<Arc<Relation>> {
        let g = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(&(connection.to_string(), oid))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, r)| r.clone())
    }

    fn store(&self, connection: &str, rels: &HashMap<u32, Arc<Relation>>) {
        let mut g = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() + rels.len() > MAX_CACHED {
            g.clear();
        }
        let now = Instant::now();
        for (oid, r) in rels {
            g.insert((connection.to_string(), *oid), (now, r.clone()));
        }
    }

    /// The relations for `oids` and, for views among them, the relations
    /// they read, transitively. OIDs the catalog does not know are absent.
    pub async fn resolve(
        &self,
        access: &CatalogAccess,
        oids: &[u32],
    ) -> Result<HashMap<u32, Arc<Relation>>, String> {
        let mut out = HashMap::new();
        let mut wanted: Vec<u32> = oids.to_vec();
        let mut session: Option<upstream::Upstream> = None;
        for _ in 0..=MAX_DEPTH {
            wanted.retain(|o| *o != 0 && !out.contains_key(o));
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                break;
            }
            let mut missing = Vec::new();
            for o in &wanted {
                match self.cached(&access.connection, *o) {
                    Some(r) => {
                        out.insert(*o, r);
                    }
                    None => missing.push(*o),
                }
            }
            if !missing.is_empty() {
                if session.is_none() {
                    session = Some(
                        upstream::connect(
                            &access.target,
                            access.password.as_ref(),
                            &[("application_name", "gatehouse catalog")],
                        )
                        .await
                        .map_err(|e| e.to_string())?,
                    );
                }
                let Some(up) = session.as_mut() else {
                    return Err("no catalog session".into());
                };
                let fresh = fetch(up, &missing).await?;
                self.store(&access.connection, &fresh);
                out.extend(fresh);
            }
            wanted = out
                .values()
                .flat_map(|r| r.reads.iter().map(|(o, _)| *o))
                .collect();
        }
        if let Some(mut up) = session {
            let mut b = BytesMut::new();
            b.extend_from_slice(b"X\0\0\0\x04");
            let _ = write_flush(&mut up.stream, &b).await;
        }
        Ok(out)
    }
}

fn oid_list(oids: &[u32]) -> String {
    oids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn fetch(
    up: &mut upstream::Upstream,
    oids: &[u32],
) -> Result<HashMap<u32, Arc<Relation>>, String> {
    let list = oid_list(oids);
    let columns = simple_query(
        up,
        &format!(
            "SELECT c.oid::int8, n.nspname, c.relname, c.relkind, a.attnum, a.attname
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.oid IN ({list})"
        ),
    )
    .await?;
    let reads = simple_query(
        up,
        &format!(
            "SELECT DISTINCT r.ev_class::int8, d.refobjid::int8, d.refobjsubid
             FROM pg_catalog.pg_rewrite r
             JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.refobjsubid > 0 AND d.refobjid <> r.ev_class
             WHERE r.ev_class IN ({list})"
        ),
    )
    .await?;
    let mut rels: HashMap<u32, Relation> = HashMap::new();
    let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<i64>().ok());
    for row in &columns {
        let [oid, schema, name, kind, attnum, attname] = row.as_slice() else {
            return Err("unexpected catalog row".into());
        };
        let Some(oid) = num(oid).and_then(|o| u32::try_from(o).ok()) else {
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
        });
        if let (Some(n), Some(col)) = (num(attnum).and_then(|n| i16::try_from(n).ok()), attname) {
            rel.columns.insert(n, col.clone());
        }
    }
    for row in &reads {
        let [view, table, col] = row.as_slice() else {
            return Err("unexpected catalog row".into());
        };
        let (Some(view), Some(table), Some(col)) = (
            num(view).and_then(|o| u32::try_from(o).ok()),
            num(table).and_then(|o| u32::try_from(o).ok()),
            num(col).and_then(|n| i16::try_from(n).ok()),
        ) else {
            continue;
        };
        if let Some(r) = rels.get_mut(&view) {
            r.reads.push((table, col));
        }
    }
    Ok(rels.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

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
