//! `codec::frame`/`header` and every message-body parser (and the recording's
//! rendering of binary values, `values::render`), on a stream of
//! typed messages: the input is framed message by message and each body goes
//! through every parser (whatever its tag, as a hostile peer may mislabel).
//! The properties are in `crates/gatehouse-pg/tests/support/message_properties.rs`
//! (shared with the CI test `codec_robustness.rs`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/gatehouse-pg/tests/support/message_properties.rs"]
mod message_properties;

fuzz_target!(|data: &[u8]| message_properties::check_messages(data));
