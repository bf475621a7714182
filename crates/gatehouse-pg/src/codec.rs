//! The PostgreSQL wire protocol (v3) as bytes ↔ typed values. Nothing here
//! decides, authenticates or logs: it frames, parses with size limits, and
//! builds the messages the proxy sends. Every parser is a pure function over
//! a byte slice so it can be fuzzed.

use bytes::{BufMut, BytesMut};

pub const PROTOCOL_V3: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;

/// Largest startup packet accepted (PostgreSQL's own limit is 10000).
pub const MAX_STARTUP: usize = 10_000;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {len} bytes is over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("unsupported protocol version {0}.{1}")]
    Version(i32, i32),
}

/// The first packet of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel {
        pid: i32,
        key: i32,
    },
    /// A start-up packet of protocol 3.`minor` (Gatehouse speaks 3.0:
    /// a later minor version is answered with NegotiateProtocolVersion).
    Startup {
        params: Vec<(String, String)>,
        minor: i32,
    },
}

/// Parses the body of a startup packet (after its 4-byte length).
pub fn parse_startup(body: &[u8]) -> Result<Startup, CodecError> {
    if body.len() < 4 {
        return Err(CodecError::Malformed("startup"));
    }
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    match code {
        SSL_REQUEST if rest.is_empty() => Ok(Startup::Ssl),
        GSSENC_REQUEST if rest.is_empty() => Ok(Startup::GssEnc),
        CANCEL_REQUEST if rest.len() == 8 => Ok(Startup::Cancel {
            pid: i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
            key: i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
        }),
        v if v >> 16 == 3 => {
            let mut params = Vec::new();
            let mut p = rest;
            loop {
                let key = cstr(&mut p).ok_or(CodecError::Malformed("startup"))?;
                if key.is_empty() {
                    break;
                }
                let value = cstr(&mut p).ok_or(CodecError::Malformed("startup"))?;
                params.push((key.to_string(), value.to_string()));
            }
            Ok(Startup::Startup {
                params,
                minor: v & 0xffff,
            })
        }
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => Err(CodecError::Malformed("startup")),
        v => Err(CodecError::Version(v >> 16, v & 0xffff)),
    }
}

/// NegotiateProtocolVersion: the protocol version Gatehouse speaks (3.0,
/// as major << 16 | minor: what libpq reads, whatever the documentation's
/// "minor version" suggests), and the protocol options (`_pq_.…`) the
/// client asked for that it does not know.
pub fn negotiate_protocol_version(out: &mut BytesMut, unknown_options: &[&str]) {
    let at = begin(out, b'v');
    out.put_i32(PROTOCOL_V3);
    out.put_i32(i32::try_from(unknown_options.len()).unwrap_or(i32::MAX));
    for o in unknown_options {
        out.put_slice(o.as_bytes());
        out.put_u8(0);
    }
    finish(out, at);
}

/// Reads a NUL-terminated UTF-8 string and advances past it. For text
/// (a statement's, looked through once per execution): found with memchr.
pub fn cstr<'a>(p: &mut &'a [u8]) -> Option<&'a str> {
    let end = memchr::memchr(0, p)?;
    let s = std::str::from_utf8(&p[..end]).ok()?;
    *p = &p[end + 1..];
    Some(s)
}

/// [`cstr`] for names (of statements and portals), which are short: a
/// plain loop costs less than memchr's call over a few bytes.
fn name<'a>(p: &mut &'a [u8]) -> Option<&'a str> {
    let end = p.iter().position(|b| *b == 0)?;
    let s = std::str::from_utf8(&p[..end]).ok()?;
    *p = &p[end + 1..];
    Some(s)
}

fn int16(p: &mut &[u8]) -> Option<i16> {
    if p.len() < 2 {
        return None;
    }
    let v = i16::from_be_bytes([p[0], p[1]]);
    *p = &p[2..];
    Some(v)
}

fn int32(p: &mut &[u8]) -> Option<i32> {
    if p.len() < 4 {
        return None;
    }
    let v = i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    *p = &p[4..];
    Some(v)
}

/// If `buf` starts with a complete typed message (tag + length + body),
/// returns its tag and total length. Errors on a length under 4 or over `limit`.
pub fn frame(buf: &[u8], limit: usize) -> Result<Option<(u8, usize)>, CodecError> {
    let Some((tag, total)) = header(buf, limit)? else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((tag, total)))
}

/// Tag and total length of the message starting `buf`, once its 5-byte
/// header has arrived (the body may not have).
pub fn header(buf: &[u8], limit: usize) -> Result<Option<(u8, usize)>, CodecError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(CodecError::BadLength(i64::from(len)));
    }
    let total = usize::try_from(len).map_err(|_| CodecError::BadLength(i64::from(len)))? + 1;
    if total > limit {
        return Err(CodecError::TooLarge { len: total, limit });
    }
    Ok(Some((buf[0], total)))
}

