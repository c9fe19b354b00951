//! Proofs over the log's Merkle tree (`ledger::merkle`: RFC 9162's shape,
//! SM3): the tree head at a size, the inclusion proof of a position and the
//! consistency proof between two sizes, as serde answers that carry
//! everything a verifier needs besides a tree head it trusts; and their
//! verification, which needs no ledger.
//!
//! The tree's leaves are the records' chain hashes in position order:
//! position p is leaf p − 1, and the tree of size n covers positions 1..=n.
//! They are read through the tree store (`store.rs`, `DIR/merkle/tree`):
//! O(log n) stored hashes plus at most two chunks of records per answer.

mod store;

use crate::error::{Classified, Kind, StorageError};
use crate::Ledger;
use ledger::envelope::Hash;
use ledger::merkle;
use ledger::{LedgerError, LogStore};
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use store::{TreeStore, TreeView, ViewFailure, CHUNK_LEAVES};

/// The root of the tree over the log's first `tree_size` positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    pub tree_size: u64,
    /// SM3, hex.
    pub root: String,
}

/// That the record at `position`, whose chain hash is `chain_hash`, is in
/// the tree of `tree_size` leaves whose root is `root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub position: u64,
    /// The record's chain hash (the leaf), hex.
    pub chain_hash: String,
    pub tree_size: u64,
    /// The root the path leads to, hex.
    pub root: String,
    /// The audit path, nearest the leaf first, hex.
    pub path: Vec<String>,
}

/// That the tree of `new_size` leaves extends the tree of `old_size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub old_root: String,
    pub new_size: u64,
    pub new_root: String,
    pub path: Vec<String>,
}

