//! The declarative file applied with `gatehouse apply -f gatehouse.toml`.
//!
//! Parsing is strict: unknown keys, inlined secrets, invalid names or urls and
//! duplicate names are errors that name the line at fault; files over
//! [`MAX_FILE`] bytes are refused. Secrets are references (`{ env = "VAR" }`
//! or `{ file = "PATH" }`), resolved by the process that reads the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::duration::parse_duration;
use crate::model::{AwsSettings, ConnectionKind, ConnectionSettings, ConnectionSpec, HttpAuth};
use crate::policy::spec::{
    AccessSpec, Action, DetectorSpec, MaskSpec, Place, PolicySpec, RuleSpec,
};
use crate::secret::Secret;

/// An error in the file, with the line it is on (1-based; 0 when unknown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}line {line}: {message}", file.as_ref().map(|f| format!("{}:", f.display())).unwrap_or_default())]
pub struct DeclError {
    pub file: Option<PathBuf>,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    connections: Vec<Spanned<RawConnection>>,
    #[serde(default)]
    policy: Option<Spanned<RawPolicy>>,
    #[serde(default)]
    rules: Vec<Spanned<RuleSpec>>,
    #[serde(default)]
    masks: Vec<Spanned<MaskSpec>>,
    #[serde(default)]
    detectors: Vec<Spanned<DetectorSpec>>,
    #[serde(default)]
    access: Vec<Spanned<AccessSpec>>,
}

/// The `[policy]` table: settings for the policy as a whole.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    default: Action,
    #[serde(default)]
    review_timeout: Option<String>,
    #[serde(default)]
    break_glass: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: Spanned<String>,
    kind: ConnectionKind,
    url: Spanned<String>,
    #[serde(default)]
    password: Option<Spanned<SecretRef>>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    statement_timeout: Option<Spanned<String>>,
    #[serde(default)]
    row_limit: Option<u64>,
    #[serde(default)]
    record_rows: Option<u64>,
    #[serde(default)]
    max_session: Option<Spanned<String>>,
    #[serde(default)]
    max_sessions: Option<u64>,
    #[serde(default)]
    read_only: Option<bool>,
    /// HTTP: `Authorization: Bearer` with this secret.
    #[serde(default)]
    bearer: Option<Spanned<SecretRef>>,
    /// HTTP: basic auth.
    #[serde(default)]
    basic: Option<Spanned<RawBasic>>,
    /// HTTP: a custom header carrying the secret.
    #[serde(default)]
    header: Option<Spanned<RawHeader>>,
    /// HTTP: a TLS client certificate and its key.
    #[serde(default)]
    client_cert: Option<Spanned<RawClientCert>>,
    /// AWS: the access key the gateway signs with.
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<Spanned<SecretRef>>,
    #[serde(default)]
    region: Option<String>,
    /// AWS: a role to assume, and how.
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    sts_url: Option<String>,
    /// HTTP and AWS: certificates trusted for the upstream's TLS.
    #[serde(default)]
    ca_cert: Option<Spanned<SecretRef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    username: String,
    password: SecretRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    value: SecretRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientCert {
    cert: SecretRef,
    key: SecretRef,
}