/// The body of a framed message (after tag and length).
pub fn body(msg: &[u8]) -> &[u8] {
    msg.get(5..).unwrap_or_default()
}

/// `Query`: the SQL text.
pub fn parse_query(body: &[u8]) -> Result<&str, CodecError> {
    let mut p = body;
    cstr(&mut p).ok_or(CodecError::Malformed("Query"))
}

/// `Parse`: statement name, SQL text, and the parameter types it declares
/// (0: left to the server).
pub fn parse_parse(body: &[u8]) -> Result<(&str, &str, Oids<'_>), CodecError> {
    let bad = || CodecError::Malformed("Parse");
    let mut p = body;
    let name = name(&mut p).ok_or_else(bad)?;
    let sql = cstr(&mut p).ok_or_else(bad)?;
    Ok((name, sql, oids(p, bad)?))
}

/// `ParameterDescription`: the types of a prepared statement's parameters.
pub fn parse_parameter_description(body: &[u8]) -> Result<Oids<'_>, CodecError> {
    oids(body, || CodecError::Malformed("ParameterDescription"))
}

/// Type OIDs as a message carries them (4 bytes each, big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oids<'a>(&'a [u8]);

impl Oids<'_> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// A count (`int16`) and that many type OIDs (`int32` each), all of `p`.
fn oids(mut p: &[u8], bad: impl Fn() -> CodecError) -> Result<Oids<'_>, CodecError> {
    let n = usize::try_from(int16(&mut p).ok_or_else(&bad)?).map_err(|_| bad())?;
    if p.len() != 4 * n {
        return Err(bad());
    }
    Ok(Oids(p))
}

/// `Bind`: portal and statement names (the rest is passed through untouched).
pub fn parse_bind(body: &[u8]) -> Result<(&str, &str), CodecError> {
    let mut p = body;
    let portal = name(&mut p).ok_or(CodecError::Malformed("Bind"))?;
    let stmt = name(&mut p).ok_or(CodecError::Malformed("Bind"))?;
    Ok((portal, stmt))
}

/// One bound parameter: `Some((binary, bytes))`, or `None` for NULL.
pub type BoundValue<'a> = Option<(bool, &'a [u8])>;

/// A bound integer parameter's value: in binary a big-endian `int2`,
/// `int4` or `int8`; as text, decimal digits with an optional sign and
/// surrounding spaces. `None` for anything else or what is out of `i32`'s
/// range (stricter than the server, which also reads `0x…` and `1_000`).
pub fn int_value(binary: bool, v: &[u8]) -> Option<i32> {
    if binary {
        return match *v {
            [a, b] => Some(i32::from(i16::from_be_bytes([a, b]))),
            [a, b, c, d] => Some(i32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => {
                i32::try_from(i64::from_be_bytes([a, b, c, d, e, f, g, h])).ok()
            }
            _ => None,
        };
    }
    let t = std::str::from_utf8(v)
        .ok()?
        .trim_matches([' ', '\t', '\n', '\r']);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// The parts of a `Bind` after the portal's and the statement's names.
struct BindParts<'a> {
    /// The parameter formats and values, as sent (from the format count).
    raw: &'a [u8],
    /// The result format codes, 2 bytes each.
    results: &'a [u8],
}

/// Walks a `Bind` body once, calling `value` with each parameter value
/// (`None` is NULL) and whether it is in binary. Its names are skipped,
/// not checked as UTF-8 (`parse_bind` checks them).
fn bind_parts<'a>(
    body: &'a [u8],
    value: impl FnMut(BoundValue<'a>),
) -> Result<BindParts<'a>, CodecError> {
    let bad = || CodecError::Malformed("Bind");
    let mut p = body;
    for _ in 0..2 {
        let end = p.iter().position(|&b| b == 0).ok_or_else(bad)?;
        p = &p[end + 1..];
    }
    bind_tail(p, value)
}

/// The parts of a `Bind` from its parameter format count (`p`) on.
fn bind_tail<'a>(
    mut p: &'a [u8],
    mut value: impl FnMut(BoundValue<'a>),
) -> Result<BindParts<'a>, CodecError> {
    let bad = || CodecError::Malformed("Bind");
    let start = p;
    let nformats = usize::try_from(int16(&mut p).ok_or_else(bad)?).map_err(|_| bad())?;
    let formats = p.get(..2 * nformats).ok_or_else(bad)?;
    p = &p[formats.len()..];
    // No codes: all text; one: for all; else one per parameter.
    let binary = |i: usize| match nformats {
        0 => false,
        1 => formats == [0, 1],
        _ => formats.get(2 * i..2 * i + 2) == Some(&[0, 1][..]),
    };
    let nparams = usize::try_from(int16(&mut p).ok_or_else(bad)?).map_err(|_| bad())?;
    for i in 0..nparams {
        let len = int32(&mut p).ok_or_else(bad)?;
        // A negative length is NULL.
        let Ok(len) = usize::try_from(len) else {
            value(None);
            continue;
        };
        let v = p.get(..len).ok_or_else(bad)?;
        p = &p[len..];
        value(Some((binary(i), v)));
    }
    let raw = &start[..start.len() - p.len()];
    let nresults = usize::try_from(int16(&mut p).ok_or_else(bad)?).map_err(|_| bad())?;
    let results = p.get(..2 * nresults).ok_or_else(bad)?;
    Ok(BindParts { raw, results })
}

