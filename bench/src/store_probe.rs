//! `yibao-bench store`: candidate stores for the per-person coverage
//! records, on the real payload. A generated prefecture-year is folded into
//! the coverage projection; every person's record (bincode, as the
//! projection keeps it) is written to a file; then, for each candidate,
//! child processes fill a store with them (batches of 10,000), open it cold
//! and read 100 random persons, and rewrite 100,000 random persons in
//! batches of 10,000 (what a fold writing back the persons it touched
//! does). Each child's wall time and peak RSS (its own `VmHWM`) are the
//! store's alone; fill and rewrite read the records file into memory first
//! (about 130 MB per million persons), which their RSS includes.

use crate::scale::{bytes_under, run_watched};
use anyhow::{bail, Context, Result};
use ledger::{NewEvent, OpenMode, SledLog};
use projections::coverage::Coverage;
use projections::Projection;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Records per write transaction.
const BATCH: usize = 10_000;
/// Persons read by a cold process.
const GETS: usize = 100;
/// Persons rewritten by the update child.
const UPDATES: usize = 100_000;

/// The stores compared.
const KINDS: [&str; 2] = ["sqlite", "redb"];

pub fn run(dir: &Path, persons: u64, seed: u64) -> Result<()> {
    let records = dir.join("records.bin");
    let keys = dir.join("keys.txt");
    let (n_records, n_bytes) = crate::phase("generate, ingest, fold, write the records", || {
        write_records(dir, persons, seed, &records, &keys)
    })?;
    let me = std::env::current_exe()?;
    println!(
        "per-person coverage records: {} persons, {} records, {:.0} bytes each on average (bincode)",
        crate::report::count(persons as f64),
        crate::report::count(n_records as f64),
        n_bytes as f64 / n_records.max(1) as f64
    );
    println!(
        "{:<8} {:>9} {:>10} {:>10} {:>22} {:>18}",
        "store", "fill s", "fill RSS", "on disk", "cold open + 100 gets", "100k rewrites"
    );
    for kind in KINDS {
        let path = dir.join(format!("store-{kind}"));
        let fill = child(&me, kind, "fill", &path, &records, &keys)?;
        let on_disk = bytes_under(&path);
        let mut gets = Vec::new();
        for _ in 0..3 {
            gets.push(child(&me, kind, "get", &path, &records, &keys)?);
        }
        let update = child(&me, kind, "update", &path, &records, &keys)?;
        let get_ms: Vec<String> = gets.iter().map(|g| format!("{:.0}", g.0 * 1e3)).collect();
        println!(
            "{:<8} {:>9.1} {:>7.0} MB {:>7.0} MB {:>14} ms, {:>3.0} MB {:>10.1} s, {:.0} MB",
            kind,
            fill.0,
            fill.1,
            on_disk as f64 / 1e6,
            get_ms.join("/"),
            gets.iter().map(|g| g.1).fold(0.0, f64::max),
            update.0,
            update.1
        );
    }
    Ok(())
}

/// Runs `yibao-bench store-child`: (seconds, peak RSS MB).
fn child(me: &Path, kind: &str, op: &str, path: &Path, records: &Path, keys: &Path) -> Result<(f64, f64)> {
    let mut command = Command::new(me);
    command.args(["store-child", "--kind", kind, "--op", op, "--path"]).arg(path);
    command.arg("--records").arg(records).arg("--keys").arg(keys);
    let finished = run_watched(&mut command)?;
    if !finished.ok {
        bail!("store-child {kind} {op} failed: {}", finished.stderr.trim());
    }
    Ok((finished.seconds, finished.peak_rss_mb))
}

fn write_records(dir: &Path, persons: u64, seed: u64, records: &Path, keys: &Path) -> Result<(u64, u64)> {
    let log = SledLog::open(&dir.join("log"), OpenMode::Create)?;
    let mut batch = Vec::with_capacity(50_000);
    for event in yibao::generate::facts(seed, persons) {
        batch.push(NewEvent::fact(event, "bench"));
        if batch.len() == 50_000 {
            log.append_blocking(std::mem::take(&mut batch)).context("ingest")?;
        }
    }
    if !batch.is_empty() {
        log.append_blocking(batch).context("ingest")?;
    }
    let mut coverage = Coverage::new();
    log.scan(1, u64::MAX, |envelope| {
        coverage.apply(&envelope);
        Ok(())
    })?;
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(records)?);
    let (mut n_records, mut n_bytes) = (0_u64, 0_u64);
    let mut ids: Vec<String> = Vec::new();
    for (identity, bytes) in coverage.encoded_persons() {
        let bytes = bytes.context("encoding a person")?;
        let key = identity.to_string();
        ids.push(key.clone());
        out.write_all(&(key.len() as u32).to_le_bytes())?;
        out.write_all(key.as_bytes())?;
        out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        out.write_all(&bytes)?;
        n_records += 1;
        n_bytes += bytes.len() as u64;
    }
    out.flush()?;
    let sample: Vec<&str> = (0..GETS).map(|k| ids[(k.wrapping_mul(7_919) + 11) % ids.len().max(1)].as_str()).collect();
    std::fs::write(keys, sample.join("\n"))?;
    Ok((n_records, n_bytes))
}

