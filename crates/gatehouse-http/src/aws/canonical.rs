//! The canonical forms SigV4 signs: the URI path, the query string and
//! header values, built from the request as it arrived on the wire.

use gatehouse_core::sigv4::uri_encode;

use super::auth::AwsAuthError;

/// Whether `service` signs paths the S3 way (as sent, not normalised, not
/// encoded again): S3 and its relatives, which botocore signs with its S3
/// signers.
pub(crate) fn is_s3_family(service: &str) -> bool {
    service == "s3" || service == "s3express" || service.starts_with("s3-")
}

/// The canonical URI path of a request whose path arrived as `raw_path`
/// (still percent-encoded).
///
/// - S3 (and `s3-*`, `s3express`): the path exactly as received; S3 keys may
///   contain `//` and `.` segments, and the path is already encoded once.
/// - Every other service: dot segments removed and runs of `/` collapsed
///   (RFC 3986 section 5.2.4, as botocore's `normalize_url_path` does), then
///   percent-encoded once more, so `%3A` becomes `%253A` (SigV4's double
///   encoding).
///
/// An empty path is `/`.
pub fn canonical_uri(service: &str, raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".into();
    }
    if is_s3_family(service) {
        return raw_path.to_string();
    }
    uri_encode(&remove_dot_segments(raw_path), true)
}

/// RFC 3986 "remove dot segments", with empty segments dropped as AWS wants
/// (the same result as botocore's `remove_dot_segments`).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    let joined = format!("{first}{}{last}", out.join("/"));
    if joined.is_empty() {
        "/".into()
    } else {
        joined
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s`. `None` when a `%` is not followed by two hex digits.
/// `+` stays `+` unless `plus_as_space` (form bodies).
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Percent-decodes, keeping malformed escapes as they are and replacing
/// invalid UTF-8. For classifying requests, never for signatures.
pub(crate) fn decode_lenient(s: &str, plus_as_space: bool) -> String {
    match percent_decode(s, plus_as_space) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => s.to_string(),
    }
}

/// The `&`-separated pairs of a query string or form body, raw (still
/// encoded). A pair without `=` has an empty value; empty pieces (`a&&b`)
/// are skipped.
pub(crate) fn raw_pairs(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Query pairs decoded for signing. Errors on a malformed escape or text that
/// is not UTF-8 once decoded (SigV4 encodes UTF-8 text).
pub fn query_pairs(raw_query: Option<&str>) -> Result<Vec<(String, String)>, AwsAuthError> {
    let decode = |s: &str| -> Result<String, AwsAuthError> {
        let bytes = percent_decode(s, false).ok_or(AwsAuthError::BadQuery(
            "a `%` is not followed by two hex digits",
        ))?;
        String::from_utf8(bytes)
            .map_err(|_| AwsAuthError::BadQuery("a parameter is not UTF-8 once percent-decoded"))
    };
    raw_pairs(raw_query.unwrap_or_default())
        .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
        .collect()
}

/// Like [`query_pairs`], keeping a piece that does not decode as it is
/// (re-signing never fails; the upstream then refuses such a request).
pub(crate) fn query_pairs_lossy(raw_query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| match percent_decode(s, false).map(String::from_utf8) {
        Some(Ok(t)) => t,
        _ => s.to_string(),
    };
    raw_pairs(raw_query.unwrap_or_default())
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The canonical query string: each pair decoded, encoded again the SigV4 way
/// (everything but `A-Za-z0-9-_.~` as `%XX`), sorted by key then value, a key
/// without `=` having an empty value.
pub fn canonical_query(raw_query: Option<&str>) -> Result<String, AwsAuthError> {
    Ok(encode_pairs(&query_pairs(raw_query)?))
}

pub(crate) fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value as SigV4 signs it: trimmed, inner runs of whitespace
/// collapsed to one space.
pub(crate) fn trim_all(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_paths_are_kept_as_received() {
        assert_eq!(canonical_uri("s3", "/b/x//./y%20z"), "/b/x//./y%20z");
        assert_eq!(canonical_uri("s3", ""), "/");
        assert_eq!(canonical_uri("s3-object-lambda", "/a/../b"), "/a/../b");
    }

    #[test]
    fn other_paths_are_normalised_and_encoded_twice() {
        assert_eq!(
            canonical_uri("lambda", "/2015-03-31/functions/my%3Afn/invocations"),
            "/2015-03-31/functions/my%253Afn/invocations"
        );
        assert_eq!(canonical_uri("ec2", "/"), "/");
        assert_eq!(canonical_uri("ec2", ""), "/");
        assert_eq!(canonical_uri("x", "//a/./b/../c/"), "/a/c/");
        assert_eq!(canonical_uri("x", "/a/.."), "/");
        assert_eq!(canonical_uri("x", "/.."), "/");
        assert_eq!(canonical_uri("x", "/a~b c"), "/a~b%20c");
    }

    #[test]
    fn queries_are_decoded_encoded_and_sorted() {
        assert_eq!(
            canonical_query(Some("list-type=2&prefix=a%2Fb&delimiter=/&acl")).unwrap(),
            "acl=&delimiter=%2F&list-type=2&prefix=a%2Fb"
        );
        assert_eq!(canonical_query(Some("b=2&a=z&a=y")).unwrap(), "a=y&a=z&b=2");
        assert_eq!(
            canonical_query(Some("k=%e2%82%ac*")).unwrap(),
            "k=%E2%82%AC%2A"
        );
        assert_eq!(canonical_query(Some("k=a+b")).unwrap(), "k=a%2Bb");
        assert_eq!(canonical_query(None).unwrap(), "");
        assert_eq!(canonical_query(Some("")).unwrap(), "");
        assert_eq!(canonical_query(Some("a=1&&b")).unwrap(), "a=1&b=");
        assert!(canonical_query(Some("a=%zz")).is_err());
        assert!(canonical_query(Some("a=%4")).is_err());
        assert!(canonical_query(Some("a=%ff")).is_err());
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", false).unwrap(), b"a b+c");
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), b"a b c");
        assert_eq!(decode_lenient("a%zz%41", false), "a%zz%41");
        assert_eq!(decode_lenient("%C3%A9", false), "é");
        assert_eq!(trim_all("  a   b\t c "), "a b c");
    }
}
