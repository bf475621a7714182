//! The caller's SigV4 signature checked (with their Gatehouse token as the
//! secret key) and the request signed again for the upstream with the
//! connection's own access key.

use gatehouse_core::sigv4::{self, Credentials, sha256_hex};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::canonical::{
    canonical_uri, decode_lenient, encode_pairs, query_pairs, query_pairs_lossy, raw_pairs,
    trim_all,
};

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Longest `Authorization` value accepted.
pub const MAX_AUTHORIZATION: usize = 8 * 1024;
/// Most signed headers accepted.
pub const MAX_SIGNED_HEADERS: usize = 64;
/// Largest difference accepted between `X-Amz-Date` and the gateway's clock.
pub const MAX_SKEW_MS: i64 = 15 * 60 * 1000;

/// `x-amz-content-sha256` values that mean the body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

const HOW_TO_SIGN: &str = "sign requests with an AWS SDK or the AWS CLI pointed at Gatehouse \
    (--endpoint-url), with AWS_ACCESS_KEY_ID set to the Gatehouse connection name and both \
    AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN set to your Gatehouse token";

/// Why an AWS request was refused before it was decided. Messages say what
/// to do; [`AwsAuthError::code`] is the AWS error code for the response.
/// Nothing here ever holds the token (the secret key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsAuthError {
    #[error("the request has no Authorization header: {HOW_TO_SIGN}")]
    MissingAuthorization,
    #[error(
        "the request has no X-Amz-Security-Token header: set AWS_SESSION_TOKEN to your Gatehouse \
         token (the same value as AWS_SECRET_ACCESS_KEY)"
    )]
    MissingToken,
    #[error(
        "the Gatehouse token in AWS_SESSION_TOKEN was not accepted (unknown, expired or revoked): \
         get a current token and set both AWS_SESSION_TOKEN and AWS_SECRET_ACCESS_KEY to it"
    )]
    TokenRejected,
    #[error(
        "AWS_ACCESS_KEY_ID `{0}` is not an AWS connection you may use: set it to the name of a \
         Gatehouse connection of kind aws that your groups can reach"
    )]
    ConnectionNotAllowed(String),
    #[error(
        "presigned URLs (X-Amz-Signature in the query string) are not supported by Gatehouse: \
         send the request itself through Gatehouse with an AWS SDK or the AWS CLI \
         (--endpoint-url), so it carries an Authorization header"
    )]
    Presigned,
    #[error("the Authorization header is over {MAX_AUTHORIZATION} bytes")]
    AuthorizationTooLarge,
    #[error("the request has more than one {0} header; send it once")]
    DuplicateHeader(&'static str),
    #[error(
        "unsupported signing algorithm `{algorithm}`: Gatehouse accepts only AWS Signature Version 4 (AWS4-HMAC-SHA256){hint}"
    )]
    UnsupportedAlgorithm {
        algorithm: String,
        hint: &'static str,
    },
    #[error("malformed Authorization header: {0}; {HOW_TO_SIGN}")]
    MalformedAuthorization(&'static str),
    #[error("the request has no valid X-Amz-Date header (YYYYMMDDTHHMMSSZ, UTC): {HOW_TO_SIGN}")]
    BadDate,
    #[error(
        "the request was signed at {signed} but the gateway's clock says {now} (more than 15 \
         minutes apart): correct the client machine's clock"
    )]
    Skewed { signed: String, now: String },
    #[error(
        "the credential scope date {scope} is not the date of X-Amz-Date ({date}): sign again \
         with the same clock for both"
    )]
    ScopeDate { scope: String, date: String },
    #[error("the signature does not cover the Host header; SigV4 requires it to be signed")]
    HostNotSigned,
    #[error(
        "the Authorization header signs the `{0}` header but the request has none: something \
         between the client and Gatehouse removed it"
    )]
    MissingSignedHeader(String),
    #[error(
        "chunk-signed uploads (x-amz-content-sha256: {0}) are not supported by Gatehouse: turn \
         chunked payload signing off in the client (AWS SDK for Java: \
         S3Configuration.chunkedEncodingEnabled(false); others: sign the whole body or send \
         UNSIGNED-PAYLOAD), or use the AWS CLI or boto3, which sign whole bodies"
    )]
    ChunkSigned(String),
    #[error(
        "unsupported x-amz-content-sha256 value: use the hex SHA-256 of the body, \
         UNSIGNED-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )]
    BadPayloadHash,
    #[error(
        "the body does not match its x-amz-content-sha256 header: the client hashed other bytes \
         or something changed the body on the way"
    )]
    PayloadHashMismatch,
    #[error(
        "the request has no x-amz-content-sha256 header and its body could not be hashed: send \
         the header (S3 SDKs do) or a smaller body"
    )]
    MissingPayloadHash,
    #[error("malformed query string: {0}; percent-encode parameters as UTF-8")]
    BadQuery(&'static str),
    #[error(
        "the request signature does not match: AWS_SECRET_ACCESS_KEY must be your Gatehouse token \
         (the same value as AWS_SESSION_TOKEN), and nothing between the client and Gatehouse may \
         change the method, path, query or signed headers"
    )]
    SignatureMismatch,
}

