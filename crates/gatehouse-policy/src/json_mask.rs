//! Masking JSON documents: values at JSON paths, and content detectors on every string.
//!
//! Values are rewritten with [`crate::mask::mask_text`], the same rewrite as
//! SQL result values, and several masks on one value resolve with
//! [`crate::mask::strictness`]. Detectors scan string values only: object
//! keys, numbers and booleans are not scanned.

use std::collections::{HashMap, HashSet};

use gatehouse_core::policy::json_path::JsonPath;
use gatehouse_core::policy::spec::MaskMethod;
use serde_json::Value;

use crate::detect::Detectors;
use crate::mask::{REDACTED, mask_text, strictness};

/// Masks `doc` in place: every node a path selects is rewritten with its
/// method (the strictest, by [`strictness`], when several paths select one
/// node); then, if `detectors` is given, every string value not already
/// masked is replaced by [`Detectors::redact`] of it when that finds
/// something. Detectors look at string values only, never at object keys.
///
/// A selected node is rewritten as follows:
/// - a string: [`mask_text`] of it (`null` method: JSON null);
/// - a number or a boolean: [`mask_text`] of its JSON text (`12`, `true`),
///   as a string (`null` method: JSON null);
/// - null: stays null (and is not counted);
/// - an object or an array: `null` method: null; `hash`: the hash of its
///   compact serialization; `redact` and `partial`: the string `[REDACTED]`.
///
/// When a node and a node inside it are both selected, the outer node's
/// rewrite is the result (whatever the methods).
///
/// Returns how many values were rewritten: path masks plus detector
/// rewrites.
pub fn mask_json(
    doc: &mut Value,
    paths: &[(JsonPath, MaskMethod)],
    detectors: Option<&Detectors>,
    hash_key: &[u8],
) -> usize {
    let mut chosen: HashMap<String, MaskMethod> = HashMap::new();
    for (path, method) in paths {
        for ptr in path.pointers(doc) {
            chosen
                .entry(ptr)
                .and_modify(|m| {
                    if strictness(*method) > strictness(*m) {
                        *m = *method;
                    }
                })
                .or_insert(*method);
        }
    }
    let mut count = 0;
    // The rewritten nodes, by address, for the detectors to skip. Nodes are
    // only replaced in place (no container grows or shrinks), and nothing
    // inside a rewritten node is touched, so the addresses stay valid.
    let mut masked: HashSet<*const Value> = HashSet::new();
    for (ptr, method) in &chosen {
        if has_selected_ancestor(ptr, &chosen) {
            continue;
        }
        let Some(node) = doc.pointer_mut(ptr) else {
            continue;
        };
        if rewrite(node, *method, hash_key) {
            count += 1;
        }
        masked.insert(std::ptr::from_ref(node));
    }
    if let Some(d) = detectors {
        count += scan_strings(doc, d, &masked);
    }
    count
}

/// Whether a proper prefix of the pointer `ptr` (a node containing it) is
/// selected too. `/` only separates tokens (a `/` in a name is `~1`).
fn has_selected_ancestor(ptr: &str, chosen: &HashMap<String, MaskMethod>) -> bool {
    ptr.match_indices('/')
        .any(|(i, _)| ptr.get(..i).is_some_and(|p| chosen.contains_key(p)))
}

/// Rewrites one selected node; false when it is left as it was (null).
fn rewrite(node: &mut Value, method: MaskMethod, hash_key: &[u8]) -> bool {
    let text = |s: &str| mask_text(method, s, hash_key).map_or(Value::Null, Value::String);
    let new = match &*node {
        Value::Null => return false,
        Value::String(s) => text(s),
        Value::Bool(b) => text(if *b { "true" } else { "false" }),
        Value::Number(n) => text(&n.to_string()),
        Value::Array(_) | Value::Object(_) => match method {
            MaskMethod::Null => Value::Null,
            MaskMethod::Hash => match serde_json::to_string(&*node) {
                Ok(s) => text(&s),
                // Not reachable for a `Value`; fail closed.
                Err(_) => Value::String(REDACTED.into()),
            },
            MaskMethod::Redact | MaskMethod::Partial => Value::String(REDACTED.into()),
        },
    };
    *node = new;
    true
}

