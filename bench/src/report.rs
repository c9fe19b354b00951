//! The figures of one run, their targets, and how they are printed: an
//! aligned table or one JSON object.

use crate::figures::{AppendFigures, Space, Throughput};
use serde::Serialize;

/// The targets of the issue, for comparison only: the bench never fails on
/// a number.
#[derive(Clone, Debug, Serialize)]
pub struct Targets {
    pub ingest_events_per_s: f64,
    /// SQLite's ingest as measured for the design (for context).
    pub sqlite_ingest_events_per_s_in_design: f64,
    pub append_many_clients_appends_per_s: f64,
    pub replay_events_per_s: f64,
    pub verify_events_per_s: f64,
    pub space_ratio_to_raw: f64,
}

pub const TARGETS: Targets = Targets {
    ingest_events_per_s: 700_000.0,
    sqlite_ingest_events_per_s_in_design: 293_000.0,
    append_many_clients_appends_per_s: 100_000.0,
    replay_events_per_s: 3_000_000.0,
    verify_events_per_s: 800_000.0,
    space_ratio_to_raw: 1.3,
};

/// How the run was set up.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub n_events: u64,
    pub n_persons: u64,
    pub ingest_appenders: usize,
    pub ingest_events_per_request: usize,
    pub sqlite_rows_per_transaction: usize,
    pub clients: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct YibaoFigures {
    pub ingest: Throughput,
    pub append_one_client: AppendFigures,
    pub append_many_clients: AppendFigures,
    /// Dropping the log after the ingest: the writer stops and its
    /// memtable is written out as a run of the index.
    pub close_seconds: f64,
    /// `SledLog::open` for writing of the ingested log, with its index on
    /// disk: reads the records after the index (`reopen_tail_records`).
    pub reopen: Throughput,
    pub reopen_tail_records: u64,
    /// The same open without an index on disk: rebuilds it from every record.
    pub rebuild: Throughput,
    pub replay: Throughput,
    pub verify: Throughput,
    pub verify_problem: Option<String>,
    pub n_blocks: u64,
    /// Sum of the stored record bodies: the raw encoded bytes.
    pub raw_record_bytes: u64,
    pub record_bytes_mean: f64,
    /// Sum of the stored blocks: bodies plus lengths, hashes and headers,
    /// the records' frames LZ4-compressed where that was smaller.
    pub block_bytes: u64,
    /// The same blocks as built, before compression.
    pub block_bytes_uncompressed: u64,
    /// Part of the bytes on disk in sled's blob files.
    pub blob_bytes: u64,
    /// Part of the bytes on disk in the index (`DIR/index`).
    pub index_bytes: u64,
    /// Part of the bytes on disk in sled's files (`DIR/log`).
    pub sled_bytes: u64,
    pub space: Space,
}

#[derive(Clone, Debug, Serialize)]
pub struct SqliteFigures {
    pub ingest: Throughput,
    /// The same ingest into a table without the unique index on keys.
    pub ingest_without_key_index: Throughput,
    pub append_one_client: AppendFigures,
    pub replay: Throughput,
    pub space: Space,
}

/// yibao over SQLite: above 1 means yibao is faster (or, for space, larger).
#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    pub ingest: f64,
    pub ingest_without_key_index: f64,
    pub append_one_client: f64,
    pub replay: f64,
    pub space: f64,
}

