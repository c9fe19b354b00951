//! The event log: an append-only, gapless, hash-chained sequence of records.

mod anchor;
pub mod block;
mod flusher;
mod index;
mod manifest;
mod owner;
pub mod preserve;
pub mod restore;
mod run;
pub mod salvage;
mod scan;
mod sled_log;
mod store;
pub mod verify;
mod writer;

use crate::envelope::{Envelope, Hash};
use crate::error::Result;
use crate::event::Event;
use async_trait::async_trait;
use std::fmt;

pub use sled_log::{open_store, LogHeader, OpenMode, SledLog};
pub use store::{LogStore, StoredRecords};
pub use verify::{VerifyProblem, VerifyReport};
pub use writer::{check_new_event, content_digest};

/// Most events in one append request.
pub const MAX_EVENTS_PER_APPEND: usize = 4_000_000;
/// Longest stream id, idempotency key or actor, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// What the appender believes the stream's version is (optimistic
/// concurrency). Versions count a stream's events from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream has no events yet.
    NoStream,
    /// The stream's last event has this version.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event to append, with its envelope's caller-given parts.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub idempotency_key: String,
    pub actor: String,
    pub event: Event,
}

impl NewEvent {
    /// A fact from outside: its own stream, no version check, and its natural
    /// idempotency key (channel reference) or else one derived from content.
    pub fn fact(event: Event, actor: &str) -> NewEvent {
        let idempotency_key = event.own_key();
        NewEvent {
            stream: event.stream(),
            expected: ExpectedVersion::Any,
            idempotency_key,
            actor: actor.to_string(),
            event,
        }
    }
}

/// `<type>/<SM3 of the encoded event, 128 bits>`: the same fact gives the same
/// key, so re-importing a file appends nothing.
pub fn content_key(event: &Event) -> String {
    content_key_of(event, &crate::envelope::encode_event(event))
}

/// [`content_key`] from the event's encoded bytes.
pub(crate) fn content_key_of(event: &Event, event_bytes: &[u8]) -> String {
    let digest = crate::envelope::sm3(event_bytes);
    format!("{}/{}", event.type_name(), hex::encode(&digest[..16]))
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The position of each requested event: new, or the original one for an
    /// idempotent repeat.
    pub positions: Vec<u64>,
    /// How many were new.
    pub n_appended: usize,
    /// The durable head after the append.
    pub head: Head,
}

/// What a writer decided for one event of a request, before storing it
/// (every backend's writer decides the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// To append as this version of its stream.
    New { version: u64 },
    /// Already recorded at this position.
    Duplicate(u64),
    /// Repeats an earlier event of the same request.
    DuplicateOf(usize),
}

/// A probe's answer, as an append's: each event's position where the log
/// already holds it, 0 where it would be appended (also for a repeat of
/// such an event earlier in the request, which an append records once).
pub fn probe_outcome(plans: &[Plan], head: Head) -> AppendOutcome {
    let mut positions: Vec<u64> = Vec::with_capacity(plans.len());
    let mut n_new = 0;
    for plan in plans {
        let position = match *plan {
            Plan::New { .. } => {
                n_new += 1;
                0
            }
            Plan::Duplicate(position) => position,
            Plan::DuplicateOf(earlier_idx) => positions[earlier_idx],
        };
        positions.push(position);
    }
    AppendOutcome { positions, n_appended: n_new, head }
}

/// The last durable record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0 for an empty log.
    pub position: u64,
    /// The genesis hash for an empty log.
    pub hash: Hash,
}

/// The stored blocks of an append that a crash cut short: it was never
/// acknowledged, readers never see it, and the next open for writing
/// removes it. Only an audit open, which changes nothing, finds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnfinishedAppend {
    /// The last position of the whole requests before it.
    pub after: u64,
    pub n_records: u64,
    pub n_blocks: u64,
}

/// Writing the log: how commands and the service append; sled is one backend.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends all events or none. Acknowledged only once on stable storage.
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome>;
    /// [`EventLog::append`] for callers without an async runtime (the CLI,
    /// and the service's writes decided under its write lock).
    fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome>;
    /// Up to `max` records from `position` on (1 is the first).
    async fn read_from(&self, position: u64, max: usize) -> Result<Vec<Envelope>>;
    /// All records of one stream, in order.
    async fn read_stream(&self, stream: &str) -> Result<Vec<Envelope>>;
    /// The last durable record.
    async fn head(&self) -> Result<Head>;
}

/// Reading the log: how projections, replay and the commands read it,
/// whichever backend holds it. Readers see records up to the durable head
/// only. Synchronous: folds run on threads of their own, and the service
/// reads off its async workers.
///
/// Object safe, so that a backend can be chosen at run time: callers take
/// `&dyn LogReader`, whose `scan` takes a closure. The one indirect call
/// per record costs nothing beside decoding it.
pub trait LogReader: Send + Sync {
    /// The last durable record (position 0 and the genesis hash when empty).
    fn durable_head(&self) -> Head;
    /// `prev_hash` of position 1.
    fn genesis_hash(&self) -> Hash;
    /// Calls `visit` on every durable record in `[from, to]` (clamped to
    /// the head) in position order, stopping at its first error. A backend
    /// may decode in parallel; the order seen by `visit` never changes.
    fn scan_records(&self, from: u64, to: u64, visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()>;
    /// All durable records of one stream, in order.
    fn read_stream_blocking(&self, stream: &str) -> Result<Vec<Envelope>>;
    /// Which ledger this is (certificates name it): fixed when it was created.
    fn ledger_id(&self) -> uuid::Uuid;
}

/// A log shared between threads (the service's) reads as the log.
impl<L: LogReader + ?Sized> LogReader for std::sync::Arc<L> {
    fn durable_head(&self) -> Head {
        (**self).durable_head()
    }

    fn genesis_hash(&self) -> Hash {
        (**self).genesis_hash()
    }

    fn scan_records(&self, from: u64, to: u64, visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        (**self).scan_records(from, to, visit)
    }

    fn read_stream_blocking(&self, stream: &str) -> Result<Vec<Envelope>> {
        (**self).read_stream_blocking(stream)
    }

    fn ledger_id(&self) -> uuid::Uuid {
        (**self).ledger_id()
    }
}

/// A backend: the log read and written. Every type with both traits is one.
pub trait LogBackend: LogReader + EventLog {}

impl<L: LogReader + EventLog + ?Sized> LogBackend for L {}

impl dyn LogReader + '_ {
    /// [`LogReader::scan_records`] with a closure.
    pub fn scan(&self, from: u64, to: u64, mut visit: impl FnMut(Envelope) -> Result<()>) -> Result<()> {
        self.scan_records(from, to, &mut visit)
    }
}
