//! Which AWS action (API operation) a request is, for rules such as
//! `s3:DeleteObject` or `ec2:TerminateInstances`.
//!
//! Names are API operation names as the SDKs call them (`ListObjectsV2`,
//! `HeadObject`, `DeleteObjects`), not IAM permission names (`s3:ListBucket`,
//! `s3:GetObject`, `s3:DeleteObject`). When the request cannot be told
//! apart with certainty the answer is `None`, and the caller fails closed.

use super::canonical::{decode_lenient, raw_pairs};

/// The action of a request, `None` when it cannot tell:
///
/// - `x-amz-target: Prefix.Operation` (JSON protocol) → `Operation`;
/// - Smithy RPCv2 CBOR (`smithy-protocol: rpc-v2-cbor`,
///   `…/service/S/operation/Operation`) → `Operation`;
/// - query protocol (EC2, STS, IAM, SNS…) → the `Action` parameter of the
///   query string or of an `application/x-www-form-urlencoded` body;
/// - S3 (`service == "s3"`, path-style `/bucket/key`) → from the method,
///   path, subresource and headers;
/// - any other REST service → `None`.
///
/// Whenever two of these sources disagree (an `Action` in the query and
/// another in the body, a target and an `Action`), the answer is `None`.
pub fn action(
    service: &str,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Option<String> {
    if service == "s3" {
        return s3_action(method, raw_path, raw_query, headers).map(str::to_string);
    }
    let mut found: Vec<String> = Vec::new();

    for target in header_values(headers, "x-amz-target") {
        let (_, op) = target.trim().rsplit_once('.')?;
        found.push(op.to_string());
    }
    let cbor = header_values(headers, "smithy-protocol")
        .any(|v| v.trim().eq_ignore_ascii_case("rpc-v2-cbor"));
    if cbor {
        let mut segs = raw_path.rsplit('/');
        let (op, operation, _svc, service_seg) =
            (segs.next()?, segs.next()?, segs.next()?, segs.next()?);
        if operation != "operation" || service_seg != "service" {
            return None;
        }
        found.push(decode_lenient(op, false));
    }
    let mut params = |raw: &str, plus_as_space: bool| {
        for (k, v) in raw_pairs(raw) {
            if decode_lenient(k, plus_as_space).eq_ignore_ascii_case("action") {
                found.push(decode_lenient(v, plus_as_space));
            }
        }
    };
    if let Some(q) = raw_query {
        params(q, false);
    }
    let form = header_values(headers, "content-type").any(|v| {
        v.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form && let Some(body) = body {
        params(&String::from_utf8_lossy(body), true);
    }

    let first = found.first()?;
    let valid =
        !first.is_empty() && first.len() <= 128 && first.bytes().all(|b| b.is_ascii_alphanumeric());
    (valid && found.iter().all(|f| f == first)).then(|| first.clone())
}

/// `service:Action`, as rules name it.
pub fn full_action(service: &str, action: &str) -> String {
    format!("{service}:{action}")
}

/// Whether an action only reads: its name starts with `Get`, `List`,
/// `Describe`, `Head`, `Select`, `BatchGet`, `Query` or `Scan` (followed by
/// the end or an upper-case letter, so `Getaway` is not a read).
pub fn is_read_action(action: &str) -> bool {
    const READ: [&str; 8] = [
        "Get", "List", "Describe", "Head", "Select", "BatchGet", "Query", "Scan",
    ];
    READ.iter().any(|p| {
        action.strip_prefix(p).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase())
        })
    })
}

fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Query parameters that select an S3 subresource (the operation).
const S3_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploads",
    "versioning",
    "versions",
    "website",
];

/// Query parameters that do not change the operation (besides `uploadId`
/// and `partNumber`, handled apart). Anything else, such as `analytics` or
/// `inventory`, makes the request unknown.
const S3_PLAIN: &[&str] = &[
    "bucket-region",
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "list-type",
    "marker",
    "max-buckets",
    "max-directory-buckets",
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "prefix",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "select-type",
    "start-after",
    "upload-id-marker",
    "version-id-marker",
    "versionId",
    "x-id",
];

