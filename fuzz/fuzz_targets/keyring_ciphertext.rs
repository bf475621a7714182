#![no_main]
use gatehouse_core::duration::parse_duration;
use gatehouse_core::keyring::Keyring;
use libfuzzer_sys::fuzz_target;

// A fixed key: 32 zero bytes.
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ring) = Keyring::parse(KEY) {
        let _ = ring.decrypt(text, "ctx");
    }
    let _ = Keyring::parse(text);
    let _ = parse_duration(text);
});
