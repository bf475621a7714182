//! The MySQL/MariaDB client/server protocol as bytes ↔ typed values.
//! Nothing here decides, authenticates or logs: it frames packets with a
//! size limit, parses payloads, and builds the packets Gatehouse sends.
//! Every parser is a pure function over a byte slice (fuzzed by
//! `fuzz/fuzz_targets/mysql_packets.rs`); none allocates more than a small
//! multiple of the bytes it was given, whatever lengths the input claims.
//!
//! Layout: this file holds framing, the primitive encodings (fixed and
//! length-encoded integers, length-encoded and NUL-terminated strings),
//! capability and status flags and the command bytes; `connect` the
//! connection-phase packets, `result` OK/ERR/EOF, column definitions, rows
//! and binary values, `stmt` the prepared-statement packets.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

pub mod connect;
pub mod result;
pub mod stmt;
#[cfg(test)]
mod tests;

pub use connect::{
    AuthSwitchRequest, ClientHello, Greeting, HandshakeResponse, SSL_REQUEST_LEN, SslRequest,
    build_auth_more_data, build_auth_switch_request, build_greeting, build_handshake_response,
    build_ssl_request, parse_auth_more_data, parse_auth_switch_request, parse_client_hello,
    parse_greeting,
};
pub use result::{
    BinaryType, ColumnDefinition, DateTime, EofPacket, ErrPacket, FieldType, OkPacket, Time, Value,
    build_binary_row, build_column_count, build_column_definition, build_eof, build_err, build_ok,
    build_text_row, column_flags, get_binary_value, is_eof, is_err, is_result_end,
    parse_binary_row, parse_column_count, parse_column_definition, parse_eof, parse_err, parse_ok,
    parse_text_row, put_binary_value,
};
pub use stmt::{
    ExecuteContext, MAX_PARAMS, PARAMETER_COUNT_AVAILABLE, PrepareOk, SendLongData, StmtExecute,
    build_prepare_ok, build_stmt_execute, parse_prepare_ok, parse_send_long_data,
    parse_stmt_execute, parse_stmt_id,
};

/// Bytes of a packet header: 3-byte payload length, 1-byte sequence id.
pub const HEADER_LEN: usize = 4;
/// Largest payload of one physical packet; a payload of exactly this many
/// bytes continues in the next packet.
pub const MAX_CHUNK: usize = 0xFF_FFFF;
/// Most columns a result may have (MySQL's own limit is 4096).
pub const MAX_COLUMNS: usize = 4096;

// === capability flags ===

/// `CLIENT_MYSQL` for MariaDB: set by MySQL and by MariaDB servers that
/// send no extended (MariaDB) capabilities.
pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_FOUND_ROWS: u32 = 1 << 1;
pub const CLIENT_LONG_FLAG: u32 = 1 << 2;
pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
pub const CLIENT_NO_SCHEMA: u32 = 1 << 4;
pub const CLIENT_COMPRESS: u32 = 1 << 5;
pub const CLIENT_ODBC: u32 = 1 << 6;
pub const CLIENT_LOCAL_FILES: u32 = 1 << 7;
pub const CLIENT_IGNORE_SPACE: u32 = 1 << 8;
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
pub const CLIENT_INTERACTIVE: u32 = 1 << 10;
pub const CLIENT_SSL: u32 = 1 << 11;
pub const CLIENT_IGNORE_SIGPIPE: u32 = 1 << 12;
pub const CLIENT_TRANSACTIONS: u32 = 1 << 13;
pub const CLIENT_RESERVED: u32 = 1 << 14;
pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub const CLIENT_MULTI_STATEMENTS: u32 = 1 << 16;
pub const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
pub const CLIENT_PS_MULTI_RESULTS: u32 = 1 << 18;
pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
pub const CLIENT_SESSION_TRACK: u32 = 1 << 23;
pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 1 << 26;
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
pub const CLIENT_MULTI_FACTOR_AUTHENTICATION: u32 = 1 << 28;
pub const CLIENT_CAPABILITY_EXTENSION: u32 = 1 << 29;
pub const CLIENT_SSL_VERIFY_SERVER_CERT: u32 = 1 << 30;
pub const CLIENT_REMEMBER_OPTIONS: u32 = 1 << 31;

