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
    let path = s.dir.path().join("crm.toml");
    std::fs::write(&path, policy(&api.port)).unwrap();
    ok(s.cli_with(
        &s.admin,
        &["apply", "-f", path.to_str().unwrap()],
        None,
        &[("CRM_TOKEN", CRM_SECRET)],
    ));
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
    let body = r#"{"order": 1234, "amount": 120}"#;
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
        shown.contains("POST /refunds") && shown.contains("1234"),
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
    // Used once: sending it again asks for a new review.
    let r = send("POST", &crm("/refunds"), Some(&bot), &[], Some(body));
    assert_eq!(r.status, 202);
    assert_ne!(r.json()["review_id"], review.as_str());

    // Recorded: who, what, the decision, and the masked response.
    let list = json(s.cli(
        &s.admin,
        &["sessions", "list", "--connection", "crm", "--json"],
    ));
    let sessions = list["sessions"].as_array().unwrap();
    assert!(sessions.iter().all(|x| x["protocol"] == "http"));
    let mut saw_masked = false;
    let mut saw_denied = false;
    for x in sessions {
        let id = x["id"].as_str().unwrap();
        let shown = json(s.cli(&s.admin, &["sessions", "show", id, "--json"]));
        let text = shown.to_string();
        assert!(
            !text.contains(CRM_SECRET) && !text.contains("ann@example.com"),
            "{text}"
        );
        for st in shown["statements"].as_array().unwrap() {
            let sql = st["sql"].as_str().unwrap_or_default();
            if sql == "GET /customers" {
                saw_masked |= st["result"].to_string().contains("[REDACTED]");
                assert_eq!(st["command"], "HTTP 200");
            }
            if sql.starts_with("DELETE /customers/1") {
                saw_denied |= st["decision"] == "deny" && st["rule"] == "no-deletes-on-crm";
            }
        }
    }
    assert!(saw_masked && saw_denied);
    assert!(
        !s.drain_log().contains(CRM_SECRET),
        "the upstream credential is never logged"
    );
    // Users see no upstream credential settings.
    let c = json(s.cli(&bot, &["connections", "show", "crm", "--json"]));
    assert!(c["settings"].get("http_auth").is_none(), "{c}");
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
    let path = s.dir.path().join("aws.toml");
    std::fs::write(
        &path,
        format!(
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
"#,
            port = moto.port,
            key = moto.key.0
        ),
    )
    .unwrap();
    ok(s.cli_with(
        &s.admin,
        &["apply", "-f", path.to_str().unwrap()],
        None,
        &[("S3_SECRET", &moto.key.1)],
    ));
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
    let list = json(s.cli(
        &s.admin,
        &["sessions", "list", "--connection", "s3", "--json"],
    ));
    let mut actions = Vec::new();
    for x in list["sessions"].as_array().unwrap() {
        assert_eq!(x["protocol"], "aws");
        let shown = json(s.cli(
            &s.admin,
            &["sessions", "show", x["id"].as_str().unwrap(), "--json"],
        ));
        let text = shown.to_string();
        assert!(
            !text.contains(&bot) && !text.contains(&moto.key.1),
            "{text}"
        );
        for st in shown["statements"].as_array().unwrap() {
            actions.push(format!(
                "{} {}",
                st["decision"].as_str().unwrap(),
                st["sql"].as_str().unwrap()
            ));
        }
    }
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("allow PUT /docs/notes/q3 report.txt (s3:PutObject)")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("deny DELETE /docs/notes/q3 report.txt (s3:DeleteObject)")),
        "{actions:?}"
    );
    let log = s.drain_log();
    assert!(!log.contains(&moto.key.1) && !log.contains(&bot));
}
