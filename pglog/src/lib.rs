//! The ledger's log on PostgreSQL.

use async_trait::async_trait;
use ledger::log::restore::ExportedRecord;
use ledger::log::{LogHeader, StoredRecords, VerifyReport};
use ledger::{
    AppendOutcome, Envelope, EventLog, Hash, Head, LedgerError, LogReader, LogStore, NewEvent, OpenMode, Result,
};

/// A ledger's log in a PostgreSQL database.
pub struct PgLog {
    location: String,
    header: LogHeader,
    header_bytes: Vec<u8>,
}

fn not_built(location: &str) -> LedgerError {
    LedgerError::Database { location: location.to_string(), detail: "the PostgreSQL backend is not built yet".into() }
}

impl PgLog {
    /// Opens the log in the database at `url` (creating its tables with
    /// `OpenMode::Create`).
    pub fn open(url: &str, _mode: OpenMode) -> Result<PgLog> {
        Err(not_built(url))
    }
}

/// Restores exported records into the empty database at `url`.
pub fn restore(
    url: &str,
    _header_bytes: &[u8],
    _records: impl IntoIterator<Item = Result<ExportedRecord>>,
) -> Result<Head> {
    Err(not_built(url))
}

#[async_trait]
impl EventLog for PgLog {
    async fn append(&self, _events: Vec<NewEvent>) -> Result<AppendOutcome> {
        Err(not_built(&self.location))
    }

    fn append_blocking(&self, _events: Vec<NewEvent>) -> Result<AppendOutcome> {
        Err(not_built(&self.location))
    }

    async fn read_from(&self, _position: u64, _max: usize) -> Result<Vec<Envelope>> {
        Err(not_built(&self.location))
    }

    async fn read_stream(&self, _stream: &str) -> Result<Vec<Envelope>> {
        Err(not_built(&self.location))
    }

    async fn head(&self) -> Result<Head> {
        Err(not_built(&self.location))
    }
}

impl LogReader for PgLog {
    fn durable_head(&self) -> Head {
        Head { position: 0, hash: self.genesis_hash() }
    }

    fn genesis_hash(&self) -> Hash {
        ledger::envelope::sm3(&self.header_bytes)
    }

    fn scan_records(&self, _from: u64, _to: u64, _visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        Err(not_built(&self.location))
    }

    fn read_stream_blocking(&self, _stream: &str) -> Result<Vec<Envelope>> {
        Err(not_built(&self.location))
    }

    fn ledger_id(&self) -> ledger::uuid::Uuid {
        self.header.ledger_id
    }
}

impl LogStore for PgLog {
    fn probe_blocking(&self, _events: Vec<NewEvent>) -> Result<AppendOutcome> {
        Err(not_built(&self.location))
    }

    fn header(&self) -> &LogHeader {
        &self.header
    }

    fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    fn stored_records(&self, _from: u64) -> Result<StoredRecords<'_>> {
        Err(not_built(&self.location))
    }

    fn verify(&self, _from: u64, _to: u64, _progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        Err(not_built(&self.location))
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}
