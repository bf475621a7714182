#![no_main]
use gatehouse_pg::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() <= codec::MAX_STARTUP {
        let _ = codec::parse_startup(data);
    }
});