impl AwsAuthError {
    /// The AWS error code for the response (SDKs surface it as the
    /// exception's code).
    pub fn code(&self) -> &'static str {
        use AwsAuthError::*;
        match self {
            MissingAuthorization | MissingToken => "MissingAuthenticationToken",
            TokenRejected => "InvalidClientTokenId",
            ConnectionNotAllowed(_) => "AccessDenied",
            Presigned
            | AuthorizationTooLarge
            | DuplicateHeader(_)
            | UnsupportedAlgorithm { .. } => "InvalidRequest",
            ChunkSigned(_) | BadPayloadHash | MissingPayloadHash | BadQuery(_) => "InvalidRequest",
            MalformedAuthorization(_) | BadDate | HostNotSigned => "IncompleteSignature",
            Skewed { .. } => "RequestTimeTooSkewed",
            PayloadHashMismatch => "XAmzContentSHA256Mismatch",
            ScopeDate { .. } | MissingSignedHeader(_) | SignatureMismatch => {
                "SignatureDoesNotMatch"
            }
        }
    }

    /// The HTTP status AWS uses with [`AwsAuthError::code`].
    pub fn status(&self) -> u16 {
        match self.code() {
            "InvalidRequest" | "IncompleteSignature" | "XAmzContentSHA256Mismatch" => 400,
            _ => 403,
        }
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// The access key id: for Gatehouse, the connection name.
    pub access_key: String,
    /// The scope date, `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

fn scope_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses an `Authorization` header value. Refuses values over
/// [`MAX_AUTHORIZATION`] bytes and more than [`MAX_SIGNED_HEADERS`] signed
/// headers.
pub fn parse_authorization(value: &str) -> Result<AuthHeader, AwsAuthError> {
    use AwsAuthError::MalformedAuthorization as Bad;
    if value.len() > MAX_AUTHORIZATION {
        return Err(AwsAuthError::AuthorizationTooLarge);
    }
    let value = value.trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        let hint = match algorithm {
            "AWS4-ECDSA-P256-SHA256" => {
                "; SigV4a (multi-region access points) is not supported: use a regional endpoint"
            }
            "AWS" => "; this is Signature Version 2: configure the client for SigV4 (s3v4)",
            _ => "",
        };
        // Named only when it looks like an algorithm: a value sent here by
        // mistake may be a token.
        let named = algorithm.len() <= 40
            && algorithm.starts_with("AWS")
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        return Err(AwsAuthError::UnsupportedAlgorithm {
            algorithm: if named {
                algorithm.to_string()
            } else {
                "(not an AWS signature)".into()
            },
            hint,
        });
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or(Bad("expected Credential=…, SignedHeaders=…, Signature=…"))?;
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(Bad(
                    "unknown component (expected Credential, SignedHeaders, Signature)",
                ));
            }
        };
        if slot.replace(v.trim()).is_some() {
            return Err(Bad("a component appears twice"));
        }
    }
    let credential = credential.ok_or(Bad("no Credential"))?;
    let signed = signed.ok_or(Bad("no SignedHeaders"))?;
    let signature = signature.ok_or(Bad("no Signature"))?;

    // ACCESS_KEY/DATE/REGION/SERVICE/aws4_request, read from the right so an
    // access key containing `/` still parses.
    let mut it = credential.rsplitn(5, '/');
    let (Some(terminal), Some(service), Some(region), Some(date), Some(access_key)) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(Bad(
            "Credential must be ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    };
    if terminal != "aws4_request" {
        return Err(Bad("the credential scope must end with aws4_request"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Bad("the credential scope date must be YYYYMMDD"));
    }
    if !scope_part_ok(region) || !scope_part_ok(service) {
        return Err(Bad("the credential scope has an invalid region or service"));
    }
    if access_key.is_empty()
        || access_key
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Bad(
            "the access key id (AWS_ACCESS_KEY_ID) is empty or has spaces",
        ));
    }

    let mut signed_headers: Vec<String> = Vec::new();
    for name in signed.split(';') {
        if signed_headers.len() == MAX_SIGNED_HEADERS {
            return Err(Bad("more than 64 signed headers"));
        }
        let ok = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
            });
        if !ok {
            return Err(Bad(
                "SignedHeaders must be lower-case header names separated by `;`",
            ));
        }
        if signed_headers.iter().any(|h| h == name) {
            return Err(Bad("a header is listed twice in SignedHeaders"));
        }
        signed_headers.push(name.to_string());
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Bad("Signature must be 64 hex digits"));
    }
    Ok(AuthHeader {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// An incoming request as the gateway received it.
#[derive(Clone, Copy)]
pub struct Inbound<'a> {
    pub method: &'a str,
    /// As received on the wire, still percent-encoded, e.g. `/bucket/my%20key`.
    pub raw_path: &'a str,
    /// As received, e.g. `list-type=2&prefix=a%2Fb`.
    pub raw_query: Option<&'a str>,
    /// Lower-case names, as received (a name may appear several times).
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, when the gateway has the body.
    pub body_sha256: Option<&'a str>,
}

/// Header values `Debug` never shows: the token travels in
/// `x-amz-security-token`.
fn shown_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("x-amz-security-token") {
                (k.as_str(), "[redacted]")
            } else {
                (k.as_str(), v.as_str())
            }
        })
        .collect()
}

