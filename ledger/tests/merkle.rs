//! The Merkle tree module against a reference written straight from RFC
//! 9162's recursive definitions (MTH, PATH, PROOF over lists of leaves):
//! roots, inclusion and consistency proofs equal the reference's and verify;
//! any change to a proof, index, size or root makes verification fail.

use ledger::envelope::{sm3, Hash};
use ledger::merkle::{self, HashSource, ProofError};
use proptest::prelude::*;

// ---- the reference: RFC 9162 §2.1, word for word ---------------------------

fn reference_leaf(leaf: &Hash) -> Hash {
    sm3(&[&[0x00][..], leaf].concat())
}

fn reference_node(left: &Hash, right: &Hash) -> Hash {
    sm3(&[&[0x01][..], left, right].concat())
}

/// The largest power of two smaller than n.
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sm3(b""),
        1 => reference_leaf(&leaves[0]),
        n => {
            let k = k_of(n);
            reference_node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = k_of(n);
    if m < k {
        [path(m, &leaves[..k]), vec![mth(&leaves[k..])]].concat()
    } else {
        [path(m - k, &leaves[k..]), vec![mth(&leaves[..k])]].concat()
    }
}

fn proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = k_of(n);
    if m <= k {
        [subproof(m, &leaves[..k], whole), vec![mth(&leaves[k..])]].concat()
    } else {
        [subproof(m - k, &leaves[k..], false), vec![mth(&leaves[..k])]].concat()
    }
}

// ---- helpers ---------------------------------------------------------------

/// Leaves as the log has them: chain hashes, here SM3 of the index.
fn leaves(n: usize) -> Vec<Hash> {
    (0..n).map(|i| sm3(&(i as u64).to_be_bytes())).collect()
}

fn leaf_hashes(leaves: &[Hash]) -> Vec<Hash> {
    leaves.iter().map(reference_leaf).collect()
}

fn flip_bit(proof: &[Hash], bit: usize) -> Vec<Hash> {
    let mut flipped = proof.to_vec();
    let at = bit % (proof.len() * 256);
    flipped[at / 256][(at % 256) / 8] ^= 1 << (at % 8);
    flipped
}

/// A tree of 1..=70 leaves and an index in it.
fn tree_and_index() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=70).prop_flat_map(|n| (Just(n), 0..n))
}

/// Sizes 1 ≤ old ≤ new ≤ 70.
fn old_and_new() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=70).prop_flat_map(|n| (1..=n, Just(n)))
}

// ---- properties ------------------------------------------------------------

