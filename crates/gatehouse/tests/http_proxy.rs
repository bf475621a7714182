//! HTTP and AWS connections through a real `gatehouse serve`: a real HTTP
//! API that needs a credential the caller never has
//! (tests/support/http_api.py), and moto's S3 server with IAM keys and
//! signatures enforced, driven by boto3 and the AWS CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;

/// A response: status, headers (lower-case names), body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    })
}

const CRM_SECRET: &str = "crm-upstream-secret-Zx81-never-seen";

fn policy(port: &str) -> String {
    format!(
        r#"
[[connections]]
name = "crm"
kind = "http"
url = "http://127.0.0.1:{port}"
bearer = {{ env = "CRM_TOKEN" }}
groups = ["agents"]

[[connections]]
name = "crm-basic"
kind = "http"
url = "http://127.0.0.1:{port}/"
basic = {{ username = "svc", password = {{ env = "CRM_TOKEN" }} }}
groups = ["agents"]

[[connections]]
name = "crm-key"
kind = "http"
url = "http://127.0.0.1:{port}"
header = {{ name = "X-Api-Key", value = {{ env = "CRM_TOKEN" }} }}
groups = ["agents"]

[[rules]]
name = "no-deletes-on-crm"
connections = ["crm"]
methods = ["DELETE"]
paths = ["/customers/*"]
action = "deny"

[[rules]]
name = "refunds-need-approval"
connections = ["crm"]
methods = ["POST"]
paths = ["/refunds"]
action = "review"
approvers = ["dba"]

[[rules]]
name = "no-big-refunds"
connections = ["crm"]
json = [{{ path = "$.amount", pattern = "^[0-9]{{5,}}$" }}]
action = "deny"
message = "refunds of 10000 or more go through finance"

[[masks]]
connections = ["crm"]
json_paths = ["$..email", "$.customers[*].card_number"]
method = "redact"

[[detectors]]
connections = ["crm"]
kinds = ["email"]
"#
    )
}

fn upstream_log(api: &Api) -> Vec<Value> {
    let url = format!("http://127.0.0.1:{}/log", api.port);
    let r = send("GET", &url, Some(CRM_SECRET), &[], None);
    r.json()["log"].as_array().cloned().unwrap_or_default()
}

