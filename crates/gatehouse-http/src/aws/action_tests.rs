//! Tests of `action`.

use super::*;

type Headers = &'static [(&'static str, &'static str)];
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Headers,
    Option<&'static str>,
);

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s3(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> Option<String> {
    let q = (!query.is_empty()).then_some(query);
    action("s3", method, path, q, &h(headers), None)
}

/// Every S3 operation in botocore 1.43.11's model, as boto3 sends it
/// (path-style, required parameters only): operation, method, path, query,
/// whether `x-amz-copy-source` is sent, and the expected answer. Operations
/// Gatehouse does not tell apart are `None`; several old operation names
/// send the same request as their newer `…Configuration` forms.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
);

#[rustfmt::skip]
const BOTO3_S3: &[Row] = &[
    ("AbortMultipartUpload", "DELETE", "/shop/dir/k.txt", "uploadId=x", false, Some("AbortMultipartUpload")),
    ("CompleteMultipartUpload", "POST", "/shop/dir/k.txt", "uploadId=x", false, Some("CompleteMultipartUpload")),
    ("CopyObject", "PUT", "/shop/dir/k.txt", "", true, Some("CopyObject")),
    ("CreateBucket", "PUT", "/shop", "", false, Some("CreateBucket")),
    ("CreateBucketMetadataConfiguration", "POST", "/shop", "metadataConfiguration", false, None),
    ("CreateBucketMetadataTableConfiguration", "POST", "/shop", "metadataTable", false, None),
    ("CreateMultipartUpload", "POST", "/shop/dir/k.txt", "uploads", false, Some("CreateMultipartUpload")),
    ("CreateSession", "GET", "/shop", "session", false, None),
    ("DeleteBucket", "DELETE", "/shop", "", false, Some("DeleteBucket")),
    ("DeleteBucketAnalyticsConfiguration", "DELETE", "/shop", "analytics&id=x", false, None),
    ("DeleteBucketCors", "DELETE", "/shop", "cors", false, Some("DeleteBucketCors")),
    ("DeleteBucketEncryption", "DELETE", "/shop", "encryption", false, Some("DeleteBucketEncryption")),
    ("DeleteBucketIntelligentTieringConfiguration", "DELETE", "/shop", "intelligent-tiering&id=x", false, None),
    ("DeleteBucketInventoryConfiguration", "DELETE", "/shop", "inventory&id=x", false, None),
    ("DeleteBucketLifecycle", "DELETE", "/shop", "lifecycle", false, Some("DeleteBucketLifecycle")),
    ("DeleteBucketMetadataConfiguration", "DELETE", "/shop", "metadataConfiguration", false, None),
    ("DeleteBucketMetadataTableConfiguration", "DELETE", "/shop", "metadataTable", false, None),
    ("DeleteBucketMetricsConfiguration", "DELETE", "/shop", "metrics&id=x", false, None),
    ("DeleteBucketOwnershipControls", "DELETE", "/shop", "ownershipControls", false, Some("DeleteBucketOwnershipControls")),
    ("DeleteBucketPolicy", "DELETE", "/shop", "policy", false, Some("DeleteBucketPolicy")),
    ("DeleteBucketReplication", "DELETE", "/shop", "replication", false, Some("DeleteBucketReplication")),
    ("DeleteBucketTagging", "DELETE", "/shop", "tagging", false, Some("DeleteBucketTagging")),
    ("DeleteBucketWebsite", "DELETE", "/shop", "website", false, Some("DeleteBucketWebsite")),
    ("DeleteObject", "DELETE", "/shop/dir/k.txt", "", false, Some("DeleteObject")),
    ("DeleteObjectTagging", "DELETE", "/shop/dir/k.txt", "tagging", false, Some("DeleteObjectTagging")),
    ("DeleteObjects", "POST", "/shop", "delete", false, Some("DeleteObjects")),
    ("DeletePublicAccessBlock", "DELETE", "/shop", "publicAccessBlock", false, Some("DeletePublicAccessBlock")),
    ("GetBucketAbac", "GET", "/shop", "abac", false, None),
    ("GetBucketAccelerateConfiguration", "GET", "/shop", "accelerate", false, Some("GetBucketAccelerateConfiguration")),
    ("GetBucketAcl", "GET", "/shop", "acl", false, Some("GetBucketAcl")),
    ("GetBucketAnalyticsConfiguration", "GET", "/shop", "analytics&id=x", false, None),
    ("GetBucketCors", "GET", "/shop", "cors", false, Some("GetBucketCors")),
    ("GetBucketEncryption", "GET", "/shop", "encryption", false, Some("GetBucketEncryption")),
    ("GetBucketIntelligentTieringConfiguration", "GET", "/shop", "intelligent-tiering&id=x", false, None),
    ("GetBucketInventoryConfiguration", "GET", "/shop", "inventory&id=x", false, None),
    ("GetBucketLifecycle", "GET", "/shop", "lifecycle", false, Some("GetBucketLifecycleConfiguration")),
    ("GetBucketLifecycleConfiguration", "GET", "/shop", "lifecycle", false, Some("GetBucketLifecycleConfiguration")),
    ("GetBucketLocation", "GET", "/shop", "location", false, Some("GetBucketLocation")),
    ("GetBucketLogging", "GET", "/shop", "logging", false, Some("GetBucketLogging")),
    ("GetBucketMetadataConfiguration", "GET", "/shop", "metadataConfiguration", false, None),
    ("GetBucketMetadataTableConfiguration", "GET", "/shop", "metadataTable", false, None),
    ("GetBucketMetricsConfiguration", "GET", "/shop", "metrics&id=x", false, None),
    ("GetBucketNotification", "GET", "/shop", "notification", false, Some("GetBucketNotificationConfiguration")),
    ("GetBucketNotificationConfiguration", "GET", "/shop", "notification", false, Some("GetBucketNotificationConfiguration")),
    ("GetBucketOwnershipControls", "GET", "/shop", "ownershipControls", false, Some("GetBucketOwnershipControls")),
    ("GetBucketPolicy", "GET", "/shop", "policy", false, Some("GetBucketPolicy")),
    ("GetBucketPolicyStatus", "GET", "/shop", "policyStatus", false, Some("GetBucketPolicyStatus")),
    ("GetBucketReplication", "GET", "/shop", "replication", false, Some("GetBucketReplication")),
    ("GetBucketRequestPayment", "GET", "/shop", "requestPayment", false, Some("GetBucketRequestPayment")),
    ("GetBucketTagging", "GET", "/shop", "tagging", false, Some("GetBucketTagging")),
    ("GetBucketVersioning", "GET", "/shop", "versioning", false, Some("GetBucketVersioning")),
    ("GetBucketWebsite", "GET", "/shop", "website", false, Some("GetBucketWebsite")),
    ("GetObject", "GET", "/shop/dir/k.txt", "", false, Some("GetObject")),
    ("GetObjectAcl", "GET", "/shop/dir/k.txt", "acl", false, Some("GetObjectAcl")),
    ("GetObjectAttributes", "GET", "/shop/dir/k.txt", "attributes", false, Some("GetObjectAttributes")),
    ("GetObjectLegalHold", "GET", "/shop/dir/k.txt", "legal-hold", false, Some("GetObjectLegalHold")),
    ("GetObjectLockConfiguration", "GET", "/shop", "object-lock", false, Some("GetObjectLockConfiguration")),
    ("GetObjectRetention", "GET", "/shop/dir/k.txt", "retention", false, Some("GetObjectRetention")),
    ("GetObjectTagging", "GET", "/shop/dir/k.txt", "tagging", false, Some("GetObjectTagging")),
    ("GetObjectTorrent", "GET", "/shop/dir/k.txt", "torrent", false, Some("GetObjectTorrent")),
    ("GetPublicAccessBlock", "GET", "/shop", "publicAccessBlock", false, Some("GetPublicAccessBlock")),
    ("HeadBucket", "HEAD", "/shop", "", false, Some("HeadBucket")),
    ("HeadObject", "HEAD", "/shop/dir/k.txt", "", false, Some("HeadObject")),
    ("ListBucketAnalyticsConfigurations", "GET", "/shop", "analytics", false, None),
    ("ListBucketIntelligentTieringConfigurations", "GET", "/shop", "intelligent-tiering", false, None),
    ("ListBucketInventoryConfigurations", "GET", "/shop", "inventory", false, None),
    ("ListBucketMetricsConfigurations", "GET", "/shop", "metrics", false, None),
    ("ListBuckets", "GET", "/", "", false, Some("ListBuckets")),
    ("ListDirectoryBuckets", "GET", "/", "", false, Some("ListBuckets")),
    ("ListMultipartUploads", "GET", "/shop", "uploads", false, Some("ListMultipartUploads")),
    ("ListObjectVersions", "GET", "/shop", "versions&encoding-type=url", false, Some("ListObjectVersions")),
    ("ListObjects", "GET", "/shop", "encoding-type=url", false, Some("ListObjects")),
    ("ListObjectsV2", "GET", "/shop", "list-type=2&encoding-type=url", false, Some("ListObjectsV2")),
    ("ListParts", "GET", "/shop/dir/k.txt", "uploadId=x", false, Some("ListParts")),
    ("PutBucketAbac", "PUT", "/shop", "abac", false, None),
    ("PutBucketAccelerateConfiguration", "PUT", "/shop", "accelerate", false, Some("PutBucketAccelerateConfiguration")),
    ("PutBucketAcl", "PUT", "/shop", "acl", false, Some("PutBucketAcl")),
    ("PutBucketAnalyticsConfiguration", "PUT", "/shop", "analytics&id=x", false, None),
    ("PutBucketCors", "PUT", "/shop", "cors", false, Some("PutBucketCors")),
    ("PutBucketEncryption", "PUT", "/shop", "encryption", false, Some("PutBucketEncryption")),
    ("PutBucketIntelligentTieringConfiguration", "PUT", "/shop", "intelligent-tiering&id=x", false, None),
    ("PutBucketInventoryConfiguration", "PUT", "/shop", "inventory&id=x", false, None),
    ("PutBucketLifecycle", "PUT", "/shop", "lifecycle", false, Some("PutBucketLifecycleConfiguration")),
    ("PutBucketLifecycleConfiguration", "PUT", "/shop", "lifecycle", false, Some("PutBucketLifecycleConfiguration")),
    ("PutBucketLogging", "PUT", "/shop", "logging", false, Some("PutBucketLogging")),
    ("PutBucketMetricsConfiguration", "PUT", "/shop", "metrics&id=x", false, None),
    ("PutBucketNotification", "PUT", "/shop", "notification", false, Some("PutBucketNotificationConfiguration")),
    ("PutBucketNotificationConfiguration", "PUT", "/shop", "notification", false, Some("PutBucketNotificationConfiguration")),
    ("PutBucketOwnershipControls", "PUT", "/shop", "ownershipControls", false, Some("PutBucketOwnershipControls")),
    ("PutBucketPolicy", "PUT", "/shop", "policy", false, Some("PutBucketPolicy")),
    ("PutBucketReplication", "PUT", "/shop", "replication", false, Some("PutBucketReplication")),
    ("PutBucketRequestPayment", "PUT", "/shop", "requestPayment", false, Some("PutBucketRequestPayment")),
    ("PutBucketTagging", "PUT", "/shop", "tagging", false, Some("PutBucketTagging")),
    ("PutBucketVersioning", "PUT", "/shop", "versioning", false, Some("PutBucketVersioning")),
    ("PutBucketWebsite", "PUT", "/shop", "website", false, Some("PutBucketWebsite")),
    ("PutObject", "PUT", "/shop/dir/k.txt", "", false, Some("PutObject")),
    ("PutObjectAcl", "PUT", "/shop/dir/k.txt", "acl", false, Some("PutObjectAcl")),
    ("PutObjectLegalHold", "PUT", "/shop/dir/k.txt", "legal-hold", false, Some("PutObjectLegalHold")),
    ("PutObjectLockConfiguration", "PUT", "/shop", "object-lock", false, Some("PutObjectLockConfiguration")),
    ("PutObjectRetention", "PUT", "/shop/dir/k.txt", "retention", false, Some("PutObjectRetention")),
    ("PutObjectTagging", "PUT", "/shop/dir/k.txt", "tagging", false, Some("PutObjectTagging")),
    ("PutPublicAccessBlock", "PUT", "/shop", "publicAccessBlock", false, Some("PutPublicAccessBlock")),
    ("RenameObject", "PUT", "/shop/dir/k.txt", "renameObject", false, None),
    ("RestoreObject", "POST", "/shop/dir/k.txt", "restore", false, Some("RestoreObject")),
    ("SelectObjectContent", "POST", "/shop/dir/k.txt", "select&select-type=2", false, Some("SelectObjectContent")),
    ("UpdateBucketMetadataInventoryTableConfiguration", "PUT", "/shop", "metadataInventoryTable", false, None),
    ("UpdateBucketMetadataJournalTableConfiguration", "PUT", "/shop", "metadataJournalTable", false, None),
    ("UpdateObjectEncryption", "PUT", "/shop/dir/k.txt", "encryption", false, None),
    ("UploadPart", "PUT", "/shop/dir/k.txt", "partNumber=1&uploadId=x", false, Some("UploadPart")),
    ("UploadPartCopy", "PUT", "/shop/dir/k.txt", "partNumber=1&uploadId=x", true, Some("UploadPartCopy")),
    ("WriteGetObjectResponse", "POST", "/WriteGetObjectResponse", "", false, None),
];

