//! AWS connections that assume a role: the connection's own key only
//! calls STS `AssumeRole`, and requests are signed with the temporary
//! credentials it returns. They are kept per connection and caller (the
//! role session is named after the caller, so the account's CloudTrail
//! says who acted) until five minutes before they expire.

use std::collections::HashMap;
use std::sync::Mutex;

use gatehouse_core::secret::Secret;
use gatehouse_core::sigv4::{self, Credentials};

/// Temporary credentials are renewed this long before they expire.
const RENEW_BEFORE_MS: i64 = 5 * 60 * 1000;
/// How long the role's credentials are asked for.
const DURATION_SECS: u32 = 3600;
/// Largest STS answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// What to assume.
#[derive(Debug, Clone)]
pub struct RoleRequest<'a> {
    /// The STS endpoint, e.g. `https://sts.eu-west-1.amazonaws.com`.
    pub sts_url: &'a str,
    pub region: &'a str,
    pub role_arn: &'a str,
    pub external_id: Option<&'a str>,
    /// The caller, part of the role session's name.
    pub caller: &'a str,
}

/// A role session name from the caller: `gatehouse-<caller>`, limited to
/// the characters and length STS accepts.
pub fn session_name(caller: &str) -> String {
    let mut s: String = format!("gatehouse-{caller}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(64);
    s
}

fn form_encode(s: &str) -> String {
    sigv4::uri_encode(s, false)
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Unix milliseconds of an ISO 8601 UTC time such as
/// `2026-11-29T10:17:12Z` or `2026-11-29T10:17:12.514Z`.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's
    // well-known algorithm.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    #[allow(clippy::cast_possible_truncation)]
    let ms = (sec * 1000.0) as i64;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + ms)
}

/// Calls STS `AssumeRole` with `base` and returns the temporary
/// credentials and when they expire (Unix ms). Errors name STS's code and
/// message, never a secret.
pub async fn assume_role(
    client: &reqwest::Client,
    base: &Credentials,
    req: &RoleRequest<'_>,
    now_ms: i64,
) -> Result<(Credentials, i64), String> {
    let url = url::Url::parse(req.sts_url).map_err(|e| format!("the STS url is not valid: {e}"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err("the STS url has no host".into()),
    };
    let mut body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}&DurationSeconds={DURATION_SECS}",
        form_encode(req.role_arn),
        form_encode(&session_name(req.caller)),
    );
    if let Some(x) = req.external_id {
        body.push_str("&ExternalId=");
        body.push_str(&form_encode(x));
    }
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let path = if url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    let headers = vec![("content-type".to_string(), content_type.to_string())];
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            host: &host,
            path,
            query: &[],
            headers: &headers,
            payload_sha256: &sigv4::sha256_hex(body.as_bytes()),
        },
        base,
        req.region,
        "sts",
        now_ms,
    );
    let mut r = client
        .post(url.as_str())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for (k, v) in &signed {
        r = r.header(k.as_str(), v.as_str());
    }
    let resp = r
        .send()
        .await
        .map_err(|e| format!("STS at {} is unreachable: {}", req.sts_url, e.without_url()))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("STS's answer broke off: {}", e.without_url()))?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ANSWER)]).into_owned();
    if !status.is_success() {
        return Err(format!(
            "STS refused to assume {}: {} {}",
            req.role_arn,
            element(&text, "Code").unwrap_or_else(|| status.to_string()),
            element(&text, "Message").unwrap_or_default()
        ));
    }
    let field = |tag: &str| {
        element(&text, tag).ok_or_else(|| format!("STS's AssumeRole answer has no {tag}"))
    };
    let expires = parse_time(&field("Expiration")?)
        .ok_or_else(|| "STS's AssumeRole answer has an unreadable Expiration".to_string())?;
    Ok((
        Credentials {
            access_key: field("AccessKeyId")?,
            secret_key: Secret::new(field("SecretAccessKey")?),
            session_token: Some(Secret::new(field("SessionToken")?)),
        },
        expires,
    ))
}

/// (connection, its version, caller) → (credentials, when they expire).
type RoleMap = HashMap<(String, i64, String), (Credentials, i64)>;

/// Assumed-role credentials by connection version and caller.
#[derive(Debug, Default)]
pub struct RoleCache {
    map: Mutex<RoleMap>,
}

impl RoleCache {
    /// Live credentials for this connection version and caller, assuming
    /// the role again when none are cached or they expire soon.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        connection: (&str, i64),
        base: &Credentials,
        req: &RoleRequest<'_>,
        now_ms: i64,
    ) -> Result<Credentials, String> {
        let key = (
            connection.0.to_string(),
            connection.1,
            req.caller.to_string(),
        );
        if let Some((c, exp)) = self.lock().get(&key)
            && *exp - RENEW_BEFORE_MS > now_ms
        {
            return Ok(c.clone());
        }
        let (c, exp) = assume_role(client, base, req, now_ms).await?;
        let mut map = self.lock();
        if map.len() > 10_000 {
            map.retain(|_, (_, e)| *e - RENEW_BEFORE_MS > now_ms);
        }
        map.insert(key, (c.clone(), exp));
        Ok(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RoleMap> {
        match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-29T10:17:12Z"), Some(1_795_947_432_000));
        assert_eq!(
            parse_time("2026-11-29T10:17:12.514Z"),
            Some(1_795_947_432_514)
        );
        assert_eq!(
            parse_time("2026-11-29T10:17:12.514413+00:00"),
            Some(1_795_947_432_514)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(session_name("ann@example.com"), "gatehouse-ann@example.com");
        assert_eq!(session_name("a b/c"), "gatehouse-a-b-c");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn answers_are_read() {
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s&amp;k</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2026-11-29T10:17:12Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert_eq!(element(xml, "AccessKeyId").as_deref(), Some("ASIAX"));
        assert_eq!(element(xml, "SecretAccessKey").as_deref(), Some("s&k"));
        assert_eq!(element(xml, "Missing"), None);
    }
}
