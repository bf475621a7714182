//! Tests of `auth`: requests signed by botocore 1.43.11 (real boto3 clients
//! against `http://127.0.0.1:7800`, clock fixed at 2026-11-29T10:20:30Z,
//! access key `shop-s3`, secret key and session token both [`TOKEN`]),
//! captured as they went on the wire.

use gatehouse_core::secret::Secret;
use gatehouse_core::sigv4::{Credentials, sha256_hex};

use super::*;

const TOKEN: &str = "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo";
/// 2026-11-29T10:20:30Z.
const NOW: i64 = 1_795_947_630_000;
const MIN: i64 = 60_000;

struct Fx {
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    body_sha256: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

impl Fx {
    fn headers(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// Checks `fx` with its headers changed by `edit`, the body hash given.
fn check_with(
    fx: &Fx,
    edit: impl FnOnce(&mut Vec<(String, String)>),
    body: Option<&str>,
    secret: &str,
    now: i64,
) -> Result<(), AwsAuthError> {
    let mut headers = fx.headers();
    edit(&mut headers);
    let req = Inbound {
        method: fx.method,
        raw_path: fx.path,
        raw_query: fx.query,
        headers: &headers,
        body_sha256: body,
    };
    let auth = authorization(&req)?;
    assert_eq!(security_token(&headers)?, TOKEN);
    verify(&req, &auth, secret.as_bytes(), now)
}

fn check(fx: &Fx) -> Result<(), AwsAuthError> {
    check_with(fx, |_| {}, Some(fx.body_sha256), TOKEN, NOW)
}

fn set(headers: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in headers.iter_mut() {
        if k == name {
            *v = value.to_string();
        }
    }
}

#[test]
fn accepts_requests_signed_by_botocore() {
    for (name, fx) in [
        ("s3 put, key with space, + and é", &S3_PUT),
        ("s3 list-objects-v2 with prefix and delimiter", &S3_LIST),
        ("s3 UNSIGNED-PAYLOAD", &S3_UNSIGNED),
        ("s3 key with //, ./, ()!*~'", &S3_WEIRD),
        ("s3 delete-objects (?delete)", &S3_DELETE_OBJECTS),
        ("s3 metadata with inner spaces", &S3_SPACES),
        ("sts get-caller-identity (form body)", &STS),
        ("ec2 terminate-instances (form body)", &EC2),
        ("dynamodb put-item (x-amz-target)", &DDB),
        ("sqs list-queues (json, query mode)", &SQS),
        ("lambda invoke, path encoded twice", &LAMBDA),
    ] {
        assert_eq!(check(fx), Ok(()), "{name}");
        // Without the body hash: S3 requests carry x-amz-content-sha256;
        // the others cannot be checked.
        let without = check_with(fx, |_| {}, None, TOKEN, NOW);
        if fx.headers.iter().any(|(k, _)| *k == "x-amz-content-sha256") {
            assert_eq!(without, Ok(()), "{name}");
        } else {
            assert_eq!(without, Err(AwsAuthError::MissingPayloadHash), "{name}");
        }
        // 14 minutes either way is fine.
        assert_eq!(
            check_with(fx, |_| {}, Some(fx.body_sha256), TOKEN, NOW + 14 * MIN),
            Ok(())
        );
        assert_eq!(
            check_with(fx, |_| {}, Some(fx.body_sha256), TOKEN, NOW - 14 * MIN),
            Ok(())
        );
    }
}

#[test]
fn unsigned_payload_accepts_any_body() {
    assert_eq!(
        check_with(
            &S3_UNSIGNED,
            |_| {},
            Some(&sha256_hex(b"other")),
            TOKEN,
            NOW
        ),
        Ok(())
    );
}

#[test]
fn rejects_a_wrong_secret() {
    for fx in [&S3_PUT, &STS, &DDB, &LAMBDA] {
        let r = check_with(fx, |_| {}, Some(fx.body_sha256), "gh_other", NOW);
        assert_eq!(r, Err(AwsAuthError::SignatureMismatch));
    }
}

#[test]
fn rejects_changed_requests() {
    let mismatch = Err(AwsAuthError::SignatureMismatch);
    // A query value.
    let fx = Fx {
        query: Some("list-type=2&prefix=a%2Fc&delimiter=%2F&encoding-type=url"),
        ..S3_LIST
    };
    assert_eq!(check(&fx), mismatch);
    // A parameter added.
    let fx = Fx {
        query: Some("list-type=2&prefix=a%2Fb&delimiter=%2F&encoding-type=url&max-keys=1"),
        ..S3_LIST
    };
    assert_eq!(check(&fx), mismatch);
    // The path (another key), the method.
    let fx = Fx {
        path: "/shop/dir/my%20key%2Bplus%20%C3%A9.tx",
        ..S3_PUT
    };
    assert_eq!(check(&fx), mismatch);
    let fx = Fx {
        method: "POST",
        ..S3_PUT
    };
    assert_eq!(check(&fx), mismatch);
    // A double-encoded path decoded once is another path.
    let fx = Fx {
        path: "/2015-03-31/functions/my:fn/invocations",
        ..LAMBDA
    };
    assert_eq!(check(&fx), mismatch);
    // A signed header changed, or sent twice.
    let r = check_with(
        &S3_PUT,
        |h| set(h, "x-amz-meta-owner", "bob"),
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, mismatch);
    let r = check_with(
        &S3_PUT,
        |h| h.push(("x-amz-meta-owner".into(), "bob".into())),
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, mismatch);
    let r = check_with(
        &DDB,
        |h| set(h, "x-amz-target", "DynamoDB_20120810.DeleteItem"),
        Some(DDB.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, mismatch);
    let r = check_with(
        &STS,
        |h| set(h, "host", "127.0.0.1:7801"),
        Some(STS.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, mismatch);
    // A signed header removed.
    let r = check_with(
        &S3_PUT,
        |h| h.retain(|(k, _)| k != "x-amz-meta-owner"),
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(
        r,
        Err(AwsAuthError::MissingSignedHeader("x-amz-meta-owner".into()))
    );
    // An unsigned header may change.
    let r = check_with(
        &S3_PUT,
        |h| set(h, "user-agent", "curl"),
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, Ok(()));
    // Whitespace inside a signed value is collapsed, so more of it is fine.
    let r = check_with(
        &S3_SPACES,
        |h| set(h, "x-amz-meta-note", " a b      c "),
        Some(S3_SPACES.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, Ok(()));
}

#[test]
fn rejects_a_body_that_does_not_match() {
    let other = sha256_hex(b"hello world!");
    // Declared in x-amz-content-sha256.
    let r = check_with(&S3_PUT, |_| {}, Some(&other), TOKEN, NOW);
    assert_eq!(r, Err(AwsAuthError::PayloadHashMismatch));
    assert_eq!(r.unwrap_err().code(), "XAmzContentSHA256Mismatch");
    // Hash in the header changed to match another body.
    let r = check_with(
        &S3_PUT,
        |h| set(h, "x-amz-content-sha256", &other),
        Some(&other),
        TOKEN,
        NOW,
    );
    assert_eq!(r, Err(AwsAuthError::SignatureMismatch));
    // Not declared: the body is part of the signature.
    for fx in [&STS, &DDB, &LAMBDA] {
        let r = check_with(fx, |_| {}, Some(&other), TOKEN, NOW);
        assert_eq!(r, Err(AwsAuthError::SignatureMismatch));
    }
    let r = check_with(
        &S3_PUT,
        |h| set(h, "x-amz-content-sha256", "abc"),
        None,
        TOKEN,
        NOW,
    );
    assert_eq!(r, Err(AwsAuthError::BadPayloadHash));
}

#[test]
fn rejects_a_skewed_clock() {
    for now in [NOW + 16 * MIN, NOW - 16 * MIN, NOW + 15 * MIN + 1000] {
        let r = check_with(&S3_PUT, |_| {}, Some(S3_PUT.body_sha256), TOKEN, now);
        let Err(e @ AwsAuthError::Skewed { .. }) = r else {
            panic!("{r:?}")
        };
        assert_eq!(e.code(), "RequestTimeTooSkewed");
        assert!(e.to_string().contains("20261129T102030Z"), "{e}");
    }
    assert_eq!(
        check_with(
            &S3_PUT,
            |_| {},
            Some(S3_PUT.body_sha256),
            TOKEN,
            NOW + 15 * MIN
        ),
        Ok(())
    );
}

#[test]
fn rejects_a_bad_or_missing_date() {
    for bad in [
        "",
        "20261129T102030",
        "2026-11-29T10:20:30Z",
        "20261131T102030Z",
        "20261129T246030Z",
        "2026112９T102030Z",
    ] {
        let r = check_with(
            &S3_PUT,
            |h| set(h, "x-amz-date", bad),
            Some(S3_PUT.body_sha256),
            TOKEN,
            NOW,
        );
        assert_eq!(r, Err(AwsAuthError::BadDate), "{bad}");
    }
    let r = check_with(
        &S3_PUT,
        |h| h.retain(|(k, _)| k != "x-amz-date"),
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, Err(AwsAuthError::BadDate));
    let r = check_with(
        &S3_PUT,
        |h| h.push(("x-amz-date".into(), "20261129T102030Z".into())),
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, Err(AwsAuthError::DuplicateHeader("x-amz-date")));
}

#[test]
fn rejects_a_scope_date_other_than_x_amz_date() {
    let r = check_with(
        &S3_PUT,
        |h| {
            let a = S3_PUT
                .headers
                .iter()
                .find(|(k, _)| *k == "authorization")
                .unwrap()
                .1;
            set(h, "authorization", &a.replace("/20261129/", "/20261130/"));
        },
        Some(S3_PUT.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(
        r,
        Err(AwsAuthError::ScopeDate {
            scope: "20261130".into(),
            date: "20261129".into()
        })
    );
}

#[test]
fn rejects_host_unsigned() {
    let r = check_with(
        &S3_LIST,
        |h| {
            let a = S3_LIST
                .headers
                .iter()
                .find(|(k, _)| *k == "authorization")
                .unwrap()
                .1;
            set(
                h,
                "authorization",
                &a.replace("SignedHeaders=host;", "SignedHeaders="),
            );
        },
        Some(S3_LIST.body_sha256),
        TOKEN,
        NOW,
    );
    assert_eq!(r, Err(AwsAuthError::HostNotSigned));
}

#[test]
fn rejects_chunk_signed_payloads() {
    for v in [
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    ] {
        let r = check_with(
            &S3_PUT,
            |h| set(h, "x-amz-content-sha256", v),
            None,
            TOKEN,
            NOW,
        );
        let Err(e) = r else { panic!() };
        assert_eq!(e, AwsAuthError::ChunkSigned(v.into()));
        assert_eq!(e.code(), "InvalidRequest");
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(
            e.to_string().contains("chunkedEncodingEnabled(false)"),
            "{e}"
        );
    }
}

#[test]
fn rejects_presigned_urls() {
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=shop-s3%2F20261129%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261129T102030Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=aa";
    let fx = Fx {
        query: Some(q),
        ..S3_LIST
    };
    assert_eq!(check(&fx), Err(AwsAuthError::Presigned));
    // Even without an Authorization header (as presigned URLs come).
    let headers = vec![("host".to_string(), "127.0.0.1:7800".to_string())];
    let req = Inbound {
        method: "GET",
        raw_path: "/shop/a",
        raw_query: Some(q),
        headers: &headers,
        body_sha256: None,
    };
    let e = authorization(&req).unwrap_err();
    assert_eq!(e, AwsAuthError::Presigned);
    assert!(e.to_string().contains("presigned URLs"), "{e}");
    // verify refuses it on its own too.
    let auth = parse_authorization(S3_LIST.headers[5].1).unwrap();
    assert_eq!(
        verify(&req, &auth, TOKEN.as_bytes(), NOW),
        Err(AwsAuthError::Presigned)
    );
    let fx = Fx {
        query: Some("x-amz-signature=1"),
        ..S3_LIST
    };
    assert_eq!(check(&fx), Err(AwsAuthError::Presigned));
}

#[test]
fn missing_credentials_are_named() {
    let headers: Vec<(String, String)> = STS
        .headers
        .iter()
        .filter(|(k, _)| !matches!(*k, "authorization" | "x-amz-security-token"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = Inbound {
        method: "POST",
        raw_path: "/",
        raw_query: None,
        headers: &headers,
        body_sha256: None,
    };
    let e = authorization(&req).unwrap_err();
    assert_eq!((e.code(), e.status()), ("MissingAuthenticationToken", 403));
    assert!(e.to_string().contains("AWS_SESSION_TOKEN"), "{e}");
    let e = security_token(&headers).unwrap_err();
    assert_eq!(e, AwsAuthError::MissingToken);
    assert!(e.to_string().contains("AWS_SESSION_TOKEN"), "{e}");
}

#[test]
fn parses_authorization_headers() {
    let a = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
    )
    .unwrap();
    assert_eq!(
        a,
        AuthHeader {
            access_key: "AKID".into(),
            date: "20261129".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
            signed_headers: vec![
                "host".into(),
                "x-amz-content-sha256".into(),
                "x-amz-date".into()
            ],
            signature: "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789".into(),
        }
    );
    // No spaces after commas, a connection name with `/`.
    let a = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=team/shop/20261129/eu-west-1/sts/aws4_request,SignedHeaders=host,Signature=0000000000000000000000000000000000000000000000000000000000000000",
    )
    .unwrap();
    assert_eq!(
        (a.access_key.as_str(), a.service.as_str()),
        ("team/shop", "sts")
    );

    let sig = "0".repeat(64);
    let ok = |c: &str, s: &str| {
        format!("AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={s}, Signature={sig}")
    };
    let malformed = [
        "".to_string(),
        "AWS4-HMAC-SHA256".to_string(),
        "AWS4-HMAC-SHA256 Credential=A/20261129/us-east-1/s3/aws4_request, SignedHeaders=host".to_string(),
        ok("A/20261129/us-east-1/s3", "host"),
        ok("A/2026112/us-east-1/s3/aws4_request", "host"),
        ok("A/20261129/us-east-1/s3/aws5_request", "host"),
        ok("/20261129/us-east-1/s3/aws4_request", "host"),
        ok("A/20261129//s3/aws4_request", "host"),
        ok("A/20261129/us east/s3/aws4_request", "host"),
        ok("A/20261129/us-east-1/s3/aws4_request", "Host"),
        ok("A/20261129/us-east-1/s3/aws4_request", "host;;x"),
        ok("A/20261129/us-east-1/s3/aws4_request", "host;host"),
        ok("A/20261129/us-east-1/s3/aws4_request", ""),
        format!("{}, Signature={sig}", ok("A/20261129/us-east-1/s3/aws4_request", "host")),
        format!("{}, Extra=1", ok("A/20261129/us-east-1/s3/aws4_request", "host")),
        "AWS4-HMAC-SHA256 Credential=A/20261129/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc".into(),
        format!("AWS4-HMAC-SHA256 Credential=A/20261129/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={}", "g".repeat(64)),
    ];
    for m in malformed {
        let r = parse_authorization(&m);
        assert!(
            matches!(
                r,
                Err(AwsAuthError::MalformedAuthorization(_))
                    | Err(AwsAuthError::UnsupportedAlgorithm { .. })
            ),
            "{m}: {r:?}"
        );
        assert!(r.unwrap_err().to_string().len() > 20);
    }
    for (value, hint) in [
        ("AWS AKID:c2lnbmF0dXJl", "s3v4"),
        ("AWS4-ECDSA-P256-SHA256 Credential=x", "SigV4a"),
        ("Bearer gh_x", ""),
        // A token pasted as the whole header is not repeated back.
        ("gh_x", "not an AWS signature"),
    ] {
        let e = parse_authorization(value).unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
        assert!(e.to_string().contains(hint), "{e}");
        assert!(!format!("{e} {e:?}").contains("gh_x"), "{e}");
    }
    // Limits.
    let many: Vec<String> = (0..64).map(|i| format!("x-h{i}")).collect();
    assert!(
        parse_authorization(&ok("A/20261129/us-east-1/s3/aws4_request", &many.join(";"))).is_ok()
    );
    let too_many: Vec<String> = (0..65).map(|i| format!("x-h{i}")).collect();
    assert_eq!(
        parse_authorization(&ok(
            "A/20261129/us-east-1/s3/aws4_request",
            &too_many.join(";")
        )),
        Err(AwsAuthError::MalformedAuthorization(
            "more than 64 signed headers"
        ))
    );
    let big = ok(
        &format!("{}/20261129/us-east-1/s3/aws4_request", "a".repeat(8200)),
        "host",
    );
    assert_eq!(
        parse_authorization(&big),
        Err(AwsAuthError::AuthorizationTooLarge)
    );
}

#[test]
fn errors_never_show_the_secret() {
    // The token is in the request (as X-Amz-Security-Token) but never in an
    // error, whatever fails.
    let cases = [
        check_with(&S3_PUT, |_| {}, Some(S3_PUT.body_sha256), "gh_other", NOW),
        check_with(
            &S3_PUT,
            |_| {},
            Some(S3_PUT.body_sha256),
            TOKEN,
            NOW + 20 * MIN,
        ),
        check_with(
            &S3_PUT,
            |h| set(h, "x-amz-content-sha256", TOKEN),
            None,
            TOKEN,
            NOW,
        ),
        check_with(&S3_PUT, |h| set(h, "x-amz-date", TOKEN), None, TOKEN, NOW),
    ];
    for r in cases {
        let e = r.unwrap_err();
        assert!(!format!("{e} {e:?}").contains(TOKEN), "{e:?}");
    }
    // Nor in the Debug output of the request.
    let headers = S3_PUT.headers();
    let req = Inbound {
        method: "PUT",
        raw_path: S3_PUT.path,
        raw_query: None,
        headers: &headers,
        body_sha256: None,
    };
    let shown = format!("{req:?}");
    assert!(
        !shown.contains(TOKEN) && shown.contains("[redacted]"),
        "{shown}"
    );
    let parts = CanonicalParts {
        method: "PUT",
        uri: "/",
        query: "",
        headers: &headers,
        payload_sha256: "UNSIGNED-PAYLOAD",
    };
    assert!(!format!("{parts:?}").contains(TOKEN));
}

fn upstream_creds() -> Credentials {
    Credentials {
        access_key: "AKIAUPSTREAMEXAMPLE".into(),
        secret_key: Secret::new("upstream/Secret+Key0123456789abcdefEXAMPLE"),
        session_token: Some(Secret::new("upstream-session-token")),
    }
}

/// Re-signs `fx` for an upstream, then checks the result as the upstream
/// would: with the upstream's secret key.
fn resign_and_verify(fx: &Fx, service: &str, host: &str) {
    let inbound = fx.headers();
    let mut sent = forwardable(&inbound);
    for (k, _) in &sent {
        assert!(
            !matches!(
                k.as_str(),
                "authorization"
                    | "x-amz-security-token"
                    | "x-amz-date"
                    | "host"
                    | "expect"
                    | "content-length"
                    | "x-amz-content-sha256"
            ),
            "{k} forwarded"
        );
    }
    let payload = fx
        .headers
        .iter()
        .find(|(k, _)| *k == "x-amz-content-sha256")
        .map_or(fx.body_sha256, |(_, v)| v);
    let added = resign(
        fx.method,
        host,
        fx.path,
        fx.query,
        &sent,
        payload,
        &upstream_creds(),
        "eu-west-1",
        service,
        NOW + 3000,
    );
    sent.extend(added);
    sent.push(("host".into(), host.into()));
    let req = Inbound {
        method: fx.method,
        raw_path: fx.path,
        raw_query: fx.query,
        headers: &sent,
        body_sha256: Some(fx.body_sha256),
    };
    let auth = authorization(&req).unwrap();
    assert_eq!(auth.access_key, "AKIAUPSTREAMEXAMPLE");
    assert_eq!(
        (auth.region.as_str(), auth.service.as_str()),
        ("eu-west-1", service)
    );
    assert!(
        !sent.iter().any(|(_, v)| v.contains(TOKEN)),
        "the caller's token is forwarded"
    );
    // Every forwarded x-amz-* header is signed.
    for (k, _) in &sent {
        if k.starts_with("x-amz-") || k == "content-type" || k == "content-md5" {
            assert!(auth.signed_headers.contains(k), "{k} unsigned");
        }
    }
    assert_eq!(
        verify(
            &req,
            &auth,
            b"upstream/Secret+Key0123456789abcdefEXAMPLE",
            NOW
        ),
        Ok(()),
        "{service} {}",
        fx.path
    );
    assert_eq!(
        verify(&req, &auth, TOKEN.as_bytes(), NOW),
        Err(AwsAuthError::SignatureMismatch)
    );
}

#[test]
fn resigned_requests_verify_upstream() {
    for fx in [
        &S3_PUT,
        &S3_LIST,
        &S3_UNSIGNED,
        &S3_WEIRD,
        &S3_DELETE_OBJECTS,
        &S3_SPACES,
    ] {
        resign_and_verify(fx, "s3", "s3.eu-west-1.amazonaws.com");
        resign_and_verify(fx, "s3", "127.0.0.1:9000");
    }
    resign_and_verify(&STS, "sts", "sts.eu-west-1.amazonaws.com");
    resign_and_verify(&EC2, "ec2", "ec2.eu-west-1.amazonaws.com");
    resign_and_verify(&DDB, "dynamodb", "dynamodb.eu-west-1.amazonaws.com");
    resign_and_verify(&SQS, "sqs", "sqs.eu-west-1.amazonaws.com");
    resign_and_verify(&LAMBDA, "lambda", "lambda.eu-west-1.amazonaws.com");
    // Paths and queries needing care: dot segments and `//` (normalised for
    // other services, kept for S3), a repeated header, parameters to sort.
    let odd = Fx {
        method: "GET",
        path: "/a/./b//c/../d%3Ae%20f/",
        query: Some("z=1&a=%2F&a=%20&flag&b=%E2%82%AC"),
        body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        headers: &[
            ("x-amz-meta-a", "one"),
            ("x-amz-meta-a", "  two   three "),
            ("content-type", "text/plain"),
            ("connection", "keep-alive"),
            ("proxy-authorization", "Basic eA=="),
        ],
    };
    resign_and_verify(&odd, "s3", "s3.eu-west-1.amazonaws.com");
    resign_and_verify(&odd, "execute-api", "api.example.com:8443");
}

#[test]
fn resign_matches_botocore() {
    // botocore's S3SigV4Auth / SigV4Auth with the same key, time and inputs.
    let headers = |h: &[(&str, &str)]| -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let added = resign(
        "PUT",
        "s3.eu-west-1.amazonaws.com",
        "/shop/dir/my%20key%2Bplus%20%C3%A9.txt",
        Some("x-id=PutObject"),
        &headers(&[
            ("content-type", "text/plain"),
            ("x-amz-meta-owner", "ana"),
            ("x-amz-meta-tags", "a,  b"),
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("user-agent", "Boto3/1.43.11"),
        ]),
        &sha256_hex(b"hello world"),
        &upstream_creds(),
        "eu-west-1",
        "s3",
        NOW,
    );
    let get = |name: &str| {
        added
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("x-amz-date"), Some("20261129T102030Z"));
    assert_eq!(get("x-amz-security-token"), Some("upstream-session-token"));
    assert_eq!(
        get("x-amz-content-sha256"),
        Some(sha256_hex(b"hello world").as_str())
    );
    assert_eq!(
        get("authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIAUPSTREAMEXAMPLE/20261129/eu-west-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-meta-owner;x-amz-meta-tags;x-amz-sdk-checksum-algorithm;x-amz-security-token, Signature=b7da31a11c5fe2457593bef206ac24eedeb0428850b04ed32b5acbbee39dd987"
        )
    );
    let added = resign(
        "POST",
        "lambda.eu-west-1.amazonaws.com",
        "/2015-03-31/functions/my%3Afn/invocations",
        Some("Qualifier=v%201"),
        &headers(&[("content-type", "application/json")]),
        &sha256_hex(b"{}"),
        &upstream_creds(),
        "eu-west-1",
        "lambda",
        NOW,
    );
    assert_eq!(
        added
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str()),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIAUPSTREAMEXAMPLE/20261129/eu-west-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=77a2eb0cc6a5fcea017430d9dbf56d7f22d2c327576315b604d4ef2132551431"
        )
    );
}

#[test]
fn forwardable_drops_credentials_and_hop_by_hop_headers() {
    let h: Vec<(String, String)> = [
        "authorization",
        "x-amz-security-token",
        "x-amz-date",
        "x-amz-content-sha256",
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
        "Authorization",
        "content-type",
        "x-amz-meta-a",
        "range",
        "x-amz-checksum-crc32",
        "content-encoding",
    ]
    .iter()
    .map(|k| (k.to_string(), "v".to_string()))
    .collect();
    let kept: Vec<String> = forwardable(&h).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kept,
        [
            "content-type",
            "x-amz-meta-a",
            "range",
            "x-amz-checksum-crc32",
            "content-encoding"
        ]
    );
}

#[test]
fn amz_dates() {
    assert_eq!(parse_amz_date("20261129T102030Z"), Some(NOW));
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
    assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199_000));
    assert_eq!(parse_amz_date("20230229T000000Z"), None);
    assert_eq!(parse_amz_date("2026-1129T102030Z"), None);
    assert_eq!(parse_amz_date("+0261129T102030Z"), None);
}

const S3_PUT: Fx = Fx {
    method: "PUT",
    path: "/shop/dir/my%20key%2Bplus%20%C3%A9.txt",
    query: None,
    body_sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
    headers: &[
        ("host", "127.0.0.1:7800"),
        ("content-type", "text/plain"),
        ("x-amz-meta-owner", "ana"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("expect", "100-continue"),
        ("x-amz-checksum-crc32", "DUoRhQ=="),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "x-amz-content-sha256",
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-meta-owner;x-amz-sdk-checksum-algorithm;x-amz-security-token, Signature=d8aa7be1c6f35fbc0f723db0fd2b0201a7ae5f4fdbd740bce09fb084cc31be12",
        ),
        (
            "amz-sdk-invocation-id",
            "2aeac146-c103-4802-b056-ff2724c9aba2",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "11"),
    ],
};
const S3_LIST: Fx = Fx {
    method: "GET",
    path: "/shop",
    query: Some("list-type=2&prefix=a%2Fb&delimiter=%2F&encoding-type=url"),
    body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    headers: &[
        ("host", "127.0.0.1:7800"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=edcc96088181541975ef1f7092fcf2aadc250cbb8257288a14223fd0c1a2e62c",
        ),
        (
            "amz-sdk-invocation-id",
            "5de9550f-8925-4c40-95da-4ef30aec50cf",
        ),
        ("amz-sdk-request", "attempt=1"),
    ],
};
const STS: Fx = Fx {
    method: "POST",
    path: "/",
    query: None,
    body_sha256: "ab821ae955788b0e33ebd34c208442ccfc2d406e2edc5e7a39bd6458fbb4f843",
    headers: &[
        ("host", "127.0.0.1:7800"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=a1c8eaa495a2fa25450cb0d60fd3e3f80b92952dca2ceed650eebc7aa3188df6",
        ),
        (
            "amz-sdk-invocation-id",
            "7904ada5-92cd-48f1-8263-fa054c8f3544",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "43"),
    ],
};
const DDB: Fx = Fx {
    method: "POST",
    path: "/",
    query: None,
    body_sha256: "8757416434aa2ca31dc133a8f59e965a005fce7144cc8a9c76ca49ee76ae08b6",
    headers: &[
        ("host", "127.0.0.1:7800"),
        ("x-amz-target", "DynamoDB_20120810.PutItem"),
        ("content-type", "application/x-amz-json-1.0"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=3faab976b47bbb465e080c4ba44d26a6e4fa2bf499ffa865508f29dc446a05c3",
        ),
        (
            "amz-sdk-invocation-id",
            "70ddf0ad-987d-40c3-90ac-d03a986f7d1a",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "76"),
    ],
};
const LAMBDA: Fx = Fx {
    method: "POST",
    path: "/2015-03-31/functions/my%3Afn/invocations",
    query: None,
    body_sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    headers: &[
        ("host", "127.0.0.1:7800"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=c6c8f9fea726826cfed3b1730c7c936bed7e3a4751545884a34f801b99446c7a",
        ),
        (
            "amz-sdk-invocation-id",
            "4c8dbacf-1505-49b9-a79e-524e70167ce7",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "2"),
    ],
};
const S3_UNSIGNED: Fx = Fx {
    method: "PUT",
    path: "/shop/u.bin",
    query: None,
    body_sha256: "aab80a15ede0558654fb72b0806f34abaac92af9f693f74d1c3b603233e03071",
    headers: &[
        ("host", "127.0.0.1:7800"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("expect", "100-continue"),
        ("x-amz-checksum-crc32", "r1umCw=="),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-sdk-checksum-algorithm;x-amz-security-token, Signature=2de5da98ee06c5c4ea82613642b4690616747fdba146ac78ef26df85d1b30afe",
        ),
        (
            "amz-sdk-invocation-id",
            "101dbfbe-1efe-4f71-9d9b-500d6146f475",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "13"),
    ],
};
const S3_WEIRD: Fx = Fx {
    method: "GET",
    path: "/shop/x//./y%20%281%29%21%2A~%27.txt",
    query: None,
    body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    headers: &[
        ("host", "127.0.0.1:7800"),
        ("x-amz-checksum-mode", "ENABLED"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=304cdd4756b9aa4aacebfbfcb12cb718feeb3db60e28d7de483bcd9dbe118cb1",
        ),
        (
            "amz-sdk-invocation-id",
            "76026851-33dc-418e-8e86-0060c9b1ad4a",
        ),
        ("amz-sdk-request", "attempt=1"),
    ],
};
const S3_DELETE_OBJECTS: Fx = Fx {
    method: "POST",
    path: "/shop",
    query: Some("delete"),
    body_sha256: "0ebe2d4e061df349be597c8e7da1bea023a159bae0fb2a70efca7c1395be1439",
    headers: &[
        ("host", "127.0.0.1:7800"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-checksum-crc32", "CEaAGw=="),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "x-amz-content-sha256",
            "0ebe2d4e061df349be597c8e7da1bea023a159bae0fb2a70efca7c1395be1439",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-sdk-checksum-algorithm;x-amz-security-token, Signature=cec1b31c98552964f7bd9da9381e599ff9eef307e89070b2bc94b0b2b20e5d13",
        ),
        (
            "amz-sdk-invocation-id",
            "f3b1c62a-91a5-4801-b9ba-9877b5a8a13b",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "94"),
    ],
};
const EC2: Fx = Fx {
    method: "POST",
    path: "/",
    query: None,
    body_sha256: "2520caad67639cba3a8fc3bb8fbd7e0ab00f8cd93581b2db8b0fe7f985300f3e",
    headers: &[
        ("host", "127.0.0.1:7800"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=da35906459b35c70ad81557c22d6eb67c83493f83f63df0dbeec384b4a28a6bb",
        ),
        (
            "amz-sdk-invocation-id",
            "78e7d9b0-b6b3-4b88-af73-9aa3d555a7cf",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "61"),
    ],
};
const SQS: Fx = Fx {
    method: "POST",
    path: "/",
    query: None,
    body_sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    headers: &[
        ("host", "127.0.0.1:7800"),
        ("x-amz-target", "AmazonSQS.ListQueues"),
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amzn-query-mode", "true"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target;x-amzn-query-mode, Signature=f69c5802f57a04cd1934004b305732ca20ec7b63ec054209011ce98b2671002e",
        ),
        (
            "amz-sdk-invocation-id",
            "34b31dbd-5a3e-4e94-bfb9-416f5669312d",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "2"),
    ],
};
const S3_SPACES: Fx = Fx {
    method: "PUT",
    path: "/shop/n.txt",
    query: None,
    body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    headers: &[
        ("host", "127.0.0.1:7800"),
        ("x-amz-meta-note", "a   b    c"),
        (
            "user-agent",
            "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 lang/python#3.11.7",
        ),
        ("expect", "100-continue"),
        ("x-amz-checksum-crc32", "AAAAAA=="),
        ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ("x-amz-date", "20261129T102030Z"),
        (
            "x-amz-security-token",
            "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo",
        ),
        (
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=shop-s3/20261129/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-meta-note;x-amz-sdk-checksum-algorithm;x-amz-security-token, Signature=f271c9d10231a7f29170ea534634745ffc29a07ce4f51f9c155251fbc237c993",
        ),
        (
            "amz-sdk-invocation-id",
            "bbb4159d-cb24-4bdd-9ad5-19046927e681",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("content-length", "0"),
    ],
};
