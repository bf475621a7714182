//! Connection-phase packets: the server's greeting (HandshakeV10), the
//! client's SSLRequest and HandshakeResponse41, AuthSwitchRequest and
//! AuthMoreData.

use bytes::{BufMut, BytesMut};
use zeroize::Zeroizing;

use super::{
    CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    CLIENT_SSL, CLIENT_ZSTD_COMPRESSION_ALGORITHM, CodecError, Reader, put_lenenc_bytes,
    put_lenenc_int, put_nul_bytes,
};

/// Bytes of an SSLRequest payload (and of a HandshakeResponse41's fixed part).
pub const SSL_REQUEST_LEN: usize = 32;

/// Whether the reserved bytes of the greeting and of the client's answer
/// carry MariaDB's extended capabilities: MariaDB clears `CLIENT_MYSQL`
/// (`CLIENT_LONG_PASSWORD`) to say so.
fn has_mariadb_caps(capabilities: u32) -> bool {
    capabilities & CLIENT_LONG_PASSWORD == 0
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The server's initial handshake packet, protocol version 10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// The auth-plugin data (the scramble), both parts, without the NUL
    /// that ends the second part: 20 bytes from MySQL and MariaDB.
    pub nonce: Vec<u8>,
    pub capabilities: u32,
    /// The server's default collation.
    pub charset: u8,
    pub status: u16,
    /// MariaDB's extended capabilities (0 unless `CLIENT_LONG_PASSWORD` is clear).
    pub mariadb_capabilities: u32,
    /// The server's default authentication plugin (with `CLIENT_PLUGIN_AUTH`).
    pub auth_plugin: Option<String>,
}

/// Parses a HandshakeV10 payload. Versions 9 and older (before MySQL 3.21)
/// and greetings without the 4.1 fields are refused; an ERR packet (a
/// server refusing the connection outright) is for the caller to check
/// first with `is_err`.
pub fn parse_greeting(payload: &[u8]) -> Result<Greeting, CodecError> {
    let mut r = Reader::new(payload, "greeting");
    match r.u8()? {
        10 => {}
        0xFF => return Err(CodecError::Malformed("greeting (an ERR packet)")),
        _ => return Err(CodecError::Unsupported("handshake protocol other than 10")),
    }
    let server_version = utf8(r.nul_bytes()?);
    let connection_id = r.u32()?;
    let mut nonce = r.bytes(8)?.to_vec();
    r.u8()?;
    let caps_lo = r.u16()?;
    if r.is_empty() {
        return Err(CodecError::Unsupported("pre-4.1 greeting"));
    }
    let charset = r.u8()?;
    let status = r.u16()?;
    let caps_hi = r.u16()?;
    let capabilities = u32::from(caps_lo) | u32::from(caps_hi) << 16;
    let auth_len = r.u8()?;
    let reserved = r.bytes(10)?;
    let mariadb_capabilities = if has_mariadb_caps(capabilities) {
        u32::from_le_bytes([reserved[6], reserved[7], reserved[8], reserved[9]])
    } else {
        0
    };
    if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let n = usize::from(auth_len).saturating_sub(8).max(13);
        let part2 = r.bytes(n)?;
        nonce.extend_from_slice(part2.strip_suffix(&[0]).unwrap_or(part2));
    }
    let auth_plugin = if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        Some(utf8(r.nul_or_rest())).filter(|p| !p.is_empty())
    } else {
        None
    };
    Ok(Greeting {
        server_version,
        connection_id,
        nonce,
        capabilities,
        charset,
        status,
        mariadb_capabilities,
        auth_plugin,
    })
}

/// Writes a HandshakeV10 payload. The nonce must hold no NUL and be 8
/// bytes (without `CLIENT_SECURE_CONNECTION`), 20 (with it), or 20 to 254
/// (with it and `CLIENT_PLUGIN_AUTH`).
pub fn build_greeting(out: &mut BytesMut, g: &Greeting) -> Result<(), CodecError> {
    let bad = CodecError::Unencodable("greeting");
    let secure = g.capabilities & CLIENT_SECURE_CONNECTION != 0;
    let nonce_ok = if secure && g.capabilities & CLIENT_PLUGIN_AUTH != 0 {
        (20..=254).contains(&g.nonce.len())
    } else if secure {
        // Without plugin auth the second part has its fixed 13 bytes.
        g.nonce.len() == 20
    } else {
        g.nonce.len() == 8
    };
    if !nonce_ok || g.nonce.contains(&0) {
        return Err(bad);
    }
    out.put_u8(10);
    put_nul_bytes(out, g.server_version.as_bytes());
    out.put_u32_le(g.connection_id);
    out.put_slice(&g.nonce[..8]);
    out.put_u8(0);
    out.put_u16_le(g.capabilities as u16);
    out.put_u8(g.charset);
    out.put_u16_le(g.status);
    out.put_u16_le((g.capabilities >> 16) as u16);
    if g.capabilities & CLIENT_PLUGIN_AUTH != 0 {
        // Both parts and the NUL after them.
        out.put_u8(u8::try_from(g.nonce.len() + 1).map_err(|_| bad.clone())?);
    } else {
        out.put_u8(0);
    }
    out.put_slice(&[0; 6]);
    if has_mariadb_caps(g.capabilities) {
        out.put_u32_le(g.mariadb_capabilities);
    } else {
        out.put_slice(&[0; 4]);
    }
    if secure {
        out.put_slice(&g.nonce[8..]);
        out.put_u8(0);
    }
    if g.capabilities & CLIENT_PLUGIN_AUTH != 0 {
        put_nul_bytes(out, g.auth_plugin.as_deref().unwrap_or_default().as_bytes());
    }
    Ok(())
}