/// A `Bind`'s parameters: the raw bytes of the parameter formats and
/// values (what an approval is bound to), and each value as
/// `Some((binary, bytes))` or `None` for NULL.
pub fn bind_params(body: &[u8]) -> Result<(&[u8], Vec<BoundValue<'_>>), CodecError> {
    parse_bind(body)?;
    let mut values = Vec::new();
    let parts = bind_parts(body, |v| values.push(v))?;
    Ok((parts.raw, values))
}

/// The format a portal's result columns come in, as its `Bind` asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResultFormats {
    /// Every column as text (no codes, or the one code 0).
    #[default]
    Text,
    /// Every column in binary (the one code 1, or 1 for each column).
    Binary,
    /// A code per column (2 bytes each, big-endian; 1 is binary).
    PerColumn(std::sync::Arc<[u8]>),
}

impl ResultFormats {
    /// Whether column `i` (from 0) comes in binary.
    pub fn binary(&self, i: usize) -> bool {
        match self {
            Self::Text => false,
            Self::Binary => true,
            Self::PerColumn(codes) => codes.get(2 * i..2 * i + 2) == Some(&[0, 1][..]),
        }
    }
}

/// The result formats a `Bind` asks for (after its parameters).
pub fn bind_result_formats(body: &[u8]) -> Result<ResultFormats, CodecError> {
    Ok(formats_of(bind_parts(body, |_| {})?.results))
}

/// `Bind`: portal name, statement name, the result formats and how many
/// parameters it binds, read in one pass (the data path's; [`parse_bind`],
/// [`bind_result_formats`] and [`bind_params`] give the same).
pub fn parse_bind_formats(body: &[u8]) -> Result<(&str, &str, ResultFormats, usize), CodecError> {
    let mut params = 0;
    parse_bind_values(body, |_| params += 1)
        .map(|(portal, stmt, formats)| (portal, stmt, formats, params))
}

/// [`parse_bind_formats`], calling `value` with each parameter in turn
/// (as [`bind_params`] gives them).
pub fn parse_bind_values<'a>(
    body: &'a [u8],
    value: impl FnMut(BoundValue<'a>),
) -> Result<(&'a str, &'a str, ResultFormats), CodecError> {
    let mut p = body;
    let portal = name(&mut p).ok_or(CodecError::Malformed("Bind"))?;
    let stmt = name(&mut p).ok_or(CodecError::Malformed("Bind"))?;
    let formats = formats_of(bind_tail(p, value)?.results);
    Ok((portal, stmt, formats))
}

/// Result format codes (2 bytes each) as a [`ResultFormats`].
fn formats_of(codes: &[u8]) -> ResultFormats {
    match codes {
        [] | [0, 0] => ResultFormats::Text,
        [0, 1] => ResultFormats::Binary,
        _ if codes.chunks(2).all(|c| c == [0, 0]) => ResultFormats::Text,
        _ if codes.chunks(2).all(|c| c == [0, 1]) => ResultFormats::Binary,
        _ => ResultFormats::PerColumn(codes.into()),
    }
}

/// `Execute`: portal name and row limit.
pub fn parse_execute(body: &[u8]) -> Result<(&str, i32), CodecError> {
    let mut p = body;
    let portal = name(&mut p).ok_or(CodecError::Malformed("Execute"))?;
    let max = int32(&mut p).ok_or(CodecError::Malformed("Execute"))?;
    Ok((portal, max))
}

/// `Close`: 'S' or 'P' and the name.
pub fn parse_close(body: &[u8]) -> Result<(u8, &str), CodecError> {
    kind_and_name(body, "Close")
}

/// `Describe` (from the client): 'S' or 'P' and the name.
pub fn parse_describe(body: &[u8]) -> Result<(u8, &str), CodecError> {
    kind_and_name(body, "Describe")
}

