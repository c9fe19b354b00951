//! Damage to stored blocks is found and named: a changed byte by its
//! position, a cut block as a framing problem, a missing block as a gap. A
//! damaged log is refused by a normal open, never a panic; a cut sled file
//! either is refused or opens as a log that verifies.
//!
//! Blocks are changed through sled directly (tree `blocks`, keys are
//! big-endian first positions), with the ledger closed.

mod common;

use common::{fact, payment, payment_with_ref};
use ledger::log::block::{self, COMPLETE, HEADER_BYTES};
use ledger::log::{VerifyProblem, VerifyReport};
use ledger::{Hash, LedgerError, OpenMode, SledLog};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Where one record lies inside a stored block, found by walking the framing
/// (independently of the code under test).
#[derive(Clone, Debug)]
struct Span {
    position: u64,
    /// The whole record: length, body, hash.
    record: Range<usize>,
    body: Range<usize>,
    hash: Range<usize>,
}

fn spans(value: &[u8]) -> Vec<Span> {
    let first = u64::from_le_bytes(value[4..12].try_into().expect("8 bytes"));
    let n = u32::from_le_bytes(value[12..16].try_into().expect("4 bytes"));
    let mut at = HEADER_BYTES;
    (0..n)
        .map(|i| {
            let len = u32::from_le_bytes(value[at..at + 4].try_into().expect("4 bytes")) as usize;
            let span = Span {
                position: first + u64::from(i),
                record: at..at + 4 + len + 32,
                body: at + 4..at + 4 + len,
                hash: at + 4 + len..at + 4 + len + 32,
            };
            at = span.record.end;
            span
        })
        .collect()
}

/// A closed ledger of several appends: large ones spanning blocks, and
/// single ones of one block each (a block holds about 560 of these events).
/// Returns the hash of every position, the genesis hash at 0. Its blocks
/// are rewritten in the plain layout (see `store_plain`).
fn build(dir: &Path) -> Vec<Hash> {
    let hashes = build_as_stored(dir);
    store_plain(dir);
    hashes
}

/// The same ledger with its blocks as the writer stores them (compressed).
fn build_as_stored(dir: &Path) -> Vec<Hash> {
    let log = SledLog::open(dir, OpenMode::Create).expect("create");
    let mut n = 0;
    let mut batch = |size: u32| {
        let events = (0..size).map(|_| {
            n += 1;
            fact(payment(n))
        });
        log.append_blocking(events.collect()).expect("append");
    };
    batch(1500);
    batch(500);
    for _ in 0..20 {
        batch(1);
    }
    // Positions 2021..=4020, in four blocks.
    batch(2000);
    let mut hashes = vec![log.genesis_hash()];
    log.scan(1, u64::MAX, |envelope| {
        hashes.push(envelope.hash);
        Ok(())
    })
    .expect("scan");
    hashes
}

/// Rewrites every block in the plain layout (frames uncompressed), as the
/// first block format stored them: the tests change frames in place, and a
/// plain block must read as it always did.
fn store_plain(dir: &Path) {
    with_blocks(dir, |tree| {
        for item in tree.iter() {
            let (key, value) = item.expect("block");
            let plain = block::plain(&value).expect("a stored block parses");
            tree.insert(key, plain).expect("insert");
        }
    });
}

/// Runs `change` on the stored blocks of a closed ledger.
fn with_blocks<T>(dir: &Path, change: impl FnOnce(&sled::Tree) -> T) -> T {
    let db = ledger::log::open_store(dir).expect("sled opens the ledger's db");
    let blocks = db.open_tree("blocks").expect("blocks tree");
    let out = change(&blocks);
    db.flush().expect("flush");
    out
}

/// All blocks as (first position, value).
fn all_blocks(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    with_blocks(dir, |blocks| {
        blocks
            .iter()
            .map(|item| {
                let (key, value) = item.expect("block");
                (block::position_of_key(&key).expect("8-byte key"), value.to_vec())
            })
            .collect()
    })
}

fn put(dir: &Path, first: u64, value: &[u8]) {
    with_blocks(dir, |blocks| blocks.insert(block::key(first), value).expect("insert"));
}

fn audit(dir: &Path) -> VerifyReport {
    let log = SledLog::open(dir, OpenMode::Audit).expect("an audit opens a damaged log");
    log.verify(0, 0, &mut |_| {}).expect("verify runs")
}

