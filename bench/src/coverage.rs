//! `yibao-bench coverage`: the coverage projection over a generated
//! prefecture-year (六盘水 2021) against SQLite computing the same states with
//! SQL, on the same facts in the same run.

use crate::coverage_sqlite;
use crate::figures::Throughput;
use crate::report::count;
use anyhow::{Context, Result};
use ledger::{Date, Event, Identity, NewEvent, OpenMode, SledLog};
use projections::coverage::Coverage;
use projections::Projection;
use std::path::Path;
use std::time::Instant;

/// Persons of a prefecture like 毕节 Bijie, for the extrapolation.
const PREFECTURE_PERSONS: f64 = 7_000_000.0;
/// Targets of the issue, for comparison only.
const REBUILD_TARGET_EVENTS_PER_S: f64 = 3_000_000.0;
const LOOKUP_TARGET_PER_S: f64 = 1_000_000.0;

/// Resident memory of this process, in bytes (Linux `/proc/self/statm`).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

pub fn run(dir: &Path, persons: u64, lookups: u64, seed: u64) -> Result<()> {
    let started = Instant::now();
    let events: Vec<Event> = yibao::generate::facts(seed, persons).collect();
    let ids: Vec<Identity> = events
        .iter()
        .filter_map(|event| match event {
            Event::PersonRegisteredV1(e) => Some(e.person.clone()),
            _ => None,
        })
        .collect();
    eprintln!(
        "generate {} facts for {} persons … {:.1} s",
        count(events.len() as f64),
        count(persons as f64),
        secs(started)
    );

    let started = Instant::now();
    let (sqlite, n_person_years_sqlite) = coverage_sqlite::rebuild(&dir.join("sqlite"), &events)?;
    eprintln!("SQLite: insert and compute coverage … {:.1} s", secs(started));

    let started = Instant::now();
    let log = SledLog::open(&dir.join("yibao"), OpenMode::Create)?;
    let facts: Vec<NewEvent> = events.into_iter().map(|event| NewEvent::fact(event, "bench")).collect();
    let n_events = facts.len() as u64;
    for chunk in chunks(facts, 50_000) {
        log.append_blocking(chunk).context("ingest")?;
    }
    let ingest = Throughput::new(n_events, started.elapsed());
    eprintln!("yibao: ingest … {:.1} s", ingest.seconds);

    let resident_before = resident_bytes();
    let started = Instant::now();
    let mut coverage = Coverage::new();
    log.scan(1, u64::MAX, |envelope| {
        coverage.apply(&envelope);
        Ok(())
    })?;
    let rebuild = Throughput::new(n_events, started.elapsed());
    let projection_bytes = resident_bytes().saturating_sub(resident_before);
    eprintln!("yibao: rebuild the projection … {:.1} s", rebuild.seconds);

    let started = Instant::now();
    let rebuilt = replay::audit::rebuild_as_of(&log, None, &mut |_| {})?;
    let audit_rebuild_seconds = secs(started);
    let report = replay::audit::report(&rebuilt, 2021, None, None).context("the audit report")?;
    let audit = Throughput::new(n_events, started.elapsed());
    eprintln!("yibao: auditor's replay, report and digest … {:.1} s", audit.seconds);

    // Each kind of question over its own half of the persons, three passes
    // of the same sample: cold (each person asked for the first time), the
    // second question (the projection keeps the answer then), and hot (the
    // answer read).
    let (view_ids, state_ids) = ids.split_at(ids.len() / 2);
    let per_pass = (lookups / 2).max(1);
    let (lookup_per_s, n_covered) = measure_lookups(&coverage, view_ids, per_pass)?;
    let (lookup_second_per_s, _) = measure_lookups(&coverage, view_ids, per_pass)?;
    let (lookup_hot_per_s, _) = measure_lookups(&coverage, view_ids, per_pass)?;
    let (state_per_s, _) = measure_states(&coverage, state_ids, per_pass)?;
    let (state_second_per_s, _) = measure_states(&coverage, state_ids, per_pass)?;
    let (state_hot_per_s, _) = measure_states(&coverage, state_ids, per_pass)?;
    let started = Instant::now();
    let digest = coverage.digest();
    let digest_seconds = secs(started);
    let checkpoint = dir.join("coverage.ckpt");
    let started = Instant::now();
    coverage.save(&checkpoint)?;
    let save_seconds = secs(started);
    let started = Instant::now();
    let loaded = Coverage::load(&checkpoint)?;
    let load_seconds = secs(started);
    anyhow::ensure!(loaded.digest() == digest, "the checkpoint loads into another state");

    let per_million = projection_bytes as f64 / persons.max(1) as f64 * 1e6;
    println!(
        "{} persons, {} facts (六盘水 2021 generated, seed {seed}); {} lookups of each kind per pass, each kind over its own half of the persons",
        count(persons as f64),
        count(n_events as f64),
        count(per_pass as f64)
    );
    println!();
    println!("{:<44} {:>14} {:>14} {:>12} {:>14}", "measure", "yibao", "SQLite", "yibao/SQLite", "target");
    let ratio = rebuild.events_per_s / sqlite.events_per_s.max(1e-9);
    row(
        "projection rebuild, events/s",
        rebuild.events_per_s,
        Some(sqlite.events_per_s),
        Some(ratio),
        REBUILD_TARGET_EVENTS_PER_S,
    );
    println!("{:<44} {:>14.2} {:>14.2}", "  rebuild wall time, s", rebuild.seconds, sqlite.seconds);
    let audit_ratio = audit.events_per_s / sqlite.events_per_s.max(1e-9);
    row(
        "auditor's replay + report + digest, events/s",
        audit.events_per_s,
        Some(sqlite.events_per_s),
        Some(audit_ratio),
        REBUILD_TARGET_EVENTS_PER_S,
    );
    println!("{:<44} {:>14.2} {:>14.2}", "  replay wall time, s", audit.seconds, sqlite.seconds);
    println!("{:<44} {:>14.2}", "    of which the rebuild of every projection, s", audit_rebuild_seconds);
    println!(
        "{:<44} {:>14.2}",
        format!("    report and digest on {} threads, s", std::thread::available_parallelism().map_or(1, |n| n.get())),
        audit.seconds - audit_rebuild_seconds
    );
    row("person-year lookups (full view), per s", lookup_per_s, None, None, LOOKUP_TARGET_PER_S);
    row("  asked a second time (answer kept), per s", lookup_second_per_s, None, None, LOOKUP_TARGET_PER_S);
    row("  asked again (kept answers read), per s", lookup_hot_per_s, None, None, LOOKUP_TARGET_PER_S);
    row("is-covered-on lookups, per s", state_per_s, None, None, LOOKUP_TARGET_PER_S);
    row("  asked a second time (answer kept), per s", state_second_per_s, None, None, LOOKUP_TARGET_PER_S);
    row("  asked again (kept answers read), per s", state_hot_per_s, None, None, LOOKUP_TARGET_PER_S);
    println!("{:<44} {:>14}", "resident memory of the projection, MB", format!("{:.0}", projection_bytes as f64 / 1e6));
    println!("{:<44} {:>14}", "  per million persons, MB", format!("{:.0}", per_million / 1e6));
    println!("{:<44} {:>14.2}", "ingest into the log, s (for context)", ingest.seconds);
    println!("{:<44} {:>14.2}", "digest of the state, s", digest_seconds);
    println!("{:<44} {:>14.2} / {:.2}", "checkpoint save / load, s", save_seconds, load_seconds);
    println!();
    println!(
        "- persons in the projection: {}; person-years with money in SQLite's result: {}; covered on 2021-06-30 among the looked-up: {}",
        count(coverage.n_persons() as f64),
        count(n_person_years_sqlite as f64),
        count(n_covered as f64)
    );
    println!("- SQLite inserts the facts into tables in one unsynced transaction and computes every person-year's state with one SQL statement knowing only this policy; yibao folds the log's envelopes (decoded on all cores) under the policy recorded in the log.");
    println!(
        "- a prefecture of 7M persons (毕节): about {:.1} GB for the projection and {:.0} s for a rebuild at this rate.",
        per_million * PREFECTURE_PERSONS / 1e6 / 1e9,
        rebuild.seconds * PREFECTURE_PERSONS / persons.max(1) as f64
    );
    println!(
        "- the auditor's replay (all projections, the {} report, the state digest {}…) would take about {:.0} s for 7M persons.",
        report.coverage_year,
        &report.digest[..16],
        audit.seconds * PREFECTURE_PERSONS / persons.max(1) as f64
    );
    Ok(())
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

fn chunks(facts: Vec<NewEvent>, size: usize) -> Vec<Vec<NewEvent>> {
    let mut out = Vec::new();
    let mut facts = facts.into_iter().peekable();
    while facts.peek().is_some() {
        out.push(facts.by_ref().take(size).collect());
    }
    out
}

fn row(name: &str, yibao: f64, sqlite: Option<f64>, ratio: Option<f64>, target: f64) {
    println!(
        "{:<44} {:>14} {:>14} {:>12} {:>14}",
        name,
        count(yibao),
        sqlite.map_or("—".into(), count),
        ratio.map_or("—".into(), |r| format!("{r:.2}×")),
        format!("≥ {}", count(target))
    );
}

/// Picks persons by a fixed stride so every run asks the same questions.
fn sample(ids: &[Identity], lookups: u64) -> impl Iterator<Item = &Identity> {
    let n = ids.len().max(1);
    (0..lookups as usize).filter_map(move |k| ids.get(k.wrapping_mul(7_919) % n))
}

/// A figure that is no amount of money fails the run: a benchmark that
/// counted it would measure a wrong answer.
fn measure_lookups(coverage: &Coverage, ids: &[Identity], lookups: u64) -> Result<(f64, u64)> {
    let day = Date::ymd(2021, 6, 30).expect("a date");
    let started = Instant::now();
    let mut n_covered = 0;
    for id in sample(ids, lookups) {
        if coverage.person_year(id, 2021)?.is_some_and(|view| view.is_covered_on(day)) {
            n_covered += 1;
        }
    }
    Ok((lookups as f64 / secs(started).max(1e-9), n_covered))
}

fn measure_states(coverage: &Coverage, ids: &[Identity], lookups: u64) -> Result<(f64, u64)> {
    let day = Date::ymd(2021, 6, 30).expect("a date");
    let started = Instant::now();
    let mut n_covered = 0;
    for id in sample(ids, lookups) {
        if coverage.is_covered_on(id, day)? {
            n_covered += 1;
        }
    }
    Ok((lookups as f64 / secs(started).max(1e-9), n_covered))
}
