//! The policy engine: decides every statement against the rules.
//!
//! Statements are analysed with PostgreSQL's own grammar ([`mod@analyze`]), or
//! for MySQL and MariaDB with sqlparser's MySQL dialect ([`mod@analyze_mysql`]);
//! analyses are cached by text, so a prepared statement run a million
//! times is parsed once. Deny beats review beats allow; within an action
//! the first rule in the policy's order wins and is named in the decision.

pub mod analyze;
pub mod analyze_mysql;
pub mod detect;
pub mod json_mask;
pub mod mask;
pub mod routine;
mod rules;
pub mod view_cache;

pub use analyze::{Analysis, Class, ColumnRefs, SignalTarget, analyze, column_refs};
pub use analyze_mysql::{analyze_mysql, column_refs_mysql};
pub use mask::{MaskPlan, holds_column_samples, holds_column_samples_in, mask_text, scrub_message};
pub use rules::{
    CALLS_FUNCTIONS, CachedEngine, Decision, Engine, FixedPolicy, HttpBody, HttpRequest,
    PolicySource, REPORTS, RUNS_ANY_SQL, ResultSources, STORES_DATA, SqlDialect, StatementMask,
    ToResolve, ViewReads,
};
pub use view_cache::ViewCache;

#[cfg(test)]
mod test_support {
    use gatehouse_core::model::{Authn, Principal};

    /// A token principal named `bot` in `groups`.
    pub fn who(groups: &[&str]) -> Principal {
        Principal {
            subject: "bot".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            authn: Authn::Token { name: "bot".into() },
            expires_at: None,
        }
    }
}