fn s3_action(
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &[(String, String)],
) -> Option<&'static str> {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    let rest = path.strip_prefix('/')?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));

    let mut sub: Option<&'static str> = None;
    let (mut upload_id, mut part_number, mut list_type) = (false, false, None);
    for (k, v) in raw_pairs(raw_query.unwrap_or_default()) {
        let k = decode_lenient(k, false);
        match k.as_str() {
            "uploadId" => upload_id = true,
            "partNumber" => part_number = true,
            "list-type" => list_type = Some(decode_lenient(v, false)),
            k if S3_PLAIN.contains(&k) => {}
            k => {
                let s = S3_SUBRESOURCES.iter().find(|s| **s == k)?;
                // Two different subresources: ambiguous.
                if sub.is_some_and(|prev| prev != *s) {
                    return None;
                }
                sub = Some(s);
            }
        }
    }
    let copy = header_values(headers, "x-amz-copy-source").next().is_some();

    if bucket.is_empty() {
        if !key.is_empty() {
            return None;
        }
        return (method == "GET" && sub.is_none() && !upload_id).then_some("ListBuckets");
    }
    if key.is_empty() {
        if upload_id {
            return None;
        }
        return match (method, sub) {
            ("GET", None) => match list_type.as_deref() {
                None => Some("ListObjects"),
                Some("2") => Some("ListObjectsV2"),
                Some(_) => None,
            },
            ("GET", Some(s)) => get_bucket(s),
            ("PUT", None) => Some("CreateBucket"),
            ("PUT", Some(s)) => put_bucket(s),
            ("DELETE", None) => Some("DeleteBucket"),
            ("DELETE", Some(s)) => delete_bucket(s),
            ("HEAD", None) => Some("HeadBucket"),
            ("POST", Some("delete")) => Some("DeleteObjects"),
            _ => None,
        };
    }
    match (method, sub) {
        ("GET", None) => Some(if upload_id { "ListParts" } else { "GetObject" }),
        ("GET", Some(s)) if !upload_id => match s {
            "acl" => Some("GetObjectAcl"),
            "tagging" => Some("GetObjectTagging"),
            "attributes" => Some("GetObjectAttributes"),
            "retention" => Some("GetObjectRetention"),
            "legal-hold" => Some("GetObjectLegalHold"),
            "torrent" => Some("GetObjectTorrent"),
            _ => None,
        },
        ("HEAD", None) if !upload_id => Some("HeadObject"),
        ("PUT", None) => match (upload_id, part_number, copy) {
            (true, true, false) => Some("UploadPart"),
            (true, true, true) => Some("UploadPartCopy"),
            (false, false, false) => Some("PutObject"),
            (false, false, true) => Some("CopyObject"),
            _ => None,
        },
        ("PUT", Some(s)) if !upload_id => match s {
            "acl" => Some("PutObjectAcl"),
            "tagging" => Some("PutObjectTagging"),
            "retention" => Some("PutObjectRetention"),
            "legal-hold" => Some("PutObjectLegalHold"),
            _ => None,
        },
        ("DELETE", None) => Some(if upload_id {
            "AbortMultipartUpload"
        } else {
            "DeleteObject"
        }),
        ("DELETE", Some("tagging")) if !upload_id => Some("DeleteObjectTagging"),
        ("POST", None) if upload_id => Some("CompleteMultipartUpload"),
        ("POST", Some(s)) if !upload_id => match s {
            "uploads" => Some("CreateMultipartUpload"),
            "restore" => Some("RestoreObject"),
            "select" => Some("SelectObjectContent"),
            _ => None,
        },
        _ => None,
    }
}