/// A byte changed inside a block stored compressed: the block no longer
/// decompresses, or a record in it no longer matches its hash. Either way
/// verify names a position of that block, and an open that reads it does
/// not panic.
#[test]
fn a_changed_byte_in_a_compressed_block_is_named_by_a_position_of_its_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    build_as_stored(dir.path());
    let blocks = all_blocks(dir.path());
    let (first, value) =
        blocks.iter().find(|(_, value)| value[16] & block::COMPRESSED != 0).expect("a compressed block");
    let n_records = u64::from(block::BlockView::parse(value).expect("parses").n_records);
    let packed_start = HEADER_BYTES + block::PACKED_LENGTHS_BYTES;
    let mut n_named = 0;
    for at in [packed_start, packed_start + 1, (packed_start + value.len()) / 2, value.len() - 1] {
        let mut damaged = value.clone();
        damaged[at] ^= 0x5a;
        put(dir.path(), *first, &damaged);
        let problem = audit(dir.path()).problem;
        let named = match problem {
            Some(VerifyProblem::Frame { position, .. }) | Some(VerifyProblem::Hash { position }) => position,
            Some(VerifyProblem::Decode { position, .. }) => position,
            other => panic!("byte {at}: {other:?}"),
        };
        assert!((*first..*first + n_records).contains(&named), "byte {at}: named {named}");
        n_named += 1;
        remove_index(dir.path());
        let opened = catch_unwind(AssertUnwindSafe(|| SledLog::open(dir.path(), OpenMode::Existing)));
        assert!(opened.is_ok(), "byte {at}: an open panicked");
    }
    assert_eq!(n_named, 4);
    put(dir.path(), *first, value);
    assert_eq!(audit(dir.path()).problem, None);
}

#[test]
fn a_changed_byte_is_named_by_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hashes = build(dir.path());
    let head = hashes.len() as u64 - 1;
    assert_eq!(audit(dir.path()).problem, None);
    let blocks = all_blocks(dir.path());
    assert!(blocks.len() >= 28, "{} blocks", blocks.len());
    // First, middle and last records of the first, a middle and the last block.
    let mut cases = Vec::new();
    for &(first, ref value) in [&blocks[0], &blocks[1], &blocks[blocks.len() / 2], &blocks[blocks.len() - 1]] {
        let spans = spans(value);
        for span in [&spans[0], &spans[spans.len() / 2], &spans[spans.len() - 1]] {
            cases.push((first, span.clone()));
        }
    }
    cases.dedup_by_key(|(_, span)| span.position);
    assert!(cases.iter().any(|(_, span)| span.position == 1) && cases.iter().any(|(_, span)| span.position == head));
    for (i, (first, span)) in cases.into_iter().enumerate() {
        let original = &blocks.iter().find(|(f, _)| *f == first).expect("block").1;
        let body = span.body.clone();
        // Bytes of the body (its first byte is the position, then the
        // envelope, the event last) and of the stored hash; two per record,
        // taking turns.
        let bytes = [
            (body.start, false),
            ((body.start + body.end) / 2, false),
            (body.end - 1, false),
            (span.hash.start + 7, true),
        ];
        for (at, in_hash) in [bytes[i % 4], bytes[(i + 2) % 4]] {
            let mut changed = original.clone();
            changed[at] ^= 0x20;
            put(dir.path(), first, &changed);
            let problem = audit(dir.path()).problem;
            let named = match &problem {
                Some(VerifyProblem::Hash { position }) => *position == span.position,
                Some(VerifyProblem::Decode { position, .. }) => !in_hash && *position == span.position,
                _ => false,
            };
            assert!(named, "byte {at} of block {first} (record {}): {problem:?}", span.position);
        }
        put(dir.path(), first, original);
    }
    // Put back, the log verifies whole again.
    let report = audit(dir.path());
    assert_eq!(report.problem, None);
    assert_eq!(report.n_records, head);
    assert_eq!(report.last_good.hash, hashes[head as usize]);
}

#[test]
fn a_broken_link_or_length_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let blocks = all_blocks(dir.path());
    let (first, original) = &blocks[1];
    // The block's prev_hash (header bytes 17..49).
    let mut changed = original.clone();
    changed[20] ^= 1;
    put(dir.path(), *first, &changed);
    assert_eq!(audit(dir.path()).problem, Some(VerifyProblem::Link { position: *first }));
    // A record's length field made larger than the block.
    let span = spans(original)[1].clone();
    let mut changed = original.clone();
    changed[span.record.start + 3] = 0x7f;
    put(dir.path(), *first, &changed);
    let problem = audit(dir.path()).problem;
    assert!(matches!(problem, Some(VerifyProblem::Frame { position, .. }) if position == span.position), "{problem:?}");
    put(dir.path(), *first, original);
    assert_eq!(audit(dir.path()).problem, None);
}

