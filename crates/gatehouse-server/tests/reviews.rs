//! Reviews and grants through the API and a real driver: parameters are
//! part of what is approved, notifications reach real webhook receivers
//! (signed, retried), break-glass approval, and revocation on one replica
//! ending sessions on another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::{TestServer, connect, db_error, put_policy, unique, url};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_postgres::types::Type;

const DIRECT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Waits for a pending review whose statement contains `needle`.
async fn pending(s: &TestServer, token: &str, needle: &str, not: &[String]) -> Value {
    for _ in 0..1200 {
        let (status, v) = s.get("/v1/reviews?pending=true", token).await;
        assert_eq!(status, 200, "{v}");
        if let Some(r) = v["reviews"].as_array().unwrap().iter().find(|r| {
            r["statement"].as_str().is_some_and(|t| t.contains(needle))
                && !not.iter().any(|n| r["id"] == n.as_str())
        }) {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pending review for {needle}");
}

/// A server whose rule `rule` holds writes on connection `shop` for review
/// by group `dba`; the tokens of `bot` (group `agents`) and `dba1` (group
/// `dba`); a new table (named after `prefix`) with rows 1 and 2; a direct
/// connection.
async fn reviewed_writes(
    prefix: &str,
    rule: &str,
) -> (TestServer, String, String, String, tokio_postgres::Client) {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let bot = s.token("bot", &["agents"]).await;
    let dba = s.token("dba1", &["dba"]).await;
    let t = unique(prefix);
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int); INSERT INTO {t} VALUES (1), (2)"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({"rules": [{"name": rule, "statements": ["write"], "action": "review", "approvers": ["dba"]}]}),
    )
    .await;
    (s, bot, dba, t, direct)
}