/// A proof could not be made, or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// A position or size past the log's head (or 0 where a position is
    /// asked for).
    #[error("{what} {value} is not in the log, whose head is at position {head}")]
    OutOfRange { what: &'static str, value: u64, head: u64 },
    /// A hex field of a proof that is not 32 bytes of hex.
    #[error("{field} is not an SM3 hash in hex (64 hex digits)")]
    BadHash { field: String },
    /// The proof does not lead to the root it names.
    #[error("the proof does not verify: {0}")]
    Invalid(#[source] merkle::ProofError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for ProofError {
    fn kind(&self) -> Kind {
        match self {
            ProofError::OutOfRange { .. } | ProofError::BadHash { .. } => Kind::BadInput,
            ProofError::Invalid(_) => Kind::Findings,
            ProofError::Storage(error) => error.kind(),
        }
    }
}

/// The tree head at `tree_size` (None: the log's durable head).
pub fn tree_head(ledger: &Ledger, tree_size: Option<u64>) -> Result<TreeHead, ProofError> {
    with_tree(ledger, tree_size, tree_head_of)
}

/// The inclusion proof of `position` in the tree of `tree_size` (None:
/// the head).
pub fn inclusion(ledger: &Ledger, position: u64, tree_size: Option<u64>) -> Result<InclusionProof, ProofError> {
    with_tree(ledger, tree_size, |view| inclusion_of(view, position))
}

/// The consistency proof from `old_size` to `new_size` (None: the head).
pub fn consistency(ledger: &Ledger, old_size: u64, new_size: Option<u64>) -> Result<ConsistencyProof, ProofError> {
    with_tree(ledger, new_size, |view| consistency_of(view, old_size))
}

/// Catches the ledger's tree store up to the log's head (after an
/// import), so that the next proof reads only what came after.
pub fn keep_tree_current(ledger: &Ledger) -> Result<(), ProofError> {
    TreeStore::open(ledger.data(), ledger.log())?;
    Ok(())
}

/// The tree head of `view`'s tree.
pub fn tree_head_of(view: &TreeView<'_>) -> Result<TreeHead, ProofError> {
    let root = merkle::root_of(view.tree_size(), view).map_err(|error| failure(view, error))?;
    Ok(TreeHead { tree_size: view.tree_size(), root: hex::encode(root) })
}

/// The inclusion proof of `position` in `view`'s tree.
pub fn inclusion_of(view: &TreeView<'_>, position: u64) -> Result<InclusionProof, ProofError> {
    let tree_size = view.tree_size();
    if position == 0 || position > tree_size {
        return Err(ProofError::OutOfRange { what: "position", value: position, head: tree_size });
    }
    let index = position - 1;
    let generated = merkle::inclusion_proof(index, tree_size, view)
        .and_then(|path| Ok((path, view.chain_hash(index)?, merkle::root_of(tree_size, view)?)));
    let (path, chain_hash, root) = generated.map_err(|error| failure(view, error))?;
    Ok(InclusionProof {
        position,
        chain_hash: hex::encode(chain_hash),
        tree_size,
        root: hex::encode(root),
        path: path.iter().map(hex::encode).collect(),
    })
}

/// The consistency proof from `old_size` to `view`'s tree.
pub fn consistency_of(view: &TreeView<'_>, old_size: u64) -> Result<ConsistencyProof, ProofError> {
    let new_size = view.tree_size();
    if old_size > new_size {
        return Err(ProofError::OutOfRange { what: "old tree size", value: old_size, head: new_size });
    }
    let generated = merkle::consistency_proof(old_size, new_size, view)
        .and_then(|path| Ok((path, merkle::root_of(old_size, view)?, merkle::root_of(new_size, view)?)));
    let (path, old_root, new_root) = generated.map_err(|error| failure(view, error))?;
    Ok(ConsistencyProof {
        old_size,
        old_root: hex::encode(old_root),
        new_size,
        new_root: hex::encode(new_root),
        path: path.iter().map(hex::encode).collect(),
    })
}

/// A generation error: the storage failure underneath it when there is
/// one (a store that disagrees with the log is a damaged store).
fn failure(view: &TreeView<'_>, error: merkle::ProofError) -> ProofError {
    match view.take_failure() {
        Some(ViewFailure::Storage(storage)) => ProofError::Storage(storage),
        Some(ViewFailure::Disagrees { chunk }) => {
            let position = (chunk + 1) * CHUNK_LEAVES;
            let reason = "the Merkle tree store disagrees with the log's chunk ending here".to_string();
            ProofError::Storage(StorageError::Ledger(LedgerError::Corrupt { position, reason }))
        }
        None => ProofError::Invalid(error),
    }
}

fn with_tree<T>(
    ledger: &Ledger,
    tree_size: Option<u64>,
    answer: impl Fn(&TreeView<'_>) -> Result<T, ProofError>,
) -> Result<T, ProofError> {
    with_tree_at(ledger.data(), ledger.log(), tree_size, answer)
}

/// Answers over the tree store in `data` at `tree_size` (None: the head).
/// A store that disagrees with the log met on the way is noted, rebuilt
/// from the log and asked again.
fn with_tree_at<T>(
    data: &Path,
    log: &dyn LogStore,
    tree_size: Option<u64>,
    answer: impl Fn(&TreeView<'_>) -> Result<T, ProofError>,
) -> Result<T, ProofError> {
    let head = log.durable_head().position;
    let size = tree_size.unwrap_or(head);
    if size > head {
        return Err(ProofError::OutOfRange { what: "tree size", value: size, head });
    }
    let mut store = TreeStore::open(data, log)?;
    answer_over(&mut store, data, log, size, answer)
}

/// The answer over `store` (at the log's head) at `size`; a store that
/// disagrees with the log met on the way is noted, rebuilt from the log
/// in place and asked again.
fn answer_over<T>(
    store: &mut TreeStore,
    data: &Path,
    log: &dyn LogStore,
    size: u64,
    answer: impl Fn(&TreeView<'_>) -> Result<T, ProofError>,
) -> Result<T, ProofError> {
    let view = store.view(log, size);
    let answered = answer(&view);
    let Some(chunk) = view.disagreed() else { return answered };
    eprintln!(
        "note: the Merkle tree store {} disagrees with the log's records {}..={}; rebuilding it from the log",
        TreeStore::path_in(data).display(),
        chunk * CHUNK_LEAVES + 1,
        (chunk + 1) * CHUNK_LEAVES
    );
    *store = TreeStore::rebuild(data, log)?;
    answer(&store.view(log, size))
}

/// The tree store held by a long-running process (the service): opened
/// from its file once, then brought to the head in memory before each
/// answer, so an answer reads the records appended since the last one,
/// not the whole store file (which grows with the history).
#[derive(Default)]
pub struct HeldTree(std::sync::Mutex<Option<TreeStore>>);

impl HeldTree {
    /// As [`with_tree_at`], over the held store.
    pub fn answer<T>(
        &self,
        data: &Path,
        log: &dyn LogStore,
        tree_size: Option<u64>,
        answer: impl Fn(&TreeView<'_>) -> Result<T, ProofError>,
    ) -> Result<T, ProofError> {
        // A panic under the lock left a store of unknown state: open again.
        let mut held = self.0.lock().unwrap_or_else(|poisoned| {
            let mut held = poisoned.into_inner();
            *held = None;
            self.0.clear_poison();
            held
        });
        let head = log.durable_head().position;
        let size = tree_size.unwrap_or(head);
        if size > head {
            return Err(ProofError::OutOfRange { what: "tree size", value: size, head });
        }
        let store = match held.as_mut() {
            Some(store) => {
                store.refresh(data, log)?;
                store
            }
            None => held.insert(TreeStore::open(data, log)?),
        };
        answer_over(store, data, log, size, answer)
    }
}

impl InclusionProof {
    /// Checks the path from the chain hash to the root the proof names;
    /// the caller compares that root with a tree head it trusts.
    pub fn verify(&self) -> Result<(), ProofError> {
        let chain_hash = parse_hash(&self.chain_hash, "chain_hash")?;
        let root = parse_hash(&self.root, "root")?;
        let path = parse_path(&self.path)?;
        let index = self
            .position
            .checked_sub(1)
            .ok_or(ProofError::Invalid(merkle::ProofError::IndexOutOfRange { index: 0, tree_size: self.tree_size }))?;
        merkle::verify_inclusion(&merkle::leaf_hash(&chain_hash), index, self.tree_size, &path, &root)
            .map_err(ProofError::Invalid)
    }
}

impl ConsistencyProof {
    /// Checks that the new root extends the old one; the caller compares
    /// the two roots with tree heads it trusts.
    pub fn verify(&self) -> Result<(), ProofError> {
        let old_root = parse_hash(&self.old_root, "old_root")?;
        let new_root = parse_hash(&self.new_root, "new_root")?;
        let path = parse_path(&self.path)?;
        merkle::verify_consistency(self.old_size, self.new_size, &old_root, &new_root, &path)
            .map_err(ProofError::Invalid)
    }
}

/// An SM3 hash in hex, `field` named when it is not one.
pub fn parse_hash(text: &str, field: &str) -> Result<Hash, ProofError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| ProofError::BadHash { field: field.to_string() })
}

fn parse_path(path: &[String]) -> Result<Vec<Hash>, ProofError> {
    path.iter().enumerate().map(|(at, text)| parse_hash(text, &format!("path[{at}]"))).collect()
}
