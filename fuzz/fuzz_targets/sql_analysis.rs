//! The SQL analysis (libpg_query through `pg_query`, then our walk of its
//! tree): any text is analysed without panicking; text that does not parse
//! has no class (so the policy fails closed on it). `column_refs` may give
//! up (`None`) where the summary parser succeeded: the full parse's tree is
//! decoded (prost) with a limit of 100 nested messages, which the summary
//! does not have, so an expression nested about 45 deep (`1 + + + … 1`)
//! parses in the summary but not in full; `None` counts as "reads masked
//! data", which fails closed, so it is not an error here. Every call of a
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
    // Where the summary sees a call that the full parse cannot read (too
    // deep), the statement has no class and is refused.
    if a.class.is_some()
        && a.reasons
            .iter()
            .any(|r| signals.iter().any(|f| r == &format!("calls {f}")))
    {
        assert!(!a.backend_signals.is_empty(), "{a:?}");
    }
    let _ = gatehouse_policy::column_refs(sql);
    // Where the full parse fails (too deep to decode), `lifts_read_only`
    // says yes to fail closed, though nothing in the text could lift it:
    // the cheap look is checked against texts the full parse reads.
    if a.class.is_some()
        && gatehouse_policy::analyze::lifts_read_only(sql)
        && pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).is_ok()
    {
        assert!(gatehouse_policy::analyze::may_lift_read_only(sql), "{sql}");
    }
});