#[test]
fn every_s3_operation_boto3_sends() {
    for (op, method, path, query, copy, want) in BOTO3_S3 {
        let headers: &[(&str, &str)] = if *copy {
            &[("x-amz-copy-source", "src/k.txt")]
        } else {
            &[]
        };
        assert_eq!(s3(method, path, query, headers).as_deref(), *want, "{op}");
    }
}

#[test]
fn s3_requests_as_other_clients_send_them() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("GET", "", "", &[], Some("ListBuckets")),
        ("GET", "/", "max-buckets=10&x-id=ListBuckets", &[], Some("ListBuckets")),
        ("GET", "/shop/", "", &[], Some("ListObjects")),
        ("GET", "/shop", "list-type=2&prefix=a%2Fb&delimiter=%2F&continuation-token=x&start-after=a&fetch-owner=true&max-keys=5", &[], Some("ListObjectsV2")),
        ("GET", "/shop", "prefix=a&marker=b", &[], Some("ListObjects")),
        ("GET", "/shop", "versions&key-marker=a&version-id-marker=b", &[], Some("ListObjectVersions")),
        ("GET", "/shop", "uploads&max-uploads=3&upload-id-marker=u", &[], Some("ListMultipartUploads")),
        ("GET", "/shop/dir/k%20x.txt", "versionId=3&partNumber=2&response-content-type=text%2Fplain&x-id=GetObject", &[], Some("GetObject")),
        ("GET", "/shop/k", "uploadId=u&max-parts=10&part-number-marker=3", &[], Some("ListParts")),
        ("HEAD", "/shop/k", "versionId=1&partNumber=1", &[], Some("HeadObject")),
        ("PUT", "/shop/k", "x-id=PutObject", &[("content-type", "text/plain")], Some("PutObject")),
        ("PUT", "/shop/k", "", &[("x-amz-copy-source", "/src/a%20b?versionId=2")], Some("CopyObject")),
        ("PUT", "/shop/k", "uploadId=u&partNumber=3", &[], Some("UploadPart")),
        ("PUT", "/shop/k", "partNumber=3&uploadId=u", &[("x-amz-copy-source", "src/a")], Some("UploadPartCopy")),
        ("DELETE", "/shop/k", "versionId=v", &[], Some("DeleteObject")),
        ("DELETE", "/shop/k", "uploadId=u", &[], Some("AbortMultipartUpload")),
        ("DELETE", "/shop/k", "tagging&versionId=1", &[], Some("DeleteObjectTagging")),
        ("POST", "/shop/k", "uploadId=u", &[], Some("CompleteMultipartUpload")),
        ("POST", "/shop/k", "uploads", &[], Some("CreateMultipartUpload")),
        ("POST", "/shop/k", "uploads=", &[], Some("CreateMultipartUpload")),
        ("POST", "/shop/k", "restore&versionId=1", &[], Some("RestoreObject")),
        ("POST", "/shop/k", "select&select-type=2", &[], Some("SelectObjectContent")),
        ("POST", "/shop", "delete=", &[], Some("DeleteObjects")),
        // A key "/" (path //): object-level.
        ("DELETE", "/shop//", "", &[], Some("DeleteObject")),
        ("PUT", "/shop/k", "tagging&tagging", &[], Some("PutObjectTagging")),
    ];
    for (method, path, query, headers, want) in cases {
        assert_eq!(
            s3(method, path, query, headers).as_deref(),
            *want,
            "{method} {path}?{query}"
        );
    }
}

