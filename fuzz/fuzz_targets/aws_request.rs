//! `gatehouse_http::aws`: the `Authorization` parser, the action classifier,
//! SigV4 verification and re-signing, and error bodies, on requests made of
//! the input.
//!
//! Input (at most 16 KiB), split at NUL bytes: an `Authorization` value, a
//! path, a query string, a body, then headers (`name:value`, one a piece).
//! The last byte also picks the method and the service. Nothing may panic;
//! a parsed header is within its limits; an action is a plain name; errors
//! never show the secret; and the request re-signed with the fixed secret
//! (`resign`) always verifies with it, as an upstream would check it.
#![no_main]
use gatehouse_core::secret::Secret;
use gatehouse_core::sigv4::{Credentials, sha256_hex};
use gatehouse_http::aws::{self, AwsAuthError, Inbound};
use libfuzzer_sys::fuzz_target;

/// 2026-11-29T10:20:30Z, the date of the seeds.
const NOW: i64 = 1_795_947_630_000;
const AMZ_DATE: &str = "20261129T102030Z";
const SECRET: &str = "gh_fuzz_secret_0123456789";
const METHODS: [&str; 6] = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"];
const SERVICES: [&str; 6] = ["s3", "ec2", "dynamodb", "sts", "lambda", "monitoring"];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

fn no_secret(e: &AwsAuthError) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(SECRET), "{shown}");
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 16 * 1024 {
        return;
    }
    let sel = usize::from(data.last().copied().unwrap_or(0));
    let method = METHODS[sel % METHODS.len()];
    let service = SERVICES[(sel / METHODS.len()) % SERVICES.len()];

    let mut parts = data.split(|b| *b == 0);
    let auth_value = text(parts.next().unwrap_or_default());
    let path = text(parts.next().unwrap_or_default());
    let query = parts.next().map(text);
    let body = parts.next().unwrap_or_default();
    let mut headers: Vec<(String, String)> = parts
        .map(|p| {
            let p = text(p);
            match p.split_once(':') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
                None => (p.trim().to_ascii_lowercase(), String::new()),
            }
        })
        .collect();
    let input_headers = headers.clone();
    if !headers.iter().any(|(k, _)| k == "x-amz-date") {
        headers.push(("x-amz-date".into(), AMZ_DATE.into()));
    }
    if !headers.iter().any(|(k, _)| k == "host") {
        headers.push(("host".into(), "127.0.0.1:7800".into()));
    }
    headers.push(("authorization".into(), auth_value.clone()));
    let body_sha256 = sha256_hex(body);

    // The parser on its own.
    match aws::parse_authorization(&auth_value) {
        Ok(a) => {
            assert!(auth_value.len() <= aws::MAX_AUTHORIZATION);
            assert!(!a.signed_headers.is_empty());
            assert!(a.signed_headers.len() <= aws::MAX_SIGNED_HEADERS);
            assert!(a.signature.len() == 64);
            assert!(
                a.signature
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert!(a.date.len() == 8 && a.date.bytes().all(|b| b.is_ascii_digit()));
            assert!(!a.access_key.is_empty() && !a.region.is_empty() && !a.service.is_empty());
        }
        Err(e) => {
            no_secret(&e);
            assert!(!e.code().is_empty());
        }
    }

    // The whole check, as the gateway runs it.
    let req = Inbound {
        method,
        raw_path: &path,
        raw_query: query.as_deref(),
        headers: &headers,
        body_sha256: Some(&body_sha256),
    };
    let checked = aws::authorization(&req)
        .and_then(|a| aws::verify(&req, &a, SECRET.as_bytes(), NOW).map(|()| a));
    if let Err(e) = &checked {
        no_secret(e);
        for svc in ["s3", "sts", "ec2", "dynamodb", "lambda"] {
            let _ = aws::error_body(svc, &headers, e.code(), &e.to_string(), &path);
        }
    }
    // A forged signature: HMAC-SHA256 under the secret cannot be guessed.
    assert!(checked.is_err());

    // Actions.
    for svc in [service, "s3", "ec2", "dynamodb", "monitoring"] {
        for m in [method, "GET", "PUT", "POST"] {
            if let Some(a) = aws::action(svc, m, &path, query.as_deref(), &headers, Some(body)) {
                assert!(
                    !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "{a}"
                );
                let _ = aws::is_read_action(&a);
                assert_eq!(aws::full_action(svc, &a), format!("{svc}:{a}"));
            }
        }
    }

    // Re-signed with the secret, the request verifies with it.
    let creds = Credentials {
        access_key: "fuzz".into(),
        secret_key: Secret::new(SECRET),
        session_token: None,
    };
    let mut sent: Vec<(String, String)> = aws::forwardable(&input_headers)
        .into_iter()
        .filter(|(k, _)| is_token(k))
        .collect();
    let added = aws::resign(
        method,
        "upstream.example:443",
        &path,
        query.as_deref(),
        &sent,
        &body_sha256,
        &creds,
        "us-east-1",
        service,
        NOW,
    );
    sent.extend(added);
    sent.push(("host".into(), "upstream.example:443".into()));
    let req = Inbound {
        method,
        raw_path: &path,
        raw_query: query.as_deref(),
        headers: &sent,
        body_sha256: Some(&body_sha256),
    };
    let query_ok = aws::canonical_query(query.as_deref()).is_ok();
    let presigned = aws::refuse_presigned(query.as_deref()).is_err();
    match aws::authorization(&req) {
        Ok(a) => {
            let r = aws::verify(&req, &a, SECRET.as_bytes(), NOW);
            if query_ok && !presigned {
                assert_eq!(r, Ok(()), "{method} {path:?} {query:?} {sent:?}");
            } else {
                assert!(r.is_err());
            }
        }
        // Only the limits: over 64 signed headers or an 8 KiB header.
        Err(e) => assert!(
            presigned
                || matches!(
                    e,
                    AwsAuthError::AuthorizationTooLarge
                        | AwsAuthError::MalformedAuthorization("more than 64 signed headers")
                ),
            "{e:?}"
        ),
    }
});
