//! The measured figures, shared by both stores and by the report.

use serde::Serialize;
use std::time::Duration;

/// How fast a bulk operation went over a number of events.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub n_events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

impl Throughput {
    pub fn new(n_events: u64, elapsed: Duration) -> Throughput {
        let seconds = elapsed.as_secs_f64();
        Throughput { n_events, seconds, events_per_s: n_events as f64 / seconds.max(1e-9) }
    }
}

/// Durable appends of one event each.
#[derive(Clone, Debug, Serialize)]
pub struct AppendFigures {
    pub clients: usize,
    pub n_appends: u64,
    pub appends_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
}

impl AppendFigures {
    /// From every append's latency and the wall time of all of them.
    pub fn new(clients: usize, mut latencies: Vec<Duration>, elapsed: Duration) -> AppendFigures {
        latencies.sort_unstable();
        let n_appends = latencies.len() as u64;
        AppendFigures {
            clients,
            n_appends,
            appends_per_s: n_appends as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms_p50: percentile_ms(&latencies, 0.50),
            latency_ms_p99: percentile_ms(&latencies, 0.99),
            latency_ms_max: percentile_ms(&latencies, 1.0),
        }
    }
}

/// Nearest rank of sorted latencies; 0 when there are none.
fn percentile_ms(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// Bytes a store keeps on disk for its events.
#[derive(Clone, Debug, Serialize)]
pub struct Space {
    pub disk_bytes: u64,
    pub disk_bytes_per_event: f64,
    /// Disk bytes over the raw encoded record bytes of the yibao log.
    pub ratio_to_raw: f64,
}

impl Space {
    pub fn new(disk_bytes: u64, n_events: u64, raw_bytes: u64) -> Space {
        Space {
            disk_bytes,
            disk_bytes_per_event: disk_bytes as f64 / n_events.max(1) as f64,
            ratio_to_raw: disk_bytes as f64 / raw_bytes.max(1) as f64,
        }
    }
}

/// Sum of the apparent sizes of the files under `dir`.
pub fn disk_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() { disk_bytes(&entry.path())? } else { metadata.len() };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let figures = AppendFigures::new(1, latencies, Duration::from_secs(1));
        assert_eq!(figures.latency_ms_p50, 50.0);
        assert_eq!(figures.latency_ms_p99, 99.0);
        assert_eq!(figures.latency_ms_max, 100.0);
        assert_eq!(figures.appends_per_s, 100.0);
    }
}
