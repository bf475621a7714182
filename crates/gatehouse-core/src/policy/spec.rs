//! The policy as written: rules, masks and detectors, in the declarative
//! file and in the store. [`PolicySpec::validate`] checks everything that
//! can be checked without running a statement, so a bad policy is refused
//! when it is applied, never discovered when a statement arrives.

use serde::{Deserialize, Serialize};

/// Statement classes, from least to most privileged; a string of several
/// statements takes the class of its strictest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Transaction,
    Other,
    Read,
    Write,
    Ddl,
    Dcl,
    Admin,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Transaction => "transaction",
            Class::Other => "other",
            Class::Read => "read",
            Class::Write => "write",
            Class::Ddl => "ddl",
            Class::Dcl => "dcl",
            Class::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Allow,
    Review,
    Deny,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMethod {
    /// Replaced by a fixed marker.
    Redact,
    /// All but the last four characters replaced.
    Partial,
    /// A keyed deterministic token: equal values give equal tokens.
    Hash,
    /// SQL NULL.
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Email,
    CreditCard,
    Iban,
    UsSsn,
    Phone,
    AwsAccessKey,
    PrivateKey,
    Jwt,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 8] = [
        DetectorKind::Email,
        DetectorKind::CreditCard,
        DetectorKind::Iban,
        DetectorKind::UsSsn,
        DetectorKind::Phone,
        DetectorKind::AwsAccessKey,
        DetectorKind::PrivateKey,
        DetectorKind::Jwt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Email => "email",
            DetectorKind::CreditCard => "credit_card",
            DetectorKind::Iban => "iban",
            DetectorKind::UsSsn => "us_ssn",
            DetectorKind::Phone => "phone",
            DetectorKind::AwsAccessKey => "aws_access_key",
            DetectorKind::PrivateKey => "private_key",
            DetectorKind::Jwt => "jwt",
        }
    }
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// What happens to a statement no rule matches: `allow` (the default)
    /// or `deny`.
    #[serde(default)]
    pub default: Action,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub masks: Vec<MaskSpec>,
    #[serde(default)]
    pub detectors: Vec<DetectorSpec>,
    /// How long a held statement waits for its review (default 10 minutes),
    /// e.g. `"10m"`; a rule's own `timeout` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_timeout: Option<String>,
    /// Members of these groups may approve any review alone (break glass);
    /// every such approval is marked in the audit trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub break_glass: Vec<String>,
    /// Who may ask for just-in-time access to which connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessSpec>,
}

