//! `JsonPath::parse`, `select`, `pointers` and `json_mask::mask_json`.
//!
//! The input is a path text, `\n`, then a JSON document (at most 64 KiB in
//! all). Selected nodes are distinct and their pointers lead back to them;
//! after masking with `redact` (and every detector) the document serializes
//! and parses back, and the path selects only `"[REDACTED]"` strings and
//! nulls: masking replaces nodes in place without changing any array's
//! length or object's keys except that a masked container becomes a string,
//! so the path can only select fewer places than before, and of those only
//! the outermost ones remain (each rewritten, or a null left as it was).
#![no_main]
use std::collections::HashSet;

use gatehouse_core::policy::json_path::JsonPath;
use gatehouse_core::policy::spec::{DetectorKind, MaskMethod};
use gatehouse_policy::detect::Detectors;
use gatehouse_policy::json_mask::mask_json;
use gatehouse_policy::mask::REDACTED;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_INPUT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return;
    };
    let path = match JsonPath::parse(text) {
        Ok(p) => p,
        Err(e) => {
            assert!(e.starts_with("json path "), "{e}");
            return;
        }
    };
    assert_eq!(path.as_str(), text);
    assert_eq!(path.to_string(), text);
    let Ok(mut doc) = serde_json::from_slice::<Value>(rest) else {
        return;
    };

    let selected = path.select(&doc);
    let pointers = path.pointers(&doc);
    assert_eq!(selected.len(), pointers.len());
    let mut seen: HashSet<*const Value> = HashSet::new();
    for (node, ptr) in selected.iter().zip(&pointers) {
        assert!(
            seen.insert(std::ptr::from_ref(*node)),
            "{ptr} selected twice"
        );
        let back = doc.pointer(ptr);
        assert!(
            back.is_some_and(|b| std::ptr::eq(b, *node)),
            "{ptr} leads elsewhere"
        );
    }
    let before = selected.len();

    let detectors = Detectors::new(&DetectorKind::ALL);
    let n = mask_json(
        &mut doc,
        &[(path.clone(), MaskMethod::Redact)],
        Some(&detectors),
        b"fuzz-hash-key",
    );
    let out = match serde_json::to_string(&doc) {
        Ok(s) => s,
        Err(e) => panic!("masked document does not serialize: {e}"),
    };
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");

    let after = path.select(&doc);
    assert!(after.len() <= before, "{} > {before}", after.len());
    let mut redacted = 0;
    for v in &after {
        match v {
            Value::Null => {}
            Value::String(s) if s == REDACTED => redacted += 1,
            other => panic!("{text} still selects {other}"),
        }
    }
    assert!(n >= redacted, "{n} rewrites < {redacted} redacted");
});
