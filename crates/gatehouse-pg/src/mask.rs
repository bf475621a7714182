//! Masking results as they stream: a `RowDescription` says where each
//! column comes from (table OID and column number); those are resolved
//! against the upstream catalog and the caller's mask plan, and each
//! `DataRow` is then rewritten one message at a time, touching only the
//! masked fields. Whatever cannot be masked safely is withheld (NULL),
//! never passed through.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::BytesMut;
use gatehouse_core::keyring::Keyring;
use gatehouse_core::policy::spec::MaskMethod;
use gatehouse_policy::StatementMask;
use gatehouse_policy::mask::{mask_text, strictness};
use zeroize::Zeroizing;

use crate::catalog::{Catalog, CatalogAccess, Relation};
use crate::codec::{self, Field};

/// How a value of a column is represented, for masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// UTF-8 text in both formats (text, varchar, char, name, xml, …).
    Plain,
    /// JSON text: a masked value becomes a JSON string.
    Json,
    /// jsonb in binary format: a version byte, then JSON text.
    JsonbBinary,
}

fn text_kind(f: &Field) -> Option<Text> {
    match f.type_oid {
        25 | 1043 | 1042 | 19 | 142 | 705 => Some(Text::Plain),
        114 => Some(Text::Json),
        3802 if f.format == 1 => Some(Text::JsonbBinary),
        3802 => Some(Text::Json),
        _ => None,
    }
}

/// What happens to one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pass,
    /// Masked with the method (text columns; other types become NULL).
    Mask(MaskMethod, Option<Text>),
    /// Scanned by the content detectors.
    Detect(Text),
    /// NULL: masking could not be applied safely.
    Withhold,
}

/// How the rows of one result are masked.
#[derive(Debug, Clone)]
pub struct RowMask {
    actions: Vec<Action>,
    plan: StatementMask,
}

impl RowMask {
    /// Indexes of the columns whose values are masked or withheld.
    pub fn masked_columns(&self) -> Vec<usize> {
        self.actions
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Action::Mask(..) | Action::Withhold))
            .map(|(i, _)| i)
            .collect()
    }
}

/// The stricter of a method found so far (if any) and `m`.
fn strictest_of(so_far: Option<MaskMethod>, m: MaskMethod) -> MaskMethod {
    match so_far {
        Some(s) if strictness(s) >= strictness(m) => s,
        _ => m,
    }
}

/// A session's masking state.
#[derive(Debug)]
pub struct Session {
    relations: HashMap<u32, Arc<Relation>>,
    /// OIDs the catalog could not resolve (columns from them are withheld).
    unresolvable: HashSet<u32>,
    hash_key: Zeroizing<[u8; 32]>,
    /// Reused for each row's value ranges.
    ranges: Vec<Option<std::ops::Range<usize>>>,
    /// The catalog's count of view changes the relations were resolved
    /// under ([`Session::keep_up`]).
    changes: u64,
}

impl Session {
    pub fn new(keys: &Keyring) -> Session {
        Session {
            relations: HashMap::new(),
            unresolvable: HashSet::new(),
            hash_key: keys.derive("mask-hash"),
            ranges: Vec::new(),
            changes: 0,
        }
    }

    /// Forgets the relations resolved so far when what views read may have
    /// changed since (`changes`, [`crate::catalog::Catalog::changes`]): a
    /// view replaced in this or another session is resolved again.
    pub fn keep_up(&mut self, changes: u64) {
        if changes != self.changes {
            self.relations.clear();
            self.unresolvable.clear();
            self.changes = changes;
        }
    }

