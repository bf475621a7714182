//! Reading a function's source (`gatehouse_policy::routine`), which the
//! PostgreSQL proxy does with what the upstream's catalog gives for
//! functions defined in the database (anyone who may create a function
//! writes that text): any source, in either language the reader knows or
//! another, is read without panicking; a language it does not read is
//! always opaque, and may run any statement; what may run any statement is
//! opaque; and text over the size limit is never read.
//!
//! The first byte picks the language (SQL, PL/pgSQL, or another) and
//! whether the text is the `prosrc` or the whole definition, or (PL/pgSQL
//! with bit 0x40) a trigger function's body (`trigger_routine`, which
//! reads it inside a definition of Gatehouse's making).
#![no_main]
use gatehouse_policy::routine::{MAX_SOURCE, routine, trigger_routine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if text.len() > 64 * 1024 {
        return;
    }
    let language = match pick % 3 {
        0 => "sql",
        1 => "plpgsql",
        _ => "plpython3u",
    };
    let (source, definition) = if pick & 0x80 == 0 {
        (Some(text), None)
    } else {
        (Some(""), Some(text))
    };
    let trigger = language == "plpgsql" && pick & 0x40 != 0;
    let r = if trigger {
        trigger_routine(Some(text))
    } else {
        routine(language, source, definition)
    };
    if language == "plpython3u" {
        // And may run any statement by itself.
        assert!(r.opaque.is_some() && r.runs_any_sql, "{r:?}");
    }
    // What may run any statement is opaque.
    assert!(!r.runs_any_sql || r.opaque.is_some(), "{r:?}");
    // Past the limit nothing is parsed.
    let long = format!("{text}{}", " ".repeat(MAX_SOURCE + 1));
    assert!(routine(language, Some(&long), None).opaque.is_some());
    if trigger {
        assert!(trigger_routine(Some(&long)).opaque.is_some());
    }
});
