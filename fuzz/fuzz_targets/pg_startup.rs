//! `codec::parse_startup`: the first packet of a client connection (startup,
//! SSLRequest, GSSENCRequest, CancelRequest), as `session::read_startup`
//! hands it over: the body after the 4-byte length, the whole packet at most
//! `MAX_STARTUP` bytes; and the start-up settings read from its parameters
//! and `options` (`session::read_startup_settings`).
//! The properties are in `crates/gatehouse-pg/tests/support/message_properties.rs`
//! (shared with the CI test `codec_robustness.rs`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/gatehouse-pg/tests/support/message_properties.rs"]
mod message_properties;

fuzz_target!(|data: &[u8]| message_properties::check_startup(data));
