//! The ledger's one error type: rejections (the rules or the log's state say
//! no; nothing was written) apart from failures (I/O, corruption).

use crate::event::FieldError;
use crate::log::ExpectedVersion;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    // Rejections: nothing written, the caller can correct and retry.
    #[error("stream `{stream}` is at version {actual}, the append expected {expected}")]
    WrongExpectedVersion { stream: String, expected: ExpectedVersion, actual: u64 },
    #[error("idempotency key `{key}` was already used at position {original_position} for different content")]
    IdempotencyConflict { key: String, original_position: u64 },
    #[error("event {index} of the batch: {error}")]
    InvalidEvent { index: usize, error: FieldError },
    #[error("{what} is {size}, above the limit of {limit}")]
    TooLarge { what: &'static str, size: usize, limit: usize },
    #[error("the log is not empty (head at position {head}): a restore needs an empty ledger")]
    NotEmpty { head: u64 },
    #[error("no ledger at {0}: run `yibao init` first")]
    NotFound(String),

    // Failures.
    #[error("storage I/O failed")]
    Io(#[from] std::io::Error),
    #[error("sled failed")]
    Sled(#[source] sled::Error),
    /// sled found its own files damaged (a checksum failed, or it could not
    /// read them at all): nothing of the log can be trusted to read on.
    #[error("the ledger store is damaged ({detail}); restore from an export (`yibao import --restore FILE`) into an empty data directory")]
    StoreDamaged { detail: String },
    /// Another process holds the store's lock.
    #[error("the ledger is in use by another process ({holder}); stop it, or wait until it is done")]
    InUse { holder: String },
    #[error("the log is corrupt at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
    #[error("an earlier write failed to reach stable storage; reopen the ledger before writing again")]
    Poisoned,
    #[error("the ledger's writer has stopped")]
    Closed,
    /// The database holding the log (PostgreSQL) refused or failed a
    /// request; `location` names it without its password.
    #[error("the ledger database {location}: {detail}")]
    Database { location: String, detail: String },
}

impl From<sled::Error> for LedgerError {
    fn from(error: sled::Error) -> LedgerError {
        match error {
            sled::Error::Corruption { at, .. } => {
                let detail = match at {
                    Some(sled::DiskPtr::Inline(offset)) => {
                        format!("sled read corrupted data at byte {offset} of its file log/db")
                    }
                    Some(sled::DiskPtr::Blob(_, blob)) => format!("sled read a corrupted blob, log/blobs/{blob}"),
                    None => "sled read corrupted data".to_string(),
                };
                LedgerError::StoreDamaged { detail }
            }
            other => LedgerError::Sled(other),
        }
    }
}

impl LedgerError {
    /// True for rejections (bad request), false for failures.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            LedgerError::WrongExpectedVersion { .. }
                | LedgerError::IdempotencyConflict { .. }
                | LedgerError::InvalidEvent { .. }
                | LedgerError::TooLarge { .. }
                | LedgerError::NotEmpty { .. }
                | LedgerError::NotFound(_)
        )
    }
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// An error and its causes on one line, `error: cause: cause`, for notes
/// and messages that are not printed through a chain-aware reporter.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
