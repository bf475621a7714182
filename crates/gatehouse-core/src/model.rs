//! Connections and principals.

use serde::{Deserialize, Serialize};

/// What a connection points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    Postgres,
    Mysql,
    Http,
    Aws,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Http => "http",
            Self::Aws => "aws",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            "http" => Some(Self::Http),
            "aws" => Some(Self::Aws),
            _ => None,
        }
    }

    fn url_schemes(self) -> &'static [&'static str] {
        match self {
            Self::Postgres => &["postgres", "postgresql"],
            Self::Mysql => &["mysql", "mariadb"],
            Self::Http | Self::Aws => &["http", "https"],
        }
    }
}

impl std::fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-connection session settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// Longest a single statement may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_ms: Option<u64>,
    /// Most rows returned to a caller per statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_limit: Option<u64>,
    /// Longest a client session may last, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_secs: Option<u64>,
    /// Most sessions open at once on one replica (PostgreSQL and MySQL
    /// connections; the query API's and MCP's sessions count too): each
    /// holds an upstream connection, so this keeps callers from using up
    /// the database's own connection slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u64>,
    /// PostgreSQL and MySQL connections: every session runs in read-only
    /// transactions, which the database itself enforces
    /// (`default_transaction_read_only`; `SET SESSION TRANSACTION READ
    /// ONLY`); callers may not change that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Rows of each result kept in the session recording, as the caller
    /// saw them (masked); default 10, 0 records no results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_rows: Option<u64>,
    /// HTTP connections: how the stored credential is presented upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_auth: Option<HttpAuth>,
    /// AWS connections: the key the gateway signs with and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
    /// HTTP and AWS connections: PEM certificates trusted for the
    /// upstream's TLS, besides the public web roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl ConnectionSettings {
    /// The settings a caller who is not an administrator may see: limits,
    /// not how the gateway reaches or logs in to the upstream.
    pub fn for_users(&self) -> ConnectionSettings {
        ConnectionSettings {
            http_auth: None,
            aws: None,
            ca_pem: None,
            ..self.clone()
        }
    }
}

/// How an HTTP connection's credential (its stored secret) is sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(username:secret)`.
    Basic { username: String },
    /// `<name>: <secret>`, e.g. `X-Api-Key`.
    Header { name: String },
    /// A TLS client certificate: the secret is the PEM certificate chain
    /// followed by its PEM private key.
    ClientCert,
}

/// An AWS connection's signing settings; the secret access key is the
/// connection's stored secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    pub access_key_id: String,
    /// The region requests are signed for; default: the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A role to assume with the key; requests are then signed with the
    /// role's temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Where STS is; default: `https://sts.<region>.amazonaws.com` for AWS
    /// endpoints, else the connection's url (S3-compatible services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_url: Option<String>,
}

/// Result rows recorded per statement when a connection does not say.
pub const DEFAULT_RECORD_ROWS: u64 = 10;
/// Bytes of result values recorded per statement, at most.
pub const RECORD_BYTES: usize = 16 * 1024;

/// A connection as users describe it; the credential travels separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    pub name: String,
    pub kind: ConnectionKind,
    pub url: String,
    /// Groups whose members may use the connection at all.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub settings: ConnectionSettings,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "connection name {0:?} is not valid: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
    )]
    BadName(String),
    #[error("url {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "the url of connection {0:?} contains a password: remove it from the url and pass it as password = {{ env = \"VAR\" }} (or --password-env)"
    )]
    PasswordInUrl(String),
    #[error("group name {0:?} is not valid: use letters, digits, '.', '-', '_', ':' or '/'")]
    BadGroup(String),
    #[error("connection {name:?}: {message}")]
    BadSettings { name: String, message: String },
}

pub fn validate_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadName(name.to_string()))
    }
}

pub fn validate_group(group: &str) -> Result<(), SpecError> {
    let ok = !group.is_empty()
        && group.len() <= 128
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadGroup(group.to_string()))
    }
}