/// Where a secret comes from. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a secret reference: { env = \"VAR\" } or { file = \"PATH\" }")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(
                    "secrets are never written in this file: use { env = \"VAR\" } or { file = \"PATH\" }",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretRef, A::Error> {
                use serde::de::Error;
                let mut found = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    let r = match key.as_str() {
                        "env" => SecretRef::Env(value),
                        "file" => SecretRef::File(PathBuf::from(value)),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a secret reference: use env or file"
                            )));
                        }
                    };
                    if found.replace(r).is_some() {
                        return Err(A::Error::custom(
                            "a secret reference names exactly one of env or file",
                        ));
                    }
                }
                found.ok_or_else(|| {
                    A::Error::custom("a secret reference needs env = \"VAR\" or file = \"PATH\"")
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A connection from the file, with its secret resolved.
#[derive(Debug, Clone)]
pub struct DeclConnection {
    pub spec: ConnectionSpec,
    pub password: Option<Secret>,
    pub line: usize,
}

/// Everything the file declares.
#[derive(Debug, Clone, Default)]
pub struct Declaration {
    pub connections: Vec<DeclConnection>,
    /// The policy, when the file has a `[policy]` table or any rules, masks
    /// or detectors; it then replaces the stored policy as a whole. `None`
    /// leaves the stored policy as it is.
    pub policy: Option<PolicySpec>,
}

/// Reads secrets for [`parse`]; tests substitute their own environment.
pub trait SecretSource {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &Path) -> std::io::Result<String>;
}

/// The real process environment and file system, relative to `base`.
#[derive(Debug)]
pub struct ProcessSecrets {
    pub base: PathBuf,
}

impl SecretSource for ProcessSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(self.base.join(path))
    }
}

/// Largest file accepted, in bytes. `gatehouse apply` sends the whole file's
/// connections to the server in one request, whose body limit is also 1 MiB.
pub const MAX_FILE: usize = 1 << 20;

/// Turns byte offsets into 1-based line numbers; the text is scanned once,
/// not once per lookup (a file with many connections stays linear).
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        Self(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// One more than the number of newlines before `offset`.
    fn of(&self, offset: usize) -> usize {
        self.0.partition_point(|nl| *nl < offset) + 1
    }
}