proptest! {
    #[test]
    fn root_equals_reference(n in 0usize..=130) {
        let leaves = leaves(n);
        prop_assert_eq!(merkle::root(&leaves), mth(&leaves));
        prop_assert_eq!(merkle::root_of(n as u64, leaf_hashes(&leaves).as_slice()), Ok(mth(&leaves)));
    }

    #[test]
    fn inclusion_proof_equals_reference_and_verifies((n, index) in tree_and_index()) {
        let leaves = leaves(n);
        let hashes = leaf_hashes(&leaves);
        let proof = merkle::inclusion_proof(index as u64, n as u64, hashes.as_slice()).expect("the index is in the tree");
        prop_assert_eq!(&proof, &path(index, &leaves));
        prop_assert_eq!(merkle::verify_inclusion(&hashes[index], index as u64, n as u64, &proof, &mth(&leaves)), Ok(()));
    }

    #[test]
    fn altered_inclusion_fails((n, index) in tree_and_index(), bit in any::<usize>(), other in any::<usize>()) {
        let all_leaves = leaves(80);
        let leaves = &all_leaves[..n];
        let hashes = leaf_hashes(leaves);
        let root = mth(leaves);
        let proof = merkle::inclusion_proof(index as u64, n as u64, hashes.as_slice()).expect("the index is in the tree");
        let (index_u, n_u) = (index as u64, n as u64);
        if !proof.is_empty() {
            prop_assert!(merkle::verify_inclusion(&hashes[index], index_u, n_u, &flip_bit(&proof, bit), &root).is_err());
        }
        let other_index = other % n;
        if other_index != index {
            prop_assert!(merkle::verify_inclusion(&hashes[index], other_index as u64, n_u, &proof, &root).is_err());
        }
        // Another size is checked against that tree's own root: a tree head
        // names size and root together, and trees of one shape along the
        // path (33 and 34 leaves for index 0) take the same proof.
        let other_size = index + 1 + other % (80 - index);
        if other_size != n {
            let other_root = mth(&all_leaves[..other_size]);
            prop_assert!(merkle::verify_inclusion(&hashes[index], index_u, other_size as u64, &proof, &other_root).is_err());
        }
        let other_root = mth(&leaves[..index]);
        prop_assert!(merkle::verify_inclusion(&hashes[index], index_u, n_u, &proof, &other_root).is_err());
        let other_leaf = merkle::leaf_hash(b"another record");
        prop_assert!(merkle::verify_inclusion(&other_leaf, index_u, n_u, &proof, &root).is_err());
    }

    #[test]
    fn consistency_proof_equals_reference_and_verifies((old, new) in old_and_new()) {
        let leaves = leaves(new);
        let hashes = leaf_hashes(&leaves);
        let proof = merkle::consistency_proof(old as u64, new as u64, hashes.as_slice()).expect("old is not past new");
        prop_assert_eq!(&proof, &self::proof(old, &leaves));
        let (old_root, new_root) = (mth(&leaves[..old]), mth(&leaves));
        prop_assert_eq!(merkle::verify_consistency(old as u64, new as u64, &old_root, &new_root, &proof), Ok(()));
    }

    #[test]
    fn altered_consistency_fails((old, new) in old_and_new(), bit in any::<usize>(), other in any::<usize>()) {
        let all_leaves = leaves(80);
        let leaves = &all_leaves[..new];
        let hashes = leaf_hashes(leaves);
        let proof = merkle::consistency_proof(old as u64, new as u64, hashes.as_slice()).expect("old is not past new");
        let (old_root, new_root) = (mth(&leaves[..old]), mth(leaves));
        let (old_u, new_u) = (old as u64, new as u64);
        if !proof.is_empty() {
            prop_assert!(merkle::verify_consistency(old_u, new_u, &old_root, &new_root, &flip_bit(&proof, bit)).is_err());
        }
        // Other sizes with their own trees' roots (see altered_inclusion_fails).
        let other_old = 1 + other % new;
        if other_old != old {
            let other_root = mth(&leaves[..other_old]);
            prop_assert!(merkle::verify_consistency(other_old as u64, new_u, &other_root, &new_root, &proof).is_err());
        }
        let other_new = old + other % (81 - old);
        if other_new != new {
            let other_root = mth(&all_leaves[..other_new]);
            prop_assert!(merkle::verify_consistency(old_u, other_new as u64, &old_root, &other_root, &proof).is_err());
        }
        let wrong_root = sm3(b"another tree");
        prop_assert!(merkle::verify_consistency(old_u, new_u, &wrong_root, &new_root, &proof).is_err());
        prop_assert!(merkle::verify_consistency(old_u, new_u, &old_root, &wrong_root, &proof).is_err());
    }

    /// Whatever the sizes, index and proof, nothing panics.
    #[test]
    fn arbitrary_input_never_panics(
        size_a in 0u64..=u64::MAX, size_b in 0u64..=u64::MAX, small_a in 0u64..20, small_b in 0u64..20,
        proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70), root in any::<[u8; 32]>(),
    ) {
        let hashes = leaf_hashes(&leaves(10));
        for (a, b) in [(size_a, size_b), (small_a, small_b), (small_a, size_b), (size_a, small_b)] {
            let _ = merkle::verify_inclusion(&root, a, b, &proof, &root);
            let _ = merkle::verify_consistency(a, b, &root, &root, &proof);
            let _ = merkle::inclusion_proof(a, b, hashes.as_slice());
            let _ = merkle::consistency_proof(a, b, hashes.as_slice());
            let _ = merkle::root_of(a.min(40), hashes.as_slice());
        }
    }
}

// ---- known vectors ---------------------------------------------------------

