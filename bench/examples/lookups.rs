//! The in-process lookup loop alone, for a profiler: the coverage of a
//! generated prefecture-year (六盘水 2021) is built once into a checkpoint
//! (`CHECKPOINT`, default `/tmp/lookups.ckpt`), then loaded, and the same
//! questions as `yibao-bench coverage` asked `ROUNDS` times.
//!
//! `cargo build --release -p yibao-bench --example lookups`, then
//! `perf record --call-graph dwarf target/release/examples/lookups [persons] [rounds] [checkpoint]`.

use anyhow::{Context, Result};
use ledger::{Date, Event, Identity, NewEvent, OpenMode, SledLog};
use projections::coverage::Coverage;
use projections::Projection;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse()).context("persons")?;
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse()).context("rounds")?;
    let checkpoint = args.next().map_or_else(|| PathBuf::from("/tmp/lookups.ckpt"), PathBuf::from);
    let ids: Vec<Identity> = yibao::generate::facts(1, persons)
        .filter_map(|event| match event {
            Event::PersonRegisteredV1(e) => Some(e.person),
            _ => None,
        })
        .collect();
    if !checkpoint.exists() {
        build(persons, &checkpoint)?;
    }
    let coverage = Coverage::load(&checkpoint)?;
    let day = Date::ymd(2021, 6, 30).context("a date")?;
    let n = ids.len().max(1);
    let sample = || (0..n).map(|k| &ids[k.wrapping_mul(7_919) % n]);
    // Round 0 derives (cold); later rounds read the kept answers (hot).
    for round in 0..rounds {
        let started = Instant::now();
        let mut n_covered = 0u64;
        for id in sample() {
            n_covered += u64::from(coverage.is_covered_on(id, day)?);
        }
        let covered_per_s = n as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for id in sample() {
            n_covered += u64::from(coverage.person_year(id, 2021)?.is_some_and(|view| view.is_covered_on(day)));
        }
        let full_per_s = n as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "round {round}: is-covered-on {covered_per_s:.0}/s, full view {full_per_s:.0}/s ({n_covered} covered)"
        );
    }
    Ok(())
}

fn build(persons: u64, checkpoint: &Path) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let log = SledLog::open(&scratch.path().join("yibao"), OpenMode::Create)?;
    let facts: Vec<NewEvent> = yibao::generate::facts(1, persons).map(|event| NewEvent::fact(event, "bench")).collect();
    let mut facts = facts.into_iter().peekable();
    while facts.peek().is_some() {
        log.append_blocking(facts.by_ref().take(50_000).collect()).context("ingest")?;
    }
    let mut coverage = Coverage::new();
    log.scan(1, u64::MAX, |envelope| {
        coverage.apply(&envelope);
        Ok(())
    })?;
    coverage.save(checkpoint)?;
    Ok(())
}
