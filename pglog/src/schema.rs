//! The tables, in a schema of their own (`yibao`): the header's stored
//! bytes (their SM3 is the genesis hash) and one row per record, keyed by
//! position, with its stream, stream version, idempotency key, content
//! digest, stored bytes and hash. The stored bytes are the sled log's,
//! byte for byte; the other columns are what the writer looks up.

use crate::connect::Work;
use ledger::log::LogHeader;
use ledger::LedgerError;
use postgres::{Client, Transaction};

/// The advisory lock every writer of the log takes for its transaction
/// (and a create for its own): positions stay gapless and the chain
/// continues from the last committed row, whichever process appends.
pub(crate) const WRITER_LOCK: i64 = 0x5949_4241_4f4c_4f47; // "YIBAOLOG"

const CREATE: &str = "
    CREATE SCHEMA IF NOT EXISTS yibao;
    CREATE TABLE IF NOT EXISTS yibao.header (
        id integer PRIMARY KEY CHECK (id = 1),
        stored bytea NOT NULL
    );
    CREATE TABLE IF NOT EXISTS yibao.records (
        position bigint PRIMARY KEY CHECK (position > 0),
        stream text NOT NULL,
        version bigint NOT NULL CHECK (version > 0),
        key text NOT NULL,
        content bytea NOT NULL,
        stored bytea NOT NULL,
        hash bytea NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS records_key ON yibao.records (key);
    CREATE UNIQUE INDEX IF NOT EXISTS records_stream_version ON yibao.records (stream, version);
";

/// Creates the tables and the header when they are missing; returns the
/// header's stored bytes (the existing ones, for a log already there).
pub(crate) fn create(client: &mut Client) -> Work<Option<Vec<u8>>> {
    let mut transaction = client.transaction()?;
    let stored = create_in(&mut transaction, None)?;
    transaction.commit()?;
    Ok(Some(stored))
}

/// [`create`] inside `transaction`, with the given header bytes (a
/// restore's) or a new header; takes the writers' lock for the rest of it.
pub(crate) fn create_in(transaction: &mut Transaction<'_>, header_bytes: Option<&[u8]>) -> Work<Vec<u8>> {
    // Two processes creating at once would race on CREATE … IF NOT EXISTS.
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK])?;
    transaction.batch_execute(CREATE)?;
    let new_bytes = match header_bytes {
        Some(bytes) => bytes.to_vec(),
        None => serde_json::to_vec(&LogHeader::new()).expect("headers serialize"),
    };
    transaction
        .execute("INSERT INTO yibao.header (id, stored) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", &[&new_bytes])?;
    Ok(transaction.query_one("SELECT stored FROM yibao.header WHERE id = 1", &[])?.get(0))
}

/// The header's stored bytes, or None when the database holds no log.
pub(crate) fn header_bytes(client: &mut Client) -> Work<Option<Vec<u8>>> {
    let exists: Option<String> = client.query_one("SELECT to_regclass('yibao.header')::text", &[])?.get(0);
    if exists.is_none() || !has_records_table(client)? {
        return Ok(None);
    }
    let row = client.query_opt("SELECT stored FROM yibao.header WHERE id = 1", &[])?;
    Ok(row.map(|row| row.get(0)))
}

pub(crate) fn has_records_table(client: &mut Client) -> Work<bool> {
    let exists: Option<String> = client.query_one("SELECT to_regclass('yibao.records')::text", &[])?.get(0);
    Ok(exists.is_some())
}

/// The header from its stored bytes, checked against this build.
pub(crate) fn parse_header(bytes: &[u8]) -> ledger::Result<LogHeader> {
    let header: LogHeader = serde_json::from_slice(bytes)
        .map_err(|e| LedgerError::Corrupt { position: 0, reason: format!("header does not parse: {e}") })?;
    header.check()?;
    Ok(header)
}