// === server status flags (OK and EOF packets) ===

pub const SERVER_STATUS_IN_TRANS: u16 = 1;
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 1 << 1;
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
pub const SERVER_STATUS_NO_GOOD_INDEX_USED: u16 = 1 << 4;
pub const SERVER_STATUS_NO_INDEX_USED: u16 = 1 << 5;
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;
pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 1 << 7;
pub const SERVER_STATUS_DB_DROPPED: u16 = 1 << 8;
pub const SERVER_STATUS_NO_BACKSLASH_ESCAPES: u16 = 1 << 9;
pub const SERVER_STATUS_METADATA_CHANGED: u16 = 1 << 10;
pub const SERVER_QUERY_WAS_SLOW: u16 = 1 << 11;
pub const SERVER_PS_OUT_PARAMS: u16 = 1 << 12;
pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 1 << 13;
pub const SERVER_SESSION_STATE_CHANGED: u16 = 1 << 14;

/// `utf8mb4_general_ci`, a collation every client and server knows.
pub const UTF8MB4_GENERAL_CI: u8 = 45;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("packet of {len} bytes is over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed {0} packet")]
    Malformed(&'static str),
    #[error("packets out of order: sequence id {got} where {expected} was expected")]
    Sequence { expected: u8, got: u8 },
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("cannot build the {0} packet from these values")]
    Unencodable(&'static str),
}

// === framing ===

/// Where one logical packet (all its 16 MiB pieces) lies at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Sequence id of the first piece.
    pub seq: u8,
    /// Sequence id of the last piece (`seq` unless the payload was split).
    pub last_seq: u8,
    /// Bytes the packet takes in the buffer, headers included.
    pub len: usize,
    /// Bytes of payload, all pieces together.
    pub payload_len: usize,
}

/// The payload length and sequence id of the physical packet starting
/// `buf`, once its 4-byte header has arrived.
pub fn packet_header(buf: &[u8]) -> Option<(usize, u8)> {
    let h = buf.get(..HEADER_LEN)?;
    Some((u24(h), h[3]))
}

/// If `buf` starts with a whole logical packet, where it ends. A payload
/// of `MAX_CHUNK` bytes continues in the next packet, whose sequence id
/// must follow. Refuses, from the headers alone and before any payload has
/// to arrive, a payload over `limit` bytes.
pub fn frame(buf: &[u8], limit: usize) -> Result<Option<Frame>, CodecError> {
    let mut at = 0usize;
    let mut payload_len = 0usize;
    // (first, last) sequence ids of the pieces seen so far.
    let mut seqs: Option<(u8, u8)> = None;
    loop {
        let Some((n, seq)) = buf.get(at..).and_then(packet_header) else {
            return Ok(None);
        };
        let first = match seqs {
            None => seq,
            Some((first, last)) => {
                let expected = last.wrapping_add(1);
                if seq != expected {
                    return Err(CodecError::Sequence { expected, got: seq });
                }
                first
            }
        };
        seqs = Some((first, seq));
        payload_len = payload_len.saturating_add(n);
        if payload_len > limit {
            return Err(CodecError::TooLarge {
                len: payload_len,
                limit,
            });
        }
        at = at.saturating_add(HEADER_LEN + n);
        if buf.len() < at {
            return Ok(None);
        }
        if n < MAX_CHUNK {
            return Ok(Some(Frame {
                seq: first,
                last_seq: seq,
                len: at,
                payload_len,
            }));
        }
    }
}

/// The payload of a framed packet (`&buf[..frame.len]`): borrowed when it
/// came in one piece, joined when it was split.
pub fn payload(framed: &[u8]) -> Cow<'_, [u8]> {
    let Some((n, _)) = packet_header(framed) else {
        return Cow::Borrowed(&[]);
    };
    if n < MAX_CHUNK {
        return Cow::Borrowed(framed.get(HEADER_LEN..HEADER_LEN + n).unwrap_or_default());
    }
    let mut out = Vec::with_capacity(framed.len());
    let mut rest = framed;
    while let Some((n, _)) = packet_header(rest) {
        let end = (HEADER_LEN + n).min(rest.len());
        out.extend_from_slice(&rest[HEADER_LEN..end]);
        rest = &rest[end..];
        if n < MAX_CHUNK {
            break;
        }
    }
    Cow::Owned(out)
}