/// A statement ('S') or portal ('P') and its name: `Close` and `Describe`.
fn kind_and_name<'b>(body: &'b [u8], what: &'static str) -> Result<(u8, &'b str), CodecError> {
    let (&kind, mut p) = body.split_first().ok_or(CodecError::Malformed(what))?;
    let name = name(&mut p).ok_or(CodecError::Malformed(what))?;
    if kind != b'S' && kind != b'P' {
        return Err(CodecError::Malformed(what));
    }
    Ok((kind, name))
}

/// `CommandComplete`: the command tag.
pub fn parse_command_complete(body: &[u8]) -> Option<&str> {
    let mut p = body;
    name(&mut p)
}

/// Rows affected or returned, from a command tag such as `INSERT 0 5`.
/// Runs once per statement, so it looks at bytes rather than splitting.
pub fn tag_rows(tag: &str) -> Option<i64> {
    let t = tag.as_bytes();
    let verb_end = t.iter().position(|&b| b == b' ')?;
    let count = &t[verb_end + 1..];
    let count = match &t[..verb_end] {
        b"SELECT" | b"UPDATE" | b"DELETE" | b"COPY" | b"FETCH" | b"MOVE" | b"MERGE" => count,
        // `INSERT oid rows`
        b"INSERT" => &count[count.iter().position(|&b| b == b' ')? + 1..],
        _ => return None,
    };
    if count.is_empty() || count.len() > 18 || !count.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        count
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')),
    )
}

/// `ErrorResponse`/`NoticeResponse`: SQLSTATE and message.
pub fn parse_error(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut p = body;
    while let Some((&field, rest)) = p.split_first() {
        if field == 0 {
            break;
        }
        p = rest;
        let Some(v) = cstr(&mut p) else { break };
        match field {
            b'C' => code = v.to_string(),
            b'M' => message = v.to_string(),
            _ => {}
        }
    }
    (code, message)
}

/// `Authentication*` request code and its data.
pub fn parse_auth(body: &[u8]) -> Result<(i32, &[u8]), CodecError> {
    let mut p = body;
    let code = int32(&mut p).ok_or(CodecError::Malformed("Authentication"))?;
    Ok((code, p))
}

/// `BackendKeyData`: process id and secret key.
pub fn parse_backend_key(body: &[u8]) -> Result<(i32, i32), CodecError> {
    let mut p = body;
    let pid = int32(&mut p).ok_or(CodecError::Malformed("BackendKeyData"))?;
    let key = int32(&mut p).ok_or(CodecError::Malformed("BackendKeyData"))?;
    Ok((pid, key))
}

/// `ParameterStatus`: name and value.
pub fn parse_parameter_status(body: &[u8]) -> Result<(&str, &str), CodecError> {
    let mut p = body;
    let k = cstr(&mut p).ok_or(CodecError::Malformed("ParameterStatus"))?;
    let v = cstr(&mut p).ok_or(CodecError::Malformed("ParameterStatus"))?;
    Ok((k, v))
}

/// Rewrites an `ErrorResponse` or `NoticeResponse` body: each field's text
/// goes through `f(field code, text)`, which drops the field by giving
/// `None`; the message is written to `out` with its tag. A malformed body
/// is written with the fields before the fault.
pub fn rewrite_fields(
    out: &mut BytesMut,
    tag: u8,
    body: &[u8],
    mut f: impl FnMut(u8, &str) -> Option<String>,
) {
    let at = begin(out, tag);
    for (field, v) in fields(body) {
        if let Some(v) = f(field, v) {
            out.put_u8(field);
            put_cstr(out, &v);
        }
    }
    out.put_u8(0);
    finish(out, at);
}

/// One column of a `RowDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The table the column comes from (0: none, e.g. an expression).
    pub table_oid: u32,
    pub column: i16,
    pub type_oid: u32,
    pub type_len: i16,
    pub type_mod: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// Most columns a result can have (PostgreSQL allows 1664 in a target list).
pub const MAX_FIELDS: usize = 4096;

/// `RowDescription`: its fields.
pub fn parse_row_description(body: &[u8]) -> Result<Vec<Field>, CodecError> {
    let bad = CodecError::Malformed("RowDescription");
    let mut p = body;
    let n = int16(&mut p).ok_or(bad.clone())?;
    let n = usize::try_from(n).map_err(|_| bad.clone())?;
    if n > MAX_FIELDS {
        return Err(bad);
    }
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let name = cstr(&mut p).ok_or(bad.clone())?.to_string();
        let table_oid = int32(&mut p).ok_or(bad.clone())? as u32;
        let column = int16(&mut p).ok_or(bad.clone())?;
        let type_oid = int32(&mut p).ok_or(bad.clone())? as u32;
        let type_len = int16(&mut p).ok_or(bad.clone())?;
        let type_mod = int32(&mut p).ok_or(bad.clone())?;
        let format = int16(&mut p).ok_or(bad.clone())?;
        fields.push(Field {
            name,
            table_oid,
            column,
            type_oid,
            type_len,
            type_mod,
            format,
        });
    }
    if !p.is_empty() {
        return Err(bad);
    }
    Ok(fields)
}

