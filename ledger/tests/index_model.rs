//! The log with its index on disk against a plain model: random appends
//! (new keys, repeats, conflicts, expected versions), closes and reopens,
//! with a memtable so small that runs are written and merged all the time.

mod common;

use common::{fact, payment_with_ref};
use ledger::{ExpectedVersion, LedgerError, NewEvent, OpenMode, SledLog};
use proptest::prelude::*;
use std::collections::HashMap;

const N_KEYS: u8 = 60;
const N_PERSONS: u8 = 5;

#[derive(Clone, Debug)]
enum Step {
    /// (key, person, expected version: None for any, else the model's
    /// version plus this offset, 0 being right).
    Append(Vec<(u8, u8, Option<u8>)>),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec((0..N_KEYS, 0..N_PERSONS, prop::option::weighted(0.2, 0u8..2)), 1..12)
            .prop_map(Step::Append),
        1 => Just(Step::Reopen),
    ]
}

#[derive(Default)]
struct Model {
    /// key → (position, person)
    keys: HashMap<u8, (u64, u8)>,
    versions: HashMap<u8, u64>,
    head: u64,
}

/// What the model says an append answers: positions, or which rejection.
fn expect(model: &Model, batch: &[(u8, u8, Option<u8>)]) -> Result<(Vec<u64>, Model), &'static str> {
    let mut keys = model.keys.clone();
    let mut versions = model.versions.clone();
    let mut head = model.head;
    let mut positions = Vec::new();
    for &(key, person, offset) in batch {
        if let Some(&(position, original)) = keys.get(&key) {
            if original != person {
                return Err("conflict");
            }
            positions.push(position);
            continue;
        }
        let version = versions.get(&person).copied().unwrap_or(0);
        if offset.is_some_and(|offset| offset != 0) {
            return Err("version");
        }
        head += 1;
        keys.insert(key, (head, person));
        versions.insert(person, version + 1);
        positions.push(head);
    }
    Ok((positions, Model { keys, versions, head }))
}

fn event(key: u8, person: u8, expected: ExpectedVersion) -> NewEvent {
    NewEvent { expected, ..fact(payment_with_ref(&format!("k{key}"), u32::from(person))) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_log_with_its_index_on_disk_answers_as_a_model(steps in prop::collection::vec(step(), 1..40)) {
        // The only test of this binary: the setting reaches every open.
        std::env::set_var("YIBAO_INDEX_MEMTABLE_KEYS", "4");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = SledLog::open(dir.path(), OpenMode::Create).expect("create");
        let mut model = Model::default();
        for step in steps {
            let batch = match step {
                Step::Reopen => {
                    drop(log);
                    log = SledLog::open_checking_index_for_tests(dir.path()).expect("reopen as a rebuild");
                    continue;
                }
                Step::Append(batch) => batch,
            };
            let events = batch
                .iter()
                .map(|&(key, person, offset)| {
                    let version = model.versions.get(&person).copied().unwrap_or(0);
                    let expected = offset.map_or(ExpectedVersion::Any, |o| ExpectedVersion::Exact(version + u64::from(o)));
                    event(key, person, expected)
                })
                .collect();
            // Within a request, a later event of a person sees the earlier
            // ones: only the first of each person's checks is comparable.
            let comparable = batch.iter().enumerate().all(|(idx, &(_, person, offset))| {
                offset.is_none() || !batch[..idx].iter().any(|&(_, earlier, _)| earlier == person)
            });
            let answer = log.append_blocking(events);
            if !comparable {
                if let Ok(outcome) = &answer {
                    for (&(key, person, _), &position) in batch.iter().zip(&outcome.positions) {
                        model.keys.entry(key).or_insert((position, person));
                        if position > model.head {
                            *model.versions.entry(person).or_insert(0) += 1;
                            model.head = position;
                        }
                    }
                }
                continue;
            }
            match (expect(&model, &batch), answer) {
                (Ok((positions, next)), Ok(outcome)) => {
                    prop_assert_eq!(outcome.positions, positions);
                    model = next;
                }
                (Err("conflict"), Err(LedgerError::IdempotencyConflict { .. })) => {}
                (Err("version"), Err(LedgerError::WrongExpectedVersion { .. })) => {}
                (expected, answer) => prop_assert!(false, "model {:?}, log {:?}", expected.map(|e| e.0), answer),
            }
        }
        drop(log);
        let log = SledLog::open_checking_index_for_tests(dir.path()).expect("a last reopen as a rebuild");
        prop_assert_eq!(log.durable_head().position, model.head);
    }
}