/// Access levels a just-in-time grant gives, each covering the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Reads (and transaction control, `SET` and the like).
    Read,
    /// Also inserts, updates and deletes.
    Write,
    /// Also schema changes.
    Ddl,
    /// Everything: also grants, roles and administrative functions.
    Admin,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Ddl => "ddl",
            Level::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "ddl" => Some(Level::Ddl),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }

    /// Whether a grant at this level covers a statement of class `c`.
    pub fn covers(self, c: Class) -> bool {
        let need = match c {
            Class::Transaction | Class::Other | Class::Read => Level::Read,
            Class::Write => Level::Write,
            Class::Ddl => Level::Ddl,
            Class::Dcl | Class::Admin => Level::Admin,
        };
        need <= self
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who may request just-in-time access (`[[access]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSpec {
    /// Connection names (`*` for all).
    pub connections: Vec<String>,
    /// Groups whose members may ask.
    pub requesters: Vec<String>,
    /// Levels they may ask for; empty: `read` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<Level>,
    /// Groups whose members approve the request.
    pub approvers: Vec<String>,
    /// Distinct approvals needed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u32>,
    /// Longest grant, e.g. `"1h"` (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// Default time a held statement waits for a decision.
pub const DEFAULT_REVIEW_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Default longest just-in-time grant.
pub const DEFAULT_MAX_GRANT_MS: u64 = 60 * 60 * 1000;

impl PolicySpec {
    /// How long statements held by `rule` wait, in milliseconds.
    pub fn review_timeout_ms(&self, rule: Option<&RuleSpec>) -> u64 {
        rule.and_then(|r| r.timeout.as_deref())
            .or(self.review_timeout.as_deref())
            .and_then(|t| crate::duration::parse_duration(t).ok())
            .map_or(DEFAULT_REVIEW_TIMEOUT_MS, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            })
    }
}

impl AccessSpec {
    pub fn max_duration_ms(&self) -> u64 {
        self.max_duration
            .as_deref()
            .and_then(|t| crate::duration::parse_duration(t).ok())
            .map_or(DEFAULT_MAX_GRANT_MS, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            })
    }

    pub fn levels(&self) -> Vec<Level> {
        if self.levels.is_empty() {
            vec![Level::Read]
        } else {
            self.levels.clone()
        }
    }

    pub fn covers_connection(&self, connection: &str) -> bool {
        self.connections.iter().any(|c| c == "*" || c == connection)
    }
}

/// A rule: when every condition it names holds, its action applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// Connection names; empty: every connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// Groups the caller is in (any of); empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Statement classes (any of); empty: any class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<Class>,
    /// Tables read or written (any of); `schema.table` or `table`, `*` wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables_read: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables_written: Vec<String>,
    /// Functions called (any of), unqualified, `*` wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// A regular expression the statement's text must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Time of day, `HH:MM-HH:MM` (may wrap past midnight), in `utc_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
    /// Days of the week (`mon` … `sun`); empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// `+HH:MM` or `-HH:MM`; default `+00:00` (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset: Option<String>,
    /// Matches only statements that cannot be parsed (to allow them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unparsed: bool,
    /// HTTP and AWS: request methods (any of), e.g. `DELETE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// HTTP and AWS: request paths (any of), `*` wildcards, e.g. `/customers/*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// AWS: `service:Action` (any of), `*` wildcards, e.g. `s3:DeleteObject`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// HTTP and AWS: conditions on the JSON request body (all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<JsonCondition>,
    pub action: Action,
    /// Shown to the caller when the rule denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `review`: groups whose members may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// For `review`: distinct approvals needed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u32>,
    /// For `review`: how long the statement waits for a decision, e.g. `"5m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// For `review`: the caller must say why (`-- reason: …` in the statement).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_reason: bool,
}

/// A condition on a JSON request body: the value at `path` is present
/// and, when given, equals `equals` or matches `pattern` (compared as
/// text: strings as they are, other values as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCondition {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

impl RuleSpec {
    /// Whether the rule names conditions only SQL statements have.
    pub fn is_sql_only(&self) -> bool {
        !self.tables.is_empty()
            || !self.tables_read.is_empty()
            || !self.tables_written.is_empty()
            || !self.functions.is_empty()
            || self.unparsed
    }

    /// Whether the rule names conditions only HTTP and AWS requests have.
    pub fn is_http_only(&self) -> bool {
        !self.methods.is_empty()
            || !self.paths.is_empty()
            || !self.actions.is_empty()
            || !self.json.is_empty()
    }
}

/// HTTP methods a rule may name.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// Values masked in results: table columns, and fields of JSON responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// `schema.table.column` or `table.column` (any schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// JSON paths in HTTP and AWS responses, e.g. `$..email`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_paths: Vec<String>,
    pub method: MaskMethod,
    /// Members of these groups see the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except_groups: Vec<String>,
}

/// Content detectors: text values are scanned and what they find is masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    pub kinds: Vec<DetectorKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except_groups: Vec<String>,
}

/// Where a policy error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Policy,
    Rule(usize),
    Mask(usize),
    Detector(usize),
    Access(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", match place {
    Place::Policy => String::new(),
    Place::Rule(i) => format!("rule #{}: ", i + 1),
    Place::Mask(i) => format!("mask #{}: ", i + 1),
    Place::Detector(i) => format!("detector #{}: ", i + 1),
    Place::Access(i) => format!("access #{}: ", i + 1),
})]
pub struct PolicyError {
    pub place: Place,
    pub message: String,
}

/// Longest regular expression accepted, and the compiled size limit.
pub const MAX_PATTERN: usize = 4096;
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Rules, masks and detectors, at most, each.
pub const MAX_ITEMS: usize = 10_000;

/// A duration such as `"10m"`, at least one second and at most 30 days.
fn check_duration(t: &str) -> Result<(), String> {
    match crate::duration::parse_duration(t) {
        Ok(d) if d.as_secs() >= 1 && d.as_secs() <= 30 * 86_400 => Ok(()),
        Ok(_) => Err(format!("{t:?} must be between 1s and 30d")),
        Err(_) => Err(format!(
            "{t:?} is not a duration such as \"30s\", \"10m\" or \"2h\""
        )),
    }
}