#[test]
fn empty_tree_root_is_sm3_of_nothing() {
    assert_eq!(hex::encode(merkle::root(&[])), "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b");
}

const KNOWN_ROOT_1: &str = "5d4a7d114ef875de3750d0715d30713e91e7277d7b3c8512ae933d5a1729d72f";
const KNOWN_ROOT_2: &str = "6cc9f68d2b671c387ff7682994e38515f42859c6c6b6ac87885e84a739bb872e";
const KNOWN_ROOT_3: &str = "2ab29a2d0e559a7885e6faef0e671587612b77a3fcb86a4c20d6e5d7ff3c1f9b";
const KNOWN_ROOT_5: &str = "9644a66d4499da14d3ce2951c59d71fec32444a353df740cf57c51dd2dbbb6c0";
const KNOWN_ROOT_7: &str = "60a1c2b15bae96d139e671d720fd6cebff92c77f6a847d8338df4755d21c637c";
const KNOWN_ROOT_8: &str = "e61754805520c923155c27128f8a2ee5b6f17b7f73ac172434e09827baab43da";
const KNOWN_INCLUSION_2_OF_7: [&str; 3] = [
    "c297c21a348ed75b9ceb65cae17ab76f5c9a07478fe2872bc271f55546c0cddd",
    "6cc9f68d2b671c387ff7682994e38515f42859c6c6b6ac87885e84a739bb872e",
    "6927e98dc9cf7155c5b0a79fcbccc2831e5e7c0edecc6a4fddd7c68b128469b6",
];
const KNOWN_CONSISTENCY_3_TO_7: [&str; 4] = [
    "34680ed0b630c8a3acec1add6ae8a33999fd99e2cd53f6d59363f66058134165",
    "c297c21a348ed75b9ceb65cae17ab76f5c9a07478fe2872bc271f55546c0cddd",
    "6cc9f68d2b671c387ff7682994e38515f42859c6c6b6ac87885e84a739bb872e",
    "6927e98dc9cf7155c5b0a79fcbccc2831e5e7c0edecc6a4fddd7c68b128469b6",
];

/// Roots of the trees over 1..=8 leaves of `leaves` (SM3 of the
/// big-endian index), as the reference computes them.
#[test]
fn small_tree_roots_match_known_vectors() {
    let known = [
        (1, KNOWN_ROOT_1),
        (2, KNOWN_ROOT_2),
        (3, KNOWN_ROOT_3),
        (5, KNOWN_ROOT_5),
        (7, KNOWN_ROOT_7),
        (8, KNOWN_ROOT_8),
    ];
    for (n, root) in known {
        let leaves = leaves(n);
        assert_eq!(hex::encode(mth(&leaves)), root, "reference root of {n} leaves");
        assert_eq!(hex::encode(merkle::root(&leaves)), root, "root of {n} leaves");
    }
}

/// The inclusion proof of leaf 2 in the tree of 7, and the consistency proof
/// from 3 to 7, as the reference computes them.
#[test]
fn small_proofs_match_known_vectors() {
    let hashes = leaf_hashes(&leaves(7));
    let inclusion = merkle::inclusion_proof(2, 7, hashes.as_slice()).expect("2 is in 7");
    let inclusion: Vec<String> = inclusion.iter().map(hex::encode).collect();
    assert_eq!(inclusion, KNOWN_INCLUSION_2_OF_7);
    let consistency = merkle::consistency_proof(3, 7, hashes.as_slice()).expect("3 is below 7");
    let consistency: Vec<String> = consistency.iter().map(hex::encode).collect();
    assert_eq!(consistency, KNOWN_CONSISTENCY_3_TO_7);
}

/// A function from index to leaf hash is a source too, and its failure is
/// the proof's.
#[test]
fn a_function_is_a_hash_source() {
    let leaves = leaves(9);
    let hashes = leaf_hashes(&leaves);
    let read = |index: u64| hashes.as_slice().leaf_hash(index);
    assert_eq!(merkle::root_of(9, &read), Ok(mth(&leaves)));
    assert_eq!(merkle::inclusion_proof(4, 9, &read), Ok(path(4, &leaves)));
    assert_eq!(merkle::consistency_proof(5, 9, &read), Ok(proof(5, &leaves)));
    let failing = |index: u64| Err(ProofError::Source { index, detail: "the log is closed".to_owned() });
    assert!(matches!(merkle::inclusion_proof(4, 9, &failing), Err(ProofError::Source { .. })));
}

