//! The log's index on disk: an open reads only the tail after it; an index
//! that does not match the log is rebuilt, never used; a read open answers
//! a stream from it.

mod common;

use common::{fact, payment_with_ref};
use ledger::{ExpectedVersion, LedgerError, NewEvent, OpenMode, SledLog};
use std::path::Path;

fn payment(reference: &str, person: u32) -> NewEvent {
    fact(payment_with_ref(reference, person))
}

/// Appends `n` payments of `n_persons` persons, in requests of 100.
fn append_payments(log: &SledLog, tag: &str, n: u32, n_persons: u32) {
    let events: Vec<NewEvent> = (0..n).map(|i| payment(&format!("{tag}-{i}"), i % n_persons)).collect();
    for chunk in events.chunks(100) {
        log.append_blocking(chunk.to_vec()).expect("append");
    }
}

/// The log answers as it should: a repeat at its position, a conflict
/// refused, the person's stream version continuing.
fn check_answers(log: &SledLog, tag: &str, i: u32, n_persons: u32, position: u64) {
    let outcome = log.append_blocking(vec![payment(&format!("{tag}-{i}"), i % n_persons)]).expect("repeat");
    assert_eq!((outcome.positions, outcome.n_appended), (vec![position], 0));
    let conflict = log.append_blocking(vec![payment(&format!("{tag}-{i}"), i % n_persons + 1)]);
    assert!(
        matches!(conflict, Err(LedgerError::IdempotencyConflict { original_position, .. }) if original_position == position),
        "{conflict:?}"
    );
    let stream = payment("any", i % n_persons).stream;
    let n_records = log.read_stream_blocking(&stream).expect("read stream").len() as u64;
    let next =
        NewEvent { expected: ExpectedVersion::Exact(n_records), ..payment(&format!("next-{tag}-{i}"), i % n_persons) };
    log.append_blocking(vec![next]).expect("the version continues");
}

#[test]
fn a_reopen_reads_only_the_records_after_the_index_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("create");
    append_payments(&log, "a", 1_000, 50);
    drop(log);
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    assert_eq!(log.opened_tail(), 0, "a clean close leaves no tail");
    drop(log);
    // An older index (as after a crash before the next run was written):
    // the open reads the records after it, and only those.
    let older = tempfile::tempdir().expect("tempdir");
    common::copy_tree(&dir.path().join("index"), older.path());
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    append_payments(&log, "b", 300, 50);
    drop(log);
    std::fs::remove_dir_all(dir.path().join("index")).expect("remove the newer index");
    common::copy_tree(older.path(), &dir.path().join("index"));
    let log =
        SledLog::open_checking_index_for_tests(dir.path()).expect("the older index and the tail answer as a rebuild");
    assert_eq!(log.opened_tail(), 300);
    check_answers(&log, "a", 7, 50, 8);
    check_answers(&log, "b", 299, 50, 1_300);
}

#[test]
fn an_index_that_does_not_match_the_log_is_rebuilt() {
    let base = tempfile::tempdir().expect("tempdir");
    let (a, b) = (base.path().join("a"), base.path().join("b"));
    for (dir, n) in [(&a, 500), (&b, 400)] {
        let log = SledLog::open(dir, OpenMode::Create).expect("create");
        append_payments(&log, "p", n, 20);
    }
    // Another ledger's index.
    std::fs::remove_dir_all(b.join("index")).expect("remove");
    common::copy_tree(&a.join("index"), &b.join("index"));
    let log = SledLog::open_checking_index_for_tests(&b).expect("rebuilt");
    assert_eq!(log.opened_tail(), 400, "rebuilt from position 1");
    check_answers(&log, "p", 399, 20, 400);
    drop(log);
    // A missing run, then a damaged one.
    let run = |dir: &Path| {
        std::fs::read_dir(dir.join("index"))
            .expect("index dir")
            .map(|entry| entry.expect("entry").path())
            .find(|path| path.extension().is_some_and(|e| e == "idx"))
            .expect("a run")
    };
    std::fs::remove_file(run(&a)).expect("remove a run");
    let log = SledLog::open_checking_index_for_tests(&a).expect("rebuilt");
    assert_eq!(log.opened_tail(), 500);
    drop(log);
    let path = run(&a);
    let mut bytes = std::fs::read(&path).expect("read run");
    let last = bytes.len() - 60;
    bytes[last] ^= 0x55;
    std::fs::write(&path, bytes).expect("damage the run");
    let log = SledLog::open_checking_index_for_tests(&a).expect("rebuilt");
    assert_eq!(log.opened_tail(), 500);
    check_answers(&log, "p", 3, 20, 4);
    drop(log);
    // Another secret: the stored fingerprints mean nothing under it.
    {
        let db = ledger::log::open_store(&a).expect("store");
        db.insert(b"index-secret", &[7u8; 32][..]).expect("replace the secret");
        db.flush().expect("flush");
    }
    let log = SledLog::open_checking_index_for_tests(&a).expect("rebuilt");
    assert_eq!(log.opened_tail(), log.durable_head().position);
    check_answers(&log, "p", 11, 20, 12);
}

