//! Outbound notifications about reviews: a Slack-compatible incoming-webhook
//! message, and a generic JSON payload signed with HMAC-SHA256.
//!
//! The JSON payload carries headers
//! `X-Gatehouse-Event`, `X-Gatehouse-Delivery`, `X-Gatehouse-Timestamp`
//! (Unix seconds) and `X-Gatehouse-Signature: sha256=<hex>`, the HMAC of
//! `"<timestamp>.<body>"` under the shared secret; a receiver recomputes it
//! and rejects old timestamps. Deliveries run in the background and are
//! retried with backoff; a webhook's URL (Slack's carries its token) is a
//! secret and never logged.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::secret::Secret;
use gatehouse_store::ReviewRecord;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// Attempts per delivery (the first and its retries).
const ATTEMPTS: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Slack's incoming-webhook message (`{"text": …}`), also accepted by
    /// Mattermost, Rocket.Chat and others.
    Slack,
    /// Gatehouse's JSON payload, signed.
    Json,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: Secret,
    pub format: WebhookFormat,
}

#[derive(Debug)]
pub struct Notifier {
    hooks: Vec<Webhook>,
    secret: Option<Secret>,
    /// Where links in messages point, e.g. `https://gatehouse.example.com`.
    public_url: String,
    client: reqwest::Client,
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Notifier {
    /// A notifier for `hooks`; JSON webhooks need `secret` to sign with.
    pub fn new(
        hooks: Vec<Webhook>,
        secret: Option<Secret>,
        public_url: String,
    ) -> Result<Self, String> {
        if hooks.iter().any(|h| h.format == WebhookFormat::Json)
            && secret.as_ref().is_none_or(Secret::is_empty)
        {
            return Err("a JSON webhook needs a signing secret (GATEHOUSE_NOTIFY_SECRET)".into());
        }
        for h in &hooks {
            let ok = url::Url::parse(h.url.expose())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err("a webhook url is not an http(s) url".into());
            }
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Self {
            hooks,
            secret,
            public_url: public_url.trim_end_matches('/').to_string(),
            client,
        })
    }

    fn links(&self, id: &str) -> serde_json::Value {
        let base = format!("{}/v1/reviews/{id}", self.public_url);
        json!({
            "review": base,
            "approve": format!("{base}/approve"),
            "reject": format!("{base}/reject"),
        })
    }

    /// The generic JSON payload (`redacted`: the requester's content
    /// detectors found something in the statement, its parameters or its
    /// reason, which the review shows redacted).
    pub fn payload(&self, event: &str, r: &ReviewRecord) -> serde_json::Value {
        json!({
            "event": event,
            "review": crate::review_json(&r.public()),
            "redacted": r.redacted.is_some(),
            "links": self.links(&r.id),
            "approve_command": format!("gatehouse reviews approve {}", r.id),
            "reject_command": format!("gatehouse reviews reject {} --reason \"…\"", r.id),
        })
    }

    /// The Slack-compatible message.
    pub fn slack_message(&self, event: &str, exact: &ReviewRecord) -> serde_json::Value {
        let r = &*exact.public();
        let what = match (r.kind.as_str(), &r.statement) {
            ("access", _) => format!(
                "*{}* access to `{}` for {}",
                r.level.as_deref().unwrap_or("read"),
                r.connection,
                gatehouse_core::duration::format_duration(Duration::from_millis(
                    u64::try_from(r.duration_ms.unwrap_or(0)).unwrap_or(0)
                ))
            ),
            (_, Some(sql)) => {
                let short: String = sql.chars().take(2000).collect();
                format!(
                    "on `{}`:\n```{}```",
                    r.connection,
                    short.replace("```", "'''")
                )
            }
            _ => format!("on `{}`", r.connection),
        };
        let links = self.links(&r.id);
        let head = match event {
            "review.requested" => format!("*{}* asks for approval ({})", r.requester, r.id),
            other => format!(
                "Review {} is now *{}* ({})",
                r.id,
                r.state,
                other.trim_start_matches("review.")
            ),
        };
        let reason = r
            .reason
            .as_deref()
            .map(|x| format!("\nReason: {x}"))
            .unwrap_or_default();
        let params = r
            .params
            .as_deref()
            .map(|p| format!("\nParameters: {p}"))
            .unwrap_or_default();
        let redacted = if exact.redacted.is_some() {
            format!(
                "\n(What content detectors found is redacted here: `gatehouse reviews show {}` shows the exact command.)",
                r.id
            )
        } else {
            String::new()
        };
        let text = format!(
            "{head} {what}{params}{reason}{redacted}\nRule: {} · needs {} approval(s) from {}\nApprove: `gatehouse reviews approve {id}` or POST {}\nReject: `gatehouse reviews reject {id} --reason \"…\"` or POST {}",
            r.rule,
            r.approvals_needed,
            r.approvers.join(", "),
            links["approve"].as_str().unwrap_or_default(),
            links["reject"].as_str().unwrap_or_default(),
            id = r.id,
        );
        json!({ "text": text })
    }