/// The records file, back as (key, payload) pairs.
fn read_records(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut input = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut out = Vec::new();
    let mut length = [0_u8; 4];
    loop {
        match input.read_exact(&mut length) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(error) => return Err(error.into()),
        }
        let mut key = vec![0_u8; u32::from_le_bytes(length) as usize];
        input.read_exact(&mut key)?;
        input.read_exact(&mut length)?;
        let mut value = vec![0_u8; u32::from_le_bytes(length) as usize];
        input.read_exact(&mut value)?;
        out.push((String::from_utf8(key).context("a key")?, value));
    }
}

/// One child's work.
pub fn child_main(kind: &str, op: &str, path: &Path, records: &Path, keys: &Path) -> Result<()> {
    match (kind, op) {
        ("sqlite", "fill") => sqlite_fill(path, &read_records(records)?),
        ("sqlite", "get") => sqlite_get(path, &read_keys(keys)?),
        ("sqlite", "update") => sqlite_update(path, &read_records(records)?),
        ("redb", "fill") => redb_fill(path, &read_records(records)?),
        ("redb", "get") => redb_get(path, &read_keys(keys)?),
        ("redb", "update") => redb_update(path, &read_records(records)?),
        _ => bail!("no store-child {kind} {op}"),
    }
}

fn read_keys(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?.lines().map(str::to_string).collect())
}

/// The persons an update rewrites: spread over all of them.
fn picked(records: &[(String, Vec<u8>)]) -> impl Iterator<Item = &(String, Vec<u8>)> {
    (0..UPDATES.min(records.len())).map(move |k| &records[(k.wrapping_mul(104_729) + 7) % records.len()])
}

fn sqlite_open(path: &Path) -> Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection
        .execute("CREATE TABLE IF NOT EXISTS persons (id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID", [])?;
    Ok(connection)
}

fn sqlite_write<'a>(path: &Path, rows: impl Iterator<Item = &'a (String, Vec<u8>)>) -> Result<()> {
    let mut connection = sqlite_open(path)?;
    let rows: Vec<&(String, Vec<u8>)> = rows.collect();
    for chunk in rows.chunks(BATCH) {
        let transaction = connection.transaction()?;
        {
            let mut insert =
                transaction.prepare_cached("INSERT OR REPLACE INTO persons (id, state) VALUES (?1, ?2)")?;
            for (key, value) in chunk {
                insert.execute(rusqlite::params![key, value])?;
            }
        }
        transaction.commit()?;
    }
    Ok(())
}

fn sqlite_fill(path: &Path, records: &[(String, Vec<u8>)]) -> Result<()> {
    sqlite_write(path, records.iter())
}

fn sqlite_update(path: &Path, records: &[(String, Vec<u8>)]) -> Result<()> {
    sqlite_write(path, picked(records))
}

fn sqlite_get(path: &Path, keys: &[String]) -> Result<()> {
    let connection = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut select = connection.prepare("SELECT state FROM persons WHERE id = ?1")?;
    for key in keys {
        let state: Vec<u8> = select.query_row([key], |row| row.get(0))?;
        std::hint::black_box(state);
    }
    Ok(())
}

const REDB_TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("persons");

fn redb_write<'a>(path: &Path, rows: impl Iterator<Item = &'a (String, Vec<u8>)>) -> Result<()> {
    let database = redb::Database::create(path)?;
    let rows: Vec<&(String, Vec<u8>)> = rows.collect();
    for chunk in rows.chunks(BATCH) {
        let transaction = database.begin_write()?;
        {
            let mut table = transaction.open_table(REDB_TABLE)?;
            for (key, value) in chunk {
                table.insert(key.as_str(), value.as_slice())?;
            }
        }
        transaction.commit()?;
    }
    Ok(())
}

fn redb_fill(path: &Path, records: &[(String, Vec<u8>)]) -> Result<()> {
    redb_write(path, records.iter())
}

fn redb_update(path: &Path, records: &[(String, Vec<u8>)]) -> Result<()> {
    redb_write(path, picked(records))
}

fn redb_get(path: &Path, keys: &[String]) -> Result<()> {
    let database = redb::Database::open(path)?;
    let transaction = database.begin_read()?;
    let table = transaction.open_table(REDB_TABLE)?;
    for key in keys {
        let found = table.get(key.as_str())?.context("a stored person")?;
        std::hint::black_box(found.value().len());
    }
    Ok(())
}

/// Where the probe keeps its files.
pub fn scratch(dir: Option<&PathBuf>) -> Result<tempfile::TempDir> {
    match dir {
        Some(dir) => tempfile::Builder::new().prefix("yibao-bench-").tempdir_in(dir),
        None => tempfile::Builder::new().prefix("yibao-bench-").tempdir(),
    }
    .context("create the scratch directory")
}