/// Appends `payload` as one logical packet starting at sequence id `seq`
/// (split into `MAX_CHUNK` pieces, ending with a shorter one, as the
/// protocol requires); returns the sequence id of the packet after it.
pub fn put_packet(out: &mut BytesMut, seq: u8, payload: &[u8]) -> u8 {
    let mut seq = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_CHUNK);
        out.reserve(HEADER_LEN + n);
        put_u24(out, n);
        out.put_u8(seq);
        out.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_CHUNK {
            return seq;
        }
    }
}

// === primitive encodings ===

fn u24(b: &[u8]) -> usize {
    usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16
}

pub(crate) fn put_u24(out: &mut BytesMut, n: usize) {
    let b = (n as u32).to_le_bytes();
    out.put_slice(&b[..3]);
}

/// A cursor over a payload; every read checks the bytes are there and
/// reports the packet it was reading when they are not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    pub(crate) fn bad(&self) -> CodecError {
        CodecError::Malformed(self.what)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(self.bad());
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn lenenc_int(&mut self) -> Result<u64, CodecError> {
        let mut p = self.buf;
        let v = get_lenenc_int(&mut p).map_err(|_| self.bad())?;
        self.buf = p;
        Ok(v)
    }

    pub(crate) fn lenenc_bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let mut p = self.buf;
        let v = get_lenenc_bytes(&mut p).map_err(|_| self.bad())?;
        self.buf = p;
        Ok(v)
    }

    /// A length-encoded string, or `None` for the NULL marker 0xFB.
    pub(crate) fn lenenc_nullable(&mut self) -> Result<Option<&'a [u8]>, CodecError> {
        if self.peek() == Some(0xFB) {
            self.buf = &self.buf[1..];
            return Ok(None);
        }
        self.lenenc_bytes().map(Some)
    }

    pub(crate) fn nul_bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let mut p = self.buf;
        let v = get_nul_bytes(&mut p).map_err(|_| self.bad())?;
        self.buf = p;
        Ok(v)
    }

    /// A NUL-terminated string, or the rest of the payload when no NUL ends it.
    pub(crate) fn nul_or_rest(&mut self) -> &'a [u8] {
        match self.buf.iter().position(|b| *b == 0) {
            Some(end) => {
                let s = &self.buf[..end];
                self.buf = &self.buf[end + 1..];
                s
            }
            None => self.rest(),
        }
    }
}

/// Reads a length-encoded integer and advances past it. The markers 0xFB
/// (NULL in a row) and 0xFF (an ERR packet) are not integers.
pub fn get_lenenc_int(p: &mut &[u8]) -> Result<u64, CodecError> {
    let bad = CodecError::Malformed("length-encoded integer");
    let (&first, rest) = p.split_first().ok_or(bad.clone())?;
    let width = match first {
        0..=0xFA => {
            *p = rest;
            return Ok(u64::from(first));
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return Err(bad),
    };
    let bytes = rest.get(..width).ok_or(bad)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(bytes);
    *p = &rest[width..];
    Ok(u64::from_le_bytes(v))
}

/// Reads a length-encoded string and advances past it. Its length is
/// checked against the bytes that are there before anything is taken.
pub fn get_lenenc_bytes<'a>(p: &mut &'a [u8]) -> Result<&'a [u8], CodecError> {
    let mut q = *p;
    let n = get_lenenc_int(&mut q)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= q.len())
        .ok_or(CodecError::Malformed("length-encoded string"))?;
    let (s, rest) = q.split_at(n);
    *p = rest;
    Ok(s)
}

/// Reads a NUL-terminated string and advances past its NUL.
pub fn get_nul_bytes<'a>(p: &mut &'a [u8]) -> Result<&'a [u8], CodecError> {
    let end = p
        .iter()
        .position(|b| *b == 0)
        .ok_or(CodecError::Malformed("NUL-terminated string"))?;
    let s = &p[..end];
    *p = &p[end + 1..];
    Ok(s)
}

/// How many bytes `put_lenenc_int` writes for `v`.
pub fn lenenc_int_len(v: u64) -> usize {
    match v {
        0..=0xFA => 1,
        0xFB..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 9,
    }
}