pub fn row_description(out: &mut BytesMut, fields: &[Field]) {
    let at = begin(out, b'T');
    out.put_i16(i16::try_from(fields.len()).unwrap_or(i16::MAX));
    for f in fields {
        put_cstr(out, &f.name);
        out.put_u32(f.table_oid);
        out.put_i16(f.column);
        out.put_u32(f.type_oid);
        out.put_i16(f.type_len);
        out.put_i32(f.type_mod);
        out.put_i16(f.format);
    }
    finish(out, at);
}

/// `DataRow`: its values (`None` is NULL), borrowed from `body`.
pub fn parse_data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, CodecError> {
    let mut values = Vec::new();
    visit_data_row(body, |v| values.push(v))?;
    Ok(values)
}

/// `DataRow`: calls `value` with each value in turn (`None` is NULL),
/// without collecting them. A malformed row may have shown some values
/// before its error.
pub fn visit_data_row<'a>(
    body: &'a [u8],
    mut value: impl FnMut(Option<&'a [u8]>),
) -> Result<(), CodecError> {
    let bad = CodecError::Malformed("DataRow");
    let mut p = body;
    let n = int16(&mut p).ok_or(bad.clone())?;
    let n = usize::try_from(n).map_err(|_| bad.clone())?;
    if n > MAX_FIELDS {
        return Err(bad);
    }
    for _ in 0..n {
        let len = int32(&mut p).ok_or(bad.clone())?;
        if len < 0 {
            value(None);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| bad.clone())?;
        if p.len() < len {
            return Err(bad);
        }
        value(Some(&p[..len]));
        p = &p[len..];
    }
    if !p.is_empty() {
        return Err(bad);
    }
    Ok(())
}

/// The values of a `DataRow` as byte ranges of `body` (`None` is NULL),
/// into `into` (cleared first; reused across rows to avoid allocating).
pub fn data_row_ranges(
    body: &[u8],
    into: &mut Vec<Option<std::ops::Range<usize>>>,
) -> Result<(), CodecError> {
    into.clear();
    // Each value is a slice of `body`: its offset is where it starts.
    let base = body.as_ptr() as usize;
    visit_data_row(body, |v| {
        into.push(v.map(|v| {
            let at = v.as_ptr() as usize - base;
            at..at + v.len()
        }))
    })
}

/// Starts a `DataRow` of `n` values; append each with [`data_row_value`],
/// then close it with [`data_row_end`] (given what this returned).
pub fn data_row_begin(out: &mut BytesMut, n: usize) -> usize {
    let at = begin(out, b'D');
    out.put_i16(i16::try_from(n).unwrap_or(i16::MAX));
    at
}

pub fn data_row_value(out: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
            out.put_slice(b);
        }
    }
}

pub fn data_row_end(out: &mut BytesMut, at: usize) {
    finish(out, at);
}

/// Writes a `DataRow` from its values (`None` is NULL).
pub fn data_row<'a>(out: &mut BytesMut, values: impl ExactSizeIterator<Item = Option<&'a [u8]>>) {
    let at = begin(out, b'D');
    out.put_i16(i16::try_from(values.len()).unwrap_or(i16::MAX));
    for v in values {
        match v {
            None => out.put_i32(-1),
            Some(b) => {
                out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
                out.put_slice(b);
            }
        }
    }
    finish(out, at);
}

/// `Describe` of a portal.
pub fn describe_portal(out: &mut BytesMut, portal: &str) {
    let at = begin(out, b'D');
    out.put_u8(b'P');
    put_cstr(out, portal);
    finish(out, at);
}

/// `Parse` of an unnamed statement with no parameter types given.
pub fn parse_message(out: &mut BytesMut, sql: &str) {
    let at = begin(out, b'P');
    put_cstr(out, "");
    put_cstr(out, sql);
    out.put_i16(0);
    finish(out, at);
}

/// `Bind` of the unnamed portal to the unnamed statement: text parameters
/// (`None` is NULL), text results.
pub fn bind_text(out: &mut BytesMut, params: &[Option<&str>]) {
    let at = begin(out, b'B');
    put_cstr(out, "");
    put_cstr(out, "");
    out.put_i16(0);
    out.put_i16(i16::try_from(params.len()).unwrap_or(i16::MAX));
    for p in params {
        match p {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                out.put_slice(v.as_bytes());
            }
        }
    }
    out.put_i16(1);
    out.put_i16(0);
    finish(out, at);
}

/// `Execute` of the unnamed portal, at most `max_rows` rows (0: all).
pub fn execute_message(out: &mut BytesMut, max_rows: i32) {
    let at = begin(out, b'E');
    put_cstr(out, "");
    out.put_i32(max_rows);
    finish(out, at);
}