    /// Sends `event` about `r` to every webhook, in the background, with
    /// what the requester's content detectors found redacted.
    pub fn send(self: &Arc<Self>, event: &str, r: &ReviewRecord) {
        for (i, hook) in self.hooks.iter().enumerate() {
            let body = match hook.format {
                WebhookFormat::Slack => self.slack_message(event, r),
                WebhookFormat::Json => self.payload(event, r),
            }
            .to_string();
            let me = self.clone();
            let event = event.to_string();
            let id = r.id.clone();
            tokio::spawn(async move { me.deliver(i, &event, &id, body).await });
        }
    }

    async fn deliver(&self, hook: usize, event: &str, review: &str, body: String) {
        let Some(h) = self.hooks.get(hook) else {
            return;
        };
        let delivery = gatehouse_store::reviews::new_id("dl");
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let mut req = self
                .client
                .post(h.url.expose())
                .header("content-type", "application/json")
                .header("user-agent", "gatehouse");
            if h.format == WebhookFormat::Json {
                let ts = gatehouse_core::now_ms() / 1000;
                let key = self.secret.as_ref().map_or("", |s| s.expose());
                req = req
                    .header("x-gatehouse-event", event)
                    .header("x-gatehouse-delivery", &delivery)
                    .header("x-gatehouse-timestamp", ts.to_string())
                    .header(
                        "x-gatehouse-signature",
                        signature(key.as_bytes(), ts, body.as_bytes()),
                    );
            }
            let why = match req.body(body.clone()).send().await {
                Ok(resp) if resp.status().is_success() => return,
                Ok(resp) => format!("status {}", resp.status()),
                // reqwest's error text can include the URL: say only what kind it was.
                Err(e) if e.is_timeout() => "timed out".to_string(),
                Err(e) if e.is_connect() => "could not connect".to_string(),
                Err(_) => "request failed".to_string(),
            };
            tracing::warn!(
                hook,
                event,
                review,
                attempt,
                why,
                "a review notification was not delivered"
            );
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        tracing::error!(
            hook,
            event,
            review,
            "a review notification was dropped after {ATTEMPTS} attempts"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; here over "<ts>.<body>".
        let s = signature(b"Jefe", 1, b"what do ya want for nothing?");
        assert!(s.starts_with("sha256="));
        assert_eq!(s.len(), 7 + 64);
        assert_ne!(s, signature(b"Jefe", 2, b"what do ya want for nothing?"));
        assert_ne!(s, signature(b"Jeff", 1, b"what do ya want for nothing?"));
        // The same computation by hand.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"1.what do ya want for nothing?");
        assert_eq!(
            s,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    #[test]
    fn json_hooks_need_a_secret_and_urls_must_be_http() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let json_hook = Webhook {
            url: Secret::new("http://127.0.0.1:9/hook"),
            format: WebhookFormat::Json,
        };
        assert!(Notifier::new(vec![json_hook.clone()], None, "http://x".into()).is_err());
        assert!(Notifier::new(vec![json_hook], Some(Secret::new("k")), "http://x".into()).is_ok());
        let bad = Webhook {
            url: Secret::new("file:///etc/passwd"),
            format: WebhookFormat::Slack,
        };
        assert!(Notifier::new(vec![bad], None, "http://x".into()).is_err());
    }
}
