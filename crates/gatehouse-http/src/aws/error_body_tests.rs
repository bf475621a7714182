//! Tests of `error_body`. The bodies were checked once with botocore
//! 1.43.11: each, returned to a boto3 client of the service, raised a
//! `ClientError` whose `Error.Code` and `Error.Message` are exactly `code`
//! and `message` (with `<&>"'` and the request id intact).

use super::*;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const MSG: &str = "rule <s3:Delete*> & \"no\" 'deletes'";
const RID: &str = "gh-req-1";

#[test]
fn s3_errors() {
    let (ct, body, extra) = error_body(
        "s3",
        &h(&[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")]),
        "AccessDenied",
        MSG,
        RID,
    );
    assert_eq!(ct, "application/xml");
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>rule &lt;s3:Delete*&gt; &amp; &quot;no&quot; &apos;deletes&apos;</Message><RequestId>gh-req-1</RequestId></Error>"
    );
    assert_eq!(extra, h(&[("x-amz-request-id", RID)]));
}

#[test]
fn query_protocol_errors() {
    let form = h(&[(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )]);
    let want = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>rule &lt;s3:Delete*&gt; &amp; &quot;no&quot; &apos;deletes&apos;</Message></Error><RequestId>gh-req-1</RequestId></ErrorResponse>";
    for (service, headers) in [
        ("sts", &form),
        ("iam", &form),
        ("sns", &Vec::new()),
        ("anything", &form),
        ("route53", &Vec::new()),
    ] {
        let (ct, body, extra) = error_body(service, headers, "AccessDenied", MSG, RID);
        assert_eq!((ct, body.as_str()), ("text/xml", want), "{service}");
        assert_eq!(extra, h(&[("x-amzn-requestid", RID)]));
    }
}

#[test]
fn ec2_errors() {
    let form = h(&[(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )]);
    let (ct, body, extra) = error_body("ec2", &form, "RequestTimeTooSkewed", "a<b", RID);
    assert_eq!(ct, "text/xml;charset=UTF-8");
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestTimeTooSkewed</Code><Message>a&lt;b</Message></Error></Errors><RequestID>gh-req-1</RequestID></Response>"
    );
    assert!(extra.is_empty());
}

#[test]
fn json_errors() {
    let (ct, body, extra) = error_body(
        "dynamodb",
        &h(&[
            ("x-amz-target", "DynamoDB_20120810.DeleteItem"),
            ("content-type", "application/x-amz-json-1.0"),
        ]),
        "AccessDenied",
        MSG,
        RID,
    );
    assert_eq!(ct, "application/x-amz-json-1.0");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"__type": "AccessDenied", "message": MSG})
    );
    assert_eq!(
        extra,
        h(&[
            ("x-amzn-errortype", "AccessDenied"),
            ("x-amzn-requestid", RID)
        ])
    );

    // awsQuery-compatible services (SQS) also get the query error header.
    let (ct, _, extra) = error_body(
        "sqs",
        &h(&[
            ("x-amz-target", "AmazonSQS.ListQueues"),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amzn-query-mode", "true"),
        ]),
        "AccessDenied",
        MSG,
        RID,
    );
    assert_eq!(ct, "application/x-amz-json-1.0");
    assert!(extra.contains(&("x-amzn-query-error".into(), "AccessDenied;Sender".into())));

    // JSON 1.1 services; a target on an S3 request is still JSON.
    for service in ["logs", "s3"] {
        let (ct, body, _) = error_body(
            service,
            &h(&[("x-amz-target", "Logs_20140328.PutLogEvents")]),
            "AccessDenied",
            "m",
            RID,
        );
        assert_eq!(ct, "application/x-amz-json-1.1");
        assert_eq!(body, r#"{"__type":"AccessDenied","message":"m"}"#);
    }
    // REST-JSON services.
    let (ct, body, extra) = error_body(
        "lambda",
        &h(&[("content-type", "application/json")]),
        "AccessDenied",
        "m",
        RID,
    );
    assert_eq!(ct, "application/json");
    assert_eq!(body, r#"{"__type":"AccessDenied","message":"m"}"#);
    assert_eq!(extra[0], ("x-amzn-errortype".into(), "AccessDenied".into()));
}

#[test]
fn xml_escaping() {
    assert_eq!(
        xml_escape(r#"<a href="x">&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
    );
    assert_eq!(xml_escape("tab\tnl\ncr\r é €"), "tab\tnl\ncr\r é €");
    assert_eq!(
        xml_escape("nul\0 bel\u{7} del\u{7f} \u{FFFF}"),
        "nul\u{FFFD} bel\u{FFFD} del\u{FFFD} \u{FFFD}"
    );
    assert_eq!(xml_escape("&amp;"), "&amp;amp;");
}

#[test]
fn auth_errors_have_codes_and_statuses() {
    use super::super::AwsAuthError::{self, *};
    let cases: Vec<(AwsAuthError, &str, u16)> = vec![
        (MissingAuthorization, "MissingAuthenticationToken", 403),
        (MissingToken, "MissingAuthenticationToken", 403),
        (TokenRejected, "InvalidClientTokenId", 403),
        (ConnectionNotAllowed("shop".into()), "AccessDenied", 403),
        (Presigned, "InvalidRequest", 400),
        (AuthorizationTooLarge, "InvalidRequest", 400),
        (MalformedAuthorization("x"), "IncompleteSignature", 400),
        (BadDate, "IncompleteSignature", 400),
        (HostNotSigned, "IncompleteSignature", 400),
        (
            Skewed {
                signed: "a".into(),
                now: "b".into(),
            },
            "RequestTimeTooSkewed",
            403,
        ),
        (
            ScopeDate {
                scope: "a".into(),
                date: "b".into(),
            },
            "SignatureDoesNotMatch",
            403,
        ),
        (SignatureMismatch, "SignatureDoesNotMatch", 403),
        (PayloadHashMismatch, "XAmzContentSHA256Mismatch", 400),
        (
            ChunkSigned("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
            "InvalidRequest",
            400,
        ),
    ];
    for (e, code, status) in cases {
        assert_eq!((e.code(), e.status()), (code, status), "{e:?}");
        // Each message says what to do, and fits in any of the bodies.
        let (_, body, _) = error_body("s3", &[], e.code(), &e.to_string(), RID);
        assert!(body.contains(code));
    }
}
