//! Salvage: the records of a sled store read without sled
//! (`ledger::log::salvage`), for `verify`'s report on a damaged store and
//! for `yibao salvage --out FILE`, which writes them in the export format
//! (records after a gap included, each with its hash, so the chain shows
//! where the gap is).

use crate::error::{Classified, Kind, StorageError};
use crate::import::HeadAnswer;
use crate::location::{Backend, Location};
use crate::records::{self, EnvelopeAnswer};
use ledger::log::salvage::Salvage;
use ledger::{envelope, Envelope, Head, LedgerError};
use serde::Serialize;
use std::io::Write;

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

/// Writes every readable record of the store at `location` to `out` as an
/// export does: the header line (the header's stored bytes; its head is
/// the last record written), then the records in position order.
pub fn export(location: &Location, out: &mut dyn Write) -> Result<SalvageAnswer, SalvageError> {
    let salvage = read(location)?;
    let answer = SalvageAnswer::from(&salvage);
    let (Some(header_bytes), Some(header), Some(genesis)) = (&salvage.header_bytes, &salvage.header, salvage.genesis)
    else {
        return Err(SalvageError::NoHeader { location: location.describe(), n_records: salvage.n_records });
    };
    let head = salvage.last.unwrap_or(Head { position: 0, hash: genesis });
    let header_line = records::export_header_of(header, header_bytes, genesis, head);
    write_line(out, &header_line)?;
    let mut write_error = None;
    let read = salvage.records(&mut |record| {
        let (envelope_head, event) = envelope::decode_record(&record.stored)
            .map_err(|e| LedgerError::Corrupt { position: record.position, reason: e.to_string() })?;
        let envelope = Envelope { head: envelope_head, event, prev_hash: record.prev_hash, hash: record.hash };
        write_line(out, &EnvelopeAnswer::new(&envelope, Some(&record.stored))).map_err(|error| {
            let message = error.to_string();
            write_error = Some(error);
            LedgerError::Io(std::io::Error::other(message))
        })
    });
    if let Some(error) = write_error {
        return Err(error);
    }
    read.map_err(|error| SalvageError::Read { location: location.describe(), source: error.into() })?;
    out.flush().map_err(SalvageError::Write)?;
    Ok(answer)
}

fn write_line(out: &mut dyn Write, line: &impl Serialize) -> Result<(), SalvageError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| SalvageError::Write(e.into()))?;
    out.write_all(b"\n").map_err(SalvageError::Write)
}
