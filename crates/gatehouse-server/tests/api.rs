//! The HTTP API against a real server on a free port, with real upstreams
//! (the machine's PostgreSQL and MariaDB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, closed_port, config, mysql_url};
use serde_json::json;

const SECRET: &str = "pw-Zq81-unique-in-this-test";

fn pg_url() -> String {
    std::env::var("GATEHOUSE_TEST_PG_UPSTREAM")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test]
async fn first_start_writes_a_private_admin_token_once() {
    let mut s = TestServer::start().await;
    assert!(s.admin.starts_with("gh_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data_dir().join("admin.token"))
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let key_mode = std::fs::metadata(s.data_dir().join("master.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
    }
    let (status, me) = s.get("/v1/whoami", &s.admin).await;
    assert_eq!(status, 200);
    assert_eq!(me["subject"], "admin");
    assert_eq!(me["admin"], true);

    // A restart on the same data directory keeps the token and makes no new one.
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    s.stop().await;
    std::fs::remove_file(dir.path().join("data/admin.token")).expect("remove token file");
    let c = config(dir.path());
    let s2 = TestServer::start_with(dir, c).await;
    assert!(
        !s2.data_dir().join("admin.token").exists(),
        "no second bootstrap token"
    );
    let (status, _) = s2.get("/v1/whoami", &s.admin).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tokens_are_shown_once_and_can_be_revoked_or_expire() {
    let s = TestServer::start().await;
    let bot = s.token("bot", &["agents"]).await;
    let (status, me) = s.get("/v1/whoami", &bot).await;
    assert_eq!(status, 200);
    assert_eq!(me["groups"], json!(["agents"]));
    assert_eq!(me["admin"], false);

    let (_, list) = s.get("/v1/tokens", &s.admin).await;
    assert!(
        !list.to_string().contains(&bot),
        "listing must never show a token"
    );
    assert!(!list.to_string().contains(&bot[3..]));

    // Not an admin: admin routes are forbidden, with a reason.
    let (status, err) = s.get("/v1/tokens", &bot).await;
    assert_eq!(status, 403);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("admin")
    );

    let (status, _) = s.delete("/v1/tokens/bot", &s.admin).await;
    assert_eq!(status, 200);
    let (status, err) = s.get("/v1/whoami", &bot).await;
    assert_eq!(status, 401);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{err}"
    );
    let (status, _) = s.delete("/v1/tokens/nobody", &s.admin).await;
    assert_eq!(status, 404);

    // A token with a 1 ms lifetime: once the clock has passed its expiry it is refused.
    let (status, v) = s
        .post(
            "/v1/tokens",
            &s.admin,
            json!({"name": "brief", "groups": ["agents"], "ttl": "1ms"}),
        )
        .await;
    assert_eq!(status, 201);
    let expires = v["expires_at"].as_i64().expect("expiry");
    while gatehouse_core::now_ms() <= expires {
        tokio::task::yield_now().await;
    }
    let (status, err) = s
        .get("/v1/whoami", v["token"].as_str().expect("token"))
        .await;
    assert_eq!(status, 401);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{err}"
    );

    // Wrong, malformed and missing credentials.
    for bad in [
        "gh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
        "a.b.c",
    ] {
        let (status, _) = s.get("/v1/whoami", bad).await;
        assert_eq!(status, 401, "{bad}");
    }
    let (status, _) = s.get("/v1/whoami", "").await;
    assert_eq!(status, 401);

    let (status, _) = s
        .post(
            "/v1/tokens",
            &s.admin,
            json!({"name": "bot", "groups": ["x"]}),
        )
        .await;
    assert_eq!(status, 409, "names are unique, even when revoked");
    let (status, _) = s
        .post(
            "/v1/tokens",
            &s.admin,
            json!({"name": "nogroups", "groups": []}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn connection_passwords_never_leave_the_gateway_in_clear() {
    let s = TestServer::start().await;
    let body = json!({
        "name": "shop", "kind": "postgres", "url": pg_url(),
        "groups": ["agents"], "password": SECRET,
    });
    let (status, v) = s.post("/v1/connections", &s.admin, body.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["has_password"], true);
    let (status, _) = s.post("/v1/connections", &s.admin, body).await;
    assert_eq!(status, 409);

    let mut seen = String::new();
    for path in ["/v1/connections", "/v1/connections/shop", "/v1/audit"] {
        let (_, v) = s.get(path, &s.admin).await;
        seen.push_str(&v.to_string());
    }
    let (_, v) = s
        .post("/v1/connections/shop/test", &s.admin, json!({}))
        .await;
    seen.push_str(&v.to_string());
    assert!(!seen.contains(SECRET), "a response contained the password");

    // Not in the store file either (SQLite's database and WAL).
    for f in ["state.db", "state.db-wal"] {
        let bytes = std::fs::read(s.data_dir().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{f} holds the password in clear"
        );
    }

    // Passwords in the url are refused, without echoing them.
    let (status, err) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "leaky", "kind": "postgres", "url": format!("postgres://u:{SECRET}@h/db")}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(!err.to_string().contains(SECRET));
    assert!(err.to_string().contains("contains a password"));
}

#[tokio::test]
async fn callers_only_see_connections_their_groups_may_use() {
    let s = TestServer::start().await;
    for (name, group) in [("shop", "agents"), ("hr", "people-ops")] {
        let (status, _) = s
            .post(
                "/v1/connections",
                &s.admin,
                json!({"name": name, "kind": "postgres", "url": pg_url(), "groups": [group]}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let bot = s.token("bot", &["agents"]).await;
    let (_, v) = s.get("/v1/connections", &bot).await;
    let names: Vec<_> = v["connections"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("shop")]);
    // Where the upstream is (host, database user) is not shown to users.
    assert!(v["connections"][0].get("url").is_none(), "{v}");
    let (_, one) = s.get("/v1/connections/shop", &bot).await;
    assert_eq!(one["kind"], "postgres");
    assert!(one.get("url").is_none(), "{one}");
    let (_, as_admin) = s.get("/v1/connections/shop", &s.admin).await;
    assert_eq!(as_admin["url"], pg_url().as_str());
    let (status, _) = s.get("/v1/connections/hr", &bot).await;
    assert_eq!(status, 404, "a connection one may not use is not disclosed");
    let (status, _) = s.delete("/v1/connections/shop", &bot).await;
    assert_eq!(status, 403);
    let (status, _) = s.delete("/v1/connections/shop", &s.admin).await;
    assert_eq!(status, 200);
    let (status, _) = s.get("/v1/connections/shop", &s.admin).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn connection_test_reaches_real_upstreams() {
    let s = TestServer::start().await;
    let port = closed_port();
    for (name, kind, url) in [
        ("pg", "postgres", pg_url()),
        ("maria", "mysql", mysql_url()),
        (
            "down",
            "postgres",
            format!("postgres://app@127.0.0.1:{port}/db"),
        ),
        (
            "maria-bad-user",
            "mysql",
            "mysql://no_such_user@127.0.0.1:3306/test".to_string(),
        ),
    ] {
        let (status, v) = s
            .post(
                "/v1/connections",
                &s.admin,
                json!({"name": name, "kind": kind, "url": url, "password": SECRET}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let (_, v) = s.post("/v1/connections/pg/test", &s.admin, json!({})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["server_version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("PostgreSQL")
    );
    let (_, v) = s
        .post("/v1/connections/maria/test", &s.admin, json!({}))
        .await;
    assert_eq!(
        v["ok"], false,
        "root has no password, the stored one is wrong: {v}"
    );
    let (_, v) = s
        .post("/v1/connections/maria-bad-user/test", &s.admin, json!({}))
        .await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Access denied"),
        "{v}"
    );
    assert!(!v.to_string().contains(SECRET));
    let (_, v) = s
        .post("/v1/connections/down/test", &s.admin, json!({}))
        .await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be reached"),
        "{v}"
    );

    // MariaDB with the right (empty) password.
    let (status, _) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "maria-ok", "kind": "mysql", "url": mysql_url()}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, v) = s
        .post("/v1/connections/maria-ok/test", &s.admin, json!({}))
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["server_version"]
            .as_str()
            .unwrap_or_default()
            .contains("MariaDB")
    );
}

#[tokio::test]
async fn apply_is_idempotent_and_dry_run_changes_nothing() {
    let s = TestServer::start().await;
    let decl = |pw: &str, groups: serde_json::Value, dry: bool| {
        json!({"dry_run": dry, "connections": [
            {"name": "shop", "kind": "postgres", "url": pg_url(), "groups": groups, "password": pw},
            {"name": "crm", "kind": "http", "url": "http://127.0.0.1:9000"},
        ]})
    };
    let (status, v) = s
        .post("/v1/apply", &s.admin, decl("a", json!(["agents"]), true))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["changes"][0]["action"], "create");
    let (_, list) = s.get("/v1/connections", &s.admin).await;
    assert_eq!(list["connections"], json!([]), "dry run wrote nothing");

    let (_, v) = s
        .post("/v1/apply", &s.admin, decl("a", json!(["agents"]), false))
        .await;
    assert_eq!(v["changes"][0]["action"], "create");
    assert_eq!(v["changes"][1]["action"], "create");
    let (_, v) = s
        .post("/v1/apply", &s.admin, decl("a", json!(["agents"]), false))
        .await;
    assert_eq!(v["changes"][0]["action"], "unchanged");
    assert_eq!(v["changes"][1]["action"], "unchanged");
    let (_, v) = s
        .post(
            "/v1/apply",
            &s.admin,
            decl("b", json!(["agents", "dba"]), false),
        )
        .await;
    assert_eq!(v["changes"][0]["action"], "update");
    assert_eq!(v["changes"][0]["fields"], json!(["groups", "password"]));
    assert!(!v.to_string().contains("\"b\""));

    let (status, v) = s
        .post("/v1/apply", &s.admin, json!({"connections": [{"name": "x", "kind": "postgres", "url": "postgres://h/d", "extra": 1}]}))
        .await;
    assert_eq!(status, 422, "unknown fields are refused: {v}");
}

#[tokio::test]
async fn key_rotation_reencrypts_while_serving_and_a_wrong_key_stops_startup() {
    let mut s = TestServer::start().await;
    let (status, _) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "pg", "kind": "postgres", "url": pg_url(), "password": SECRET}),
        )
        .await;
    assert_eq!(status, 201);
    let old_key_file = std::fs::read_to_string(s.data_dir().join("master.key")).expect("key file");
    let before = s
        .running
        .as_ref()
        .expect("running")
        .state
        .store
        .get_connection("pg")
        .await
        .expect("get")
        .expect("present");
    let (status, v) = s.post("/v1/keys/rotate", &s.admin, json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["reencrypted"], 1);
    let new_id = v["primary_key_id"].as_str().expect("id").to_string();
    let after = s
        .running
        .as_ref()
        .expect("running")
        .state
        .store
        .get_connection("pg")
        .await
        .expect("get")
        .expect("present");
    let (b, a) = (
        before.secret.expect("sealed"),
        after.secret.expect("sealed"),
    );
    assert_ne!(a, b);
    assert!(a.starts_with(&format!("gh1.{new_id}.")), "{a}");
    let new_key_file = std::fs::read_to_string(s.data_dir().join("master.key")).expect("key file");
    assert_ne!(old_key_file, new_key_file);
    // Still usable while serving.
    let (_, v) = s.post("/v1/connections/pg/test", &s.admin, json!({})).await;
    assert_eq!(v["ok"], true, "{v}");
    let (_, audit) = s.get("/v1/audit", &s.admin).await;
    assert!(audit.to_string().contains("keys.rotate"));

    // Restart with the old key in the environment: refused with an actionable error.
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    s.stop().await;
    let old_key = old_key_file
        .lines()
        .find(|l| !l.starts_with('#'))
        .expect("a key")
        .to_string();
    let mut c = config(dir.path());
    c.master_key = Some(gatehouse_core::secret::Secret::new(old_key));
    let err = gatehouse_server::start(c, async {})
        .await
        .expect_err("wrong key must stop start-up");
    assert!(
        err.to_string().contains("master key does not open"),
        "{err}"
    );
    assert!(
        !err.to_string()
            .contains(&old_key_file.lines().nth(1).unwrap_or("x")[..10])
    );
}

#[tokio::test]
async fn env_keys_rotate_to_the_first_key_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = gatehouse_core::keyring::Keyring::generate_key();
    let new = gatehouse_core::keyring::Keyring::generate_key();
    let mut c = config(dir.path());
    c.master_key = Some(old.clone());
    let mut s = TestServer::start_with(dir, c).await;
    assert!(
        !s.data_dir().join("master.key").exists(),
        "no key file when the key comes from the environment"
    );
    let (status, _) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "pg", "kind": "postgres", "url": pg_url(), "password": SECRET}),
        )
        .await;
    assert_eq!(status, 201);
    let admin = s.admin.clone();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    s.stop().await;

    let mut c = config(dir.path());
    c.master_key = Some(gatehouse_core::secret::Secret::new(format!(
        "{},{}",
        new.expose(),
        old.expose()
    )));
    let mut s = TestServer::start_with(dir, c).await;
    let (status, v) = s.post("/v1/keys/rotate", &admin, json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["reencrypted"], 1);
    let (_, v) = s.post("/v1/connections/pg/test", &admin, json!({})).await;
    assert_eq!(v["ok"], true, "{v}");
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    s.stop().await;

    // The old key can now be dropped.
    let mut c = config(dir.path());
    c.master_key = Some(new);
    let s = TestServer::start_with(dir, c).await;
    let (_, v) = s.post("/v1/connections/pg/test", &admin, json!({})).await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn meta_endpoints_and_openapi_cover_every_route() {
    let s = TestServer::start().await;
    let (status, _) = s.get("/healthz", "").await;
    assert_eq!(status, 200);
    let (status, v) = s.get("/readyz", "").await;
    assert_eq!(status, 200, "{v}");
    let (status, doc) = s.get("/v1/openapi.json", "").await;
    assert_eq!(status, 200);
    for (method, path) in gatehouse_server::api::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from openapi.json"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        documented,
        gatehouse_server::api::ROUTES.len(),
        "openapi.json documents a route the server lacks"
    );
    let (_, _) = s.get("/v1/whoami", "nope").await;
    // Protected-resource metadata names /mcp; a forged Host cannot inject
    // text into it or into the 401 challenge.
    let (status, meta) = s.get("/.well-known/oauth-protected-resource", "").await;
    assert_eq!(status, 200);
    assert_eq!(meta["resource"], format!("http://{}/mcp", s.addr));
    let forged = s
        .http
        .post(s.url("/mcp"))
        .header("host", "evil.example\"x")
        .send()
        .await
        .expect("mcp");
    assert_eq!(forged.status().as_u16(), 401);
    let challenge = forged.headers()["www-authenticate"]
        .to_str()
        .expect("ascii");
    assert!(!challenge.contains("evil"), "{challenge}");
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"http://"),
        "{challenge}"
    );
    let resp = s.http.get(s.url("/metrics")).send().await.expect("metrics");
    let text = resp.text().await.expect("text");
    assert!(
        text.contains(
            "gatehouse_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("gatehouse_auth_failures_total 1"), "{text}");
    // The recorder's queue: no session has run, so nothing waits.
    for line in [
        "gatehouse_recorder_capacity 65536",
        "gatehouse_recorder_unwritten 0",
        "gatehouse_recorder_unadmitted_total 0",
        "# TYPE gatehouse_recorder_written_total counter",
        "# TYPE gatehouse_recorder_write_seconds_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing: {text}");
    }
}

#[tokio::test]
async fn the_server_runs_on_a_postgresql_store() {
    let url = gatehouse_store::testing::fresh_pg_database()
        .await
        .expect("fresh database");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.store_url = Some(url.clone());
    let mut s = TestServer::start_with(dir, c).await;
    let bot = s.token("bot", &["agents"]).await;
    let (status, _) = s
        .post(
            "/v1/connections",
            &s.admin,
            json!({"name": "pg", "kind": "postgres", "url": pg_url(), "password": SECRET, "groups": ["agents"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, v) = s.get("/v1/connections", &bot).await;
    assert_eq!(v["connections"][0]["name"], "pg");
    let (_, v) = s.post("/v1/connections/pg/test", &s.admin, json!({})).await;
    assert_eq!(v["ok"], true, "{v}");

    // The password is not in the PostgreSQL store in clear.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to store");
    tokio::spawn(conn);
    let rows = client
        .query("SELECT secret FROM connections", &[])
        .await
        .expect("query");
    let sealed: String = rows[0].get(0);
    assert!(sealed.starts_with("gh1.") && !sealed.contains(SECRET));
    drop(client);
    s.stop().await;
    gatehouse_store::testing::drop_pg_database(&url)
        .await
        .expect("drop");
}
