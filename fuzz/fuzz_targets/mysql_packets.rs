//! `gatehouse_mysql::codec`: framing and every payload parser, on a stream
//! of MySQL packets, with the limits and round-trip properties of
//! `crates/gatehouse-mysql/tests/support/packet_properties.rs` (shared
//! with the CI test `codec_robustness.rs`, which runs them on the seeds
//! and on deterministic mutations of them).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/gatehouse-mysql/tests/support/packet_properties.rs"]
mod packet_properties;

fuzz_target!(|data: &[u8]| packet_properties::check(data));