/// Parses and validates the file's text, resolving secret references.
pub fn parse(text: &str, secrets: &dyn SecretSource) -> Result<Declaration, DeclError> {
    if text.len() > MAX_FILE {
        return Err(DeclError {
            file: None,
            line: 0,
            message: format!(
                "the file is {} bytes, over the {MAX_FILE}-byte limit",
                text.len()
            ),
        });
    }
    let lines = Lines::new(text);
    let err = |offset: usize, message: String| DeclError {
        file: None,
        line: lines.of(offset),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        err(offset, e.message().trim().to_string())
    })?;
    let mut out = Declaration::default();
    let mut names = std::collections::HashSet::new();
    for conn in raw.connections {
        let start = conn.span().start;
        let c = conn.into_inner();
        let name_at = c.name.span().start;
        if !names.insert(c.name.get_ref().clone()) {
            return Err(err(
                name_at,
                format!("connection {:?} is declared twice", c.name.get_ref()),
            ));
        }
        let mut settings = ConnectionSettings {
            row_limit: c.row_limit,
            record_rows: c.record_rows,
            max_sessions: c.max_sessions,
            read_only: c.read_only,
            ..Default::default()
        };
        if let Some(t) = &c.statement_timeout {
            let d = parse_duration(t.get_ref()).map_err(|e| err(t.span().start, e.to_string()))?;
            settings.statement_timeout_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        }
        if let Some(t) = &c.max_session {
            let d = parse_duration(t.get_ref()).map_err(|e| err(t.span().start, e.to_string()))?;
            settings.max_session_secs = Some(d.as_secs());
        }
        // One credential per connection, in the form its kind takes.
        let mut credentials: Vec<(usize, &'static str, Vec<&SecretRef>)> = Vec::new();
        if let Some(p) = &c.password {
            credentials.push((p.span().start, "password", vec![p.get_ref()]));
        }
        if let Some(b) = &c.bearer {
            settings.http_auth = Some(HttpAuth::Bearer);
            credentials.push((b.span().start, "bearer", vec![b.get_ref()]));
        }
        if let Some(b) = &c.basic {
            settings.http_auth = Some(HttpAuth::Basic {
                username: b.get_ref().username.clone(),
            });
            credentials.push((b.span().start, "basic", vec![&b.get_ref().password]));
        }
        if let Some(h) = &c.header {
            settings.http_auth = Some(HttpAuth::Header {
                name: h.get_ref().name.clone(),
            });
            credentials.push((h.span().start, "header", vec![&h.get_ref().value]));
        }
        if let Some(cc) = &c.client_cert {
            settings.http_auth = Some(HttpAuth::ClientCert);
            let cc_ref = cc.get_ref();
            credentials.push((
                cc.span().start,
                "client_cert",
                vec![&cc_ref.cert, &cc_ref.key],
            ));
        }
        if let Some(k) = &c.secret_access_key {
            credentials.push((k.span().start, "secret_access_key", vec![k.get_ref()]));
        }
        if c.access_key_id.is_some()
            || c.region.is_some()
            || c.role_arn.is_some()
            || c.external_id.is_some()
            || c.sts_url.is_some()
        {
            settings.aws = Some(AwsSettings {
                access_key_id: c.access_key_id.clone().unwrap_or_default(),
                region: c.region.clone(),
                role_arn: c.role_arn.clone(),
                external_id: c.external_id.clone(),
                sts_url: c.sts_url.clone(),
            });
        }
        if let Some(ca) = &c.ca_cert {
            let pem = resolve(ca.get_ref(), secrets).map_err(|m| err(ca.span().start, m))?;
            settings.ca_pem = Some(pem.expose().to_string());
        }
        if credentials.len() > 1 {
            let (at, _, _) = credentials[1];
            let names: Vec<&str> = credentials.iter().map(|(_, n, _)| *n).collect();
            return Err(err(
                at,
                format!(
                    "connection {:?} names several credentials ({}): give exactly one",
                    c.name.get_ref(),
                    names.join(", ")
                ),
            ));
        }
        let allowed: &[&str] = match c.kind {
            ConnectionKind::Postgres | ConnectionKind::Mysql => &["password"],
            ConnectionKind::Http => &["bearer", "basic", "header", "client_cert"],
            ConnectionKind::Aws => &["secret_access_key"],
        };
        if let Some((at, name, _)) = credentials.iter().find(|(_, n, _)| !allowed.contains(n)) {
            return Err(err(
                *at,
                format!(
                    "a {} connection's credential is {}, not {name}",
                    c.kind,
                    allowed.join(" or ")
                ),
            ));
        }
        let spec = ConnectionSpec {
            name: c.name.get_ref().clone(),
            kind: c.kind,
            url: c.url.get_ref().clone(),
            groups: c.groups,
            settings,
        };
        spec.validate().map_err(|e| {
            let at = match e {
                crate::model::SpecError::BadName(_) => name_at,
                crate::model::SpecError::BadGroup(_)
                | crate::model::SpecError::BadSettings { .. } => start,
                _ => c.url.span().start,
            };
            err(at, e.to_string())
        })?;
        let password = match credentials.first() {
            None => None,
            Some((at, _, refs)) => {
                // A client certificate is its chain then its key, as one PEM text.
                let mut parts = Vec::new();
                for r in refs {
                    parts.push(resolve(r, secrets).map_err(|m| err(*at, m))?);
                }
                if parts.len() == 1 {
                    parts.pop()
                } else {
                    Some(Secret::new(
                        parts
                            .iter()
                            .map(Secret::expose)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ))
                }
            }
        };
        out.connections.push(DeclConnection {
            spec,
            password,
            line: lines.of(start),
        });
    }
    if raw.policy.is_some()
        || !raw.rules.is_empty()
        || !raw.masks.is_empty()
        || !raw.detectors.is_empty()
        || !raw.access.is_empty()
    {
        let policy_at = raw.policy.as_ref().map_or(0, |p| p.span().start);
        let rule_at: Vec<usize> = raw.rules.iter().map(|r| r.span().start).collect();
        let mask_at: Vec<usize> = raw.masks.iter().map(|r| r.span().start).collect();
        let detector_at: Vec<usize> = raw.detectors.iter().map(|r| r.span().start).collect();
        let access_at: Vec<usize> = raw.access.iter().map(|r| r.span().start).collect();
        let settings = raw.policy.map(Spanned::into_inner);
        let (default, review_timeout, break_glass) = match settings {
            Some(p) => (p.default, p.review_timeout, p.break_glass),
            None => (Action::Allow, None, Vec::new()),
        };
        let spec = PolicySpec {
            default,
            rules: raw.rules.into_iter().map(Spanned::into_inner).collect(),
            masks: raw.masks.into_iter().map(Spanned::into_inner).collect(),
            detectors: raw.detectors.into_iter().map(Spanned::into_inner).collect(),
            review_timeout,
            break_glass,
            access: raw.access.into_iter().map(Spanned::into_inner).collect(),
        };
        spec.validate().map_err(|e| {
            let at = match e.place {
                Place::Policy => policy_at,
                Place::Rule(i) => rule_at.get(i).copied().unwrap_or(0),
                Place::Mask(i) => mask_at.get(i).copied().unwrap_or(0),
                Place::Detector(i) => detector_at.get(i).copied().unwrap_or(0),
                Place::Access(i) => access_at.get(i).copied().unwrap_or(0),
            };
            err(at, e.to_string())
        })?;
        out.policy = Some(spec);
    }
    Ok(out)
}

