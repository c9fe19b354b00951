//! Metrics in the OpenMetrics text format Prometheus scrapes, written by
//! `prometheus-client`: requests by route and status, a latency histogram,
//! the log head and the projection's position, and figures kept elsewhere
//! (the store's counts), read at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The `Content-Type` of the answer to `/v1/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Debug)]
pub struct Metrics {
    /// `yibao_http_requests_total{route, status}`.
    requests: Family<RequestLabels, Counter>,
    /// `yibao_http_request_duration_seconds`.
    latency: Histogram,
    pub n_shed: AtomicU64,
    /// Requests answered 408: the body did not arrive in time.
    pub n_body_timeouts: AtomicU64,
    /// Lookups that waited for room in the access log's queue.
    pub n_access_waits: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::default(),
            latency: Histogram::new(BUCKETS_SECONDS),
            n_shed: AtomicU64::new(0),
            n_body_timeouts: AtomicU64::new(0),
            n_access_waits: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests.get_or_create(&RequestLabels { route: route.to_string(), status }).inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// `more`: (name, kind, help, value) of figures kept elsewhere; a
    /// counter's name ends in `_total`, as it is exposed. `gauges`: (name,
    /// help, value) of figures that are no whole number (seconds).
    pub fn render(
        &self,
        head_position: u64,
        projection_position: u64,
        more: &[(&str, &str, &str, u64)],
        gauges: &[(&str, &str, f64)],
    ) -> String {
        let mut registry = Registry::default();
        // The families share their counts with `self`: a registry per
        // scrape costs a few allocations and keeps every figure in one place.
        registry.register("yibao_http_requests", help("HTTP requests by route and status."), self.requests.clone());
        registry.register_with_unit(
            "yibao_http_request_duration",
            help("Request latency."),
            Unit::Seconds,
            self.latency.clone(),
        );
        let figures = [
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
        for &(name, kind, text, value) in figures.iter().chain(more) {
            match (kind, name.strip_suffix("_total")) {
                // The client adds `_total` to a counter's samples itself.
                ("counter", Some(family)) => registry.register(family, help(text), ConstCounter::new(value)),
                _ => registry.register(name, help(text), ConstGauge::new(value)),
            }
        }
        for &(name, text, value) in gauges {
            registry.register(name, help(text), ConstGauge::new(value));
        }
        let mut text = String::new();
        // Writing to a String cannot fail; the encoder's own error would be
        // a bug in a metric, not a reason to answer without metrics.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            eprintln!("error: encoding metrics: {error}");
        }
        text
    }
}

/// A help text as the client wants it: it ends each with a full stop of
/// its own.
fn help(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family is announced by HELP and TYPE before its samples, the
    /// histogram's buckets are cumulative and end at `+Inf` with the count,
    /// and the text ends with the OpenMetrics EOF marker.
    #[test]
    fn the_text_is_openmetrics_with_every_family_announced() {
        let metrics = Metrics::default();
        metrics.record("/v1/coverage/{id_number}", 200, Duration::from_millis(3));
        metrics.record("/v1/coverage/{id_number}", 200, Duration::from_secs(9));
        metrics.record("/v1/events", 401, Duration::from_micros(10));
        metrics.n_shed.fetch_add(2, Ordering::Relaxed);
        let more = [("yibao_store_refusing_writes", "gauge", "1 while refusing.", 1)];
        let text = metrics.render(12, 10, &more, &[("yibao_replica_lag_seconds", "Seconds behind.", 0.25)]);

        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut announced: Vec<(String, String)> = Vec::new();
        for line in text.lines().filter(|line| !line.is_empty() && *line != "# EOF") {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("TYPE names a family and a kind");
                announced.push((family.to_string(), kind.to_string()));
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().expect("a sample name");
            let (family, kind) = announced.last().expect("a sample after its TYPE");
            assert!(name.starts_with(family.as_str()), "{name} outside its family {family}:\n{text}");
            let suffix = &name[family.len()..];
            let allowed: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            assert!(allowed.contains(&suffix), "{name} in a {kind}:\n{text}");
        }
        for (family, _) in &announced {
            assert!(text.contains(&format!("# HELP {family} ")), "no HELP for {family}:\n{text}");
        }
        assert!(!text.contains(".."), "a help text ends in two full stops:\n{text}");
        for sample in [
            "yibao_http_requests_total{route=\"/v1/coverage/{id_number}\",status=\"200\"} 2",
            "yibao_http_requests_total{route=\"/v1/events\",status=\"401\"} 1",
            "yibao_http_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "yibao_http_request_duration_seconds_bucket{le=\"5.0\"} 2",
            "yibao_http_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "yibao_http_request_duration_seconds_count 3",
            "yibao_http_requests_shed_total 2",
            "yibao_log_head_position 12",
            "yibao_projection_position 10",
            "yibao_projection_lag 2",
            "yibao_store_refusing_writes 1",
            "yibao_replica_lag_seconds 0.25",
        ] {
            assert!(text.lines().any(|line| line == sample), "missing `{sample}` in:\n{text}");
        }
    }
}
