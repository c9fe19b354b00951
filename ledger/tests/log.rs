//! The log's contract: append, idempotency, optimistic concurrency, reads,
//! verification, restore.

mod common;

use common::{fact, payment, registration};
use ledger::log::restore::{restore, ExportedRecord};
use ledger::{EventLog, ExpectedVersion, LedgerError, OpenMode, SledLog};

fn open(dir: &std::path::Path) -> SledLog {
    SledLog::open(dir, OpenMode::Create).expect("open")
}

#[tokio::test]
async fn appends_are_gapless_and_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let outcome = log.append(vec![fact(registration(1)), fact(payment(1))]).await.expect("append");
    assert_eq!(outcome.positions, vec![1, 2]);
    assert_eq!(outcome.n_appended, 2);
    assert_eq!(outcome.head.position, 2);
    let outcome = log.append(vec![fact(payment(2))]).await.expect("append");
    assert_eq!(outcome.positions, vec![3]);
    let all = log.read_from(1, 100).await.expect("read");
    assert_eq!(all.iter().map(|e| e.head.position).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[1].prev_hash, all[0].hash);
    assert_eq!(all[0].prev_hash, log.genesis_hash());
    let stream = log.read_stream(&registration(1).stream()).await.expect("stream");
    assert_eq!(stream.iter().map(|e| e.head.stream_version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(log.read_from(3, 10).await.expect("read").len(), 1);
    assert!(log.read_from(4, 10).await.expect("read").is_empty());
}

#[tokio::test]
async fn idempotent_repeat_returns_the_original_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append(vec![fact(payment(1)), fact(payment(2))]).await.expect("append");
    let again = log.append(vec![fact(payment(2)), fact(payment(3))]).await.expect("append");
    assert_eq!(again.positions, vec![2, 3]);
    assert_eq!(again.n_appended, 1);
    // Same key (channel + reference), different amount: a typed conflict.
    let mut changed = payment(1);
    if let ledger::Event::PaymentReceivedV1(p) = &mut changed {
        p.amount = ledger::Money::from_yuan(1070);
    }
    let error = log.append(vec![fact(payment(4)), fact(changed)]).await.expect_err("conflict");
    assert!(matches!(error, LedgerError::IdempotencyConflict { original_position: 1, .. }), "{error}");
    // Nothing of the rejected batch was written, payment 4 included.
    assert_eq!(log.head().await.expect("head").position, 3);
}

#[tokio::test]
async fn expected_versions_are_checked_and_a_mismatch_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let mut first = fact(registration(1));
    first.expected = ExpectedVersion::NoStream;
    log.append(vec![first.clone()]).await.expect("append");
    let mut second = fact(payment(1));
    second.expected = ExpectedVersion::NoStream;
    let error = log.append(vec![fact(payment(9)), second.clone()]).await.expect_err("version");
    assert!(matches!(error, LedgerError::WrongExpectedVersion { actual: 1, .. }), "{error}");
    assert_eq!(log.head().await.expect("head").position, 1);
    second.expected = ExpectedVersion::Exact(1);
    let outcome = log.append(vec![second]).await.expect("append");
    assert_eq!(outcome.positions, vec![2]);
}

#[tokio::test]
async fn reopen_keeps_everything_and_the_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path());
        log.append((1..=500).map(|n| fact(payment(n))).collect()).await.expect("append");
    }
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    assert_eq!(log.durable_head().position, 500);
    let again = log.append(vec![fact(payment(7))]).await.expect("idempotent after reopen");
    assert_eq!(again.positions, vec![7]);
    // Stream versions survive the reopen: payment 1's stream is at 1.
    let mut next = fact(registration(1));
    next.expected = ExpectedVersion::Exact(0);
    let error = log.append(vec![next.clone()]).await.expect_err("stale version");
    assert!(matches!(error, LedgerError::WrongExpectedVersion { actual: 1, .. }), "{error}");
    next.expected = ExpectedVersion::Exact(1);
    assert_eq!(log.append(vec![next]).await.expect("append").positions, vec![501]);
    let report = log.verify(0, 0, &mut |_| {}).expect("verify");
    assert_eq!(report.problem, None);
    assert_eq!(report.n_records, 501);
}