fn get_bucket(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "location" => "GetBucketLocation",
        "acl" => "GetBucketAcl",
        "policy" => "GetBucketPolicy",
        "policyStatus" => "GetBucketPolicyStatus",
        "versioning" => "GetBucketVersioning",
        "tagging" => "GetBucketTagging",
        "uploads" => "ListMultipartUploads",
        "versions" => "ListObjectVersions",
        "cors" => "GetBucketCors",
        "lifecycle" => "GetBucketLifecycleConfiguration",
        "encryption" => "GetBucketEncryption",
        "website" => "GetBucketWebsite",
        "notification" => "GetBucketNotificationConfiguration",
        "logging" => "GetBucketLogging",
        "replication" => "GetBucketReplication",
        "ownershipControls" => "GetBucketOwnershipControls",
        "publicAccessBlock" => "GetPublicAccessBlock",
        "object-lock" => "GetObjectLockConfiguration",
        "accelerate" => "GetBucketAccelerateConfiguration",
        "requestPayment" => "GetBucketRequestPayment",
        _ => return None,
    })
}

fn put_bucket(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "acl" => "PutBucketAcl",
        "policy" => "PutBucketPolicy",
        "versioning" => "PutBucketVersioning",
        "tagging" => "PutBucketTagging",
        "cors" => "PutBucketCors",
        "lifecycle" => "PutBucketLifecycleConfiguration",
        "encryption" => "PutBucketEncryption",
        "website" => "PutBucketWebsite",
        "notification" => "PutBucketNotificationConfiguration",
        "logging" => "PutBucketLogging",
        "replication" => "PutBucketReplication",
        "ownershipControls" => "PutBucketOwnershipControls",
        "publicAccessBlock" => "PutPublicAccessBlock",
        "object-lock" => "PutObjectLockConfiguration",
        "accelerate" => "PutBucketAccelerateConfiguration",
        "requestPayment" => "PutBucketRequestPayment",
        _ => return None,
    })
}

fn delete_bucket(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "policy" => "DeleteBucketPolicy",
        "tagging" => "DeleteBucketTagging",
        "cors" => "DeleteBucketCors",
        "lifecycle" => "DeleteBucketLifecycle",
        "encryption" => "DeleteBucketEncryption",
        "website" => "DeleteBucketWebsite",
        "replication" => "DeleteBucketReplication",
        "ownershipControls" => "DeleteBucketOwnershipControls",
        "publicAccessBlock" => "DeletePublicAccessBlock",
        _ => return None,
    })
}

#[cfg(test)]
#[path = "action_tests.rs"]
mod tests;

/// The IAM permissions an operation needs besides its own name, as
/// `service:Permission`, so a rule written with IAM's names
/// (`s3:DeleteObject`) also catches the operations that need that
/// permission (`DeleteObjects`, a batch delete). Only S3's differences are
/// listed; elsewhere an operation's name is its permission.
pub fn iam_permissions(service: &str, action: &str) -> Vec<String> {
    if service != "s3" {
        return Vec::new();
    }
    let names: &[&str] = match action {
        "DeleteObjects" => &["DeleteObject"],
        "HeadObject" | "SelectObjectContent" => &["GetObject"],
        "GetObjectAttributes" => &["GetObject"],
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => &["ListBucket"],
        "ListObjectVersions" => &["ListBucketVersions"],
        "ListBuckets" => &["ListAllMyBuckets"],
        "CopyObject" => &["PutObject", "GetObject"],
        "UploadPartCopy" => &["PutObject", "GetObject"],
        "UploadPart" | "CreateMultipartUpload" | "CompleteMultipartUpload" => &["PutObject"],
        "ListParts" => &["ListMultipartUploadParts"],
        "ListMultipartUploads" => &["ListBucketMultipartUploads"],
        _ => &[],
    };
    names.iter().map(|n| format!("s3:{n}")).collect()
}

#[cfg(test)]
mod iam_tests {
    use super::iam_permissions;

    #[test]
    fn s3_operations_name_the_permissions_they_need() {
        assert_eq!(
            iam_permissions("s3", "DeleteObjects"),
            vec!["s3:DeleteObject"]
        );
        assert_eq!(iam_permissions("s3", "UploadPart"), vec!["s3:PutObject"]);
        assert_eq!(
            iam_permissions("s3", "CopyObject"),
            vec!["s3:PutObject", "s3:GetObject"]
        );
        assert!(iam_permissions("s3", "PutObject").is_empty());
        assert!(iam_permissions("ec2", "TerminateInstances").is_empty());
    }
}
