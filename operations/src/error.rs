//! What every operation's error enum shares: a storage error underneath,
//! and a kind that tells a frontend how to answer (an exit code, an HTTP
//! status) without knowing the operation.

use ledger::LedgerError;
use projections::checkpoint::CheckpointError;

/// How a frontend answers an error, whatever the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Input the caller can correct (a bad field, a malformed file): exit 2, HTTP 400.
    BadInput,
    /// A well-formed fact the rules refuse against the ledger's state: exit 2, HTTP 422.
    Refused,
    /// A key already taken by other content, a stream moved on: exit 2, HTTP 409.
    Conflict,
    /// The person, year, application or file asked for is not there: exit 1, HTTP 404.
    NotFound,
    /// The operation ran and found something (damage, breaks, drift): exit 1.
    Findings,
    /// A genuine record the log now states otherwise: exit 4.
    Changed,
    /// The ledger is busy or taken by another process: exit 3, HTTP 503.
    Unavailable,
    /// Storage failed or is damaged: exit 3, HTTP 500.
    Failure,
}

/// Implemented by every operation's error enum.
pub trait Classified: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> Kind;
    /// The input field at fault, when one is (named in HTTP answers).
    fn field(&self) -> Option<&str> {
        None
    }
}

/// Reading or writing the log or a projection's checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the {name} checkpoint")]
    Checkpoint {
        name: &'static str,
        #[source]
        source: CheckpointError,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classified for StorageError {
    fn kind(&self) -> Kind {
        match self {
            StorageError::Ledger(
                LedgerError::IdempotencyConflict { .. } | LedgerError::WrongExpectedVersion { .. },
            ) => Kind::Conflict,
            StorageError::Ledger(error) if error.is_rejection() => Kind::BadInput,
            StorageError::Ledger(LedgerError::InUse { .. }) => Kind::Unavailable,
            _ => Kind::Failure,
        }
    }
}

pub use ledger::error::chain;