#[test]
fn unknown_s3_requests_are_none() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, Headers)] = &[
        // Unknown subresources, at either level.
        ("GET", "/shop", "analytics&id=x", &[]),
        ("PUT", "/shop", "inventory&id=x", &[]),
        ("PUT", "/shop/k", "renameObject", &[]),
        ("PUT", "/shop/k", "encryption", &[]),
        ("GET", "/shop", "session", &[]),
        ("GET", "/shop/k", "something-new", &[]),
        ("GET", "/shop", "Acl", &[]),
        // Two subresources at once.
        ("GET", "/shop", "acl&policy", &[]),
        ("PUT", "/shop/k", "acl&tagging", &[]),
        // A subresource at the wrong level or with the wrong method.
        ("DELETE", "/shop", "acl", &[]),
        ("DELETE", "/shop", "versioning", &[]),
        ("GET", "/shop/k", "cors", &[]),
        ("POST", "/shop", "", &[]),
        ("POST", "/shop", "uploads", &[]),
        ("POST", "/shop/k", "", &[]),
        ("POST", "/shop/k", "delete", &[]),
        ("HEAD", "/shop", "acl", &[]),
        ("HEAD", "/shop/k", "uploadId=1", &[]),
        ("GET", "/shop", "uploadId=1", &[]),
        ("PUT", "/", "", &[]),
        ("HEAD", "/", "", &[]),
        ("DELETE", "/", "", &[]),
        ("GET", "/", "acl", &[]),
        ("GET", "//k", "", &[]),
        // Multipart parameters half there, or mixed with a subresource.
        ("PUT", "/shop/k", "partNumber=1", &[]),
        ("PUT", "/shop/k", "uploadId=u", &[]),
        ("PUT", "/shop/k", "uploadId=u&partNumber=1&tagging", &[]),
        ("POST", "/shop/k", "uploads&uploadId=u", &[]),
        ("GET", "/shop/k", "uploadId=u&acl", &[]),
        // Other methods, list-type other than 2, paths that are not paths.
        ("PATCH", "/shop/k", "", &[]),
        ("OPTIONS", "/shop", "", &[]),
        ("get", "/shop", "", &[]),
        ("GET", "/shop", "list-type=1", &[]),
        ("GET", "shop/k", "", &[]),
        ("GET", "*", "", &[]),
        ("GET", "http://shop/k", "", &[]),
    ];
    for (method, path, query, headers) in cases {
        assert_eq!(
            s3(method, path, query, headers),
            None,
            "{method} {path}?{query}"
        );
    }
}