impl std::fmt::Debug for Inbound<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("method", &self.method)
            .field("raw_path", &self.raw_path)
            .field("raw_query", &self.raw_query)
            .field("headers", &shown_headers(self.headers))
            .field("body_sha256", &self.body_sha256)
            .finish()
    }
}

/// The values of header `name` (case-insensitive), in order.
fn values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The single value of header `name`; an error when it appears twice.
fn single<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, AwsAuthError> {
    let mut it = values(headers, name);
    let first = it.next();
    if it.next().is_some() {
        return Err(AwsAuthError::DuplicateHeader(name));
    }
    Ok(first)
}

/// Refuses presigned requests (`X-Amz-Signature` in the query).
pub fn refuse_presigned(raw_query: Option<&str>) -> Result<(), AwsAuthError> {
    let presigned = raw_pairs(raw_query.unwrap_or_default())
        .any(|(k, _)| decode_lenient(k, false).eq_ignore_ascii_case("X-Amz-Signature"));
    if presigned {
        Err(AwsAuthError::Presigned)
    } else {
        Ok(())
    }
}

/// The request's `Authorization` header, parsed: refuses presigned requests,
/// a missing header and a repeated one.
pub fn authorization(req: &Inbound<'_>) -> Result<AuthHeader, AwsAuthError> {
    refuse_presigned(req.raw_query)?;
    let value = single(req.headers, "authorization")?.ok_or(AwsAuthError::MissingAuthorization)?;
    parse_authorization(value)
}