impl ConnectionSpec {
    /// Checks the name, the groups, and that the url parses, matches the kind
    /// and carries no password.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_name(&self.name)?;
        for g in &self.groups {
            validate_group(g)?;
        }
        let bad = |reason: &str| SpecError::BadUrl {
            url: redact_url(&self.url),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(&self.url).map_err(|e| bad(&e.to_string()))?;
        if url.password().is_some() {
            return Err(SpecError::PasswordInUrl(self.name.clone()));
        }
        if !self.kind.url_schemes().contains(&url.scheme()) {
            return Err(bad(&format!(
                "a {} connection needs a {} url",
                self.kind,
                self.kind.url_schemes().join(" or ")
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if matches!(self.kind, ConnectionKind::Http | ConnectionKind::Aws)
            && (url.query().is_some() || url.fragment().is_some() || !url.username().is_empty())
        {
            return Err(bad(
                "an http or aws url is a base (scheme, host, port, optional path) without user, query or fragment",
            ));
        }
        self.validate_settings()
    }

    fn validate_settings(&self) -> Result<(), SpecError> {
        let bad = |message: String| SpecError::BadSettings {
            name: self.name.clone(),
            message,
        };
        let s = &self.settings;
        if s.http_auth.is_some() && self.kind != ConnectionKind::Http {
            return Err(bad(format!(
                "http_auth belongs to http connections, not {}",
                self.kind
            )));
        }
        if s.aws.is_some() && self.kind != ConnectionKind::Aws {
            return Err(bad(format!(
                "aws settings belong to aws connections, not {}",
                self.kind
            )));
        }
        if s.max_sessions.is_some()
            && matches!(self.kind, ConnectionKind::Http | ConnectionKind::Aws)
        {
            return Err(bad(format!(
                "max_sessions belongs to postgres and mysql connections, not {}",
                self.kind
            )));
        }
        if s.max_sessions == Some(0) {
            return Err(bad("max_sessions is at least 1".into()));
        }
        if s.read_only.is_some()
            && !matches!(self.kind, ConnectionKind::Postgres | ConnectionKind::Mysql)
        {
            return Err(bad(format!(
                "read_only belongs to postgres and mysql connections, not {}",
                self.kind
            )));
        }
        if s.ca_pem.is_some() && !matches!(self.kind, ConnectionKind::Http | ConnectionKind::Aws) {
            return Err(bad("ca_pem belongs to http and aws connections".into()));
        }
        match &s.http_auth {
            Some(HttpAuth::Basic { username }) if username.contains(':') || username.is_empty() => {
                return Err(bad(
                    "a basic-auth username is not empty and has no ':'".into()
                ));
            }
            Some(HttpAuth::Header { name })
                if name.is_empty()
                    || name.len() > 128
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                return Err(bad(format!(
                    "header name {name:?} must be 1-128 letters, digits, '-' or '_'"
                )));
            }
            Some(HttpAuth::Header { name })
                if matches!(
                    name.to_ascii_lowercase().as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection"
                ) =>
            {
                return Err(bad(format!("header {name:?} cannot carry a credential")));
            }
            _ => {}
        }
        if self.kind == ConnectionKind::Aws {
            let Some(aws) = &s.aws else {
                return Err(bad(
                    "an aws connection names its access_key_id (the secret access key is its secret)"
                        .into(),
                ));
            };
            let ok_key = !aws.access_key_id.is_empty()
                && aws.access_key_id.len() <= 128
                && aws.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok_key {
                return Err(bad("access_key_id must be 1-128 letters and digits".into()));
            }
            if let Some(arn) = &aws.role_arn
                && (!arn.starts_with("arn:")
                    || arn.len() > 2048
                    || arn.chars().any(char::is_whitespace))
            {
                return Err(bad(format!(
                    "role_arn {arn:?} is not an ARN such as arn:aws:iam::123456789012:role/name"
                )));
            }
            if let Some(u) = &aws.sts_url
                && url::Url::parse(u).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            {
                return Err(bad(format!("sts_url {u:?} is not an http(s) url")));
            }
            if let Some(r) = &aws.region
                && (r.is_empty()
                    || r.len() > 64
                    || !r
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
            {
                return Err(bad(format!(
                    "region {r:?} is not a region name such as us-east-1"
                )));
            }
        }
        Ok(())
    }

    /// Whether a principal with these groups may use the connection.
    pub fn allows(&self, principal: &Principal) -> bool {
        self.groups.iter().any(|g| principal.groups.contains(g))
    }
}

/// A url with any password replaced, safe to print.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparseable url)".into(),
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Authn {
    /// A Gatehouse API token (service account), by token name.
    Token { name: String },
    /// A JWT from an OIDC issuer.
    Oidc { issuer: String },
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub subject: String,
    pub groups: Vec<String>,
    pub authn: Authn,
    /// When the credential stops being valid (Unix ms), if it expires.
    pub expires_at: Option<i64>,
}

impl Principal {
    pub fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> ConnectionSpec {
        ConnectionSpec {
            name: "shop".into(),
            kind: ConnectionKind::Postgres,
            url: url.into(),
            groups: vec!["agents".into()],
            settings: ConnectionSettings::default(),
        }
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            spec("postgres://app@127.0.0.1:5432/shop").validate(),
            Ok(())
        );
        assert_eq!(
            spec("postgres://app:pw@127.0.0.1/shop").validate(),
            Err(SpecError::PasswordInUrl("shop".into()))
        );
        assert!(matches!(
            spec("mysql://app@h/db").validate(),
            Err(SpecError::BadUrl { .. })
        ));
        assert!(matches!(
            spec("not a url").validate(),
            Err(SpecError::BadUrl { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        for ok in ["shop", "prod-db", "a_1", "9lives"] {
            assert_eq!(validate_name(ok), Ok(()));
        }
        for bad in ["", "Shop", "-x", "a b", "a/b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacted_urls_hide_passwords() {
        let r = redact_url("postgres://u:topsecret@h/db");
        assert!(!r.contains("topsecret"));
    }
}
