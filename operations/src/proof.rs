//! Proofs over the log's Merkle tree (`ledger::merkle`: RFC 9162's shape,
//! SM3): the tree head at a size, the inclusion proof of a position and the
//! consistency proof between two sizes, as serde answers that carry
//! everything a verifier needs besides a tree head it trusts; and their
//! verification, which needs no ledger.
//!
//! The tree's leaves are the records' chain hashes in position order:
//! position p is leaf p − 1, and the tree of size n covers positions 1..=n.

use crate::error::{Classified, Kind, StorageError};
use crate::Ledger;
use ledger::envelope::Hash;
use ledger::merkle;
use serde::{Deserialize, Serialize};

/// The root of the tree over the log's first `tree_size` positions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    pub tree_size: u64,
    /// SM3, hex.
    pub root: String,
}

/// That the record at `position`, whose chain hash is `chain_hash`, is in
/// the tree of `tree_size` leaves whose root is `root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    let tree = Tree::read(ledger, tree_size)?;
    Ok(TreeHead { tree_size: tree.size(), root: hex::encode(tree.root()?) })
}

/// The inclusion proof of `position` in the tree of `tree_size` (None:
/// the head).
pub fn inclusion(ledger: &Ledger, position: u64, tree_size: Option<u64>) -> Result<InclusionProof, ProofError> {
    let tree = Tree::read(ledger, tree_size)?;
    if position == 0 || position > tree.size() {
        return Err(ProofError::OutOfRange { what: "position", value: position, head: tree.size() });
    }
    let index = position - 1;
    let path = merkle::inclusion_proof(index, tree.size(), tree.leaves()).map_err(ProofError::Invalid)?;
    Ok(InclusionProof {
        position,
        chain_hash: hex::encode(tree.chain_hashes[index as usize]),
        tree_size: tree.size(),
        root: hex::encode(tree.root()?),
        path: path.iter().map(hex::encode).collect(),
    })
}

/// The consistency proof from `old_size` to `new_size` (None: the head).
pub fn consistency(ledger: &Ledger, old_size: u64, new_size: Option<u64>) -> Result<ConsistencyProof, ProofError> {
    let tree = Tree::read(ledger, new_size)?;
    if old_size > tree.size() {
        return Err(ProofError::OutOfRange { what: "old tree size", value: old_size, head: tree.size() });
    }
    let path = merkle::consistency_proof(old_size, tree.size(), tree.leaves()).map_err(ProofError::Invalid)?;
    let old_root = merkle::root_of(old_size, tree.leaves()).map_err(ProofError::Invalid)?;
    Ok(ConsistencyProof {
        old_size,
        old_root: hex::encode(old_root),
        new_size: tree.size(),
        new_root: hex::encode(tree.root()?),
        path: path.iter().map(hex::encode).collect(),
    })
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

/// The leaves of the tree of one size, read from the log.
struct Tree {
    chain_hashes: Vec<Hash>,
    leaf_hashes: Vec<Hash>,
}

impl Tree {
    /// Reads the chain hashes of positions 1..=`tree_size` (None: the
    /// durable head).
    fn read(ledger: &Ledger, tree_size: Option<u64>) -> Result<Tree, ProofError> {
        let log = ledger.log();
        let head = log.durable_head().position;
        let size = tree_size.unwrap_or(head);
        if size > head {
            return Err(ProofError::OutOfRange { what: "tree size", value: size, head });
        }
        let mut chain_hashes = Vec::with_capacity(size as usize);
        if size > 0 {
            for record in log.stored_records(1).map_err(StorageError::from)? {
                let record = record.map_err(StorageError::from)?;
                chain_hashes.push(record.hash);
                if record.position >= size {
                    break;
                }
            }
        }
        let leaf_hashes = chain_hashes.iter().map(|hash| merkle::leaf_hash(hash)).collect();
        Ok(Tree { chain_hashes, leaf_hashes })
    }

    fn size(&self) -> u64 {
        self.chain_hashes.len() as u64
    }

    fn leaves(&self) -> &[Hash] {
        self.leaf_hashes.as_slice()
    }

    fn root(&self) -> Result<Hash, ProofError> {
        merkle::root_of(self.size(), self.leaves()).map_err(ProofError::Invalid)
    }
}
