//! Prepared statements: the `COM_STMT_PREPARE` reply, `COM_STMT_EXECUTE`,
//! `COM_STMT_SEND_LONG_DATA`, and the statement id of `COM_STMT_CLOSE`
//! and `COM_STMT_RESET`.

use bytes::{BufMut, BytesMut};

use super::result::{bit, bitmap_len};
use super::{
    BinaryType, CodecError, Command, Reader, Value, get_binary_value, put_binary_value,
    put_lenenc_bytes, put_lenenc_int,
};

/// `COM_STMT_EXECUTE` flag (MySQL 8.0.26+): a parameter count is sent even
/// when the statement has no parameters (to carry query attributes).
pub const PARAMETER_COUNT_AVAILABLE: u8 = 0x08;

/// Most parameters a statement can have (the count is 16 bits).
pub const MAX_PARAMS: usize = 65_535;

/// The OK reply to `COM_STMT_PREPARE` (COM_STMT_PREPARE_OK).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrepareOk {
    pub statement_id: u32,
    pub columns: u16,
    pub params: u16,
    pub warnings: u16,
    /// With `CLIENT_OPTIONAL_RESULTSET_METADATA`: whether column
    /// definitions follow (1) or not (0).
    pub metadata_follows: Option<u8>,
}

pub fn parse_prepare_ok(payload: &[u8]) -> Result<PrepareOk, CodecError> {
    let mut r = Reader::new(payload, "prepare OK");
    if r.u8()? != 0x00 {
        return Err(r.bad());
    }
    let mut ok = PrepareOk {
        statement_id: r.u32()?,
        columns: r.u16()?,
        params: r.u16()?,
        ..PrepareOk::default()
    };
    r.u8()?;
    if !r.is_empty() {
        ok.warnings = r.u16()?;
    }
    if !r.is_empty() {
        ok.metadata_follows = Some(r.u8()?);
    }
    if !r.is_empty() {
        return Err(r.bad());
    }
    Ok(ok)
}

pub fn build_prepare_ok(out: &mut BytesMut, ok: &PrepareOk) {
    out.put_u8(0x00);
    out.put_u32_le(ok.statement_id);
    out.put_u16_le(ok.columns);
    out.put_u16_le(ok.params);
    out.put_u8(0);
    out.put_u16_le(ok.warnings);
    if let Some(m) = ok.metadata_follows {
        out.put_u8(m);
    }
}

/// What parsing a `COM_STMT_EXECUTE` needs to know that is not in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecuteContext<'t> {
    /// `params` of the statement's COM_STMT_PREPARE_OK.
    pub param_count: usize,
    /// The parameter types bound by the statement's previous execute, for
    /// an execute that does not send them again.
    pub previous_types: Option<&'t [BinaryType]>,
    /// Parameters sent with `COM_STMT_SEND_LONG_DATA` since the statement's
    /// last execute or reset: their values are not in the packet.
    pub long_data: &'t [u16],
    /// Whether `CLIENT_QUERY_ATTRIBUTES` was negotiated (MySQL 8.0.23+):
    /// a parameter count and parameter names are then sent.
    pub query_attributes: bool,
}

/// A parsed `COM_STMT_EXECUTE`.
#[derive(Debug, Clone, PartialEq)]
pub struct StmtExecute<'a> {
    pub statement_id: u32,
    /// Cursor flags (and `PARAMETER_COUNT_AVAILABLE`).
    pub flags: u8,
    pub iterations: u32,
    /// Whether the packet bound new parameter types (new-params-bound flag).
    pub types_sent: bool,
    /// The types the values were read with: those sent, or the previous ones.
    pub types: Vec<BinaryType>,
    /// With query attributes, each parameter's name (empty for positional ones).
    pub names: Vec<&'a [u8]>,
    pub params: Vec<Value<'a>>,
}