/// Replaces every string value outside `masked` in which the detectors find
/// something; returns how many were replaced.
fn scan_strings(doc: &mut Value, detectors: &Detectors, masked: &HashSet<*const Value>) -> usize {
    let mut count = 0;
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        if masked.contains(&std::ptr::from_ref(&*v)) {
            continue;
        }
        match v {
            Value::String(s) => {
                if let Some(r) = detectors.redact(s) {
                    *s = r;
                    count += 1;
                }
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            Value::Object(m) => stack.extend(m.values_mut()),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::policy::spec::DetectorKind;
    use serde_json::json;

    const KEY: &[u8] = &[7u8; 32];

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn mask(doc: &mut Value, paths: &[(&str, MaskMethod)], detect: bool) -> usize {
        let paths: Vec<(JsonPath, MaskMethod)> = paths.iter().map(|(p, m)| (path(p), *m)).collect();
        let d = Detectors::new(&DetectorKind::ALL);
        mask_json(doc, &paths, detect.then_some(&d), KEY)
    }

    fn hash(s: &str) -> Value {
        Value::String(mask_text(MaskMethod::Hash, s, KEY).unwrap_or_default())
    }

    #[test]
    fn descent_finds_email_at_any_depth() {
        let mut doc = json!({
            "account": {
                "owner": {"email": "own@example.com", "name": "Own"},
                // The twist: `email` inside objects inside an array inside an
                // object, and one under another name, as an alias would be.
                "contacts": [
                    {"email": "a@example.com", "role": "billing"},
                    {"kind": "x", "nested": [[{"email": "b@example.com"}]]}
                ],
                "contact_email": "c@example.com"
            },
            "email": 42
        });
        let n = mask(&mut doc, &[("$..email", MaskMethod::Redact)], false);
        assert_eq!(n, 4);
        assert_eq!(
            doc,
            json!({
                "account": {
                    "owner": {"email": REDACTED, "name": "Own"},
                    "contacts": [
                        {"email": REDACTED, "role": "billing"},
                        {"kind": "x", "nested": [[{"email": REDACTED}]]}
                    ],
                    "contact_email": "c@example.com"
                },
                "email": REDACTED
            })
        );
        // The alias-like member is a detector's job.
        let n = mask(&mut doc, &[("$..email", MaskMethod::Redact)], true);
        assert_eq!(n, 4 + 1);
        assert_eq!(doc["account"]["contact_email"], json!("[REDACTED:email]"));
    }

    #[test]
    fn strictest_method_wins() {
        let mut doc =
            json!({"customers": [{"card": "4111111111111111", "email": "a@example.com"}]});
        let n = mask(
            &mut doc,
            &[
                ("$.customers[*].card", MaskMethod::Hash),
                ("$..card", MaskMethod::Partial),
                ("$..email", MaskMethod::Null),
                ("$.customers[0].email", MaskMethod::Redact),
            ],
            false,
        );
        assert_eq!(n, 2);
        assert_eq!(
            doc,
            json!({"customers": [{"card": "************1111", "email": null}]})
        );
    }

    #[test]
    fn outer_node_wins_over_inner() {
        let original = json!({"name": "Ann", "email": "ann@example.com"});
        let mut doc = json!({"customers": [original.clone()], "n": 1});
        // Whatever the order of the paths and the methods.
        let n = mask(
            &mut doc,
            &[
                ("$..email", MaskMethod::Null),
                ("$.customers[0]", MaskMethod::Hash),
                ("$.customers[0].name", MaskMethod::Redact),
            ],
            false,
        );
        assert_eq!(n, 1);
        let text = serde_json::to_string(&original).unwrap_or_default();
        assert_eq!(doc, json!({"customers": [hash(&text)], "n": 1}));

        let mut doc = json!({"a": {"b": {"c": "x"}}, "d": "y"});
        let n = mask(
            &mut doc,
            &[("$..*", MaskMethod::Partial), ("$..c", MaskMethod::Null)],
            false,
        );
        assert_eq!(n, 2);
        assert_eq!(doc, json!({"a": REDACTED, "d": "****"}));

        let mut doc = json!({"a": [1, {"b": 2}]});
        assert_eq!(
            mask(
                &mut doc,
                &[("$", MaskMethod::Null), ("$..b", MaskMethod::Redact)],
                false
            ),
            1
        );
        assert_eq!(doc, Value::Null);
    }

    #[test]
    fn each_method_on_each_type() {
        let doc = json!({
            "s": "4111111111111111", "short": "ab", "n": 123456, "f": -1.5,
            "t": true, "z": null, "o": {"k": [1]}, "a": [1, "x"]
        });
        let run = |m: MaskMethod| {
            let mut d = doc.clone();
            let n = mask(&mut d, &[("$.*", m)], false);
            assert_eq!(n, 7, "{m:?}: every member but the null");
            d
        };
        assert_eq!(
            run(MaskMethod::Redact),
            json!({
                "s": REDACTED, "short": REDACTED, "n": REDACTED, "f": REDACTED,
                "t": REDACTED, "z": null, "o": REDACTED, "a": REDACTED
            })
        );
        assert_eq!(
            run(MaskMethod::Partial),
            json!({
                "s": "************1111", "short": "****", "n": "**3456", "f": "****",
                "t": "****", "z": null, "o": REDACTED, "a": REDACTED
            })
        );
        assert_eq!(
            run(MaskMethod::Null),
            json!({
                "s": null, "short": null, "n": null, "f": null,
                "t": null, "z": null, "o": null, "a": null
            })
        );
        assert_eq!(
            run(MaskMethod::Hash),
            json!({
                "s": hash("4111111111111111"), "short": hash("ab"), "n": hash("123456"),
                "f": hash("-1.5"), "t": hash("true"), "z": null,
                "o": hash(r#"{"k":[1]}"#), "a": hash(r#"[1,"x"]"#)
            })
        );
        // Equal values give equal tokens, whatever their JSON type.
        let mut d = json!([12, "12"]);
        mask(&mut d, &[("$[*]", MaskMethod::Hash)], false);
        assert_eq!(d[0], d[1]);
    }

    #[test]
    fn detectors_scan_strings_no_path_names() {
        let mut doc = json!({
            "tickets": [{
                "id": 4111111111111111_u64,
                "body": "Mail alice@example.com, card 4111 1111 1111 1111, thanks",
                "card": "4111111111111111",
                "note": "nothing here"
            }],
            "bob@example.com": "key is not scanned",
            "ok": true
        });
        let n = mask(&mut doc, &[("$..card", MaskMethod::Partial)], true);
        assert_eq!(n, 2, "the card by its path, the body by the detectors");
        assert_eq!(
            doc,
            json!({
                "tickets": [{
                    "id": 4111111111111111_u64,
                    "body": "Mail [REDACTED:email], card [REDACTED:credit_card], thanks",
                    "card": "************1111",
                    "note": "nothing here"
                }],
                "bob@example.com": "key is not scanned",
                "ok": true
            })
        );
        // A masked value is not scanned again: a hash of an email stays.
        let mut doc = json!({"e": "carol@example.com", "f": "dave@example.com"});
        let n = mask(&mut doc, &[("$.e", MaskMethod::Hash)], true);
        assert_eq!(n, 2);
        assert_eq!(
            doc,
            json!({"e": hash("carol@example.com"), "f": "[REDACTED:email]"})
        );
    }

    #[test]
    fn counts() {
        let mut doc = json!({"a": [null, "x", 1], "b": "free text", "c": "e@example.org"});
        assert_eq!(mask(&mut doc, &[], false), 0);
        assert_eq!(
            mask(&mut doc, &[("$.nothing", MaskMethod::Redact)], true),
            1
        );
        assert_eq!(mask(&mut doc, &[("$.a[*]", MaskMethod::Redact)], false), 2);
        assert_eq!(
            doc,
            json!({"a": [null, REDACTED, REDACTED], "b": "free text", "c": "[REDACTED:email]"})
        );
        // The same node through two paths counts once.
        let mut doc = json!({"a": {"b": "x"}});
        assert_eq!(
            mask(
                &mut doc,
                &[("$.a.b", MaskMethod::Redact), ("$..b", MaskMethod::Redact)],
                true
            ),
            1
        );
    }
}