#[test]
fn missing_ledger_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = SledLog::open(dir.path(), OpenMode::Existing).err().expect("no ledger");
    assert!(matches!(error, LedgerError::NotFound(_)));
}

#[tokio::test]
async fn a_restore_reproduces_the_chain_and_refuses_a_changed_record() {
    let source_dir = tempfile::tempdir().expect("tempdir");
    let source = open(source_dir.path());
    for chunk in 0..4 {
        source.append((0..300).map(|n| fact(payment(chunk * 1000 + n))).collect()).await.expect("append");
    }
    let records = || {
        let mut out = Vec::new();
        for item in source.blocks_from(1).expect("blocks") {
            let (_, bytes) = item.expect("block");
            let view = ledger::log::block::BlockView::parse(&bytes).expect("view");
            for record in view.records() {
                let record = record.expect("record");
                out.push(Ok(ExportedRecord {
                    position: record.position,
                    stored: record.body.to_vec(),
                    hash: record.hash,
                }));
            }
        }
        out
    };
    let target_dir = tempfile::tempdir().expect("tempdir");
    let head = restore(target_dir.path(), source.header_bytes(), records()).expect("restore");
    assert_eq!(head, source.durable_head());
    let target = SledLog::open(target_dir.path(), OpenMode::Existing).expect("open restored");
    assert_eq!(target.durable_head(), source.durable_head());
    assert_eq!(target.verify(0, 0, &mut |_| {}).expect("verify").problem, None);
    // Restoring into a ledger that has records is refused.
    drop(target);
    let error = restore(target_dir.path(), source.header_bytes(), records()).expect_err("not empty");
    assert!(matches!(error, LedgerError::NotEmpty { head: 1200 }));
    // A changed byte in an export is found and nothing is left behind.
    let mut changed = records();
    if let Some(Ok(record)) = changed.get_mut(500) {
        let last = record.stored.len() - 1;
        record.stored[last] ^= 1;
    }
    let empty_dir = tempfile::tempdir().expect("tempdir");
    let error = restore(empty_dir.path(), source.header_bytes(), changed).expect_err("changed");
    assert!(matches!(error, LedgerError::Corrupt { position: 501, .. }), "{error}");
    assert!(!empty_dir.path().join("log").exists());
}

/// A long scan decodes on several threads; it must give what short reads
/// (decoded on the caller's thread) give, in the same order, and stop where
/// asked.
#[tokio::test]
async fn long_scans_match_short_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let n: u32 = 45_000;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(15_000) {
        log.append(chunk.iter().map(|&i| fact(payment(i))).collect()).await.expect("append");
    }
    let mut short = Vec::new();
    let mut from = 1;
    while from <= u64::from(n) {
        let part = log.read_from(from, 10_000).await.expect("read");
        from += part.len() as u64;
        short.extend(part);
    }
    let mut long = Vec::new();
    log.scan(1, u64::MAX, |envelope| {
        long.push(envelope);
        Ok(())
    })
    .expect("scan");
    assert_eq!(long.len(), n as usize);
    assert!(long == short, "a parallel scan differs from short reads");
    // A long scan that starts and ends inside blocks.
    let mut positions = Vec::new();
    log.scan(1_234, 40_321, |envelope| {
        positions.push(envelope.head.position);
        Ok(())
    })
    .expect("scan");
    assert_eq!(positions, (1_234..=40_321).collect::<Vec<_>>());
    // A visitor's error stops the scan and is returned.
    let mut seen = 0;
    let stopped = log.scan(1, u64::MAX, |_| {
        seen += 1;
        if seen == 25_000 {
            return Err(LedgerError::Closed);
        }
        Ok(())
    });
    assert!(matches!(stopped, Err(LedgerError::Closed)));
    assert_eq!(seen, 25_000);
}

