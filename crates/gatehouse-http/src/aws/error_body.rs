//! Error responses in the shape each AWS protocol's SDK parser expects, so
//! the caller sees Gatehouse's code and message as an ordinary AWS error
//! (botocore: `ClientError` with `Error.Code` and `Error.Message`).

/// Services that speak the query protocol (form bodies with `Action=`),
/// for requests that carry no form body to tell it from.
const QUERY_SERVICES: &[&str] = &[
    "autoscaling",
    "cloudformation",
    "cloudsearch",
    "elasticache",
    "elasticbeanstalk",
    "elasticloadbalancing",
    "email",
    "iam",
    "rds",
    "redshift",
    "sdb",
    "ses",
    "sns",
    "sts",
];

/// REST services answering errors as `<ErrorResponse>` XML (besides S3).
const REST_XML_SERVICES: &[&str] = &["cloudfront", "route53"];

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// XML text with `<&>"'` escaped and characters XML 1.0 cannot carry
/// (control characters other than tab, CR and LF) replaced by U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The error response for a request to `service` whose headers are
/// `request_headers`: `(content-type, body, extra headers)`. The status is the
/// caller's (for [`super::AwsAuthError`], its `status()`).
///
/// - JSON protocol (an `x-amz-target` header or content type
///   `application/x-amz-json-*`), and REST-JSON services:
///   `{"__type": code, "message": …}` with `x-amzn-errortype: code`;
/// - S3: `<Error><Code/><Message/><RequestId/></Error>`;
/// - EC2: `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`;
/// - query protocol (form bodies; STS, IAM, SNS…) and REST-XML services
///   (Route 53, CloudFront): `<ErrorResponse><Error><Type>Sender</Type>
///   <Code/><Message/></Error><RequestId/></ErrorResponse>`.
pub fn error_body(
    service: &str,
    request_headers: &[(String, String)],
    code: &str,
    message: &str,
    request_id: &str,
) -> (&'static str, String, Vec<(String, String)>) {
    let content_type = header(request_headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let json_protocol = header(request_headers, "x-amz-target").is_some()
        || content_type.starts_with("application/x-amz-json-");
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    let (code_x, message_x, id_x) = (
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id),
    );
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

    if !json_protocol && super::canonical::is_s3_family(service) {
        let body = format!(
            "{xml}<Error><Code>{code_x}</Code><Message>{message_x}</Message><RequestId>{id_x}</RequestId></Error>"
        );
        return (
            "application/xml",
            body,
            vec![("x-amz-request-id".into(), request_id.into())],
        );
    }
    if !json_protocol && service == "ec2" {
        let body = format!(
            "{xml}<Response><Errors><Error><Code>{code_x}</Code><Message>{message_x}</Message></Error></Errors><RequestID>{id_x}</RequestID></Response>"
        );
        return ("text/xml;charset=UTF-8", body, Vec::new());
    }
    if !json_protocol
        && (form || QUERY_SERVICES.contains(&service) || REST_XML_SERVICES.contains(&service))
    {
        let body = format!(
            "{xml}<ErrorResponse><Error><Type>Sender</Type><Code>{code_x}</Code><Message>{message_x}</Message></Error><RequestId>{id_x}</RequestId></ErrorResponse>"
        );
        return (
            "text/xml",
            body,
            vec![("x-amzn-requestid".into(), request_id.into())],
        );
    }
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    let mut extra = vec![
        ("x-amzn-errortype".to_string(), code.to_string()),
        ("x-amzn-requestid".to_string(), request_id.to_string()),
    ];
    // Services moved from the query protocol to JSON keep their query error
    // codes in this header; the SDKs prefer it to `__type`.
    if header(request_headers, "x-amzn-query-mode").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        extra.push(("x-amzn-query-error".into(), format!("{code};Sender")));
    }
    let content_type = if !json_protocol {
        "application/json"
    } else if content_type.starts_with("application/x-amz-json-1.0") {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    };
    (content_type, body, extra)
}

#[cfg(test)]
#[path = "error_body_tests.rs"]
mod tests;
