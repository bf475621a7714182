//! Request paths as rules see them and as the upstream gets them. A path is
//! percent-decoded once, segment by segment, and normalised (`.` and `..`
//! resolved, empty segments dropped); rules match that decoded form and the
//! upstream receives the same path re-encoded, so what was decided is what
//! runs. Encodings that would let the two differ are refused: an encoded
//! `/` or `\` inside a segment, a NUL, and `..` above the root.

/// Longest path accepted, in bytes (as received).
pub const MAX_PATH: usize = 8 * 1024;

/// A normalised request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded, e.g. `/customers/jane doe`.
    pub decoded: String,
    /// Re-encoded for the upstream, e.g. `/customers/jane%20doe`.
    pub encoded: String,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s`; `None` on a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes one path segment: unreserved characters, sub-delims,
/// `:` and `@` stay as they are.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Normalises a raw request path (as received, still encoded).
pub fn normalize(raw: &str) -> Result<NormalPath, String> {
    if raw.len() > MAX_PATH {
        return Err(format!(
            "the path is {} bytes, over the {MAX_PATH}-byte limit",
            raw.len()
        ));
    }
    let mut segments: Vec<String> = Vec::new();
    for part in raw.split('/') {
        let seg = percent_decode(part).ok_or_else(|| {
            format!("the path segment {part:?} has a malformed %-escape or is not UTF-8")
        })?;
        if seg.contains(['/', '\\', '\0']) {
            return Err(format!(
                "the path segment {part:?} encodes '/', '\\' or NUL, which Gatehouse does not pass on: the upstream could read it as a different path than the one the policy checked"
            ));
        }
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err("the path climbs above the root with '..'".into());
                }
            }
            _ => segments.push(seg),
        }
    }
    let trailing = raw.len() > 1 && raw.ends_with('/') && !segments.is_empty();
    let mut decoded = String::with_capacity(raw.len() + 1);
    let mut encoded = String::with_capacity(raw.len() + 1);
    for s in &segments {
        decoded.push('/');
        decoded.push_str(s);
        encoded.push('/');
        encoded.push_str(&encode_segment(s));
    }
    if trailing || segments.is_empty() {
        decoded.push('/');
        encoded.push('/');
    }
    Ok(NormalPath { decoded, encoded })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> (String, String) {
        let p = normalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (p.decoded, p.encoded)
    }

    #[test]
    fn paths_are_decoded_and_normalised() {
        assert_eq!(
            n("/customers/1"),
            ("/customers/1".into(), "/customers/1".into())
        );
        assert_eq!(n("/"), ("/".into(), "/".into()));
        assert_eq!(n(""), ("/".into(), "/".into()));
        assert_eq!(
            n("//customers//1/"),
            ("/customers/1/".into(), "/customers/1/".into())
        );
        assert_eq!(
            n("/a/./b/../customers/1"),
            ("/a/customers/1".into(), "/a/customers/1".into())
        );
        assert_eq!(
            n("/%63ustomers/1"),
            ("/customers/1".into(), "/customers/1".into())
        );
        assert_eq!(
            n("/a/%2e%2E/customers"),
            ("/customers".into(), "/customers".into())
        );
        assert_eq!(
            n("/customers/jane%20doe"),
            ("/customers/jane doe".into(), "/customers/jane%20doe".into())
        );
        assert_eq!(n("/caf%C3%A9"), ("/café".into(), "/caf%C3%A9".into()));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "/customers%2F1",
            "/customers%5C1",
            "/a%00b",
            "/..",
            "/a/../../b",
            "/%zz",
            "/%C3",
            "/%",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        assert!(normalize(&"/a".repeat(MAX_PATH)).is_err());
    }
}
