//! The MySQL analysis (`analyze_mysql`, `column_refs_mysql`): MySQL's
//! lexical rules applied by Gatehouse, then sqlparser's MySQL dialect and
//! the walk of its tree. Any text is analysed without panicking or
//! overflowing the stack; text that does not parse has no class and no
//! column references (so the policy fails closed on it).
//!
//! Beyond that, three properties about statements hiding:
//! - after a text that parses, a statement on a new line after `;` is
//!   always seen (nothing the text opened can swallow it), and so is a
//!   `KILL` there (its reason, which the MySQL proxy looks for), and a
//!   `SET tx_read_only` there leaves read-only mode;
//! - the text wrapped in an executable comment (`/*! … */`, which MySQL
//!   runs) analyses as the text itself, or does not parse.
#![no_main]
use gatehouse_policy::analyze_mysql::{KILL_REASON, lifts_read_only_mysql};
use gatehouse_policy::{Class, analyze_mysql, column_refs_mysql};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if sql.len() > 64 * 1024 {
        return;
    }
    let a = analyze_mysql(sql);
    assert_eq!(a.class.is_none(), a.parse_error.is_some(), "{a:?}");
    assert_eq!(column_refs_mysql(sql).is_some(), a.class.is_some(), "{sql:?}");
    let Some(class) = a.class else {
        return;
    };
    for t in a.tables_read.iter().chain(&a.tables_written).chain(&a.functions) {
        assert_eq!(*t, t.to_lowercase(), "{a:?}");
    }

    let more = analyze_mysql(&format!("{sql}\n;DELETE FROM zz_fuzz_t"));
    if let Some(c) = more.class {
        assert!(
            c >= Class::Write.max(class) && more.tables_written.contains("zz_fuzz_t"),
            "a statement after {sql:?} was not seen: {more:?}"
        );
    }

    // Gatehouse passes on a KILL only after mapping its id (the MySQL
    // proxy looks for this reason), so none may hide behind other text.
    let killing = analyze_mysql(&format!("{sql}\n;KILL 5"));
    if killing.class.is_some() {
        assert!(
            killing.reasons.iter().any(|r| r == KILL_REASON),
            "a KILL after {sql:?} was not seen: {killing:?}"
        );
    }

    // A read-only connection's sessions may not leave read-only mode: no
    // text may hide a SET of it from the check either.
    let leaving = format!("{sql}\n;SET tx_read_only = 0");
    if analyze_mysql(&leaving).class.is_some() {
        assert!(lifts_read_only_mysql(&leaving), "{leaving:?}");
    }

    let wrapped = analyze_mysql(&format!("/*! {sql}\n*/"));
    if wrapped.class.is_some() {
        assert_eq!(
            (wrapped.class, &wrapped.tables_read, &wrapped.tables_written),
            (a.class, &a.tables_read, &a.tables_written),
            "{sql:?} inside /*! … */"
        );
    }
});