#[test]
fn a_cut_last_block_is_a_frame_problem_and_a_normal_open_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hashes = build(dir.path());
    let head = hashes.len() as u64 - 1;
    let blocks = all_blocks(dir.path());
    let (first, original) = blocks.last().expect("blocks").clone();
    let spans = spans(&original);
    let last = spans.last().expect("records").clone();
    let before_last = spans[spans.len() - 2].clone();
    assert_eq!(last.position, head);
    // Cut into the last hash, the last body, the last length field, and into
    // the record before.
    for cut_to in [
        original.len() - 1,
        original.len() - 20,
        last.body.start + 3,
        last.record.start + 2,
        before_last.body.start + 10,
    ] {
        let record = spans.iter().find(|s| s.record.end > cut_to).expect("a cut record").position;
        put(dir.path(), first, &original[..cut_to]);
        let problem = audit(dir.path()).problem;
        assert!(
            matches!(&problem, Some(VerifyProblem::Frame { position, .. }) if *position == record),
            "cut to {cut_to}: {problem:?}, expected record {record}"
        );
        let error = SledLog::open(dir.path(), OpenMode::Existing).err().expect("a normal open refuses a cut block");
        assert!(matches!(error, LedgerError::Corrupt { .. }), "{error}");
    }
    // Cut into the block header: named at the block's first position.
    put(dir.path(), first, &original[..HEADER_BYTES - 1]);
    let problem = audit(dir.path()).problem;
    assert!(matches!(&problem, Some(VerifyProblem::Frame { position, .. }) if *position == first), "{problem:?}");
    let error = SledLog::open(dir.path(), OpenMode::Existing).err().expect("a normal open refuses a cut header");
    assert!(matches!(error, LedgerError::Corrupt { position, .. } if position == first), "{error}");
    // Whole again, it opens and goes on.
    put(dir.path(), first, &original);
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("open");
    assert_eq!(log.durable_head().position, head);
    assert_eq!(log.durable_head().hash, hashes[head as usize]);
    let outcome = log.append_blocking(vec![fact(payment(99_999))]).expect("append");
    assert_eq!(outcome.positions, vec![head + 1]);
}

#[test]
fn a_missing_block_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let blocks = all_blocks(dir.path());
    let middle = blocks.len() / 2;
    let (removed, value) = blocks[middle].clone();
    let next = blocks[middle + 1].0;
    with_blocks(dir.path(), |tree| tree.remove(block::key(removed)).expect("remove"));
    assert_eq!(audit(dir.path()).problem, Some(VerifyProblem::Gap { expected: removed, found: next }));
    // With its index on disk a writing open reads only the tail (the
    // middle is verify's to check); rebuilding the index reads it all.
    assert_eq!(SledLog::open(dir.path(), OpenMode::Existing).expect("the tail is whole").opened_tail(), 0);
    remove_index(dir.path());
    let error = SledLog::open(dir.path(), OpenMode::Existing).err().expect("a normal open refuses a gap");
    assert!(matches!(error, LedgerError::Corrupt { position, .. } if position == next), "{error}");
    // The first block missing: the log must start at 1.
    put(dir.path(), removed, &value);
    let (first, first_value) = blocks[0].clone();
    with_blocks(dir.path(), |tree| tree.remove(block::key(first)).expect("remove"));
    let problem = audit(dir.path()).problem;
    assert!(
        matches!(problem, Some(VerifyProblem::Gap { expected: 1, .. }) | Some(VerifyProblem::Link { .. })),
        "{problem:?}"
    );
    assert!(SledLog::open(dir.path(), OpenMode::Existing).is_err());
    put(dir.path(), first, &first_value);
    assert_eq!(audit(dir.path()).problem, None);
}

