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
//! the two operations.

mod data;
mod issue;
mod render;
mod verify;

pub use data::{Certificate, Entry, FORMAT, VERSION};
pub use issue::{issue, issue_from, IssueError, NotReceived, MAX_ENTRIES};
pub use render::{render, Format, MAX_DOCUMENT_BYTES};
pub use verify::{verify, ChangedSinceIssue, Verified, VerifyError};
