//! `parse_duration`: `90s`, `30m`, `1h30m`, `250ms`, ... (CLI flags, the
//! declarative file's timeouts, token TTLs from the API).
#![no_main]
use gatehouse_core::duration::{format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        // Whole milliseconds, within u64, and formatting round-trips.
        assert_eq!(d.subsec_nanos() % 1_000_000, 0);
        assert!(d.as_millis() <= u128::from(u64::MAX));
        let f = format_duration(d);
        assert_eq!(parse_duration(&f), Ok(d), "{text:?} -> {f:?}");
    }
});