#[test]
fn json_protocol_target() {
    let a =
        |headers: &[(&str, &str)]| action("dynamodb", "POST", "/", None, &h(headers), Some(b"{}"));
    assert_eq!(
        a(&[("x-amz-target", "DynamoDB_20120810.PutItem")]).as_deref(),
        Some("PutItem")
    );
    assert_eq!(
        a(&[("X-Amz-Target", " AWSCognitoIdentityProviderService.SignUp ")]).as_deref(),
        Some("SignUp")
    );
    assert_eq!(
        a(&[("x-amz-target", "a.b.c.GetThing")]).as_deref(),
        Some("GetThing")
    );
    assert_eq!(a(&[("x-amz-target", "PutItem")]), None);
    assert_eq!(a(&[("x-amz-target", "DynamoDB_20120810.")]), None);
    assert_eq!(a(&[("x-amz-target", "DynamoDB_20120810.Put Item")]), None);
    assert_eq!(a(&[("x-amz-target", "DynamoDB_20120810.Put-Item")]), None);
    // Two targets that disagree.
    assert_eq!(
        a(&[
            ("x-amz-target", "X.GetItem"),
            ("x-amz-target", "X.DeleteItem")
        ]),
        None
    );
    // A target and an Action that disagree.
    assert_eq!(
        action(
            "sqs",
            "POST",
            "/",
            Some("Action=ListQueues"),
            &h(&[("x-amz-target", "AmazonSQS.DeleteQueue")]),
            None
        ),
        None
    );
    assert_eq!(
        action(
            "sqs",
            "POST",
            "/",
            Some("Action=DeleteQueue"),
            &h(&[("x-amz-target", "AmazonSQS.DeleteQueue")]),
            None
        )
        .as_deref(),
        Some("DeleteQueue")
    );
}

