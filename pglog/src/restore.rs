//! Restore into an empty database: each exported record is checked as the
//! sled restore checks it (`ledger::log::restore::check_exported`) and
//! stored in batches (binary COPY), all in one transaction: a restore that fails
//! leaves the database as it was.

use crate::connect::{Database, Work};
use crate::schema;
use crate::writer::{copy_rows, Rows};
use ledger::envelope;
use ledger::log::content_digest;
use ledger::log::restore::{check_exported, ExportedRecord};
use ledger::{Head, LedgerError, Result};

/// Rows per COPY.
const BATCH_RECORDS: usize = 10_000;

/// Restores exported records into the database at `url`, which must hold
/// no log or an empty one (whose header the export's replaces).
pub fn restore(
    url: &str,
    header_bytes: &[u8],
    records: impl IntoIterator<Item = Result<ExportedRecord>>,
) -> Result<Head> {
    let database = Database::new(url)?;
    schema::parse_header(header_bytes)?;
    let genesis = envelope::sm3(header_bytes);
    // On this thread: the records need not be Send (callers are synchronous).
    let mut records = records.into_iter();
    let mut client = database.connect()?;
    let result = write_all(&mut client, header_bytes, genesis, &mut records);
    result.map_err(|error| database.ledger_error(error))
}

fn write_all(
    client: &mut postgres::Client,
    header_bytes: &[u8],
    genesis: ledger::Hash,
    records: &mut dyn Iterator<Item = Result<ExportedRecord>>,
) -> Work<Head> {
    // One transaction, tables included: a failed restore leaves nothing.
    let mut transaction = client.transaction()?;
    schema::create_in(&mut transaction, Some(header_bytes))?;
    let existing = crate::read::head_in(&mut transaction, genesis)?;
    if existing.position > 0 {
        return Err(LedgerError::NotEmpty { head: existing.position }.into());
    }
    // An empty log's header (another ledger id) gives way to the export's.
    transaction.execute("UPDATE yibao.header SET stored = $1 WHERE id = 1", &[&header_bytes])?;
    let mut head = Head { position: 0, hash: genesis };
    let mut batch = Rows::default();
    for record in records {
        let record = record?;
        let envelope_head = check_exported(&head, &record)?;
        let (_, event_bytes) = envelope::decode_head(&record.stored)
            .map_err(|e| LedgerError::Corrupt { position: record.position, reason: e.to_string() })?;
        batch.positions.push(record.position as i64);
        batch.contents.push(content_digest(&envelope_head.stream, event_bytes).to_vec());
        batch.streams.push(envelope_head.stream);
        batch.versions.push(envelope_head.stream_version as i64);
        batch.keys.push(envelope_head.idempotency_key);
        batch.hashes.push(record.hash.to_vec());
        batch.stored.push(record.stored);
        head = Head { position: record.position, hash: record.hash };
        if batch.positions.len() >= BATCH_RECORDS {
            copy_rows(&mut transaction, &std::mem::take(&mut batch))?;
        }
    }
    copy_rows(&mut transaction, &batch)?;
    transaction.commit()?;
    Ok(head)
}
