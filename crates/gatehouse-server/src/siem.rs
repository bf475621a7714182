//! Streams the audit log to a SIEM: syslog (RFC 5424 over TCP, octet
//! counted as in RFC 6587) and an HTTP endpoint (JSON lines).
//!
//! Each sink keeps a cursor in the store (the id of the last event the
//! receiver accepted). It sends what follows in batches and moves the
//! cursor only after the receiver took them, so a receiver that goes away
//! and comes back loses nothing: delivery resumes from the cursor, with
//! backoff in between. Delivery is at least once (an event may be sent
//! again after a failure, or by two replicas); receivers deduplicate on the
//! event `id` or `hash`.

use std::time::Duration;

use gatehouse_core::secret::Secret;
use gatehouse_store::{ChainedEvent, Store, StoreError};
use tokio::io::AsyncWriteExt;

/// Events per batch.
const BATCH: i64 = 500;
/// How often a sink looks for new events when it is caught up.
const IDLE: Duration = Duration::from_millis(500);
/// Longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where audit events go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// `host:port` of a syslog receiver (TCP).
    Syslog(String),
    /// An HTTP(S) URL taking `application/x-ndjson` POSTs (a secret: it may
    /// carry a token).
    Http(Secret),
}

impl Sink {
    fn cursor_key(&self, index: usize) -> String {
        match self {
            Sink::Syslog(_) => format!("audit_sink.{index}.syslog"),
            Sink::Http(_) => format!("audit_sink.{index}.http"),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Sink::Syslog(_) => "syslog",
            Sink::Http(_) => "http",
        }
    }
}

/// One event as a JSON object (the detail parsed back from its stored text).
fn event_json(e: &ChainedEvent) -> serde_json::Value {
    let detail: serde_json::Value = serde_json::from_str(&e.detail)
        .unwrap_or_else(|_| serde_json::Value::String(e.detail.clone()));
    serde_json::json!({
        "id": e.id, "ts": e.ts, "actor": e.actor, "action": e.action, "target": e.target,
        "detail": detail, "prev_hash": e.prev_hash, "hash": e.hash,
    })
}

/// RFC 3339 UTC with milliseconds.
fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = gatehouse_core::duration::civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem % 3_600_000 / 60_000,
        rem % 60_000 / 1000,
        rem % 1000
    )
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// One syslog message, octet counted: `LEN SP <85>1 TS HOST gatehouse - ACTION [sd] JSON`
/// (facility authpriv, severity notice).
pub fn syslog_frame(e: &ChainedEvent, host: &str) -> Vec<u8> {
    let msgid: String = e
        .action
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let msg = format!(
        "<85>1 {} {host} gatehouse - {msgid} [gatehouse@32473 id=\"{}\" actor=\"{}\" target=\"{}\" hash=\"{}\"] {}",
        rfc3339(e.ts),
        e.id,
        sd_escape(&e.actor),
        sd_escape(&e.target),
        e.hash.as_deref().unwrap_or_default(),
        event_json(e)
    );
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

async fn send_syslog(addr: &str, events: &[ChainedEvent]) -> Result<(), String> {
    let mut tcp =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect failed: {e}"))?;
    let host = hostname();
    let mut buf = Vec::new();
    for e in events {
        buf.extend_from_slice(&syslog_frame(e, &host));
    }
    tcp.write_all(&buf)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    tcp.flush()
        .await
        .map_err(|e| format!("flush failed: {e}"))?;
    // Close our side and wait for the receiver to close its own: data a
    // receiver never read is not counted as delivered.
    tcp.shutdown()
        .await
        .map_err(|e| format!("shutdown failed: {e}"))?;
    let mut sink = [0u8; 64];
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut sink),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the receiver did not close cleanly: {e}")),
        Err(_) => Err("the receiver did not acknowledge (close) in time".into()),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".into())
}

async fn send_http(
    client: &reqwest::Client,
    url: &Secret,
    events: &[ChainedEvent],
) -> Result<(), String> {
    let mut body = String::new();
    for e in events {
        body.push_str(&event_json(e).to_string());
        body.push('\n');
    }
    match client
        .post(url.expose())
        .header("content-type", "application/x-ndjson")
        .header("user-agent", "gatehouse")
        .body(body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("status {}", r.status())),
        // The error text can carry the URL: say only what kind it was.
        Err(e) if e.is_connect() => Err("could not connect".into()),
        Err(e) if e.is_timeout() => Err("timed out".into()),
        Err(_) => Err("request failed".into()),
    }
}

async fn cursor(store: &Store, key: &str) -> Result<i64, StoreError> {
    Ok(store
        .get_meta(key)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Runs one sink until the process ends.
pub async fn run(store: Store, sink: Sink, index: usize) {
    let key = sink.cursor_key(index);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the audit stream's HTTP client");
            return;
        }
    };
    let mut backoff = Duration::from_millis(250);
    loop {
        let after = match cursor(&store, &key).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "audit stream: cannot read its cursor");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        let events = match store.audit_chain(after, BATCH).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "audit stream: cannot read events");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        let Some(last) = events.last().map(|e| e.id) else {
            tokio::time::sleep(IDLE).await;
            continue;
        };
        let sent = match &sink {
            Sink::Syslog(addr) => send_syslog(addr, &events).await,
            Sink::Http(url) => send_http(&client, url, &events).await,
        };
        match sent {
            Ok(()) => {
                backoff = Duration::from_millis(250);
                if let Err(e) = store.set_meta(&key, &last.to_string()).await {
                    tracing::warn!(error = %e, "audit stream: cannot save its cursor (events will be sent again)");
                }
            }
            Err(why) => {
                tracing::warn!(
                    sink = sink.label(),
                    why,
                    from = after + 1,
                    "audit stream: the receiver did not take the events; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_frames_are_octet_counted_rfc5424() {
        let e = ChainedEvent {
            id: 7,
            ts: 1_796_000_000_123,
            actor: "alice \"x\"]".into(),
            action: "token.create".into(),
            target: "bot".into(),
            detail: "{\"groups\":[\"agents\"]}".into(),
            prev_hash: Some("00".into()),
            hash: Some("ab".into()),
        };
        let f = String::from_utf8(syslog_frame(&e, "gw1")).expect("utf8");
        let (len, msg) = f.split_once(' ').expect("length prefix");
        assert_eq!(len.parse::<usize>().expect("number"), msg.len());
        assert!(msg.starts_with("<85>1 2026-11-30T"), "{msg}");
        assert!(msg.contains(" gw1 gatehouse - token.create [gatehouse@32473 id=\"7\" actor=\"alice \\\"x\\\"\\]\""), "{msg}");
        let json: serde_json::Value =
            serde_json::from_str(&msg[msg.find("] ").expect("sd end") + 2..]).expect("json body");
        assert_eq!(json["id"], 7);
        assert_eq!(json["detail"]["groups"][0], "agents");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_001), "2000-02-29T00:00:00.001Z");
    }
}