/// The Gatehouse token, from `X-Amz-Security-Token`.
pub fn security_token(headers: &[(String, String)]) -> Result<&str, AwsAuthError> {
    single(headers, "x-amz-security-token")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AwsAuthError::MissingToken)
}

/// `YYYYMMDDTHHMMSSZ` as Unix milliseconds.
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > month_days || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => unreachable!(),
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The pieces of a canonical request, each already in canonical form.
/// (`Debug` hides `x-amz-security-token`, often a signed header.)
pub struct CanonicalParts<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub query: &'a str,
    /// `(name, value)` in the order of `SignedHeaders`, values trimmed.
    pub headers: &'a [(String, String)],
    pub payload_sha256: &'a str,
}

impl std::fmt::Debug for CanonicalParts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanonicalParts")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("query", &self.query)
            .field("headers", &shown_headers(self.headers))
            .field("payload_sha256", &self.payload_sha256)
            .finish()
    }
}

/// The SigV4 canonical request.
pub fn canonical_request(p: &CanonicalParts<'_>) -> String {
    let mut out = format!("{}\n{}\n{}\n", p.method, p.uri, p.query);
    for (k, v) in p.headers {
        out.push_str(k);
        out.push(':');
        out.push_str(v);
        out.push('\n');
    }
    out.push('\n');
    let names: Vec<&str> = p.headers.iter().map(|(k, _)| k.as_str()).collect();
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(p.payload_sha256);
    out
}

/// The hex signature of `canonical_request` signed at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`) for the scope `date/region/service/aws4_request`.
pub fn signature(
    secret: &[u8],
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut k_secret = Zeroizing::new(Vec::with_capacity(secret.len() + 4));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let k_date = Zeroizing::new(hmac(&k_secret, date.as_bytes()));
    let k_region = Zeroizing::new(hmac(&*k_date, region.as_bytes()));
    let k_service = Zeroizing::new(hmac(&*k_region, service.as_bytes()));
    let k_signing = Zeroizing::new(hmac(&*k_service, b"aws4_request"));
    hex::encode(hmac(&*k_signing, to_sign.as_bytes()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The payload hash to sign: the `x-amz-content-sha256` header when present,
/// otherwise the hash of the body.
fn payload_hash<'a>(req: &Inbound<'a>) -> Result<&'a str, AwsAuthError> {
    let Some(declared) = single(req.headers, "x-amz-content-sha256")? else {
        return req.body_sha256.ok_or(AwsAuthError::MissingPayloadHash);
    };
    let declared = declared.trim();
    if declared == UNSIGNED_PAYLOAD || declared == STREAMING_UNSIGNED_PAYLOAD_TRAILER {
        return Ok(declared);
    }
    if declared.starts_with("STREAMING-") {
        return Err(AwsAuthError::ChunkSigned(
            declared
                .chars()
                .take(64)
                .filter(|c| !c.is_control())
                .collect(),
        ));
    }
    if !is_sha256_hex(declared) {
        return Err(AwsAuthError::BadPayloadHash);
    }
    if let Some(body) = req.body_sha256
        && !body.eq_ignore_ascii_case(declared)
    {
        return Err(AwsAuthError::PayloadHashMismatch);
    }
    Ok(declared)
}

/// Checks the request's SigV4 signature against `secret` (the caller's
/// Gatehouse token): the date within [`MAX_SKEW_MS`] of `now_ms` and equal
/// to the scope date, `host` signed, the payload hash acceptable, and the
/// signature (compared in constant time) that of this exact request.
pub fn verify(
    req: &Inbound<'_>,
    auth: &AuthHeader,
    secret: &[u8],
    now_ms: i64,
) -> Result<(), AwsAuthError> {
    refuse_presigned(req.raw_query)?;
    let amz_date = single(req.headers, "x-amz-date")?
        .map(str::trim)
        .ok_or(AwsAuthError::BadDate)?;
    let signed_at = parse_amz_date(amz_date).ok_or(AwsAuthError::BadDate)?;
    if signed_at.abs_diff(now_ms) > MAX_SKEW_MS.unsigned_abs() {
        return Err(AwsAuthError::Skewed {
            signed: amz_date.to_string(),
            now: sigv4::amz_date(now_ms),
        });
    }
    if amz_date[..8] != auth.date {
        return Err(AwsAuthError::ScopeDate {
            scope: auth.date.clone(),
            date: amz_date[..8].to_string(),
        });
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(AwsAuthError::HostNotSigned);
    }
    let payload = payload_hash(req)?;
    let uri = canonical_uri(&auth.service, req.raw_path);
    let query = encode_pairs(&query_pairs(req.raw_query)?);
    let mut headers = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let vals: Vec<String> = values(req.headers, name).map(trim_all).collect();
        if vals.is_empty() {
            return Err(AwsAuthError::MissingSignedHeader(name.clone()));
        }
        headers.push((name.clone(), vals.join(",")));
    }
    let canonical = canonical_request(&CanonicalParts {
        method: req.method,
        uri: &uri,
        query: &query,
        headers: &headers,
        payload_sha256: payload,
    });
    let expected = signature(
        secret,
        amz_date,
        &auth.date,
        &auth.region,
        &auth.service,
        &canonical,
    );
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AwsAuthError::SignatureMismatch)
    }
}

