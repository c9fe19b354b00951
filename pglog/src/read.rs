//! Reads: the head from the database (another process may append), records
//! in pages of position ranges, a stream by its index, the stored records an
//! export writes.

use crate::connect::{Database, Work};
use ledger::envelope::{self, Hash};
use ledger::log::restore::ExportedRecord;
use ledger::{Envelope, Head, LedgerError, Result};
use postgres::GenericClient;
use std::collections::VecDeque;

/// The head queries in flight and the last one's answer (see
/// `Database::read_head`).
#[derive(Default)]
pub(crate) struct HeadReads {
    state: std::sync::Mutex<HeadReadState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct HeadReadState {
    /// Queries started and the last one finished, numbered from 1.
    started: u64,
    finished: u64,
    running: bool,
    /// The head the last finished query read; `None` when it failed.
    outcome: Option<Head>,
}

/// Records per page of a scan.
const PAGE_RECORDS: u64 = 5_000;

/// The last committed record, or position 0 with `genesis`.
pub(crate) fn head_in(client: &mut impl GenericClient, genesis: Hash) -> Work<Head> {
    let row = client.query_opt("SELECT position, hash FROM yibao.records ORDER BY position DESC LIMIT 1", &[])?;
    Ok(match row {
        Some(row) => Head { position: position_of(row.get(0)), hash: hash_of(row.get(1), position_of(row.get(0)))? },
        None => Head { position: 0, hash: genesis },
    })
}

fn position_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A stored hash column as a hash; another length is corruption.
pub(crate) fn hash_of(bytes: Vec<u8>, position: u64) -> Result<Hash> {
    bytes.try_into().map_err(|bytes: Vec<u8>| LedgerError::Corrupt {
        position,
        reason: format!("the stored hash has {} bytes, not 32", bytes.len()),
    })
}

/// One stored row as read back.
pub(crate) struct StoredRow {
    pub position: u64,
    pub stored: Vec<u8>,
    pub hash: Hash,
}

/// Rows `from..=to` in position order.
pub(crate) fn rows_in(client: &mut impl GenericClient, from: u64, to: u64) -> Work<Vec<StoredRow>> {
    let rows = client.query(
        "SELECT position, stored, hash FROM yibao.records WHERE position BETWEEN $1 AND $2 ORDER BY position",
        &[&(from as i64), &(to.min(i64::MAX as u64) as i64)],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let position = position_of(row.get(0));
        out.push(StoredRow { position, stored: row.get(1), hash: hash_of(row.get(2), position)? });
    }
    Ok(out)
}

/// The hash a record at `position` chains from: the genesis hash, or the
/// stored hash of the record before it.
fn prev_hash_in(client: &mut impl GenericClient, position: u64, genesis: Hash) -> Work<Hash> {
    if position <= 1 {
        return Ok(genesis);
    }
    let before = position - 1;
    let row = client.query_opt("SELECT hash FROM yibao.records WHERE position = $1", &[&(before as i64)])?;
    match row {
        Some(row) => Ok(hash_of(row.get(0), before)?),
        None => Err(LedgerError::Corrupt { position: before, reason: "the record is missing".into() }.into()),
    }
}

/// A stored row as an envelope, checked for its position.
fn envelope_of(row: StoredRow, prev_hash: Hash) -> Result<Envelope> {
    let corrupt = |reason: String| LedgerError::Corrupt { position: row.position, reason };
    let (head, event) = envelope::decode_record(&row.stored).map_err(|e| corrupt(e.to_string()))?;
    if head.position != row.position {
        return Err(corrupt(format!("stored bytes claim position {}", head.position)));
    }
    Ok(Envelope { head, event, prev_hash, hash: row.hash })
}

impl Database {
    /// The head as the database has it now.
    ///
    /// Many callers at once (a replica's lookups, each reading the head
    /// before it answers) share queries: each waits for one that started
    /// after it asked, so it still sees every commit acknowledged before,
    /// and one runs at a time — instead of a query, and often a new
    /// connection, per caller.
    pub fn read_head(&self) -> Result<Head> {
        let reads = &self.head_reads;
        let mut state = ledger::sync::lock_plain(&reads.state);
        // The first query to start from now on answers this caller.
        let wanted = state.started + 1;
        loop {
            if state.finished >= wanted {
                match state.outcome {
                    Some(head) => return Ok(head),
                    // That query failed: this caller asks on its own, for its own error.
                    None => break,
                }
            }
            if !state.running {
                state.running = true;
                state.started += 1;
                let generation = state.started;
                drop(state);
                let read = self.query_head();
                let mut state = ledger::sync::lock_plain(&reads.state);
                state.running = false;
                state.finished = generation;
                state.outcome = read.as_ref().ok().copied();
                reads.done.notify_all();
                return read;
            }
            state = reads.done.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(state);
        self.query_head()
    }

    fn query_head(&self) -> Result<Head> {
        let genesis = self.genesis();
        let head = self.with_client(|client| head_in(client, genesis))?;
        self.note_head(head);
        Ok(head)
    }

    /// [`Database::read_head`], or the last head known when the database
    /// does not answer.
    pub fn durable_head(&self) -> Head {
        self.read_head().unwrap_or_else(|_| self.last_head())
    }

    /// Calls `visit` on the records of `[from, to]` (clamped to the head),
    /// read a page of positions at a time.
    pub fn scan(&self, from: u64, to: u64, visit: &mut dyn FnMut(Envelope) -> Result<()>) -> Result<()> {
        let to = to.min(self.read_head()?.position);
        let from = from.max(1);
        if from > to {
            return Ok(());
        }
        let genesis = self.genesis();
        let mut prev = self.with_client(|client| prev_hash_in(client, from, genesis))?;
        let mut next = from;
        while next <= to {
            let page_end = to.min(next + PAGE_RECORDS - 1);
            let rows = self.with_client(|client| rows_in(client, next, page_end))?;
            for row in rows {
                if row.position != next {
                    return Err(LedgerError::Corrupt { position: next, reason: "the record is missing".into() });
                }
                let hash = row.hash;
                visit(envelope_of(row, prev)?)?;
                prev = hash;
                next += 1;
            }
            if next <= page_end {
                return Err(LedgerError::Corrupt { position: next, reason: "the record is missing".into() });
            }
        }
        Ok(())
    }

    pub fn read_range(&self, from: u64, max: usize) -> Result<Vec<Envelope>> {
        let from = from.max(1);
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.scan(from, from.saturating_add(max as u64 - 1), &mut |envelope| {
            out.push(envelope);
            Ok(())
        })?;
        Ok(out)
    }

    /// A stream's records by the (stream, version) index, each with the
    /// hash of the record before it.
    pub fn read_stream(&self, stream: &str) -> Result<Vec<Envelope>> {
        let genesis = self.genesis();
        let head = self.read_head()?.position;
        let rows = self.with_client(|client| {
            let rows = client.query(
                "SELECT r.position, r.stored, r.hash, p.hash FROM yibao.records r \
                 LEFT JOIN yibao.records p ON p.position = r.position - 1 \
                 WHERE r.stream = $1 AND r.position <= $2 ORDER BY r.version",
                &[&stream, &(head as i64)],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let position = position_of(row.get(0));
                let prev: Option<Vec<u8>> = row.get(3);
                let prev = match prev {
                    Some(bytes) => hash_of(bytes, position - 1)?,
                    None if position == 1 => genesis,
                    None => {
                        return Err(LedgerError::Corrupt {
                            position: position - 1,
                            reason: "the record is missing".into(),
                        }
                        .into())
                    }
                };
                out.push((StoredRow { position, stored: row.get(1), hash: hash_of(row.get(2), position)? }, prev));
            }
            Ok(out)
        })?;
        rows.into_iter().map(|(row, prev)| envelope_of(row, prev)).collect()
    }
}

/// Stored records from a position to a head, read a page at a time.
pub(crate) struct StoredPages<'a> {
    database: &'a Database,
    next: u64,
    head: u64,
    page: VecDeque<StoredRow>,
    failed: bool,
}

impl<'a> StoredPages<'a> {
    pub fn new(database: &'a Database, from: u64, head: u64) -> StoredPages<'a> {
        StoredPages { database, next: from, head, page: VecDeque::new(), failed: false }
    }
}

impl Iterator for StoredPages<'_> {
    type Item = Result<ExportedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next > self.head {
            return None;
        }
        if self.page.is_empty() {
            let (from, to) = (self.next, self.head.min(self.next + PAGE_RECORDS - 1));
            match self.database.with_client(|client| rows_in(client, from, to)) {
                Ok(rows) => self.page = rows.into(),
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
        let Some(row) = self.page.pop_front().filter(|row| row.position == self.next) else {
            self.failed = true;
            return Some(Err(LedgerError::Corrupt { position: self.next, reason: "the record is missing".into() }));
        };
        self.next += 1;
        Some(Ok(ExportedRecord { position: row.position, stored: row.stored, hash: row.hash }))
    }
}