#[test]
fn http_connections_inject_credentials_deny_hold_mask_and_record() {
    let api = Api::start(CRM_SECRET);
    let s = Server::start();
    apply_env(&s, &policy(&api.port), &[("CRM_TOKEN", CRM_SECRET)]);
    let bot = token(&s, "bot", "agents");
    let dana = token(&s, "dana", "dba");
    let base = format!("{}/proxy", s.url);
    let crm = |p: &str| format!("{base}/crm{p}");

    // The upstream needs its credential; the caller has only its token.
    let direct = send(
        "GET",
        &format!("http://127.0.0.1:{}/customers", api.port),
        None,
        &[],
        None,
    );
    assert_eq!(direct.status, 401);
    assert_eq!(send("GET", &crm("/customers"), None, &[], None).status, 401);
    assert_eq!(
        send("GET", &crm("/customers"), Some("gh_wrong"), &[], None).status,
        401
    );
    let outsider = token(&s, "eve", "marketing");
    let r = send("GET", &crm("/customers"), Some(&outsider), &[], None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agents")
    );

    // Masked JSON: by path at any depth, and detectors on free text.
    let r = send("GET", &crm("/customers"), Some(&bot), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("set-cookie").is_none(),
        "upstream cookies stay in the gateway"
    );
    let v = r.json();
    let ann = &v["customers"][0];
    assert_eq!(ann["name"], "Ann Lee");
    assert_eq!(ann["email"], "[REDACTED]");
    assert_eq!(ann["card_number"], "[REDACTED]");
    assert_eq!(ann["contacts"][0]["email"], "[REDACTED]");
    assert_eq!(ann["contacts"][0]["kind"], "work");
    assert_eq!(ann["notes"], "prefers mail to [REDACTED:email]");
    assert_eq!(v["owner"]["email"], "[REDACTED]");
    assert!(!r.text().contains("@example"), "{}", r.text());
    // One customer: a different shape, the same masks by path.
    let one = send("GET", &crm("/customers/2"), Some(&bot), &[], None).json();
    assert_eq!(
        (one["email"].as_str(), one["name"].as_str()),
        (Some("[REDACTED]"), Some("Bo Chen"))
    );

    // What the caller sends that looks like a credential never crosses;
    // the gateway's bearer does.
    let r = send(
        "GET",
        &crm("/echo?page=2&access_token=stolen"),
        Some(&bot),
        &[
            ("x-api-key", "fake"),
            ("cookie", "a=b"),
            ("x-service-token", "t"),
            ("x-request-id", "r1"),
        ],
        None,
    );
    let echo = r.json();
    assert_eq!(echo["auth"], "bearer");
    assert_eq!(echo["query"], "page=2");
    let names: Vec<&str> = echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for gone in ["x-api-key", "cookie", "x-service-token"] {
        assert!(
            !names.contains(&gone),
            "{gone} reached the upstream: {names:?}"
        );
    }
    assert!(names.contains(&"x-request-id"));
    // Basic auth and a custom header.
    let r = send(
        "GET",
        &format!("{base}/crm-basic/echo"),
        Some(&bot),
        &[],
        None,
    );
    assert_eq!(r.json()["auth"], "basic");
    let r = send(
        "GET",
        &format!("{base}/crm-key/echo"),
        Some(&bot),
        &[("x-api-key", "mine")],
        None,
    );
    assert_eq!(r.json()["auth"], "header");

    // Large responses stream through where no mask applies.
    let r = send(
        "GET",
        &format!("{base}/crm-key/large?mb=48"),
        Some(&bot),
        &[],
        None,
    );
    assert_eq!((r.status, r.body.len()), (200, 48 << 20));

    // A denied DELETE, however the path is spelled.
    for p in [
        "/customers/1",
        "/customers/./1",
        "//customers//1",
        "/Customers/1",
        "/x/../customers/1",
        "/customers/%31",
    ] {
        let r = send("DELETE", &crm(p), Some(&bot), &[], None);
        assert_eq!(r.status, 403, "{p}: {}", r.text());
        assert_eq!(r.json()["error"]["rule"], "no-deletes-on-crm", "{p}");
    }
    let r = send("DELETE", &crm("/customers%2F1"), Some(&bot), &[], None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        upstream_log(&api).iter().all(|e| e["method"] != "DELETE"),
        "no DELETE reached the upstream"
    );

    // A rule on a JSON field of the request.
    let r = send(
        "POST",
        &crm("/refunds"),
        Some(&bot),
        &[],
        Some(r#"{"order": 7, "amount": 250000}"#),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["rule"], "no-big-refunds");
    assert!(r.text().contains("finance"));

    // A POST held for review, approved from the CLI, then run once.
    // Its body names a customer: the approvers see it, the recording and the
    // audit log do not (the detectors redact the address; checked below).
    let body = r#"{"order": 1234, "amount": 120, "note": "for ann@example.com"}"#;
    let r = send("POST", &crm("/refunds"), Some(&bot), &[], Some(body));
    assert_eq!(r.status, 202, "{}", r.text());
    let held = r.json();
    let review = held["review_id"].as_str().unwrap().to_string();
    assert!(held["approve_command"].as_str().unwrap().contains(&review));
    assert!(upstream_log(&api).iter().all(|e| e["path"] != "/refunds"));
    // The same request again is the same review; the requester cannot approve it.
    let again = send("POST", &crm("/refunds"), Some(&bot), &[], Some(body)).json();
    assert_eq!(again["review_id"], review.as_str());
    let own = s.cli(&bot, &["reviews", "approve", &review]);
    assert!(!own.status.success());
    let shown = ok(s.cli(&dana, &["reviews", "show", &review]));
    assert!(
        shown.contains("POST /refunds")
            && shown.contains("1234")
            && shown.contains("for ann@example.com"),
        "{shown}"
    );
    ok(s.cli(
        &dana,
        &["reviews", "approve", &review, "--reason", "refund ok"],
    ));
    // A different body is not covered.
    let other = send(
        "POST",
        &crm("/refunds"),
        Some(&bot),
        &[],
        Some(r#"{"order": 1234, "amount": 999}"#),
    );
    assert_eq!(other.status, 202);
    assert_ne!(other.json()["review_id"], review.as_str());
    let r = send("POST", &crm("/refunds"), Some(&bot), &[], Some(body));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["received"]["order"], 1234);
    let refunds: Vec<Value> = upstream_log(&api)
        .into_iter()
        .filter(|e| e["path"] == "/refunds")
        .collect();
    assert_eq!(
        refunds.len(),
        1,
        "the approved request ran exactly once: {refunds:?}"
    );
    assert!(
        refunds[0]["body"]
            .as_str()
            .unwrap()
            .contains("for ann@example.com"),
        "it ran as sent: {refunds:?}"
    );
    // Used once: sending it again asks for a new review.
    let r = send("POST", &crm("/refunds"), Some(&bot), &[], Some(body));
    assert_eq!(r.status, 202);
    assert_ne!(r.json()["review_id"], review.as_str());

    // Where no rule reads it, a request body streams through, with its length.
    let r = send(
        "POST",
        &format!("{base}/crm-key/refunds"),
        Some(&bot),
        &[],
        Some(r#"{"order": 99, "amount": 5}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["received"]["order"], 99);

    // Recorded: who, what, the decision, and the masked response.
    let statements = recorded(&s, "crm", "http", |sts| {
        sts.iter().any(|st| {
            st["sql"] == "GET /customers" && st["result"].to_string().contains("[REDACTED]")
        }) && sts.iter().any(|st| {
            st["sql"]
                .as_str()
                .unwrap_or_default()
                .starts_with("DELETE /customers/1")
                && st["decision"] == "deny"
                && st["rule"] == "no-deletes-on-crm"
        })
    });
    let text = Value::from(statements).to_string();
    assert!(
        !text.contains(CRM_SECRET) && !text.contains("ann@example.com"),
        "{text}"
    );
    assert!(
        !s.drain_log().contains(CRM_SECRET),
        "the upstream credential is never logged"
    );
    let audit = ok(s.cli(&s.admin, &["audit", "export", "--since", "1h"]));
    assert!(
        audit.contains("for [REDACTED:email]") && !audit.contains("ann@example.com"),
        "{audit}"
    );
    // Users see no upstream credential settings.
    let c = json(s.cli(&bot, &["connections", "show", "crm", "--json"]));
    assert!(c["settings"].get("http_auth").is_none(), "{c}");
}

/// The statements recorded for `connection`, once `done` holds for them
/// (the recorder writes in the background); every session is `protocol`.
fn recorded(
    s: &Server,
    connection: &str,
    protocol: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let list = json(s.cli(
            &s.admin,
            &["sessions", "list", "--connection", connection, "--json"],
        ));
        let mut statements = Vec::new();
        for x in list["sessions"].as_array().unwrap() {
            assert_eq!(x["protocol"], protocol, "{x}");
            let shown = json(s.cli(
                &s.admin,
                &["sessions", "show", x["id"].as_str().unwrap(), "--json"],
            ));
            statements.extend(shown["statements"].as_array().cloned().unwrap_or_default());
        }
        if done(&statements) {
            return statements;
        }
        assert!(
            std::time::Instant::now() < end,
            "not recorded: {statements:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs a Python snippet with boto3 against the gateway's AWS listener.
fn boto(s: &Server, key_id: &str, secret: &str, session: &str, code: &str) -> Value {
    let script = format!(
        r#"
import json, boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="http://{aws}", region_name="us-east-1",
    aws_access_key_id="{key_id}", aws_secret_access_key="{secret}", aws_session_token="{session}",
    config=Config(retries={{"max_attempts": 0}}, s3={{"addressing_style": "path"}}))
out = {{}}
def call(name, fn):
    try:
        out[name] = {{"ok": fn()}}
    except botocore.exceptions.ClientError as e:
        out[name] = {{"code": e.response["Error"]["Code"], "message": e.response["Error"].get("Message", "")}}
{code}
print(json.dumps(out, default=str))
"#,
        aws = s.aws
    );
    let o = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn aws_connections_re_sign_sdk_requests_and_deny_actions() {
    let mut moto = S3::start("docs");
    let s = Server::start();
    assert!(
        !s.aws.is_empty(),
        "the AWS listener is announced: {}",
        s.startup
    );
    apply_env(
        &s,
        &format!(
            r#"
[[connections]]
name = "s3"
kind = "aws"
url = "http://127.0.0.1:{port}"
access_key_id = "{key}"
secret_access_key = {{ env = "S3_SECRET" }}
region = "us-east-1"
groups = ["agents"]

[[rules]]
name = "no-s3-deletes"
connections = ["s3"]
actions = ["s3:DeleteObject"]
action = "deny"

[[rules]]
name = "contracts-reviewed"
connections = ["s3"]
actions = ["s3:PutObject"]
paths = ["/docs/contracts/*"]
action = "review"
approvers = ["dba"]
"#,
            port = moto.port,
            key = moto.key.0
        ),
        &[("S3_SECRET", &moto.key.1)],
    );
    let bot = token(&s, "bot", "agents");

    // moto checks signatures: an unsigned request is refused there. (Its
    // own check fails on keys with '+', '=' or non-ASCII characters, so
    // keys and prefixes here have only letters, digits, spaces and
    // the separating slash.)
    let unsigned = Command::new("python3")
        .args([
            "-c",
            &format!(
                r#"
import boto3, botocore
from botocore.config import Config
c = boto3.client("s3", endpoint_url="http://127.0.0.1:{}", region_name="us-east-1", config=Config(signature_version=botocore.UNSIGNED))
try:
    c.put_object(Bucket="docs", Key="x", Body=b"1"); print("accepted")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
"#,
                moto.port
            ),
        ])
        .output()
        .unwrap();
    let unsigned = String::from_utf8_lossy(&unsigned.stdout).trim().to_string();
    assert_ne!(unsigned, "accepted", "moto must refuse unsigned requests");

    let out = boto(
        &s,
        "s3",
        &bot,
        &bot,
        r#"
call("put", lambda: s3.put_object(Bucket="docs", Key="notes/q3 report.txt", Body=b"hello gatehouse")["ResponseMetadata"]["HTTPStatusCode"])
call("get", lambda: s3.get_object(Bucket="docs", Key="notes/q3 report.txt")["Body"].read().decode())
call("list", lambda: [o["Key"] for o in s3.list_objects_v2(Bucket="docs", Prefix="notes")["Contents"]])
call("delete", lambda: s3.delete_object(Bucket="docs", Key="notes/q3 report.txt"))
call("delete_many", lambda: s3.delete_objects(Bucket="docs", Delete={"Objects": [{"Key": "notes/q3 report.txt"}]}))
"#,
    );
    assert_eq!(out["put"]["ok"], 200, "{out}");
    assert_eq!(out["get"]["ok"], "hello gatehouse", "{out}");
    assert_eq!(out["list"]["ok"], json!(["notes/q3 report.txt"]), "{out}");
    assert_eq!(out["delete"]["code"], "AccessDenied", "{out}");
    assert!(
        out["delete"]["message"]
            .as_str()
            .unwrap()
            .contains("no-s3-deletes"),
        "{out}"
    );
    assert_eq!(out["delete_many"]["code"], "AccessDenied", "{out}");
    // The object is still there, written with the gateway's key.
    let objects = moto.list();
    assert_eq!(objects["notes/q3 report.txt"][0], 15, "{objects:?}");

    // A signature made with another secret than the token is refused.
    let out = boto(
        &s,
        "s3",
        "not-the-token",
        &bot,
        r#"call("get", lambda: s3.get_object(Bucket="docs", Key="notes/q3 report.txt"))"#,
    );
    assert_eq!(out["get"]["code"], "SignatureDoesNotMatch", "{out}");
    // A wrong token is refused; a connection the caller may not use too.
    let out = boto(
        &s,
        "s3",
        "gh_nope",
        "gh_nope",
        r#"call("get", lambda: s3.get_object(Bucket="docs", Key="x"))"#,
    );
    assert_eq!(out["get"]["code"], "InvalidClientTokenId", "{out}");
    let eve = token(&s, "eve", "marketing");
    let out = boto(
        &s,
        "s3",
        &eve,
        &eve,
        r#"call("get", lambda: s3.get_object(Bucket="docs", Key="x"))"#,
    );
    assert_eq!(out["get"]["code"], "AccessDenied", "{out}");

    // A write held for review: the SDK error names the review and the
    // command; once approved, the same call runs once.
    let dba = token(&s, "dana", "dba");
    let put = r#"call("put", lambda: s3.put_object(Bucket="docs", Key="contracts/acme 2027.txt", Body=b"signed")["ResponseMetadata"]["HTTPStatusCode"])"#;
    let out = boto(&s, "s3", &bot, &bot, put);
    assert_eq!(out["put"]["code"], "GatehouseReviewPending", "{out}");
    let message = out["put"]["message"].as_str().unwrap();
    let review = message
        .split_whitespace()
        .find(|w| w.starts_with("rv_"))
        .expect("review id")
        .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .to_string();
    assert!(
        message.contains(&format!("gatehouse reviews approve {review}")),
        "{message}"
    );
    assert!(!moto.list().contains_key("contracts/acme 2027.txt"));
    ok(s.cli(&dba, &["reviews", "approve", &review]));
    let out = boto(&s, "s3", &bot, &bot, put);
    assert_eq!(out["put"]["ok"], 200, "{out}");
    assert_eq!(moto.list()["contracts/acme 2027.txt"][0], 6);

    // The AWS CLI works the same way.
    let o = Command::new("aws")
        .args([
            "s3",
            "cp",
            "s3://docs/notes/q3 report.txt",
            "-",
            "--endpoint-url",
        ])
        .arg(format!("http://{}", s.aws))
        .env("AWS_ACCESS_KEY_ID", "s3")
        .env("AWS_SECRET_ACCESS_KEY", &bot)
        .env("AWS_SESSION_TOKEN", &bot)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("aws cli");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello gatehouse",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Recorded with the action; the token and the key's secret never appear.
    let line = |st: &Value| {
        format!(
            "{} {}",
            st["decision"].as_str().unwrap_or(""),
            st["sql"].as_str().unwrap_or("")
        )
    };
    let statements = recorded(&s, "s3", "aws", |sts| {
        sts.iter()
            .any(|st| line(st).starts_with("allow PUT /docs/notes/q3 report.txt (s3:PutObject)"))
            && sts.iter().any(|st| {
                line(st).starts_with("deny DELETE /docs/notes/q3 report.txt (s3:DeleteObject)")
            })
    });
    let text = Value::from(statements).to_string();
    assert!(
        !text.contains(&bot) && !text.contains(&moto.key.1),
        "{text}"
    );
    let log = s.drain_log();
    assert!(!log.contains(&moto.key.1) && !log.contains(&bot));
}

#[test]
fn a_client_certificate_and_a_private_ca_reach_an_mtls_api() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().to_str().unwrap().to_string();
    let api = Api::start_with(&[("CRM_MTLS_DIR", &dir)]);
    let s = Server::start();
    let file = |n: &str| format!("{dir}/{n}");
    let toml = format!(
        r#"
[[connections]]
name = "mtls"
kind = "http"
url = "https://127.0.0.1:{port}"
client_cert = {{ cert = {{ file = "{cert}" }}, key = {{ file = "{key}" }} }}
ca_cert = {{ file = "{ca}" }}
groups = ["agents"]

[[connections]]
name = "no-cert"
kind = "http"
url = "https://127.0.0.1:{port}"
bearer = {{ env = "UNUSED_TOKEN" }}
ca_cert = {{ file = "{ca}" }}
groups = ["agents"]

[[connections]]
name = "untrusted"
kind = "http"
url = "https://127.0.0.1:{port}"
client_cert = {{ cert = {{ file = "{cert}" }}, key = {{ file = "{key}" }} }}
groups = ["agents"]
"#,
        port = api.port,
        cert = file("client.pem"),
        key = file("client.key"),
        ca = file("ca.pem"),
    );
    apply_env(&s, &toml, &[("UNUSED_TOKEN", "x")]);
    let bot = token(&s, "bot", "agents");
    let r = send(
        "GET",
        &format!("{}/proxy/mtls/echo", s.url),
        Some(&bot),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["auth"], "client_cert");
    // Without the certificate the API refuses the TLS handshake: 502, said so.
    let r = send(
        "GET",
        &format!("{}/proxy/no-cert/echo", s.url),
        Some(&bot),
        &[],
        None,
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-cert"),
        "{}",
        r.text()
    );
    // Without the private CA the gateway does not trust the API.
    let r = send(
        "GET",
        &format!("{}/proxy/untrusted/echo", s.url),
        Some(&bot),
        &[],
        None,
    );
    assert_eq!(r.status, 502, "{}", r.text());
    let key = std::fs::read_to_string(file("client.key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(
        !s.drain_log().contains(key_body),
        "the private key is never logged"
    );
}

#[test]
fn revoking_a_token_ends_a_response_still_streaming() {
    let api = Api::start(CRM_SECRET);
    let s = Server::start();
    apply_env(&s, &policy(&api.port), &[("CRM_TOKEN", CRM_SECRET)]);
    let bot = token(&s, "streamer", "agents");
    let url = format!("{}/proxy/crm-key/slow?secs=60", s.url);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let bot = bot.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rustls::crypto::ring::default_provider().install_default();
            rt.block_on(async {
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                let mut r = client.get(&url).bearer_auth(&bot).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let mut got = 0usize;
                loop {
                    match r.chunk().await {
                        Ok(Some(c)) => {
                            got += c.len();
                            let _ = tx.send(got);
                        }
                        Ok(None) => return Ok(got),
                        Err(e) => return Err(format!("{e:?}")),
                    }
                }
            })
        })
    };
    // Once bytes flow, the token is revoked: the stream must break off
    // long before its 60 seconds.
    assert!(rx.recv().unwrap() > 0);
    ok(s.cli(&s.admin, &["tokens", "revoke", "streamer"]));
    let ended = reader.join().unwrap();
    assert!(ended.is_err(), "the response ran to its end: {ended:?}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let reason = loop {
        let v = json(s.cli(
            &s.admin,
            &[
                "sessions", "list", "--user", "streamer", "--limit", "1", "--json",
            ],
        ));
        if let Some(r) = v["sessions"][0]["end_reason"].as_str() {
            break r.to_string();
        }
        assert!(std::time::Instant::now() < end, "the session did not end");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(reason, "access ended");
}

#[test]
fn an_aws_connection_can_assume_a_role_for_each_caller() {
    let mut moto = S3::start_with(&["docs", "--role"]);
    let role = moto.role.clone().expect("role");
    let (port, key, secret) = (moto.port.clone(), moto.key.0.clone(), moto.key.1.clone());
    let s = Server::start();
    let toml = |extra: &str| {
        format!(
            r#"
[[connections]]
name = "s3-role"
kind = "aws"
url = "http://127.0.0.1:{port}"
access_key_id = "{key}"
secret_access_key = {{ env = "S3_SECRET" }}
role_arn = "{role}"
{extra}
groups = ["agents"]

[[connections]]
name = "s3-key"
kind = "aws"
url = "http://127.0.0.1:{port}"
access_key_id = "{key}"
secret_access_key = {{ env = "S3_SECRET" }}
groups = ["agents"]
"#,
        )
    };
    let secret_env = [("S3_SECRET", secret.as_str())];
    apply_env(&s, &toml(""), &secret_env);
    let bot = token(&s, "bot", "agents");
    let put = |conn: &str| {
        boto(
            &s,
            conn,
            &bot,
            &bot,
            r#"call("put", lambda: s3.put_object(Bucket="docs", Key="by role.txt", Body=b"via sts")["ResponseMetadata"]["HTTPStatusCode"])"#,
        )
    };
    // The key alone may not write: moto refuses it.
    let out = put("s3-key");
    assert_eq!(out["put"]["code"], "AccessDenied", "{out}");
    assert!(
        !out["put"]["message"]
            .as_str()
            .unwrap()
            .contains("Gatehouse"),
        "moto's refusal: {out}"
    );
    // Through the role it may; the temporary credentials are reused.
    let out = put("s3-role");
    assert_eq!(out["put"]["ok"], 200, "{out}");
    let out = put("s3-role");
    assert_eq!(out["put"]["ok"], 200, "{out}");
    assert_eq!(moto.list()["by role.txt"][0], 7);
    // When STS cannot be reached, the error says so (and nothing is sent).
    apply_env(&s, &toml(r#"sts_url = "http://127.0.0.1:9""#), &secret_env);
    let out = put("s3-role");
    assert_eq!(out["put"]["code"], "ServiceUnavailable", "{out}");
    assert!(
        out["put"]["message"]
            .as_str()
            .unwrap()
            .contains("could not assume its role"),
        "{out}"
    );
    assert!(!s.drain_log().contains(&secret));
}
