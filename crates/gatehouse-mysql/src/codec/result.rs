//! Replies to commands: OK, ERR and EOF packets, result sets (column
//! count, ColumnDefinition41, text and binary rows) and the binary
//! encoding of values shared by binary rows and `COM_STMT_EXECUTE`.

use bytes::{BufMut, BytesMut};

use super::{
    CLIENT_DEPRECATE_EOF, CLIENT_OPTIONAL_RESULTSET_METADATA, CLIENT_PROTOCOL_41,
    CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS, CodecError, MAX_CHUNK, MAX_COLUMNS, Reader,
    SERVER_SESSION_STATE_CHANGED, put_lenenc_bytes, put_lenenc_int,
};

// === OK, ERR, EOF ===

/// Whether a reply is an ERR packet.
pub fn is_err(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFF)
}

/// Whether a reply is an EOF packet (0xFE and under 9 bytes; a longer
/// packet starting 0xFE is a row whose first value is 16 MiB or more).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFE) && payload.len() < 9
}

/// Whether a packet in a result set's rows ends them: an EOF packet, or
/// with `CLIENT_DEPRECATE_EOF` an OK packet with the 0xFE header.
pub fn is_result_end(payload: &[u8], capabilities: u32) -> bool {
    if capabilities & CLIENT_DEPRECATE_EOF != 0 {
        payload.first() == Some(&0xFE) && payload.len() < MAX_CHUNK
    } else {
        is_eof(payload)
    }
}

/// An OK packet (or, with `CLIENT_DEPRECATE_EOF`, the OK that ends a
/// result set, whose header is 0xFE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkPacket {
    /// 0x00, or 0xFE for an OK in place of an EOF.
    pub header: u8,
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    /// Human-readable information ("Rows matched: 1  Changed: 1 …").
    pub info: String,
    /// Session state changes (with `CLIENT_SESSION_TRACK` and
    /// `SERVER_SESSION_STATE_CHANGED`), undecoded.
    pub session_state: Vec<u8>,
}

/// Parses an OK packet; what follows the row counts depends on the
/// negotiated `capabilities`.
pub fn parse_ok(payload: &[u8], capabilities: u32) -> Result<OkPacket, CodecError> {
    let mut r = Reader::new(payload, "OK");
    let header = r.u8()?;
    if header != 0x00 && header != 0xFE {
        return Err(r.bad());
    }
    let affected_rows = r.lenenc_int()?;
    let last_insert_id = r.lenenc_int()?;
    let mut ok = OkPacket {
        header,
        affected_rows,
        last_insert_id,
        ..OkPacket::default()
    };
    if capabilities & CLIENT_PROTOCOL_41 != 0 {
        ok.status = r.u16()?;
        ok.warnings = r.u16()?;
    } else if capabilities & CLIENT_TRANSACTIONS != 0 {
        ok.status = r.u16()?;
    }
    if capabilities & CLIENT_SESSION_TRACK != 0 {
        if !r.is_empty() {
            ok.info = String::from_utf8_lossy(r.lenenc_bytes()?).into_owned();
        }
        if ok.status & SERVER_SESSION_STATE_CHANGED != 0 && !r.is_empty() {
            ok.session_state = r.lenenc_bytes()?.to_vec();
        }
    } else {
        ok.info = String::from_utf8_lossy(r.rest()).into_owned();
    }
    Ok(ok)
}

pub fn build_ok(out: &mut BytesMut, ok: &OkPacket, capabilities: u32) {
    out.put_u8(if ok.header == 0xFE { 0xFE } else { 0x00 });
    put_lenenc_int(out, ok.affected_rows);
    put_lenenc_int(out, ok.last_insert_id);
    if capabilities & CLIENT_PROTOCOL_41 != 0 {
        out.put_u16_le(ok.status);
        out.put_u16_le(ok.warnings);
    } else if capabilities & CLIENT_TRANSACTIONS != 0 {
        out.put_u16_le(ok.status);
    }
    if capabilities & CLIENT_SESSION_TRACK != 0 {
        put_lenenc_bytes(out, ok.info.as_bytes());
        if ok.status & SERVER_SESSION_STATE_CHANGED != 0 {
            put_lenenc_bytes(out, &ok.session_state);
        }
    } else {
        out.put_slice(ok.info.as_bytes());
    }
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    /// The SQLSTATE (5 characters), when the sender speaks 4.1.
    pub sql_state: Option<String>,
    pub message: String,
}

