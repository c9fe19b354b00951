//! Incremental backups: `backup` adds to a directory the records appended
//! since its last run, as segment files (`segment.rs`); `check` verifies
//! every segment; `restore` (`restore.rs`) rebuilds a ledger from them,
//! optionally continued by export-format files (an export, a salvage of
//! the damaged store).

mod restore;
pub mod segment;

pub use restore::{check, restore, Checked, RestoredFromBackup, WithTaken};

use crate::error::{Classified, Kind, StorageError};
use crate::import::HeadAnswer;
use crate::location::Location;
use crate::progress;
use ledger::envelope::Hash;
use ledger::log::restore::{check_exported, ExportedRecord};
use ledger::uuid::Uuid;
use ledger::{Head, LedgerError, LogStore, OpenMode};
use segment::{Damage, SegmentBuilder};
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A segment is sealed once its records reach this many bytes, so a long
/// first backup is several files and none is unwieldy to copy or check.
pub const DEFAULT_SEGMENT_BYTES: usize = 64 << 20;

/// What a backup run added.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackedUp {
    pub dir: String,
    pub ledger_id: String,
    /// The backup's head before this run.
    pub from: HeadAnswer,
    /// The backup's head now (the ledger's durable head when the run began).
    pub head: HeadAnswer,
    pub n_records: u64,
    pub n_segments: u64,
    pub n_bytes: u64,
    pub seconds: f64,
}

