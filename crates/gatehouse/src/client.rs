//! How the CLI reaches the server: `GATEHOUSE_URL` and `GATEHOUSE_TOKEN`,
//! else the file written by `gatehouse login`.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use gatehouse_core::secret::Secret;
use serde::{Deserialize, Serialize};

pub const DEFAULT_URL: &str = "http://127.0.0.1:7400";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// `$GATEHOUSE_CONFIG`, else `$XDG_CONFIG_HOME/gatehouse/config.toml`,
/// else `~/.config/gatehouse/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GATEHOUSE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("gatehouse").join("config.toml"))
}

pub fn read_config() -> anyhow::Result<ConfigFile> {
    let Some(path) = config_path() else {
        return Ok(ConfigFile::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub struct Client {
    pub base: String,
    token: Secret,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

pub fn resolve_url(file: &ConfigFile) -> String {
    std::env::var("GATEHOUSE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| file.url.clone())
        .unwrap_or_else(|| DEFAULT_URL.into())
        .trim_end_matches('/')
        .to_string()
}

impl Client {
    /// A client from the environment or the config file.
    pub fn from_env() -> anyhow::Result<Self> {
        let file = read_config()?;
        let base = resolve_url(&file);
        let token = std::env::var("GATEHOUSE_TOKEN")
            .ok()
            .filter(|s| !s.is_empty())
            .or(file.token)
            .ok_or_else(|| {
                anyhow!(
                    "no token: set GATEHOUSE_TOKEN or run `gatehouse login` (after the first start, the admin token is in <data-dir>/admin.token)"
                )
            })?;
        Self::new(base, Secret::new(token.trim()))
    }

    pub fn new(base: String, token: Secret) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { base, token, http })
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, value) = self.send(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value
            .pointer("/error/message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        bail!("{message} (HTTP {status})")
    }

    /// Like [`Self::request`], but any HTTP status is an answer: (status, body).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach Gatehouse at {}: {} (is `gatehouse serve` running? set GATEHOUSE_URL to point elsewhere)",
                self.base,
                e.without_url()
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading the response")?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        ))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.request(reqwest::Method::DELETE, path, None).await
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
