//! The policy as written ([`spec`]) and the decision it makes for one
//! statement ([`Verdict`]). The engine that decides is `gatehouse-policy`.

pub mod json_path;
pub mod spec;

/// The decision for one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it. `rule` names the rule that allowed it, if one did.
    Allow { rule: Option<String> },
    /// Refuse it with a message naming the rule.
    Deny { rule: String, message: String },
    /// Hold it until people approve it (a `review` rule).
    Review {
        rule: String,
        message: String,
        approvers: Vec<String>,
        approvals: u32,
        /// How long the statement waits for a decision, in milliseconds.
        timeout_ms: u64,
        /// The caller must give a reason (`-- reason: …`).
        require_reason: bool,
    },
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allow { .. } => "allow",
            Self::Deny { .. } => "deny",
            Self::Review { .. } => "review",
        }
    }

    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::Allow { rule } => rule.as_deref(),
            Self::Deny { rule, .. } | Self::Review { rule, .. } => Some(rule),
        }
    }
}
