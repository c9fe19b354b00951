//! One fact built from typed input (a command's flags, parsed by the
//! adapter): a registration or a payment, put through the edge's checks
//! (`facts::admit`) as a line of an import file would be, then appended.
//! Neither is a fact the rules decide.

use crate::channels::Channels;
use crate::error::{Classified, Kind, StorageError};
use crate::facts;
use crate::handle::Ledger;
use crate::import::HeadAnswer;
use ledger::event::{FieldError, PaymentReceived, PersonRegistered};
use ledger::{Event, LogBackend};
use serde::Serialize;

/// What appending one fact did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Written {
    /// Where the fact is: appended now, or before (`repeat`).
    pub position: u64,
    /// The same fact with the same key was already recorded.
    pub repeat: bool,
    /// The fact in a line, IDs masked.
    pub summary: String,
    pub head: HeadAnswer,
}

/// Appending one fact failed; nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A field fails the edge's checks (canonical text, a known channel,
    /// limits).
    #[error("field `{}`: {}", .0.field, .0.reason)]
    Field(FieldError),
    #[error(transparent)]
    Channels(#[from] crate::channels::ChannelsError),
    #[error("appending the fact")]
    Storage(#[from] StorageError),
}

impl Classified for WriteError {
    fn kind(&self) -> Kind {
        match self {
            WriteError::Field(_) | WriteError::Channels(_) => Kind::BadInput,
            WriteError::Storage(error) => error.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            WriteError::Field(error) => Some(error.field),
            WriteError::Channels(_) | WriteError::Storage(_) => None,
        }
    }
}

/// `yibao register`: a person registered in a region.
pub fn register(ledger: &Ledger, registration: PersonRegistered, actor: &str) -> Result<Written, WriteError> {
    append_fact(ledger, Event::PersonRegisteredV1(registration), actor)
}

/// `yibao pay`: a premium received.
pub fn pay(ledger: &Ledger, payment: PaymentReceived, actor: &str) -> Result<Written, WriteError> {
    append_fact(ledger, Event::PaymentReceivedV1(payment), actor)
}

/// Any fact no rule decides, through the edge's checks, then appended.
pub fn append_fact(ledger: &Ledger, event: Event, actor: &str) -> Result<Written, WriteError> {
    append_to(ledger.log(), ledger.channels()?, event, actor)
}

/// [`append_fact`] for a caller that holds the log and channels already
/// (a command that read the projections first).
pub fn append_to(
    log: &(impl LogBackend + ?Sized),
    channels: &Channels,
    event: Event,
    actor: &str,
) -> Result<Written, WriteError> {
    let new = facts::admit(event, None, actor, channels).map_err(WriteError::Field)?;
    let summary = facts::summary(&new.event);
    let outcome = log.append_blocking(vec![new]).map_err(StorageError::from)?;
    Ok(Written {
        position: outcome.positions.first().copied().unwrap_or(outcome.head.position),
        repeat: outcome.n_appended == 0,
        summary,
        head: outcome.head.into(),
    })
}
