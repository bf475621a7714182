//! A real Gatehouse server started in-process on a free port, with helpers
//! to call its API.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use gatehouse_server::{Running, ServeConfig, start};
use serde_json::Value;

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where PostgreSQL clients connect.
    pub pg: SocketAddr,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub http: reqwest::Client,
}

pub fn config(dir: &std::path::Path) -> ServeConfig {
    let mut c = ServeConfig::new(dir.join("data"));
    c.api_listen = "127.0.0.1:0".into();
    c.pg_listen = Some("127.0.0.1:0".into());
    c
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path());
        Self::start_with(dir, c).await
    }

    pub async fn start_with(dir: tempfile::TempDir, config: ServeConfig) -> Self {
        gatehouse_identity::install_crypto_provider();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let data_dir = config.data_dir.clone();
        let running = start(config, async {
            let _ = rx.await;
        })
        .await
        .expect("server starts");
        let admin = std::fs::read_to_string(data_dir.join("admin.token"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Self {
            addr: running.api_addr,
            pg: running.pg_addr.expect("PostgreSQL listener"),
            admin,
            dir,
            running: Some(running),
            stop: Some(tx),
            http: reqwest::Client::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// Creates a token and returns it.
    pub async fn token(&self, name: &str, groups: &[&str]) -> String {
        let (status, v) = self
            .post(
                "/v1/tokens",
                &self.admin,
                serde_json::json!({"name": name, "groups": groups}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v["token"].as_str().expect("token").to_string()
    }

    /// Registers a PostgreSQL connection (upstream `url`, optional password) open to `groups`.
    pub async fn pg_connection(
        &self,
        name: &str,
        url: &str,
        password: Option<&str>,
        groups: &[&str],
    ) {
        let mut body =
            serde_json::json!({"name": name, "kind": "postgres", "url": url, "groups": groups});
        if let Some(p) = password {
            body["password"] = serde_json::json!(p);
        }
        let (status, v) = self.post("/v1/connections", &self.admin, body).await;
        assert_eq!(status, 201, "{v}");
    }

    /// Adds a PostgreSQL connection with `settings`; the API's status and
    /// answer.
    pub async fn pg_connection_with(
        &self,
        name: &str,
        url: &str,
        groups: &[&str],
        settings: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"name": name, "kind": "postgres", "url": url,
                                      "groups": groups, "settings": settings});
        self.post("/v1/connections", &self.admin, body).await
    }

    /// A libpq-style URL for connecting through the gateway.
    pub fn pg_url(&self, user: &str, connection: &str) -> String {
        format!(
            "postgresql://{user}@{}:{}/{connection}",
            self.pg.ip(),
            self.pg.port()
        )
    }

    /// Stops serving and waits for the server task to end.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(r) = self.running.take() {
            let _ = r.task.await;
            r.state.store.close().await;
        }
    }
}

/// A TCP port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{:x}{:x}", n as u64, std::process::id())
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect through the gateway");
    tokio::spawn(conn);
    client
}

/// The machine's MariaDB, as a connection URL.
pub fn mysql_url() -> String {
    std::env::var("GATEHOUSE_TEST_MYSQL_UPSTREAM")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

pub fn url(s: &TestServer, token: &str) -> String {
    format!(
        "postgresql://bot:{token}@{}:{}/shop",
        s.pg.ip(),
        s.pg.port()
    )
}

pub async fn put_policy(s: &TestServer, policy: Value) {
    let (status, v) = s
        .call(reqwest::Method::PUT, "/v1/policy", &s.admin, Some(policy))
        .await;
    assert_eq!(status, 200, "{v}");
}

pub fn db_error(e: &tokio_postgres::Error) -> (String, String, String) {
    let d = e
        .as_db_error()
        .unwrap_or_else(|| panic!("not a database error: {e}"));
    (
        d.code().code().to_string(),
        d.message().to_string(),
        d.detail().unwrap_or_default().to_string(),
    )
}

/// Runs `sql` as a simple query that Gatehouse (or the server) must refuse;
/// the error's SQLSTATE, message and detail.
pub async fn refused(c: &tokio_postgres::Client, sql: &str) -> (String, String, String) {
    match c.simple_query(sql).await {
        Ok(_) => panic!("{sql}: ran, but should have been refused"),
        Err(e) => db_error(&e),
    }
}

/// A replica on a shared PostgreSQL store (`store` URL) with master key `key`.
pub async fn replica(store: &str, key: &gatehouse_core::secret::Secret) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.store_url = Some(store.to_string());
    c.master_key = Some(key.clone());
    TestServer::start_with(dir, c).await
}

/// Waits (up to about 12 s) until `user`'s newest recorded session has
/// ended, as seen through `s` with token `admin`; returns why it ended.
pub async fn end_reason(s: &TestServer, admin: &str, user: &str) -> Option<String> {
    for _ in 0..600 {
        let (_, v) = s.get(&format!("/v1/sessions?user={user}"), admin).await;
        if let Some(r) = v["sessions"][0]["end_reason"].as_str() {
            return Some(r.to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}
