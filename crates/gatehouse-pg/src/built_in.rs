//! The refusals Gatehouse makes on PostgreSQL connections whatever the
//! policy says: the relay applies them to every statement the policy lets
//! run, and `policy test` shows them.

use std::sync::Arc;

use gatehouse_core::policy::Verdict;
use gatehouse_policy::analyze::{self, SignalTarget};
use gatehouse_policy::{Analysis, Engine};

/// The refusal of a statement that would take a session of a read-only
/// connection out of read-only mode.
pub fn read_only_refusal(connection: &str) -> Verdict {
    Verdict::Deny {
        rule: "read-only".into(),
        message: format!(
            "connection \"{connection}\" is read-only: its sessions may not leave read-only mode (default_transaction_read_only, transaction_read_only, READ WRITE)"
        ),
    }
}

/// The refusal of a statement whose `pg_cancel_backend` or
/// `pg_terminate_backend` names a backend not the caller's own.
pub fn backend_signal_refusal() -> Verdict {
    Verdict::Deny {
        rule: "backend-signal".into(),
        message: "pg_cancel_backend and pg_terminate_backend may name only the backend of one of your own sessions on this connection, as a literal process id or a bound parameter (its pg_backend_pid()): the connection's sessions share one database role, so they could end other callers' work".into(),
    }
}

/// Whether a statement's backend signals may run as they stand: literal
/// pids `owns` says are the caller's own, and (when the statement will be
/// `bound`) parameters, which are looked at once they are.
pub fn signals_allowed(targets: &[SignalTarget], bound: bool, owns: impl Fn(i32) -> bool) -> bool {
    targets.iter().all(|t| match *t {
        SignalTarget::Pid(pid) => owns(pid),
        SignalTarget::Param(_) => bound,
        SignalTarget::Computed => false,
    })
}

/// What is there to check of a statement `sql` the policy does not deny,
/// on `connection` (`read_only` if it is), `bound` if it will be (an
/// extended-protocol statement), `analysis` if the policy made one:
/// `Err` with the refusal, or the backend signals to check again as it
/// runs. `owns` says whether a process id is the backend of one of the
/// caller's own sessions on the connection.
pub fn check(
    engine: &Engine,
    analysis: Option<&Arc<Analysis>>,
    sql: &str,
    connection: &str,
    read_only: bool,
    bound: bool,
    owns: impl Fn(i32) -> bool,
) -> Result<Option<Arc<[SignalTarget]>>, Verdict> {
    if read_only && analyze::may_lift_read_only(sql) && analyze::lifts_read_only(sql) {
        return Err(read_only_refusal(connection));
    }
    if analysis.is_none() && !analyze::may_name_backend_signal(sql) {
        return Ok(None);
    }
    let analysis = analysis.cloned().unwrap_or_else(|| engine.analysis(sql));
    if !signals_allowed(&analysis.backend_signals, bound, owns) {
        return Err(backend_signal_refusal());
    }
    Ok((!analysis.backend_signals.is_empty())
        .then(|| Arc::from(analysis.backend_signals.as_slice())))
}