/// What a crash between the units of a large append leaves: blocks of an
/// unfinished request (none marked complete) at the end. They were never
/// acknowledged, so a normal open drops them.
#[test]
fn trailing_incomplete_blocks_are_dropped_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hashes = build(dir.path());
    let blocks = all_blocks(dir.path());
    let flags = |value: &[u8]| value[16];
    // The last request (2000 events from 2021) spans several blocks; only
    // its last is complete, and so is every earlier request's last block.
    let last_request: Vec<_> = blocks.iter().rev().take_while(|(first, _)| *first >= 2021).collect();
    assert!(last_request.len() >= 3, "{} blocks", last_request.len());
    assert_eq!(flags(&last_request[0].1), COMPLETE);
    assert!(last_request[1..].iter().all(|(_, value)| flags(value) == 0));
    assert_eq!(flags(&blocks.iter().rev().find(|(first, _)| *first < 2021).expect("block").1), COMPLETE);
    // The request's last block never written: everything of it goes. The
    // process crashed, so `DIR/head` is the one of the last clean close,
    // before this request: here, none.
    with_blocks(dir.path(), |tree| tree.remove(block::key(last_request[0].0)).expect("remove"));
    std::fs::remove_file(dir.path().join("head")).expect("remove the anchor");
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("open recovers");
    assert_eq!(log.durable_head().position, 2020);
    assert_eq!(log.durable_head().hash, hashes[2020]);
    assert_eq!(log.verify(0, 0, &mut |_| {}).expect("verify").problem, None);
    drop(log);
    assert_eq!(all_blocks(dir.path()).last().map(|(first, _)| *first), Some(2020));
    // Its keys are free again: the same events are appended anew.
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("open");
    let outcome = log.append_blocking((2021..=2030).map(|n| fact(payment(n))).collect()).expect("append");
    assert_eq!(outcome.positions, (2021..=2030).collect::<Vec<_>>());
    assert_eq!(outcome.n_appended, 10);
    let outcome = log.append_blocking(vec![fact(payment_with_ref("after", 1))]).expect("append");
    assert_eq!(outcome.positions, vec![2031]);
    assert_eq!(log.verify(0, 0, &mut |_| {}).expect("verify").problem, None);
}

/// Removes the index on disk, so that the next writing open rebuilds it
/// from position 1 and so reads the whole log.
fn remove_index(dir: &Path) {
    match std::fs::remove_dir_all(dir.join("index")) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => panic!("remove the index: {error}"),
        _ => {}
    }
}

/// What opening a damaged ledger came to.
#[derive(Debug)]
enum Opened {
    Refused(String),
    /// Opened; the head and what verify said.
    Verified {
        head: u64,
        head_hash: Hash,
        report: VerifyReport,
    },
}

#[test]
fn a_cut_sled_file_is_refused_or_opens_as_a_verified_prefix() {
    let pristine = tempfile::tempdir().expect("tempdir");
    let hashes = build(pristine.path());
    let head = hashes.len() as u64 - 1;
    let len = std::fs::metadata(pristine.path().join("log/db")).expect("db file").len();
    let mut refused = 0;
    for cut_to in [len - 1, len - 100, len - 4096, len * 3 / 4, len / 2, len / 4, 4096, 100, 0] {
        let dir = tempfile::tempdir().expect("tempdir");
        common::copy_tree(pristine.path(), dir.path());
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("log/db"))
            .expect("open db file")
            .set_len(cut_to)
            .expect("truncate");
        let opened = catch_unwind(AssertUnwindSafe(|| match SledLog::open(dir.path(), OpenMode::Existing) {
            Err(error) => Opened::Refused(error.to_string()),
            Ok(log) => {
                let report = log.verify(0, 0, &mut |_| {}).expect("verify runs");
                Opened::Verified { head: log.durable_head().position, head_hash: log.durable_head().hash, report }
            }
        }));
        let opened = opened.unwrap_or_else(|_| panic!("cut to {cut_to} of {len} bytes: a panic escaped"));
        match opened {
            Opened::Refused(reason) => {
                println!("cut to {cut_to}: refused: {reason}");
                refused += 1;
            }
            Opened::Verified { head: got, head_hash, report } => {
                assert_eq!(report.problem, None, "cut to {cut_to}: opened but does not verify");
                assert_eq!(report.n_records, got, "cut to {cut_to}");
                println!("cut to {cut_to}: opened at head {got}");
                assert!(got <= head, "cut to {cut_to}: head {got} beyond the original {head}");
                // A prefix of the original chain, not some other log.
                assert_eq!(head_hash, hashes[got as usize], "cut to {cut_to}");
            }
        }
    }
    println!("{refused} of 9 cut files refused");
}

/// Flips one byte in the middle of every copy of `pattern` in sled's data
/// file; returns how many copies there were.
fn flip_in_sled_file(dir: &Path, pattern: &[u8]) -> usize {
    let path = dir.join("log/db");
    let mut bytes = std::fs::read(&path).expect("read sled's file");
    let mut n_copies = 0;
    let mut at = 0;
    while at + pattern.len() <= bytes.len() {
        if &bytes[at..at + pattern.len()] == pattern {
            bytes[at + pattern.len() / 2] ^= 0x20;
            n_copies += 1;
            at += pattern.len();
        } else {
            at += 1;
        }
    }
    std::fs::write(&path, bytes).expect("write sled's file");
    n_copies
}

