//! The log's index on disk under SIGKILL: a child appends (new keys, repeats
//! of earlier ones, a few persons' streams) with a tiny memtable, so runs
//! are written and merged all the time, and is killed at random moments.
//! After each kill the parent reopens and checks that the index on disk
//! answers exactly what a rebuild from position 1 answers, that every
//! acknowledged key is a repeat at its position, that other content under
//! it is refused, that new keys append and that stream versions continue.
//!
//! The child is this test binary run again in child mode (see `crash.rs`).
//! Set `YIBAO_INDEX_CRASH_SEED` to repeat a run.

mod common;

use common::{fact, payment_with_ref, seed_from_env, Rng};
use ledger::{Event, ExpectedVersion, LedgerError, NewEvent, OpenMode, SledLog};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "YIBAO_INDEX_CRASH_CHILD_DIR";
const CHILD_SEED: &str = "YIBAO_INDEX_CRASH_CHILD_SEED";
const CHILD_TEST: &str = "index_child_appends_until_killed";
const SEED: &str = "YIBAO_INDEX_CRASH_SEED";
/// The writer's memtable limit in the child: a run every few requests.
const MEMTABLE_ENV: &str = "YIBAO_INDEX_MEMTABLE_KEYS";
const CHILD_MEMTABLE_KEYS: &str = "40";
const ITERATIONS: u64 = 24;
const N_PERSONS: u64 = 30;
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// The payment of reference `reference` by person `person`.
fn payment(reference: &str, person: u64) -> NewEvent {
    fact(payment_with_ref(reference, person as u32))
}

/// Child mode: appends for ever, printing `ack <position> <reference>
/// <person>` for each event once its append returned.
#[test]
fn index_child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let seed: u64 = std::env::var(CHILD_SEED).ok().and_then(|s| s.parse().ok()).expect("child seed");
    let log = SledLog::open(Path::new(&dir), OpenMode::Existing).expect("the child opens the ledger");
    let mut out = std::io::stdout().lock();
    if out.write_all(b"\nready\n").and_then(|()| out.flush()).is_err() {
        return;
    }
    let mut rng = Rng(seed);
    let mut sent: Vec<(String, u64)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < CHILD_LIFETIME {
        let size = if rng.range(0, 4) == 0 { rng.range(10, 120) } else { rng.range(1, 8) } as usize;
        let mut batch: Vec<(String, u64)> =
            (0..size).map(|k| (format!("{seed:x}-{}", sent.len() + k), rng.range(0, N_PERSONS))).collect();
        let fresh = batch.clone();
        if !sent.is_empty() && rng.range(0, 3) == 0 {
            for _ in 0..rng.range(1, 5) {
                let earlier = sent[rng.range(0, sent.len() as u64) as usize].clone();
                let at = rng.range(0, batch.len() as u64 + 1) as usize;
                batch.insert(at, earlier);
            }
        }
        let events = batch.iter().map(|(reference, person)| payment(reference, *person)).collect();
        let outcome = log.append_blocking(events).expect("the child's append");
        let mut text = String::new();
        for (position, (reference, person)) in outcome.positions.iter().zip(&batch) {
            text.push_str(&format!("ack {position} {reference} {person}\n"));
        }
        if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
            return;
        }
        sent.extend(fresh);
        std::thread::sleep(Duration::from_micros(rng.range(0, 2000)));
    }
}

/// Runs the child, kills it after `delay`, returns its complete ack lines.
fn run_child_until_killed(dir: &Path, seed: u64, delay: Duration) -> Vec<(u64, String, u64)> {
    let env = [
        (CHILD_DIR, dir.display().to_string()),
        (CHILD_SEED, seed.to_string()),
        (MEMTABLE_ENV, CHILD_MEMTABLE_KEYS.to_string()),
    ];
    let killed = common::run_child_until_killed(CHILD_TEST, &env, true, delay, CHILD_LIFETIME);
    killed
        .lines
        .iter()
        .filter_map(|line| {
            let mut words = line.strip_prefix("ack ")?.split(' ');
            let position = words.next()?.parse().ok()?;
            let reference = words.next()?.to_string();
            let person = words.next()?.parse().ok()?;
            Some((position, reference, person))
        })
        .collect()
}

/// The stream of person `person`'s payments.
fn stream_of(person: u64) -> String {
    payment("any", person).stream
}