// ---- edges and the errors they name ----------------------------------------

#[test]
fn errors_name_what_failed() {
    let leaves = leaves(6);
    let hashes = leaf_hashes(&leaves);
    let root = mth(&leaves);
    assert_eq!(
        merkle::inclusion_proof(6, 6, hashes.as_slice()),
        Err(ProofError::IndexOutOfRange { index: 6, tree_size: 6 })
    );
    assert_eq!(
        merkle::verify_inclusion(&hashes[0], 0, 0, &[], &root),
        Err(ProofError::IndexOutOfRange { index: 0, tree_size: 0 })
    );
    let proof = merkle::inclusion_proof(1, 6, hashes.as_slice()).expect("1 is in 6");
    assert_eq!(
        merkle::verify_inclusion(&hashes[1], 1, 6, &proof[1..], &root),
        Err(ProofError::WrongProofLength { expected: 3, actual: 2 })
    );
    assert_eq!(merkle::verify_inclusion(&hashes[2], 1, 6, &proof, &root), Err(ProofError::RootMismatch));
    assert_eq!(
        merkle::consistency_proof(7, 6, hashes.as_slice()),
        Err(ProofError::OldSizeExceedsNew { old_size: 7, new_size: 6 })
    );
    assert_eq!(
        merkle::verify_consistency(7, 6, &root, &root, &[]),
        Err(ProofError::OldSizeExceedsNew { old_size: 7, new_size: 6 })
    );
    assert!(matches!(merkle::inclusion_proof(3, 9, hashes.as_slice()), Err(ProofError::Source { index: 6.., .. })));
}

#[test]
fn empty_and_equal_trees_are_consistent_without_a_proof() {
    let leaves = leaves(5);
    let hashes = leaf_hashes(&leaves);
    let root = mth(&leaves);
    let empty = merkle::empty_root();
    assert_eq!(merkle::consistency_proof(0, 5, hashes.as_slice()), Ok(Vec::new()));
    assert_eq!(merkle::consistency_proof(5, 5, hashes.as_slice()), Ok(Vec::new()));
    assert_eq!(merkle::verify_consistency(0, 5, &empty, &root, &[]), Ok(()));
    assert_eq!(merkle::verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
    assert_eq!(merkle::verify_consistency(5, 5, &root, &root, &[]), Ok(()));
    assert_eq!(merkle::verify_consistency(0, 5, &root, &root, &[]), Err(ProofError::OldRootMismatch));
    assert_eq!(merkle::verify_consistency(5, 5, &root, &empty, &[]), Err(ProofError::NewRootMismatch));
    assert_eq!(
        merkle::verify_consistency(5, 5, &root, &root, &[root]),
        Err(ProofError::WrongProofLength { expected: 0, actual: 1 })
    );
}

/// The largest sizes are answered by their proof's length, not by an
/// overflow: index 0 of 2^63 + 1 leaves has a path of 64 hashes, the last
/// of 2^64 - 1 leaves one of 63 (a left turn at every level but the leaf's).
#[test]
fn the_largest_sizes_are_refused_by_length() {
    let leaf = merkle::leaf_hash(b"a record");
    let huge_size = (1u64 << 63) + 1;
    assert_eq!(
        merkle::verify_inclusion(&leaf, 0, huge_size, &[], &leaf),
        Err(ProofError::WrongProofLength { expected: 64, actual: 0 })
    );
    assert_eq!(
        merkle::verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &[], &leaf),
        Err(ProofError::WrongProofLength { expected: 63, actual: 0 })
    );
    assert!(merkle::verify_consistency(1, u64::MAX, &leaf, &leaf, &[leaf]).is_err());
    assert!(merkle::verify_consistency(u64::MAX - 1, u64::MAX, &leaf, &leaf, &[]).is_err());
}
