//! Which headers cross the gateway. Callers hold only their Gatehouse
//! token, so anything they send that could be an upstream credential is
//! dropped before the gateway adds the connection's own; hop-by-hop
//! headers never cross; cookies the upstream sets stay with the gateway.

/// Hop-by-hop headers (RFC 9110 §7.6.1) and ones the HTTP client sets.
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
];

/// Headers that carry credentials by convention.
const CREDENTIAL: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "private-token",
    "x-gatehouse-token",
];

/// Whether a request header may be forwarded upstream. `credential_header`
/// is the connection's own credential header, if it has one.
pub fn forward_request_header(name: &str, credential_header: Option<&str>) -> bool {
    let n = name.to_ascii_lowercase();
    if HOP.contains(&n.as_str()) || CREDENTIAL.contains(&n.as_str()) {
        return false;
    }
    if credential_header.is_some_and(|h| h.eq_ignore_ascii_case(&n)) {
        return false;
    }
    // Anything named like a secret: x-service-token, x-client-secret,
    // x-db-password, x-signature-key, …
    let looks_secret = [
        "token",
        "secret",
        "password",
        "passwd",
        "api-key",
        "apikey",
        "api_key",
        "credential",
        "session",
    ]
    .iter()
    .any(|w| n.contains(w));
    !looks_secret && !n.starts_with("proxy-") && !n.starts_with("gatehouse-")
}

/// Whether a response header may be returned to the caller. The length
/// crosses (a body that is masked gets its own).
pub fn forward_response_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    (n == "content-length" || !HOP.contains(&n.as_str())) && n != "set-cookie" && n != "set-cookie2"
}

/// Query parameters that carry credentials by convention; they are
/// removed from the query before it goes upstream.
const CREDENTIAL_PARAMS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "api-key",
    "token",
    "key",
    "auth",
    "password",
    "secret",
    "client_secret",
    "sig",
    "signature",
];

/// The query with credential-like parameters removed, and the names of
/// the ones removed. `None` when nothing is left.
pub fn strip_query(raw: Option<&str>) -> (Option<String>, Vec<String>) {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return (None, Vec::new());
    };
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for pair in raw.split('&') {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let decoded = crate::path::percent_decode(&key.replace('+', " "))
            .unwrap_or_else(|| key.to_string())
            .to_ascii_lowercase();
        if CREDENTIAL_PARAMS.contains(&decoded.as_str()) {
            removed.push(decoded);
        } else if !pair.is_empty() {
            kept.push(pair);
        }
    }
    let q = (!kept.is_empty()).then(|| kept.join("&"));
    (q, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_do_not_cross() {
        for h in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Api-Key",
            "X-Service-Token",
            "x-client-secret",
            "X-Amz-Security-Token",
            "Gatehouse-Reason",
            "Host",
            "Transfer-Encoding",
            "X-Custom-Auth",
        ] {
            let custom = Some("x-custom-auth");
            assert!(!forward_request_header(h, custom), "{h}");
        }
        for h in [
            "Accept",
            "Content-Type",
            "X-Request-Id",
            "If-None-Match",
            "User-Agent",
        ] {
            assert!(forward_request_header(h, None), "{h}");
        }
        assert!(!forward_response_header("Set-Cookie"));
        assert!(forward_response_header("Content-Type"));
        assert!(forward_response_header("Content-Length"));
        assert!(!forward_response_header("Transfer-Encoding"));
    }

    #[test]
    fn credential_parameters_are_removed() {
        let (q, removed) = strip_query(Some("page=2&access_token=abc&Api_Key=x&q=a+b"));
        assert_eq!(q.as_deref(), Some("page=2&q=a+b"));
        assert_eq!(removed, vec!["access_token", "api_key"]);
        assert_eq!(
            strip_query(Some("token=1")),
            (None, vec!["token".to_string()])
        );
        assert_eq!(strip_query(None), (None, Vec::new()));
        let (q, removed) = strip_query(Some("%74oken=1&a=b"));
        assert_eq!((q.as_deref(), removed.len()), (Some("a=b"), 1));
    }
}