/// The client's request to switch to TLS: the first 32 bytes of a
/// HandshakeResponse41, with `CLIENT_SSL` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub mariadb_capabilities: u32,
}

/// The client's login: HandshakeResponse41. `auth_response` may be the
/// password itself (`mysql_clear_password`), so it is zeroed on drop and
/// `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub mariadb_capabilities: u32,
    pub user: String,
    pub auth_response: Zeroizing<Vec<u8>>,
    /// With `CLIENT_CONNECT_WITH_DB`; an empty name is `None`.
    pub database: Option<String>,
    /// With `CLIENT_PLUGIN_AUTH`; an empty name is `None`.
    pub auth_plugin: Option<String>,
    /// With `CLIENT_CONNECT_ATTRS`, in the order sent.
    pub connect_attrs: Vec<(String, String)>,
    /// With `CLIENT_ZSTD_COMPRESSION_ALGORITHM`.
    pub zstd_level: Option<u8>,
}

impl std::fmt::Debug for HandshakeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeResponse")
            .field("capabilities", &format_args!("{:#x}", self.capabilities))
            .field("max_packet", &self.max_packet)
            .field("charset", &self.charset)
            .field("mariadb_capabilities", &self.mariadb_capabilities)
            .field("user", &self.user)
            .field(
                "auth_response",
                &format_args!("[{} bytes redacted]", self.auth_response.len()),
            )
            .field("database", &self.database)
            .field("auth_plugin", &self.auth_plugin)
            .field("connect_attrs", &self.connect_attrs)
            .field("zstd_level", &self.zstd_level)
            .finish()
    }
}

/// What a client sends after the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello {
    Ssl(SslRequest),
    Response(Box<HandshakeResponse>),
}

fn fixed_part(r: &mut Reader<'_>) -> Result<SslRequest, CodecError> {
    let capabilities = r.u32()?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return Err(CodecError::Unsupported("pre-4.1 handshake response"));
    }
    let max_packet = r.u32()?;
    let charset = r.u8()?;
    let filler = r.bytes(23)?;
    let mariadb_capabilities = if has_mariadb_caps(capabilities) {
        u32::from_le_bytes([filler[19], filler[20], filler[21], filler[22]])
    } else {
        0
    };
    Ok(SslRequest {
        capabilities,
        max_packet,
        charset,
        mariadb_capabilities,
    })
}

/// Parses the client's answer to the greeting: an SSLRequest (exactly 32
/// bytes with `CLIENT_SSL`) or a HandshakeResponse41. User and database
/// names must be UTF-8 (Gatehouse matches them as text); attribute texts
/// are read leniently.
pub fn parse_client_hello(payload: &[u8]) -> Result<ClientHello, CodecError> {
    let mut r = Reader::new(payload, "handshake response");
    let fixed = fixed_part(&mut r)?;
    let caps = fixed.capabilities;
    if r.is_empty() && caps & CLIENT_SSL != 0 {
        return Ok(ClientHello::Ssl(fixed));
    }
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| CodecError::Malformed("handshake response"))
    };
    let user = text(r.nul_bytes()?)?;
    let auth_response = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_bytes()?
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = usize::from(r.u8()?);
        r.bytes(n)?
    } else {
        r.nul_bytes()?
    };
    let auth_response = Zeroizing::new(auth_response.to_vec());
    let mut database = None;
    if caps & CLIENT_CONNECT_WITH_DB != 0 && !r.is_empty() {
        database = Some(text(r.nul_bytes()?)?).filter(|d| !d.is_empty());
    }
    let mut auth_plugin = None;
    if caps & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        auth_plugin = Some(text(r.nul_or_rest())?).filter(|p| !p.is_empty());
    }
    let mut connect_attrs = Vec::new();
    if caps & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        let mut attrs = Reader::new(r.lenenc_bytes()?, "connection attributes");
        while !attrs.is_empty() {
            let k = utf8(attrs.lenenc_bytes()?);
            let v = utf8(attrs.lenenc_bytes()?);
            connect_attrs.push((k, v));
        }
    }
    let mut zstd_level = None;
    if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 && !r.is_empty() {
        zstd_level = Some(r.u8()?);
    }
    Ok(ClientHello::Response(Box::new(HandshakeResponse {
        capabilities: caps,
        max_packet: fixed.max_packet,
        charset: fixed.charset,
        mariadb_capabilities: fixed.mariadb_capabilities,
        user,
        auth_response,
        database,
        auth_plugin,
        connect_attrs,
        zstd_level,
    })))
}

