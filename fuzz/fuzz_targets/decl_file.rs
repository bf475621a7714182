#![no_main]
use std::path::Path;

use gatehouse_core::decl::{self, SecretSource};
use libfuzzer_sys::fuzz_target;

struct Fixed;

impl SecretSource for Fixed {
    fn env(&self, _: &str) -> Option<String> {
        Some("pw".into())
    }
    fn file(&self, _: &Path) -> std::io::Result<String> {
        Ok("pw".into())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() <= 1 << 20 {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = decl::parse(text, &Fixed);
        }
    }
});
