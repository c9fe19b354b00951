//! A certificate's offline proofs, made at issue when the data directory
//! holds the office's signing key: the Merkle tree head at the head at
//! issue, signed; each cited fact's stored record with its inclusion proof
//! in that tree; and the office's signature over every field.

use super::data::{signed_bytes, Certificate, FactProof, Proofs};
use super::issue::{record_at, IssueError};
use crate::error::StorageError;
use crate::keys::OfficeKey;
use crate::proof::{self, InclusionProof, ProofError, TreeHead, TreeStore, TreeView};
use crate::signed_head;
use crate::Ledger;
use ledger::envelope::{chain_hash, Hash};
use ledger::{merkle, LogStore};
use std::path::Path;

/// Where the tree's heads and inclusion proofs come from.
pub trait TreeProofs {
    fn log(&self) -> &dyn LogStore;
    fn tree_head(&self, tree_size: u64) -> Result<TreeHead, ProofError>;
    fn inclusion(&self, position: u64, tree_size: u64) -> Result<InclusionProof, ProofError>;
}

/// The command line's ledger: `operations::proof`.
impl TreeProofs for Ledger {
    fn log(&self) -> &dyn LogStore {
        Ledger::log(self)
    }

    fn tree_head(&self, tree_size: u64) -> Result<TreeHead, ProofError> {
        proof::tree_head(self, Some(tree_size))
    }

    fn inclusion(&self, position: u64, tree_size: u64) -> Result<InclusionProof, ProofError> {
        proof::inclusion(self, position, Some(tree_size))
    }
}

/// The tree of one size read from a log held without a `Ledger` (the
/// service's), as `proof` reads it: every chain hash up to that size.
pub struct LogTree<'a> {
    log: &'a dyn LogStore,
    chain_hashes: Vec<Hash>,
    leaf_hashes: Vec<Hash>,
}

impl<'a> LogTree<'a> {
    pub fn read(log: &'a dyn LogStore, tree_size: u64) -> Result<LogTree<'a>, ProofError> {
        let head = log.durable_head().position;
        if tree_size > head {
            return Err(ProofError::OutOfRange { what: "tree size", value: tree_size, head });
        }
        let mut chain_hashes = Vec::with_capacity(usize::try_from(tree_size).unwrap_or(0));
        if tree_size > 0 {
            for record in log.stored_records(1).map_err(StorageError::from)? {
                let record = record.map_err(StorageError::from)?;
                chain_hashes.push(record.hash);
                if record.position >= tree_size {
                    break;
                }
            }
        }
        let leaf_hashes = chain_hashes.iter().map(|hash| merkle::leaf_hash(hash)).collect();
        Ok(LogTree { log, chain_hashes, leaf_hashes })
    }

    fn size(&self) -> u64 {
        self.chain_hashes.len() as u64
    }

    /// This tree's size is the only one it answers for.
    fn check_size(&self, tree_size: u64) -> Result<(), ProofError> {
        if tree_size != self.size() {
            return Err(ProofError::OutOfRange { what: "tree size", value: tree_size, head: self.size() });
        }
        Ok(())
    }
}

impl TreeProofs for LogTree<'_> {
    fn log(&self) -> &dyn LogStore {
        self.log
    }

    fn tree_head(&self, tree_size: u64) -> Result<TreeHead, ProofError> {
        self.check_size(tree_size)?;
        let root = merkle::root_of(tree_size, self.leaf_hashes.as_slice()).map_err(ProofError::Invalid)?;
        Ok(TreeHead { tree_size, root: hex::encode(root) })
    }

    fn inclusion(&self, position: u64, tree_size: u64) -> Result<InclusionProof, ProofError> {
        self.check_size(tree_size)?;
        let index = position.checked_sub(1).filter(|index| *index < tree_size).ok_or(ProofError::OutOfRange {
            what: "position",
            value: position,
            head: tree_size,
        })?;
        let leaves = self.leaf_hashes.as_slice();
        let path = merkle::inclusion_proof(index, tree_size, leaves).map_err(ProofError::Invalid)?;
        Ok(InclusionProof {
            position,
            chain_hash: hex::encode(self.chain_hashes[index as usize]),
            tree_size,
            root: self.tree_head(tree_size)?.root,
            path: path.iter().map(hex::encode).collect(),
        })
    }
}

