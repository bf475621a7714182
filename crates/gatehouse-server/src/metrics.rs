//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//! Kept per server (no global registry) so tests can run servers side by side.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
    auth_failures: AtomicU64,
}

impl Metrics {
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        let mut m = match self.http.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *m.entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics, with the session recorder's queue and counters.
    pub fn render(&self, recorder: &gatehouse_store::recorder::RecorderStats) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP gatehouse_build_info Gatehouse version.\n# TYPE gatehouse_build_info gauge\n",
        );
        out.push_str(&format!(
            "gatehouse_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ));
        out.push_str(
            "# HELP gatehouse_http_requests_total HTTP API requests by route and status.\n",
        );
        out.push_str("# TYPE gatehouse_http_requests_total counter\n");
        let m = match self.http.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        for ((method, route, status), n) in m.iter() {
            out.push_str(&format!(
                "gatehouse_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}\n",
                route.replace('"', "")
            ));
        }
        out.push_str("# HELP gatehouse_auth_failures_total Refused credentials.\n");
        out.push_str("# TYPE gatehouse_auth_failures_total counter\n");
        out.push_str(&format!(
            "gatehouse_auth_failures_total {}\n",
            self.auth_failures.load(Ordering::Relaxed)
        ));
        let r = recorder;
        let write_seconds = r.write_micros as f64 / 1e6;
        for (name, kind, help, value) in [
            (
                "unwritten",
                "gauge",
                "Statements admitted whose records are not stored yet.",
                r.unwritten.to_string(),
            ),
            (
                "capacity",
                "gauge",
                "Statements that may wait to be stored, at most; sessions wait for the writer when less than a sixteenth of this is free.",
                r.capacity.to_string(),
            ),
            (
                "unadmitted_total",
                "counter",
                "Statements the recorder had no room for (refused, or run unrecorded with --when-recorder-behind run).",
                r.unadmitted.to_string(),
            ),
            (
                "written_total",
                "counter",
                "Statement records stored.",
                r.written.to_string(),
            ),
            (
                "writes_total",
                "counter",
                "Batches of records stored.",
                r.writes.to_string(),
            ),
            (
                "write_seconds_total",
                "counter",
                "Time spent storing batches of records, retries after store errors included.",
                format!("{write_seconds:.6}"),
            ),
        ] {
            out.push_str(&format!(
                "# HELP gatehouse_recorder_{name} {help}\n# TYPE gatehouse_recorder_{name} {kind}\ngatehouse_recorder_{name} {value}\n"
            ));
        }
        out
    }
}