fn resolve(r: &SecretRef, secrets: &dyn SecretSource) -> Result<Secret, String> {
    match r {
        SecretRef::Env(var) => secrets.env(var).map(Secret::new).ok_or_else(|| {
            format!("environment variable {var} is not set (it holds a secret of this connection)")
        }),
        SecretRef::File(path) => secrets
            .file(path)
            .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
            .map_err(|e| format!("cannot read secret file {}: {e}", path.display())),
    }
}

/// Reads and parses a declarative file from disk; secret files are relative to it.
pub fn parse_file(path: &Path) -> Result<Declaration, DeclError> {
    let text = std::fs::read_to_string(path).map_err(|e| DeclError {
        file: Some(path.to_path_buf()),
        line: 0,
        message: format!("cannot read the file: {e}"),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &ProcessSecrets { base }).map_err(|mut e| {
        e.file = Some(path.to_path_buf());
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, &'static str>);
    impl SecretSource for Fake {
        fn env(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
        fn file(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(path.to_str().unwrap_or_default())
                .map(|s| format!("{s}\n"))
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    fn secrets() -> Fake {
        Fake(HashMap::from([
            ("SHOP_DB_PASSWORD", "pw1"),
            ("/run/pw", "pw2"),
        ]))
    }

    const GOOD: &str = r#"
[[connections]]
name = "shop"
kind = "postgres"
url = "postgres://app@127.0.0.1:5432/shop"   # no password here
password = { env = "SHOP_DB_PASSWORD" }
groups = ["analysts", "agents"]
read_only = true

[[connections]]
name = "crm"
kind = "mysql"
url = "mysql://app@127.0.0.1:3306/crm"
password = { file = "/run/pw" }
statement_timeout = "30s"
row_limit = 1000
max_sessions = 20
"#;

    #[test]
    fn parses_the_documented_shape() {
        let d = parse(GOOD, &secrets()).expect("parses");
        assert_eq!(d.connections.len(), 2);
        let shop = &d.connections[0];
        assert_eq!(shop.spec.groups, vec!["analysts", "agents"]);
        assert_eq!(shop.password.as_ref().map(Secret::expose), Some("pw1"));
        assert_eq!(shop.line, 2);
        let crm = &d.connections[1];
        assert_eq!(crm.password.as_ref().map(Secret::expose), Some("pw2"));
        assert_eq!(crm.spec.settings.statement_timeout_ms, Some(30_000));
        assert_eq!(crm.spec.settings.row_limit, Some(1000));
        assert_eq!(crm.spec.settings.max_sessions, Some(20));
        assert_eq!(shop.spec.settings.max_sessions, None);
        assert_eq!(shop.spec.settings.read_only, Some(true));
        assert_eq!(crm.spec.settings.read_only, None);
    }

    #[test]
    fn http_and_aws_connections_take_their_credentials() {
        let text = r#"
[[connections]]
name = "crm"
kind = "http"
url = "http://127.0.0.1:9000"
bearer = { env = "SHOP_DB_PASSWORD" }
groups = ["agents"]

[[connections]]
name = "crm-basic"
kind = "http"
url = "https://crm.internal/api"
basic = { username = "svc", password = { file = "/run/pw" } }

[[connections]]
name = "crm-key"
kind = "http"
url = "http://127.0.0.1:9000"
header = { name = "X-Api-Key", value = { env = "SHOP_DB_PASSWORD" } }

[[connections]]
name = "crm-mtls"
kind = "http"
url = "https://crm.internal"
client_cert = { cert = { file = "/run/pw" }, key = { env = "SHOP_DB_PASSWORD" } }
ca_cert = { file = "/run/pw" }

[[connections]]
name = "s3"
kind = "aws"
url = "https://s3.eu-west-1.amazonaws.com"
access_key_id = "AKIAEXAMPLE"
secret_access_key = { env = "SHOP_DB_PASSWORD" }
region = "eu-west-1"
"#;
        let d = parse(text, &secrets()).expect("parses");
        let c = |i: usize| &d.connections[i];
        assert_eq!(c(0).spec.settings.http_auth, Some(HttpAuth::Bearer));
        assert_eq!(c(0).password.as_ref().map(Secret::expose), Some("pw1"));
        assert_eq!(
            c(1).spec.settings.http_auth,
            Some(HttpAuth::Basic {
                username: "svc".into()
            })
        );
        assert_eq!(c(1).password.as_ref().map(Secret::expose), Some("pw2"));
        assert_eq!(
            c(2).spec.settings.http_auth,
            Some(HttpAuth::Header {
                name: "X-Api-Key".into()
            })
        );
        assert_eq!(c(3).spec.settings.http_auth, Some(HttpAuth::ClientCert));
        assert_eq!(c(3).password.as_ref().map(Secret::expose), Some("pw2\npw1"));
        assert_eq!(c(3).spec.settings.ca_pem.as_deref(), Some("pw2"));
        let aws = c(4).spec.settings.aws.as_ref().expect("aws settings");
        assert_eq!(
            (aws.access_key_id.as_str(), aws.region.as_deref()),
            ("AKIAEXAMPLE", Some("eu-west-1"))
        );
        assert_eq!(c(4).password.as_ref().map(Secret::expose), Some("pw1"));
        // Debug output never shows a credential.
        assert!(!format!("{d:?}").contains("pw1"));
    }

    #[test]
    fn credentials_must_fit_the_kind() {
        let head = "[[connections]]\nname = \"a\"\n";
        let e = error_of(&format!(
            "{head}kind = \"postgres\"\nurl = \"postgres://h/db\"\nbearer = {{ env = \"X\" }}\n"
        ));
        assert!(e.message.contains("password, not bearer"), "{e}");
        assert_eq!(e.line, 5);
        let e = error_of(&format!(
            "{head}kind = \"http\"\nurl = \"http://h\"\nbearer = {{ env = \"SHOP_DB_PASSWORD\" }}\nheader = {{ name = \"X-Key\", value = {{ env = \"SHOP_DB_PASSWORD\" }} }}\n"
        ));
        assert!(e.message.contains("several credentials"), "{e}");
        let e = error_of(&format!(
            "{head}kind = \"aws\"\nurl = \"http://h\"\nsecret_access_key = {{ env = \"SHOP_DB_PASSWORD\" }}\n"
        ));
        assert!(e.message.contains("access_key_id"), "{e}");
        let e = error_of(&format!(
            "{head}kind = \"http\"\nurl = \"http://h/?token=x\"\n"
        ));
        assert!(e.message.contains("without user, query or fragment"), "{e}");
        let e = error_of(&format!(
            "{head}kind = \"http\"\nurl = \"http://h\"\nheader = {{ name = \"Host\", value = {{ env = \"SHOP_DB_PASSWORD\" }} }}\n"
        ));
        assert!(e.message.contains("cannot carry a credential"), "{e}");
    }

    fn error_of(text: &str) -> DeclError {
        match parse(text, &secrets()) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\npasword = { env = \"X\" }\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("pasword"), "{e}");
        let e = error_of("\n\n[[conections]]\n");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn inline_secrets_are_refused() {
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\npassword = \"hunter2\"\n",
        );
        assert_eq!(e.line, 5);
        assert!(e.message.contains("never written"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn semantic_errors_name_their_line() {
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"postgres\"\nurl = \"postgres://u:pw@h/db\"\n",
        );
        assert_eq!(e.line, 4);
        assert!(e.message.contains("contains a password"));
        let e = error_of(
            "[[connections]]\nname = \"Bad Name\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n",
        );
        assert_eq!(e.line, 2);
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\npassword = { env = \"MISSING\" }\n",
        );
        assert_eq!(e.line, 5);
        assert!(e.message.contains("MISSING"));
        let dup = format!(
            "{GOOD}\n[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n"
        );
        let e = error_of(&dup);
        assert!(e.message.contains("declared twice"));
        assert_eq!(e.line, 20);
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\nmax_sessions = 0\n",
        );
        assert_eq!(e.line, 1);
        assert!(
            e.message.contains("max_sessions is at least 1"),
            "{}",
            e.message
        );
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://h/\"\nread_only = true\n",
        );
        assert_eq!(e.line, 1);
        assert!(
            e.message
                .contains("read_only belongs to postgres and mysql connections, not http"),
            "{}",
            e.message
        );
        let e = error_of(
            "[[connections]]\nname = \"a\"\nkind = \"oracle\"\nurl = \"postgres://h/db\"\n",
        );
        assert_eq!(e.line, 3);
    }

    const POLICY: &str = r#"
[policy]
default = "allow"

[[rules]]
name = "agents-read-only"
connections = ["shop"]            # omitted: every connection
groups = ["agents"]               # omitted: everyone
statements = ["write", "ddl", "dcl", "admin"]
action = "deny"                   # allow | deny | review
message = "agents are read-only on shop"

[[masks]]
connections = ["shop"]
columns = ["public.customers.email", "public.customers.card_number"]
method = "partial"                # redact | partial | hash | null
except_groups = ["support-leads"]

[[detectors]]
connections = ["shop"]
kinds = ["email", "credit_card", "iban", "us_ssn", "phone", "aws_access_key", "private_key", "jwt"]
"#;

    #[test]
    fn parses_the_documented_policy() {
        let d = parse(POLICY, &secrets()).expect("parses");
        let p = d.policy.expect("policy");
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.rules[0].statements.len(), 4);
        assert_eq!(p.masks[0].columns.len(), 2);
        assert_eq!(p.detectors[0].kinds.len(), 8);
        assert!(parse(GOOD, &secrets()).expect("parses").policy.is_none());
    }

    #[test]
    fn policy_errors_name_their_line() {
        let e = error_of(&POLICY.replace("\"ddl\"", "\"dll\""));
        assert_eq!(e.line, 9, "{e}");
        let bad_regex = format!(
            "{POLICY}\n[[rules]]\nname = \"r\"\npattern = \"(unclosed\"\naction = \"deny\"\n"
        );
        let e = error_of(&bad_regex);
        assert_eq!(e.line, 23, "{e}");
        assert!(e.message.contains("regular expression"), "{e}");
        let dup = format!("{POLICY}\n[[rules]]\nname = \"agents-read-only\"\naction = \"allow\"\n");
        let e = error_of(&dup);
        assert!(e.message.contains("declared twice"), "{e}");
        assert_eq!(e.line, 23, "{e}");
        let e = error_of("[[rules]]\nname = \"r\"\naction = \"review\"\n");
        assert!(e.message.contains("approvers"), "{e}");
        assert_eq!(e.line, 1, "{e}");
        let e = error_of("[[masks]]\ncolumns = [\"email\"]\nmethod = \"redact\"\n");
        assert!(e.message.contains("schema.table.column"), "{e}");
        let e = error_of("[[rules]]\nname = \"r\"\nhours = \"9-17\"\naction = \"deny\"\n");
        assert!(e.message.contains("HH:MM"), "{e}");
    }
}
