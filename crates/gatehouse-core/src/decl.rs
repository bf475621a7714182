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
use crate::model::{ConnectionKind, ConnectionSettings, ConnectionSpec};
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
                crate::model::SpecError::BadGroup(_) => start,
                _ => c.url.span().start,
            };
            err(at, e.to_string())
        })?;
        let password = match &c.password {
            None => None,
            Some(r) => Some(resolve(r.get_ref(), secrets).map_err(|m| err(r.span().start, m))?),
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
            format!("environment variable {var} is not set (it holds the password)")
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

[[connections]]
name = "crm"
kind = "mysql"
url = "mysql://app@127.0.0.1:3306/crm"
password = { file = "/run/pw" }
statement_timeout = "30s"
row_limit = 1000
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
        assert_eq!(e.line, 18);
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