    /// Table OIDs of `fields` whose relation is not known yet, when column
    /// masks apply.
    pub fn unresolved(&self, fields: &[Field], mask: &StatementMask) -> Vec<u32> {
        if !mask.plan.has_columns() {
            return Vec::new();
        }
        let mut out: Vec<u32> = fields
            .iter()
            .map(|f| f.table_oid)
            .filter(|o| {
                *o != 0 && !self.relations.contains_key(o) && !self.unresolvable.contains(o)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Resolves relations (and what views read) through the catalog.
    pub async fn resolve(&mut self, catalog: &Catalog, access: &CatalogAccess, oids: &[u32]) {
        match catalog.resolve(access, oids).await {
            Ok(found) => {
                for o in oids {
                    if !found.contains_key(o) {
                        self.unresolvable.insert(*o);
                    }
                }
                self.relations.extend(found);
            }
            Err(e) => {
                tracing::warn!(connection = %access.connection, error = %e, "cannot read the upstream catalog; columns of these tables are withheld");
                self.unresolvable.extend(oids.iter().copied());
            }
        }
    }

    /// The strictest mask on a table column, following views to the
    /// columns they read. A view that reads a masked column has every
    /// column masked (which of its columns carries the data is not known).
    fn column_method(
        &self,
        mask: &StatementMask,
        oid: u32,
        attnum: i16,
        depth: usize,
    ) -> Result<Option<MaskMethod>, ()> {
        let rel = self.relations.get(&oid).ok_or(())?;
        if gatehouse_policy::holds_column_samples_in(Some(&rel.schema), &rel.name) {
            // Planner statistics: sample values of any column.
            return Ok(Some(MaskMethod::Redact));
        }
        match rel.kind {
            'v' | 'm' => {
                if depth > 8 {
                    return Err(());
                }
                if mask.plan.reads_masked(&rel.function_reads) {
                    // A function defined in the database that it calls
                    // may return masked data (or what it does is not
                    // known): masked as a computed column would be.
                    return Ok(Some(MaskMethod::Redact));
                }
                let mut strictest: Option<MaskMethod> = None;
                for (t, c) in &rel.reads {
                    if let Some(m) = self.column_method(mask, *t, *c, depth + 1)? {
                        strictest = Some(strictest_of(strictest, m));
                    }
                }
                Ok(strictest)
            }
            _ if attnum == 0 => {
                // The whole row (`SELECT c FROM customers c`): as strict
                // as the strictest of its columns.
                let mut strictest: Option<MaskMethod> = None;
                for name in rel.columns.values() {
                    if let Some(m) = self.table_method(mask, rel, name, depth)? {
                        strictest = Some(strictest_of(strictest, m));
                    }
                }
                Ok(strictest)
            }
            _ => {
                let Some(name) = rel.columns.get(&attnum) else {
                    return Ok(None);
                };
                self.table_method(mask, rel, name, depth)
            }
        }
    }

    /// The strictest mask on the column `name` of a table, or of the
    /// tables it is a partition or an inheritance child of (whose column of
    /// that name it is: the server keeps inherited columns' names).
    fn table_method(
        &self,
        mask: &StatementMask,
        rel: &Relation,
        name: &str,
        depth: usize,
    ) -> Result<Option<MaskMethod>, ()> {
        if depth > 8 {
            return Err(());
        }
        let mut strictest = mask.plan.method_for(&rel.schema, &rel.name, name);
        for parent in &rel.parents {
            let parent = self.relations.get(parent).ok_or(())?;
            if let Some(m) = self.table_method(mask, parent, name, depth + 1)? {
                strictest = Some(strictest_of(strictest, m));
            }
        }
        Ok(strictest)
    }

    /// The masking of a result with these columns; `None` when nothing in
    /// it is masked or scanned.
    pub fn row_mask(&self, fields: &[Field], mask: &StatementMask) -> Option<RowMask> {
        let actions: Vec<Action> = fields
            .iter()
            .map(|f| {
                let text = text_kind(f);
                let method = if !mask.plan.has_columns() {
                    Ok(None)
                } else if f.table_oid == 0 {
                    Ok(mask.taint.then_some(MaskMethod::Redact))
                } else {
                    self.column_method(mask, f.table_oid, f.column, 0)
                };
                match method {
                    Err(()) => Action::Withhold,
                    Ok(Some(m)) => Action::Mask(m, text),
                    Ok(None) => match (text, &mask.plan.detectors) {
                        (Some(t), Some(_)) => Action::Detect(t),
                        _ => Action::Pass,
                    },
                }
            })
            .collect();
        actions.iter().any(|a| *a != Action::Pass).then(|| RowMask {
            actions,
            plan: mask.clone(),
        })
    }

    /// Writes `body` (a DataRow's) masked into `out`: unmasked values are
    /// copied as they are, only masked ones are rewritten.
    pub fn mask_row(
        &mut self,
        rows: &RowMask,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), String> {
        codec::data_row_ranges(body, &mut self.ranges).map_err(|e| e.to_string())?;
        if self.ranges.len() != rows.actions.len() {
            return Err(format!(
                "the row has {} values for {} columns",
                self.ranges.len(),
                rows.actions.len()
            ));
        }
        let at = codec::data_row_begin(out, self.ranges.len());
        for (range, action) in self.ranges.iter().zip(&rows.actions) {
            let Some(range) = range else {
                codec::data_row_value(out, None);
                continue;
            };
            let v = &body[range.clone()];
            match *action {
                Action::Pass => codec::data_row_value(out, Some(v)),
                Action::Withhold => codec::data_row_value(out, None),
                Action::Mask(method, text) => {
                    let masked = text.and_then(|t| {
                        let s = decode(v, t)?;
                        let m = mask_text(method, s, &*self.hash_key)?;
                        Some(encode(&m, t, true))
                    });
                    codec::data_row_value(out, masked.as_deref());
                }
                Action::Detect(text) => {
                    let Some(s) = decode(v, text) else {
                        codec::data_row_value(out, None);
                        continue;
                    };
                    match rows.plan.plan.detectors.as_ref() {
                        // Detectors were planned for this column; without them, withhold.
                        None => codec::data_row_value(out, None),
                        Some(d) => match d.redact(s) {
                            None => codec::data_row_value(out, Some(v)),
                            Some(r) => codec::data_row_value(out, Some(&encode(&r, text, false))),
                        },
                    }
                }
            }
        }
        codec::data_row_end(out, at);
        Ok(())
    }
}

/// The text of a value; `None` when it is not valid UTF-8 (then withheld).
fn decode(v: &[u8], text: Text) -> Option<&str> {
    let bytes = match text {
        Text::JsonbBinary => v.strip_prefix(&[1u8])?,
        _ => v,
    };
    std::str::from_utf8(bytes).ok()
}

/// A rewritten value in the column's representation. A whole masked JSON
/// value becomes a JSON string, so the result stays valid JSON.
fn encode(s: &str, text: Text, whole: bool) -> Vec<u8> {
    let body = if whole && text != Text::Plain {
        json_string(s)
    } else {
        s.to_string()
    };
    match text {
        Text::JsonbBinary => {
            let mut v = Vec::with_capacity(body.len() + 1);
            v.push(1);
            v.extend_from_slice(body.as_bytes());
            v
        }
        _ => body.into_bytes(),
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What replaces the detail, context and internal query of an error or
/// notice about a statement that involves masked columns.
pub const WITHHELD: &str = "[withheld by Gatehouse: this statement involves masked columns, and this part of the message may show their values]";

/// A field of an error or notice (SQLSTATE `code`) about a statement that
/// involves masked columns ([`StatementMask::scrub_errors`]), or `None` to
/// leave it out. The server quotes values in its messages (`invalid input
/// syntax for type integer: "alice@example.com"`), so every quoted part of
/// the message and hint is redacted and the detectors run over what is
/// left; but not everywhere: a constraint's detail shows the row
/// (`Failing row contains (1, null, hunter2)`), the context shows JSON
/// input, an XML error's detail the document, the internal query the SQL a
/// function built, so those are withheld whole (and the internal position,
/// which points into the query, left out). Where a function defined in
/// the database ran with masked data, the message and hint are whatever
/// it raised: withheld too, but for the SQLSTATE.
pub fn scrub_field(field: u8, text: &str, mask: &StatementMask, code: &str) -> Option<String> {
    let detectors = mask.plan.detectors.as_deref();
    match field {
        b'M' if mask.withhold_message => Some(format!(
            "Gatehouse withheld this message (SQLSTATE {code}): the statement ran a function defined in the database with masked data, and what it reports may show that data"
        )),
        b'H' if mask.withhold_message => None,
        b'M' | b'H' => Some(gatehouse_policy::mask::scrub_message(text, detectors)),
        b'D' | b'W' | b'q' => Some(WITHHELD.to_string()),
        b'p' => None,
        _ => Some(text.to_string()),
    }
}