/// A byte changed in sled's own file (below the blocks, where sled's
/// checksums find it): every open says the store is damaged and to restore
/// from an export, never sled's bare text; an audit that can open the store
/// names the last position sled could read, whose hash is the original's.
#[test]
fn a_flipped_byte_in_sleds_file_is_a_damaged_store_and_verify_names_the_last_readable_position() {
    let pristine = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(pristine.path(), OpenMode::Create).expect("create");
    let mut n = 0;
    for size in [1500, 500, 1, 1, 1, 2000, 6000, 6000] {
        let events = (0..size).map(|_| {
            n += 1;
            fact(payment(n))
        });
        log.append_blocking(events.collect()).expect("append");
    }
    let mut hashes = vec![log.genesis_hash()];
    log.scan(1, u64::MAX, |envelope| {
        hashes.push(envelope.hash);
        Ok(())
    })
    .expect("scan");
    drop(log);
    // Blocks are stored compressed: the bytes to change are a stretch of
    // the stored block that holds the target record.
    let blocks = all_blocks(pristine.path());
    let stored_around = |target: u64| -> Vec<u8> {
        let (_, value) = blocks.iter().rev().find(|(first, _)| *first <= target).expect("a block holds it");
        assert!(value[16] & block::COMPRESSED != 0, "blocks are stored compressed");
        let middle = value.len() / 2;
        value[middle - 32..middle + 32].to_vec()
    };
    // Reopened, sled keeps a snapshot and reads the pages of blocks only
    // when they are wanted.
    for _ in 0..3 {
        drop(SledLog::open(pristine.path(), OpenMode::Existing).expect("reopen"));
    }
    let head = hashes.len() as u64 - 1;
    let mut n_named = 0;
    for target in [head / 4, head / 2, head * 3 / 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        common::copy_tree(pristine.path(), dir.path());
        assert!(flip_in_sled_file(dir.path(), &stored_around(target)) > 0, "record {target} not found");
        // An index rebuilt from position 1 reads every page of the log.
        remove_index(dir.path());
        let error = SledLog::open(dir.path(), OpenMode::Existing).err().expect("a damaged store is refused");
        assert!(matches!(error, LedgerError::StoreDamaged { .. }), "record {target}: {error}");
        let message = error.to_string();
        assert!(message.contains("the ledger store is damaged"), "{message}");
        assert!(message.contains("restore from an export (`yibao import --restore FILE`)"), "{message}");
        assert!(!message.contains("backtrace"), "{message}");
        match SledLog::open(dir.path(), OpenMode::Audit) {
            Err(error) => assert!(matches!(error, LedgerError::StoreDamaged { .. }), "record {target}: {error}"),
            Ok(audit) => {
                let report = audit.verify(0, 0, &mut |_| {}).expect("verify runs");
                let Some(VerifyProblem::Unreadable { after, .. }) = report.problem else {
                    panic!("record {target}: {:?}", report.problem)
                };
                assert!(after < target, "record {target}: read up to {after}");
                assert_eq!(report.last_good.position, after);
                assert_eq!(report.last_good.hash, hashes[after as usize]);
                assert_eq!(report.n_records, after);
                println!("record {target} damaged: verify read up to position {after}");
                n_named += 1;
            }
        }
    }
    assert!(n_named > 0, "no flip left the store open for verify to name a position");
}

/// Records that were acknowledged and closed over, then lost from sled's
/// files (sled's recovery stops at a damaged segment without an error):
/// the anchor (`DIR/head`) says so. An open for writing refuses the store;
/// an audit names the last position it could read.
#[test]
fn a_log_shorter_than_its_anchor_is_a_damaged_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hashes = build(dir.path());
    let blocks = all_blocks(dir.path());
    let last_request: Vec<u64> =
        blocks.iter().rev().map(|(first, _)| *first).take_while(|first| *first >= 2021).collect();
    with_blocks(dir.path(), |tree| {
        for first in &last_request {
            tree.remove(block::key(*first)).expect("remove");
        }
    });
    let refused = SledLog::open(dir.path(), OpenMode::Existing).err().expect("a shorter log is refused");
    assert!(
        matches!(&refused, LedgerError::StoreDamaged { detail } if detail.contains("only to position 2020")),
        "{refused}"
    );
    let report = audit(dir.path());
    assert!(
        matches!(&report.problem, Some(VerifyProblem::Unreadable { after: 2020, detail }) if detail.contains("last closed")),
        "{:?}",
        report.problem
    );
    assert_eq!(report.last_good.hash, hashes[2020]);
}