/// `Close` of the prepared statement `name`.
pub fn close_statement(out: &mut BytesMut, name: &str) {
    let at = begin(out, b'C');
    out.put_u8(b'S');
    put_cstr(out, name);
    finish(out, at);
}

/// A message with no body (`Sync` 'S', `Terminate` 'X').
pub fn empty_message(out: &mut BytesMut, tag: u8) {
    let at = begin(out, tag);
    finish(out, at);
}

/// The fields of an `ErrorResponse` or `NoticeResponse`: (code, text).
pub fn fields(body: &[u8]) -> Vec<(u8, &str)> {
    let mut out = Vec::new();
    let mut p = body;
    while let Some((&field, rest)) = p.split_first() {
        if field == 0 {
            break;
        }
        p = rest;
        let Some(v) = cstr(&mut p) else { break };
        out.push((field, v));
    }
    out
}

/// `Query`.
pub fn query(out: &mut BytesMut, sql: &str) {
    let at = begin(out, b'Q');
    put_cstr(out, sql);
    finish(out, at);
}

// === builders ===

/// Writes message `tag` with body `body`, but with the NUL-terminated name
/// of `old_len` bytes at offset `at` of the body replaced by `name` (which
/// has no NUL in it): a
/// `Parse`, `Bind`, `Describe` or `Close` sent upstream under another
/// statement name.
pub fn with_name(out: &mut BytesMut, tag: u8, body: &[u8], at: usize, old_len: usize, name: &str) {
    // The names are Gatehouse's own, with no NUL: copied as they are (no
    // allocation, as put_cstr would make).
    debug_assert!(!name.contains('\0'));
    out.reserve(body.len() + name.len() + 5);
    let start = begin(out, tag);
    out.put_slice(&body[..at]);
    out.put_slice(name.as_bytes());
    out.put_u8(0);
    out.put_slice(&body[at + old_len + 1..]);
    finish(out, start);
}

fn begin(out: &mut BytesMut, tag: u8) -> usize {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    at
}

fn finish(out: &mut BytesMut, at: usize) {
    let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    // NUL bytes cannot appear inside a protocol string.
    out.put_slice(s.replace('\0', "").as_bytes());
    out.put_u8(0);
}

/// Severity of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Notice => "NOTICE",
        }
    }
}

/// `ErrorResponse` (or `NoticeResponse` for `Severity::Notice`).
pub fn error(
    out: &mut BytesMut,
    severity: Severity,
    code: &str,
    message: &str,
    hint: Option<&str>,
) {
    let at = begin(
        out,
        if severity == Severity::Notice {
            b'N'
        } else {
            b'E'
        },
    );
    for (field, value) in [
        (b'S', severity.as_str()),
        (b'V', severity.as_str()),
        (b'C', code),
        (b'M', message),
    ] {
        out.put_u8(field);
        put_cstr(out, value);
    }
    if let Some(h) = hint {
        out.put_u8(b'H');
        put_cstr(out, h);
    }
    out.put_u8(0);
    finish(out, at);
}

pub fn auth_request(out: &mut BytesMut, code: i32, data: &[u8]) {
    let at = begin(out, b'R');
    out.put_i32(code);
    out.put_slice(data);
    finish(out, at);
}

pub fn parameter_status(out: &mut BytesMut, k: &str, v: &str) {
    let at = begin(out, b'S');
    put_cstr(out, k);
    put_cstr(out, v);
    finish(out, at);
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, key: i32) {
    let at = begin(out, b'K');
    out.put_i32(pid);
    out.put_i32(key);
    finish(out, at);
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    let at = begin(out, b'Z');
    out.put_u8(status);
    finish(out, at);
}

/// A frontend startup packet (to the upstream).
pub fn startup_message(out: &mut BytesMut, params: &[(&str, &str)]) {
    let at = out.len();
    out.put_i32(0);
    out.put_i32(PROTOCOL_V3);
    for (k, v) in params {
        put_cstr(out, k);
        put_cstr(out, v);
    }
    out.put_u8(0);
    let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

pub fn ssl_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_i32(SSL_REQUEST);
}

pub fn cancel_request(out: &mut BytesMut, pid: i32, key: i32) {
    out.put_i32(16);
    out.put_i32(CANCEL_REQUEST);
    out.put_i32(pid);
    out.put_i32(key);
}

/// `PasswordMessage` (also carries SASL responses).
pub fn password(out: &mut BytesMut, data: &[u8]) {
    let at = begin(out, b'p');
    out.put_slice(data);
    finish(out, at);
}

