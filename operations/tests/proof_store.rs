//! The Merkle tree store (`DIR/merkle/tree`) against the naive computation
//! over every leaf: equal proofs and heads for any size and position, after
//! appends in steps; caught up incrementally equal to built from scratch;
//! a damaged, cut, foreign or disagreeing store noticed, rebuilt and right.

use ledger::event::{Payer, PaymentReceived};
use ledger::{merkle, BeijingTime, Event, Hash, Identity, LogStore, Money, NewEvent, OpenMode};
use operations::proof::{self, TreeStore, CHUNK_LEAVES};
use operations::{Ledger, Location};
use proptest::prelude::*;
use std::path::Path;

fn ledger_in(dir: &Path) -> Ledger {
    Ledger::open(&Location::sled(dir), OpenMode::Create).expect("open")
}

/// Appends `n` payments in one request, numbered from `first`.
fn append(ledger: &Ledger, first: u32, n: u32) {
    let events = (first..first + n)
        .map(|k| {
            let birth = chrono::NaiveDate::from_ymd_opt(1960 + (k % 50) as i32, 1 + k % 12, 1 + k % 28).expect("date");
            let payment = PaymentReceived {
                person: Identity::resident("520500".parse().expect("region"), birth, (k % 1000) as u16),
                coverage_year: 2025,
                amount: Money::from_yuan(400),
                channel: "wechat".into(),
                channel_ref: format!("WX{k}"),
                payer: Payer::Myself,
                paid_at: BeijingTime(1_730_000_000_000_000 + i64::from(k)),
            };
            NewEvent::fact(Event::PaymentReceivedV1(payment), "test")
        })
        .collect();
    ledger.log().append_blocking(events).expect("append");
}

/// Every chain hash of the log, read the slow way.
fn chain_hashes(log: &dyn LogStore) -> Vec<Hash> {
    log.stored_records(1).expect("records").map(|record| record.expect("record").hash).collect()
}

/// The naive answers over the first `size` leaves, checked against the
/// operations' answers (through the store) for `position` and `old_size`.
fn check_against_naive(ledger: &Ledger, size: u64, position: u64, old_size: u64) {
    let chain = chain_hashes(ledger.log());
    let leaves: Vec<Hash> = chain[..size as usize].iter().map(|hash| merkle::leaf_hash(hash)).collect();
    let root = hex::encode(merkle::root(&chain[..size as usize]));

    let head = proof::tree_head(ledger, Some(size)).expect("tree head");
    assert_eq!((head.tree_size, &head.root), (size, &root), "tree head of {size}");

    let inclusion = proof::inclusion(ledger, position, Some(size)).expect("inclusion");
    let naive = merkle::inclusion_proof(position - 1, size, leaves.as_slice()).expect("naive path");
    assert_eq!(inclusion.path, naive.iter().map(hex::encode).collect::<Vec<_>>(), "path of {position} in {size}");
    assert_eq!(inclusion.chain_hash, hex::encode(chain[position as usize - 1]));
    assert_eq!(inclusion.root, root);
    inclusion.verify().expect("the inclusion proof verifies");

    let consistency = proof::consistency(ledger, old_size, Some(size)).expect("consistency");
    let naive = merkle::consistency_proof(old_size, size, leaves.as_slice()).expect("naive consistency");
    assert_eq!(consistency.path, naive.iter().map(hex::encode).collect::<Vec<_>>(), "{old_size} → {size}");
    assert_eq!(consistency.old_root, hex::encode(merkle::root(&chain[..old_size as usize])));
    assert_eq!(consistency.new_root, root);
    consistency.verify().expect("the consistency proof verifies");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn proofs_through_the_store_equal_the_naive_ones_after_appends_in_steps(
        steps in proptest::collection::vec(1u32..700, 1..5),
        picks in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0), 3),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = ledger_in(dir.path());
        let mut appended = 0;
        for step in steps {
            append(&ledger, appended, step);
            appended += step;
            let head = u64::from(appended);
            for &(size_pick, position_pick, old_pick) in &picks {
                let size = 1 + (size_pick * head as f64) as u64 % head;
                let position = 1 + (position_pick * size as f64) as u64 % size;
                let old_size = (old_pick * (size + 1) as f64) as u64 % (size + 1);
                check_against_naive(&ledger, size, position, old_size);
            }
            // The head itself, with its last position.
            check_against_naive(&ledger, head, head, head / 2);
        }
    }
}

#[test]
fn a_store_caught_up_in_steps_equals_one_built_from_scratch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger_in(dir.path());
    let path = TreeStore::path_in(dir.path());
    let mut appended = 0;
    for step in [100, 300, 5, 700, 256, 1, 174, 1] {
        append(&ledger, appended, step);
        appended += step;
        let store = TreeStore::open(dir.path(), ledger.log()).expect("open");
        assert_eq!(store.n_leaves(), u64::from(appended) / CHUNK_LEAVES * CHUNK_LEAVES);
    }
    let incremental = std::fs::read(&path).expect("store");
    let scratch_roots = TreeStore::rebuild(dir.path(), ledger.log()).expect("rebuild").chunk_roots().to_vec();
    assert_eq!(std::fs::read(&path).expect("store"), incremental, "the same bytes");
    let chain = chain_hashes(ledger.log());
    let naive_roots: Vec<Hash> = chain.chunks_exact(CHUNK_LEAVES as usize).map(merkle::root).collect();
    assert_eq!(scratch_roots, naive_roots);
}

