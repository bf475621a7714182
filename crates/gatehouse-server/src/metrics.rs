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

    pub fn render(&self) -> String {
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
        out
    }
}