fn put_fixed_part(out: &mut BytesMut, s: &SslRequest) {
    out.put_u32_le(s.capabilities);
    out.put_u32_le(s.max_packet);
    out.put_u8(s.charset);
    out.put_slice(&[0; 19]);
    if has_mariadb_caps(s.capabilities) {
        out.put_u32_le(s.mariadb_capabilities);
    } else {
        out.put_slice(&[0; 4]);
    }
}

/// Writes an SSLRequest payload (`CLIENT_SSL` and `CLIENT_PROTOCOL_41` are set).
pub fn build_ssl_request(out: &mut BytesMut, s: &SslRequest) {
    let mut s = *s;
    s.capabilities |= CLIENT_SSL | CLIENT_PROTOCOL_41;
    put_fixed_part(out, &s);
}

/// Writes a HandshakeResponse41 payload, the auth response in the encoding
/// its capability flags say (length-encoded, 1-byte length, or
/// NUL-terminated, which cannot hold a NUL). Optional parts are written
/// whenever their flag is set (empty when absent), so they parse back.
pub fn build_handshake_response(
    out: &mut BytesMut,
    h: &HandshakeResponse,
) -> Result<(), CodecError> {
    let bad = CodecError::Unencodable("handshake response");
    let caps = h.capabilities;
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return Err(bad);
    }
    put_fixed_part(
        out,
        &SslRequest {
            capabilities: caps,
            max_packet: h.max_packet,
            charset: h.charset,
            mariadb_capabilities: h.mariadb_capabilities,
        },
    );
    put_nul_bytes(out, h.user.as_bytes());
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        put_lenenc_bytes(out, &h.auth_response);
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        out.put_u8(u8::try_from(h.auth_response.len()).map_err(|_| bad.clone())?);
        out.put_slice(&h.auth_response);
    } else {
        if h.auth_response.contains(&0) {
            return Err(bad);
        }
        put_nul_bytes(out, &h.auth_response);
    }
    if caps & CLIENT_CONNECT_WITH_DB != 0 {
        put_nul_bytes(out, h.database.as_deref().unwrap_or_default().as_bytes());
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        put_nul_bytes(out, h.auth_plugin.as_deref().unwrap_or_default().as_bytes());
    }
    if caps & CLIENT_CONNECT_ATTRS != 0 {
        let mut attrs = BytesMut::new();
        for (k, v) in &h.connect_attrs {
            put_lenenc_bytes(&mut attrs, k.as_bytes());
            put_lenenc_bytes(&mut attrs, v.as_bytes());
        }
        put_lenenc_int(out, attrs.len() as u64);
        out.put_slice(&attrs);
    }
    if let Some(level) = h
        .zstd_level
        .filter(|_| caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0)
    {
        out.put_u8(level);
    }
    Ok(())
}

/// The server asks the client to authenticate again with another plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    pub plugin: String,
    /// The plugin's data as sent: for the scrambling plugins, a fresh
    /// 20-byte nonce followed by a NUL.
    pub data: Vec<u8>,
}

impl AuthSwitchRequest {
    /// The nonce in `data` (without its trailing NUL).
    pub fn nonce(&self) -> &[u8] {
        self.data.strip_suffix(&[0]).unwrap_or(&self.data)
    }
}

/// Parses an AuthSwitchRequest (0xFE, plugin name, plugin data). The
/// one-byte form (a switch to the pre-4.1 `mysql_old_password`) is refused.
pub fn parse_auth_switch_request(payload: &[u8]) -> Result<AuthSwitchRequest, CodecError> {
    let mut r = Reader::new(payload, "auth switch request");
    if r.u8()? != 0xFE {
        return Err(r.bad());
    }
    if r.is_empty() {
        return Err(CodecError::Unsupported("switch to mysql_old_password"));
    }
    let plugin = utf8(r.nul_bytes()?);
    Ok(AuthSwitchRequest {
        plugin,
        data: r.rest().to_vec(),
    })
}

pub fn build_auth_switch_request(out: &mut BytesMut, a: &AuthSwitchRequest) {
    out.put_u8(0xFE);
    put_nul_bytes(out, a.plugin.as_bytes());
    out.put_slice(&a.data);
}

/// AuthMoreData (0x01 and the plugin's data): its data.
pub fn parse_auth_more_data(payload: &[u8]) -> Result<&[u8], CodecError> {
    match payload.split_first() {
        Some((0x01, data)) => Ok(data),
        _ => Err(CodecError::Malformed("auth more data")),
    }
}

pub fn build_auth_more_data(out: &mut BytesMut, data: &[u8]) {
    out.put_u8(0x01);
    out.put_slice(data);
}
