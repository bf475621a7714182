//! `decl::parse`: the declarative TOML file (`gatehouse apply -f`), with a
//! secret source that answers every reference with a fixed value.
#![no_main]
use std::path::Path;

use gatehouse_core::decl::{self, SecretSource};
use libfuzzer_sys::fuzz_target;

struct Fixed;

impl SecretSource for Fixed {
    fn env(&self, name: &str) -> Option<String> {
        // An unset variable is an error path worth reaching too.
        (name != "UNSET").then(|| "pw-env".into())
    }
    fn file(&self, _: &Path) -> std::io::Result<String> {
        Ok("pw-file\n".into())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match decl::parse(text, &Fixed) {
        Ok(d) => {
            let mut names: Vec<&str> = Vec::new();
            for c in &d.connections {
                assert!(c.spec.validate().is_ok(), "{:?}", c.spec);
                assert!(
                    !names.contains(&c.spec.name.as_str()),
                    "duplicate {}",
                    c.spec.name
                );
                names.push(&c.spec.name);
                assert!((1..=lines).contains(&c.line));
                if let Some(p) = &c.password {
                    assert!(["pw-env", "pw-file"].contains(&p.expose()));
                }
            }
        }
        // Every error names a line of the file (or the line after the last).
        Err(e) => assert!((1..=lines + 1).contains(&e.line), "{e} ({lines} lines)"),
    }
});