/// Headers never forwarded upstream: the caller's credentials and signature
/// (re-signing replaces them), `host`, hop-by-hop headers, `expect` and
/// `content-length` (the HTTP client sets it).
fn dropped(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization"
            | "x-amz-security-token"
            | "x-amz-date"
            | "x-amz-content-sha256"
            | "host"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
            | "content-length"
    ) || n.starts_with("proxy-")
}

/// The caller's headers that may be forwarded upstream (see [`resign`]).
pub fn forwardable(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| !dropped(k))
        .cloned()
        .collect()
}

/// Whether a forwarded header is signed for the upstream: `content-type`,
/// `content-md5` and every `x-amz-*` (S3 wants all of those signed) except
/// the ones [`sigv4::sign`] adds itself.
fn signed_upstream(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    (n == "content-type" || n == "content-md5" || n.starts_with("x-amz-"))
        && !matches!(
            n.as_str(),
            "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
        )
}

/// Signs a request for the upstream with the connection's key. `headers` are
/// the ones being forwarded ([`forwardable`]); the path and query are
/// canonicalised as in [`verify`] (S3: path as sent; others: normalised and
/// encoded twice). Returns the headers to add: `x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` (when the key has a session
/// token) and `authorization`. `upstream_host` is the `Host` header that will
/// be sent (`host[:port]`).
#[allow(clippy::too_many_arguments)]
pub fn resign(
    method: &str,
    upstream_host: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &[(String, String)],
    payload_sha256: &str,
    creds: &Credentials,
    region: &str,
    service: &str,
    now_ms: i64,
) -> Vec<(String, String)> {
    // One entry per name, several values joined with `,` as the upstream
    // will join them.
    let mut to_sign: Vec<(String, String)> = Vec::new();
    for (k, v) in headers.iter().filter(|(k, _)| signed_upstream(k)) {
        let k = k.to_ascii_lowercase();
        let v = trim_all(v);
        match to_sign.iter_mut().find(|(n, _)| *n == k) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&v);
            }
            None => to_sign.push((k, v)),
        }
    }
    let path = canonical_uri(service, raw_path);
    let query = query_pairs_lossy(raw_query);
    sigv4::sign(
        &sigv4::Request {
            method,
            host: upstream_host,
            path: &path,
            query: &query,
            headers: &to_sign,
            payload_sha256,
        },
        creds,
        region,
        service,
        now_ms,
    )
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