/// Minutes since midnight for `HH:MM`.
fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `HH:MM-HH:MM` as minutes since midnight (start, end); end may be
/// before start (the window wraps past midnight). `24:00` is allowed as an end.
pub fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let end = if b.trim() == "24:00" {
        Some(24 * 60)
    } else {
        minutes(b)
    };
    Some((minutes(a)?, end?))
}

/// `+HH:MM` / `-HH:MM` as minutes east of UTC.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = minutes(rest)?;
    (m <= 14 * 60).then_some(sign * i32::try_from(m).ok()?)
}

/// Day of week: 0 = Monday … 6 = Sunday.
pub fn parse_day(s: &str) -> Option<u32> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| s.eq_ignore_ascii_case(d))
        .and_then(|p| u32::try_from(p).ok())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_object_pattern(s: &str, parts: std::ops::RangeInclusive<usize>) -> bool {
    let n = s.split('.').count();
    !s.is_empty()
        && s.len() <= 200
        && parts.contains(&n)
        && s.split('.').all(|p| !p.is_empty())
        && !s.chars().any(|c| c.is_whitespace() || c == '"')
}

impl PolicySpec {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.masks.is_empty()
            && self.detectors.is_empty()
            && self.access.is_empty()
            && self.break_glass.is_empty()
            && self.review_timeout.is_none()
            && self.default == Action::Allow
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |place: Place, message: String| PolicyError { place, message };
        if self.default == Action::Review {
            return Err(err(
                Place::Policy,
                "the default action is allow or deny (review needs a rule naming approvers)".into(),
            ));
        }
        for (what, n) in [
            ("rules", self.rules.len()),
            ("masks", self.masks.len()),
            ("detectors", self.detectors.len()),
            ("access entries", self.access.len()),
        ] {
            if n > MAX_ITEMS {
                return Err(err(
                    Place::Policy,
                    format!("{n} {what}, over the limit of {MAX_ITEMS}"),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let e = |m: String| err(Place::Rule(i), m);
            if !valid_name(&r.name) {
                return Err(e(format!(
                    "rule name {:?} must be 1-128 letters, digits, '-', '_' or '.'",
                    r.name
                )));
            }
            if !names.insert(r.name.as_str()) {
                return Err(e(format!("rule {:?} is declared twice", r.name)));
            }
            for t in r
                .tables
                .iter()
                .chain(&r.tables_read)
                .chain(&r.tables_written)
            {
                if !valid_object_pattern(t, 1..=2) {
                    return Err(e(format!(
                        "table {t:?} must be `table` or `schema.table` (wildcards: *)"
                    )));
                }
            }
            for f in &r.functions {
                if !valid_object_pattern(f, 1..=1) {
                    return Err(e(format!(
                        "function {f:?} must be an unqualified name (wildcards: *)"
                    )));
                }
            }
            if let Some(p) = &r.pattern {
                if p.len() > MAX_PATTERN {
                    return Err(e(format!(
                        "pattern is {} bytes, over the {MAX_PATTERN}-byte limit",
                        p.len()
                    )));
                }
                regex::RegexBuilder::new(p)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|x| e(format!("pattern is not a valid regular expression: {x}")))?;
            }
            if let Some(h) = &r.hours
                && parse_hours(h).is_none()
            {
                return Err(e(format!(
                    "hours {h:?} must be HH:MM-HH:MM, e.g. \"09:00-17:30\""
                )));
            }
            for d in &r.days {
                if parse_day(d).is_none() {
                    return Err(e(format!(
                        "day {d:?} must be one of mon tue wed thu fri sat sun"
                    )));
                }
            }
            if let Some(o) = &r.utc_offset
                && parse_utc_offset(o).is_none()
            {
                return Err(e(format!("utc_offset {o:?} must be +HH:MM or -HH:MM")));
            }
            if r.is_sql_only() && r.is_http_only() {
                return Err(e(
                    "a rule names SQL conditions (tables, functions, unparsed) or HTTP conditions (methods, paths, actions, json), not both".into(),
                ));
            }
            for m in &r.methods {
                if !METHODS.contains(&m.to_ascii_uppercase().as_str()) {
                    return Err(e(format!(
                        "method {m:?} must be one of {}",
                        METHODS.join(" ")
                    )));
                }
            }
            for p in &r.paths {
                if !p.starts_with('/') || p.len() > 1024 || p.chars().any(char::is_whitespace) {
                    return Err(e(format!(
                        "path {p:?} must start with '/' and have no spaces (wildcards: *)"
                    )));
                }
            }
            for a in &r.actions {
                let ok = a.split_once(':').is_some_and(|(svc, act)| {
                    !svc.is_empty()
                        && !act.is_empty()
                        && svc
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
                        && act.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*')
                });
                if !ok {
                    return Err(e(format!(
                        "action {a:?} must be service:Action, e.g. s3:DeleteObject (wildcards: *)"
                    )));
                }
            }
            for j in &r.json {
                crate::policy::json_path::JsonPath::parse(&j.path).map_err(e)?;
                if j.equals.is_some() && j.pattern.is_some() {
                    return Err(e(format!(
                        "json condition on {:?} gives equals or pattern, not both",
                        j.path
                    )));
                }
                if let Some(p) = &j.pattern {
                    if p.len() > MAX_PATTERN {
                        return Err(e(format!(
                            "json pattern is {} bytes, over the {MAX_PATTERN}-byte limit",
                            p.len()
                        )));
                    }
                    regex::RegexBuilder::new(p)
                        .size_limit(PATTERN_SIZE_LIMIT)
                        .build()
                        .map_err(|x| {
                            e(format!(
                                "json pattern is not a valid regular expression: {x}"
                            ))
                        })?;
                }
            }
            if r.unparsed
                && (!r.statements.is_empty()
                    || !r.tables.is_empty()
                    || !r.tables_read.is_empty()
                    || !r.tables_written.is_empty()
                    || !r.functions.is_empty())
            {
                return Err(e(
                    "a rule for unparsed statements cannot also name statements, tables or functions (they are unknown for text that does not parse)".into(),
                ));
            }
            match r.action {
                Action::Review => {
                    if r.approvers.is_empty() {
                        return Err(e("a review rule names its approvers (groups)".into()));
                    }
                    if r.approvals == Some(0) {
                        return Err(e("approvals is at least 1".into()));
                    }
                    if let Some(t) = &r.timeout {
                        check_duration(t).map_err(|m| e(format!("timeout {m}")))?;
                    }
                }
                _ => {
                    if !r.approvers.is_empty()
                        || r.approvals.is_some()
                        || r.timeout.is_some()
                        || r.require_reason
                    {
                        return Err(e(
                            "approvers, approvals, timeout and require_reason belong to review rules"
                                .into(),
                        ));
                    }
                }
            }
        }
        for (i, m) in self.masks.iter().enumerate() {
            if m.columns.is_empty() && m.json_paths.is_empty() {
                return Err(err(
                    Place::Mask(i),
                    "a mask names at least one column or json path".into(),
                ));
            }
            for p in &m.json_paths {
                crate::policy::json_path::JsonPath::parse(p).map_err(|x| err(Place::Mask(i), x))?;
            }
            for c in &m.columns {
                if !valid_object_pattern(c, 2..=3) || c.contains('*') {
                    return Err(err(
                        Place::Mask(i),
                        format!("column {c:?} must be `schema.table.column` or `table.column`"),
                    ));
                }
            }
        }
        if let Some(t) = &self.review_timeout {
            check_duration(t).map_err(|m| err(Place::Policy, format!("review_timeout {m}")))?;
        }
        for g in &self.break_glass {
            crate::model::validate_group(g).map_err(|x| err(Place::Policy, x.to_string()))?;
        }
        for (i, a) in self.access.iter().enumerate() {
            let e = |m: String| err(Place::Access(i), m);
            if a.connections.is_empty() {
                return Err(e("an access entry names its connections (or \"*\")".into()));
            }
            if a.requesters.is_empty() {
                return Err(e("an access entry names the groups that may request".into()));
            }
            if a.approvers.is_empty() {
                return Err(e("an access entry names its approvers (groups)".into()));
            }
            if a.approvals == Some(0) {
                return Err(e("approvals is at least 1".into()));
            }
            if let Some(t) = &a.max_duration {
                check_duration(t).map_err(|m| e(format!("max_duration {m}")))?;
            }
        }
        for (i, d) in self.detectors.iter().enumerate() {
            if d.kinds.is_empty() {
                return Err(err(
                    Place::Detector(i),
                    "a detector names at least one kind".into(),
                ));
            }
        }
        Ok(())
    }
}