#[test]
fn smithy_rpc_v2_cbor() {
    let cbor = h(&[
        ("smithy-protocol", "rpc-v2-cbor"),
        ("content-type", "application/cbor"),
    ]);
    let a = |path: &str| action("monitoring", "POST", path, None, &cbor, Some(b"\xa0"));
    assert_eq!(
        a("/service/GraniteServiceVersion20100801/operation/ListMetrics").as_deref(),
        Some("ListMetrics")
    );
    assert_eq!(
        a("/prefix/service/S/operation/PutMetricData").as_deref(),
        Some("PutMetricData")
    );
    assert_eq!(a("/service/S/ops/PutMetricData"), None);
    assert_eq!(a("/operation/PutMetricData"), None);
    assert_eq!(a("/"), None);
}

#[test]
fn query_protocol_action() {
    let form = h(&[(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )]);
    // In the body, as botocore sends it.
    assert_eq!(
        action(
            "ec2",
            "POST",
            "/",
            None,
            &form,
            Some(b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1")
        )
        .as_deref(),
        Some("TerminateInstances")
    );
    assert_eq!(
        action(
            "sts",
            "POST",
            "/",
            None,
            &form,
            Some(b"Version=2011-06-15&Action=GetCallerIdentity")
        )
        .as_deref(),
        Some("GetCallerIdentity")
    );
    // In the query string.
    assert_eq!(
        action(
            "ec2",
            "GET",
            "/",
            Some("Action=DescribeInstances&Version=2016-11-15"),
            &[],
            None
        )
        .as_deref(),
        Some("DescribeInstances")
    );
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            Some("Action=ListUsers"),
            &form,
            Some(b"Version=2010-05-08")
        )
        .as_deref(),
        Some("ListUsers")
    );
    // Both, agreeing or not.
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            Some("Action=ListUsers"),
            &form,
            Some(b"Action=ListUsers")
        )
        .as_deref(),
        Some("ListUsers")
    );
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            Some("Action=ListUsers"),
            &form,
            Some(b"Action=DeleteUser")
        ),
        None
    );
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            None,
            &form,
            Some(b"Action=ListUsers&Action=DeleteUser")
        ),
        None
    );
    // Another spelling of the name counts as a disagreement too.
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            None,
            &form,
            Some(b"Action=ListUsers&action=DeleteUser")
        ),
        None
    );
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            None,
            &form,
            Some(b"Action=ListUsers&%41ction=DeleteUser")
        ),
        None
    );
    // A body that is not a form is not read.
    assert_eq!(
        action(
            "iam",
            "POST",
            "/",
            None,
            &h(&[("content-type", "application/json")]),
            Some(b"Action=DeleteUser")
        ),
        None
    );
    assert_eq!(
        action("iam", "POST", "/", None, &[], Some(b"Action=DeleteUser")),
        None
    );
    // Not a name.
    assert_eq!(
        action("iam", "POST", "/", None, &form, Some(b"Action=")),
        None
    );
    assert_eq!(
        action("iam", "POST", "/", None, &form, Some(b"Action=List+Users")),
        None
    );
    assert_eq!(
        action("iam", "POST", "/", None, &form, Some(b"Action")),
        None
    );
}