impl Ratios {
    pub fn new(yibao: &YibaoFigures, sqlite: &SqliteFigures) -> Ratios {
        let ratio = |a: f64, b: f64| a / b.max(1e-9);
        Ratios {
            ingest: ratio(yibao.ingest.events_per_s, sqlite.ingest.events_per_s),
            ingest_without_key_index: ratio(yibao.ingest.events_per_s, sqlite.ingest_without_key_index.events_per_s),
            append_one_client: ratio(yibao.append_one_client.appends_per_s, sqlite.append_one_client.appends_per_s),
            replay: ratio(yibao.replay.events_per_s, sqlite.replay.events_per_s),
            space: ratio(yibao.space.disk_bytes as f64, sqlite.space.disk_bytes as f64),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub setup: Setup,
    pub yibao: YibaoFigures,
    pub sqlite: SqliteFigures,
    /// The Merkle tree store: ingest with it current, proofs.
    pub tree: crate::tree::TreeFigures,
    pub yibao_over_sqlite: Ratios,
    pub targets: Targets,
    pub notes: Vec<String>,
}

/// One table row: measure, yibao, SQLite, yibao/SQLite, target, target met.
type Row = [String; 6];

impl Report {
    pub fn print_json(&self) -> serde_json::Result<()> {
        println!("{}", serde_json::to_string_pretty(self)?);
        Ok(())
    }

    pub fn print_table(&self) {
        let setup = &self.setup;
        println!(
            "{} events ({} persons, {:.0} B per record on average); ingest: {} appenders × {} events per request; SQLite: {} rows per transaction",
            count(setup.n_events as f64),
            count(setup.n_persons as f64),
            self.yibao.record_bytes_mean,
            setup.ingest_appenders,
            count(setup.ingest_events_per_request as f64),
            count(setup.sqlite_rows_per_transaction as f64),
        );
        println!();
        print_aligned(&self.rows());
        println!();
        for note in &self.notes {
            println!("- {note}");
        }
        self.tree.print_table();
    }

    fn rows(&self) -> Vec<Row> {
        let (yibao, sqlite, ratios) = (&self.yibao, &self.sqlite, &self.yibao_over_sqlite);
        let many = format!("single appends, {} clients", self.setup.clients);
        let mut rows = vec![header()];
        rows.push(row(
            "durable ingest, events/s",
            count(yibao.ingest.events_per_s),
            count(sqlite.ingest.events_per_s),
            times(ratios.ingest),
            at_least(yibao.ingest.events_per_s, TARGETS.ingest_events_per_s),
        ));
        rows.push(row(
            "  SQLite without the unique key index",
            dash(),
            count(sqlite.ingest_without_key_index.events_per_s),
            times(ratios.ingest_without_key_index),
            none(),
        ));
        rows.extend(append_rows(
            "single appends, 1 client",
            &yibao.append_one_client,
            Some(&sqlite.append_one_client),
            times(ratios.append_one_client),
            none(),
        ));
        rows.extend(append_rows(
            &many,
            &yibao.append_many_clients,
            None,
            dash(),
            at_least(yibao.append_many_clients.appends_per_s, TARGETS.append_many_clients_appends_per_s),
        ));
        rows.push(row(
            &format!("open for writing: tail {} records, ms", count(yibao.reopen_tail_records as f64)),
            count(yibao.reopen.seconds * 1000.0),
            dash(),
            dash(),
            none(),
        ));
        rows.push(row(
            "open for writing, index rebuilt from position 1, ms",
            count(yibao.rebuild.seconds * 1000.0),
            dash(),
            dash(),
            none(),
        ));
        rows.push(row(
            "close (memtable written as a run), ms",
            count(yibao.close_seconds * 1000.0),
            dash(),
            dash(),
            none(),
        ));
        rows.push(row(
            "replay decode, events/s",
            count(yibao.replay.events_per_s),
            count(sqlite.replay.events_per_s),
            times(ratios.replay),
            at_least(yibao.replay.events_per_s, TARGETS.replay_events_per_s),
        ));
        rows.push(row(
            "verify (SM3 chain), events/s",
            count(yibao.verify.events_per_s),
            "no hashes".into(),
            dash(),
            at_least(yibao.verify.events_per_s, TARGETS.verify_events_per_s),
        ));
        rows.extend(self.space_rows());
        rows
    }

    fn space_rows(&self) -> Vec<Row> {
        let (yibao, sqlite) = (&self.yibao.space, &self.sqlite.space);
        let raw = self.yibao.raw_record_bytes as f64;
        let met = if yibao.ratio_to_raw <= TARGETS.space_ratio_to_raw { "yes" } else { "no" };
        vec![
            row("raw encoded record bytes", count(raw), dash(), dash(), none()),
            row(
                "bytes on disk",
                count(yibao.disk_bytes as f64),
                count(sqlite.disk_bytes as f64),
                times(self.yibao_over_sqlite.space),
                none(),
            ),
            row("  of which sled blob files", count(self.yibao.blob_bytes as f64), dash(), dash(), none()),
            row(
                "bytes on disk per event",
                decimal(yibao.disk_bytes_per_event, 1),
                decimal(sqlite.disk_bytes_per_event, 1),
                dash(),
                none(),
            ),
            row(
                "bytes on disk / raw",
                times(yibao.ratio_to_raw),
                times(sqlite.ratio_to_raw),
                dash(),
                (format!("≤ {}", times(TARGETS.space_ratio_to_raw)), met.into()),
            ),
        ]
    }
}

fn header() -> Row {
    ["measure", "yibao", "SQLite", "yibao/SQLite", "target", "met"].map(String::from)
}

fn row(measure: &str, yibao: String, sqlite: String, ratio: String, target: (String, String)) -> Row {
    [measure.to_string(), yibao, sqlite, ratio, target.0, target.1]
}

/// Rows of single appends: rate (with the ratio and target), then p50 and
/// p99 latency.
fn append_rows(
    label: &str,
    yibao: &AppendFigures,
    sqlite: Option<&AppendFigures>,
    ratio: String,
    target: (String, String),
) -> Vec<Row> {
    let sqlite_cell = |value: fn(&AppendFigures) -> String| sqlite.map_or_else(dash, value);
    vec![
        row(
            &format!("{label}, appends/s"),
            count(yibao.appends_per_s),
            sqlite_cell(|f| count(f.appends_per_s)),
            ratio,
            target,
        ),
        row(
            "  latency p50, ms",
            decimal(yibao.latency_ms_p50, 2),
            sqlite_cell(|f| decimal(f.latency_ms_p50, 2)),
            dash(),
            none(),
        ),
        row(
            "  latency p99, ms",
            decimal(yibao.latency_ms_p99, 2),
            sqlite_cell(|f| decimal(f.latency_ms_p99, 2)),
            dash(),
            none(),
        ),
    ]
}

fn at_least(value: f64, target: f64) -> (String, String) {
    (format!("≥ {}", count(target)), if value >= target { "yes" } else { "no" }.to_string())
}

fn none() -> (String, String) {
    (String::new(), String::new())
}

fn dash() -> String {
    "—".to_string()
}

/// Left-aligns the first column and right-aligns the others.
fn print_aligned(rows: &[Row]) {
    let mut widths = [0usize; 6];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            if column == 0 {
                line.push_str(&format!("{cell}{pad}"));
            } else {
                line.push_str(&format!("  {pad}{cell}"));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// An integer with thousands separators: 1,234,567.
pub fn count(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn decimal(value: f64, places: usize) -> String {
    format!("{value:.places$}")
}

fn times(value: f64) -> String {
    format!("{value:.2}×")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0.0), "0");
        assert_eq!(count(999.4), "999");
        assert_eq!(count(1000.0), "1,000");
        assert_eq!(count(2_000_000.0), "2,000,000");
    }
}
