#![no_main]
use gatehouse_pg::codec;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, total))) = codec::frame(rest, LIMIT) {
        assert!((5..=LIMIT).contains(&total) && total <= rest.len());
        let body = codec::body(&rest[..total]);
        let _ = codec::parse_query(body);
        let _ = codec::parse_parse(body);
        let _ = codec::parse_bind(body);
        let _ = codec::parse_execute(body);
        let _ = codec::parse_close(body);
        let _ = codec::parse_command_complete(body).map(codec::tag_rows);
        let _ = codec::parse_error(body);
        let _ = codec::parse_auth(body);
        let _ = codec::parse_backend_key(body);
        let _ = codec::parse_parameter_status(body);
        rest = &rest[total..];
    }
});