pub fn parse_err(payload: &[u8]) -> Result<ErrPacket, CodecError> {
    let mut r = Reader::new(payload, "ERR");
    if r.u8()? != 0xFF {
        return Err(r.bad());
    }
    let code = r.u16()?;
    let mut sql_state = None;
    if r.peek() == Some(b'#') && r.len() >= 6 {
        let s = r.bytes(6)?;
        sql_state = Some(String::from_utf8_lossy(&s[1..]).into_owned());
    }
    Ok(ErrPacket {
        code,
        sql_state,
        message: String::from_utf8_lossy(r.rest()).into_owned(),
    })
}

/// Writes an ERR packet in the 4.1 form. A SQLSTATE that is not 5 ASCII
/// letters and digits becomes the generic `HY000`.
pub fn build_err(out: &mut BytesMut, code: u16, sql_state: &str, message: &str) {
    let state = if sql_state.len() == 5 && sql_state.bytes().all(|b| b.is_ascii_alphanumeric()) {
        sql_state
    } else {
        "HY000"
    };
    out.put_u8(0xFF);
    out.put_u16_le(code);
    out.put_u8(b'#');
    out.put_slice(state.as_bytes());
    out.put_slice(message.as_bytes());
}

/// An EOF packet (4.1 form).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EofPacket {
    pub warnings: u16,
    pub status: u16,
}

pub fn parse_eof(payload: &[u8]) -> Result<EofPacket, CodecError> {
    match payload {
        [0xFE, w0, w1, s0, s1] => Ok(EofPacket {
            warnings: u16::from_le_bytes([*w0, *w1]),
            status: u16::from_le_bytes([*s0, *s1]),
        }),
        _ => Err(CodecError::Malformed("EOF")),
    }
}

pub fn build_eof(out: &mut BytesMut, eof: &EofPacket) {
    out.put_u8(0xFE);
    out.put_u16_le(eof.warnings);
    out.put_u16_le(eof.status);
}

// === result set metadata ===

/// The first packet of a result set: its column count, and (with
/// `CLIENT_OPTIONAL_RESULTSET_METADATA`) whether column definitions follow.
pub fn parse_column_count(payload: &[u8], capabilities: u32) -> Result<(usize, bool), CodecError> {
    let mut r = Reader::new(payload, "column count");
    let n = r.lenenc_int()?;
    let n = usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_COLUMNS).contains(n))
        .ok_or(r.bad())?;
    let metadata = if capabilities & CLIENT_OPTIONAL_RESULTSET_METADATA != 0 {
        r.u8()? == 1
    } else {
        true
    };
    if !r.is_empty() {
        return Err(r.bad());
    }
    Ok((n, metadata))
}

pub fn build_column_count(out: &mut BytesMut, n: usize, metadata: bool, capabilities: u32) {
    put_lenenc_int(out, n as u64);
    if capabilities & CLIENT_OPTIONAL_RESULTSET_METADATA != 0 {
        out.put_u8(u8::from(metadata));
    }
}

/// Column flags (ColumnDefinition41 `flags`).
pub mod column_flags {
    pub const NOT_NULL: u16 = 1;
    pub const PRI_KEY: u16 = 1 << 1;
    pub const UNIQUE_KEY: u16 = 1 << 2;
    pub const MULTIPLE_KEY: u16 = 1 << 3;
    pub const BLOB: u16 = 1 << 4;
    pub const UNSIGNED: u16 = 1 << 5;
    pub const ZEROFILL: u16 = 1 << 6;
    pub const BINARY: u16 = 1 << 7;
    pub const ENUM: u16 = 1 << 8;
    pub const AUTO_INCREMENT: u16 = 1 << 9;
    pub const TIMESTAMP: u16 = 1 << 10;
    pub const SET: u16 = 1 << 11;
    pub const NO_DEFAULT_VALUE: u16 = 1 << 12;
    pub const ON_UPDATE_NOW: u16 = 1 << 13;
    pub const NUM: u16 = 1 << 15;
}

