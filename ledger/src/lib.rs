//! yibao's ledger: the facts (events), their envelope, money and identities,
//! and the durable, hash-chained event log on sled.
//!
//! Knows nothing of HTTP, terminals or files other than its own store.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod envelope;
pub mod error;
pub mod event;
pub mod id;
pub mod log;
pub mod merkle;
pub mod money;
#[cfg(feature = "openapi")]
mod schema;
pub mod sync;
pub mod text;
pub mod time;

pub use envelope::{Envelope, EnvelopeHead, Hash};
pub use error::{LedgerError, Result};
pub use event::Event;
pub use id::{IdKind, Identity, RegionCode};
pub use log::{
    AppendOutcome, EventLog, ExpectedVersion, Head, LogBackend, LogReader, LogStore, NewEvent, OpenMode, SledLog,
};
pub use money::Money;
pub use time::{BeijingTime, Date, UtcTime};
/// Re-exported so that dependants name event ids without their own uuid dependency.
pub use uuid;
