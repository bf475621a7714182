//! Reaching upstreams with the stored credentials (`connections test`).

use std::time::{Duration, Instant};

use gatehouse_core::model::{ConnectionKind, ConnectionSpec};
use serde::Serialize;

use gatehouse_core::credential::Credential;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of a connection test. `message` never contains a secret.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    pub latency_ms: u64,
}

pub async fn test_connection(spec: &ConnectionSpec, cred: &Credential) -> TestReport {
    let started = Instant::now();
    let result = tokio::time::timeout(TIMEOUT, async {
        match spec.kind {
            ConnectionKind::Postgres => postgres(spec, cred).await,
            ConnectionKind::Mysql => mysql(spec, cred).await,
            ConnectionKind::Http => http(spec).await,
            ConnectionKind::Aws => Err("testing aws connections is not supported yet".to_string()),
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {}s", TIMEOUT.as_secs())));
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(version) => TestReport {
            ok: true,
            message: format!(
                "connected to {} and authenticated with the stored credentials",
                host_of(&spec.url)
            ),
            server_version: Some(version),
            latency_ms,
        },
        Err(message) => TestReport {
            ok: false,
            message,
            server_version: None,
            latency_ms,
        },
    }
}

/// Logs in to MySQL/MariaDB as the proxy does (TLS per `sslmode`), then quits.
async fn mysql(spec: &ConnectionSpec, cred: &Credential) -> Result<String, String> {
    let caps = gatehouse_mysql::upstream::ConnectOptions::default().capabilities;
    let (up, _) = gatehouse_mysql::proxy::open_upstream(
        &spec.url,
        cred.get("password"),
        caps,
        gatehouse_mysql::codec::UTF8MB4_GENERAL_CI,
    )
    .await
    .map_err(|(_, e)| e)?;
    let version = up.server_version.clone();
    let _ = up.quit().await;
    Ok(version)
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| "the upstream".into())
}

async fn postgres(spec: &ConnectionSpec, cred: &Credential) -> Result<String, String> {
    let mut config: tokio_postgres::Config = spec
        .url
        .parse()
        .map_err(|e| format!("the url is not a valid PostgreSQL url: {e}"))?;
    if matches!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    ) {
        return Err("sslmode=require is not supported by connection tests yet; use sslmode=disable or prefer".into());
    }
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    if let Some(pw) = cred.get("password") {
        config.password(pw.expose());
    }
    config.application_name("gatehouse connection test");
    config.connect_timeout(TIMEOUT);
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL refused or could not be reached: {e}"))?;
    let task = tokio::spawn(conn);
    let row = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| format!("connected, but a probe query failed: {e}"))?;
    let version: String = row.get(0);
    drop(client);
    let _ = task.await;
    Ok(format!("PostgreSQL {version}"))
}

async fn http(spec: &ConnectionSpec) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let resp = client.get(&spec.url).send().await.map_err(|e| {
        format!(
            "the HTTP upstream could not be reached: {}",
            e.without_url()
        )
    })?;
    Ok(format!(
        "HTTP {} (reachable; credentials are checked when requests are proxied)",
        resp.status()
    ))
}
