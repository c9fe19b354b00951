//! The Merkle tree over the log, in the shape of RFC 9162 (Certificate
//! Transparency v2) §2.1 with SM3 as the hash: inclusion and consistency
//! proofs and their verification. Pure algorithms: no storage, no I/O.
//!
//! * leaf hash = SM3(0x00 || leaf), interior node = SM3(0x01 || left || right);
//! * a tree of n > 1 leaves splits at k, the largest power of two below n:
//!   the left subtree holds leaves `[0, k)`, the right one `[k, n)`;
//! * the root of the empty tree is SM3 of the empty string.
//!
//! The leaves of the log's tree are the records' chain hashes
//! (`Envelope::hash`, 32 bytes) in position order: leaf index i is position
//! i + 1. The chain hash already commits to the record's bytes and to every
//! record before it, so a tree over it needs nothing but the 32 bytes the
//! log keeps anyway, and an inclusion proof of a position proves its
//! record's chain hash.
//!
//! Proof generation reads hashes through a [`HashSource`]: a slice of leaf
//! hashes or a function from index to leaf hash now, later a store of
//! subtree hashes that answers
//! [`HashSource::subtree_hash`] without reading every leaf. Verification
//! needs only the proof and a tree head, and costs O(log n) hashes.

use crate::envelope::Hash;
use sm3::{Digest, Sm3};

/// Domain separation of RFC 9162 §2.1.1: a leaf is never taken for a node.
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("leaf index {index} is out of range of a tree of {tree_size} leaves")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("the old tree size {old_size} is larger than the new tree size {new_size}")]
    OldSizeExceedsNew { old_size: u64, new_size: u64 },
    #[error("the proof has {actual} hashes, a proof for these sizes has {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    #[error("the root computed from the proof does not match the given root")]
    RootMismatch,
    #[error("the old root computed from the proof does not match the given old root")]
    OldRootMismatch,
    #[error("the new root computed from the proof does not match the given new root")]
    NewRootMismatch,
    #[error("the hash source has no hash for leaf index {index}: {detail}")]
    Source { index: u64, detail: String },
}

/// Where proof generation reads the tree's hashes.
pub trait HashSource {
    /// The leaf hash (`SM3(0x00 || leaf)`) at `index`.
    fn leaf_hash(&self, index: u64) -> Result<Hash, ProofError>;

    /// The root of the subtree over leaves `[start, start + size)`, size ≥ 1.
    /// The default reads every leaf; a store of subtree hashes overrides it.
    fn subtree_hash(&self, start: u64, size: u64) -> Result<Hash, ProofError> {
        if size <= 1 {
            return self.leaf_hash(start);
        }
        let split = split_point(size);
        let left = self.subtree_hash(start, split)?;
        let right = self.subtree_hash(start + split, size - split)?;
        Ok(node_hash(&left, &right))
    }
}

/// Leaf hashes held in memory, index i at `[i]`.
impl HashSource for [Hash] {
    fn leaf_hash(&self, index: u64) -> Result<Hash, ProofError> {
        usize::try_from(index)
            .ok()
            .and_then(|at| self.get(at))
            .copied()
            .ok_or_else(|| ProofError::Source { index, detail: format!("only {} leaf hashes are given", self.len()) })
    }
}

/// A function from a leaf index to its leaf hash, e.g. a read of the log.
impl<F: Fn(u64) -> Result<Hash, ProofError>> HashSource for F {
    fn leaf_hash(&self, index: u64) -> Result<Hash, ProofError> {
        self(index)
    }
}

/// SM3(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sm3::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// SM3(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sm3::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: SM3 of "".
pub fn empty_root() -> Hash {
    Sm3::digest(b"").into()
}

/// The root (MTH) of the tree over `leaves` (the log's chain hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    let leaf_hashes: Vec<Hash> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
    // Every index below the slice's length is present.
    root_of(leaf_hashes.len() as u64, leaf_hashes.as_slice()).expect("each leaf index is in the slice")
}

/// The root of the tree of the first `tree_size` leaves of `source`.
pub fn root_of<S: HashSource + ?Sized>(tree_size: u64, source: &S) -> Result<Hash, ProofError> {
    if tree_size == 0 {
        return Ok(empty_root());
    }
    source.subtree_hash(0, tree_size)
}