#[test]
fn a_read_open_answers_a_stream_from_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("create");
    append_payments(&log, "r", 600, 30);
    drop(log);
    let log = SledLog::open(dir.path(), OpenMode::Read).expect("read open");
    let stream = payment("any", 4).stream;
    let records = log.read_stream_blocking(&stream).expect("read stream");
    let positions: Vec<u64> = records.iter().map(|envelope| envelope.head.position).collect();
    assert_eq!(positions, (0..20).map(|k| 5 + 30 * k).collect::<Vec<u64>>());
    let versions: Vec<u64> = records.iter().map(|envelope| envelope.head.stream_version).collect();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
    assert_eq!(log.opened_tail(), 0, "the stream came from the index, not a scan");
    assert!(log.read_stream_blocking("person/none").expect("read").is_empty());
}

#[test]
fn a_new_key_reads_no_page_and_a_stream_seen_before_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("create");
    append_payments(&log, "old", 2_000, 50);
    drop(log);
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    // New keys of new persons: the blooms answer (about 1% say maybe).
    let events: Vec<NewEvent> = (0..1_000).map(|i| payment(&format!("new-{i}"), 1_000 + i)).collect();
    log.append_blocking(events).expect("append");
    let n_new = log.index_page_reads_for_tests();
    assert!(n_new <= 100, "{n_new} page reads for 1,000 new keys and streams");
    // New keys of the 50 persons in the run: one page read per stream.
    let events: Vec<NewEvent> = (0..500).map(|i| payment(&format!("again-{i}"), i % 50)).collect();
    log.append_blocking(events).expect("append");
    let n_seen = log.index_page_reads_for_tests() - n_new;
    assert!((50..=100).contains(&n_seen), "{n_seen} page reads for 50 streams seen before");
}

#[test]
fn a_restored_ledger_has_its_own_secret_and_builds_its_own_index() {
    use ledger::log::restore::{restore, ExportedRecord};
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = SledLog::open(source_dir.path(), OpenMode::Create).expect("create");
    append_payments(&source, "s", 300, 10);
    let mut records = Vec::new();
    for item in source.blocks_from(1).expect("blocks") {
        let (_, bytes) = item.expect("block");
        let view = ledger::log::block::BlockView::parse(&bytes).expect("view");
        for record in view.records() {
            let record = record.expect("record");
            records.push(Ok(ExportedRecord {
                position: record.position,
                stored: record.body.to_vec(),
                hash: record.hash,
            }));
        }
    }
    // Into a ledger that is empty but was opened for writing: it has an
    // index directory and a secret of its own.
    let target_dir = tempfile::tempdir().expect("tempdir");
    drop(SledLog::open(target_dir.path(), OpenMode::Create).expect("an empty ledger"));
    assert!(target_dir.path().join("index").exists());
    restore(target_dir.path(), source.header_bytes(), records).expect("restore");
    let secret = |dir: &Path| ledger::log::open_store(dir).expect("store").get(b"index-secret").expect("get");
    let target = SledLog::open_checking_index_for_tests(target_dir.path()).expect("open the restored ledger");
    assert_eq!(target.opened_tail(), 300, "the index is built from the restored log");
    check_answers(&target, "s", 42, 10, 43);
    drop(target);
    drop(source);
    let (source_secret, target_secret) = (secret(source_dir.path()), secret(target_dir.path()));
    assert!(source_secret.is_some() && target_secret.is_some());
    assert_ne!(source_secret, target_secret);
}
