//! The raw reading of a log's files when copies disagree: an append a
//! crash cut (incomplete blocks, never acknowledged) left in sled's files
//! after recovery removed it is not taken as records, and once other
//! records were appended at its positions, the chain that reaches the
//! furthest complete append wins and the position is named.

mod common;

use common::{fact, payment, registration};
use ledger::log::block::{self, HEADER_BYTES};
use ledger::log::salvage::Salvage;
use ledger::{OpenMode, SledLog};

#[test]
fn a_removed_unfinished_append_is_left_out_and_loses_to_the_append_written_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path(), OpenMode::Create).expect("create");
    log.append_blocking((1..=100).map(|n| fact(payment(n))).collect()).expect("append");
    drop(log);
    // The next append, made in a copy of the ledger, as a crash would have
    // left it: its block not complete (the flags are outside the chain),
    // removed from sled by recovery, a copy left in sled's files (here a
    // file of its own).
    let copy = tempfile::tempdir().expect("tempdir");
    common::copy_tree(dir.path(), copy.path());
    let log = SledLog::open(copy.path(), OpenMode::Existing).expect("open the copy");
    log.append_blocking((101..=150).map(|n| fact(payment(n))).collect()).expect("append");
    drop(log);
    let db = ledger::log::open_store(copy.path()).expect("sled");
    let blocks = db.open_tree("blocks").expect("tree");
    let mut stale = blocks.get(block::key(101)).expect("read").expect("the append's block").to_vec();
    drop((blocks, db));
    // Stored compressed: the flags and the chain are outside what is compressed.
    assert_eq!(stale[HEADER_BYTES - 33], block::COMPLETE | block::COMPRESSED, "flags of a complete block");
    stale[HEADER_BYTES - 33] = block::COMPRESSED;
    std::fs::write(dir.path().join("log").join("stale-copy"), &stale).expect("write the copy");

    let found = Salvage::read(dir.path()).expect("salvage");
    assert_eq!((found.n_records, found.n_unfinished, found.unbroken_to), (100, 50, 100));
    assert!(found.gaps.is_empty() && found.first_break().is_none(), "{found:?}");

    // Other facts appended at the same positions, in a complete append.
    let log = SledLog::open(dir.path(), OpenMode::Existing).expect("reopen");
    log.append_blocking((1..=30).map(|n| fact(registration(n))).collect()).expect("append");
    let head = log.durable_head();
    assert_eq!(head.position, 130);
    drop(log);
    let found = Salvage::read(dir.path()).expect("salvage");
    // The cut append's records past the new head (131..150) are still
    // records of an append never finished: left out.
    assert_eq!((found.n_records, found.n_unfinished, found.unbroken_to), (130, 20, 130), "{found:?}");
    assert_eq!(found.last, Some(head), "the append written again is taken");
    assert_eq!(found.conflicts, vec![101], "the stale copy is named");
    let mut n_read = 0;
    found
        .records(&mut |record| {
            n_read += 1;
            assert_eq!(record.position, n_read);
            Ok(())
        })
        .expect("records");
    assert_eq!(n_read, 130);
}