/// One column of a result set (ColumnDefinition41). Names are decoded as
/// UTF-8 (invalid bytes replaced): servers send them in
/// `character_set_results`, utf8mb4 unless a client asks otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnDefinition {
    pub catalog: String,
    pub schema: String,
    /// The table as named in the query (an alias, if any).
    pub table: String,
    pub org_table: String,
    /// The column as named in the result (an alias, if any).
    pub name: String,
    pub org_name: String,
    /// The column's collation id (63 = binary).
    pub charset: u16,
    pub length: u32,
    /// The type code (`FieldType`), kept raw so unknown codes pass through.
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
    /// The default value, sent only in replies to `COM_FIELD_LIST`.
    pub default_value: Option<Vec<u8>>,
}

impl ColumnDefinition {
    /// How the column's values are encoded in binary rows.
    pub fn binary_type(&self) -> BinaryType {
        BinaryType {
            code: self.column_type,
            unsigned: self.flags & column_flags::UNSIGNED != 0,
        }
    }
}

/// Parses a ColumnDefinition41. (MariaDB's extended metadata, sent only
/// when `MARIADB_CLIENT_EXTENDED_METADATA` was negotiated, is not read:
/// Gatehouse does not negotiate it.)
pub fn parse_column_definition(payload: &[u8]) -> Result<ColumnDefinition, CodecError> {
    let mut r = Reader::new(payload, "column definition");
    let mut text = || -> Result<String, CodecError> {
        Ok(String::from_utf8_lossy(r.lenenc_bytes()?).into_owned())
    };
    let catalog = text()?;
    let schema = text()?;
    let table = text()?;
    let org_table = text()?;
    let name = text()?;
    let org_name = text()?;
    let fixed = r.lenenc_int()?;
    if fixed < 12 {
        return Err(r.bad());
    }
    let charset = r.u16()?;
    let length = r.u32()?;
    let column_type = r.u8()?;
    let flags = r.u16()?;
    let decimals = r.u8()?;
    r.bytes(2)?;
    // Longer fixed parts are allowed by the format; skip what we don't know.
    r.bytes(usize::try_from(fixed - 12).map_err(|_| r.bad())?)?;
    let default_value = if r.is_empty() {
        None
    } else {
        Some(r.lenenc_bytes()?.to_vec())
    };
    if !r.is_empty() {
        return Err(r.bad());
    }
    Ok(ColumnDefinition {
        catalog,
        schema,
        table,
        org_table,
        name,
        org_name,
        charset,
        length,
        column_type,
        flags,
        decimals,
        default_value,
    })
}

pub fn build_column_definition(out: &mut BytesMut, c: &ColumnDefinition) {
    for s in [
        &c.catalog,
        &c.schema,
        &c.table,
        &c.org_table,
        &c.name,
        &c.org_name,
    ] {
        put_lenenc_bytes(out, s.as_bytes());
    }
    put_lenenc_int(out, 12);
    out.put_u16_le(c.charset);
    out.put_u32_le(c.length);
    out.put_u8(c.column_type);
    out.put_u16_le(c.flags);
    out.put_u8(c.decimals);
    out.put_u16_le(0);
    if let Some(d) = &c.default_value {
        put_lenenc_bytes(out, d);
    }
}

// === text rows ===