/// The audit path of leaf `index` in the tree of `tree_size` leaves
/// (RFC 9162 §2.1.3.1, PATH(m, D\[n\])), nearest the leaf first.
pub fn inclusion_proof<S: HashSource + ?Sized>(
    index: u64,
    tree_size: u64,
    source: &S,
) -> Result<Vec<Hash>, ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let mut proof = Vec::new();
    let (mut start, mut size, mut offset) = (0u64, tree_size, index);
    // Walk from the root down; each level contributes its sibling subtree.
    while size > 1 {
        let split = split_point(size);
        if offset < split {
            proof.push(source.subtree_hash(start + split, size - split)?);
            size = split;
        } else {
            proof.push(source.subtree_hash(start, split)?);
            start += split;
            offset -= split;
            size -= split;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that `leaf_hash` is at `index` of the tree of `tree_size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_length(index, tree_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength { expected, actual: proof.len() });
    }
    let computed = chain_path(*leaf_hash, index, tree_size - 1, proof);
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The consistency proof between the tree of `old_size` leaves and that of
/// `new_size` leaves (RFC 9162 §2.1.4.1, PROOF(m, D\[n\])). Empty when the
/// sizes are equal or the old tree is empty: every tree extends those.
pub fn consistency_proof<S: HashSource + ?Sized>(
    old_size: u64,
    new_size: u64,
    source: &S,
) -> Result<Vec<Hash>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let mut proof = Vec::new();
    let (mut start, mut size, mut old_end) = (0u64, new_size, old_size);
    // Whether the old tree is a whole left edge so far: its root is then
    // the verifier's own old root and is left out of the proof.
    let mut old_is_left_edge = true;
    while old_end != size {
        let split = split_point(size);
        if old_end <= split {
            proof.push(source.subtree_hash(start + split, size - split)?);
            size = split;
        } else {
            proof.push(source.subtree_hash(start, split)?);
            start += split;
            old_end -= split;
            size -= split;
            old_is_left_edge = false;
        }
    }
    if !old_is_left_edge {
        proof.push(source.subtree_hash(start, size)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends
/// the tree of `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return verify_trivial_consistency(old_size, old_root, new_root, proof);
    }
    let expected = consistency_length(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength { expected, actual: proof.len() });
    }
    // When the old tree is a power of two, its root is the first node.
    let (seed, path) = if old_size.is_power_of_two() { (*old_root, proof) } else { (proof[0], &proof[1..]) };
    let (old_computed, new_computed) = chain_consistency(seed, old_size, new_size, path);
    if old_computed != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_computed != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// Equal sizes prove equal roots; the empty old tree has the empty root.
fn verify_trivial_consistency(
    old_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if !proof.is_empty() {
        return Err(ProofError::WrongProofLength { expected: 0, actual: proof.len() });
    }
    if old_size == 0 {
        return if *old_root == empty_root() { Ok(()) } else { Err(ProofError::OldRootMismatch) };
    }
    if old_root == new_root {
        Ok(())
    } else {
        Err(ProofError::NewRootMismatch)
    }
}

/// RFC 9162 §2.1.3.2 steps 2–4: fold the path into a root, given that its
/// length was checked (so `last_index` reaches 0 exactly at its end).
fn chain_path(leaf_hash: Hash, index: u64, last_index: u64, proof: &[Hash]) -> Hash {
    let (mut node_index, mut last) = (index, last_index);
    let mut computed = leaf_hash;
    for sibling in proof {
        if node_index & 1 == 1 || node_index == last {
            computed = node_hash(sibling, &computed);
            // A right edge node without a sibling rises unchanged.
            while node_index & 1 == 0 && node_index != 0 {
                node_index >>= 1;
                last >>= 1;
            }
        } else {
            computed = node_hash(&computed, sibling);
        }
        node_index >>= 1;
        last >>= 1;
    }
    computed
}

/// RFC 9162 §2.1.4.2 steps 3–6: fold the path into the old and new roots.
fn chain_consistency(seed: Hash, old_size: u64, new_size: u64, path: &[Hash]) -> (Hash, Hash) {
    let (mut node_index, mut last) = (old_size - 1, new_size - 1);
    // Start at the old tree's rightmost whole subtree, the seed.
    while node_index & 1 == 1 {
        node_index >>= 1;
        last >>= 1;
    }
    let (mut old_computed, mut new_computed) = (seed, seed);
    for node in path {
        if node_index & 1 == 1 || node_index == last {
            old_computed = node_hash(node, &old_computed);
            new_computed = node_hash(node, &new_computed);
            while node_index & 1 == 0 && node_index != 0 {
                node_index >>= 1;
                last >>= 1;
            }
        } else {
            new_computed = node_hash(&new_computed, node);
        }
        node_index >>= 1;
        last >>= 1;
    }
    (old_computed, new_computed)
}

/// The length of PATH(index, D\[tree_size\]): one hash for every level where
/// the leaf's path and the last leaf's path differ (inner), plus one for
/// every left turn above that (the border). Needs index < tree_size.
fn inclusion_length(index: u64, tree_size: u64) -> usize {
    let last = tree_size - 1;
    let inner = u64::BITS - (index ^ last).leading_zeros();
    // A shift by 64 (index 0 of a tree of 2^63 + 1 leaves) leaves nothing.
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The length of PROOF(old_size, D\[new_size\]) for 0 < old_size < new_size:
/// the inclusion path of the old tree's last leaf above the old tree's
/// rightmost whole subtree, plus that subtree's root unless it is the
/// whole old tree.
fn consistency_length(old_size: u64, new_size: u64) -> usize {
    let shift = old_size.trailing_zeros() as usize;
    let path = inclusion_length(old_size - 1, new_size) - shift;
    if old_size.is_power_of_two() {
        path
    } else {
        path + 1
    }
}

/// k of RFC 9162 §2.1.1: the largest power of two smaller than `size` (> 1).
fn split_point(size: u64) -> u64 {
    debug_assert!(size > 1);
    1 << (u64::BITS - 1 - (size - 1).leading_zeros())
}
