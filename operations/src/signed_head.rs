//! Signed tree heads (签名树头): the root of the log's Merkle tree at a
//! size, signed with the office's SM2 key, to publish; and their checks —
//! the signature offline, the root against a log, and that a later head
//! extends an earlier one (a consistency proof from the ledger or from a
//! file).
//!
//! The file is text, one field a line, in this order:
//!
//! ```text
//! yibao signed tree head v1
//! ledger_id: 5d0c…
//! tree_size: 1234
//! root: 64 hex digits
//! signed_at: 2026-12-05T03:00:00.000000Z
//! key_id: 16 hex digits
//! signature: 128 hex digits
//! ```
//!
//! The signature (SM2DSA, r ‖ s) is over the bytes of the first six lines,
//! each ended by `\n`: the file up to its `signature:` line.

use crate::error::{Classified, Kind, StorageError};
use crate::keys::{KeyError, OfficeKey, PublicKeyInfo};
use crate::proof::{self, ConsistencyProof, ProofError, TreeHead};
use crate::Ledger;
use ledger::UtcTime;
use serde::{Deserialize, Serialize};

/// The first line of a signed head, and the first line it signs.
pub const MAGIC: &str = "yibao signed tree head v1";
/// The fields after the first line, in their order.
const FIELDS: [&str; 6] = ["ledger_id", "tree_size", "root", "signed_at", "key_id", "signature"];
/// Largest signed head file read.
pub const MAX_HEAD_BYTES: usize = 4096;

/// A tree head signed by the office.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub ledger_id: String,
    pub tree_size: u64,
    /// SM3, hex.
    pub root: String,
    /// UTC.
    pub signed_at: String,
    /// The signing key's id (`keys::key_id`).
    pub key_id: String,
    /// SM2DSA r ‖ s, hex.
    pub signature: String,
}