#[tokio::test]
async fn parameters_are_part_of_what_is_approved() {
    let (s, bot, dba, t, direct) = reviewed_writes("rv_params", "check-deletes").await;
    let client = Arc::new(connect(&url(&s, &bot)).await);
    let sql = format!("DELETE FROM {t} WHERE id = $1");

    // Extended protocol, binary parameter 1: held, approved, runs once.
    let c = client.clone();
    let q = sql.clone();
    let run = tokio::spawn(async move { c.execute(q.as_str(), &[&1i32]).await });
    let r = pending(&s, &dba, &sql, &[]).await;
    assert_eq!(r["params"], "$1=1", "{r}");
    assert_eq!(r["requester"], "bot");
    let id = r["id"].as_str().unwrap().to_string();
    let (status, v) = s
        .post(&format!("/v1/reviews/{id}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(run.await.unwrap().unwrap(), 1);

    // The same statement with parameter 2 is another command: a new review.
    let c = client.clone();
    let q = sql.clone();
    let run = tokio::spawn(async move { c.execute(q.as_str(), &[&2i32]).await });
    let r2 = pending(&s, &dba, &sql, std::slice::from_ref(&id)).await;
    assert_eq!(r2["params"], "$1=2");
    let id2 = r2["id"].as_str().unwrap().to_string();
    // Long-poll: a waiter sees the decision as soon as it is made.
    let waiter = {
        let http = s.http.clone();
        let u = s.url(&format!("/v1/reviews/{id2}?wait=60s"));
        let tok = bot.clone();
        tokio::spawn(async move {
            http.get(u)
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let (status, v) = s
        .post(
            &format!("/v1/reviews/{id2}/reject"),
            &dba,
            json!({"reason": "keep row 2"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(waiter.await.unwrap()["review"]["state"], "rejected");
    let e = run.await.unwrap().unwrap_err();
    let (code, message, detail) = db_error(&e);
    assert_eq!(code, "42501");
    assert!(
        message.contains(&format!("review {id2} was rejected by dba1: keep row 2")),
        "{message}"
    );
    assert_eq!(detail, "rule: check-deletes");
    // The session is usable after the refusal.
    let rows = client
        .query(&format!("SELECT id FROM {t}") as &str, &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // A rule may require a reason; without one the statement is refused at
    // once, saying how to give one.
    put_policy(
        &s,
        json!({"rules": [{"name": "why", "statements": ["write"], "action": "review", "approvers": ["dba"], "require_reason": true}]}),
    )
    .await;
    let e = client
        .batch_execute(&format!("DELETE FROM {t}"))
        .await
        .unwrap_err();
    assert!(db_error(&e).1.contains("-- reason: why"), "{e:?}");
    let c = client.clone();
    let q = format!("-- reason: ticket 7\nDELETE FROM {t}");
    let run = tokio::spawn(async move { c.batch_execute(&q).await });
    let r3 = pending(&s, &dba, "ticket 7", &[]).await;
    assert_eq!(r3["reason"], "ticket 7");
    let id3 = r3["id"].as_str().unwrap();
    let (status, _) = s
        .post(&format!("/v1/reviews/{id3}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 200);
    run.await.unwrap().unwrap();

    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

/// The same bytes bound under another declared type are another value
/// (`3f800000` is 1065353216 as an `int4`, 1.0 as a `float4`): the types are
/// part of what is approved, so the second is another review rather than a
/// second waiter on the first one's approval.
#[tokio::test]
async fn parameter_types_are_part_of_what_is_approved() {
    let (s, bot, dba, t, direct) = reviewed_writes("rv_types", "check-writes").await;
    let sql = format!("UPDATE {t} SET id = $1 WHERE id = 1");
    let as_int = Arc::new(connect(&url(&s, &bot)).await);
    let as_float = Arc::new(connect(&url(&s, &bot)).await);
    let (c, q) = (as_int.clone(), sql.clone());
    let big = tokio::spawn(async move {
        let st = c.prepare_typed(&q, &[Type::INT4]).await.unwrap();
        c.execute(&st, &[&1_065_353_216i32]).await
    });
    let first = pending(&s, &dba, &sql, &[]).await;
    assert_eq!(first["params"], "$1=1065353216", "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();
    let (c, q) = (as_float.clone(), sql.clone());
    let one = tokio::spawn(async move {
        let st = c.prepare_typed(&q, &[Type::FLOAT4]).await.unwrap();
        c.execute(&st, &[&1.0f32]).await
    });
    let second = pending(&s, &dba, &sql, std::slice::from_ref(&first_id)).await;
    assert_eq!(second["params"], "$1=1", "{second}");
    let second_id = second["id"].as_str().unwrap();
    let (status, v) = s
        .post(&format!("/v1/reviews/{second_id}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(one.await.unwrap().unwrap(), 1);
    let (status, v) = s
        .post(
            &format!("/v1/reviews/{first_id}/reject"),
            &dba,
            json!({"reason": "too big"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(big.await.unwrap().is_err());
    let ids: Vec<i32> = direct
        .query(&format!("SELECT id FROM {t} ORDER BY id") as &str, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 2]);
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn approvers_break_glass_and_refusals_through_the_api() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let bot = s.token("bot", &["agents"]).await;
    let dba = s.token("dba1", &["dba"]).await;
    let oncall = s.token("pager", &["oncall"]).await;
    let other = s.token("eve", &["agents"]).await;
    put_policy(
        &s,
        json!({
            "break_glass": ["oncall"],
            "rules": [{"name": "two-keys", "statements": ["ddl"], "action": "review", "approvers": ["dba"], "approvals": 2, "timeout": "1m"}],
            "access": [{"connections": ["shop"], "requesters": ["agents"], "levels": ["write"], "approvers": ["dba"], "max_duration": "10m"}],
        }),
    )
    .await;
    let client = Arc::new(connect(&url(&s, &bot)).await);
    let t = unique("rv_glass");
    let c = client.clone();
    let q = format!("CREATE TABLE {t} (id int)");
    let run = tokio::spawn(async move { c.batch_execute(&q).await });
    let r = pending(&s, &dba, &t, &[]).await;
    let id = r["id"].as_str().unwrap().to_string();
    // Only the requester, approvers and break-glass members see it.
    let (_, v) = s.get("/v1/reviews", &other).await;
    assert!(
        !v["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str())
    );
    let (status, _) = s.get(&format!("/v1/reviews/{id}"), &other).await;
    assert_eq!(status, 404);
    let (status, v) = s
        .post(&format!("/v1/reviews/{id}/approve"), &other, json!({}))
        .await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = s
        .post(&format!("/v1/reviews/{id}/reject"), &dba, json!({}))
        .await;
    assert_eq!(status, 403);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a reason")
    );
    // One break-glass approval is enough, and is marked as such.
    let (status, v) = s
        .post(
            &format!("/v1/reviews/{id}/approve"),
            &oncall,
            json!({"reason": "outage"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["review"]["state"], "approved");
    assert_eq!(v["review"]["votes"][0]["break_glass"], true);
    run.await.unwrap().unwrap();
    let (status, v) = s
        .post(&format!("/v1/reviews/{id}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 409, "a decided review takes no votes: {v}");

    // Access requests outside the policy are refused with the reason.
    for (body, needle) in [
        (
            json!({"connection": "shop", "level": "ddl", "duration": "5m", "reason": "x"}),
            "not ddl",
        ),
        (
            json!({"connection": "shop", "level": "write", "duration": "5m"}),
            "needs a reason",
        ),
        (
            json!({"connection": "shop", "level": "write", "duration": "1h", "reason": "x"}),
            "between 1s and 10m",
        ),
    ] {
        let (status, v) = s.post("/v1/access/requests", &bot, body).await;
        assert_eq!(status, 403, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    let (status, v) = s
        .post(
            "/v1/access/requests",
            &dba,
            json!({"connection": "shop", "level": "write", "duration": "5m", "reason": "x"}),
        )
        .await;
    assert_eq!(status, 403, "dba is not a requester: {v}");
    let (status, v) = s
        .post(
            "/v1/access/requests",
            &bot,
            json!({"connection": "nope", "level": "write", "duration": "5m", "reason": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
        .await
        .unwrap();
}

/// What a webhook receiver got: (path, headers, body).
type Got = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

/// A real HTTP server that records requests; the first `fail` requests are
/// answered 503 (the receiver is down), later ones 200.
async fn receiver(fail: usize) -> (String, Got) {
    let got: Got = Arc::default();
    let seen = Arc::new(Mutex::new(0usize));
    let g = got.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let g = g.clone();
            let seen = seen.clone();
            async move {
                let n = {
                    let mut s = seen.lock().unwrap();
                    *s += 1;
                    *s
                };
                if n <= fail {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock()
                    .unwrap()
                    .push((uri.path().to_string(), headers, body));
                StatusCode::OK
            }
        },
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), got)
}

async fn wait_for(got: &Got, n: usize) -> Vec<(String, HeaderMap, String)> {
    for _ in 0..600 {
        if got.lock().unwrap().len() >= n {
            return got.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the webhook receiver got {} requests, not {n}",
        got.lock().unwrap().len()
    );
}

/// A server that sends reviews to a JSON webhook (`/hooks/gatehouse`, which
/// refuses the first `json_fail` deliveries) signed with `secret` and to a
/// Slack one (`/services/T0/B0/secret-part`), with connection `shop` for
/// group `agents`; and what each receiver got.
async fn notifying_server(json_fail: usize, secret: &str) -> (TestServer, Got, Got) {
    let (json_url, json_got) = receiver(json_fail).await;
    let (slack_url, slack_got) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path());
    c.notify_webhooks = vec![gatehouse_core::secret::Secret::new(format!(
        "{json_url}/hooks/gatehouse"
    ))];
    c.notify_slack = vec![gatehouse_core::secret::Secret::new(format!(
        "{slack_url}/services/T0/B0/secret-part"
    ))];
    c.notify_secret = Some(gatehouse_core::secret::Secret::new(secret));
    c.public_url = Some("https://gatehouse.example.com".into());
    let s = TestServer::start_with(dir, c).await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    (s, json_got, slack_got)
}

#[tokio::test]
async fn webhooks_get_signed_payloads_and_slack_messages() {
    let (s, json_got, slack_got) = notifying_server(1, "whsec-test-1").await;
    let bot = s.token("bot", &["agents"]).await;
    let dba = s.token("dba1", &["dba"]).await;
    put_policy(
        &s,
        json!({"access": [{"connections": ["shop"], "requesters": ["agents"], "levels": ["write"], "approvers": ["dba"]}]}),
    )
    .await;
    let (status, v) = s
        .post(
            "/v1/access/requests",
            &bot,
            json!({"connection": "shop", "level": "write", "duration": "15m", "reason": "fix order 1234"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["review"]["id"].as_str().unwrap().to_string();

    // The JSON receiver was down for the first attempt; the retry arrives.
    let got = wait_for(&json_got, 1).await;
    let (path, headers, body) = &got[0];
    assert_eq!(path, "/hooks/gatehouse");
    assert_eq!(headers["x-gatehouse-event"], "review.requested");
    let ts = headers["x-gatehouse-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-test-1").unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-gatehouse-signature"].to_str().unwrap(), expected);
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["review"]["id"], id.as_str());
    assert_eq!(payload["review"]["requester"], "bot");
    assert_eq!(payload["review"]["reason"], "fix order 1234");
    assert_eq!(payload["review"]["level"], "write");
    assert_eq!(
        payload["links"]["approve"],
        format!("https://gatehouse.example.com/v1/reviews/{id}/approve")
    );
    assert_eq!(
        payload["links"]["reject"],
        format!("https://gatehouse.example.com/v1/reviews/{id}/reject")
    );

    let slack = wait_for(&slack_got, 1).await;
    assert_eq!(slack[0].0, "/services/T0/B0/secret-part");
    let msg: Value = serde_json::from_str(&slack[0].2).unwrap();
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.contains(&id) && text.contains("bot") && text.contains("fix order 1234"),
        "{text}"
    );
    assert!(
        text.contains(&format!("gatehouse reviews approve {id}")),
        "{text}"
    );
    assert!(slack[0].1.get("x-gatehouse-signature").is_none());

    // The decision is announced too.
    let (status, _) = s
        .post(&format!("/v1/reviews/{id}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 200);
    let got = wait_for(&json_got, 2).await;
    assert_eq!(got[1].1["x-gatehouse-event"], "review.approved");
    // Neither the webhook URLs nor the signing secret reach the log-visible API.
    let (_, audit) = s.get("/v1/audit?limit=100", &s.admin).await;
    let audit = audit.to_string();
    assert!(!audit.contains("secret-part") && !audit.contains("whsec-test-1"));
}

/// A held statement reaches the audit log and the webhooks as the recording
/// keeps it: what the caller's content detectors find (here an email
/// address in the text, in a bound value and in the reason) is redacted
/// there. Approvers see the exact command, which is what runs.
#[tokio::test]
async fn held_statements_leave_the_gateway_with_detected_values_redacted() {
    let (s, json_got, slack_got) = notifying_server(0, "whsec-test-2").await;
    let bot = s.token("bot", &["agents"]).await;
    let dba = s.token("dba1", &["dba"]).await;
    let t = unique("rv_redact");
    let direct = connect(DIRECT).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, note text); INSERT INTO {t} VALUES (1, ''), (2, '')"
        ))
        .await
        .unwrap();
    put_policy(
        &s,
        json!({
            "rules": [{"name": "check-writes", "statements": ["write"], "action": "review", "approvers": ["dba"]}],
            "detectors": [{"connections": ["shop"], "kinds": ["email"]}]
        }),
    )
    .await;
    let client = Arc::new(connect(&url(&s, &bot)).await);

    // In the text and the reason (simple protocol).
    let c = client.clone();
    let sql = format!(
        "-- reason: asked by carol@example.com\nUPDATE {t} SET note = 'eve@example.com' WHERE id = 1"
    );
    let q = sql.clone();
    let run = tokio::spawn(async move { c.batch_execute(&q).await });
    let r = pending(&s, &dba, &format!("UPDATE {t}"), &[]).await;
    let id = r["id"].as_str().unwrap().to_string();
    // Approvers see what they approve.
    assert_eq!(r["statement"], sql.as_str());
    assert_eq!(r["reason"], "asked by carol@example.com");

    // In a bound value (extended protocol; text in binary, shown as text),
    // from another session (the first one waits).
    let c = Arc::new(connect(&url(&s, &bot)).await);
    let q = format!("UPDATE {t} SET note = $1 WHERE id = 2");
    let run2 = tokio::spawn(async move { c.execute(q.as_str(), &[&"mallory@example.com"]).await });
    let r2 = pending(&s, &dba, "SET note = $1", &[]).await;
    let id2 = r2["id"].as_str().unwrap().to_string();
    assert_eq!(r2["params"], "$1=mallory@example.com", "{r2}");

    // The approvals are of the exact commands: each runs as it was sent.
    for id in [&id, &id2] {
        let (status, v) = s
            .post(&format!("/v1/reviews/{id}/approve"), &dba, json!({}))
            .await;
        assert_eq!(status, 200, "{v}");
    }
    run.await.unwrap().unwrap();
    assert_eq!(run2.await.unwrap().unwrap(), 1);
    let notes: Vec<String> = direct
        .query(&format!("SELECT note FROM {t} ORDER BY id") as &str, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes, ["eve@example.com", "mallory@example.com"]);

    // Requests and decisions alike reach the webhooks redacted.
    let (hooks, slack) = (wait_for(&json_got, 4).await, wait_for(&slack_got, 4).await);
    for (_, _, body) in hooks.iter().chain(&slack) {
        assert!(body.contains("[REDACTED:email]"), "{body}");
        assert!(!body.contains("@example.com"), "{body}");
    }
    let payloads: Vec<Value> = hooks
        .iter()
        .map(|(_, _, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert!(payloads.iter().all(|p| p["redacted"] == true));
    let held = payloads
        .iter()
        .find(|p| p["review"]["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        held["review"]["statement"],
        format!(
            "-- reason: asked by [REDACTED:email]\nUPDATE {t} SET note = '[REDACTED:email]' WHERE id = 1"
        )
    );
    assert_eq!(held["review"]["reason"], "asked by [REDACTED:email]");
    let bound = payloads
        .iter()
        .find(|p| p["review"]["id"] == id2.as_str())
        .unwrap();
    assert_eq!(bound["review"]["params"], "$1=[REDACTED:email]");
    assert!(
        slack
            .iter()
            .all(|(_, _, b)| b.contains("gatehouse reviews show")),
        "{slack:?}"
    );
    // Nor does the audit log keep them.
    let (_, audit) = s.get("/v1/audit?limit=200", &s.admin).await;
    let audit = audit.to_string();
    assert!(audit.contains("review.requested"), "{audit}");
    assert!(!audit.contains("@example.com"), "{audit}");
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

/// Two replicas on one PostgreSQL store: a token or grant revoked through
/// one ends the sessions that depend on it on the other.
#[tokio::test]
async fn revocation_on_one_replica_ends_sessions_on_another() {
    let store = gatehouse_store::testing::fresh_pg_database()
        .await
        .expect("fresh database");
    let key = gatehouse_core::keyring::Keyring::generate_key();
    let mut a = common::replica(&store, &key).await;
    let mut b = common::replica(&store, &key).await;
    // The store was started by A: its admin token serves on B too.
    let admin = a.admin.clone();
    a.pg_connection("shop", DIRECT, None, &["staff"]).await;
    let staff = a.token("bot", &["staff"]).await;
    let contractor = a.token("ctr", &["contractors"]).await;
    let dba = a.token("dba1", &["dba"]).await;
    put_policy(
        &a,
        json!({"access": [{"connections": ["shop"], "requesters": ["contractors"], "approvers": ["dba"]}]}),
    )
    .await;

    // A token revoked on A: its session on B ends.
    let on_b = connect(&url(&b, &staff)).await;
    on_b.simple_query("SELECT 1").await.unwrap();
    let (status, _) = a.delete("/v1/tokens/bot", &a.admin).await;
    assert_eq!(status, 200);
    let mut ended = None;
    for _ in 0..600 {
        if let Err(e) = on_b.simple_query("SELECT 1").await {
            ended = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = ended.expect("the session on B outlived its token");
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("token was revoked"))
            || e.is_closed(),
        "{e}"
    );

    // A grant approved on A opens the connection on B; revoked on A, the
    // session on B ends.
    let (status, v) = a
        .post(
            "/v1/access/requests",
            &contractor,
            json!({"connection": "shop", "level": "read", "duration": "10m", "reason": "audit"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["review"]["id"].as_str().unwrap().to_string();
    let (status, v) = a
        .post(&format!("/v1/reviews/{id}/approve"), &dba, json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    let grant = v["review"]["grant_id"].as_str().unwrap().to_string();
    // B learns of the grant when the access epoch moves.
    let mut on_b = None;
    for _ in 0..600 {
        if let Ok((c, conn)) =
            tokio_postgres::connect(&url(&b, &contractor), tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            on_b = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let on_b = on_b.expect("the grant never opened the connection on B");
    on_b.simple_query("SELECT 1").await.unwrap();
    let (_, sessions) = b.get("/v1/sessions?user=ctr", &admin).await;
    assert_eq!(sessions["sessions"][0]["end_reason"], Value::Null);
    let (status, _) = a
        .delete(&format!("/v1/access/grants/{grant}"), &a.admin)
        .await;
    assert_eq!(status, 200);
    let reason = common::end_reason(&b, &admin, "ctr").await;
    assert_eq!(
        reason.expect("the session on B outlived its grant"),
        format!("ended by Gatehouse: its access grant {grant} ended")
    );
    assert!(on_b.simple_query("SELECT 1").await.is_err());

    a.stop().await;
    b.stop().await;
    gatehouse_store::testing::drop_pg_database(&store)
        .await
        .expect("drop");
}

/// A connection whose groups change so the caller may no longer use it
/// ends the caller's live sessions.
#[tokio::test]
async fn closing_a_connection_to_a_group_ends_its_sessions() {
    let s = TestServer::start().await;
    s.pg_connection("shop", DIRECT, None, &["agents"]).await;
    let bot = s.token("bot", &["agents"]).await;
    let client = connect(&url(&s, &bot)).await;
    client.simple_query("SELECT 1").await.unwrap();
    let (status, v) = s
        .call(
            reqwest::Method::PUT,
            "/v1/connections/shop",
            &s.admin,
            Some(
                json!({"name": "shop", "kind": "postgres", "url": DIRECT, "groups": ["analysts"]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let reason = common::end_reason(&s, &s.admin, "bot").await;
    assert_eq!(
        reason.expect("the session outlived its access"),
        "ended by Gatehouse: the caller may no longer use its connection"
    );
}

#[tokio::test]
async fn an_approved_prepare_does_not_approve_what_execute_runs() {
    let (s, bot, dba, t, direct) = reviewed_writes("rv_prep", "check-writes").await;
    let client = Arc::new(connect(&url(&s, &bot)).await);
    let decide = |id: String, verb: &'static str| {
        let (s, dba) = (&s, dba.clone());
        async move {
            let (status, v) = s
                .post(
                    &format!("/v1/reviews/{id}/{verb}"),
                    &dba,
                    json!({"reason": "no"}),
                )
                .await;
            assert_eq!(status, 200, "{v}");
        }
    };

    // The PREPARE holds a DELETE: reviewed, and approved.
    let prepare = format!("PREPARE del(int) AS DELETE FROM {t} WHERE id = $1");
    let c = client.clone();
    let q = prepare.clone();
    let run = tokio::spawn(async move { c.simple_query(&q).await });
    let r = pending(&s, &dba, "PREPARE del", &[]).await;
    let first = r["id"].as_str().unwrap().to_string();
    decide(first.clone(), "approve").await;
    run.await.unwrap().unwrap();

    // Each EXECUTE is a command of its own, reviewed with what it runs.
    let mut seen = vec![first];
    for sql in ["EXECUTE del(1)", "EXPLAIN ANALYZE EXECUTE del(2)"] {
        let c = client.clone();
        let run = tokio::spawn(async move { c.simple_query(sql).await });
        let r = pending(&s, &dba, sql, &seen).await;
        assert_eq!(
            r["statement"],
            format!("{sql}\n-- del was prepared as: {prepare}"),
            "{r}"
        );
        assert_eq!(r["rule"], "check-writes");
        let id = r["id"].as_str().unwrap().to_string();
        decide(id.clone(), "reject").await;
        let e = run.await.unwrap().unwrap_err();
        assert!(
            db_error(&e)
                .1
                .contains(&format!("review {id} was rejected")),
            "{e:?}"
        );
        seen.push(id);
    }
    let left = direct
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 2, "nothing was deleted");

    // Approved, it runs once.
    let c = client.clone();
    let run = tokio::spawn(async move { c.simple_query("EXECUTE del(1)").await });
    let r = pending(&s, &dba, "EXECUTE del(1)", &seen).await;
    decide(r["id"].as_str().unwrap().to_string(), "approve").await;
    run.await.unwrap().unwrap();
    let left = direct
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 1);
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_portal_bound_before_a_review_rule_is_refused_not_reviewed_without_its_parameters() {
    let (s, bot, dba, t, direct) = reviewed_writes("rv_bound", "check-writes").await;
    // Writes run at first: a portal's parameters are then not kept.
    put_policy(
        &s,
        json!({"rules": [{"name": "no-ddl", "statements": ["ddl"], "action": "deny"}]}),
    )
    .await;
    let mut client = connect(&url(&s, &bot)).await;
    let sql = format!("DELETE FROM {t} WHERE id = $1 RETURNING id");
    let tx = client.transaction().await.unwrap();
    let del = tx.prepare(&sql).await.unwrap();
    // tokio-postgres sends the Bind (with Sync) and the Execute apart.
    let portal = tx.bind(&del, &[&2i32]).await.unwrap();
    // Writes are held for review before the Execute comes.
    put_policy(
        &s,
        json!({"rules": [{"name": "check-writes", "statements": ["write"], "action": "review", "approvers": ["dba"], "timeout": "2s"}]}),
    )
    .await;
    let e = tx.query_portal(&portal, 0).await.unwrap_err();
    let (code, message, detail) = db_error(&e);
    assert_eq!(code, "42501", "{message}");
    assert_eq!(detail, "rule: check-writes");
    assert!(
        message.contains("parameters were bound") && message.contains("bind and execute it again"),
        "{message}"
    );
    drop(tx);
    let (_, v) = s.get("/v1/reviews?pending=true", &dba).await;
    assert_eq!(v["reviews"].as_array().map(Vec::len), Some(0), "{v}");

    // Bound again, it is reviewed with its parameter in view.
    let client = Arc::new(client);
    let c = client.clone();
    let q = sql.clone();
    let run = tokio::spawn(async move { c.query(q.as_str(), &[&2i32]).await });
    let r = pending(&s, &dba, &sql, &[]).await;
    assert_eq!(r["params"], "$1=2", "{r}");
    let id = r["id"].as_str().unwrap();
    let (status, v) = s
        .post(
            &format!("/v1/reviews/{id}/reject"),
            &dba,
            json!({"reason": "no"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(run.await.unwrap().is_err());
    let left = direct
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 2);
    direct
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}