/// A backup, a check or a restore from one failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{dir} is a backup of ledger {backup_id}, not of ledger {ledger_id} at {location}")]
    OtherLedger { dir: String, backup_id: Uuid, ledger_id: Uuid, location: String },
    #[error("{file} is an export of ledger {file_id}, not of ledger {backup_id} (the backup's)")]
    WithOtherLedger { file: String, file_id: String, backup_id: Uuid },
    #[error("cannot read {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the ledger no longer extends this backup (history differs at position {position})")]
    NoLongerExtends { position: u64 },
    /// A file of the backup does not read or does not chain.
    #[error("{}: position {}: {}", .path.display(), .damage.position, .damage.reason)]
    Damaged { path: PathBuf, damage: Damage },
    #[error("{}: no backup there (no header.ybk)", .dir.display())]
    NotABackup { dir: PathBuf },
    #[error(
        "{}: not a backup directory (a file, or a directory of other files without header.ybk): give a new or empty directory, or one a backup wrote",
        .dir.display()
    )]
    NotADirectory { dir: PathBuf },
    #[error("{}: another `yibao backup` is writing to this directory", .dir.display())]
    Busy { dir: PathBuf },
    #[error("{what} {}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a `--with` file is not an export line.
    #[error("{label}:{error}; nothing was restored")]
    Line { label: String, error: crate::facts::LineError },
    #[error("opening the ledger{}", crate::location::at_unless_named(.location, .source))]
    Open {
        location: String,
        #[source]
        source: StorageError,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classified for BackupError {
    fn kind(&self) -> Kind {
        match self {
            BackupError::OtherLedger { .. }
            | BackupError::Damaged { .. }
            | BackupError::NotABackup { .. }
            | BackupError::NotADirectory { .. }
            | BackupError::WithOtherLedger { .. }
            | BackupError::Unreadable { .. }
            | BackupError::Line { .. } => Kind::BadInput,
            BackupError::NoLongerExtends { .. } => Kind::Findings,
            BackupError::Busy { .. } => Kind::Conflict,
            BackupError::Io { .. } => Kind::Failure,
            BackupError::Open { source, .. } | BackupError::Storage(source) => source.kind(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            BackupError::Line { error, .. } => error.field.as_deref(),
            _ => None,
        }
    }
}

/// A backup goes into a new or empty directory, or one that holds a
/// backup: never a file, nor a directory of other files (a ledger's own
/// data directory given by mistake).
fn refuse_other_directory(dir: &Path) -> Result<(), BackupError> {
    let Ok(metadata) = std::fs::metadata(dir) else { return Ok(()) };
    if !metadata.is_dir() {
        return Err(BackupError::NotADirectory { dir: dir.to_path_buf() });
    }
    if segment::header_path(dir).exists() {
        return Ok(());
    }
    // A first run killed before it wrote the header leaves only these.
    let bookkeeping = |name: &str| {
        matches!(name, "lock" | "last" | "last.tmp" | "header.tmp" | segment::TEMPORARY_NAME)
            || (name.starts_with("segment-") && name.ends_with(".ybk"))
    };
    let entries = std::fs::read_dir(dir).map_err(io("reading the backup directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(io("reading the backup directory", dir))?;
        if !entry.file_name().to_str().is_some_and(bookkeeping) {
            return Err(BackupError::NotADirectory { dir: dir.to_path_buf() });
        }
    }
    Ok(())
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io { what, path: path.to_path_buf(), source }
}

fn storage(error: LedgerError) -> BackupError {
    BackupError::Storage(error.into())
}

/// Adds to `dir` the records of the ledger at `location` appended since
/// the backup's head, in segments of about `segment_bytes`. Reads the
/// header file and the last segment's trailer, never the earlier segments.
pub fn backup(location: &Location, dir: &Path, segment_bytes: usize) -> Result<BackedUp, BackupError> {
    let log = location
        .open_log(OpenMode::Read)
        .map_err(|error| BackupError::Open { location: location.describe(), source: error.into() })?;
    backup_log(&*log, dir, segment_bytes)
}

/// `backup` of a log already open: the service's, which holds a sled
/// store alone (`yibao serve --backup DIR`).
pub fn backup_log(log: &dyn LogStore, dir: &Path, segment_bytes: usize) -> Result<BackedUp, BackupError> {
    let started = Instant::now();
    refuse_other_directory(dir)?;
    std::fs::create_dir_all(dir).map_err(io("creating the backup directory", dir))?;
    let _lock = lock(dir)?;
    remove_temporaries(dir)?;
    let ledger_id = log.header().ledger_id;
    let (mut number, from) = backup_head(dir, log)?;
    let target = log.durable_head();
    let mut answer = BackedUp {
        dir: dir.display().to_string(),
        ledger_id: ledger_id.to_string(),
        from: head_answer(from),
        head: head_answer(from),
        n_records: 0,
        n_segments: 0,
        n_bytes: 0,
        seconds: 0.0,
    };
    let mut records = new_records(log, from, target)?;
    let bar = progress::bar(target.position.saturating_sub(from.0), "backing up");
    // Room for a small run's records, up to a whole segment.
    let capacity_bytes = segment_bytes.min(target.position.saturating_sub(from.0).saturating_mul(512) as usize);
    let mut builder = SegmentBuilder::new(ledger_id, from, capacity_bytes);
    for record in &mut records {
        let record = record.map_err(storage)?;
        if record.position > target.position {
            break;
        }
        // A store that reads back wrong never makes a segment that would
        // restore it so.
        check_exported(&Head { position: builder.head().0, hash: builder.head().1 }, &record).map_err(storage)?;
        builder.push(&record);
        bar.inc(1);
        if builder.n_bytes() >= segment_bytes {
            let after = (record.position, record.hash);
            let full = std::mem::replace(&mut builder, SegmentBuilder::new(ledger_id, after, 0));
            number += 1;
            write_segment(dir, number, full, &mut answer)?;
            // Allocated once the full one is written: one segment in memory.
            builder = SegmentBuilder::new(ledger_id, after, capacity_bytes);
        }
    }
    bar.finish_and_clear();
    if !builder.is_empty() {
        number += 1;
        write_segment(dir, number, builder, &mut answer)?;
    }
    answer.seconds = started.elapsed().as_secs_f64();
    Ok(answer)
}

/// One run at a time per directory: the lock is the open file, released
/// when dropped (or when the process dies).
fn lock(dir: &Path) -> Result<File, BackupError> {
    let path = dir.join("lock");
    let file = File::create(&path).map_err(io("creating", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::Busy { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(source)) => Err(BackupError::Io { what: "locking", path, source }),
    }
}

/// A run killed before its rename leaves its temporary file: never a
/// segment, removed.
fn remove_temporaries(dir: &Path) -> Result<(), BackupError> {
    for name in [segment::TEMPORARY_NAME, "header.tmp", "last.tmp"] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::Io { what: "removing", path, source }),
        }
    }
    Ok(())
}

/// The last segment's number and the backup's head (position, hash),
/// after checking the backup is of this ledger and that the ledger still
/// holds that head. A new backup gets the header file first.
fn backup_head(dir: &Path, log: &dyn LogStore) -> Result<(u64, (u64, Hash)), BackupError> {
    let ledger_id = log.header().ledger_id;
    let header_path = segment::header_path(dir);
    if !header_path.exists() {
        let bytes = segment::encode_header(ledger_id, log.header_bytes());
        segment::write_durably(dir, "header.tmp", "header.ybk", &bytes).map_err(io("writing", &header_path))?;
    }
    let bytes = std::fs::read(&header_path).map_err(io("reading", &header_path))?;
    let (backup_id, _) =
        segment::decode_header(&bytes).map_err(|damage| BackupError::Damaged { path: header_path.clone(), damage })?;
    if backup_id != ledger_id {
        let dir = dir.display().to_string();
        return Err(BackupError::OtherLedger { dir, backup_id, ledger_id, location: log.location() });
    }
    let number = segment::last_segment_number(dir);
    if number == 0 {
        return Ok((0, (0, log.genesis_hash())));
    }
    let path = segment::segment_path(dir, number);
    let trailer = segment::read_trailer(&path)
        .map_err(io("reading", &path))?
        .map_err(|damage| BackupError::Damaged { path: path.clone(), damage })?;
    if trailer.ledger_id != ledger_id {
        let dir = dir.display().to_string();
        let backup_id = trailer.ledger_id;
        return Err(BackupError::OtherLedger { dir, backup_id, ledger_id, location: log.location() });
    }
    Ok((number, (trailer.last_position, trailer.head_hash)))
}

/// The records after `from` (position, hash) up to the head, once the
/// ledger is found to hold `from`'s hash at its position.
fn new_records<'a>(
    log: &'a dyn LogStore,
    from: (u64, Hash),
    head: Head,
) -> Result<Box<dyn Iterator<Item = ledger::Result<ExportedRecord>> + 'a>, BackupError> {
    let (position, hash) = from;
    if position > head.position {
        return Err(BackupError::NoLongerExtends { position: head.position + 1 });
    }
    if position == head.position {
        if head.hash != hash {
            return Err(BackupError::NoLongerExtends { position });
        }
        return Ok(Box::new(std::iter::empty()));
    }
    if position == 0 {
        return Ok(Box::new(log.stored_records(1).map_err(storage)?));
    }
    let mut records = log.stored_records(position).map_err(storage)?;
    match records.next() {
        Some(Ok(record)) if record.position == position && record.hash == hash => Ok(records),
        Some(Err(error)) => Err(storage(error)),
        _ => Err(BackupError::NoLongerExtends { position }),
    }
}

fn write_segment(dir: &Path, number: u64, builder: SegmentBuilder, answer: &mut BackedUp) -> Result<(), BackupError> {
    let head = builder.head();
    let first = answer.head.position + 1;
    let bytes = builder.seal();
    let path = segment::segment_path(dir, number);
    let name = path.file_name().and_then(|n| n.to_str()).expect("a segment's name is ASCII").to_string();
    segment::write_durably(dir, segment::TEMPORARY_NAME, &name, &bytes).map_err(io("writing", &path))?;
    segment::note_last_segment(dir, number).map_err(io("writing the last segment's number in", dir))?;
    answer.n_records += head.0 + 1 - first;
    answer.n_segments += 1;
    answer.n_bytes += bytes.len() as u64;
    answer.head = head_answer(head);
    Ok(())
}

fn head_answer((position, hash): (u64, Hash)) -> HeadAnswer {
    HeadAnswer::from(Head { position, hash })
}
