//! The Merkle tree store's cost (`operations::proof::TreeStore`): ingest
//! with the tree kept current against the ingest without it in the same
//! run, and proofs generated and verified per second on the ingested log.

use crate::figures::Throughput;
use crate::{phase, report, workload, yibao};
use anyhow::Result;
use ledger::{LogStore, SledLog};
use operations::proof::{self, TreeStore};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Proofs of each kind generated, then verified.
const N_PROOFS: u64 = 20_000;
/// Catch-ups between saves of the store's file.
const SAVE_EVERY_CATCH_UPS: u64 = 100;
/// Between catch-ups that found no new chunk: the service's writes are
/// not waited on by the tree, so the tree follows them at its own pace.
const IDLE_WAIT: Duration = Duration::from_millis(2);

#[derive(Clone, Debug, Serialize)]
pub struct TreeFigures {
    pub n_records: u64,
    /// The ingest of the main run, the same events into another directory.
    pub ingest_without_tree: Throughput,
    /// The same ingest while a thread catches the tree store up after the
    /// appends (in memory, saved every SAVE_EVERY_CATCH_UPS catch-ups and
    /// at the end), timed until the saved tree covers the last complete
    /// chunk.
    pub ingest_with_tree: Throughput,
    /// Events per second with the tree over without it (the aim: ≥ 0.90).
    pub ingest_with_over_without: f64,
    pub n_catch_ups: u64,
    pub store_bytes: u64,
    /// Opening the store: read, checksum, one record's hash from the log,
    /// the levels above the chunks computed.
    pub store_open_seconds: f64,
    /// The store built from every record's chain hash.
    pub store_rebuild: Throughput,
    pub tree_head_seconds: f64,
    pub proofs: ProofFigures,
}

/// Proofs at the head, each kind N_PROOFS times.
#[derive(Clone, Debug, Serialize)]
pub struct ProofFigures {
    pub inclusion_proofs_per_s: f64,
    pub consistency_proofs_per_s: f64,
    pub inclusion_verifications_per_s: f64,
    pub consistency_verifications_per_s: f64,
    pub inclusion_path_hashes_mean: f64,
}

/// Ingests `n_events` into `dir` keeping the tree current, then measures
/// the store and its proofs there.
pub fn measure(
    dir: &Path,
    n_events: u64,
    appenders: usize,
    events_per_request: usize,
    without: &Throughput,
) -> Result<TreeFigures> {
    let events = workload::events(0..n_events);
    let log = SledLog::open(dir, ledger::OpenMode::Create)?;
    let (ingest_with_tree, n_catch_ups) = phase("yibao ingest, tree kept current", || {
        ingest_keeping_tree(dir, &log, events, appenders, events_per_request)
    })?;
    let store_bytes = std::fs::metadata(TreeStore::path_in(dir))?.len();
    let (store, store_open_seconds) = timed(|| TreeStore::open(dir, &log))?;
    let (_, rebuild_seconds) = phase("tree store rebuild", || timed(|| TreeStore::rebuild(dir, &log)))?;
    let head = log.durable_head().position;
    let (_, tree_head_seconds) = timed(|| proof::tree_head_of(&store.view(&log, head)))?;
    let proofs = phase("proofs generated and verified", || proofs(&store, &log, head))?;
    Ok(TreeFigures {
        n_records: head,
        ingest_without_tree: without.clone(),
        ingest_with_over_without: ingest_with_tree.events_per_s / without.events_per_s.max(1e-9),
        ingest_with_tree,
        n_catch_ups,
        store_bytes,
        store_open_seconds,
        store_rebuild: Throughput::new(head, Duration::from_secs_f64(rebuild_seconds)),
        tree_head_seconds,
        proofs,
    })
}