/// A row of the text protocol: `columns` length-encoded strings, 0xFB for
/// NULL. Values are borrowed from `payload`.
pub fn parse_text_row(payload: &[u8], columns: usize) -> Result<Vec<Option<&[u8]>>, CodecError> {
    let mut r = Reader::new(payload, "text row");
    // Every value takes at least one byte.
    if columns > payload.len() {
        return Err(r.bad());
    }
    let mut values = Vec::with_capacity(columns);
    for _ in 0..columns {
        values.push(r.lenenc_nullable()?);
    }
    if !r.is_empty() {
        return Err(r.bad());
    }
    Ok(values)
}

pub fn build_text_row(out: &mut BytesMut, values: &[Option<&[u8]>]) {
    for v in values {
        match v {
            None => out.put_u8(0xFB),
            Some(b) => put_lenenc_bytes(out, b),
        }
    }
}

// === binary values ===

/// MySQL's column and parameter type codes (`enum_field_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FieldType {
    Decimal = 0,
    Tiny = 1,
    Short = 2,
    Long = 3,
    Float = 4,
    Double = 5,
    Null = 6,
    Timestamp = 7,
    LongLong = 8,
    Int24 = 9,
    Date = 10,
    Time = 11,
    DateTime = 12,
    Year = 13,
    NewDate = 14,
    VarChar = 15,
    Bit = 16,
    Timestamp2 = 17,
    DateTime2 = 18,
    Time2 = 19,
    /// MySQL 9.
    Vector = 242,
    Json = 245,
    NewDecimal = 246,
    Enum = 247,
    Set = 248,
    TinyBlob = 249,
    MediumBlob = 250,
    LongBlob = 251,
    Blob = 252,
    VarString = 253,
    String = 254,
    Geometry = 255,
}

/// How a type's values are laid out in the binary protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// No bytes (the NULL type).
    Empty,
    /// A little-endian integer of this many bytes.
    Int(usize),
    Float,
    Double,
    /// A length byte (0, 4, 7 or 11), then year, month, day, hour, minute,
    /// second, microseconds.
    DateTime,
    /// A length byte (0, 8 or 12), then sign, days, hour, minute, second,
    /// microseconds.
    Time,
    /// A length-encoded string.
    Bytes,
}

impl FieldType {
    const ALL: [FieldType; 32] = [
        Self::Decimal,
        Self::Tiny,
        Self::Short,
        Self::Long,
        Self::Float,
        Self::Double,
        Self::Null,
        Self::Timestamp,
        Self::LongLong,
        Self::Int24,
        Self::Date,
        Self::Time,
        Self::DateTime,
        Self::Year,
        Self::NewDate,
        Self::VarChar,
        Self::Bit,
        Self::Timestamp2,
        Self::DateTime2,
        Self::Time2,
        Self::Vector,
        Self::Json,
        Self::NewDecimal,
        Self::Enum,
        Self::Set,
        Self::TinyBlob,
        Self::MediumBlob,
        Self::LongBlob,
        Self::Blob,
        Self::VarString,
        Self::String,
        Self::Geometry,
    ];

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| *t as u8 == code)
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    fn layout(self) -> Layout {
        match self {
            Self::Null => Layout::Empty,
            Self::Tiny => Layout::Int(1),
            Self::Short | Self::Year => Layout::Int(2),
            Self::Long | Self::Int24 => Layout::Int(4),
            Self::LongLong => Layout::Int(8),
            Self::Float => Layout::Float,
            Self::Double => Layout::Double,
            Self::Date
            | Self::NewDate
            | Self::DateTime
            | Self::DateTime2
            | Self::Timestamp
            | Self::Timestamp2 => Layout::DateTime,
            Self::Time | Self::Time2 => Layout::Time,
            Self::Decimal
            | Self::VarChar
            | Self::Bit
            | Self::Vector
            | Self::Json
            | Self::NewDecimal
            | Self::Enum
            | Self::Set
            | Self::TinyBlob
            | Self::MediumBlob
            | Self::LongBlob
            | Self::Blob
            | Self::VarString
            | Self::String
            | Self::Geometry => Layout::Bytes,
        }
    }
}

/// The type of a binary value: a type code and, for integers, whether it
/// is unsigned (the column's UNSIGNED flag, or bit 0x80 of a parameter's
/// flag byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BinaryType {
    pub code: u8,
    pub unsigned: bool,
}