/// A ledger of 1,100 records whose store is written, and the store's path.
fn ledger_with_store(dir: &Path) -> (Ledger, std::path::PathBuf) {
    let ledger = ledger_in(dir);
    append(&ledger, 0, 1100);
    proof::keep_tree_current(&ledger).expect("store");
    (ledger, TreeStore::path_in(dir))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// What a kill or a bad disk can leave in place of the store (a file
    /// cut anywhere, a byte changed anywhere) is noticed and rebuilt.
    #[test]
    fn a_cut_or_damaged_store_is_rebuilt_and_answers_right(at in 0.0f64..1.0, cut in any::<bool>(), bit in 0u8..8) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ledger, path) = ledger_with_store(dir.path());
        let good = std::fs::read(&path).expect("store");
        let offset = (at * good.len() as f64) as usize;
        let mut bad = good.clone();
        if cut {
            bad.truncate(offset);
        } else {
            bad[offset] ^= 1 << bit;
        }
        std::fs::write(&path, &bad).expect("damage");
        // A temporary file a killed save left beside it changes nothing.
        std::fs::write(path.with_file_name("tree.999999.tmp"), &good[..good.len() / 2]).expect("leftover");
        check_against_naive(&ledger, 1100, 700, 300);
        prop_assert_eq!(std::fs::read(&path).expect("store"), good);
    }
}

#[test]
fn a_store_of_another_ledger_is_rebuilt() {
    let (ours, theirs) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (ledger, path) = ledger_with_store(ours.path());
    let good = std::fs::read(&path).expect("store");
    let other = ledger_in(theirs.path());
    append(&other, 5000, 800);
    proof::keep_tree_current(&other).expect("their store");
    std::fs::copy(TreeStore::path_in(theirs.path()), &path).expect("copy");
    check_against_naive(&ledger, 1100, 3, 1024);
    assert_eq!(std::fs::read(&path).expect("store"), good);
}

#[test]
fn a_store_whose_chunk_root_disagrees_with_the_log_is_rebuilt_when_a_proof_reads_the_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, path) = ledger_with_store(dir.path());
    let good = std::fs::read(&path).expect("store");
    // Chunk 1's root changed and the checksum written anew: only reading
    // the chunk's records tells.
    let mut bad = good.clone();
    let root_of_chunk_1 = 56 + 64;
    bad[root_of_chunk_1] ^= 0xff;
    let body = bad.len() - 32;
    let checksum = ledger::envelope::sm3(&bad[..body]);
    bad[body..].copy_from_slice(&checksum);
    std::fs::write(&path, &bad).expect("tamper");
    let chain = chain_hashes(ledger.log());
    let inclusion = proof::inclusion(&ledger, 300, Some(1100)).expect("inclusion");
    assert_eq!(inclusion.root, hex::encode(merkle::root(&chain[..1100])), "answered from the rebuilt store");
    check_against_naive(&ledger, 1100, 300, 700);
    assert_eq!(std::fs::read(&path).expect("store"), good);
}

#[test]
fn a_tree_size_or_position_past_the_head_names_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger_in(dir.path());
    append(&ledger, 0, 10);
    let error = proof::inclusion(&ledger, 11, None).expect_err("past the head");
    assert!(
        error.to_string().contains("position 11") && error.to_string().contains("head is at position 10"),
        "{error}"
    );
    let error = proof::tree_head(&ledger, Some(12)).expect_err("past the head");
    assert!(error.to_string().contains("tree size 12"), "{error}");
    let error = proof::consistency(&ledger, 11, None).expect_err("past the head");
    assert!(error.to_string().contains("old tree size 11"), "{error}");
}

/// The service's held store: opened once, then extended in memory as the
/// log grows, answering as the naive tree does at every step; held against
/// another ledger (a restore under a running process), it opens again
/// rather than answering from the first ledger's chunks.
#[test]
fn a_held_store_follows_the_log_and_drops_another_ledgers_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = ledger_in(dir.path());
    let held = proof::HeldTree::default();
    let mut appended = 0;
    for step in [300u32, 257, 600, 1] {
        append(&ledger, appended, step);
        appended += step;
        let size = u64::from(appended);
        let head = held.answer(dir.path(), ledger.log(), None, proof::tree_head_of).expect("head");
        let naive = hex::encode(merkle::root(&chain_hashes(ledger.log())));
        assert_eq!((head.tree_size, head.root), (size, naive), "after {appended} records");
        let inclusion =
            held.answer(dir.path(), ledger.log(), None, |view| proof::inclusion_of(view, 1)).expect("proof");
        assert_eq!(inclusion.root, hex::encode(merkle::root(&chain_hashes(ledger.log()))));
    }
    drop(ledger);

    // Another ledger in another directory, answered by the same held store
    // with that directory's tree file: its own root, not the first's.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ledger_in(other_dir.path());
    append(&other, 5_000, 700);
    let head = held.answer(other_dir.path(), other.log(), None, proof::tree_head_of).expect("head");
    assert_eq!(head.root, hex::encode(merkle::root(&chain_hashes(other.log()))));
}