fn ingest_keeping_tree(
    dir: &Path,
    log: &SledLog,
    events: Vec<ledger::NewEvent>,
    appenders: usize,
    events_per_request: usize,
) -> Result<(Throughput, u64)> {
    let n_events = events.len() as u64;
    let ingest_done = AtomicBool::new(false);
    let started = Instant::now();
    let n_catch_ups = std::thread::scope(|scope| -> Result<u64> {
        let tree = scope.spawn(|| -> Result<u64> {
            let mut store = TreeStore::open(dir, log)?;
            let mut n_catch_ups = 0;
            loop {
                // Read before catching up: the last pass sees every append.
                let done = ingest_done.load(Ordering::Acquire);
                let n_records = store.extend(log)?;
                n_catch_ups += 1;
                // Saved now and then and at the end: each save is a write
                // of the whole file and two fsyncs, on the log's disk.
                if done || n_catch_ups % SAVE_EVERY_CATCH_UPS == 0 {
                    store.save()?;
                }
                if done {
                    return Ok(n_catch_ups);
                }
                if n_records == 0 {
                    std::thread::sleep(IDLE_WAIT);
                }
            }
        });
        let ingested = yibao::ingest(log, events, appenders, events_per_request);
        ingest_done.store(true, Ordering::Release);
        let n_catch_ups = tree.join().map_err(|_| anyhow::anyhow!("the tree thread panicked"))??;
        ingested?;
        Ok(n_catch_ups)
    })?;
    Ok((Throughput::new(n_events, started.elapsed()), n_catch_ups))
}

/// Inclusion and consistency proofs at positions spread by a fixed
/// generator, each from a fresh view (no chunk read is shared), then
/// verified as a verifier does (from the hex of the answers).
fn proofs(store: &TreeStore, log: &dyn LogStore, head: u64) -> Result<ProofFigures> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        1 + state % bound
    };
    let started = Instant::now();
    let inclusions = (0..N_PROOFS)
        .map(|_| proof::inclusion_of(&store.view(log, head), next(head)))
        .collect::<Result<Vec<_>, _>>()?;
    let inclusion_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let consistencies = (0..N_PROOFS)
        .map(|_| proof::consistency_of(&store.view(log, head), next(head)))
        .collect::<Result<Vec<_>, _>>()?;
    let consistency_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for inclusion in &inclusions {
        inclusion.verify()?;
    }
    let inclusion_verify_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for consistency in &consistencies {
        consistency.verify()?;
    }
    let consistency_verify_seconds = started.elapsed().as_secs_f64();
    let per_s = |seconds: f64| N_PROOFS as f64 / seconds.max(1e-9);
    let n_path_hashes: usize = inclusions.iter().map(|inclusion| inclusion.path.len()).sum();
    Ok(ProofFigures {
        inclusion_proofs_per_s: per_s(inclusion_seconds),
        consistency_proofs_per_s: per_s(consistency_seconds),
        inclusion_verifications_per_s: per_s(inclusion_verify_seconds),
        consistency_verifications_per_s: per_s(consistency_verify_seconds),
        inclusion_path_hashes_mean: n_path_hashes as f64 / N_PROOFS as f64,
    })
}

fn timed<T, E: Into<anyhow::Error>>(work: impl FnOnce() -> Result<T, E>) -> Result<(T, f64)> {
    let started = Instant::now();
    let value = work().map_err(Into::into)?;
    Ok((value, started.elapsed().as_secs_f64()))
}

impl TreeFigures {
    pub fn print_table(&self) {
        let proofs = &self.proofs;
        println!();
        println!(
            "Merkle tree store ({} records, chunks of {} leaves)",
            report::count(self.n_records as f64),
            proof::CHUNK_LEAVES
        );
        println!(
            "  ingest without the tree   {:>12} events/s ({:.1} s)",
            report::count(self.ingest_without_tree.events_per_s),
            self.ingest_without_tree.seconds
        );
        println!(
            "  ingest with it current    {:>12} events/s ({:.1} s, {} catch-ups): {:.3} of without (aim ≥ 0.90)",
            report::count(self.ingest_with_tree.events_per_s),
            self.ingest_with_tree.seconds,
            self.n_catch_ups,
            self.ingest_with_over_without
        );
        println!(
            "  store {} bytes; open {:.1} ms; rebuild {:.2} s ({} records/s); tree head {:.2} ms",
            report::count(self.store_bytes as f64),
            self.store_open_seconds * 1e3,
            self.store_rebuild.seconds,
            report::count(self.store_rebuild.events_per_s),
            self.tree_head_seconds * 1e3
        );
        println!(
            "  inclusion proofs   {:>10} generated/s {:>10} verified/s ({:.1} hashes each)",
            report::count(proofs.inclusion_proofs_per_s),
            report::count(proofs.inclusion_verifications_per_s),
            proofs.inclusion_path_hashes_mean
        );
        println!(
            "  consistency proofs {:>10} generated/s {:>10} verified/s",
            report::count(proofs.consistency_proofs_per_s),
            report::count(proofs.consistency_verifications_per_s)
        );
    }
}