pub fn sasl_initial_response(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    let at = begin(out, b'p');
    put_cstr(out, mechanism);
    out.put_i32(i32::try_from(data.len()).unwrap_or(i32::MAX));
    out.put_slice(data);
    finish(out, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_integers_are_read_strictly() {
        assert_eq!(int_value(false, b"1234"), Some(1234));
        assert_eq!(int_value(false, b" -7 "), Some(-7));
        assert_eq!(int_value(false, b"+0042"), Some(42));
        for bad in [
            &b""[..],
            b"0x4d2",
            b"1_000",
            b"12.0",
            b"1e3",
            b"--1",
            b"99999999999",
            b"\xff",
        ] {
            assert_eq!(int_value(false, bad), None, "{bad:?}");
        }
        assert_eq!(int_value(true, &7i16.to_be_bytes()), Some(7));
        assert_eq!(int_value(true, &1234i32.to_be_bytes()), Some(1234));
        assert_eq!(int_value(true, &1234i64.to_be_bytes()), Some(1234));
        assert_eq!(int_value(true, &(1i64 << 40).to_be_bytes()), None);
        assert_eq!(int_value(true, &[0, 0, 1]), None);
    }

    #[test]
    fn strings_end_at_their_nul_at_any_length() {
        for n in [0, 1, 15, 16, 17, 31, 100] {
            let text = "x".repeat(n);
            let mut with = format!("{text}\0rest").into_bytes();
            let mut p = &with[..];
            let mut q = p;
            assert_eq!(cstr(&mut p), Some(text.as_str()), "{n}");
            assert_eq!(name(&mut q), Some(text.as_str()), "{n}");
            assert_eq!((p, q), (&b"rest"[..], &b"rest"[..]));
            with.truncate(n);
            let (mut p, mut q) = (&with[..], &with[..]);
            assert_eq!(cstr(&mut p), None, "{n} bytes without a NUL");
            assert_eq!(name(&mut q), None, "{n} bytes without a NUL");
        }
        let (mut p, mut q) = (&b"\xff\0"[..], &b"\xff\0"[..]);
        assert_eq!((cstr(&mut p), name(&mut q)), (None, None), "not UTF-8");
    }

    #[test]
    fn a_name_inside_a_message_is_replaced_and_the_rest_kept() {
        // Bind of portal "p" to statement "s1" with one text parameter.
        let mut body = Vec::new();
        body.extend_from_slice(b"p\0s1\0");
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, b'4', b'2', 0, 0]);
        let mut out = bytes::BytesMut::new();
        with_name(&mut out, b'B', &body, 2, 2, "gh_0123");
        let (tag, total) = frame(&out, 1 << 20).expect("frames").expect("whole");
        assert_eq!((tag, total), (b'B', out.len()));
        let renamed = super::body(&out);
        assert_eq!(parse_bind(renamed).expect("parses"), ("p", "gh_0123"));
        assert_eq!(&renamed[10..], &body[5..], "the parameters are untouched");
        // Close of a statement: after the kind byte.
        let mut out = bytes::BytesMut::new();
        with_name(&mut out, b'C', b"Ss1\0", 1, 2, "gh_9");
        assert_eq!(
            parse_close(super::body(&out)).expect("parses"),
            (b'S', "gh_9")
        );
    }

    #[test]
    fn bind_parameters_are_read_with_their_formats() {
        // portal "", statement "s1", formats [1], params [int4 7, NULL], results [].
        let mut b = Vec::new();
        b.extend_from_slice(b"\0s1\0");
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        let (raw, values) = bind_params(&b).expect("parses");
        assert_eq!(values, vec![Some((true, &7i32.to_be_bytes()[..])), None]);
        assert_eq!(raw, &b[4..b.len() - 2]);
        // A value longer than the message is refused, not read past.
        let mut bad = b.clone();
        bad[10..14].copy_from_slice(&400i32.to_be_bytes());
        assert!(bind_params(&bad).is_err());
    }

    #[test]
    fn startup_packets() {
        let mut b = BytesMut::new();
        startup_message(&mut b, &[("user", "bot"), ("database", "shop")]);
        assert_eq!(
            parse_startup(&b[4..]),
            Ok(Startup::Startup {
                params: vec![
                    ("user".into(), "bot".into()),
                    ("database".into(), "shop".into())
                ],
                minor: 0
            })
        );
        // A later minor version of protocol 3 (libpq 18's 3.2) is read the
        // same; version 2 is not.
        let mut b = BytesMut::new();
        startup_message(&mut b, &[("user", "bot")]);
        b[4..8].copy_from_slice(&(PROTOCOL_V3 + 2).to_be_bytes());
        assert_eq!(
            parse_startup(&b[4..]),
            Ok(Startup::Startup {
                params: vec![("user".into(), "bot".into())],
                minor: 2
            })
        );
        b[4..8].copy_from_slice(&0x0002_0000_i32.to_be_bytes());
        assert_eq!(parse_startup(&b[4..]), Err(CodecError::Version(2, 0)));
        let mut b = BytesMut::new();
        ssl_request(&mut b);
        assert_eq!(parse_startup(&b[4..]), Ok(Startup::Ssl));
        let mut b = BytesMut::new();
        cancel_request(&mut b, 7, -9);
        assert_eq!(
            parse_startup(&b[4..]),
            Ok(Startup::Cancel { pid: 7, key: -9 })
        );
        assert!(parse_startup(&[0, 2, 0, 0]).is_err());
        assert!(
            parse_startup(&[0, 3, 0, 0, b'u', 0]).is_err(),
            "unterminated"
        );
    }

    #[test]
    fn framing_enforces_limits() {
        assert_eq!(frame(b"Q\0\0\0\x05x", 100), Ok(Some((b'Q', 6))));
        assert_eq!(frame(b"Q\0\0\0\x05", 100), Ok(None));
        assert_eq!(frame(b"Q\0\0\0\x03", 100), Err(CodecError::BadLength(3)));
        assert_eq!(
            frame(b"Q\xff\xff\xff\xff", 100),
            Err(CodecError::BadLength(-1))
        );
        assert!(matches!(
            frame(b"Q\0\x01\0\0", 100),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn messages() {
        assert_eq!(parse_query(b"SELECT 1\0"), Ok("SELECT 1"));
        assert!(parse_query(b"SELECT 1").is_err());
        assert_eq!(
            parse_parse(b"s1\0SELECT $1\0\0\x01\0\0\0\x17").map(|(name, sql, types)| (
                name,
                sql,
                types.iter().collect::<Vec<_>>()
            )),
            Ok(("s1", "SELECT $1", vec![23]))
        );
        assert!(parse_parse(b"s1\0SELECT\0\0\x05").is_err());
        assert_eq!(parse_bind(b"p\0s\0rest"), Ok(("p", "s")));
        // Bind "p" "s", one parameter format (binary), one NULL and one
        // 2-byte parameter, then the result formats.
        let bind = |results: &[u8]| {
            let mut b = b"p\0s\0\0\x01\0\x01\0\x02\xff\xff\xff\xff\0\0\0\x02ab".to_vec();
            b.extend_from_slice(results);
            b
        };
        assert_eq!(bind_result_formats(&bind(b"\0\0")), Ok(ResultFormats::Text));
        assert_eq!(
            parse_bind_formats(&bind(b"\0\x01\0\x01")),
            Ok(("p", "s", ResultFormats::Binary, 2))
        );
        assert!(parse_bind_formats(&bind(b"\0\x02\0\x01")).is_err());
        assert!(parse_bind_formats(b"p\0\xff\0\0\0\0\0\0\0").is_err());
        assert_eq!(
            bind_result_formats(&bind(b"\0\x01\0\0")),
            Ok(ResultFormats::Text)
        );
        assert_eq!(
            bind_result_formats(&bind(b"\0\x01\0\x01")),
            Ok(ResultFormats::Binary)
        );
        assert_eq!(
            bind_result_formats(&bind(b"\0\x02\0\x01\0\x01")),
            Ok(ResultFormats::Binary)
        );
        let mixed = bind_result_formats(&bind(b"\0\x03\0\0\0\x01\0\0")).unwrap();
        assert_eq!(
            (0..4).map(|i| mixed.binary(i)).collect::<Vec<_>>(),
            [false, true, false, false]
        );
        for cut in [b"".as_slice(), b"\0", b"\0\x02\0\x01"] {
            assert!(bind_result_formats(&bind(cut)).is_err());
        }
        assert_eq!(parse_execute(b"\0\0\0\0\x0a"), Ok(("", 10)));
        assert_eq!(parse_close(b"Sx\0"), Ok((b'S', "x")));
        assert_eq!(tag_rows("INSERT 0 5"), Some(5));
        assert_eq!(tag_rows("SELECT 3"), Some(3));
        assert_eq!(tag_rows("CREATE TABLE"), None);
        assert_eq!(tag_rows("MERGE 12345678901"), Some(12_345_678_901));
        for odd in [
            "SELECT",
            "SELECT ",
            "SELECT x",
            "SELECT -1",
            "INSERT 0",
            "INSERT 0 ",
            "",
        ] {
            assert_eq!(tag_rows(odd), None, "{odd:?}");
        }
        let mut b = BytesMut::new();
        error(
            &mut b,
            Severity::Fatal,
            "28P01",
            "bad token",
            Some("get a new one"),
        );
        let (code, msg) = parse_error(body(&b));
        assert_eq!((code.as_str(), msg.as_str()), ("28P01", "bad token"));
        assert_eq!(frame(&b, 1000).ok().flatten().map(|f| f.1), Some(b.len()));
    }
}
