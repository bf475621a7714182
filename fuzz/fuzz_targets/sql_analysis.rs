//! The SQL analysis (libpg_query through `pg_query`, then our walk of its
//! tree): any text is analysed without panicking; text that does not parse
//! has no class (so the policy fails closed on it). `column_refs` may give
//! up (`None`) where the summary parser succeeded: a fuzz input did so in
//! this sanitizer build though the same text gives references in a normal
//! build (cause not pinned down); `None` counts as "reads masked data",
//! which fails closed, so it is not an error here. Every call of a
//! function that signals backends the summary sees is also one whose
//! target the proxy checks (found by our own walk of the whole tree); and
//! the cheap look at the text that decides whether a read-only
//! connection's statement is parsed for leaving read-only mode never says
//! no where the parse would find it does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if sql.len() > 64 * 1024 {
        return;
    }
    let a = gatehouse_policy::analyze(sql);
    assert_eq!(a.class.is_none(), a.parse_error.is_some(), "{a:?}");
    let signals = gatehouse_policy::analyze::BACKEND_SIGNALS;
    if a
        .reasons
        .iter()
        .any(|r| signals.iter().any(|f| r == &format!("calls {f}")))
    {
        assert!(!a.backend_signals.is_empty(), "{a:?}");
    }
    let _ = gatehouse_policy::column_refs(sql);
    if a.class.is_some() && gatehouse_policy::analyze::lifts_read_only(sql) {
        assert!(gatehouse_policy::analyze::may_lift_read_only(sql), "{sql}");
    }
});
