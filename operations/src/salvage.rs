//! Salvage: the records of a sled store read without sled
//! (`ledger::log::salvage`), for `verify`'s report on a damaged store and
//! for `yibao salvage --out FILE`, which `records::export_salvage` writes
//! in the export format.

use crate::error::{Classified, Kind, StorageError};
use crate::import::HeadAnswer;
use crate::location::{Backend, Location};
use ledger::log::salvage::Salvage;
use serde::Serialize;

/// What the raw reading found (verify's `damage`, salvage's summary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SalvageAnswer {
    /// Records that check (hash and position), taken once each.
    pub n_records: u64,
    /// Runs of consecutive readable records; `linked` when a run's first
    /// record chains from the record before it.
    pub runs: Vec<RangeAnswer>,
    /// Positions that could not be read, up to the head of the last close.
    pub gaps: Vec<RangeAnswer>,
    /// The last position an unbroken chain from the genesis hash reaches.
    pub unbroken_to: u64,
    /// The first position that chain does not reach, when the log goes on
    /// past it (the first damaged position).
    pub first_damaged: Option<u64>,
    /// The head at the last close (`DIR/head`), if readable.
    pub anchor: Option<HeadAnswer>,
    /// The last record read, if any.
    pub last: Option<HeadAnswer>,
    /// Positions where other bytes than the record taken were found.
    pub conflicts: Vec<u64>,
    /// Records of an append never finished (as recovery removes), left out.
    pub n_unfinished: u64,
    /// Whether the log's header was found (an export of it needs it).
    pub header_found: bool,
    pub n_bytes_read: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RangeAnswer {
    pub first: u64,
    pub last: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked: Option<bool>,
}

impl SalvageAnswer {
    /// Nothing is missing: every record to the head of the last close
    /// was read, chained from the genesis hash.
    pub fn is_whole(&self) -> bool {
        self.first_damaged.is_none() && self.gaps.is_empty()
    }
}

impl From<&Salvage> for SalvageAnswer {
    fn from(salvage: &Salvage) -> SalvageAnswer {
        SalvageAnswer {
            n_records: salvage.n_records,
            runs: salvage
                .runs
                .iter()
                .map(|run| RangeAnswer { first: run.first, last: run.last, linked: Some(run.linked) })
                .collect(),
            gaps: salvage
                .gaps
                .iter()
                .map(|gap| RangeAnswer { first: *gap.start(), last: *gap.end(), linked: None })
                .collect(),
            unbroken_to: salvage.unbroken_to,
            first_damaged: salvage.first_break(),
            anchor: salvage.anchor.map(HeadAnswer::from),
            last: salvage.last.map(HeadAnswer::from),
            conflicts: salvage.conflicts.clone(),
            n_unfinished: salvage.n_unfinished,
            header_found: salvage.header_bytes.is_some(),
            n_bytes_read: salvage.n_bytes_read,
        }
    }
}

/// Salvage failed.
#[derive(Debug, thiserror::Error)]
pub enum SalvageError {
    #[error(
        "salvage reads a sled store's files; {location} is a PostgreSQL database, whose own recovery \
         (WAL, a base backup, point-in-time recovery) is the way to repair it"
    )]
    Postgres { location: String },
    #[error(
        "the log's header was not found in the files under {location}/log: the records cannot be \
         written in the export format without it ({n_records} records were read)"
    )]
    NoHeader { location: String, n_records: u64 },
    #[error("writing the salvage")]
    Write(#[source] std::io::Error),
    #[error("reading the files of {location}")]
    Read {
        location: String,
        #[source]
        source: StorageError,
    },
}

impl Classified for SalvageError {
    fn kind(&self) -> Kind {
        match self {
            SalvageError::Postgres { .. } => Kind::BadInput,
            SalvageError::NoHeader { .. } => Kind::Findings,
            SalvageError::Write(_) => Kind::Failure,
            SalvageError::Read { source, .. } => source.kind(),
        }
    }
}

/// Refuses a PostgreSQL store: there is no sled file to read.
pub fn check_backend(location: &Location) -> Result<(), SalvageError> {
    match location.store {
        Backend::Postgres(_) => Err(SalvageError::Postgres { location: location.describe() }),
        Backend::Sled => Ok(()),
    }
}

/// Reads the sled store at `location` without sled.
pub fn read(location: &Location) -> Result<Salvage, SalvageError> {
    check_backend(location)?;
    Salvage::read(&location.data)
        .map_err(|error| SalvageError::Read { location: location.describe(), source: error.into() })
}