/// Whoever builds the event, the log appends only canonical text and keys
/// that take no other fact's place; a refused request writes nothing.
#[tokio::test]
async fn the_log_refuses_uncanonical_text_and_taken_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let spaced = common::payment_with_ref("WX1 ", 1);
    let refused = log.append(vec![fact(registration(1)), fact(spaced)]).await.expect_err("trailing space");
    assert!(
        matches!(&refused, LedgerError::InvalidEvent { index: 1, error } if error.field == "channel_ref"),
        "{refused}"
    );
    let mut squatter = fact(payment(2));
    squatter.idempotency_key = "payment/wechat/WX0000000003".into();
    let refused = log.append(vec![squatter]).await.expect_err("another payment's key");
    assert!(
        matches!(&refused, LedgerError::InvalidEvent { index: 0, error } if error.field == "idempotency_key"),
        "{refused}"
    );
    let mut content = fact(registration(4));
    content.idempotency_key = "person_registered/0123".into();
    assert!(log.append(vec![content]).await.is_err(), "a content key not its own");
    assert_eq!(log.head().await.expect("head").position, 0, "nothing was written");
    let mut own = fact(payment(3));
    own.idempotency_key = "payment/wechat/WX0000000003".into();
    let mut client = fact(payment(5));
    client.idempotency_key = "client-7/WX5".into();
    assert_eq!(log.append(vec![own, client, fact(registration(6))]).await.expect("own keys").n_appended, 3);
}

/// `verify --from`/`--to` counts the records of the range it checked, not
/// whole blocks, and its last good record is the range's last.
#[test]
fn a_verified_range_counts_its_own_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    // One request of several blocks (about 560 of these events a block).
    log.append_blocking((1..=3000).map(|n| fact(payment(n))).collect()).expect("append");
    let mut hashes = vec![log.genesis_hash()];
    log.scan(1, u64::MAX, |envelope| {
        hashes.push(envelope.hash);
        Ok(())
    })
    .expect("scan");
    let first_of_block =
        |position: u64| log.blocks_from(position).expect("blocks").next().expect("a block").expect("read").0;
    // Both ends inside blocks, not at their edges.
    assert!(first_of_block(1000) < 1000 && first_of_block(2001) < 2000);
    for (from, to, n_records, last) in
        [(1000, 0, 2001, 3000), (1000, 2000, 1001, 2000), (1, 2000, 2000, 2000), (3000, 0, 1, 3000)]
    {
        let report = log.verify(from, to, &mut |_| {}).expect("verify");
        assert_eq!(report.problem, None);
        assert_eq!(report.first_position, from);
        assert_eq!(report.n_records, n_records, "verify {from}..{to}");
        assert_eq!(report.last_good.position, last, "verify {from}..{to}");
        assert_eq!(report.last_good.hash, hashes[last as usize], "verify {from}..{to}");
    }
}

#[test]
fn a_read_open_answers_as_a_writing_one_without_building_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append_blocking((1..=50).map(|n| fact(registration(n))).collect()).expect("append");
    log.append_blocking((1..=50).map(|n| fact(payment(n))).collect()).expect("append");
    let head = log.durable_head();
    let stream = payment(10).stream();
    let by_index = log.read_stream_blocking(&stream).expect("stream");
    drop(log);

    let reader = SledLog::open(dir.path(), OpenMode::Read).expect("a read open");
    assert_eq!(reader.durable_head(), head);
    let by_scan = reader.read_stream_blocking(&stream).expect("stream");
    assert_eq!(by_scan, by_index, "a stream's records are the same without the index");
    assert!(!by_scan.is_empty(), "the stream has records");
    let mut n_scanned = 0;
    reader
        .scan(1, head.position, |_| {
            n_scanned += 1;
            Ok(())
        })
        .expect("scan");
    assert_eq!(n_scanned, 100);
    assert!(
        matches!(reader.append_blocking(vec![fact(payment(99))]), Err(LedgerError::Closed)),
        "a read open appends nothing"
    );
    drop(reader);
    assert_eq!(open(dir.path()).durable_head(), head, "nothing moved");
    assert!(
        matches!(SledLog::open(&dir.path().join("none"), OpenMode::Read), Err(LedgerError::NotFound(_))),
        "no ledger is NotFound for a reader too"
    );
}