pub fn put_lenenc_int(out: &mut BytesMut, v: u64) {
    match v {
        0..=0xFA => out.put_u8(v as u8),
        0xFB..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_u16_le(v as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            put_u24(out, v as usize);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(v);
        }
    }
}

pub fn put_lenenc_bytes(out: &mut BytesMut, b: &[u8]) {
    put_lenenc_int(out, b.len() as u64);
    out.put_slice(b);
}

/// Writes `b` NUL-terminated; NUL bytes inside it are dropped (they could
/// not be read back).
pub fn put_nul_bytes(out: &mut BytesMut, b: &[u8]) {
    out.extend(b.iter().copied().filter(|c| *c != 0));
    out.put_u8(0);
}

// === commands ===

/// The first byte of a client's command packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    Sleep = 0x00,
    Quit = 0x01,
    InitDb = 0x02,
    Query = 0x03,
    FieldList = 0x04,
    CreateDb = 0x05,
    DropDb = 0x06,
    Refresh = 0x07,
    Shutdown = 0x08,
    Statistics = 0x09,
    ProcessInfo = 0x0a,
    Connect = 0x0b,
    ProcessKill = 0x0c,
    Debug = 0x0d,
    Ping = 0x0e,
    Time = 0x0f,
    DelayedInsert = 0x10,
    ChangeUser = 0x11,
    BinlogDump = 0x12,
    TableDump = 0x13,
    ConnectOut = 0x14,
    RegisterSlave = 0x15,
    StmtPrepare = 0x16,
    StmtExecute = 0x17,
    StmtSendLongData = 0x18,
    StmtClose = 0x19,
    StmtReset = 0x1a,
    SetOption = 0x1b,
    StmtFetch = 0x1c,
    Daemon = 0x1d,
    BinlogDumpGtid = 0x1e,
    ResetConnection = 0x1f,
    /// MySQL 8.0.17+.
    Clone = 0x20,
    /// MariaDB 10.2+ (array binding).
    StmtBulkExecute = 0xfa,
}

impl Command {
    const ALL: [Command; 34] = [
        Self::Sleep,
        Self::Quit,
        Self::InitDb,
        Self::Query,
        Self::FieldList,
        Self::CreateDb,
        Self::DropDb,
        Self::Refresh,
        Self::Shutdown,
        Self::Statistics,
        Self::ProcessInfo,
        Self::Connect,
        Self::ProcessKill,
        Self::Debug,
        Self::Ping,
        Self::Time,
        Self::DelayedInsert,
        Self::ChangeUser,
        Self::BinlogDump,
        Self::TableDump,
        Self::ConnectOut,
        Self::RegisterSlave,
        Self::StmtPrepare,
        Self::StmtExecute,
        Self::StmtSendLongData,
        Self::StmtClose,
        Self::StmtReset,
        Self::SetOption,
        Self::StmtFetch,
        Self::Daemon,
        Self::BinlogDumpGtid,
        Self::ResetConnection,
        Self::Clone,
        Self::StmtBulkExecute,
    ];

    pub fn from_byte(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| *c as u8 == b)
    }

    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// A command packet's command and the bytes after the command byte.
pub fn parse_command(payload: &[u8]) -> Result<(Command, &[u8]), CodecError> {
    let (&b, rest) = payload
        .split_first()
        .ok_or(CodecError::Malformed("command"))?;
    let cmd = Command::from_byte(b).ok_or(CodecError::Unsupported("unknown command byte"))?;
    Ok((cmd, rest))
}

/// The text after the command byte of `COM_QUERY` (without query
/// attributes), `COM_INIT_DB` and `COM_STMT_PREPARE`.
pub fn parse_text_command(payload: &[u8], expected: Command) -> Result<&[u8], CodecError> {
    match parse_command(payload)? {
        (cmd, text) if cmd == expected => Ok(text),
        _ => Err(CodecError::Malformed("command")),
    }
}

/// A command packet made of its command byte and `body`.
pub fn build_command(out: &mut BytesMut, cmd: Command, body: &[u8]) {
    out.reserve(1 + body.len());
    out.put_u8(cmd.byte());
    out.put_slice(body);
}
