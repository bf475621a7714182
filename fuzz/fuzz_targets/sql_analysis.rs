//! The SQL analysis (libpg_query through `pg_query`, then our walk of its
//! tree): any text is analysed without panicking, and text that does not
//! parse has no class (so the policy fails closed on it).
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
    let refs = gatehouse_policy::column_refs(sql);
    if a.class.is_some() && !sql.contains('\0') {
        // What the summary parser accepts, the full parser accepts too.
        assert!(refs.is_some() || sql.len() > 60_000, "{sql:?}");
    }
});