/// A probe answers what an append would do (the positions already held, 0
/// for a new fact, or the append's error) and appends nothing.
#[test]
fn a_probe_answers_as_an_append_would_and_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    log.append_blocking(vec![fact(payment(1)), fact(payment(2))]).expect("append");
    let probed =
        log.probe_blocking(vec![fact(payment(3)), fact(payment(2)), fact(payment(3))]).expect("a probe of new facts");
    assert_eq!((probed.positions, probed.n_appended, probed.head.position), (vec![0, 2, 0], 1, 2));
    let mut changed = payment(1);
    if let ledger::Event::PaymentReceivedV1(p) = &mut changed {
        p.amount = ledger::Money::from_yuan(1070);
    }
    let error = log.probe_blocking(vec![fact(payment(4)), fact(changed)]).expect_err("conflict");
    assert!(matches!(error, LedgerError::IdempotencyConflict { original_position: 1, .. }), "{error}");
    let mut versioned = fact(payment(5));
    versioned.expected = ExpectedVersion::Exact(3);
    let error = log.probe_blocking(vec![versioned]).expect_err("a stream without events");
    assert!(matches!(error, LedgerError::WrongExpectedVersion { .. }), "{error}");
    assert_eq!(log.durable_head().position, 2, "a probe appends nothing");
    let appended = log.append_blocking(vec![fact(payment(3))]).expect("append after probes");
    assert_eq!(appended.positions, vec![3], "nor does it take a position");
}

/// The checks the writer makes on one event, callable without a log.
#[test]
fn check_new_event_refuses_what_an_append_refuses() {
    let mut squatter = fact(payment(3));
    squatter.idempotency_key = "payment/wechat/WX0000000009".into();
    let error = ledger::log::check_new_event(&squatter, 7).expect_err("another payment's key");
    assert!(matches!(&error, LedgerError::InvalidEvent { index: 7, error } if error.field == "idempotency_key"));
    let mut long_actor = fact(payment(3));
    long_actor.actor = "a".repeat(ledger::log::MAX_KEY_BYTES + 1);
    assert!(matches!(ledger::log::check_new_event(&long_actor, 0), Err(LedgerError::TooLarge { .. })));
    assert!(ledger::log::check_new_event(&fact(payment(3)), 0).is_ok());
}

/// Every record as an export writes it: position, stored bytes, hash.
fn exported(log: &SledLog) -> Vec<(u64, Vec<u8>, ledger::Hash)> {
    ledger::LogStore::stored_records(log, 1)
        .expect("records")
        .map(|record| record.map(|r| (r.position, r.stored, r.hash)).expect("a record"))
        .collect()
}

/// Blocks stored plain (the first block format: every block before
/// compression) and compressed blocks in one log: both read back to the
/// same records and hashes, the chain runs across them, and an export is
/// the same bytes whichever way its blocks were stored.
#[test]
fn blocks_stored_plain_read_as_before_beside_compressed_ones() {
    use ledger::log::block::{self, COMPRESSED};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    for chunk in 0..3 {
        log.append_blocking((0..400).map(|n| fact(payment(chunk * 1000 + n))).collect()).expect("append");
    }
    let as_written = exported(&log);
    drop(log);
    let db = ledger::log::open_store(dir.path()).expect("sled");
    let tree = db.open_tree("blocks").expect("tree");
    let mut n_compressed = 0;
    for item in tree.iter() {
        let (key, value) = item.expect("block");
        n_compressed += usize::from(value[16] & COMPRESSED != 0);
        tree.insert(key, block::plain(&value).expect("parses")).expect("insert");
    }
    assert!(n_compressed > 0, "the writer stores its blocks compressed");
    db.flush().expect("flush");
    drop((tree, db));
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    assert_eq!(exported(&log), as_written);
    log.append_blocking((0..400).map(|n| fact(payment(5000 + n))).collect()).expect("append");
    assert_eq!(log.verify(0, 0, &mut |_| {}).expect("verify").problem, None);
    let all = exported(&log);
    assert_eq!((all.len(), &all[..as_written.len()]), (1600, as_written.as_slice()));
    let flags: Vec<u8> =
        log.blocks_from(1).expect("blocks").map(|item| item.expect("block").1[16] & COMPRESSED).collect();
    assert!(flags.contains(&0) && flags.contains(&COMPRESSED), "{flags:?}");
}
