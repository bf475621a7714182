//! Domain types shared by every Gatehouse crate.
//!
//! Nothing here does I/O except the key file helpers in [`keyring`]; the
//! store, identity and server crates build on these types.

pub mod credential;
pub mod decl;
pub mod duration;
pub mod keyring;
pub mod model;
pub mod policy;
pub mod secret;
pub mod token;

/// Current time as Unix milliseconds, the one clock representation in the store.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