impl BinaryType {
    pub fn new(t: FieldType, unsigned: bool) -> Self {
        Self {
            code: t.code(),
            unsigned,
        }
    }

    fn layout(self) -> Result<Layout, CodecError> {
        FieldType::from_code(self.code)
            .map(FieldType::layout)
            .ok_or(CodecError::Unsupported("unknown binary type code"))
    }
}

/// DATE, DATETIME and TIMESTAMP values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

/// TIME values (a signed duration of days and a time of day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Time {
    pub negative: bool,
    pub days: u32,
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
    pub micros: u32,
}

/// A value in the binary protocol. Integers are widened (signed or
/// unsigned as their type says); strings, decimals, JSON, BLOBs, BIT,
/// ENUM/SET and geometries are their bytes, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    DateTime(DateTime),
    Time(Time),
    Bytes(&'a [u8]),
    /// A statement parameter whose value came earlier in
    /// `COM_STMT_SEND_LONG_DATA` packets (nothing in `COM_STMT_EXECUTE`).
    LongData,
}

fn get_int(r: &mut Reader<'_>, width: usize, unsigned: bool) -> Result<Value<'static>, CodecError> {
    let b = r.bytes(width)?;
    let mut raw = [0u8; 8];
    raw[..width].copy_from_slice(b);
    let bits = u64::from_le_bytes(raw);
    Ok(if unsigned {
        Value::UInt(bits)
    } else {
        // Sign-extend from the value's width.
        let shift = 64 - 8 * width as u32;
        Value::Int(((bits << shift) as i64) >> shift)
    })
}

/// Reads one binary value of type `t`.
pub fn get_binary_value<'a>(p: &mut &'a [u8], t: BinaryType) -> Result<Value<'a>, CodecError> {
    let mut r = Reader::new(p, "binary value");
    let v = match t.layout()? {
        Layout::Empty => Value::Null,
        Layout::Int(width) => get_int(&mut r, width, t.unsigned)?,
        Layout::Float => Value::Float(f32::from_le_bytes(r.array()?)),
        Layout::Double => Value::Double(f64::from_le_bytes(r.array()?)),
        Layout::DateTime => {
            let n = r.u8()?;
            let mut d = DateTime::default();
            if !matches!(n, 0 | 4 | 7 | 11) {
                return Err(r.bad());
            }
            if n >= 4 {
                d.year = r.u16()?;
                d.month = r.u8()?;
                d.day = r.u8()?;
            }
            if n >= 7 {
                d.hour = r.u8()?;
                d.minute = r.u8()?;
                d.second = r.u8()?;
            }
            if n == 11 {
                d.micros = r.u32()?;
            }
            Value::DateTime(d)
        }
        Layout::Time => {
            let n = r.u8()?;
            let mut t = Time::default();
            if !matches!(n, 0 | 8 | 12) {
                return Err(r.bad());
            }
            if n >= 8 {
                t.negative = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(r.bad()),
                };
                t.days = r.u32()?;
                t.hours = r.u8()?;
                t.minutes = r.u8()?;
                t.seconds = r.u8()?;
            }
            if n == 12 {
                t.micros = r.u32()?;
            }
            Value::Time(t)
        }
        Layout::Bytes => Value::Bytes(r.lenenc_bytes()?),
    };
    *p = r.buf;
    Ok(v)
}

