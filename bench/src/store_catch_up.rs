//! `yibao-bench store-catch-up`: the person store caught up from position
//! 1 over a generated prefecture-year, in chunks of
//! `DEFAULT_CHUNK_ENVELOPES` (what the first lookup or a service start on a
//! ledger without a store does), in a SQLite file and in a PostgreSQL
//! database (the peer measured in the same run): wall time, facts/s, and
//! the ratio. The database is a throwaway server (`pgtest`) unless `--url`
//! names one; it is on this machine either way, so the figures leave out a
//! network's round trips.

use anyhow::{Context, Result};
use ledger::{NewEvent, OpenMode, SledLog};
use projections::coverage::PersonStore;
use std::path::Path;
use std::time::Instant;

/// Facts appended per batch while the ledger is generated.
const INGEST_BATCH: usize = 50_000;

pub fn run(dir: &Path, persons: u64, seed: u64, url: Option<&str>) -> Result<()> {
    let log = crate::phase("generate and ingest the facts", || generate(dir, persons, seed))?;
    let n_facts = log.durable_head().position;
    let sqlite = crate::phase("SQLite catch-up", || {
        let mut store = PersonStore::open(&dir.join("persons.sqlite"))?;
        time_catch_up(&mut store, &log)
    })?;
    // Kept until the end of the run: the server stops when it is dropped.
    let mut server = None;
    let url = match url {
        Some(url) => url.to_string(),
        None => {
            let binaries = pgtest::find_binaries().context("PostgreSQL (initdb, postgres) is not installed")?;
            let started = pgtest::TempPostgres::start_with(&binaries).map_err(anyhow::Error::msg)?;
            server.insert(started).create_database("bench_store")
        }
    };
    let postgres = crate::phase("PostgreSQL catch-up", || {
        let mut store = PersonStore::connect(&url)?;
        store.reset()?;
        time_catch_up(&mut store, &log)
    })?;
    println!("person store caught up from position 1: {persons} persons, {n_facts} facts");
    println!("{:<11} {:>9} {:>12}", "store", "seconds", "facts/s");
    for (name, seconds) in [("SQLite", sqlite), ("PostgreSQL", postgres)] {
        println!("{name:<11} {seconds:>9.1} {:>12.0}", n_facts as f64 / seconds.max(1e-9));
    }
    println!("PostgreSQL / SQLite time: {:.2}", postgres / sqlite.max(1e-9));
    drop(server);
    Ok(())
}

fn generate(dir: &Path, persons: u64, seed: u64) -> Result<SledLog> {
    let log = SledLog::open(&dir.join("log"), OpenMode::Create)?;
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    for event in yibao::generate::facts(seed, persons) {
        batch.push(NewEvent::fact(event, "bench"));
        if batch.len() == INGEST_BATCH {
            log.append_blocking(std::mem::take(&mut batch)).context("ingest")?;
        }
    }
    if !batch.is_empty() {
        log.append_blocking(batch).context("ingest")?;
    }
    Ok(log)
}

/// Seconds `store` takes to reach the log's head.
fn time_catch_up(store: &mut PersonStore, log: &SledLog) -> Result<f64> {
    let started = Instant::now();
    store.catch_up(log, u64::MAX, &mut |_| {})?;
    Ok(started.elapsed().as_secs_f64())
}
