//! The statement hook every protocol calls before a statement goes upstream.
//!
//! The policy engine implements [`StatementHook`]; until rules are
//! configured, [`NoRules`] allows every statement and says so in the record.

pub mod spec;

use crate::model::Principal;

/// What is being decided.
#[derive(Debug)]
pub struct StatementContext<'a> {
    pub principal: &'a Principal,
    pub connection: &'a str,
    pub protocol: &'a str,
    pub sql: &'a str,
}

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

pub trait StatementHook: Send + Sync + std::fmt::Debug {
    fn check(&self, ctx: &StatementContext<'_>) -> Verdict;
}

/// No policy configured: every statement is allowed (and recorded as such).
#[derive(Debug, Default)]
pub struct NoRules;

impl StatementHook for NoRules {
    fn check(&self, _: &StatementContext<'_>) -> Verdict {
        Verdict::Allow { rule: None }
    }
}
