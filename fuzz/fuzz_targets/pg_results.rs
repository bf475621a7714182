//! `RowDescription` and `DataRow` decoders (the masking path): never panic,
//! and a decoded message re-encodes to the same bytes.
#![no_main]
use bytes::BytesMut;
use gatehouse_pg::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = codec::parse_row_description(data) {
        assert!(fields.len() <= codec::MAX_FIELDS);
        let mut out = BytesMut::new();
        codec::row_description(&mut out, &fields);
        assert_eq!(codec::parse_row_description(&out[5..]).ok(), Some(fields));
    }
    if let Ok(values) = codec::parse_data_row(data) {
        let mut out = BytesMut::new();
        codec::data_row(&mut out, values.iter().copied());
        assert_eq!(codec::parse_data_row(&out[5..]).ok(), Some(values), "a DataRow round-trips");
    }
});
