//! OIDC bearer JWTs issued by a real OIDC provider (oidc-provider-mock from
//! PyPI, run by tests/support/oidc_provider.py), checked by a real server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{TestServer, config};
use gatehouse_identity::OidcConfig;
use serde_json::{Value, json};

struct Provider {
    child: Child,
    issuer: String,
    http: reqwest::Client,
}

impl Provider {
    fn start(max_age_secs: u64) -> Self {
        gatehouse_identity::install_crypto_provider();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/oidc_provider.py"
        );
        let python = std::env::var("GATEHOUSE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(script)
            .arg("--max-age")
            .arg(max_age_secs.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the OIDC provider (pip install oidc-provider-mock)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("provider prints its issuer");
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("provider said {line:?}: {e}"));
        Self {
            child,
            issuer: v["issuer"].as_str().expect("issuer").to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("provider answers");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// An ID token issued through the provider's authorization-code flow.
    async fn token(&self, sub: &str, groups: &[&str], aud: &str) -> String {
        let v = self
            .post(
                "/_test/token",
                json!({"sub": sub, "claims": {"groups": groups}, "aud": aud}),
            )
            .await;
        v["id_token"].as_str().expect("id_token").to_string()
    }

    fn claims(&self, token: &str) -> Value {
        let payload = token.split('.').nth(1).expect("payload");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("json")
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn gateway(provider: &Provider, leeway: Duration) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    let mut o = OidcConfig::new(provider.issuer.clone(), "gatehouse");
    o.leeway = leeway;
    o.jwks_min_refresh = Duration::ZERO;
    c.oidc = Some(o);
    TestServer::start_with(dir, c).await
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn provider_tokens_map_to_principals_and_bad_ones_are_refused() {
    let p = Provider::start(3600);
    let s = gateway(&p, Duration::from_secs(30)).await;

    let good = p
        .token("alice@example.com", &["analysts", "agents"], "gatehouse")
        .await;
    let (status, me) = s.get("/v1/whoami", &good).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["subject"], "alice@example.com");
    assert_eq!(me["groups"], json!(["analysts", "agents"]));
    assert_eq!(me["authn"]["kind"], "oidc");
    assert_eq!(me["admin"], false);

    // Issued for another audience.
    let other = p
        .token("alice@example.com", &["admin"], "someone-else")
        .await;
    let (status, v) = s.get("/v1/whoami", &other).await;
    assert_eq!(status, 401);
    assert!(message(&v).contains("audience"), "{v}");

    // The same claims signed by a key the issuer does not publish.
    let claims = p.claims(&good);
    let forged = p
        .post("/_test/forge", json!({"claims": claims, "alg": "RS256"}))
        .await;
    let (status, v) = s
        .get("/v1/whoami", forged["token"].as_str().expect("token"))
        .await;
    assert_eq!(status, 401);
    assert!(message(&v).contains("signature"), "{v}");

    // HMAC signed with a guessable secret: algorithm not on the allow-list.
    let hs = p
        .post(
            "/_test/forge",
            json!({"claims": claims, "alg": "HS256", "secret": "public-key-bytes"}),
        )
        .await;
    let (status, v) = s
        .get("/v1/whoami", hs["token"].as_str().expect("token"))
        .await;
    assert_eq!(status, 401);
    assert!(message(&v).contains("not accepted"), "{v}");

    // alg=none with no signature.
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let (status, _) = s.get("/v1/whoami", &none).await;
    assert_eq!(status, 401);

    // Claims edited after signing (privilege escalation attempt).
    let mut escalated = claims.clone();
    escalated["groups"] = json!(["admin"]);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    let (status, _) = s.get("/v1/whoami", &tampered).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn expired_provider_tokens_are_refused() {
    let p = Provider::start(1);
    let s = gateway(&p, Duration::ZERO).await;
    let token = p.token("bob", &["agents"], "gatehouse").await;
    let exp = p.claims(&token)["exp"].as_i64().expect("exp");
    // Wait for the clock to pass the token's expiry.
    while gatehouse_core::now_ms() / 1000 <= exp {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, v) = s.get("/v1/whoami", &token).await;
    assert_eq!(status, 401);
    assert!(message(&v).contains("expired"), "{v}");
}

#[tokio::test]
async fn a_rotated_provider_key_is_picked_up() {
    let p = Provider::start(3600);
    let s = gateway(&p, Duration::from_secs(30)).await;
    let before = p.token("carol", &["agents"], "gatehouse").await;
    let (status, _) = s.get("/v1/whoami", &before).await;
    assert_eq!(status, 200);

    let resp = p
        .http
        .post(format!("{}/_test/rotate", p.issuer))
        .send()
        .await
        .expect("rotate");
    assert!(resp.status().is_success());
    let after = p.token("carol", &["agents"], "gatehouse").await;
    let (status, v) = s.get("/v1/whoami", &after).await;
    assert_eq!(
        status, 200,
        "a token signed with the new key is accepted: {v}"
    );
    let (status, _) = s.get("/v1/whoami", &before).await;
    assert_eq!(status, 401, "the retired key no longer verifies");
}

#[tokio::test]
async fn an_oidc_group_can_administer() {
    let p = Provider::start(3600);
    let s = gateway(&p, Duration::from_secs(30)).await;
    let admin = p.token("dana", &["admin"], "gatehouse").await;
    let (status, v) = s.get("/v1/tokens", &admin).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = s
        .post(
            "/v1/tokens",
            &admin,
            json!({"name": "from-oidc", "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["created_by"], "dana");
}

/// A PostgreSQL session opened with an OIDC token ends when the token
/// expires, and its recording says so.
#[tokio::test]
async fn a_session_ends_when_its_oidc_token_expires() {
    let p = Provider::start(3);
    let s = gateway(&p, Duration::ZERO).await;
    s.pg_connection(
        "shop",
        "postgres://postgres@127.0.0.1:5432/test",
        None,
        &["agents"],
    )
    .await;
    let token = p.token("dana", &["agents"], "gatehouse").await;
    let client = common::connect(&common::url(&s, &token)).await;
    client.simple_query("SELECT 1").await.unwrap();
    let reason = common::end_reason(&s, &s.admin, "dana").await;
    assert_eq!(
        reason.expect("the session outlived its token"),
        "ended by Gatehouse: the caller's credential expired"
    );
    let e = client.simple_query("SELECT 1").await.unwrap_err();
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("credential expired"))
            || e.is_closed(),
        "{e}"
    );
}
