//! Prometheus text metrics: requests by route and status, a latency
//! histogram, the log head and the projection's position.

use ledger::sync::lock_plain;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    /// Route → status → count: looked up by `&str`, so counting a request
    /// allocates nothing once its route was seen.
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    /// Cumulative counts per bucket, then +Inf.
    latency_buckets: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    latency_sum_micros: AtomicU64,
    pub n_shed: AtomicU64,
    /// Requests answered 408: the body did not arrive in time.
    pub n_body_timeouts: AtomicU64,
    /// Lookups that waited for room in the access log's queue.
    pub n_access_waits: AtomicU64,
}

impl Metrics {
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let mut requests = lock_plain(&self.requests);
        match requests.get_mut(route) {
            Some(statuses) => *statuses.entry(status).or_insert(0) += 1,
            None => {
                requests.insert(route.to_string(), BTreeMap::from([(status, 1)]));
            }
        }
        drop(requests);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS_SECONDS.iter().position(|&bound| seconds <= bound).unwrap_or(BUCKETS_SECONDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// `more`: (name, kind, help, value) of figures kept elsewhere.
    pub fn render(&self, head_position: u64, projection_position: u64, more: &[(&str, &str, &str, u64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP yibao_http_requests_total HTTP requests by route and status.");
        let _ = writeln!(out, "# TYPE yibao_http_requests_total counter");
        for (route, statuses) in lock_plain(&self.requests).iter() {
            for (status, n) in statuses {
                let _ = writeln!(out, "yibao_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        let _ = writeln!(out, "# HELP yibao_http_request_duration_seconds Request latency.");
        let _ = writeln!(out, "# TYPE yibao_http_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (index, bucket) in self.latency_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = BUCKETS_SECONDS.get(index).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "yibao_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum_seconds = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "yibao_http_request_duration_seconds_sum {sum_seconds}");
        let _ = writeln!(out, "yibao_http_request_duration_seconds_count {cumulative}");
        let gauges = [
            (
                "yibao_http_requests_shed_total",
                "counter",
                "Requests refused with 503 under load.",
                self.n_shed.load(Ordering::Relaxed),
            ),
            (
                "yibao_http_body_timeouts_total",
                "counter",
                "Requests answered 408: the body did not arrive in time.",
                self.n_body_timeouts.load(Ordering::Relaxed),
            ),
            (
                "yibao_access_log_waits_total",
                "counter",
                "Lookups that waited for room in the access log queue.",
                self.n_access_waits.load(Ordering::Relaxed),
            ),
            ("yibao_log_head_position", "gauge", "Durable head position of the log.", head_position),
            (
                "yibao_projection_position",
                "gauge",
                "Log position the coverage projection reflects.",
                projection_position,
            ),
            (
                "yibao_projection_lag",
                "gauge",
                "Records the projection is behind the log.",
                head_position.saturating_sub(projection_position),
            ),
        ];
        for &(name, kind, help, value) in gauges.iter().chain(more) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}