/// `certificate` with its proofs, signed with `key`.
pub fn attach(mut certificate: Certificate, tree: &dyn TreeProofs, key: &OfficeKey) -> Result<Certificate, IssueError> {
    let size = certificate.head_position;
    let head = tree.tree_head(size).map_err(inconsistent)?;
    let signed_head = signed_head::sign_head(&certificate.ledger_id, &head, key);
    let head_proof = tree.inclusion(size, size).map_err(inconsistent)?;
    if head_proof.chain_hash != certificate.head_hash {
        return Err(IssueError::Inconsistent(format!("the log's record at position {size} is not the head at issue")));
    }
    let mut facts = Vec::new();
    for position in cited(&certificate) {
        facts.push(fact_proof(tree, position, size)?);
    }
    let signature = key.sign(&signed_bytes(&certificate, &signed_head));
    certificate.proofs = Some(Proofs { signed_head, head_path: head_proof.path, facts, signature });
    Ok(certificate)
}

/// `certificate` with its proofs, the tree read from `log` (the service
/// holds a log, not a `Ledger`).
pub fn attach_from_log(
    certificate: Certificate,
    log: &dyn LogStore,
    key: &OfficeKey,
) -> Result<Certificate, IssueError> {
    let tree = LogTree::read(log, certificate.head_position).map_err(inconsistent)?;
    attach(certificate, &tree, key)
}

/// `certificate` with its proofs, the tree read through the tree store
/// of the ledger in `data` (`proof::TreeStore`): what the service holds,
/// a log and its data directory; O(log n) stored hashes and a few chunks
/// of records, where [`attach_from_log`] reads every chain hash.
pub fn attach_from_store(
    certificate: Certificate,
    data: &Path,
    log: &dyn LogStore,
    key: &OfficeKey,
) -> Result<Certificate, IssueError> {
    let store = TreeStore::open(data, log).map_err(IssueError::Storage)?;
    attach(certificate, &StoreTree { log, store }, key)
}

/// The log's tree through its tree store, caught up when opened.
struct StoreTree<'a> {
    log: &'a dyn LogStore,
    store: TreeStore,
}

impl StoreTree<'_> {
    fn view(&self, tree_size: u64) -> Result<TreeView<'_>, ProofError> {
        let head = self.log.durable_head().position;
        if tree_size > head {
            return Err(ProofError::OutOfRange { what: "tree size", value: tree_size, head });
        }
        Ok(self.store.view(self.log, tree_size))
    }
}

impl TreeProofs for StoreTree<'_> {
    fn log(&self) -> &dyn LogStore {
        self.log
    }

    fn tree_head(&self, tree_size: u64) -> Result<TreeHead, ProofError> {
        proof::tree_head_of(&self.view(tree_size)?)
    }

    fn inclusion(&self, position: u64, tree_size: u64) -> Result<InclusionProof, ProofError> {
        proof::inclusion_of(&self.view(tree_size)?, position)
    }
}

/// Every position the entries cite, once each, in their order.
pub(super) fn cited(certificate: &Certificate) -> Vec<u64> {
    let mut positions = Vec::new();
    for entry in &certificate.payments {
        for position in std::iter::once(entry.position).chain(entry.application_position) {
            if !positions.contains(&position) {
                positions.push(position);
            }
        }
    }
    positions
}

fn fact_proof(tree: &dyn TreeProofs, position: u64, tree_size: u64) -> Result<FactProof, IssueError> {
    let inclusion = tree.inclusion(position, tree_size).map_err(inconsistent)?;
    let log = tree.log();
    let envelope = record_at(log, position)?
        .ok_or_else(|| IssueError::Inconsistent(format!("the log has no position {position}")))?;
    let stored = log
        .stored_records(position)
        .map_err(StorageError::from)?
        .next()
        .transpose()
        .map_err(StorageError::from)?
        .filter(|record| record.position == position)
        .ok_or_else(|| IssueError::Inconsistent(format!("the log gives no stored record at position {position}")))?;
    // The leaf the proof is of is the record whose bytes are carried.
    if hex::encode(chain_hash(&envelope.prev_hash, &stored.stored)) != inclusion.chain_hash {
        return Err(IssueError::Inconsistent(format!(
            "the record at position {position} does not hash to its leaf in the tree"
        )));
    }
    Ok(FactProof {
        position,
        prev_hash: hex::encode(envelope.prev_hash),
        stored: hex::encode(&stored.stored),
        path: inclusion.path,
    })
}

fn inconsistent(error: ProofError) -> IssueError {
    match error {
        ProofError::Storage(error) => IssueError::Storage(error),
        other => IssueError::Inconsistent(format!("the log's Merkle tree: {other}")),
    }
}