/// Writes one binary value of type `t` (not `Null` or `LongData`, which
/// take no bytes and are marked elsewhere). Integers must fit the type's
/// width (sign included); dates and times take their shortest form.
pub fn put_binary_value(
    out: &mut BytesMut,
    t: BinaryType,
    v: &Value<'_>,
) -> Result<(), CodecError> {
    let bad = CodecError::Unencodable("binary value");
    match (t.layout()?, v) {
        (Layout::Int(width), Value::Int(i)) if !t.unsigned => {
            let shift = 64 - 8 * width as u32;
            if (i << shift) >> shift != *i {
                return Err(bad);
            }
            out.put_slice(&i.to_le_bytes()[..width]);
        }
        (Layout::Int(width), Value::UInt(u)) if t.unsigned => {
            if width < 8 && *u >> (8 * width) != 0 {
                return Err(bad);
            }
            out.put_slice(&u.to_le_bytes()[..width]);
        }
        (Layout::Float, Value::Float(f)) => out.put_f32_le(*f),
        (Layout::Double, Value::Double(f)) => out.put_f64_le(*f),
        (Layout::DateTime, Value::DateTime(d)) => {
            let n = if d.micros != 0 {
                11
            } else if d.hour != 0 || d.minute != 0 || d.second != 0 {
                7
            } else if d.year != 0 || d.month != 0 || d.day != 0 {
                4
            } else {
                0
            };
            out.put_u8(n);
            if n >= 4 {
                out.put_u16_le(d.year);
                out.put_u8(d.month);
                out.put_u8(d.day);
            }
            if n >= 7 {
                out.put_u8(d.hour);
                out.put_u8(d.minute);
                out.put_u8(d.second);
            }
            if n == 11 {
                out.put_u32_le(d.micros);
            }
        }
        (Layout::Time, Value::Time(t)) => {
            let n = if t.micros != 0 {
                12
            } else if t.negative || t.days != 0 || t.hours != 0 || t.minutes != 0 || t.seconds != 0
            {
                8
            } else {
                0
            };
            out.put_u8(n);
            if n >= 8 {
                out.put_u8(u8::from(t.negative));
                out.put_u32_le(t.days);
                out.put_u8(t.hours);
                out.put_u8(t.minutes);
                out.put_u8(t.seconds);
            }
            if n == 12 {
                out.put_u32_le(t.micros);
            }
        }
        (Layout::Bytes, Value::Bytes(b)) => put_lenenc_bytes(out, b),
        _ => return Err(bad),
    }
    Ok(())
}

/// Bytes of a NULL bitmap of `n` bits starting at bit `offset`.
pub(crate) fn bitmap_len(n: usize, offset: usize) -> usize {
    (n + offset).div_ceil(8)
}

pub(crate) fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

// === binary rows ===

/// A row of the binary protocol (replies to `COM_STMT_EXECUTE`): 0x00, a
/// NULL bitmap whose bits start at offset 2, then each non-NULL value in
/// the encoding of its column's type.
pub fn parse_binary_row<'a>(
    payload: &'a [u8],
    columns: &[BinaryType],
) -> Result<Vec<Value<'a>>, CodecError> {
    let mut r = Reader::new(payload, "binary row");
    if r.u8()? != 0x00 {
        return Err(r.bad());
    }
    let bitmap = r.bytes(bitmap_len(columns.len(), 2))?;
    let mut values = Vec::with_capacity(columns.len());
    let mut rest = r.buf;
    for (i, t) in columns.iter().enumerate() {
        if bit(bitmap, i + 2) {
            values.push(Value::Null);
        } else {
            values.push(get_binary_value(&mut rest, *t)?);
        }
    }
    if !rest.is_empty() {
        return Err(CodecError::Malformed("binary row"));
    }
    Ok(values)
}

/// Writes a binary row: one value per column, in its column's type.
pub fn build_binary_row(
    out: &mut BytesMut,
    columns: &[BinaryType],
    values: &[Value<'_>],
) -> Result<(), CodecError> {
    if columns.len() != values.len() {
        return Err(CodecError::Unencodable("binary row"));
    }
    out.put_u8(0x00);
    let at = out.len();
    out.put_bytes(0, bitmap_len(columns.len(), 2));
    for (i, (t, v)) in columns.iter().zip(values).enumerate() {
        match v {
            Value::Null => out[at + (i + 2) / 8] |= 1 << ((i + 2) % 8),
            Value::LongData => return Err(CodecError::Unencodable("binary row")),
            _ => put_binary_value(out, *t, v)?,
        }
    }
    Ok(())
}
