//! `gatehouse_http::aws` never panics on arbitrary requests and keeps the
//! properties the fuzz target `fuzz/fuzz_targets/aws_request.rs` asserts:
//! over the committed seeds (`fuzz/corpus/aws_request/seed-*`, requests
//! botocore signed, which must verify with their token and nothing else),
//! every truncation of one, then 2,000 deterministic pseudo-random and
//! mutated inputs (an xorshift generator, so a failure reproduces; fewer than
//! for other decoders, because each input is verified and re-signed, about
//! 0.5 ms in a debug build), so CI keeps the target honest without running a
//! fuzzer. Besides: the `Authorization` limits at their edges, malformed and
//! huge paths and queries, action names from query strings, form bodies and
//! `x-amz-target`, and that `verify` never accepts a request signed with
//! another secret (except one that HMAC treats as the same key: the secret
//! followed by NUL bytes) or changed after signing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gatehouse_core::secret::Secret;
use gatehouse_core::sigv4::{Credentials, sha256_hex};
use gatehouse_http::aws::{self, AuthHeader, AwsAuthError, Inbound};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// The committed seeds of a fuzz target (`fuzz/corpus/<target>/seed-*`).
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed"))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "too few seeds in {}", dir.display());
    out
}

/// Byte-level edits: overwrite with a byte from `alphabet` (which includes
/// multi-byte UTF-8 pieces), delete, insert, duplicate or truncate.
fn mutate(rng: &mut Rng, seed: &[u8], alphabet: &[&[u8]]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(m.len() + 1);
        match rng.below(5) {
            0 if at < m.len() => m[at] = rng.pick(alphabet)[0],
            1 if at < m.len() => {
                m.remove(at);
            }
            2 if at < m.len() => {
                let end = (at + rng.below(16)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
            3 => m.truncate(at),
            _ => {
                let piece = rng.pick(alphabet);
                m.splice(at..at, piece.iter().copied());
            }
        }
    }
    m
}

fn random(rng: &mut Rng, max: usize, alphabet: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(max) {
        out.extend_from_slice(rng.pick(alphabet));
    }
    out
}

fn random_text(rng: &mut Rng, max: usize, alphabet: &[&str]) -> String {
    (0..rng.below(max)).map(|_| rng.pick(alphabet)).collect()
}

// === aws_request (fuzz/fuzz_targets/aws_request.rs) ===

/// 2026-11-29T10:20:30Z, the date of the seeds.
const NOW: i64 = 1_795_947_630_000;
const AMZ_DATE: &str = "20261129T102030Z";
const SECRET: &str = "gh_fuzz_secret_0123456789";
/// The secret key (and session token) botocore signed the seeds with.
const SEED_TOKEN: &str = "gh_5fKq2xVbN8mRt7LpW3cZ9yHd4sJa6uEo";
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

/// A request made of a fuzz input: `Authorization` value, path, query, body
/// and `name:value` headers split at NUL bytes; the last byte picks the
/// method and the service.
struct Input {
    method: &'static str,
    service: &'static str,
    auth_value: String,
    path: String,
    query: Option<String>,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn split(data: &[u8]) -> Input {
    let sel = usize::from(data.last().copied().unwrap_or(0));
    let mut parts = data.split(|b| *b == 0);
    let auth_value = text(parts.next().unwrap_or_default());
    let path = text(parts.next().unwrap_or_default());
    let query = parts.next().map(text);
    let body = parts.next().unwrap_or_default().to_vec();
    let headers = parts
        .map(|p| {
            let p = text(p);
            match p.split_once(':') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
                None => (p.trim().to_ascii_lowercase(), String::new()),
            }
        })
        .collect();
    Input {
        method: METHODS[sel % METHODS.len()],
        service: SERVICES[(sel / METHODS.len()) % SERVICES.len()],
        auth_value,
        path,
        query,
        body,
        headers,
    }
}

/// The headers the gateway sees: the input's, `x-amz-date` and `host` when
/// missing, and the `Authorization` value.
fn gateway_headers(inp: &Input) -> Vec<(String, String)> {
    let mut headers = inp.headers.clone();
    if !headers.iter().any(|(k, _)| k == "x-amz-date") {
        headers.push(("x-amz-date".into(), AMZ_DATE.into()));
    }
    if !headers.iter().any(|(k, _)| k == "host") {
        headers.push(("host".into(), "127.0.0.1:7800".into()));
    }
    headers.push(("authorization".into(), inp.auth_value.clone()));
    headers
}

/// What the target asserts of a parsed header.
fn check_parsed(value: &str, a: &AuthHeader) {
    assert!(value.len() <= aws::MAX_AUTHORIZATION);
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

fn check_action(a: &str) {
    assert!(
        !a.is_empty() && a.len() <= 128 && a.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{a}"
    );
}

/// What `fuzz/fuzz_targets/aws_request.rs` asserts.
fn check_request(data: &[u8]) {
    if data.len() > 16 * 1024 {
        return;
    }
    check_input(&split(data));
}

fn check_input(inp: &Input) {
    let (method, service, path, query) = (inp.method, inp.service, &inp.path, &inp.query);
    let headers = gateway_headers(inp);
    let body_sha256 = sha256_hex(&inp.body);

    // The parser on its own.
    match aws::parse_authorization(&inp.auth_value) {
        Ok(a) => check_parsed(&inp.auth_value, &a),
        Err(e) => {
            no_secret(&e);
            assert!(!e.code().is_empty());
        }
    }

    // The whole check, as the gateway runs it.
    let req = Inbound {
        method,
        raw_path: path,
        raw_query: query.as_deref(),
        headers: &headers,
        body_sha256: Some(&body_sha256),
    };
    let checked = aws::authorization(&req)
        .and_then(|a| aws::verify(&req, &a, SECRET.as_bytes(), NOW).map(|()| a));
    if let Err(e) = &checked {
        no_secret(e);
        for svc in ["s3", "sts", "ec2", "dynamodb", "lambda"] {
            let _ = aws::error_body(svc, &headers, e.code(), &e.to_string(), path);
        }
    }
    // A forged signature: HMAC-SHA256 under the secret cannot be guessed.
    assert!(checked.is_err());

    // Actions.
    for svc in [service, "s3", "ec2", "dynamodb", "monitoring"] {
        for m in [method, "GET", "PUT", "POST"] {
            if let Some(a) = aws::action(svc, m, path, query.as_deref(), &headers, Some(&inp.body))
            {
                check_action(&a);
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
    let mut sent: Vec<(String, String)> = aws::forwardable(&inp.headers)
        .into_iter()
        .filter(|(k, _)| is_token(k))
        .collect();
    let added = aws::resign(
        method,
        "upstream.example:443",
        path,
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
        raw_path: path,
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
}

/// Bytes for mutations and random requests: separators, pieces of the
/// header syntax, escapes (good and malformed), header names, UTF-8 and
/// invalid UTF-8.
const REQUEST_ALPHABET: &[&[u8]] = &[
    b"\0",
    b",",
    b";",
    b"=",
    b"/",
    b" ",
    b"\t",
    b":",
    b"&",
    b"%",
    b"%2F",
    b"%zz",
    b"%C3%A9",
    b"%ff",
    b"+",
    b"a",
    b"A",
    b"0",
    b"f",
    b".",
    b"..",
    b"AWS4-HMAC-SHA256 ",
    b"Credential=",
    b"SignedHeaders=",
    b"Signature=",
    b"host",
    b"x-amz-date",
    b"x-amz-target:",
    b"x-amz-content-sha256:",
    b"content-type:application/x-www-form-urlencoded",
    b"smithy-protocol:rpc-v2-cbor",
    b"Action=",
    b"X-Amz-Signature=",
    b"aws4_request",
    b"20261129",
    b"UNSIGNED-PAYLOAD",
    b"STREAMING-",
    "é".as_bytes(),
    "\u{10348}".as_bytes(),
    b"\xff",
    b"\r\n",
];

#[test]
fn seeds_verify_with_their_token_only() {
    for (path, s) in seeds("aws_request") {
        let inp = split(&s);
        let headers = gateway_headers(&inp);
        let body_sha256 = sha256_hex(&inp.body);
        let auth = aws::parse_authorization(&inp.auth_value)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_parsed(&inp.auth_value, &auth);
        assert_eq!(auth.access_key, "shop-s3");
        // Signed once, with one method, by the token; nothing else verifies.
        let mut verified = Vec::new();
        for method in METHODS {
            let req = Inbound {
                method,
                raw_path: &inp.path,
                raw_query: inp.query.as_deref(),
                headers: &headers,
                body_sha256: Some(&body_sha256),
            };
            assert_eq!(aws::authorization(&req).as_ref(), Ok(&auth));
            if aws::verify(&req, &auth, SEED_TOKEN.as_bytes(), NOW).is_ok() {
                verified.push(method);
            }
            for other in [SECRET, "", &SEED_TOKEN[1..], &SEED_TOKEN.to_uppercase()] {
                assert_eq!(
                    aws::verify(&req, &auth, other.as_bytes(), NOW),
                    Err(AwsAuthError::SignatureMismatch),
                    "{}",
                    path.display()
                );
            }
            // The token in `X-Amz-Security-Token` never shows in `Debug`.
            assert!(!format!("{req:?}").contains(SEED_TOKEN));
        }
        assert_eq!(verified.len(), 1, "{}: {verified:?}", path.display());
        check_request(&s);
    }
}

#[test]
fn mutated_and_random_requests_keep_the_targets_properties() {
    let seeds = seeds("aws_request");
    let mut rng = Rng(0xa35_4e9);
    // Every truncation of one seed.
    let (_, first) = &seeds[0];
    for end in 0..=first.len() {
        check_request(&first[..end]);
    }
    for i in 0..2_000 {
        let input = if i % 4 == 0 {
            random(&mut rng, 48, REQUEST_ALPHABET)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, REQUEST_ALPHABET)
        };
        check_request(&input);
    }
}

// === Authorization headers at and over their limits ===

fn auth_value(credential: &str, signed: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    )
}

const CREDENTIAL: &str = "shop-s3/20261129/us-east-1/s3/aws4_request";
const SIGNATURE: &str = "edcc96088181541975ef1f7092fcf2aadc250cbb8257288a14223fd0c1a2e62c";

fn malformed(value: &str) -> &'static str {
    match aws::parse_authorization(value) {
        Err(AwsAuthError::MalformedAuthorization(why)) => why,
        other => panic!("{value:?}: {other:?}"),
    }
}

/// Checks what any parse result must satisfy; returns it.
fn parse_checked(value: &str) -> Result<AuthHeader, AwsAuthError> {
    let r = aws::parse_authorization(value);
    match &r {
        Ok(a) => {
            check_parsed(value, a);
            assert!(a.region.len() <= 64 && a.service.len() <= 64);
            // Parsing what it shows gives the same header back.
            let again = auth_value(
                &format!(
                    "{}/{}/{}/{}/aws4_request",
                    a.access_key, a.date, a.region, a.service
                ),
                &a.signed_headers.join(";"),
                &a.signature,
            );
            assert_eq!(aws::parse_authorization(&again).as_ref(), Ok(a));
        }
        Err(e) => {
            no_secret(e);
            assert!(!e.code().is_empty());
            assert!([400, 403].contains(&e.status()));
            if value.len() > aws::MAX_AUTHORIZATION {
                assert_eq!(e, &AwsAuthError::AuthorizationTooLarge);
            }
            // Errors are short: nothing of a long value is repeated.
            assert!(e.to_string().len() < 1024, "{e}");
        }
    }
    r
}

#[test]
fn authorization_headers_keep_their_limits() {
    let ok = auth_value(CREDENTIAL, "host;x-amz-date", SIGNATURE);
    assert!(parse_checked(&ok).is_ok());

    // Over 8 KiB: refused on the length alone, padding and all.
    let limit = aws::MAX_AUTHORIZATION;
    let padded = |n: usize| format!("{ok}{}", " ".repeat(n - ok.len()));
    assert!(parse_checked(&padded(limit)).is_ok());
    assert_eq!(
        parse_checked(&padded(limit + 1)),
        Err(AwsAuthError::AuthorizationTooLarge)
    );
    for big in [
        format!("{ok}{}", ",".repeat(limit)),
        "A".repeat(1 << 20),
        auth_value(&"k".repeat(limit), "host", SIGNATURE),
        auth_value(CREDENTIAL, &"a;".repeat(limit), SIGNATURE),
        format!("{SECRET}{}", " ".repeat(limit)),
    ] {
        assert_eq!(
            parse_checked(&big),
            Err(AwsAuthError::AuthorizationTooLarge)
        );
    }

    // 64 signed headers, not 65, however short the names (or long: 64 names
    // of 120 bytes still fit in 8 KiB).
    for width in [1, 3, 120] {
        let names = |n: usize| -> String {
            (0..n)
                .map(|i| format!("{i:0>width$}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        let at = auth_value(CREDENTIAL, &names(aws::MAX_SIGNED_HEADERS), SIGNATURE);
        assert!(at.len() <= limit, "{}", at.len());
        assert_eq!(
            parse_checked(&at).unwrap().signed_headers.len(),
            aws::MAX_SIGNED_HEADERS
        );
        let over = auth_value(CREDENTIAL, &names(aws::MAX_SIGNED_HEADERS + 1), SIGNATURE);
        if over.len() <= limit {
            assert_eq!(malformed(&over), "more than 64 signed headers");
        }
    }
    assert_eq!(
        malformed(&auth_value(CREDENTIAL, &"a;".repeat(2_000), SIGNATURE)),
        "a header is listed twice in SignedHeaders"
    );

    // Missing parts, duplicate keys, stray parts.
    let c = format!("Credential={CREDENTIAL}");
    let h = "SignedHeaders=host";
    let s = format!("Signature={SIGNATURE}");
    let a = "AWS4-HMAC-SHA256";
    let cases: Vec<(String, &str)> = vec![
        (format!("{a} {h}, {s}"), "no Credential"),
        (format!("{a} {c}, {s}"), "no SignedHeaders"),
        (format!("{a} {c}, {h}"), "no Signature"),
        (a.to_string(), "no Credential"),
        (format!("{a} "), "no Credential"),
        (format!("{a} ,,,"), "no Credential"),
        (
            format!("{a} {c}, {c}, {h}, {s}"),
            "a component appears twice",
        ),
        (
            format!("{a} {c}, {h}, {h}, {s}"),
            "a component appears twice",
        ),
        (
            format!("{a} {c}, {h}, {s}, {s}"),
            "a component appears twice",
        ),
        (
            format!("{a} {c}, {h}, {s}, Signature="),
            "a component appears twice",
        ),
        (format!("{a} {c}, {h}, {s}, Extra=1"), "unknown component"),
        (
            format!("{a} {c}, {h}, {s}, credential=x"),
            "unknown component",
        ),
        (format!("{a} {c} {h} {s}"), "no SignedHeaders"),
        (format!("{a} {c}, {h}, {s}, x"), "expected Credential"),
        (format!("{a} {c}; {h}; {s}"), "no SignedHeaders"),
        (
            format!("{a} {c}, SignedHeaders=, {s}"),
            "SignedHeaders must be",
        ),
        (
            format!("{a} {c}, SignedHeaders=Host, {s}"),
            "SignedHeaders must be",
        ),
        (
            format!("{a} {c}, SignedHeaders=host;, {s}"),
            "SignedHeaders must be",
        ),
        (
            format!("{a} {c}, SignedHeaders=a b, {s}"),
            "SignedHeaders must be",
        ),
        (
            format!("{a} {c}, SignedHeaders=é, {s}"),
            "SignedHeaders must be",
        ),
        (
            format!("{a} {c}, SignedHeaders=host;host, {s}"),
            "listed twice",
        ),
        (format!("{a} {c}, {h}, Signature="), "64 hex digits"),
        (
            format!("{a} {c}, {h}, Signature={}", &SIGNATURE[1..]),
            "64 hex digits",
        ),
        (
            format!("{a} {c}, {h}, Signature={SIGNATURE}0"),
            "64 hex digits",
        ),
        (
            format!("{a} {c}, {h}, Signature=g{}", &SIGNATURE[1..]),
            "64 hex digits",
        ),
        (
            format!("{a} {c}, {h}, Signature=é{}", &SIGNATURE[2..]),
            "64 hex digits",
        ),
        (format!("{a} Credential=, {h}, {s}"), "Credential must be"),
        (
            format!("{a} Credential=a/b/c/d, {h}, {s}"),
            "Credential must be",
        ),
        (
            format!("{a} Credential=/20261129/r/s/aws4_request, {h}, {s}"),
            "access key id",
        ),
        (
            format!("{a} Credential=a b/20261129/r/s/aws4_request, {h}, {s}"),
            "access key id",
        ),
        (
            format!("{a} Credential=a\u{0}/20261129/r/s/aws4_request, {h}, {s}"),
            "access key id",
        ),
        (
            format!("{a} Credential=k/2026112/r/s/aws4_request, {h}, {s}"),
            "YYYYMMDD",
        ),
        (
            format!("{a} Credential=k/2026112x/r/s/aws4_request, {h}, {s}"),
            "YYYYMMDD",
        ),
        (
            format!("{a} Credential=k/٢٠٢٦١١٢٩/r/s/aws4_request, {h}, {s}"),
            "YYYYMMDD",
        ),
        (
            format!("{a} Credential=k/20261129//s/aws4_request, {h}, {s}"),
            "region or service",
        ),
        (
            format!("{a} Credential=k/20261129/r/s3 x/aws4_request, {h}, {s}"),
            "region or service",
        ),
        (
            format!(
                "{a} Credential=k/20261129/{}/s/aws4_request, {h}, {s}",
                "r".repeat(65)
            ),
            "region or service",
        ),
        (
            format!("{a} Credential=k/20261129/r/s/aws4_request/, {h}, {s}"),
            "end with aws4_request",
        ),
        (
            format!("{a} Credential=k/20261129/r/s/AWS4_REQUEST, {h}, {s}"),
            "end with aws4_request",
        ),
    ];
    for (value, want) in &cases {
        let why = malformed(value);
        assert!(why.contains(want), "{value:?}: {why}");
        parse_checked(value).unwrap_err();
    }
    // Accepted oddities: an access key with `/`, upper-case hex (compared
    // lower-case), tabs and extra spaces, no space after commas.
    for (value, key) in [
        (
            format!("{a} Credential=a/b/20261129/r/s/aws4_request, {h}, {s}"),
            "a/b",
        ),
        (
            format!(
                "{a}\tCredential = {CREDENTIAL} ,{h},Signature={}",
                SIGNATURE.to_uppercase()
            ),
            "shop-s3",
        ),
        (format!("  {a}   {s},{h},{c}  "), "shop-s3"),
    ] {
        let got = parse_checked(&value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(got.access_key, key);
        assert_eq!(got.signature, SIGNATURE);
    }

    // Algorithms: named only when they look like one (a secret sent here by
    // mistake is never repeated), with a hint for the known others.
    for (value, shown, hint) in [
        (
            "AWS4-ECDSA-P256-SHA256 Credential=x",
            "AWS4-ECDSA-P256-SHA256",
            "SigV4a",
        ),
        ("AWS AKIA:sig", "AWS", "Signature Version 2"),
        (
            "aws4-hmac-sha256 Credential=x",
            "(not an AWS signature)",
            "",
        ),
        (
            "Bearer gh_fuzz_secret_0123456789",
            "(not an AWS signature)",
            "",
        ),
        (SECRET, "(not an AWS signature)", ""),
        ("AWS4-HMAC-SHA256Credential=x", "(not an AWS signature)", ""),
        ("", "(not an AWS signature)", ""),
    ] {
        match parse_checked(value) {
            Err(AwsAuthError::UnsupportedAlgorithm { algorithm, hint: h }) => {
                assert_eq!(algorithm, shown, "{value:?}");
                assert!(h.contains(hint), "{value:?}: {h}");
            }
            other => panic!("{value:?}: {other:?}"),
        }
    }

    // Random headers made of parts, some missing, some twice, some broken.
    let mut rng = Rng(0x8_4b1d);
    let parts = [
        c.as_str(),
        h,
        s.as_str(),
        "Credential=k/20261129/us-east-1/ec2/aws4_request",
        "Credential=k/2026/us-east-1/ec2/aws4_request",
        "Credential=k//us-east-1/ec2/aws4_request",
        "SignedHeaders=host;x-amz-date;x-amz-security-token",
        "SignedHeaders=host;;x",
        "Signature=0000000000000000000000000000000000000000000000000000000000000000",
        "Signature=zz",
        "Extra=1",
        "=",
        "",
        " ",
        "é",
    ];
    let seps = [", ", ",", " , ", ",,", " ", "\t,"];
    for _ in 0..5_000 {
        let mut v = String::from(rng.pick(&[
            "AWS4-HMAC-SHA256 ",
            "AWS4-HMAC-SHA256\t",
            "AWS4-HMAC-SHA256",
            "AWS ",
        ]));
        for i in 0..rng.below(6) {
            if i > 0 {
                v.push_str(rng.pick(&seps));
            }
            v.push_str(rng.pick(&parts));
        }
        if rng.below(20) == 0 {
            v.push_str(&";x".repeat(rng.below(3_000)));
        }
        if let Ok(a) = parse_checked(&v) {
            let n = |k: &str| v.matches(k).count();
            assert!(
                n("Credential=") == 1 && n("SignedHeaders=") == 1 && n("Signature=") == 1,
                "{v}"
            );
            assert!(!a.signed_headers.is_empty());
        }
    }
}

// === Paths and queries ===

#[test]
fn paths_and_queries_decode_or_fail_cleanly() {
    // Malformed escapes: refused for signing, with the reason.
    let cases = [
        ("a=%", "two hex digits"),
        ("a=%4", "two hex digits"),
        ("a=%zz", "two hex digits"),
        ("a=%%41", "two hex digits"),
        ("a=%4g", "two hex digits"),
        ("%=1", "two hex digits"),
        ("a=%ff", "not UTF-8"),
        ("a=%C3", "not UTF-8"),
        ("a=%C3%28", "not UTF-8"),
        ("a=%ED%A0%80", "not UTF-8"),
        ("a=%F4%90%80%80", "not UTF-8"),
        ("%C0%AF=1", "not UTF-8"),
    ];
    for (q, want) in cases {
        match aws::canonical_query(Some(q)) {
            Err(AwsAuthError::BadQuery(why)) => assert!(why.contains(want), "{q}: {why}"),
            other => panic!("{q}: {other:?}"),
        }
        assert_eq!(
            aws::query_pairs(Some(q)).map(|_| ()),
            aws::canonical_query(Some(q)).map(|_| ())
        );
        // Still classified (leniently) and refused as presigned or not.
        let _ = aws::action("ec2", "GET", "/", Some(q), &[], None);
        assert!(aws::refuse_presigned(Some(q)).is_ok());
    }
    // Presigned, however the name is written.
    for q in [
        "X-Amz-Signature=abc",
        "x-amz-signature",
        "a=1&X-AMZ-SIGNATURE=",
        "X%2DAmz%2DSignature=1",
        "X-Amz-Signatur%65=1&a=%zz",
    ] {
        assert_eq!(
            aws::refuse_presigned(Some(q)),
            Err(AwsAuthError::Presigned),
            "{q}"
        );
    }
    for q in [
        "X-Amz-Signature2=1",
        "a=X-Amz-Signature",
        "X-Amz-Signature%",
        "%X-Amz-Signature",
    ] {
        assert!(aws::refuse_presigned(Some(q)).is_ok(), "{q}");
    }

    // A huge query: linear, decoded, sorted.
    let big: String = (0..20_000)
        .map(|i| format!("k{}=%E2%82%AC{i}", 20_000 - i))
        .collect::<Vec<_>>()
        .join("&");
    let canon = aws::canonical_query(Some(&big)).unwrap();
    let pairs: Vec<(&str, &str)> = canon
        .split('&')
        .map(|p| p.split_once('=').unwrap())
        .collect();
    assert_eq!(pairs.len(), 20_000);
    assert!(pairs.windows(2).all(|w| w[0] <= w[1]));
    assert!(canon.contains("k1=%E2%82%AC19999"));
    assert!(aws::refuse_presigned(Some(&big)).is_ok());
    assert_eq!(aws::action("s3", "GET", "/b", Some(&big), &[], None), None);
    assert_eq!(aws::action("ec2", "GET", "/", Some(&big), &[], None), None);
    let big_bad = format!("{big}&z=%");
    assert!(aws::canonical_query(Some(&big_bad)).is_err());
    // A huge path, for both kinds of canonical URI.
    let long_path = "/a/./b/../%2F/".repeat(20_000);
    assert_eq!(aws::canonical_uri("s3", &long_path), long_path);
    let canon = aws::canonical_uri("ec2", &long_path);
    assert!(
        canon.starts_with("/a/%252F/a/") && canon.ends_with("/%252F/"),
        "{}",
        &canon[..40]
    );

    // Random paths and queries.
    let pieces = [
        "/",
        "//",
        ".",
        "..",
        "a",
        "A",
        "0",
        "~",
        "-",
        "_",
        "%",
        "%2",
        "%2F",
        "%2f",
        "%zz",
        "%C3%A9",
        "%ff",
        "+",
        " ",
        "=",
        "&",
        "?",
        "#",
        ";",
        "é",
        "\u{10348}",
        "\u{0}",
        "\n",
        "X-Amz-Signature",
        "Action",
        "list-type=2",
        "acl",
        "uploadId",
        "x-id=GetObject",
    ];
    let mut rng = Rng(0x9_a7e5);
    for _ in 0..10_000 {
        let raw = random_text(&mut rng, 12, &pieces);
        let service = rng.pick(&["s3", "s3express", "s3-outposts", "ec2", "lambda", "x"]);
        let uri = aws::canonical_uri(service, &raw);
        assert!(!uri.is_empty());
        if matches!(service, "ec2" | "lambda" | "x") {
            // Normalised (no empty or dot segments) and encoded.
            assert!(
                uri.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)),
                "{raw:?} -> {uri}"
            );
            let inner = uri.trim_start_matches('/').trim_end_matches('/');
            assert!(
                inner.is_empty()
                    || inner
                        .split('/')
                        .all(|s| !s.is_empty() && s != "." && s != ".."),
                "{raw:?} -> {uri}"
            );
        } else if !raw.is_empty() {
            assert_eq!(uri, raw);
        }
        let pairs = aws::query_pairs(Some(&raw));
        let escapes_ok = {
            let b = raw.as_bytes();
            b.iter().enumerate().all(|(i, &c)| {
                c != b'%'
                    || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            })
        };
        if !escapes_ok {
            assert!(pairs.is_err(), "{raw:?}");
        }
        match aws::canonical_query(Some(&raw)) {
            Ok(q) => {
                assert!(pairs.is_ok());
                assert!(
                    q.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~%=&".contains(&b)),
                    "{raw:?} -> {q}"
                );
                let split: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
                assert!(split.iter().all(|p| p.matches('=').count() == 1), "{q}");
                // Sorted by key, then value.
                let pairs: Vec<(&str, &str)> =
                    split.iter().filter_map(|p| p.split_once('=')).collect();
                assert!(pairs.windows(2).all(|w| w[0] <= w[1]), "{q}");
            }
            Err(e) => {
                assert!(matches!(e, AwsAuthError::BadQuery(_)), "{e:?}");
                assert!(pairs.is_err());
            }
        }
        let _ = aws::refuse_presigned(Some(&raw));
        for method in ["GET", "PUT", "POST", "DELETE", "HEAD"] {
            for svc in ["s3", "ec2"] {
                if let Some(a) = aws::action(svc, method, &raw, Some(&raw), &[], None) {
                    check_action(&a);
                }
            }
        }
    }
}

// === Actions from queries, form bodies and x-amz-target ===

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FORM: (&str, &str) = (
    "content-type",
    "application/x-www-form-urlencoded; charset=utf-8",
);

#[test]
fn actions_are_plain_names_and_fail_closed() {
    let act = |service: &str, query: Option<&str>, headers: &[(&str, &str)], body: &str| {
        let got = aws::action(
            service,
            "POST",
            "/",
            query,
            &h(headers),
            Some(body.as_bytes()),
        );
        if let Some(a) = &got {
            check_action(a);
        }
        got
    };
    let some = |s: &str| Some(s.to_string());
    // Form bodies.
    assert_eq!(
        act(
            "sts",
            None,
            &[FORM],
            "Action=GetCallerIdentity&Version=2011-06-15"
        ),
        some("GetCallerIdentity")
    );
    assert_eq!(
        act(
            "sts",
            None,
            &[("Content-Type", "Application/X-WWW-Form-Urlencoded")],
            "action=A1"
        ),
        some("A1")
    );
    assert_eq!(
        act("sts", None, &[FORM], "%41ction=Describe%49nstances"),
        some("DescribeInstances")
    );
    assert_eq!(act("sts", None, &[FORM], "Action=Describe+Instances"), None);
    assert_eq!(act("sts", None, &[FORM], "Action=Get%00Caller"), None);
    assert_eq!(act("sts", None, &[FORM], "Action=Gét"), None);
    assert_eq!(act("sts", None, &[FORM], "Action="), None);
    assert_eq!(act("sts", None, &[FORM], "Action"), None);
    assert_eq!(act("sts", None, &[FORM], "Action=A&Action=B"), None);
    assert_eq!(act("sts", None, &[FORM], "Action=A&Action=A"), some("A"));
    assert_eq!(act("sts", None, &[FORM], "Action=%zz"), None);
    assert_eq!(
        act("sts", None, &[FORM], &format!("Action={}", "A".repeat(128))),
        Some("A".repeat(128))
    );
    assert_eq!(
        act("sts", None, &[FORM], &format!("Action={}", "A".repeat(129))),
        None
    );
    // Not a form: the body is not read.
    assert_eq!(act("sts", None, &[], "Action=GetCallerIdentity"), None);
    assert_eq!(
        act("sts", None, &[("content-type", "text/plain")], "Action=X"),
        None
    );
    // Query and body must agree.
    assert_eq!(act("ec2", Some("Action=A"), &[FORM], "Action=A"), some("A"));
    assert_eq!(act("ec2", Some("Action=A"), &[FORM], "Action=B"), None);
    assert_eq!(act("ec2", Some("Action=A&Action=B"), &[], ""), None);
    // A body that is not UTF-8, a huge body.
    assert_eq!(
        aws::action(
            "sts",
            "POST",
            "/",
            None,
            &h(&[FORM]),
            Some(b"Action=Get\xffX")
        ),
        None
    );
    assert_eq!(
        aws::action(
            "sts",
            "POST",
            "/",
            None,
            &h(&[FORM]),
            Some(b"\xff&Action=GetX")
        ),
        some("GetX")
    );
    let huge = format!("{}&Action=Describe", "Version=1&".repeat(50_000));
    assert_eq!(act("ec2", None, &[FORM], &huge), some("Describe"));

    // x-amz-target.
    let t = |v: &str| act("dynamodb", None, &[("x-amz-target", v)], "{}");
    assert_eq!(t("DynamoDB_20120810.PutItem"), some("PutItem"));
    assert_eq!(t(" a.b.Scan "), some("Scan"));
    assert_eq!(t("NoDot"), None);
    assert_eq!(t(""), None);
    assert_eq!(t("."), None);
    assert_eq!(t("X."), None);
    assert_eq!(t("X.Put Item"), None);
    assert_eq!(t("X.Put-Item"), None);
    assert_eq!(t("X.Pütltem"), None);
    assert_eq!(t(&format!("X.{}", "a".repeat(10_000))), None);
    let two = |a: &str, b: &str| {
        act(
            "dynamodb",
            None,
            &[("x-amz-target", a), ("X-Amz-Target", b)],
            "",
        )
    };
    assert_eq!(two("A.Get", "B.Get"), some("Get"));
    assert_eq!(two("A.Get", "A.Put"), None);
    assert_eq!(two("A.Get", "NoDot"), None);
    // A target and an Action must agree too.
    assert_eq!(
        act("x", Some("Action=Get"), &[("x-amz-target", "A.Get")], ""),
        some("Get")
    );
    assert_eq!(
        act("x", Some("Action=Put"), &[("x-amz-target", "A.Get")], ""),
        None
    );
    assert_eq!(
        act("x", None, &[("x-amz-target", "A.Get"), FORM], "Action=Put"),
        None
    );
    // Smithy RPCv2 CBOR paths.
    let cbor = |path: &str| {
        aws::action(
            "monitoring",
            "POST",
            path,
            None,
            &h(&[("smithy-protocol", "rpc-v2-cbor")]),
            None,
        )
    };
    assert_eq!(
        cbor("/service/GraniteServiceVersion20100801/operation/GetMetricData"),
        some("GetMetricData")
    );
    assert_eq!(cbor("/service/S/operation/Get%4detric"), some("GetMetric"));
    assert_eq!(cbor("/service/S/operation/Get%2FMetric"), None);
    assert_eq!(cbor("/operation/Get"), None);
    assert_eq!(cbor("/service/S/operations/Get"), None);
    assert_eq!(cbor(""), None);

    // Random bodies, targets and queries.
    let mut rng = Rng(0xac_710a);
    let body_pieces = [
        "Action",
        "action",
        "ACTION",
        "=",
        "&",
        "+",
        "%",
        "%41",
        "%2B",
        "%zz",
        "%ff",
        "Get",
        "Put",
        "Describe",
        "Instances",
        " ",
        "é",
        "\u{0}",
        "Version=1",
    ];
    let target_pieces = [
        "DynamoDB_20120810",
        ".",
        "PutItem",
        "Get",
        " ",
        "é",
        "",
        "a.b",
    ];
    for _ in 0..10_000 {
        let body = random_text(&mut rng, 10, &body_pieces);
        let query = random_text(&mut rng, 8, &body_pieces);
        let mut headers = Vec::new();
        for _ in 0..rng.below(3) {
            headers.push((
                "x-amz-target".to_string(),
                random_text(&mut rng, 5, &target_pieces),
            ));
        }
        if rng.below(2) == 0 {
            headers.push((FORM.0.to_string(), FORM.1.to_string()));
        }
        if rng.below(4) == 0 {
            headers.push(("smithy-protocol".to_string(), "rpc-v2-cbor".to_string()));
        }
        let q = (rng.below(3) > 0).then_some(query.as_str());
        for service in ["ec2", "sts", "dynamodb", "s3", "monitoring"] {
            for method in ["GET", "POST", "PUT", "DELETE"] {
                let path = rng.pick(&["/", "/b/k", "/service/S/operation/Op", ""]);
                let got = aws::action(service, method, path, q, &headers, Some(body.as_bytes()));
                if let Some(a) = got {
                    check_action(&a);
                    // Every source named this action: no disagreement hides.
                    if service != "s3" {
                        for (_, t) in headers.iter().filter(|(k, _)| k == "x-amz-target") {
                            assert!(t.trim().ends_with(&format!(".{a}")), "{t} -> {a}");
                        }
                    }
                }
            }
        }
    }
}

// === verify never accepts another secret ===

const OTHER: &str = "gh_other_secret_9876543210";

#[test]
fn verify_accepts_only_the_secret_that_signed() {
    let mut rng = Rng(0x51_9e7);
    let path_pieces = [
        "/", "a", "b", ".", "..", "//", "%2F", "%20", "%zz", "é", " ", "~", "+", "%C3%A9",
    ];
    let query_pieces = [
        "a",
        "b",
        "=",
        "&",
        "%41",
        "%",
        "%zz",
        "%ff",
        "+",
        "é",
        "X-Amz-Signature",
        "Action=X",
        " ",
    ];
    let header_names = [
        "content-type",
        "content-md5",
        "x-amz-meta-a",
        "x-amz-meta-b",
        "x-amz-target",
        "user-agent",
        "x-amz-acl",
        "expect",
        "X-Amz-Meta-Upper",
    ];
    let header_values = ["", "a", " a  b ", "\t", "é", ",", "application/json", "a,b"];
    let secrets: [&[u8]; 6] = [
        SECRET.as_bytes(),
        b"",
        &OTHER.as_bytes()[..OTHER.len() - 1],
        b"\0gh_other_secret_9876543210",
        b"GH_OTHER_SECRET_9876543210",
        b"gh_other_secret_9876543211",
    ];
    let (mut verified, mut tampered) = (0, 0);
    for _ in 0..500 {
        let method = rng.pick(&METHODS);
        let service = rng.pick(&SERVICES);
        let path = random_text(&mut rng, 6, &path_pieces);
        let query = (rng.below(3) > 0).then(|| random_text(&mut rng, 6, &query_pieces));
        let body: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let body_sha256 = sha256_hex(&body);
        let headers: Vec<(String, String)> = (0..rng.below(5))
            .map(|_| {
                (
                    rng.pick(&header_names).to_string(),
                    rng.pick(&header_values).to_string(),
                )
            })
            .collect();
        let creds = Credentials {
            access_key: "shop".into(),
            secret_key: Secret::new(OTHER),
            session_token: (rng.below(2) == 0).then(|| Secret::new("session-token")),
        };
        let mut sent = aws::forwardable(&headers);
        sent.extend(aws::resign(
            method,
            "127.0.0.1:7800",
            &path,
            query.as_deref(),
            &sent,
            &body_sha256,
            &creds,
            "us-east-1",
            service,
            NOW,
        ));
        sent.push(("host".into(), "127.0.0.1:7800".into()));
        let req = Inbound {
            method,
            raw_path: &path,
            raw_query: query.as_deref(),
            headers: &sent,
            body_sha256: Some(&body_sha256),
        };
        let presigned = aws::refuse_presigned(query.as_deref()).is_err();
        let auth = match aws::authorization(&req) {
            Ok(a) => a,
            Err(e) => {
                assert!(presigned, "{e:?}");
                continue;
            }
        };
        check_parsed("", &auth);
        let query_ok = aws::canonical_query(query.as_deref()).is_ok();
        let own = aws::verify(&req, &auth, OTHER.as_bytes(), NOW);
        if !query_ok {
            assert!(matches!(own, Err(AwsAuthError::BadQuery(_))), "{own:?}");
            continue;
        }
        assert_eq!(own, Ok(()), "{method} {path:?} {query:?} {sent:?}");
        verified += 1;
        // The token in `X-Amz-Security-Token` never shows in `Debug`.
        if creds.session_token.is_some() {
            assert!(!format!("{req:?}").contains("session-token"));
        }
        // HMAC pads a key shorter than its block with zero bytes (RFC
        // 2104), so the secret followed by NUL bytes is the same key, as in
        // AWS. Harmless: signing with it takes knowing the secret.
        let padded = format!("{OTHER}\0\0");
        assert_eq!(aws::verify(&req, &auth, padded.as_bytes(), NOW), Ok(()));
        // Any other secret: refused.
        for s in secrets {
            assert_eq!(
                aws::verify(&req, &auth, s, NOW),
                Err(AwsAuthError::SignatureMismatch),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        // The right secret, anything changed: refused.
        let refused = |req: &Inbound<'_>, auth: &AuthHeader| {
            let r = aws::verify(req, auth, OTHER.as_bytes(), NOW);
            assert!(r.is_err(), "{req:?} {auth:?}");
        };
        let mut sig = auth.clone();
        let at = rng.below(64);
        let flipped = if &sig.signature[at..=at] == "0" {
            "1"
        } else {
            "0"
        };
        sig.signature.replace_range(at..=at, flipped);
        refused(&req, &sig);
        for edit in 0..4 {
            let mut a = auth.clone();
            match edit {
                0 => a.region = "us-west-2".into(),
                1 => a.service = if service == "s3" { "s3express" } else { "s3" }.into(),
                2 => a.access_key.push('x'),
                _ => a.signed_headers.retain(|h| h != "x-amz-content-sha256"),
            }
            // The access key is not part of the signature (SigV4 signs the
            // scope after it); the gateway checks it against the token.
            if edit == 2 {
                assert_eq!(aws::verify(&req, &a, OTHER.as_bytes(), NOW), Ok(()));
            } else {
                refused(&req, &a);
            }
        }
        let other_method = if method == "GET" { "HEAD" } else { "GET" };
        refused(
            &Inbound {
                method: other_method,
                ..req
            },
            &auth,
        );
        let longer = format!("{path}x");
        refused(
            &Inbound {
                raw_path: &longer,
                ..req
            },
            &auth,
        );
        let more = format!("{}&zz=1", query.as_deref().unwrap_or_default());
        refused(
            &Inbound {
                raw_query: Some(&more),
                ..req
            },
            &auth,
        );
        let mut moved = sent.clone();
        for (k, v) in &mut moved {
            if k == "host" {
                v.push('1');
            }
        }
        refused(
            &Inbound {
                headers: &moved,
                ..req
            },
            &auth,
        );
        let other_body = sha256_hex(b"other body");
        refused(
            &Inbound {
                body_sha256: Some(&other_body),
                ..req
            },
            &auth,
        );
        // Too early or too late.
        for skew in [aws::MAX_SKEW_MS + 1_000, -aws::MAX_SKEW_MS - 1_000] {
            assert!(matches!(
                aws::verify(&req, &auth, OTHER.as_bytes(), NOW + skew),
                Err(AwsAuthError::Skewed { .. })
            ));
        }
        tampered += 1;
    }
    // Most requests got through to the interesting part (about 70%).
    assert!(
        verified > 300 && tampered == verified,
        "{verified} {tampered}"
    );
}