#[test]
fn other_rest_services_are_none() {
    assert_eq!(
        action(
            "lambda",
            "POST",
            "/2015-03-31/functions/my%3Afn/invocations",
            None,
            &h(&[("content-type", "application/json")]),
            Some(b"{}")
        ),
        None
    );
    assert_eq!(
        action("route53", "GET", "/2013-04-01/hostedzone", None, &[], None),
        None
    );
    // S3 is only S3: other signing names fall back to the generic rules.
    assert_eq!(
        action("s3-object-lambda", "GET", "/shop/k", None, &[], None),
        None
    );
}

#[test]
fn full_names_and_reads() {
    assert_eq!(full_action("s3", "PutObject"), "s3:PutObject");
    assert_eq!(
        full_action("ec2", "TerminateInstances"),
        "ec2:TerminateInstances"
    );
    for read in [
        "GetObject",
        "ListObjectsV2",
        "ListBuckets",
        "DescribeInstances",
        "HeadObject",
        "HeadBucket",
        "SelectObjectContent",
        "BatchGetItem",
        "Query",
        "Scan",
        "GetCallerIdentity",
        "Get",
        "List",
    ] {
        assert!(is_read_action(read), "{read}");
    }
    for write in [
        "PutObject",
        "DeleteObject",
        "DeleteObjects",
        "TerminateInstances",
        "CreateBucket",
        "BatchWriteItem",
        "CopyObject",
        "UploadPart",
        "Getaway",
        "Listen",
        "Headline",
        "Scanner",
        "Querying",
        "",
        "get",
        "RestoreObject",
        "CompleteMultipartUpload",
    ] {
        assert!(!is_read_action(write), "{write}");
    }
    // Every S3 answer is classified.
    for (_, _, _, _, _, want) in BOTO3_S3 {
        if let Some(a) = want {
            let read = a.starts_with("Get")
                || a.starts_with("List")
                || a.starts_with("Head")
                || a.starts_with("Select");
            assert_eq!(is_read_action(a), read, "{a}");
        }
    }
}
