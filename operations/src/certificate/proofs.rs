//! A certificate's offline proofs, made at issue when the data directory
//! holds the office's signing key: the Merkle tree head at the head at
//! issue, signed; each cited fact's stored record with its inclusion proof
//! in that tree; and the office's signature over every field.

use super::data::{signed_bytes, Certificate, FactProof, Proofs};
use super::issue::{record_at, IssueError};
use crate::error::StorageError;
use crate::keys::OfficeKey;
use crate::proof::{self, HeldTree, InclusionProof, ProofError};
use crate::signed_head;
use ledger::envelope::chain_hash;
use ledger::LogStore;
use std::path::Path;

/// `certificate` with its proofs, signed with `key`: the tree of the log
/// at the head at issue, read through the tree store of the ledger whose
/// data directory is `data` (`proof::TreeStore`: O(log n) stored hashes
/// and a few chunks of records, a store that disagrees with the log
/// rebuilt), as `tree` holds it (the service's, kept between requests; a
/// new one opens the file), once for every fact.
pub fn attach(
    mut certificate: Certificate,
    tree: &HeldTree,
    data: &Path,
    log: &dyn LogStore,
    key: &OfficeKey,
) -> Result<Certificate, IssueError> {
    let size = certificate.head_position;
    let positions = cited(&certificate);
    let (head, head_proof, inclusions) = tree
        .answer(data, log, Some(size), |view| {
            let inclusions: Vec<InclusionProof> =
                positions.iter().map(|position| proof::inclusion_of(view, *position)).collect::<Result<_, _>>()?;
            Ok((proof::tree_head_of(view)?, proof::inclusion_of(view, size)?, inclusions))
        })
        .map_err(inconsistent)?;
    let signed_head = signed_head::sign_head(&certificate.ledger_id, &head, key);
    if head_proof.chain_hash != certificate.head_hash {
        return Err(IssueError::Inconsistent(format!("the log's record at position {size} is not the head at issue")));
    }
    let facts = positions
        .iter()
        .zip(inclusions)
        .map(|(position, inclusion)| fact_proof(log, *position, inclusion))
        .collect::<Result<Vec<_>, _>>()?;
    let signature = key.sign(&signed_bytes(&certificate, &signed_head));
    certificate.proofs = Some(Proofs { signed_head, head_path: head_proof.path, facts, signature });
    Ok(certificate)
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

fn fact_proof(log: &dyn LogStore, position: u64, inclusion: InclusionProof) -> Result<FactProof, IssueError> {
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