/// A signed head that cannot be made, read or does not check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The file is not a signed head: its line and field, and why.
    #[error("line {line}: field `{field}`: {reason}")]
    BadFile { line: usize, field: String, reason: String },
    #[error("signature: does not verify with public key {key_id}")]
    BadSignature { key_id: String },
    #[error("signature: the head names key {signed_by}, the public key given is {given}")]
    OtherKey { signed_by: String, given: String },
    #[error("ledger: the head is of ledger {head}, {against} is {other}")]
    OtherLedger { head: String, against: &'static str, other: String },
    #[error("root mismatch at size {tree_size}: the head says {head_root}, the log gives {log_root}")]
    RootMismatch { tree_size: u64, head_root: String, log_root: String },
    #[error("the log ends at position {head}, before the head's tree size {tree_size}")]
    BeyondLog { tree_size: u64, head: u64 },
    /// The later head does not extend the earlier.
    #[error("not an extension: from size {old_size} to size {new_size}: {reason}")]
    NotExtension { old_size: u64, new_size: u64, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Proof(ProofError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for HeadError {
    fn kind(&self) -> Kind {
        match self {
            HeadError::BadFile { .. } => Kind::BadInput,
            HeadError::BadSignature { .. }
            | HeadError::OtherKey { .. }
            | HeadError::OtherLedger { .. }
            | HeadError::RootMismatch { .. }
            | HeadError::BeyondLog { .. }
            | HeadError::NotExtension { .. } => Kind::Findings,
            HeadError::Key(error) => error.kind(),
            HeadError::Proof(error) => error.kind(),
            HeadError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            HeadError::BadFile { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<ProofError> for HeadError {
    fn from(error: ProofError) -> HeadError {
        match error {
            ProofError::Storage(error) => HeadError::Storage(error),
            other => HeadError::Proof(other),
        }
    }
}

/// Signs the log's tree head at `tree_size` (None: the durable head).
pub fn sign(ledger: &Ledger, key: &OfficeKey, tree_size: Option<u64>) -> Result<SignedHead, HeadError> {
    let head = proof::tree_head(ledger, tree_size)?;
    Ok(sign_head(&ledger.log().ledger_id().to_string(), &head, key))
}

/// Signs `head` of ledger `ledger_id` now.
pub fn sign_head(ledger_id: &str, head: &TreeHead, key: &OfficeKey) -> SignedHead {
    let mut signed = SignedHead {
        ledger_id: ledger_id.to_string(),
        tree_size: head.tree_size,
        root: head.root.clone(),
        signed_at: UtcTime::now().to_string(),
        key_id: key.key_id(),
        signature: String::new(),
    };
    signed.signature = key.sign(&signed.signed_bytes());
    signed
}

impl SignedHead {
    /// What the signature is over: the magic line and the fields before
    /// the signature, `name: value\n` each.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let values = self.values();
        let mut text = format!("{MAGIC}\n");
        for (name, value) in FIELDS.iter().zip(&values).take(FIELDS.len() - 1) {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.into_bytes()
    }

    fn values(&self) -> [String; 6] {
        [
            self.ledger_id.clone(),
            self.tree_size.to_string(),
            self.root.clone(),
            self.signed_at.clone(),
            self.key_id.clone(),
            self.signature.clone(),
        ]
    }

    /// The file to publish.
    pub fn render(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.signed_bytes()).into_owned();
        text.push_str(&format!("signature: {}\n", self.signature));
        text
    }

    /// Reads a signed head file, naming the line and field that is wrong.
    pub fn parse(text: &str) -> Result<SignedHead, HeadError> {
        let bad = |line: usize, field: &str, reason: String| HeadError::BadFile { line, field: field.into(), reason };
        if text.len() > MAX_HEAD_BYTES {
            return Err(bad(1, "file", format!("{} bytes, larger than any signed head", text.len())));
        }
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad(1, "magic", format!("the first line is not `{MAGIC}`")));
        }
        let mut values = Vec::with_capacity(FIELDS.len());
        for (index, name) in FIELDS.iter().enumerate() {
            let line = index + 2;
            let text = lines.next().ok_or_else(|| bad(line, name, "missing".into()))?;
            let value = text
                .strip_prefix(&format!("{name}: "))
                .ok_or_else(|| bad(line, name, format!("expected `{name}: …`")))?;
            values.push((line, *name, value.to_string()));
        }
        if let Some(extra) = lines.find(|line| !line.trim().is_empty()) {
            return Err(bad(FIELDS.len() + 2, "end", format!("unexpected text after the signature: `{extra}`")));
        }
        check_values(&values)?;
        let value = |index: usize| values[index].2.clone();
        let tree_size = value(1).parse().map_err(|_| bad(3, "tree_size", "not a whole number".into()))?;
        Ok(SignedHead {
            ledger_id: value(0),
            tree_size,
            root: value(2),
            signed_at: value(3),
            key_id: value(4),
            signature: value(5),
        })
    }

    /// That the head is signed by `key`.
    pub fn check_signature(&self, key: &PublicKeyInfo) -> Result<(), HeadError> {
        if self.key_id != key.key_id {
            return Err(HeadError::OtherKey { signed_by: self.key_id.clone(), given: key.key_id.clone() });
        }
        if !key.verifies(&self.signed_bytes(), &self.signature) {
            return Err(HeadError::BadSignature { key_id: key.key_id.clone() });
        }
        Ok(())
    }
}

/// Each field's form: (line, name, value).
fn check_values(values: &[(usize, &str, String)]) -> Result<(), HeadError> {
    for (line, name, value) in values {
        let hex_bytes = |n_bytes: usize| value.len() == n_bytes * 2 && hex::decode(value).is_ok();
        let reason = match *name {
            "ledger_id" if uuid_like(value) => None,
            "ledger_id" => Some("not a ledger id (a UUID)"),
            "tree_size" => None,
            "root" if hex_bytes(32) => None,
            "root" => Some("not an SM3 hash (64 hex digits)"),
            "signed_at" if value.parse::<UtcTime>().is_ok() => None,
            "signed_at" => Some("not a UTC time (2026-12-05T03:00:00.000000Z)"),
            "key_id" if hex_bytes(8) => None,
            "key_id" => Some("not a key id (16 hex digits)"),
            "signature" if hex_bytes(64) => None,
            _ => Some("not an SM2 signature (128 hex digits)"),
        };
        if let Some(reason) = reason {
            return Err(HeadError::BadFile { line: *line, field: (*name).into(), reason: reason.into() });
        }
    }
    Ok(())
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// That the log gives the head's root at the head's size, and is the
/// head's ledger.
pub fn check_against_log(ledger: &Ledger, head: &SignedHead) -> Result<(), HeadError> {
    let ledger_id = ledger.log().ledger_id().to_string();
    if head.ledger_id != ledger_id {
        return Err(HeadError::OtherLedger { head: head.ledger_id.clone(), against: "the log", other: ledger_id });
    }
    let log_head = ledger.log().durable_head().position;
    if head.tree_size > log_head {
        return Err(HeadError::BeyondLog { tree_size: head.tree_size, head: log_head });
    }
    let log_root = proof::tree_head(ledger, Some(head.tree_size))?.root;
    if log_root != head.root {
        return Err(HeadError::RootMismatch { tree_size: head.tree_size, head_root: head.root.clone(), log_root });
    }
    Ok(())
}

/// Where a consistency proof between two heads comes from.
pub enum ProofSource<'a> {
    /// Made from this ledger (`proof::consistency`).
    Ledger(&'a Ledger),
    /// Given, as `yibao proof consistency --json` writes it.
    Given(ConsistencyProof),
}

/// That `new` extends `old`: same ledger, not smaller, and a consistency
/// proof from `old`'s root to `new`'s. Both heads' signatures are the
/// caller's to check first.
pub fn check_extension(old: &SignedHead, new: &SignedHead, source: ProofSource<'_>) -> Result<(), HeadError> {
    let not_extension =
        |reason: String| HeadError::NotExtension { old_size: old.tree_size, new_size: new.tree_size, reason };
    if old.ledger_id != new.ledger_id {
        return Err(HeadError::OtherLedger {
            head: new.ledger_id.clone(),
            against: "the previous head's",
            other: old.ledger_id.clone(),
        });
    }
    if old.tree_size > new.tree_size {
        return Err(not_extension("the previous head is larger".into()));
    }
    let consistency = match source {
        ProofSource::Ledger(ledger) => {
            check_against_log(ledger, new)?;
            proof::consistency(ledger, old.tree_size, Some(new.tree_size))?
        }
        ProofSource::Given(given) => given,
    };
    if (consistency.old_size, consistency.new_size) != (old.tree_size, new.tree_size) {
        return Err(not_extension(format!(
            "the proof is from size {} to size {}",
            consistency.old_size, consistency.new_size
        )));
    }
    if consistency.old_root != old.root {
        return Err(not_extension(format!(
            "the previous head's root {} is not the proof's {}",
            old.root, consistency.old_root
        )));
    }
    if consistency.new_root != new.root {
        return Err(not_extension(format!("the head's root {} is not the proof's {}", new.root, consistency.new_root)));
    }
    consistency.verify().map_err(|error| match error {
        ProofError::Invalid(why) => not_extension(format!("the consistency proof does not verify: {why}")),
        other => HeadError::from(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use ledger::envelope::sm3;
    use ledger::merkle;

    fn new_key() -> (tempfile::TempDir, OfficeKey, PublicKeyInfo) {
        let dir = tempfile::tempdir().expect("tempdir");
        let public = keys::init(dir.path()).expect("keys init");
        let key = keys::require(dir.path()).expect("the key");
        (dir, key, public)
    }

    /// Leaf hashes of `n` made-up chain hashes, `salt` making another log.
    fn leaves(n: u64, salt: u8) -> Vec<ledger::envelope::Hash> {
        (0..n).map(|i| merkle::leaf_hash(&sm3(&[salt, i as u8]))).collect()
    }

    fn head(leaves: &[ledger::envelope::Hash], size: u64, key: &OfficeKey) -> SignedHead {
        let root = merkle::root_of(size, leaves).expect("root");
        let tree = TreeHead { tree_size: size, root: hex::encode(root) };
        sign_head("5d0c2f7e-3a43-4a8e-9d0c-3a2b1c0d9e8f", &tree, key)
    }

    #[test]
    fn a_signed_head_reads_back_and_verifies_and_a_changed_one_does_not() {
        let (_dir, key, public) = new_key();
        let signed = head(&leaves(7, 0), 7, &key);
        let read = SignedHead::parse(&signed.render()).expect("parse");
        assert_eq!(read, signed);
        assert!(read.check_signature(&public).is_ok());
        let changed = SignedHead { tree_size: 8, ..read.clone() };
        assert!(matches!(changed.check_signature(&public), Err(HeadError::BadSignature { .. })));
        let (_other_dir, _, other_public) = new_key();
        assert!(matches!(read.check_signature(&other_public), Err(HeadError::OtherKey { .. })));
    }

    #[test]
    fn a_given_consistency_proof_holds_for_a_grown_tree_only() {
        let (_dir, key, _) = new_key();
        let grown = leaves(11, 0);
        let (old, new) = (head(&grown, 4, &key), head(&grown, 11, &key));
        let path = merkle::consistency_proof(4, 11, grown.as_slice()).expect("proof");
        let proof = ConsistencyProof {
            old_size: 4,
            old_root: old.root.clone(),
            new_size: 11,
            new_root: new.root.clone(),
            path: path.iter().map(hex::encode).collect(),
        };
        assert!(check_extension(&old, &new, ProofSource::Given(proof.clone())).is_ok());
        // Another log's head of the same sizes, with the same proof path.
        let other = leaves(11, 1);
        let other_new = head(&other, 11, &key);
        let forged = ConsistencyProof { new_root: other_new.root.clone(), ..proof };
        assert!(matches!(
            check_extension(&old, &other_new, ProofSource::Given(forged)),
            Err(HeadError::NotExtension { old_size: 4, new_size: 11, .. })
        ));
    }
}
