//! The peer: SQLite in WAL mode with synchronous=FULL, one row per event
//! holding the same bincode bytes as the yibao log. It keeps a unique index
//! on idempotency keys like the ledger does, but computes no hash chain.

use crate::figures::{AppendFigures, Throughput};
use anyhow::{ensure, Context, Result};
use bincode::Options;
use ledger::envelope::{codec, encode_event};
use ledger::{Event, NewEvent};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Idempotency keys are unique, as the ledger's are. Half of them (content
/// keys) are random, so SQLite's unique index takes inserts all over.
const SCHEMA: &str = "CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
)";
/// The same without the unique index, to show what the index costs.
const SCHEMA_WITHOUT_KEY_INDEX: &str = "CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body BLOB NOT NULL
)";
const INSERT: &str = "INSERT INTO events (position, stream, idempotency_key, body) VALUES (?1, ?2, ?3, ?4)";

pub struct Peer {
    connection: Connection,
    dir: PathBuf,
    /// Position of the next row, from 1 like the ledger.
    next_position: i64,
}

impl Peer {
    pub fn create(dir: &Path, key_index: bool) -> Result<Peer> {
        std::fs::create_dir_all(dir)?;
        let connection = Connection::open(dir.join("events.sqlite"))?;
        let journal_mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        ensure!(journal_mode.eq_ignore_ascii_case("wal"), "SQLite refused WAL mode ({journal_mode})");
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.execute(if key_index { SCHEMA } else { SCHEMA_WITHOUT_KEY_INDEX }, [])?;
        Ok(Peer { connection, dir: dir.to_path_buf(), next_position: 1 })
    }

    /// Inserts `events` in transactions of `rows_per_transaction` rows,
    /// encoding each event inside the timed loop as the ledger's writer does.
    pub fn ingest(&mut self, events: &[NewEvent], rows_per_transaction: usize) -> Result<Throughput> {
        let started = Instant::now();
        for chunk in events.chunks(rows_per_transaction.max(1)) {
            let transaction = self.connection.transaction()?;
            {
                let mut insert = transaction.prepare_cached(INSERT)?;
                for (offset, new) in chunk.iter().enumerate() {
                    let position = self.next_position + offset as i64;
                    insert.execute(params![position, new.stream, new.idempotency_key, encode_event(&new.event)])?;
                }
            }
            transaction.commit()?;
            self.next_position += chunk.len() as i64;
        }
        Ok(Throughput::new(events.len() as u64, started.elapsed()))
    }

    /// Reads every row in position order and decodes its body into an event.
    pub fn replay(&self) -> Result<Throughput> {
        let started = Instant::now();
        let mut select =
            self.connection.prepare("SELECT position, stream, idempotency_key, body FROM events ORDER BY position")?;
        let mut rows = select.query([])?;
        let mut n_events = 0u64;
        let mut checksum = 0u64;
        while let Some(row) = rows.next()? {
            let position: i64 = row.get(0)?;
            let stream: String = row.get(1)?;
            let idempotency_key: String = row.get(2)?;
            let event: Event = codec().deserialize(row.get_ref(3)?.as_blob()?).context("decode a row's body")?;
            // Touch the decoded values so the work cannot be optimised away.
            checksum = checksum.wrapping_add(position as u64 + (stream.len() + idempotency_key.len()) as u64);
            std::hint::black_box(&event);
            n_events += 1;
        }
        std::hint::black_box(checksum);
        Ok(Throughput::new(n_events, started.elapsed()))
    }

    /// One row per transaction (autocommit), one client.
    pub fn single_appends(&mut self, events: &[NewEvent]) -> Result<AppendFigures> {
        let mut latencies: Vec<Duration> = Vec::with_capacity(events.len());
        let mut insert = self.connection.prepare_cached(INSERT)?;
        let started = Instant::now();
        for new in events {
            let begun = Instant::now();
            insert.execute(params![self.next_position, new.stream, new.idempotency_key, encode_event(&new.event)])?;
            latencies.push(begun.elapsed());
            self.next_position += 1;
        }
        Ok(AppendFigures::new(1, latencies, started.elapsed()))
    }

    /// Checkpoints the WAL into the database first, as a resting database
    /// would be, then sums the files.
    pub fn disk_bytes(&self) -> Result<u64> {
        self.connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(crate::figures::disk_bytes(&self.dir)?)
    }
}
