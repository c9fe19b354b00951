//! The ledger's log on PostgreSQL: the same stored bytes, positions and SM3
//! chain as the sled log, in the tables of the schema `yibao` (see
//! `schema`). One writer thread per `PgLog` commits every waiting request in
//! one transaction (group commit); several processes may append to one
//! database, serialized by an advisory lock. Reads go to the database, so a
//! replica sees what another process appended.
//!
//! The `postgres` crate is synchronous and runs a runtime of its own: it is
//! only ever called on threads outside tokio's (the writer's, a blocking
//! task's, or a scoped thread when a caller is on an async worker).

mod connect;
mod read;
mod restore;
mod schema;
mod verify;
mod writer;

use async_trait::async_trait;
use connect::Database;
use ledger::log::{LogHeader, StoredRecords, VerifyReport};
use ledger::{
    AppendOutcome, Envelope, EventLog, Hash, Head, LedgerError, LogReader, LogStore, NewEvent, OpenMode, Result,
};
use std::sync::Arc;

pub use connect::redacted;
pub use restore::restore;

/// A ledger's log in a PostgreSQL database.
pub struct PgLog {
    database: Arc<Database>,
    header: LogHeader,
    header_bytes: Vec<u8>,
    genesis: Hash,
    /// None for `Read` and `Audit` opens, which never append.
    writer: Option<writer::WriterHandle>,
}

impl PgLog {
    /// Opens the log in the database at `url` (creating its tables with
    /// `OpenMode::Create`). Without them, any other mode answers
    /// `LedgerError::NotFound`.
    pub fn open(url: &str, mode: OpenMode) -> Result<PgLog> {
        let database = Arc::new(Database::new(url)?);
        let header_bytes = database.with_client(|client| match mode {
            OpenMode::Create => schema::create(client),
            OpenMode::Existing | OpenMode::Read | OpenMode::Audit => schema::header_bytes(client),
        })?;
        let Some(header_bytes) = header_bytes else {
            return Err(LedgerError::NotFound(database.location().to_string()));
        };
        let header = schema::parse_header(&header_bytes)?;
        let genesis = ledger::envelope::sm3(&header_bytes);
        database.set_genesis(genesis);
        // Reads the head once: the log answers (and a damaged head row shows) now.
        database.read_head()?;
        let writer = match mode {
            OpenMode::Create | OpenMode::Existing => Some(writer::start(Arc::clone(&database), genesis)),
            OpenMode::Read | OpenMode::Audit => None,
        };
        Ok(PgLog { database, header, header_bytes, genesis, writer })
    }

    fn writer(&self) -> Result<&writer::WriterHandle> {
        self.writer.as_ref().ok_or(LedgerError::Closed)
    }

    /// Runs `work` on a thread where the synchronous client may block:
    /// a blocking task of tokio's, so that no async worker waits.
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || work(&database)).await.map_err(|error| LedgerError::Database {
            location: self.database.location().to_string(),
            detail: format!("a read stopped: {error}"),
        })?
    }
}

#[async_trait]
impl EventLog for PgLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.writer()?.append(events).await
    }

    fn append_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.writer()?.append_blocking(events, false)
    }

    async fn read_from(&self, position: u64, max: usize) -> Result<Vec<Envelope>> {
        self.off_runtime(move |database| database.read_range(position, max)).await
    }

    async fn read_stream(&self, stream: &str) -> Result<Vec<Envelope>> {
        let stream = stream.to_string();
        self.off_runtime(move |database| database.read_stream(&stream)).await
    }

    async fn head(&self) -> Result<Head> {
        self.off_runtime(|database| Ok(database.durable_head())).await
    }
}

impl LogReader for PgLog {
    /// Read from the database (another process may have appended), or the
    /// last head known when it does not answer.
    fn durable_head(&self) -> Head {
        self.database.durable_head()
    }

    fn genesis_hash(&self) -> Hash {
        self.genesis
    }

    fn scan_records(&self, from: u64, to: u64, visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        self.database.scan(from, to, visit)
    }

    fn read_stream_blocking(&self, stream: &str) -> Result<Vec<Envelope>> {
        self.database.read_stream(stream)
    }

    fn ledger_id(&self) -> ledger::uuid::Uuid {
        self.header.ledger_id
    }
}

impl LogStore for PgLog {
    fn probe_blocking(&self, events: Vec<NewEvent>) -> Result<AppendOutcome> {
        self.writer()?.append_blocking(events, true)
    }

    fn header(&self) -> &LogHeader {
        &self.header
    }

    fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    fn stored_records(&self, from: u64) -> Result<StoredRecords<'_>> {
        let head = self.database.read_head()?;
        Ok(Box::new(read::StoredPages::new(&self.database, from.max(1), head.position)))
    }

    fn verify(&self, from: u64, to: u64, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        verify::verify(&self.database, from, to, progress)
    }

    fn location(&self) -> String {
        self.database.location().to_string()
    }
}