/// Parses a `COM_STMT_EXECUTE` payload (command byte included). With query
/// attributes the packet carries its own parameter count (at least
/// `param_count`; the extra ones are attributes); otherwise `param_count`
/// values are read.
pub fn parse_stmt_execute<'a>(
    payload: &'a [u8],
    ctx: &ExecuteContext<'_>,
) -> Result<StmtExecute<'a>, CodecError> {
    let mut r = Reader::new(payload, "COM_STMT_EXECUTE");
    if r.u8()? != Command::StmtExecute.byte() {
        return Err(r.bad());
    }
    let mut exe = StmtExecute {
        statement_id: r.u32()?,
        flags: r.u8()?,
        iterations: r.u32()?,
        types_sent: false,
        types: Vec::new(),
        names: Vec::new(),
        params: Vec::new(),
    };
    let counted = ctx.query_attributes && exe.flags & PARAMETER_COUNT_AVAILABLE != 0;
    if ctx.param_count == 0 && !counted {
        return if r.is_empty() { Ok(exe) } else { Err(r.bad()) };
    }
    let count = if ctx.query_attributes {
        let n = usize::try_from(r.lenenc_int()?).map_err(|_| r.bad())?;
        if n < ctx.param_count {
            return Err(r.bad());
        }
        n
    } else {
        ctx.param_count
    };
    if count == 0 {
        return if r.is_empty() { Ok(exe) } else { Err(r.bad()) };
    }
    // The bitmap's length bounds `count` by the packet's size before anything is allocated.
    if count > MAX_PARAMS || bitmap_len(count, 0) > r.len() {
        return Err(r.bad());
    }
    let nulls = r.bytes(bitmap_len(count, 0))?;
    exe.types_sent = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(r.bad()),
    };
    if exe.types_sent {
        if count.saturating_mul(2) > r.len() {
            return Err(r.bad());
        }
        exe.types.reserve(count);
        for _ in 0..count {
            let [code, flag] = r.array()?;
            exe.types.push(BinaryType {
                code,
                unsigned: flag & 0x80 != 0,
            });
            if ctx.query_attributes {
                exe.names.push(r.lenenc_bytes()?);
            }
        }
    } else {
        let prev = ctx.previous_types.unwrap_or_default();
        if prev.len() != count {
            return Err(CodecError::Malformed(
                "COM_STMT_EXECUTE (no parameter types bound)",
            ));
        }
        exe.types = prev.to_vec();
    }
    let mut rest = r.buf;
    exe.params.reserve(count);
    for (i, t) in exe.types.iter().enumerate() {
        let v = if bit(nulls, i) {
            Value::Null
        } else if ctx.long_data.iter().any(|p| usize::from(*p) == i) {
            Value::LongData
        } else {
            get_binary_value(&mut rest, *t)?
        };
        exe.params.push(v);
    }
    if !rest.is_empty() {
        return Err(CodecError::Malformed("COM_STMT_EXECUTE"));
    }
    Ok(exe)
}

/// Writes a `COM_STMT_EXECUTE` payload. With `query_attributes` the
/// parameter count is written and each parameter's name (`names` is empty
/// or one per parameter); types are written when `types_sent`.
pub fn build_stmt_execute(
    out: &mut BytesMut,
    exe: &StmtExecute<'_>,
    query_attributes: bool,
) -> Result<(), CodecError> {
    let bad = CodecError::Unencodable("COM_STMT_EXECUTE");
    let n = exe.params.len();
    if exe.types.len() != n || !(exe.names.is_empty() || exe.names.len() == n) || n > MAX_PARAMS {
        return Err(bad);
    }
    out.put_u8(Command::StmtExecute.byte());
    out.put_u32_le(exe.statement_id);
    out.put_u8(exe.flags);
    out.put_u32_le(exe.iterations);
    let counted = query_attributes && exe.flags & PARAMETER_COUNT_AVAILABLE != 0;
    if n == 0 && !counted {
        return Ok(());
    }
    if query_attributes {
        put_lenenc_int(out, n as u64);
    }
    if n == 0 {
        return Ok(());
    }
    let at = out.len();
    out.put_bytes(0, bitmap_len(n, 0));
    out.put_u8(u8::from(exe.types_sent));
    if exe.types_sent {
        for (i, t) in exe.types.iter().enumerate() {
            out.put_u8(t.code);
            out.put_u8(if t.unsigned { 0x80 } else { 0 });
            if query_attributes {
                put_lenenc_bytes(out, exe.names.get(i).copied().unwrap_or_default());
            }
        }
    }
    for (i, (t, v)) in exe.types.iter().zip(&exe.params).enumerate() {
        match v {
            Value::Null => out[at + i / 8] |= 1 << (i % 8),
            Value::LongData => {}
            _ => put_binary_value(out, *t, v)?,
        }
    }
    Ok(())
}

/// The statement id of `COM_STMT_CLOSE`, `COM_STMT_RESET` or
/// `COM_STMT_FETCH` (command byte included; a fetch's row count follows).
pub fn parse_stmt_id(payload: &[u8]) -> Result<(Command, u32), CodecError> {
    let mut r = Reader::new(payload, "statement command");
    let cmd = Command::from_byte(r.u8()?).ok_or(r.bad())?;
    let id = r.u32()?;
    let expected_rest = match cmd {
        Command::StmtClose | Command::StmtReset => 0,
        Command::StmtFetch => 4,
        _ => return Err(r.bad()),
    };
    if r.len() != expected_rest {
        return Err(r.bad());
    }
    Ok((cmd, id))
}

/// `COM_STMT_SEND_LONG_DATA`: a piece of one parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLongData<'a> {
    pub statement_id: u32,
    pub param: u16,
    pub data: &'a [u8],
}

pub fn parse_send_long_data(payload: &[u8]) -> Result<SendLongData<'_>, CodecError> {
    let mut r = Reader::new(payload, "COM_STMT_SEND_LONG_DATA");
    if r.u8()? != Command::StmtSendLongData.byte() {
        return Err(r.bad());
    }
    Ok(SendLongData {
        statement_id: r.u32()?,
        param: r.u16()?,
        data: r.rest(),
    })
}