/// Checks a reopened ledger against everything acknowledged; returns how
/// many records its open read.
fn check_reopened(dir: &Path, acked: &BTreeMap<String, (u64, u64)>, rng: &mut Rng, context: &str) -> u64 {
    let log = SledLog::open_checking_index_for_tests(dir).unwrap_or_else(|e| panic!("{context}: {e}"));
    let opened_tail = log.opened_tail();
    let head = log.durable_head().position;
    // Acknowledged keys are repeats at their positions (a sample, and all
    // of them now and then).
    let all: Vec<(&String, &(u64, u64))> = acked.iter().collect();
    let sample: Vec<_> = if rng.range(0, 4) == 0 {
        all
    } else {
        (0..all.len().min(200)).map(|_| all[rng.range(0, all.len() as u64) as usize]).collect()
    };
    let events = sample.iter().map(|(reference, (_, person))| payment(reference, *person)).collect();
    let outcome = log.append_blocking(events).unwrap_or_else(|e| panic!("{context}: repeats: {e}"));
    assert_eq!(outcome.n_appended, 0, "{context}: a repeat appended");
    let expected: Vec<u64> = sample.iter().map(|(_, (position, _))| *position).collect();
    assert_eq!(outcome.positions, expected, "{context}: repeats answer their original positions");
    // Other content under an acknowledged key is refused.
    if let Some((reference, (position, person))) = sample.first() {
        let other = payment(reference, (person + 1) % N_PERSONS);
        match log.append_blocking(vec![other]) {
            Err(LedgerError::IdempotencyConflict { original_position, .. }) => {
                assert_eq!(original_position, *position, "{context}")
            }
            other => panic!("{context}: a conflict was not refused: {other:?}"),
        }
    }
    // Stream versions continue from the records each stream holds.
    let person = rng.range(0, N_PERSONS);
    let n_records = log.read_stream_blocking(&stream_of(person)).expect("read a stream").len() as u64;
    let mut next = payment(&format!("parent-{head}"), person);
    next.expected = ExpectedVersion::Exact(n_records);
    let outcome = log.append_blocking(vec![next]).unwrap_or_else(|e| panic!("{context}: a new key: {e}"));
    assert_eq!(outcome.positions, vec![head + 1], "{context}: a new key appends at the head");
    let stale = payment(&format!("parent-stale-{head}"), person);
    let stale = NewEvent { expected: ExpectedVersion::Exact(n_records), ..stale };
    assert!(
        matches!(log.append_blocking(vec![stale]), Err(LedgerError::WrongExpectedVersion { actual, .. }) if actual == n_records + 1),
        "{context}: the version moved on"
    );
    opened_tail
}

#[test]
fn the_index_on_disk_answers_as_a_rebuild_after_sigkill_at_random_moments() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let seed = seed_from_env(SEED);
    println!("index crash test seed {seed} (rerun with {SEED}={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    drop(SledLog::open(dir.path(), OpenMode::Create).expect("create the ledger"));
    let mut acked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut n_tail_opens = 0;
    for iteration in 0..ITERATIONS {
        let delay = Duration::from_millis(rng.range(10, 150));
        let child_seed = rng.next_u64();
        let acks = run_child_until_killed(dir.path(), child_seed, delay);
        let context = format!("seed {seed}, iteration {iteration} (child seed {child_seed}, killed after {delay:?})");
        for (position, reference, person) in acks {
            let earlier = acked.insert(reference.clone(), (position, person));
            assert!(earlier.is_none_or(|e| e == (position, person)), "{context}: {reference} at two positions");
        }
        let head = SledLog::open(dir.path(), OpenMode::Audit).expect("audit open").durable_head().position;
        let opened_tail = check_reopened(dir.path(), &acked, &mut rng, &context);
        if head > 0 && opened_tail < head {
            n_tail_opens += 1;
        }
        // The parent's own appends are acknowledged too.
        let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
        log.scan(head + 1, u64::MAX, |envelope| {
            if let Event::PaymentReceivedV1(p) = &envelope.event {
                let person = (0..N_PERSONS).find(|&n| stream_of(n) == envelope.head.stream).expect("a known person");
                acked.insert(p.channel_ref.clone(), (envelope.head.position, person));
            }
            Ok(())
        })
        .expect("scan the parent's appends");
    }
    println!("{ITERATIONS} kills, {} keys acknowledged, {n_tail_opens} opens read only a tail", acked.len());
    assert!(acked.len() > 200, "the children acknowledged only {} keys", acked.len());
    assert!(n_tail_opens >= ITERATIONS / 2, "only {n_tail_opens} opens used the index on disk");
    // Runs were merged: their number grows with the logarithm of the
    // entries, not with the number of memtables written.
    let n_runs = std::fs::read_dir(dir.path().join("index"))
        .expect("the index directory")
        .filter(|entry| entry.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".idx")))
        .count();
    let n_memtables = acked.len() as f64 / 40.0;
    assert!((n_runs as f64) <= 2.0 * n_memtables.log2() + 2.0, "{n_runs} runs for about {n_memtables} memtables");
}
