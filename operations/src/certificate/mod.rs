//! The payment certificate (参保缴费证明) of a received person-year: issued
//! from the log and the projections at one position, rendered as text or
//! HTML for people with a machine-readable data block (JSON between
//! BEGIN/END lines, or in a `<script type="application/json">` element)
//! from which the visible part is rendered, or the data block alone
//! (JSON); and verified, every field and printed line, against the
//! certificate the log gives at the head at issue.
//!
//! `data` is the data block; `render` the document format both ways
//! (render, and find the data block in a document); `issue` and `verify`
//! the two operations. With the office's signing key, a certificate
//! carries its proofs (`proofs`: the signed tree head at issue, each cited
//! fact's record and inclusion proof, the office's signature over every
//! field), which `offline` checks with nothing but the public key.

use crate::keys;
use crate::Ledger;
use ledger::Identity;

use crate::proof::HeldTree;

mod data;
mod issue;
mod offline;
mod proofs;
mod render;
mod verify;

pub use data::{signed_bytes, Certificate, Entry, FactProof, Proofs, FORMAT, VERSION};
pub use issue::{issue_from, IssueError, NotReceived, MAX_ENTRIES};
pub use offline::{verify_offline, VerifiedOffline};
pub use proofs::attach as attach_proofs;
pub use render::{render, Format, MAX_DOCUMENT_BYTES};
pub use verify::{verify, ChangedSinceIssue, Verified, VerifyError};

/// The certificate of `person`'s `coverage_year` from the log and its
/// projections at the head; the ID shown whole with `full_id`, else masked.
/// With a signing key in the data directory, it carries its offline proofs.
pub fn issue(ledger: &Ledger, person: &Identity, coverage_year: u16, full_id: bool) -> Result<Certificate, IssueError> {
    let at = ledger.projections_of_person(person, &[])?;
    let certificate = issue::issue_from(ledger.log(), &at.coverage, &at.family, person, coverage_year, full_id)?;
    match keys::load(ledger.data())? {
        Some(key) => proofs::attach(certificate, &HeldTree::default(), ledger.data(), ledger.log(), &key),
        None => Ok(certificate),
    }
}
